#!/usr/bin/env bash
# bench/flip/run.sh — the 2-minute flip-under-load run of issue 7.
#
# Runs proxy's TestBB_FlipUnderLoad for FLIP_SECONDS (default 120): upstream
# publishes a new generation every second (packages added and removed,
# checksum-named repodata, the old repodata gone) while 50 clients, half on
# the raw view and half on the annotate view, loop repomd.xml → every listed
# file → one package, ten of them pausing 3s between repomd.xml and its
# files. The run passes with zero 404s and zero checksum mismatches; the
# test log gives the counts per view (sequences, files, packages, revisions
# seen, 404s, mismatches, other errors).
#
# The 20-second version runs in `go test ./proxy/` (DNFPROXY_FLIP_SECONDS
# unset).
#
# Knobs: FLIP_SECONDS (120), FLIP_RACE=1 adds -race.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${FLIP_SECONDS:-120}"
race=()
if [ "${FLIP_RACE:-0}" = 1 ]; then race=(-race); fi
DNFPROXY_FLIP_SECONDS="$secs" DNFPROXY_TEST_QUIET=1 \
	go test "${race[@]}" -count=1 -v -timeout "$((secs + 300))s" -run '^TestBB_FlipUnderLoad$' ./proxy/ |
	grep -E '^(=== RUN|--- |PASS|FAIL|ok)|flip_bb_test.go'
