#!/usr/bin/env bash
# Runs the whole Caduceus test suite on a fresh machine with the Swift toolchain.
#
# It checks formatting, builds with every warning an error (set in Package.swift), and runs all tests.
# Services that later suites need (PostgreSQL, Slurm, munge) are installed and started here, and stopped
# on exit, so that nothing has to be set up by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

# Tools the tests drive (curl checks that the API port answers nothing in plain HTTP; wrk drives the
# benchmarks' own test).
missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v slurmctld >/dev/null 2>&1 || missing+=(slurm-wlm)
command -v slurmrestd >/dev/null 2>&1 || missing+=(slurmrestd)
command -v munged >/dev/null 2>&1 || missing+=(munge)
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

echo "== format: swift format lint --strict"
swift format lint --strict --recursive Sources Tests

echo "== build (debug, with tests)"
swift build --build-tests

# A throw-away PostgreSQL cluster: the store tests run on it as well as on SQLite, and so does the
# control-plane suite (CADUCEUS_TEST_ENGINE=postgres). A one-node Slurm cluster with 8 fake GPUs (munged,
# slurmctld, slurmd, slurmrestd) for the Slurm tests. Both stopped and removed on exit, whatever happens.
scratch=$(mktemp -d /tmp/caduceus-test-services.XXXXXX)
chmod 0755 "$scratch" # the services run as their own users
stop_services() {
    scripts/slurm.sh stop "$scratch/slurm" || true
    scripts/postgres.sh stop "$scratch/postgres" || true
    rm -rf "$scratch"
}
trap stop_services EXIT
echo "== start PostgreSQL (throw-away cluster)"
scripts/postgres.sh start "$scratch/postgres" > "$scratch/postgres.env"
. "$scratch/postgres.env"
: "${CADUCEUS_TEST_POSTGRES:?the PostgreSQL cluster did not start}"
echo "== start Slurm (one node, 8 fake GPUs)"
scripts/slurm.sh start "$scratch/slurm" > "$scratch/slurm.env"
. "$scratch/slurm.env"
: "${CADUCEUS_TEST_SLURM_SOCKET:?the Slurm cluster did not start}"

echo "== test"
swift test --skip-build

echo "== test: control plane over PostgreSQL"
CADUCEUS_TEST_ENGINE=postgres swift test --skip-build --filter 'ControlPlaneTests|EmbeddedAgentTests'
