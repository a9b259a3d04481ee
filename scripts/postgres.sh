#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the tests, in a temporary directory, run as the `postgres` user.
#
#   scripts/postgres.sh start DIR   initdb, TLS on (a CA and server certificate made here), listen on
#                                   127.0.0.1 at a free port; prints `export` lines for the tests:
#                                   CADUCEUS_TEST_POSTGRES (a superuser URL with a password) and
#                                   CADUCEUS_TEST_POSTGRES_CA (the CA that signed the server's certificate)
#   scripts/postgres.sh stop DIR    stops it and removes DIR
set -euo pipefail

action=${1:?usage: postgres.sh start|stop DIR}
dir=${2:?usage: postgres.sh start|stop DIR}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "postgres.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "$action" in
start)
    mkdir -p "$dir"
    chmod 0755 "$dir"
    password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # TLS: a CA and a server certificate for 127.0.0.1 and localhost.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=caduceus test CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
        -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$dir/san.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -days 2 \
        -extfile "$dir/san.ext" -out "$dir/server.pem" 2>/dev/null
    printf '%s\n' "$password" > "$dir/password"
    if [ "$(id -u)" = 0 ]; then chown postgres "$dir" "$dir/server.key" "$dir/server.pem" "$dir/password"; fi
    chmod 0600 "$dir/server.key" "$dir/password"
    as_postgres "$bin/initdb" -D "$dir/data" -U caduceus --pwfile="$dir/password" --auth=scram-sha-256 \
        --locale=C.UTF-8 --encoding=UTF8 >"$dir/initdb.log"
    cat >> "$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
ssl = on
ssl_cert_file = '$dir/server.pem'
ssl_key_file = '$dir/server.key'
ssl_min_protocol_version = 'TLSv1.2'
max_connections = 300
fsync = on
CONF
    as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
    echo "export CADUCEUS_TEST_POSTGRES='postgres://caduceus:$password@127.0.0.1:$port/postgres'"
    echo "export CADUCEUS_TEST_POSTGRES_CA='$dir/ca.pem'"
    ;;
stop)
    if [ -d "$dir/data" ]; then as_postgres "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null || true; fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: postgres.sh start|stop DIR" >&2
    exit 2
    ;;
esac
