#!/usr/bin/env bash
# A throw-away one-node Slurm cluster for the tests, in a temporary directory: munged, slurmctld, slurmd with
# 8 fake GPUs (one plain file each), and slurmrestd (openapi/v0.0.38) on a unix socket with local auth.
#
#   scripts/slurm.sh start DIR   starts everything; partition debug holds this host, partition mixed this host
#                                and `spare`, a node that never answers; prints `export` lines for the tests:
#                                SLURM_CONF, CADUCEUS_TEST_SLURM_SOCKET, CADUCEUS_TEST_SLURM_NODE,
#                                CADUCEUS_TEST_SLURM_DIR
#   scripts/slurm.sh stop DIR    stops everything and removes DIR
#   scripts/slurm.sh stop-rest DIR / start-rest DIR   stops or starts slurmrestd alone
# Needs root (slurmd runs jobs as their users) and Debian's slurm-wlm, slurmrestd and munge.
set -euo pipefail

action=${1:?usage: slurm.sh start|stop DIR}
dir=${2:?usage: slurm.sh start|stop DIR}
host=$(hostname -s)

stop_all() {
    kill -9 "$(cat "$dir/slurmrestd.pid" 2>/dev/null)" 2>/dev/null || true
    for name in slurmd slurmctld munged; do
        if [ -f "$dir/$name.pid" ]; then kill "$(cat "$dir/$name.pid")" 2>/dev/null || true; fi
    done
    sleep 1
    for name in slurmrestd slurmd slurmctld munged; do
        if [ -f "$dir/$name.pid" ]; then kill -9 "$(cat "$dir/$name.pid")" 2>/dev/null || true; fi
    done
}

start_rest() {
    SLURMRESTD_SECURITY=disable_user_check setsid /usr/sbin/slurmrestd -f "$dir/slurm.conf" -a rest_auth/local \
        -s openapi/v0.0.38 "unix:$dir/rest.sock" >>"$dir/log/rest.log" 2>&1 < /dev/null &
    echo $! > "$dir/slurmrestd.pid"
    for _ in $(seq 1 60); do [ -S "$dir/rest.sock" ] && return 0; sleep 0.2; done
    echo "slurm.sh: slurmrestd did not start" >&2
    cat "$dir/log/rest.log" >&2
    return 1
}

case "$action" in
stop-rest)
    # slurmrestd alone goes away (the tests of a Caduceus that loses it); start-rest brings it back.
    # slurmrestd lingers on SIGTERM while clients hold connections: SIGKILL, as a crash would.
    kill -9 "$(cat "$dir/slurmrestd.pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$(cat "$dir/slurmrestd.pid")" 2>/dev/null || break; sleep 0.1; done
    rm -f "$dir/rest.sock"
    ;;
start-rest)
    start_rest
    ;;
start)
    mkdir -p "$dir"/{state,spool,log,munge}
    chmod 0755 "$dir"
    # munge: a key and a daemon of our own, on a socket in DIR.
    chown munge:munge "$dir/munge" 2>/dev/null || true
    chmod 0700 "$dir/munge"
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1 count=1024 2>/dev/null
    chown munge:munge "$dir/munge/munge.key" 2>/dev/null || true
    chmod 0400 "$dir/munge/munge.key"
    runuser -u munge -- /usr/sbin/munged --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.sock" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/seed" \
        --force
    cp "$dir/munge/munged.pid" "$dir/munged.pid"
    chmod 0755 "$dir/munge"
    for i in 0 1 2 3 4 5 6 7; do touch "$dir/fakegpu$i"; done
    cat > "$dir/slurm.conf" <<CONF
ClusterName=caduceus
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/ctld.log
SlurmdLogFile=$dir/log/d.log
SlurmctldPort=$((20000 + RANDOM % 20000))
SlurmdPort=$((40000 + RANDOM % 20000))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
# Caduceus submits only jobs whose GPUs are free now: start each at once rather than batching starts.
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
ReturnToService=2
MpiDefault=none
JobRequeue=1
PreemptType=preempt/none
Prolog=$dir/hook.sh
Epilog=$dir/hook.sh
NodeName=$host CPUs=$(nproc) RealMemory=2000 Gres=gpu:h200:8 State=UNKNOWN
# A second node that never answers, so that a partition can hold a node of another tenant.
NodeName=spare NodeAddr=127.0.0.2 CPUs=1 RealMemory=100 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=mixed Nodes=$host,spare MaxTime=INFINITE State=UP
CONF
    printf 'NodeName=%s Name=gpu Type=h200 File=%s/fakegpu[0-7]\n' "$host" "$dir" > "$dir/gres.conf"
    # The prolog and epilog run DIR/hook.d/run when a test installs one (tests point it at their spool).
    printf '#!/bin/sh\n[ -x "%s/hook.d/run" ] && exec "%s/hook.d/run"\nexit 0\n' "$dir" "$dir" > "$dir/hook.sh"
    chmod 0755 "$dir/hook.sh"
    export SLURM_CONF="$dir/slurm.conf"
    /usr/sbin/slurmctld -c -f "$SLURM_CONF"
    /usr/sbin/slurmd -f "$SLURM_CONF"
    for _ in $(seq 1 60); do
        if sinfo -h -p debug -o '%T' 2>/dev/null | grep -qE 'idle|mixed|allocated'; then break; fi
        scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
        sleep 0.5
    done
    sinfo -h -p debug -o '%T' | grep -qE 'idle|mixed|allocated' || {
        echo "slurm.sh: the node did not come up" >&2
        sinfo >&2
        exit 1
    }
    start_rest
    echo "export SLURM_CONF='$dir/slurm.conf'"
    echo "export CADUCEUS_TEST_SLURM_SOCKET='$dir/rest.sock'"
    echo "export CADUCEUS_TEST_SLURM_NODE='$host'"
    echo "export CADUCEUS_TEST_SLURM_DIR='$dir'"
    ;;
stop)
    stop_all
    rm -rf "$dir"
    ;;
*)
    echo "usage: slurm.sh start|stop|stop-rest|start-rest DIR" >&2
    exit 2
    ;;
esac
