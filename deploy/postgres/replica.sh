#!/bin/sh
# The streaming replica's entrypoint (postgres image, as root): on first start copy the
# primary with pg_basebackup -R (which also writes the standby's connection settings), then
# run PostgreSQL as a hot standby. Later starts resume streaming from where it stopped.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
: "${PRIMARY_HOST:=postgres}"
if [ ! -s "${PGDATA}/PG_VERSION" ]; then
  install -d -o postgres -g postgres -m 700 "${PGDATA}"
  # PGPASSWORD (from the environment) is the primary's POSTGRES_PASSWORD.
  su-exec postgres pg_basebackup -h "${PRIMARY_HOST}" -U "${POSTGRES_USER}" \
    -D "${PGDATA}" -R -X stream --checkpoint=fast
fi
exec su-exec postgres postgres
