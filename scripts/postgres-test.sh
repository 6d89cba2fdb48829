#!/usr/bin/env bash
# The PostgreSQL server of the test suite: a private cluster listening on a
# free loopback port with password (SCRAM) authentication.
#
#   scripts/postgres-test.sh start DIR   new cluster; writes DIR/url, DIR/password
#   scripts/postgres-test.sh stop DIR    fast shutdown (data kept)
#   scripts/postgres-test.sh resume DIR  starts the kept cluster on its port again
#   scripts/postgres-test.sh destroy DIR stops it and removes its files
#
# PostgreSQL refuses to run as root; as root the cluster runs as the
# `postgres` user that Debian's package creates. Its files live in a fresh
# directory under /tmp (named in DIR/cluster), which that user can reach
# wherever DIR is.
set -euo pipefail
cmd=${1:?usage: postgres-test.sh start|stop|resume|destroy DIR}
dir=$(realpath -m "${2:?DIR missing}")
bin=$( (ls -d /usr/lib/postgresql/*/bin 2>/dev/null || true) | sort -V | tail -1)
if [ -z "$bin" ]; then
  echo "postgres-test: PostgreSQL is not installed (scripts/bootstrap.sh installs it)" >&2
  exit 1
fi

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cluster() { cat "$dir/cluster" 2>/dev/null || true; }

running() {
  local c
  c=$(cluster)
  [ -n "$c" ] && [ -d "$c/data" ] && as_owner "$bin/pg_ctl" -D "$c/data" status >/dev/null 2>&1
}

start_server() {
  local c
  c=$(cluster)
  as_owner "$bin/pg_ctl" -D "$c/data" -l "$c/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $(cat "$dir/port") -k $c -c max_connections=300" \
    start >/dev/null
}

remove() {
  local c
  c=$(cluster)
  if running; then as_owner "$bin/pg_ctl" -D "$c/data" -m immediate stop >/dev/null; fi
  if [ -n "$c" ]; then rm -rf "$c"; fi
  rm -rf "$dir"
}

case "$cmd" in
  start)
    remove
    mkdir -p "$dir"
    c=$(mktemp -d /tmp/switchyard-pg.XXXXXX)
    chmod 755 "$c"
    echo "$c" >"$dir/cluster"
    echo "switchyard-test" >"$dir/password"
    cp "$dir/password" "$c/pwfile"
    if [ "$(id -u)" = 0 ]; then chown -R postgres "$c"; fi
    as_owner "$bin/initdb" -D "$c/data" -U switchyard --pwfile="$c/pwfile" \
      --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log"
    rm -f "$c/pwfile"
    # A free port below the ephemeral range, so that no outgoing connection
    # takes it while the server is stopped for a test (resume binds it
    # again); another one if the server cannot bind it after all.
    started=false
    for _ in 1 2 3 4 5; do
      python3 - >"$dir/port" <<'PY'
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for _ in range(200):
    port = random.randint(15000, max(15001, min(low, 32768) - 1))
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
PY
      if start_server; then
        started=true
        break
      fi
    done
    if [ "$started" = false ]; then
      echo "postgres-test: the server did not start; see $(cluster)/server.log" >&2
      exit 1
    fi
    echo "postgresql://switchyard@127.0.0.1:$(cat "$dir/port")/postgres" >"$dir/url"
    echo "postgres-test: $(cat "$dir/url") ($("$bin/postgres" --version))"
    ;;
  stop)
    if running; then as_owner "$bin/pg_ctl" -D "$(cluster)/data" -m fast -w stop >/dev/null; fi
    ;;
  resume)
    running || start_server
    ;;
  destroy)
    remove
    ;;
  *)
    echo "usage: postgres-test.sh start|stop|resume|destroy DIR" >&2
    exit 2
    ;;
esac
