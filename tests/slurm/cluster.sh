#!/usr/bin/env bash
# Single-node throw-away SLURM cluster for tests (Debian slurm-wlm + munge).
#
#   cluster.sh install        install slurm-wlm + munge via apt if missing
#                             (exit 3 + one-line reason on stderr if impossible)
#   cluster.sh start DIR      write DIR/slurm.conf, start munged, slurmctld, slurmd
#                             (all state/logs/pids/sockets inside DIR), wait until
#                             the node is idle; writes DIR/env.sh for clients
#   cluster.sh stop DIR       scancel jobs still active (and wait for them), then
#                             TERM (then KILL) exactly the PIDs recorded in DIR/*.pid
#   cluster.sh status DIR     print sinfo/squeue for the cluster in DIR
#
# Nothing outside DIR is written by start/stop; the daemons are started in the
# foreground mode (-D / -F) as background children, so the PIDs we record are the
# daemons themselves, and stop never looks processes up by name.
set -euo pipefail

PROG=$(basename "$0")
START_TIMEOUT=${SLURM_TEST_START_TIMEOUT:-60}
STOP_TIMEOUT=${SLURM_TEST_STOP_TIMEOUT:-15}
DAEMONS=(slurmd slurmctld munged)   # stop order: reverse of start order

die() { echo "$PROG: $*" >&2; exit 1; }
log() { echo "[$PROG] $*" >&2; }

have_daemons() {
    command -v slurmctld >/dev/null 2>&1 &&
    command -v slurmd >/dev/null 2>&1 &&
    command -v munged >/dev/null 2>&1 &&
    command -v sbatch >/dev/null 2>&1 &&
    command -v squeue >/dev/null 2>&1
}

cmd_install() {
    if have_daemons; then
        log "slurm + munge already installed ($(slurmctld -V 2>/dev/null))"
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$PROG: cannot install SLURM: apt-get not found (not a Debian-like system)" >&2
        exit 3
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "$PROG: cannot install SLURM: apt-get needs root (uid=$(id -u))" >&2
        exit 3
    fi
    local aptlog
    aptlog=$(mktemp /tmp/slurm-apt.XXXXXX)
    log "installing slurm-wlm + munge with apt-get (log: $aptlog)"
    # slurm-wlm pulls slurmctld, slurmd, slurm-client (sbatch/squeue/sacct/...)
    # and slurm-wlm-basic-plugins; munge provides munged + mungekey.
    if ! DEBIAN_FRONTEND=noninteractive apt-get update >"$aptlog" 2>&1; then
        echo "$PROG: cannot install SLURM: apt-get update failed: $(tail -n1 "$aptlog")" >&2
        exit 3
    fi
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            slurm-wlm slurmctld slurmd slurm-client munge >>"$aptlog" 2>&1; then
        echo "$PROG: cannot install SLURM: apt-get install failed: $(tail -n1 "$aptlog")" >&2
        exit 3
    fi
    if ! have_daemons; then
        echo "$PROG: cannot install SLURM: packages installed but slurmctld/slurmd/munged/sbatch still missing" >&2
        exit 3
    fi
    log "installed $(slurmctld -V)"
}

# port_free PORT -> 0 if nothing listens on 127.0.0.1:PORT (bash /dev/tcp probe)
port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pick_ports: sets CTLD_PORT SLURMD_PORT (two consecutive free ports)
pick_ports() {
    local base
    base=$(( 20000 + (($$ * 7) % 20000) ))
    local i p
    for i in $(seq 0 200); do
        p=$(( base + 2 * i ))
        if port_free "$p" && port_free "$((p + 1))"; then
            CTLD_PORT=$p
            SLURMD_PORT=$((p + 1))
            return 0
        fi
    done
    die "no free port pair found"
}

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

dump_logs() {
    local dir=$1 f
    for f in "$dir"/log/*; do
        [ -f "$f" ] || continue
        echo "===== $f (last 60 lines) =====" >&2
        tail -n 60 "$f" >&2 || true
    done
}

# start_daemon NAME DIR CMD... : start CMD in background (own session),
# record its PID in DIR/NAME.pid
start_daemon() {
    local name=$1 dir=$2
    shift 2
    # setsid: own session, so a Ctrl-C / SIGINT to the caller's process group
    # does not hit the daemons; stop() handles them explicitly.
    # (In a non-interactive script the background child is not a group leader,
    # so setsid exec()s in place and $! is the daemon's own PID.)
    setsid "$@" </dev/null >"$dir/log/$name.stdout" 2>&1 &
    echo $! >"$dir/$name.pid"
    log "started $name pid=$(cat "$dir/$name.pid")"
}

# write_shims DIR: DIR/bin/{srun,sbatch,...} -> real binary with SLURM_CONF
# defaulted to DIR/slurm.conf.
# Why: inside a batch job, snakemake-executor-plugin-slurm-jobstep (0.6.1) runs
# the rule via a nested `srun`, after deleting every SLURM_* variable except the
# job-id ones -- SLURM_CONF included. A real cluster has /etc/slurm/slurm.conf
# (or configless /run/slurm/conf); this test cluster deliberately writes nothing
# outside DIR, so without the shim the nested srun dies with
#   "srun: fatal: Could not establish a configuration source".
# PATH survives (sbatch --export=ALL and the jobstep keep it), so a shim first
# on PATH restores the config location for nested client calls.
write_shims() {
    local dir=$1 tool real cleanpath
    mkdir -p "$dir/bin"
    cleanpath=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$dir/bin" | paste -sd: -)
    for tool in srun sbatch squeue scontrol sinfo scancel sacct; do
        real=$(PATH=$cleanpath command -v "$tool" 2>/dev/null || true)
        [ -n "$real" ] || continue
        cat >"$dir/bin/$tool" <<EOF
#!/bin/sh
# generated by tests/slurm/cluster.sh: default SLURM_CONF for the test cluster
: "\${SLURM_CONF:=$dir/slurm.conf}"
export SLURM_CONF
exec $real "\$@"
EOF
        chmod 0755 "$dir/bin/$tool"
    done
}

write_conf() {
    local dir=$1
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    # RealMemory in MB; leave ~10% + 256 MB headroom so slurmd never finds
    # less memory than configured (which would drain the node).
    mem=$(awk '/^MemTotal:/ {m=int($2/1024); m=int(m*0.9)-256; if (m<256) m=256; print m}' /proc/meminfo)
    pick_ports

    cat >"$dir/slurm.conf" <<EOF
# Generated by tests/slurm/cluster.sh for a throw-away single-node test cluster.
ClusterName=snaketest
SlurmctldHost=${host}(127.0.0.1)
SlurmctldPort=${CTLD_PORT}
SlurmdPort=${SLURMD_PORT}
# Everything runs as root in the test sandbox.
SlurmUser=root
SlurmdUser=root
# munged runs with a private socket inside DIR; both auth/munge and cred/munge
# read the socket path from AuthInfo (libmunge itself has no env override).
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${dir}/munge/munge.socket
# No cgroups: process tracking via /proc, no task binding/confinement.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SwitchType=switch/none
# No slurmdbd: no accounting database; job completions go to a text file.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=${dir}/jobcomp.log
# Keep finished jobs visible in squeue/scontrol for 1 h (the snakemake slurm
# plugin polls with 'squeue --states=all' when sacct has no database).
MinJobAge=3600
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# Node comes back by itself after a restart / unexpected reboot.
ReturnToService=2
# Short timeouts: a test cluster should fail fast.
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MailProg=/bin/true
# All state, spool, pids and logs inside DIR.
StateSaveLocation=${dir}/state
SlurmdSpoolDir=${dir}/spool/slurmd-%n
SlurmctldPidFile=${dir}/run/slurmctld.pid
SlurmdPidFile=${dir}/run/slurmd-%n.pid
SlurmctldLogFile=${dir}/log/slurmctld.log
SlurmdLogFile=${dir}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
TmpFS=${dir}/tmp
NodeName=${host} NodeAddr=127.0.0.1 NodeHostname=${host} CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

    write_shims "$dir"

    cat >"$dir/env.sh" <<EOF
# Source this to talk to the test cluster in ${dir}.
export SLURM_CONF=${dir}/slurm.conf
# Client shims that default SLURM_CONF (see write_shims in cluster.sh): needed
# because the snakemake slurm-jobstep plugin strips every SLURM_* variable,
# SLURM_CONF included, before its nested 'srun' inside the batch job.
case ":\$PATH:" in *":${dir}/bin:"*) ;; *) export PATH="${dir}/bin:\$PATH" ;; esac
# For the 'munge'/'unmunge' CLI tools only (they take --socket); SLURM itself
# uses AuthInfo=socket=... from slurm.conf.
export SLURM_TEST_MUNGE_SOCKET=${dir}/munge/munge.socket
export SLURM_TEST_JOBCOMP=${dir}/jobcomp.log
export SLURM_TEST_DIR=${dir}
EOF
}

cmd_start() {
    local dir=${1:-}
    [ -n "$dir" ] || die "usage: $PROG start DIR"
    have_daemons || die "slurm/munge not installed (run: $PROG install)"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd -P)
    local d
    for d in "${DAEMONS[@]}"; do
        if [ -f "$dir/$d.pid" ] && pid_alive "$(cat "$dir/$d.pid")"; then
            die "$d already running from $dir (pid $(cat "$dir/$d.pid")); run: $PROG stop $dir"
        fi
    done
    mkdir -p "$dir"/{state,spool,run,log,tmp,munge} "$dir/spool/slurmd-$(hostname -s)"
    # munged refuses group/world-writable key/socket/log dirs; the socket dir
    # needs o+x so that non-root clients could reach the socket.
    chmod 0711 "$dir/munge"
    chmod 0755 "$dir" "$dir/log" "$dir/run"
    : >"$dir/jobcomp.log"

    write_conf "$dir"
    export SLURM_CONF=$dir/slurm.conf

    # --- munge ---------------------------------------------------------------
    if [ ! -s "$dir/munge/munge.key" ]; then
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --keyfile="$dir/munge/munge.key" --force >/dev/null 2>&1 ||
                dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
        else
            dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
        fi
    fi
    chmod 0600 "$dir/munge/munge.key"
    # -F: foreground (we background it ourselves and own the PID);
    # --force: allow running as root / tolerate sandbox quirks.
    start_daemon munged "$dir" munged -F --force \
        --socket="$dir/munge/munge.socket" \
        --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/munge/munged.pid" \
        --seed-file="$dir/munge/munged.seed" \
        --log-file="$dir/log/munged.log"
    local t=0
    until [ -S "$dir/munge/munge.socket" ]; do
        if ! pid_alive "$(cat "$dir/munged.pid")" || [ $t -ge 100 ]; then
            log "munged did not come up"
            dump_logs "$dir"
            cmd_stop "$dir" || true
            exit 1
        fi
        sleep 0.1
        t=$((t + 1))
    done

    # --- slurmctld / slurmd -------------------------------------------------
    # -D: foreground (we own the PID); -i: ignore stale state in StateSaveLocation
    # (always fresh here anyway); -f: our config.
    start_daemon slurmctld "$dir" slurmctld -D -i -f "$dir/slurm.conf"
    start_daemon slurmd "$dir" slurmd -D -f "$dir/slurm.conf"

    # --- wait for the node to be idle ----------------------------------------
    local deadline state=""
    deadline=$(( $(date +%s) + START_TIMEOUT ))
    while :; do
        for d in "${DAEMONS[@]}"; do
            if ! pid_alive "$(cat "$dir/$d.pid")"; then
                log "$d (pid $(cat "$dir/$d.pid")) died during startup"
                dump_logs "$dir"
                cmd_stop "$dir" || true
                exit 1
            fi
        done
        state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n1 || true)
        case "$state" in
            idle) break ;;
        esac
        if [ "$(date +%s)" -ge "$deadline" ]; then
            log "node not idle after ${START_TIMEOUT}s (state='${state}')"
            sinfo -N -l >&2 2>&1 || true
            scontrol show node >&2 2>&1 || true
            dump_logs "$dir"
            cmd_stop "$dir" || true
            exit 1
        fi
        sleep 0.5
    done
    log "cluster up in $dir: $(sinfo -h -o '%P %a %D %T %N')  (source $dir/env.sh)"
}

# cancel_jobs DIR: scancel every job still queued/running on the cluster in DIR
# and wait until slurmd has killed them. Stopping slurmd alone would leave the
# job processes (slurmstepd and its children) running as orphans.
cancel_jobs() {
    local dir=$1 ids deadline
    [ -f "$dir/slurmctld.pid" ] && pid_alive "$(cat "$dir/slurmctld.pid")" || return 0
    [ -f "$dir/slurmd.pid" ] && pid_alive "$(cat "$dir/slurmd.pid")" || return 0
    local active=PENDING,RUNNING,SUSPENDED,COMPLETING,CONFIGURING
    ids=$(SLURM_CONF=$dir/slurm.conf squeue -h -t "$active" -o %i 2>/dev/null | tr '\n' ' ')
    [ -n "${ids// /}" ] || return 0
    log "cancelling jobs still active: $ids"
    # shellcheck disable=SC2086
    SLURM_CONF=$dir/slurm.conf scancel $ids 2>/dev/null || true
    deadline=$(( $(date +%s) + STOP_TIMEOUT + 10 ))  # KillWait=5 s in slurm.conf
    while [ -n "$(SLURM_CONF=$dir/slurm.conf squeue -h -t "$active" -o %i 2>/dev/null)" ]; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            log "jobs still active after scancel: $(SLURM_CONF=$dir/slurm.conf squeue -h -t "$active" -o '%i:%T' | tr '\n' ' ')"
            return 0
        fi
        sleep 0.5
    done
}

cmd_stop() {
    local dir=${1:-}
    [ -n "$dir" ] || die "usage: $PROG stop DIR"
    [ -d "$dir" ] || { log "no such dir $dir, nothing to stop"; return 0; }
    cancel_jobs "$dir"
    local d pid pids=()
    for d in "${DAEMONS[@]}"; do
        [ -f "$dir/$d.pid" ] || continue
        pid=$(cat "$dir/$d.pid")
        if pid_alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            log "sent TERM to $d pid=$pid"
        fi
    done
    local deadline alive
    deadline=$(( $(date +%s) + STOP_TIMEOUT ))
    while :; do
        alive=()
        for pid in ${pids[@]+"${pids[@]}"}; do
            pid_alive "$pid" && alive+=("$pid")
        done
        [ ${#alive[@]} -eq 0 ] && break
        if [ "$(date +%s)" -ge "$deadline" ]; then
            for pid in "${alive[@]}"; do
                log "pid $pid still alive after ${STOP_TIMEOUT}s, sending KILL"
                kill -KILL "$pid" 2>/dev/null || true
            done
            break
        fi
        sleep 0.2
    done
    for d in "${DAEMONS[@]}"; do
        rm -f "$dir/$d.pid"
    done
    return 0
}

cmd_status() {
    local dir=${1:-}
    [ -n "$dir" ] || die "usage: $PROG status DIR"
    export SLURM_CONF=$dir/slurm.conf
    sinfo
    squeue --states=all
}

main() {
    local sub=${1:-}
    shift || true
    case "$sub" in
        install) cmd_install "$@" ;;
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status "$@" ;;
        *) echo "usage: $PROG {install|start DIR|stop DIR|status DIR}" >&2; exit 2 ;;
    esac
}

main "$@"
