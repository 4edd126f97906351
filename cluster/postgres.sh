#!/usr/bin/env bash
# A throwaway PostgreSQL server for an Optuna study, all of it under one folder:
#
#   bash cluster/postgres.sh start STATE_DIR [PORT]   # prints the storage URL (also in STATE_DIR/url)
#   bash cluster/postgres.sh stop STATE_DIR
#
# The server listens on 127.0.0.1:PORT (a free port when none is given) and on a unix socket in
# STATE_DIR, lets local connections in without a password (trust: for trying recipes on one machine,
# never for a shared one), and holds an empty database `optuna` owned by the role `postgres`.
# Run as root, the server runs as the `postgres` user (PostgreSQL refuses root); STATE_DIR must then be
# a folder that user can reach (under /tmp, say). Needs the server binaries: apt-get install -y postgresql.
# Exit status 3: no server binaries or no postgres user (nothing was started).
set -euo pipefail

usage() {
  echo "usage: bash cluster/postgres.sh start STATE_DIR [PORT] | stop STATE_DIR" >&2
  exit 2
}
[[ $# -ge 2 ]] || usage
action=$1
state=$(realpath -m "$2")
port=${3:-}
database=optuna
cd / # the server's user may not be allowed into the caller's folder

# The server binaries: PG_BIN, else Debian's newest /usr/lib/postgresql/<version>/bin, else the PATH.
bin_dir() {
  if [[ -n ${PG_BIN:-} ]]; then
    echo "$PG_BIN"
    return
  fi
  local newest
  newest=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [[ -n $newest ]]; then
    echo "$newest"
  elif command -v pg_ctl >/dev/null; then
    dirname "$(command -v pg_ctl)"
  fi
}
bin=$(bin_dir)
if [[ -z $bin || ! -x $bin/initdb || ! -x $bin/pg_ctl ]]; then
  echo "postgres.sh: the PostgreSQL server binaries (initdb, pg_ctl) are not installed:" \
    "apt-get install -y postgresql, or set PG_BIN to their folder" >&2
  exit 3
fi

# As root, run the server's commands as the postgres user; otherwise as oneself.
as_server_user() {
  if [[ $(id -u) -eq 0 ]]; then
    if ! id postgres >/dev/null 2>&1; then
      echo "postgres.sh: running as root, but there is no postgres user to run the server" >&2
      exit 3
    fi
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case $action in
start)
  if [[ -f $state/data/postmaster.pid ]] && as_server_user "$bin/pg_ctl" status -D "$state/data" >/dev/null; then
    echo "postgres.sh: a server already runs in $state (bash cluster/postgres.sh stop $state)" >&2
    exit 1
  fi
  if [[ -z $port ]]; then
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  fi
  mkdir -p "$state"
  if [[ $(id -u) -eq 0 ]]; then
    chown postgres: "$state"
    if ! runuser -u postgres -- test -w "$state"; then
      echo "postgres.sh: the postgres user cannot write $state (a parent folder is closed to it);" \
        "give a folder under /tmp" >&2
      exit 1
    fi
  fi
  if [[ ! -f $state/data/PG_VERSION ]]; then
    # --no-sync: a throwaway server, no need to wait for the disk
    as_server_user "$bin/initdb" -D "$state/data" -U postgres --auth=trust --encoding=UTF8 \
      --no-sync >"$state/initdb.log" 2>&1 || {
      cat "$state/initdb.log" >&2
      exit 1
    }
  fi
  # -w: returns once the server accepts connections (or fails after -t seconds)
  as_server_user "$bin/pg_ctl" start -D "$state/data" -l "$state/server.log" -w -t 60 \
    -o "-p $port -k $state -c listen_addresses=127.0.0.1" >/dev/null || {
    tail -n 20 "$state/server.log" >&2
    exit 1
  }
  as_server_user "$bin/psql" -h "$state" -p "$port" -U postgres -d postgres -Atq \
    -c "SELECT 1 FROM pg_database WHERE datname = '$database'" | grep -q 1 \
    || as_server_user "$bin/createdb" -h "$state" -p "$port" -U postgres "$database"
  echo "$port" >"$state/port"
  url="postgresql://postgres@127.0.0.1:$port/$database"
  echo "$url" >"$state/url"
  echo "$url"
  ;;
stop)
  if [[ -f $state/data/postmaster.pid ]]; then
    as_server_user "$bin/pg_ctl" stop -D "$state/data" -m fast -w -t 60 >/dev/null
  fi
  ;;
*)
  usage
  ;;
esac
