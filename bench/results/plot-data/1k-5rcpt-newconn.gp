set terminal pngcairo size 1000,840 noenhanced
set output 'bench/results/delivery-1k-5rcpt-newconn.png'
set multiplot layout 3,1 title 'Delivered messages per second into mta-sink, workload 1k-5rcpt-newconn (median run of each system)'
set grid
set yrange [0:*]
set ylabel 'msgs/s'
unset key
set title 'raw (load → sink): 20000 messages in 0.60 s, 0.012 s bins'
unset xlabel
plot 'bench/results/plot-data/1k-5rcpt-newconn-raw.dat' using 1:2 with steps lw 2 lc 1
set title 'mta: 20000 messages in 0.99 s, 0.02 s bins'
unset xlabel
plot 'bench/results/plot-data/1k-5rcpt-newconn-mta.dat' using 1:2 with steps lw 2 lc 2
set title 'postfix: 20000 messages in 27.01 s, 0.54 s bins'
set xlabel 'seconds since mta-load started'
plot 'bench/results/plot-data/1k-5rcpt-newconn-postfix.dat' using 1:2 with steps lw 2 lc 3
unset multiplot
