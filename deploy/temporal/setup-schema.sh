#!/bin/sh
# Temporal's persistence on PostgreSQL: create the two databases if missing, then bring their
# schemas up to the image's version. Idempotent (compose runs it on every `up`).
set -eu
tool() { temporal-sql-tool --plugin postgres12 --ep temporal-db -p 5432 -u temporal "$@"; }
for db in temporal temporal_visibility; do
  tool --db "$db" create 2>/dev/null || true   # exists already after the first run
done
tool --db temporal setup-schema -v 0.0 2>/dev/null || true
tool --db temporal update-schema -d /etc/temporal/schema/postgresql/v12/temporal/versioned
tool --db temporal_visibility setup-schema -v 0.0 2>/dev/null || true
tool --db temporal_visibility update-schema -d /etc/temporal/schema/postgresql/v12/visibility/versioned
echo "temporal schemas are up to date"
