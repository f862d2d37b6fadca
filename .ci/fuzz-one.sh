#!/usr/bin/env bash
# Run one fuzz target for a while: bash .ci/fuzz-one.sh PKG TARGET FUZZTIME [TAGS]
#
# Go 1.26's fuzz coordinator can fail a target with a bare "context
# deadline exceeded" when -fuzztime ends while a worker is mid-input on a
# loaded machine (golang/go#75804, fixed in Go 1.27): no input failed and
# none is written. Such a run is retried once; a target fails when it
# writes a failing input to PKG/testdata/fuzz/TARGET, or fails any other way.
set -uo pipefail
pkg=$1 fn=$2 fuzztime=$3 tags=${4:-}
corpus="$pkg/testdata/fuzz/$fn"
for attempt in 1 2; do
  before=$(ls "$corpus" 2>/dev/null | sort)
  out=$(go test -tags "$tags" -run '^$' -fuzz "^$fn\$" -fuzztime "$fuzztime" -fuzzminimizetime 2s "$pkg" 2>&1)
  rc=$?
  echo "$out"
  [[ $rc -eq 0 ]] && exit 0
  after=$(ls "$corpus" 2>/dev/null | sort)
  if [[ "$before" != "$after" ]] || ! grep -q 'context deadline exceeded' <<<"$out" || grep -q 'Failing input written' <<<"$out"; then
    echo "fuzz: $fn failed (a failing input, if one was found, is in $corpus: commit it as a seed)"
    exit 1
  fi
  echo "fuzz: $fn stopped on Go's fuzztime deadline race (golang/go#75804) with no failing input; attempt $attempt of 2"
done
exit 1
