#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for testing the job-array workflow
# (scripts/slurm/reproduce.sbatch) without a cluster: Debian's slurm-wlm (slurmctld + slurmd) and
# munge, configured for localhost only, all state under one folder.
#
#   scripts/slurm/local-cluster.sh start   # installs slurm-wlm + munge when missing (root, apt),
#                                          # starts munged, slurmctld, slurmd; prints the env line
#   export SLURM_CONF=/tmp/neural-synergy-slurm/slurm.conf
#   sbatch ... / squeue / sinfo
#   scripts/slurm/local-cluster.sh stop    # stops the three daemons
#   scripts/slurm/local-cluster.sh status
#
# Environment: SLURM_LOCAL_DIR (default /tmp/neural-synergy-slurm) holds slurm.conf, logs, spool
# and state. Ports 16817/16818 (not Slurm's defaults, so a real slurmctld on this host is left
# alone). Not for a machine that is part of a real cluster: it starts its own controller.
set -euo pipefail

DIR="${SLURM_LOCAL_DIR:-/tmp/neural-synergy-slurm}"
CONF="$DIR/slurm.conf"
HOST="$(hostname -s)"

log() { echo "local-cluster: $*" >&2; }

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    && command -v munged >/dev/null; then
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    log "slurm-wlm and munge are missing; run as root (apt-get install slurm-wlm munge)"
    exit 1
  fi
  log "installing slurm-wlm and munge (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged already running"
    return 0
  fi
  if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then
      mungekey --create --force
    else
      dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  if id munge >/dev/null 2>&1 && command -v runuser >/dev/null; then
    runuser -u munge -- /usr/sbin/munged
  else
    /usr/sbin/munged --force
  fi
  mkdir -p "$DIR"
  touch "$DIR/.started-munge"
  for _ in $(seq 1 50); do
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "munged did not come up (see /var/log/munge/munged.log)"
  exit 1
}

write_conf() {
  mkdir -p "$DIR/state" "$DIR/spool"
  local cpus
  cpus="$(nproc)"
  cat >"$CONF" <<EOF
# written by scripts/slurm/local-cluster.sh: a one-node cluster on $HOST
ClusterName=nslocal
SlurmctldHost=$HOST
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=$HOST CPUs=$cpus State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
  # no cgroup.conf: Slurm 22.05 autodetects cgroup v1/v2 (linuxproc tracking uses none of it)
  rm -f "$DIR/cgroup.conf"
}

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  install_packages
  start_munge
  write_conf
  export SLURM_CONF="$CONF"
  if ! pid_alive "$DIR/slurmctld.pid"; then
    /usr/sbin/slurmctld -f "$CONF" -c   # -c: clean start, no state from an earlier cluster
  fi
  if ! pid_alive "$DIR/slurmd.pid"; then
    /usr/sbin/slurmd -f "$CONF"
  fi
  for _ in $(seq 1 100); do
    if sinfo -h -N -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; then
      log "cluster up: node $HOST ($(sinfo -h -N -o '%T %c' | head -1)), state in $DIR"
      echo "export SLURM_CONF=$CONF"
      return 0
    fi
    sleep 0.2
  done
  log "the node did not become idle; logs: $DIR/slurmctld.log $DIR/slurmd.log"
  sinfo -N -l >&2 || true
  tail -n 20 "$DIR/slurmctld.log" "$DIR/slurmd.log" >&2 || true
  exit 1
}

stop() {
  for d in slurmd slurmctld; do
    if pid_alive "$DIR/$d.pid"; then
      kill "$(cat "$DIR/$d.pid")" 2>/dev/null || true
    fi
  done
  for _ in $(seq 1 50); do
    pid_alive "$DIR/slurmd.pid" || pid_alive "$DIR/slurmctld.pid" || break
    sleep 0.1
  done
  # munged stays up only if something else started it before us
  if [ -s /run/munge/munged.pid ] && [ -e "$DIR/.started-munge" ]; then
    kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
    rm -f "$DIR/.started-munge"
  fi
  log "stopped"
}

status() {
  export SLURM_CONF="$CONF"
  for d in slurmctld slurmd; do
    if pid_alive "$DIR/$d.pid"; then echo "$d: running"; else echo "$d: stopped"; fi
  done
  sinfo -N 2>/dev/null || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
