#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, everything it writes under STATE_DIR:
#
#   sudo bash cluster/local.sh start STATE_DIR     # munged, slurmctld, slurmd; waits until the node is idle
#   export SLURM_CONF=STATE_DIR/slurm.conf         # then sinfo, sbatch, srun, squeue, scancel use it
#   sudo bash cluster/local.sh stop STATE_DIR      # cancels its jobs and stops the three daemons
#
# Needs root and Debian's packages (apt-get install slurm-wlm munge). munged runs as the `munge`
# user, so STATE_DIR and the folders above it must be open to that user (e.g. a folder under /tmp).
# The node has 2 CPUs in partition `debug`; jobs run as the user who submits them.
set -euo pipefail

usage() { echo "usage: bash cluster/local.sh start|stop STATE_DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
action=$1
state=$(realpath -m "$2")
here=$(cd "$(dirname "$0")" && pwd)
export SLURM_CONF=$state/slurm.conf

fail() { echo "cluster/local.sh: $*" >&2; exit 1; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start() {
  [[ $(id -u) -eq 0 ]] || fail "must run as root (slurmctld and slurmd run as root here)"
  for program in munged slurmctld slurmd sinfo; do
    command -v "$program" >/dev/null || fail "$program not found: apt-get install slurm-wlm munge"
  done
  id munge >/dev/null 2>&1 || fail "no munge user: apt-get install munge"
  if [[ -e $state/slurmctld.pid ]] && kill -0 "$(cat "$state/slurmctld.pid")" 2>/dev/null; then
    fail "a cluster is already running in $state (stop it first)"
  fi
  mkdir -p "$state"/{munge,slurmctld,slurmd,log}
  chmod 755 "$state"
  runuser -u munge -- test -x "$state" \
    || fail "the munge user cannot enter $state: choose a folder whose parents it may enter (e.g. under /tmp)"

  # munge: a fresh key, and its socket, log and seed in its own folder
  chown munge:munge "$state/munge"
  chmod 755 "$state/munge"  # munged wants everyone able to reach its socket
  if [[ ! -s $state/munge/munge.key ]]; then
    dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none
  fi
  chown munge:munge "$state/munge/munge.key"
  chmod 400 "$state/munge/munge.key"
  runuser -u munge -- munged \
    --socket="$state/munge/munge.socket.2" --key-file="$state/munge/munge.key" \
    --pid-file="$state/munge/munged.pid" --log-file="$state/munge/munged.log" \
    --seed-file="$state/munge/munged.seed"

  local host
  host=$(hostname -s)
  sed -e "s|@HOST@|$host|g" -e "s|@STATE@|$state|g" \
    -e "s|@CTLD_PORT@|$(free_port)|g" -e "s|@SLURMD_PORT@|$(free_port)|g" \
    "$here/slurm.conf.in" >"$SLURM_CONF"
  : >"$state/plugstack.conf"  # no SPANK plugins (the system's /etc/slurm/plugstack.conf is not read)

  slurmctld -i  # -i: no state from an earlier start is needed
  slurmd -N "$host"
  for _ in $(seq 1 120); do
    if [[ $(sinfo -h -N -o %t 2>/dev/null) == idle ]]; then
      echo "cluster up: node $host idle in partition debug; export SLURM_CONF=$SLURM_CONF"
      return 0
    fi
    sleep 0.5
  done
  echo "--- slurmctld.log" >&2; tail -20 "$state/log/slurmctld.log" >&2 || true
  echo "--- slurmd.log" >&2; tail -20 "$state/log/slurmd.log" >&2 || true
  stop
  fail "the node did not become idle within 60 s (logs above, and in $state/log)"
}

stop_daemon() {  # the daemon whose pid is in file $1, SIGTERM then (after 10 s) SIGKILL
  local pid
  [[ -s $1 ]] || return 0
  pid=$(cat "$1")
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

stop() {
  [[ -e $SLURM_CONF ]] || fail "no cluster in $state (no slurm.conf)"
  if [[ -s $state/slurmctld.pid ]] && kill -0 "$(cat "$state/slurmctld.pid")" 2>/dev/null; then
    local jobs
    jobs=$(squeue -h -o %A 2>/dev/null || true)
    if [[ -n $jobs ]]; then
      # shellcheck disable=SC2086
      scancel --full $jobs 2>/dev/null || true
      for _ in $(seq 1 100); do  # slurmd stops their processes; wait until none is left
        [[ -z $(squeue -h -t running,completing -o %A 2>/dev/null) ]] && break
        sleep 0.2
      done
    fi
  fi
  stop_daemon "$state/slurmd.pid"
  stop_daemon "$state/slurmctld.pid"
  stop_daemon "$state/munge/munged.pid"
  echo "cluster in $state stopped"
}

case $action in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
