#!/usr/bin/env bash
# End-to-end SLURM test of the REAL pipeline: the sample corpus (Documents/,
# offline provider) through snakemake-executor-plugin-slurm on a real
# single-node slurmctld/slurmd/munged (tests/slurm/cluster.sh), with
# profiles/slurm, compared byte for byte with a local run.
#
#   bash tests/slurm/run_pipeline.sh        # or: make test-slurm
#
# Steps
#   1. install SLURM + munge (cluster.sh install; exit 3 there => SKIP here)
#   2. python env with snakemake + the slurm executor plugin (see below)
#   3. snapshot the workflow sources (Snakefile, rules/, llm_categoriser/,
#      scripts/, profiles/, config.yaml) into the temp dir, so that edits made
#      to the checkout while the test runs cannot make the two runs differ
#   4. start a cluster in the temp dir
#   5. two copies of the corpus (Documents/ without document_reports/,
#      combined-report.csv, run-summary.json, + config.yaml):
#        local: snakemake --cores 2            (profiles/default, automatic)
#        slurm: snakemake --workflow-profile profiles/slurm
#   6. verify (a) every categorise and merge job ran inside a SLURM job that
#      slurmctld recorded as COMPLETED (jobcomp.log), none ran locally;
#      (b) the per-document CSVs of both runs are identical byte for byte;
#      (c) a rerun with the slurm profile has nothing to do (no new SLURM job)
#   7. stop the daemons it started (by PID; also on error/Ctrl-C via trap)
#
# Output ends with one line:
#   slurm: 1 passed, 0 failed          exit 0
#   slurm: 0 passed, 1 failed          exit 1
#   slurm: skipped: <reason>           exit 0 (SLURM or the python env cannot be
#                                      installed here; nothing was tested)
#
# Python env (first that applies):
#   $SNAKEMAKE                 a snakemake executable that has the plugin
#   <repo>/.venv               if it already has snakemake-executor-plugin-slurm
#                              at the pinned version (pip install -e '.[slurm]')
#   $SLURM_TEST_VENV           created/reused (default /tmp/llm-categoriser-slurm-venv):
#                              pip install -c constraints.txt -r requirements.txt
#                              snakemake-executor-plugin-slurm==<pyproject [slurm] pin>
#                              The project .venv is never modified (the plugin
#                              pulls in pandas, which every snakemake start then
#                              imports: ~0.5-1 s per process).
#
# Environment knobs:
#   SLURM_TEST_SNAPSHOT=0      run the checkout's Snakefile/profiles directly
#   SLURM_TEST_PROFILE=DIR     use this workflow profile instead of profiles/slurm
#   SLURM_TEST_NO_GROUPS=1     strip groups/group-components from the profile
#                              (to measure the ungrouped submission)
#   SLURM_TEST_KEEP=1          keep the temp dir (logs, both workdirs) on success
#   SLURM_TEST_TIMEOUT         seconds allowed for the SLURM run (default 900)
#   SLURM_TEST_PYTHON          interpreter for a new venv (default python3.11, python3)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CLUSTER="$HERE/cluster.sh"
VENV=${SLURM_TEST_VENV:-/tmp/llm-categoriser-slurm-venv}
RUN_TIMEOUT=${SLURM_TEST_TIMEOUT:-900}
PROG=run_pipeline

# shellcheck source-path=SCRIPTDIR source=timing.sh
source "$HERE/timing.sh"
say() { echo "[$PROG] $*"; }

skip() {
    echo "$PROG: SKIP: $*" >&2
    echo "slurm: skipped: $*"
    exit 0
}
FAILURES=0
fail() { echo "$PROG: FAIL: $*" >&2; FAILURES=$((FAILURES + 1)); }
finish() {
    say "timing: ${TIMES[*]} total=$(secs "$T0" "$(now)")s"
    if [ "$FAILURES" -gt 0 ]; then
        echo "slurm: 0 passed, 1 failed"
        exit 1
    fi
    echo "slurm: 1 passed, 0 failed"
    exit 0
}
abort() { # fatal error before/while running: report and fail
    fail "$*"
    finish
}

# ---- 1. SLURM + munge --------------------------------------------------------
errf=$(mktemp /tmp/slurm-install-err.XXXXXX)
rc=0
bash "$CLUSTER" install 2> >(tee "$errf" >&2) || rc=$?
sleep 0.2 # let tee flush
reason=$(grep -m1 'cannot install SLURM' "$errf" | sed 's/^[^:]*: //')
rm -f "$errf"
if [ "$rc" = 3 ]; then
    skip "${reason:-SLURM cannot be installed on this machine}"
elif [ "$rc" != 0 ]; then
    abort "cluster.sh install exited $rc"
fi
phase_end install_slurm

# ---- 2. snakemake + plugin ---------------------------------------------------
# Pins: snakemake from requirements.txt, the plugin from pyproject's [slurm] extra.
SNAKEMAKE_PIN=$(sed -n 's/^snakemake==\([^ ]*\).*/\1/p' "$REPO/requirements.txt" | head -n1)
PLUGIN_PIN=$(sed -n 's/.*"snakemake-executor-plugin-slurm==\([^"]*\)".*/\1/p' "$REPO/pyproject.toml" | head -n1)
[ -n "$SNAKEMAKE_PIN" ] || abort "no snakemake==X pin in requirements.txt"
[ -n "$PLUGIN_PIN" ] || abort "no snakemake-executor-plugin-slurm==X in pyproject.toml [slurm] extra"

has_plugin() { # PYTHON -> 0 if snakemake + plugin at the pinned versions import
    "$1" - "$SNAKEMAKE_PIN" "$PLUGIN_PIN" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
ok = (version("snakemake") == sys.argv[1]
      and version("snakemake-executor-plugin-slurm") == sys.argv[2])
import snakemake_executor_plugin_slurm, snakemake_executor_plugin_slurm_jobstep  # noqa
import pydantic, yaml, jsonschema  # noqa  (the pipeline's own imports)
sys.exit(0 if ok else 1)
EOF
}
VENV_STAMP=$VENV/.llm-categoriser-slurm-stamp
wanted_stamp() {
    cat "$REPO/constraints.txt" "$REPO/requirements.txt" | sha256sum | cut -c1-16
    echo "plugin=$PLUGIN_PIN"
}

if [ -n "${SNAKEMAKE:-}" ]; then
    SM=$SNAKEMAKE
    ENV_NOTE="\$SNAKEMAKE"
elif [ -x "$REPO/.venv/bin/snakemake" ] && has_plugin "$REPO/.venv/bin/python"; then
    SM=$REPO/.venv/bin/snakemake
    ENV_NOTE="project .venv (has the plugin)"
else
    if ! { [ -x "$VENV/bin/snakemake" ] && [ "$(cat "$VENV_STAMP" 2>/dev/null)" = "$(wanted_stamp)" ] &&
           has_plugin "$VENV/bin/python"; }; then
        PY=${SLURM_TEST_PYTHON:-}
        if [ -z "$PY" ]; then
            for cand in python3.11 python3.12 python3.13 python3; do
                if command -v "$cand" >/dev/null 2>&1 &&
                   "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
                    PY=$cand; break
                fi
            done
        fi
        [ -n "$PY" ] || skip "no Python >= 3.11 to create $VENV"
        say "creating $VENV with $PY (pinned requirements + snakemake-executor-plugin-slurm==$PLUGIN_PIN)"
        piplog=$(mktemp /tmp/slurm-pip.XXXXXX)
        if ! { "$PY" -m venv "$VENV" &&
               "$VENV/bin/python" -m pip install --disable-pip-version-check \
                   -c "$REPO/constraints.txt" -r "$REPO/requirements.txt" \
                   "snakemake-executor-plugin-slurm==$PLUGIN_PIN"; } >"$piplog" 2>&1; then
            skip "cannot install snakemake + the slurm plugin into $VENV: $(grep -v '^WARNING: Location' "$piplog" | tail -n1)"
        fi
        rm -f "$piplog"
        has_plugin "$VENV/bin/python" || abort "$VENV lacks snakemake==$SNAKEMAKE_PIN / plugin==$PLUGIN_PIN after install"
        wanted_stamp >"$VENV_STAMP"
    fi
    SM=$VENV/bin/snakemake
    ENV_NOTE="$VENV"
fi
say "snakemake: $SM ($("$SM" --version); $ENV_NOTE)"
PYBIN=$(dirname "$SM")/python
[ -x "$PYBIN" ] || PYBIN=python3
phase_end python_env

# ---- 3. workspace + snapshot ---------------------------------------------------
WORK=$(cd "$(mktemp -d /tmp/llmcat-slurm.XXXXXX)" && pwd -P)
CDIR=$WORK/cluster
SMPID=
cleanup() {
    local rc=$?
    if [ -n "$SMPID" ] && kill -0 "$SMPID" 2>/dev/null; then
        # SIGINT (not TERM): snakemake then scancels its SLURM jobs and exits;
        # on TERM it would wait for the running jobs to finish.
        kill -INT "$SMPID" 2>/dev/null || true
        local _
        for _ in $(seq 1 120); do kill -0 "$SMPID" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$SMPID" 2>/dev/null || true
    fi
    bash "$CLUSTER" stop "$CDIR" >/dev/null 2>&1 || true
    if [ "$FAILURES" = 0 ] && [ "$rc" = 0 ] && [ "${SLURM_TEST_KEEP:-0}" != 1 ]; then
        rm -rf "$WORK"
    else
        echo "$PROG: kept $WORK (snakemake logs *.log, cluster logs in $CDIR/log)" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "${SLURM_TEST_SNAPSHOT:-1}" = 1 ]; then
    SRC=$WORK/src
    mkdir -p "$SRC"
    (cd "$REPO" && cp -r Snakefile rules llm_categoriser scripts profiles config.yaml "$SRC/") ||
        abort "cannot snapshot the workflow sources"
    [ -f "$REPO/environment.yml" ] && cp "$REPO/environment.yml" "$SRC/"
    find "$SRC" -name __pycache__ -type d -prune -exec rm -rf {} +
else
    SRC=$REPO
fi
# `pip install -e .` would make llm_categoriser importable everywhere; the test
# venv has only the dependencies, so scripts (combine.py) find it here, in the
# main process and (sbatch exports the environment) inside the SLURM jobs.
export PYTHONPATH=$SRC${PYTHONPATH:+:$PYTHONPATH}

PROFILE=${SLURM_TEST_PROFILE:-$SRC/profiles/slurm}
if [ "${SLURM_TEST_NO_GROUPS:-0}" = 1 ]; then
    mkdir -p "$WORK/profile-nogroups"
    "$PYBIN" - "$PROFILE/config.yaml" "$WORK/profile-nogroups/config.yaml" <<'EOF' ||
import sys, yaml
p = yaml.safe_load(open(sys.argv[1]))
for k in ("groups", "group-components"):
    p.pop(k, None)
yaml.safe_dump(p, open(sys.argv[2], "w"), sort_keys=False)
EOF
        abort "cannot write the ungrouped profile"
    PROFILE=$WORK/profile-nogroups
    say "SLURM_TEST_NO_GROUPS=1: profile without groups/group-components ($PROFILE)"
fi

make_workdir() { # DIR
    mkdir -p "$1"
    cp -r "$REPO/Documents" "$1/" || return 1
    rm -rf "$1"/Documents/*/document_reports "$1/Documents/combined-report.csv" "$1/Documents/run-summary.json"
    cp "$SRC/config.yaml" "$1/"
}
LOCAL_WD=$WORK/local
SLURM_WD=$WORK/slurm
if ! { make_workdir "$LOCAL_WD" && make_workdir "$SLURM_WD"; }; then
    abort "cannot copy the sample corpus"
fi
phase_end prepare

# ---- 4. local reference run ----------------------------------------------------
LOCAL_LOG=$WORK/local.log
say "local run: $SM -s $SRC/Snakefile -d $LOCAL_WD --cores 2"
rc=0
(cd "$LOCAL_WD" && timeout -k 10 600 "$SM" -s "$SRC/Snakefile" -d "$LOCAL_WD" --cores 2) >"$LOCAL_LOG" 2>&1 || rc=$?
if [ "$rc" != 0 ]; then
    tail -n 40 "$LOCAL_LOG" >&2
    abort "local run exited $rc (log: $LOCAL_LOG)"
fi
phase_end local_run

# ---- 5. cluster ------------------------------------------------------------------
bash "$CLUSTER" start "$CDIR" || abort "cannot start the test cluster (logs: $CDIR/log)"
# shellcheck disable=SC1091
. "$CDIR/env.sh"
phase_end start_cluster

# ---- 6. SLURM run ----------------------------------------------------------------
SLURM_LOG=$WORK/slurm.log
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
say "SLURM run: $SM -s $SRC/Snakefile -d $SLURM_WD --workflow-profile $PROFILE (log: $SLURM_LOG; load $LOAD_BEFORE)"
rc=0
# --verbose: the plugin logs its status command (checked below);
# --slurm-keep-successful-logs: the per-job logs show which rules each ran;
# progress=verbose: the main process prints its per-job lines too (checked below).
# timeout -s INT: see cleanup (snakemake cancels its SLURM jobs on SIGINT).
(cd "$SLURM_WD" && exec timeout -s INT -k 60 "$RUN_TIMEOUT" "$SM" -s "$SRC/Snakefile" -d "$SLURM_WD" \
    --workflow-profile "$PROFILE" --slurm-keep-successful-logs --verbose --config progress=verbose) \
    >"$SLURM_LOG" 2>&1 &
SMPID=$!
wait "$SMPID" || rc=$?
SMPID=
phase_end slurm_run
SLURM_SECS=${TIMES[-1]#slurm_run=}
if [ "$rc" != 0 ]; then
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        fail "SLURM run timed out after ${RUN_TIMEOUT}s (SLURM_TEST_TIMEOUT)"
    else
        fail "SLURM run exited $rc"
    fi
    echo "----- snakemake log (last 60 lines) -----" >&2
    grep -v '^\s*$' "$SLURM_LOG" | grep -v 'DEBUG\|debug' | tail -n 60 >&2
    for f in $(find "$SLURM_WD/.snakemake/slurm_logs" -name '*.log' 2>/dev/null | head -n 3); do
        echo "----- $f (last 30 lines) -----" >&2; tail -n 30 "$f" >&2
    done
    echo "----- squeue -----" >&2; squeue --states=all >&2 2>&1 || true
    for f in "$CDIR"/log/slurmctld.log "$CDIR"/log/slurmd.log; do
        echo "----- $f (last 20 lines) -----" >&2; tail -n 20 "$f" >&2
    done
fi

# ---- 7a. every categorise / merge ran in a COMPLETED SLURM job -------------------
RUN_ID=$(sed -n 's/^SLURM run ID: \([0-9a-fA-F-]*\).*/\1/p' "$SLURM_LOG" | head -n1)
[ -n "$RUN_ID" ] || fail "no 'SLURM run ID' in the snakemake log"
grep -q 'command=squeue' "$SLURM_LOG" || fail "plugin did not use 'squeue' for status checks"
if grep -q 'command=sacct' "$SLURM_LOG"; then fail "plugin fell back to 'sacct' for status checks"; fi

# What the plan says should run (the corpus may change; do not hard-code the counts).
# One categorise job and one merge job per job of the plan (docs/DESIGN.md §12).
read -r WANT_CAT WANT_MERGE WANT_DOCS < <(PLAN="$SLURM_WD/data/plan" "$PYBIN" -c '
import json, os
root = os.environ["PLAN"]
p = json.load(open(os.path.join(root, "plan.json")))
jobs = [n for n in os.listdir(os.path.join(root, "jobs")) if n.endswith(".json")]
print(len(jobs), len(jobs), len(p["documents"]))' 2>/dev/null || echo "? ? ?")

# "Job N has been submitted with SLURM jobid 12 (log: .../slurm_logs/<rule_X|group_G_rules>/.../12.log)."
SUBMITS=$WORK/submitted.txt
sed -n 's/^Job .* has been submitted with SLURM jobid \([0-9][0-9]*\) (log: \(.*\))\.$/\1 \2/p' "$SLURM_LOG" >"$SUBMITS"
# Executions inside SLURM jobs: the in-job snakemake prints a "localrule R:"
# block (with its outputs) for every rule it actually runs.
EXECS=$WORK/executed.txt
: >"$EXECS"
while read -r jid jlog; do
    if [ ! -f "$jlog" ]; then fail "SLURM job $jid: log $jlog missing"; continue; fi
    awk -v jid="$jid" '
        /^localrule [A-Za-z_0-9]+:$/ { rule = substr($2, 1, length($2) - 1); next }
        rule != "" && /^    output: / { sub(/^    output: /, ""); split($0, o, ", "); print jid, rule, o[1]; rule = "" }
    ' "$jlog" >>"$EXECS"
done <"$SUBMITS"

declare -A JSTATE=()
JOBIDS=()
while read -r jid _; do
    JOBIDS+=("$jid")
    rec=$(grep -E "^JobId=$jid " "$SLURM_TEST_JOBCOMP" || true)
    if [ -z "$rec" ]; then fail "no jobcomp record for SLURM job $jid"; JSTATE[$jid]=none; continue; fi
    st=$(sed -n 's/.* JobState=\([A-Z_]*\) .*/\1/p' <<<"$rec")
    JSTATE[$jid]=$st
    [ "$st" = COMPLETED ] || fail "SLURM job $jid is $st: $rec"
    [[ $rec == *" ExitCode=0:0 "* ]] || fail "SLURM job $jid exit code not 0:0: $rec"
    [[ $rec == *" Name=$RUN_ID "* ]] || fail "SLURM job $jid is not named after run $RUN_ID: $rec"
    [[ $rec == *" WorkDir=$SLURM_WD "* ]] || fail "SLURM job $jid ran outside $SLURM_WD: $rec"
done <"$SUBMITS"
nrec=$(grep -c " Name=$RUN_ID " "$SLURM_TEST_JOBCOMP" || true)
[ "$nrec" = "${#JOBIDS[@]}" ] || fail "jobcomp has $nrec records for run $RUN_ID, snakemake submitted ${#JOBIDS[@]}"

count_rule() { awk -v r="$1" '$2 == r { print $3 }' "$EXECS" | sort -u | wc -l; }
CAT_RAN=$(count_rule categorise)
MERGE_RAN=$(count_rule merge)
dups=$(awk '{ print $2, $3 }' "$EXECS" | sort | uniq -d | head -n 3)
[ -z "$dups" ] || fail "outputs produced by more than one SLURM job: $dups"
[ "$CAT_RAN" = "$WANT_CAT" ] || fail "categorise: $CAT_RAN ran in SLURM jobs, the plan has $WANT_CAT jobs"
[ "$MERGE_RAN" = "$WANT_MERGE" ] || fail "merge: $MERGE_RAN ran in SLURM jobs, the plan has $WANT_MERGE jobs"
# ... and none ran in the main (local) process
for r in categorise merge; do
    n=$(grep -c "^localrule $r:" "$SLURM_LOG" || true)
    [ "$n" = 0 ] || fail "$n $r job(s) ran locally in the main snakemake process"
done
# every produced categorise/merge output is one the SLURM jobs wrote
while read -r f; do
    [ -s "$SLURM_WD/$f" ] || fail "output $f of a SLURM job is missing"
done < <(awk '$2 == "categorise" || $2 == "merge" { print $3 }' "$EXECS")
if grep -q "^localrule combine:" "$SLURM_LOG"; then
    COMBINE_WHERE="local (main process)"
elif [ "$(count_rule combine)" = 1 ]; then
    COMBINE_WHERE="SLURM job $(awk '$2 == "combine" { print $1 }' "$EXECS")"
else
    COMBINE_WHERE="?"
    fail "combine ran neither locally nor in a SLURM job"
fi

say "SLURM run id $RUN_ID: ${#JOBIDS[@]} SLURM jobs, categorise $CAT_RAN/$WANT_CAT and merge $MERGE_RAN/$WANT_MERGE inside them; combine: $COMBINE_WHERE"
printf '    %-6s %-10s %-26s %4s %5s %5s %8s\n' jobid state "rule/group" cat merge other elapsed
while read -r jid jlog; do
    kind=$(basename "$(dirname "$jlog")")
    [[ $kind == rule_* || $kind == group_* ]] || kind=$(basename "$(dirname "$(dirname "$jlog")")")
    c=$(awk -v j="$jid" '$1 == j && $2 == "categorise"' "$EXECS" | wc -l)
    m=$(awk -v j="$jid" '$1 == j && $2 == "merge"' "$EXECS" | wc -l)
    o=$(awk -v j="$jid" '$1 == j && $2 != "categorise" && $2 != "merge"' "$EXECS" | wc -l)
    rec=$(grep -E "^JobId=$jid " "$SLURM_TEST_JOBCOMP" || true)
    s=$(sed -n 's/.* StartTime=\([^ ]*\) .*/\1/p' <<<"$rec")
    e=$(sed -n 's/.* EndTime=\([^ ]*\) .*/\1/p' <<<"$rec")
    el="?"
    [ -n "$s" ] && [ -n "$e" ] && el="$(( $(date -d "$e" +%s) - $(date -d "$s" +%s) ))s"
    printf '    %-6s %-10s %-26s %4s %5s %5s %8s\n' "$jid" "${JSTATE[$jid]:-?}" "$kind" "$c" "$m" "$o" "$el"
done <"$SUBMITS"
say "jobcomp records (slurmctld):"
grep " Name=${RUN_ID:-none} " "$SLURM_TEST_JOBCOMP" | awk '{ print "    " $1, $5, $7, $8, $9, $NF }' || true

# ---- 7b. the per-document CSVs equal those of the local run ----------------------
list_csvs() { (cd "$1" && find Documents -path '*/document_reports/*.csv' -type f | sort); }
LOCAL_CSVS=$(list_csvs "$LOCAL_WD")
SLURM_CSVS=$(list_csvs "$SLURM_WD")
n_csv=$(grep -c . <<<"$LOCAL_CSVS" || true)
if [ "$LOCAL_CSVS" != "$SLURM_CSVS" ]; then
    fail "different sets of per-document CSVs: $(diff <(echo "$LOCAL_CSVS") <(echo "$SLURM_CSVS") | grep '^[<>]' | head -n 5 | tr '\n' ' ')"
fi
[ "$n_csv" = "$WANT_DOCS" ] || fail "local run wrote $n_csv per-document CSVs, the plan has $WANT_DOCS documents"
n_same=0
mapfile -t CSV_LIST <<<"$LOCAL_CSVS"
for f in "${CSV_LIST[@]}"; do
    if cmp -s "$LOCAL_WD/$f" "$SLURM_WD/$f"; then
        n_same=$((n_same + 1))
    else
        fail "$f differs between the local and the SLURM run"
        diff "$LOCAL_WD/$f" "$SLURM_WD/$f" | head -n 6 >&2
    fi
done
f=Documents/combined-report.csv
if cmp -s "$LOCAL_WD/$f" "$SLURM_WD/$f"; then
    n_same=$((n_same + 1))
else
    fail "$f differs between the local and the SLURM run"
fi
say "CSV comparison: $n_same/$((n_csv + 1)) identical (${n_csv} per-document CSVs + combined-report.csv), sha256 of all: $(cd "$SLURM_WD" && cat "${CSV_LIST[@]}" | sha256sum | cut -c1-16)"
phase_end verify

# ---- 7c. rerun: nothing to be done ------------------------------------------------
RERUN_LOG=$WORK/rerun.log
if [ "$FAILURES" -gt 0 ]; then
    say "rerun check skipped (the run above failed)"
else
n_before=$(wc -l <"$SLURM_TEST_JOBCOMP")
rc=0
(cd "$SLURM_WD" && timeout -s INT -k 60 300 "$SM" -s "$SRC/Snakefile" -d "$SLURM_WD" --workflow-profile "$PROFILE") \
    >"$RERUN_LOG" 2>&1 || rc=$?
n_after=$(wc -l <"$SLURM_TEST_JOBCOMP")
[ "$rc" = 0 ] || fail "rerun exited $rc (log: $RERUN_LOG)"
if grep -q "Nothing to be done" "$RERUN_LOG"; then
    say "rerun: $(grep -m1 'Nothing to be done' "$RERUN_LOG")"
else
    fail "rerun did not say 'Nothing to be done': $(grep -E '^(rule|localrule|reason)' "$RERUN_LOG" | head -n 4 | tr '\n' ' ')"
fi
[ "$n_after" = "$n_before" ] || fail "rerun submitted $((n_after - n_before)) SLURM job(s)"
fi
phase_end rerun

DPIDS=()
for d in slurmd slurmctld munged; do
    DPIDS+=("$d=$(cat "$CDIR/$d.pid" 2>/dev/null)")
done
bash "$CLUSTER" stop "$CDIR" >/dev/null 2>&1 || fail "cluster.sh stop failed"
for dp in "${DPIDS[@]}"; do
    pid=${dp#*=}
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then fail "${dp%%=*} (pid $pid) still running after stop"; fi
done
say "stopped the daemons it started: ${DPIDS[*]}"
phase_end stop_cluster
say "SLURM run: ${SLURM_SECS} for $((WANT_CAT + WANT_MERGE)) categorise+merge jobs in ${#JOBIDS[@]} SLURM jobs (groups: $([ "${SLURM_TEST_NO_GROUPS:-0}" = 1 ] && echo off || echo on); load before: $LOAD_BEFORE)"
finish
