#!/usr/bin/env bash
# End-to-end SLURM test: real slurmctld/slurmd/munged + the real
# snakemake-executor-plugin-slurm, running tests/slurm/toy with
# profiles/slurm.
#
#   bash tests/slurm/run_toy.sh
#
# Steps: install (apt) -> python env (venv, pinned) -> start cluster in a temp
# dir -> run the toy workflow from a temp copy -> verify the outputs carry
# SLURM job ids and that slurmctld recorded exactly those jobs as COMPLETED
# (jobcomp/filetxt record + scontrol show job) -> stop the cluster (trap).
#
# Exit codes: 0 pass, 1 fail, 3 skipped (SLURM or the python env cannot be
# installed here; reason on stderr).
#
# Environment knobs:
#   SNAKEMAKE             snakemake executable to use (must have the slurm
#                         executor plugin); default: venv below
#   SLURM_TEST_VENV       venv to create/reuse (default /tmp/slurm-venv)
#   SLURM_TEST_PYTHON     interpreter for the venv (default python3.11, python3)
#   SNAKEMAKE_VERSION     default 9.27.1
#   SLURM_PLUGIN_VERSION  default 2.8.0 (snakemake-executor-plugin-slurm)
#   SLURM_TEST_KEEP=1     keep the temp dir (cluster logs, toy copy) on success
#   SLURM_TEST_TIMEOUT    seconds allowed for the snakemake run (default 600)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CLUSTER="$HERE/cluster.sh"
PROFILE="$REPO/profiles/slurm"
SNAKEMAKE_VERSION=${SNAKEMAKE_VERSION:-9.27.1}
SLURM_PLUGIN_VERSION=${SLURM_PLUGIN_VERSION:-2.8.0}
VENV=${SLURM_TEST_VENV:-/tmp/slurm-venv}
RUN_TIMEOUT=${SLURM_TEST_TIMEOUT:-600}
SAMPLES=(a b)

# shellcheck source-path=SCRIPTDIR source=timing.sh
source "$HERE/timing.sh"
say() { echo "[run_toy] $*"; }

skip() {
    echo "run_toy: SKIP: $*" >&2
    echo "slurm-toy: 0 passed, 0 failed, 1 skipped"
    exit 3
}

FAILURES=0
fail() { echo "run_toy: FAIL: $*" >&2; FAILURES=$((FAILURES + 1)); }

# ---- 1. SLURM + munge --------------------------------------------------------
rc=0
bash "$CLUSTER" install || rc=$?
if [ "$rc" = 3 ]; then
    skip "SLURM cannot be installed on this machine (see message above)"
elif [ "$rc" != 0 ]; then
    echo "run_toy: FAIL: cluster.sh install exited $rc" >&2
    exit 1
fi
phase_end install_slurm

# ---- 2. snakemake + plugin ---------------------------------------------------
venv_ok() {
    [ -x "$VENV/bin/snakemake" ] &&
    "$VENV/bin/python" - "$SNAKEMAKE_VERSION" "$SLURM_PLUGIN_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
ok = (version("snakemake") == sys.argv[1]
      and version("snakemake-executor-plugin-slurm") == sys.argv[2])
sys.exit(0 if ok else 1)
EOF
}
if [ -n "${SNAKEMAKE:-}" ]; then
    SM=$SNAKEMAKE
else
    if ! venv_ok; then
        PY=${SLURM_TEST_PYTHON:-}
        if [ -z "$PY" ]; then
            for cand in python3.11 python3; do
                if command -v "$cand" >/dev/null 2>&1; then PY=$cand; break; fi
            done
        fi
        [ -n "$PY" ] || skip "no python3 interpreter to create $VENV"
        say "creating $VENV with $PY (snakemake==$SNAKEMAKE_VERSION, snakemake-executor-plugin-slurm==$SLURM_PLUGIN_VERSION)"
        piplog=$(mktemp /tmp/slurm-pip.XXXXXX)
        if ! { "$PY" -m venv "$VENV" &&
               "$VENV/bin/pip" install --disable-pip-version-check \
                   "snakemake==$SNAKEMAKE_VERSION" \
                   "snakemake-executor-plugin-slurm==$SLURM_PLUGIN_VERSION"; } >"$piplog" 2>&1; then
            skip "cannot install snakemake/plugin into $VENV: $(tail -n1 "$piplog")"
        fi
        venv_ok || skip "venv $VENV lacks the pinned snakemake/plugin versions after install"
    fi
    SM=$VENV/bin/snakemake
fi
say "snakemake: $SM ($("$SM" --version))"
phase_end install_python

# ---- 3. cluster --------------------------------------------------------------
WORK=$(cd "$(mktemp -d /tmp/slurm-toy.XXXXXX)" && pwd -P)
CDIR=$WORK/cluster
TOY=$WORK/toy
cleanup() {
    local rc=$?
    bash "$CLUSTER" stop "$CDIR" >/dev/null 2>&1 || true
    if [ "$rc" = 0 ] && [ "${SLURM_TEST_KEEP:-0}" != 1 ]; then
        rm -rf "$WORK"
    else
        echo "run_toy: kept $WORK (cluster logs in $CDIR/log)" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bash "$CLUSTER" start "$CDIR"
# shellcheck disable=SC1091
. "$CDIR/env.sh"
phase_end start_cluster

# ---- 4. the toy workflow -----------------------------------------------------
cp -r "$HERE/toy" "$TOY"
SMLOG=$WORK/snakemake.log
say "running the toy workflow in $TOY (log: $SMLOG)"
rc=0
(cd "$TOY" && timeout -k 30 "$RUN_TIMEOUT" "$SM" --workflow-profile "$PROFILE" --verbose) \
    >"$SMLOG" 2>&1 || rc=$?
phase_end snakemake
if [ "$rc" != 0 ]; then
    fail "snakemake exited $rc"
    echo "----- snakemake log (last 80 lines) -----" >&2
    tail -n 80 "$SMLOG" >&2
    for f in "$TOY"/.snakemake/slurm_logs/*/*/*.log "$TOY"/.snakemake/slurm_logs/*/*.log; do
        [ -f "$f" ] && { echo "----- $f -----" >&2; tail -n 40 "$f" >&2; }
    done
    for f in "$CDIR"/log/slurmctld.log "$CDIR"/log/slurmd.log; do
        echo "----- $f (last 30 lines) -----" >&2; tail -n 30 "$f" >&2
    done
fi

# ---- 5. verification ---------------------------------------------------------
HOST=$(hostname -s)
RUN_ID=$(sed -n 's/^SLURM run ID: \([0-9a-fA-F-]*\).*/\1/p' "$SMLOG" | head -n1)
[ -n "$RUN_ID" ] || fail "no 'SLURM run ID' in the snakemake log"

# The plugin must have polled with squeue (sacct has no database here).
grep -q 'command=squeue' "$SMLOG" || fail "plugin did not use 'squeue' for status checks"
if grep -q 'command=sacct' "$SMLOG"; then fail "plugin fell back to 'sacct' for status checks"; fi

declare -A SEEN=()
JOBIDS=()
for s in "${SAMPLES[@]}"; do
    out=$TOY/results/$s.txt
    if [ ! -s "$out" ]; then fail "missing output $out"; continue; fi
    jid=$(sed -n 's/^slurm_job_id=\([0-9][0-9]*\)$/\1/p' "$out")
    if [ -z "$jid" ]; then fail "$out has no SLURM job id: $(tr '\n' ' ' <"$out")"; continue; fi
    grep -qx "host=$HOST" "$out" || fail "$out: unexpected host line: $(grep '^host=' "$out")"
    [ -z "${SEEN[$jid]:-}" ] || fail "job id $jid used by two samples"
    SEEN[$jid]=1
    JOBIDS+=("$jid")
    grep -q "ran $s in SLURM job $jid on $HOST" "$TOY/logs/on_slurm/$s.log" 2>/dev/null ||
        fail "log logs/on_slurm/$s.log does not mention SLURM job $jid"

    # slurmctld's completion record (JobCompType=jobcomp/filetxt)
    rec=$(grep -E "^JobId=$jid " "$SLURM_TEST_JOBCOMP" || true)
    if [ -z "$rec" ]; then
        fail "no jobcomp record for SLURM job $jid"
    else
        [[ $rec == *" JobState=COMPLETED "* ]] || fail "job $jid not COMPLETED in jobcomp: $rec"
        [[ $rec == *" Name=$RUN_ID "* ]] || fail "job $jid name is not the run id $RUN_ID: $rec"
        [[ $rec == *" WorkDir=$TOY "* ]] || fail "job $jid ran outside $TOY: $rec"
        [[ $rec == *" ExitCode=0:0 "* ]] || fail "job $jid exit code not 0:0: $rec"
    fi
    # slurmctld's live view (kept for MinJobAge after completion)
    sc=$(scontrol show job "$jid" 2>&1 || true)
    [[ $sc == *"JobState=COMPLETED"* ]] || fail "scontrol: job $jid not COMPLETED: $(echo "$sc" | head -n 3)"
done
[ "${#JOBIDS[@]}" = "${#SAMPLES[@]}" ] || fail "expected ${#SAMPLES[@]} SLURM job ids, got ${#JOBIDS[@]}"

# Exactly the non-local jobs went through SLURM for this run.
nrec=$(grep -c " Name=$RUN_ID " "$SLURM_TEST_JOBCOMP" || true)
[ "$nrec" = "${#SAMPLES[@]}" ] || fail "expected ${#SAMPLES[@]} jobcomp records for run $RUN_ID, found $nrec"

# The localrule ran in the main process, not in a SLURM job.
if [ -s "$TOY/results/summary.txt" ]; then
    grep -qx 'summary_job=local' "$TOY/results/summary.txt" ||
        fail "localrule summary ran inside a SLURM job: $(head -n1 "$TOY/results/summary.txt")"
    for jid in "${JOBIDS[@]}"; do
        grep -qx "slurm_job_id=$jid" "$TOY/results/summary.txt" || fail "summary lacks job $jid"
    done
else
    fail "missing results/summary.txt"
fi
phase_end verify

say "SLURM job ids: ${JOBIDS[*]:-none} (run id ${RUN_ID:-?})"
say "jobcomp records:"
grep " Name=${RUN_ID:-none} " "$SLURM_TEST_JOBCOMP" | cut -c1-200 | sed 's/^/    /' || true

bash "$CLUSTER" stop "$CDIR" >/dev/null 2>&1 || true
phase_end stop_cluster
say "timing: ${TIMES[*]} total=$(secs "$T0" "$(now)")s"

if [ "$FAILURES" -gt 0 ]; then
    echo "slurm-toy: 0 passed, 1 failed"
    exit 1
fi
echo "slurm-toy: 1 passed, 0 failed"
