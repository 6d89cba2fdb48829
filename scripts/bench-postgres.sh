#!/usr/bin/env bash
# PostgreSQL figures, all in one run on one private PostgreSQL cluster:
#   - pgbench: a conditional UPDATE of one hot row (the database's ceiling for
#     a balance), 64 clients;
#   - reserve+release pairs per second (gateway_bench, 64 callers) and signed
#     1 KiB webhooks per second (ingest_bench, 64 connections), each on the
#     embedded store, on PostgreSQL with one replica, and with three.
# Needs a build (scripts/build.sh). SECONDS_PER_RUN (default 5) sets each run.
set -uo pipefail  # a run with errors still prints its figures
cd "$(dirname "$0")/.."
seconds=${SECONDS_PER_RUN:-5}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
dir=$(realpath -m build/bench-postgres)
scripts/postgres-test.sh start "$dir" >/dev/null
trap 'scripts/postgres-test.sh destroy "$dir" >/dev/null' EXIT
url=$(cat "$dir/url")
port=$(cat "$dir/port")
PGPASSWORD=$(cat "$dir/password")
export PGPASSWORD
schema_url() { echo "${url}?options=-csearch_path%3D$1"; }

"$bin/psql" -q "$url" <<'SQL'
CREATE SCHEMA g1; CREATE SCHEMA g3; CREATE SCHEMA i1; CREATE SCHEMA i3;
CREATE TABLE bench_pool (id INT PRIMARY KEY, capacity BIGINT NOT NULL, reserved BIGINT NOT NULL);
INSERT INTO bench_pool VALUES (1, 1000000, 500000);
SQL

echo "== pgbench: conditional UPDATE of one row, 64 clients, ${seconds}s"
"$bin/pgbench" -n -h 127.0.0.1 -p "$port" -U switchyard -c 64 -j 2 -T "$seconds" \
  -f tests/bench/pgbench_conditional_update.sql postgres 2>&1 |
  grep -E "^(tps|latency average|number of failed)" || true

pw="$dir/password"
echo "== reserve+release pairs, embedded store"
build/tests/gateway_bench --phases=health,reserve --seconds="$seconds" | tail -n +2
echo "== reserve+release pairs, PostgreSQL, 1 replica"
build/tests/gateway_bench --phases=health,reserve --seconds="$seconds" \
  --database_url="$(schema_url g1)" --database_password_file="$pw" | tail -n +2
echo "== reserve+release pairs, PostgreSQL, 3 replicas"
build/tests/gateway_bench --phases=health,reserve --seconds="$seconds" --replicas=3 \
  --database_url="$(schema_url g3)" --database_password_file="$pw" | tail -n +2
echo "== webhook ingest, embedded store"
build/tests/ingest_bench --seconds="$seconds" --ceiling_script=/nonexistent | sed -n 2,3p
echo "== webhook ingest, PostgreSQL, 1 replica"
build/tests/ingest_bench --seconds="$seconds" --ceiling_script=/nonexistent \
  --database_url="$(schema_url i1)" --database_password_file="$pw" | sed -n 2,3p
echo "== webhook ingest, PostgreSQL, 3 replicas"
build/tests/ingest_bench --seconds="$seconds" --ceiling_script=/nonexistent --replicas=3 \
  --database_url="$(schema_url i3)" --database_password_file="$pw" | sed -n 2,3p
