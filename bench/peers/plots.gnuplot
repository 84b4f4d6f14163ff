# The plots of bench/peers.sh, from the data files report.py writes:
#   gnuplot -e "dir='OUT'" bench/peers/plots.gnuplot          (SVG)
#   gnuplot -e "dir='OUT'; fmt='png'" bench/peers/plots.gnuplot  (PNG)
# -> OUT/per_call.svg, OUT/attach.svg, OUT/scaling.svg (or .png)
if (!exists("dir")) dir = "."
if (!exists("fmt")) fmt = "svg"
set datafile missing "NaN"
if (fmt eq "png") {
  set terminal pngcairo size 1000,460 font "sans,10" background rgb "white"
} else {
  set terminal svg size 1000,460 dynamic font "sans,11" background rgb "white"
}
set termoption noenhanced
set grid ytics lc rgb "#dddddd"
set key top left

# 1. Per-call overhead per tool: ns (median, min..max bars) and instructions.
set output dir."/per_call.".fmt
set bmargin 9
set multiplot layout 1,2 title "Added cost per call of a tiny leaf, same source, same run"
set style data histogram
set style histogram errorbars gap 1 lw 1
set style fill solid 0.6 border -1
set logscale y
set yrange [0.5:*]
set xtics rotate by -35 left font ",9"
set ylabel "ns per call (log)"
set title "wall clock: median of rounds, bars min..max"
plot dir."/plot_calls.dat" using 2:3:4:xtic(1) notitle lc rgb "#4477aa"
set ylabel "instructions per call (log)"
set title "callgrind instructions"
set yrange [1:*]
set style histogram clustered gap 1
plot dir."/plot_calls.dat" using ($5 > 0 ? $5 : NaN):xtic(1) notitle lc rgb "#cc6677"
unset multiplot
set bmargin
unset logscale y
unset style
set yrange [*:*]
set xtics norotate font ",11"

# 2. Attach / detach time against the number of functions.
set output dir."/attach.".fmt
set title "Attach and detach of a batch: time against the number of functions (fast write mode)"
set logscale xy
set xlabel "functions in the batch"
set ylabel "us (log)"
set format x "%.0f"
set xrange [0.7:150000]
set yrange [1:*]
set key top left
plot dir."/plot_attach.dat" using 1:2:3:4 with yerrorlines lc rgb "#4477aa" pt 7 title "padhook attach (steady)", \
     dir."/plot_attach.dat" using 1:5:6:7 with yerrorlines lc rgb "#228833" pt 5 title "padhook detach (steady)", \
     dir."/plot_attach.dat" using 1:8:9:10 with yerrorlines lc rgb "#ee6677" pt 9 title "padhook FIRST attach (fresh process)", \
     dir."/plot_attach_xray.dat" using 1:2:3:4 with yerrorbars lc rgb "#000000" pt 6 ps 1.5 title "XRay __xray_patch / patch_function", \
     dir."/plot_attach_xray.dat" using 1:8 with points lc rgb "#aa3377" pt 8 ps 1.5 title "XRay first __xray_patch", \
     x / 100.0 with lines dt 2 lc rgb "#999999" title "10 ns per function"
unset logscale
unset format x
set xrange [*:*]
set yrange [*:*]

# 3. Per-call cost with more attached: clients on the function, and elsewhere.
set output dir."/scaling.".fmt
set multiplot layout 1,2 title "padhook per-call cost as more is attached"
set xlabel "clients on the hooked function"
set ylabel "ns per call above unpatched"
set y2label "instructions per call above unpatched"
set y2tics
set ytics nomirror
set logscale x
set title "clients on the same function"
set key top left
plot dir."/plot_clients.dat" using 1:2:3:4 with yerrorlines lc rgb "#4477aa" pt 7 title "ns (median, min..max)", \
     dir."/plot_clients.dat" using 1:5 axes x1y2 with linespoints lc rgb "#cc6677" pt 5 title "instructions (right axis)"
unset logscale x
unset y2tics
unset y2label
set ytics mirror
set bmargin 9
set title "one client on the leaf; attached elsewhere"
set xlabel ""
set ylabel "ns per call"
set style data histogram
set style histogram errorbars gap 1 lw 1
set style fill solid 0.6 border -1
set xtics rotate by -35 left font ",9"
set yrange [0:*]
plot dir."/plot_flat.dat" using 2:3:4:xtic(1) notitle lc rgb "#4477aa"
unset multiplot
