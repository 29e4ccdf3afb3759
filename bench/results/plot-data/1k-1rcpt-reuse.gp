set terminal pngcairo size 1000,840 noenhanced
set output 'bench/results/delivery-1k-1rcpt-reuse.png'
set multiplot layout 3,1 title 'Delivered messages per second into mta-sink, workload 1k-1rcpt-reuse (median run of each system)'
set grid
set yrange [0:*]
set ylabel 'msgs/s'
unset key
set title 'raw (load → sink): 20000 messages in 0.22 s, 0.0045 s bins'
unset xlabel
plot 'bench/results/plot-data/1k-1rcpt-reuse-raw.dat' using 1:2 with steps lw 2 lc 1
set title 'mta: 20000 messages in 0.67 s, 0.013 s bins'
unset xlabel
plot 'bench/results/plot-data/1k-1rcpt-reuse-mta.dat' using 1:2 with steps lw 2 lc 2
set title 'postfix: 20000 messages in 21.78 s, 0.44 s bins'
set xlabel 'seconds since mta-load started'
plot 'bench/results/plot-data/1k-1rcpt-reuse-postfix.dat' using 1:2 with steps lw 2 lc 3
unset multiplot
