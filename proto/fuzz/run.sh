#!/usr/bin/env bash
# Runs the protocol fuzz targets with cargo-fuzz on the stable toolchain.
#   proto/fuzz/run.sh            short bounded run: 30 s per target (what CI runs)
#   proto/fuzz/run.sh 3600       one hour per target
#   proto/fuzz/run.sh 0          no time limit (stop with Ctrl-C)
# New corpus entries go to proto/fuzz/corpus/<target> (ignored by git); the checked-in
# seeds (valid frames from the golden vectors) are read too. A crash leaves its input in
# proto/fuzz/artifacts/<target>/ and fails this script.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-30}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in decode_frames decode_peer; do
  mkdir -p "corpus/$target"
  echo "==> fuzz $target (${secs}s; 0 = unbounded)"
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536
done
