set terminal pngcairo size 1000,840 noenhanced
set output 'bench/results/delivery-20k-5rcpt-reuse.png'
set multiplot layout 3,1 title 'Delivered messages per second into mta-sink, workload 20k-5rcpt-reuse (median run of each system)'
set grid
set yrange [0:*]
set ylabel 'msgs/s'
unset key
set title 'raw (load → sink): 10000 messages in 0.29 s, 0.0058 s bins'
unset xlabel
plot 'bench/results/plot-data/20k-5rcpt-reuse-raw.dat' using 1:2 with steps lw 2 lc 1
set title 'mta: 10000 messages in 0.63 s, 0.013 s bins'
unset xlabel
plot 'bench/results/plot-data/20k-5rcpt-reuse-mta.dat' using 1:2 with steps lw 2 lc 2
set title 'postfix: 10000 messages in 15.29 s, 0.31 s bins'
set xlabel 'seconds since mta-load started'
plot 'bench/results/plot-data/20k-5rcpt-reuse-postfix.dat' using 1:2 with steps lw 2 lc 3
unset multiplot
