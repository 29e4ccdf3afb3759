set terminal pngcairo size 1000,840 noenhanced
set output 'bench/results/delivery-1k-1rcpt-newconn.png'
set multiplot layout 3,1 title 'Delivered messages per second into mta-sink, workload 1k-1rcpt-newconn (median run of each system)'
set grid
set yrange [0:*]
set ylabel 'msgs/s'
unset key
set title 'raw (load → sink): 20000 messages in 0.69 s, 0.014 s bins'
unset xlabel
plot 'bench/results/plot-data/1k-1rcpt-newconn-raw.dat' using 1:2 with steps lw 2 lc 1
set title 'mta: 20000 messages in 1.23 s, 0.025 s bins'
unset xlabel
plot 'bench/results/plot-data/1k-1rcpt-newconn-mta.dat' using 1:2 with steps lw 2 lc 2
set title 'postfix: 20000 messages in 20.59 s, 0.41 s bins'
set xlabel 'seconds since mta-load started'
plot 'bench/results/plot-data/1k-1rcpt-newconn-postfix.dat' using 1:2 with steps lw 2 lc 3
unset multiplot
