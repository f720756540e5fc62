#!/bin/sh
# Run once by the postgres image when it creates the primary's data directory
# (/docker-entrypoint-initdb.d): the streaming replica connects as the database owner,
# with its password, for replication. A data directory made before this file was mounted
# needs the same line added by hand (then `docker compose restart postgres`).
set -eu
echo "host replication ${POSTGRES_USER} all scram-sha-256" >> "${PGDATA}/pg_hba.conf"
