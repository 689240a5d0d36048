#!/usr/bin/env bash
# The skew experiment of issue 3: p50/p99 of every balancing policy over ten backends of very
# different speeds ("spread": 1 ms to 1 s; "one_slow": 5-10 ms with one +200 ms), first in the
# deterministic simulation, then for real over loopback (ten tucano-demo processes behind an
# in-process tucano-lb proxy). See examples/skew.rs.
#
# Usage: bash benches/skew.sh [sim|real|both] [FLAGS...]     (from any directory; default both)
# FLAGS go to every mode run, e.g. --policies round_robin,peak_ewma --csv. The real run takes
# about 4 minutes with the default flags (2 s warm-up + 15 s per policy and case); pass
# --seconds N to change it. Honours CARGO_TARGET_DIR.
set -euo pipefail

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."

MODE=both
if [[ ${1:-} == sim || ${1:-} == real || ${1:-} == both ]]; then
  MODE=$1
  shift
fi

TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release --bin tucano-demo --example skew
SKEW="$TARGET_DIR/release/examples/skew"

if [[ $MODE == sim || $MODE == both ]]; then
  "$SKEW" sim "$@"
fi
if [[ $MODE == real || $MODE == both ]]; then
  "$SKEW" real --demo-bin "$TARGET_DIR/release/tucano-demo" "$@"
fi
