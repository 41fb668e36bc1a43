#!/usr/bin/env bash
# Decode throughput side by side: this crate against Go's encoding/gob (the
# Go reference peer's `decode --stats`), on the same synthetic capture.
#
#   benches/compare_go.sh [MEGABYTES]      (default 64; needs Go)
#
# Writes the capture in gob, gob behind snappy and native (same content),
# decodes each five times with each tool (only decoding is timed: Go's with
# the file already in memory, syncproto's as the time in its decoder while it
# reads the file), and prints the best runs and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
megabytes=${1:-64}
out=${TMPDIR:-/tmp}/syncproto-compare
mkdir -p "$out"

cargo build --release --quiet --example write_capture
cargo build --release --quiet -p syncproto-tokio --bin syncproto
interop/go/build.sh "$out/go" >/dev/null
target/release/examples/write_capture "$megabytes" "$out"

# best COMMAND...: the --stats line with the highest MB/s of five runs (the
# best run is the one least disturbed by the rest of the machine)
best() {
    for _ in 1 2 3 4 5; do "$@"; done |
        python3 -c 'import json,sys; print(max((json.loads(l) for l in sys.stdin), key=lambda s: s["mb_per_s"]))' |
        tr "'" '"'
}

go_gob=$(best "$out/go/go-peer-new" decode --stats "$out/capture.gob")
go_snappy=$(best "$out/go/go-peer-new" decode --stats --compressed-ok "$out/capture.gob-snappy")
rust_gob=$(best target/release/syncproto decode --stats "$out/capture.gob")
rust_snappy=$(best target/release/syncproto decode --stats "$out/capture.gob-snappy")
rust_native=$(best target/release/syncproto decode --stats "$out/capture.native")

python3 - "$go_gob" "$go_snappy" "$rust_gob" "$rust_snappy" "$rust_native" <<'PY'
import json, sys
go_gob, go_snappy, rust_gob, rust_snappy, rust_native = (json.loads(a.replace("True", "true").replace("False", "false")) for a in sys.argv[1:])
rows = [
    ("Go encoding/gob, gob", go_gob),
    ("Go encoding/gob, gob+snappy", go_snappy),
    ("syncproto, gob", rust_gob),
    ("syncproto, gob+snappy", rust_snappy),
    ("syncproto, native", rust_native),
]
print(f"{'decoder':32} {'bytes':>12} {'KVs':>10} {'MB/s':>9} {'KVs/s':>12}")
for name, s in rows:
    print(f"{name:32} {s['bytes']:>12} {s['kvs']:>10} {s['mb_per_s']:>9.1f} {s['kvs_per_s']:>12.0f}")
print()
print(f"gob:        syncproto / Go = {rust_gob['kvs_per_s'] / go_gob['kvs_per_s']:.2f}x (goal 3x)")
print(f"gob+snappy: syncproto / Go = {rust_snappy['kvs_per_s'] / go_snappy['kvs_per_s']:.2f}x")
print(f"native vs Go gob (same content, KVs/s) = {rust_native['kvs_per_s'] / go_gob['kvs_per_s']:.2f}x (goal 10x)")
PY
