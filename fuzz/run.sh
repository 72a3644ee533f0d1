#!/usr/bin/env bash
# Runs every cargo-fuzz target for N seconds each (default 60), on the stable toolchain.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# cargo-fuzz asks rustc for nightly-only flags (-Zsanitizer); RUSTC_BOOTSTRAP=1 lets the stable compiler accept them.
# Needs `cargo install cargo-fuzz`. The seed corpus is fuzz/corpus/<target>/seed-*; new inputs found are kept there
# too (git ignores them). Crashes land in fuzz/artifacts/<target>/ and make this script exit non-zero.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is not installed: run 'cargo install cargo-fuzz'" >&2; exit 2; }
for t in "${targets[@]}"; do
  echo "== fuzzing $t for ${seconds}s"
  mkdir -p "corpus/$t"
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048
done
