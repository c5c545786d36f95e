#!/usr/bin/env bash
# Start a throwaway PostgreSQL for the test suite and print its DATABASE_URL on stdout.
#
#   export "$(bash .ci/postgres.sh)"    # prints DATABASE_URL=postgresql+asyncpg://...
#   bash .ci/postgres.sh stop           # stop it and delete the cluster
#
# Idempotent: installs PostgreSQL from Debian only if missing, initialises the cluster only once,
# starts it only if it is not running, creates the role and database only if absent. Works as
# root (the server then runs as `postgres`, because initdb/postgres refuse to run as root) and
# as an ordinary user (who must already have PostgreSQL installed).
# Everything but the final DATABASE_URL line goes to stderr so callers can capture stdout.
set -euo pipefail
# runuser lives in /usr/sbin, which CI images do not always put on PATH.
export PATH="$PATH:/usr/sbin:/sbin"

PGPORT="${KAMI_PG_PORT:-55432}"
# Not $TMPDIR: it may be private to root, and the server runs as postgres.
PGROOT="${KAMI_PG_DIR:-/tmp/kami-ci-postgres}"
DATA="$PGROOT/data"
LOG="$PGROOT/postgres.log"
DB_USER=kami
DB_PASSWORD=kami
DB_NAME=kami

say() { echo "postgres.sh: $*" >&2; }

find_bindir() {
  # Debian keeps the server binaries out of PATH, in /usr/lib/postgresql/<major>/bin.
  local candidate
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return 0
  fi
  for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$candidate/initdb" ] && [ -x "$candidate/pg_ctl" ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

if [ "$(id -u)" -eq 0 ]; then
  RUN_AS=postgres
  # From /: postgres may not enter the directory CI runs in (a root-owned temp dir).
  as_pg() { (cd / && runuser -u postgres -- "$@"); }
else
  RUN_AS="$(id -un)"
  as_pg() { "$@"; }
fi

BINDIR="$(find_bindir || true)"

if [ "${1:-}" = "stop" ]; then
  if [ -n "$BINDIR" ] && as_pg "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    as_pg "$BINDIR/pg_ctl" -D "$DATA" -m fast -w stop >&2
  fi
  rm -rf "$PGROOT"
  say "stopped and removed $PGROOT"
  exit 0
fi

if [ -z "$BINDIR" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "PostgreSQL is not installed and installing it needs root (apt-get install postgresql)"
    exit 1
  fi
  say "installing PostgreSQL from Debian packages"
  apt-get update -qq >&2
  # The package's post-install may start its own cluster on 5432; ours is separate and harmless.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  BINDIR="$(find_bindir)" || { say "postgresql installed but initdb not found"; exit 1; }
fi

# The cluster directory must belong to the server's user; /tmp itself is fine as a parent.
if [ "$(id -u)" -eq 0 ]; then
  install -d -o postgres -g postgres -m 700 "$PGROOT"
else
  install -d -m 700 "$PGROOT"
fi

if [ ! -f "$DATA/PG_VERSION" ]; then
  say "initialising a cluster in $DATA (as $RUN_AS)"
  # Local socket connections are trusted so this script can administer the cluster without a
  # password; TCP connections (what the tests use) need the password. C.UTF-8 exists on every
  # Debian, unlike other locales on a minimal image.
  as_pg "$BINDIR/initdb" -D "$DATA" -U postgres --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >"$PGROOT/initdb.log" 2>&1 || {
    cat "$PGROOT/initdb.log" >&2
    exit 1
  }
fi

if as_pg "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
  say "already running on port $PGPORT"
else
  say "starting on 127.0.0.1:$PGPORT (log: $LOG)"
  # fsync/synchronous_commit/full_page_writes off: a throwaway test cluster trades durability
  # for speed; max_connections up because each test session may open several engines.
  as_pg "$BINDIR/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start -o "\
 -c listen_addresses=127.0.0.1 -c port=$PGPORT -c unix_socket_directories=$PGROOT\
 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >&2 || {
    say "PostgreSQL failed to start; last lines of $LOG:"
    tail -n 30 "$LOG" >&2 || true
    exit 1
  }
fi

psql_admin() {
  as_pg "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGROOT" -p "$PGPORT" -U postgres -d postgres "$@"
}

if [ "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" != "1" ]; then
  say "creating role $DB_USER"
  # CREATEDB: the test harness gives each test session its own database.
  psql_admin -c "CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD'"
fi
if [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != "1" ]; then
  say "creating database $DB_NAME"
  psql_admin -c "CREATE DATABASE $DB_NAME OWNER $DB_USER"
fi

echo "DATABASE_URL=postgresql+asyncpg://$DB_USER:$DB_PASSWORD@127.0.0.1:$PGPORT/$DB_NAME"
