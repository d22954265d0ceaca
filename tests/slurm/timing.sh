# Phase timing shared by run_pipeline.sh and run_toy.sh (sourced, not run).
# Sets T0; `phase_end NAME` appends "NAME=<seconds since the last phase end>s" to TIMES.
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
T0=$(now)
TIMES=()
phase_start=$T0
phase_end() { # NAME
    local t
    t=$(now)
    TIMES+=("$1=$(secs "$phase_start" "$t")s")
    phase_start=$t
}
