#!/bin/sh
# First start: initialise $PGDATA with POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, as the official image
# does (socket connections are trusted, TCP ones need the password). Every start: run Postgres on all interfaces.
set -eu

: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"

if [ "${1:-postgres}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "error: POSTGRES_PASSWORD is not set; it is the superuser's password" >&2
        exit 1
    fi
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    # Set up over the socket only, so nobody can connect over TCP before the database exists.
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
    if [ "$POSTGRES_DB" != postgres ]; then
        # psql interpolates :"db" (quoted as an identifier) only in what it reads, not in -c.
        echo 'CREATE DATABASE :"db";' | psql -v ON_ERROR_STOP=1 --username="$POSTGRES_USER" --dbname=postgres \
            --set=db="$POSTGRES_DB" >/dev/null
    fi
    pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
    echo "initialised $PGDATA for user $POSTGRES_USER, database $POSTGRES_DB"
fi

if [ "${1:-postgres}" = postgres ]; then
    shift $(( $# > 0 ? 1 : 0 ))
    exec postgres -c listen_addresses='*' "$@"
fi
exec "$@"
