#!/usr/bin/env bash
# A real single-node SLURM cluster on localhost (munge + slurmctld + slurmd), for tests and demos.
#
#   tools/slurm_local.sh start    install (apt, root) if missing, write config, start daemons, wait for idle
#   tools/slurm_local.sh stop [PIDFILE]
#                                 SIGTERM exactly the daemons this script started (by recorded PID), or only
#                                 those listed in PIDFILE (see REGMIX_SLURM_STARTED_FILE)
#   tools/slurm_local.sh status   show daemons and `sinfo`; exit 0 if the cluster answers, 1 if not
#   tools/slurm_local.sh env      print `export SLURM_CONF=...` (clients need it: eval "$(tools/slurm_local.sh env)")
#
# Idempotent: `start` on a running cluster does nothing; `stop` leaves alone daemons it did not start.
# With REGMIX_SLURM_STARTED_FILE=FILE, `start` also appends "name pid" of each daemon it starts to FILE, so a
# caller (the test suite) can later `stop FILE` exactly what its own `start` started.
# State (config, spool, logs, PID records) lives in $REGMIX_SLURM_STATE (default /var/tmp/regmix-slurm; not under
# /root: munged refuses state dirs it cannot reach). Debian 12's slurm-wlm 22.05 without systemd or cgroups:
# proctrack/linuxproc, task/none, no accounting (facts in ../shared/notes/slurm-local.md).
#
# Exit codes: 0 ok, 1 not running (status) or failed to start, 3 slurm/munge missing and cannot be installed.
set -euo pipefail

STATE="${REGMIX_SLURM_STATE:-/var/tmp/regmix-slurm}"
CONF="$STATE/slurm.conf"
PIDS="$STATE/started.pids"          # "name pid" per daemon this script started
WAIT_S="${REGMIX_SLURM_WAIT_S:-60}" # bound on waiting for the node to become idle
CTLD_PORT="${REGMIX_SLURM_CTLD_PORT:-6817}"
SLURMD_PORT="${REGMIX_SLURM_SLURMD_PORT:-6818}"
NODE="$(hostname -s)"

log() { echo "slurm_local: $*" >&2; }
die() { log "error: $*"; exit "${2:-1}"; }

have_slurm() { command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
               && command -v munged >/dev/null; }

install_slurm() {
    have_slurm && return 0
    if [[ $(id -u) -ne 0 ]]; then
        die "slurmctld/slurmd/munged are not installed and installing them needs root: run as root, or
  apt-get install slurmctld slurmd slurm-client munge" 3
    fi
    command -v apt-get >/dev/null || die "slurm is not installed and apt-get is not available (Debian/Ubuntu only)" 3
    log "installing slurmctld slurmd slurm-client munge with apt-get"
    local pkgs=(slurmctld slurmd slurm-client munge)
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${pkgs[@]}" >"$STATE/apt.log" 2>&1; then
        log "apt-get install failed; running apt-get update and retrying"
        apt-get update -q >>"$STATE/apt.log" 2>&1 || true
        apt-get install -y -q --no-install-recommends "${pkgs[@]}" >>"$STATE/apt.log" 2>&1 \
            || die "apt-get install ${pkgs[*]} failed; see $STATE/apt.log" 3
    fi
    have_slurm || die "installed packages but slurmctld/slurmd/munged are still missing; see $STATE/apt.log" 3
}

alive() {  # alive NAME PID: the PID exists and runs NAME
    local name=$1 pid=$2
    [[ -n "$pid" && -r /proc/$pid/comm ]] && [[ "$(cat /proc/$pid/comm 2>/dev/null)" == "$name" ]]
}

record() {
    echo "$1 $2" >>"$PIDS"
    if [[ -n "${REGMIX_SLURM_STARTED_FILE:-}" ]]; then echo "$1 $2" >>"$REGMIX_SLURM_STARTED_FILE"; fi
}

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    if munge_works; then
        log "munged already running (not started by this script)"
        return 0
    fi
    local key=/etc/munge/munge.key
    if [[ ! -s $key ]]; then
        log "creating munge key $key"
        mkdir -p /etc/munge
        if command -v mungekey >/dev/null; then mungekey --create --keyfile="$key" --force
        else dd if=/dev/urandom of="$key" bs=1 count=1024 status=none; fi
    fi
    chown munge:munge "$key" /etc/munge && chmod 0600 "$key" && chmod 0700 /etc/munge
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    chmod 0755 /run/munge
    runuser -u munge -- munged --force
    local i pid=""
    for i in $(seq 1 50); do
        pid=$(cat /run/munge/munged.pid 2>/dev/null || true)
        munge_works && [[ -n "$pid" ]] && break
        sleep 0.1
    done
    munge_works || die "munged did not start; see /var/log/munge/munged.log"
    record munged "$pid"
    log "started munged (pid $pid)"
}

write_conf() {
    local cpus mem_mb
    cpus=$(nproc)
    # a bit under free memory, so --mem requests that fit the machine are accepted
    mem_mb=$(awk '/MemAvailable/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    mkdir -p "$STATE/ctld" "$STATE/d"
    local tmp="$CONF.tmp.$$"
    cat >"$tmp" <<EOF
# Written by tools/slurm_local.sh: a single-node cluster on localhost (no systemd, no cgroups, no accounting).
ClusterName=regmix-local
SlurmctldHost=${NODE}(127.0.0.1)
SlurmctldPort=${CTLD_PORT}
SlurmdPort=${SLURMD_PORT}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=${STATE}/ctld
SlurmdSpoolDir=${STATE}/d
SlurmctldPidFile=${STATE}/slurmctld.pid
SlurmdPidFile=${STATE}/slurmd.pid
SlurmctldLogFile=${STATE}/slurmctld.log
SlurmdLogFile=${STATE}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
MaxArraySize=100001
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$tmp" "$CONF"
}

cluster_answers() { SLURM_CONF="$CONF" timeout 10 sinfo -h >/dev/null 2>&1; }

node_state() { SLURM_CONF="$CONF" timeout 10 sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -1 || true; }

start_daemon() {  # start_daemon NAME PIDFILE
    local name=$1 pidfile=$2 pid=""
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if alive "$name" "$pid"; then
        log "$name already running (pid $pid)"
        return 0
    fi
    rm -f "$pidfile"
    SLURM_CONF="$CONF" "$name"
    local i
    for i in $(seq 1 100); do
        pid=$(cat "$pidfile" 2>/dev/null || true)
        alive "$name" "$pid" && break
        sleep 0.1
    done
    alive "$name" "$pid" || die "$name did not start; see $STATE/$name.log"
    record "$name" "$pid"
    log "started $name (pid $pid)"
}

cmd_start() {
    mkdir -p "$STATE"
    install_slurm
    start_munge
    if [[ ! -f "$CONF" ]] || ! alive slurmctld "$(cat "$STATE/slurmctld.pid" 2>/dev/null || true)"; then
        write_conf
    fi
    start_daemon slurmctld "$STATE/slurmctld.pid"
    start_daemon slurmd "$STATE/slurmd.pid"
    local deadline=$((SECONDS + WAIT_S)) st=""
    while ((SECONDS < deadline)); do
        st=$(node_state)
        case "$st" in
            idle*|mix*|alloc*) break ;;
            down*|drain*|drng*) SLURM_CONF="$CONF" scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
        esac
        sleep 0.3
    done
    case "$st" in
        idle*|mix*|alloc*) log "node $NODE is $st; clients need: export SLURM_CONF=$CONF" ;;
        *) die "node $NODE not ready after ${WAIT_S}s (state '${st:-no answer}'); see $STATE/slurmctld.log, $STATE/slurmd.log" ;;
    esac
}

cmd_stop() {
    local list="${1:-$PIDS}"
    [[ -f "$list" ]] || { log "nothing to stop (no $list)"; return 0; }
    local name pid
    # reverse start order: slurmd, slurmctld, munged
    while read -r name pid; do
        if alive "$name" "$pid"; then
            kill -TERM "$pid"
            local i
            for i in $(seq 1 100); do alive "$name" "$pid" || break; sleep 0.1; done
            if alive "$name" "$pid"; then log "$name (pid $pid) still running 10 s after SIGTERM"; else log "stopped $name (pid $pid)"; fi
        fi
    done < <(tac "$list")
    if [[ "$list" == "$PIDS" ]]; then
        rm -f "$PIDS"
    elif [[ -f "$PIDS" ]]; then  # forget the stopped daemons in the script's own record too
        grep -vxF -f "$list" "$PIDS" >"$PIDS.tmp" || true
        mv "$PIDS.tmp" "$PIDS"
    fi
}

cmd_status() {
    local name pidfile pid
    for name in slurmctld slurmd; do
        pid=$(cat "$STATE/$name.pid" 2>/dev/null || true)
        if alive "$name" "$pid"; then echo "$name: running (pid $pid)"; else echo "$name: not running"; fi
    done
    if munge_works; then echo "munged: running"; else echo "munged: not running"; fi
    if [[ -s "$PIDS" ]]; then echo "started by this script: $(tr "\n" " " <"$PIDS")"; fi
    if [[ -f "$CONF" ]] && cluster_answers; then
        SLURM_CONF="$CONF" sinfo
        echo "SLURM_CONF=$CONF"
        return 0
    fi
    return 1
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop "${2:-}" ;;
    status) cmd_status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
