#!/usr/bin/env bash
# Decode throughput side by side: this crate against Go's encoding/gob (the
# Go reference peer's `decode --stats`), on the same synthetic capture.
#
#   benches/compare_go.sh [MEGABYTES]      (default 64; needs Go)
#
# Writes the capture in gob, gob behind snappy and native (same content),
# decodes each RUNS times (default 5) with each tool, and prints the best
# runs and the ratios, two ways:
#
# - decoder: the `--stats` line's own figure, only decoding timed (Go's with
#   the file already in memory, syncproto's as the time in its decoder while
#   it reads the file);
# - whole process: KVs over the wall time of the whole process, from start
#   to exit (reading the file, decoding, exiting), what a user waits for.
#
# The whole process's ratio is given twice: best run against best run, and
# round by round (each round runs every command once, in turn), as the
# median of the rounds' ratios with the middle half of them. On a shared VM
# whose speed drifts over tens of seconds, each tool's best run may come
# from a different spell; the round-by-round ratio compares runs made under
# a second apart, and its spread shows how far one figure can be trusted.
#
# SYNCPROTO=path/to/syncproto compares another build of the tool (e.g. a
# copy of an older one) against the same Go runs. BASELINE=path/to/syncproto
# adds a second build's rows ("baseline, ...") to the same interleaved runs,
# for a before/after on the same machine state.
set -euo pipefail
cd "$(dirname "$0")/.."
megabytes=${1:-64}
runs=${RUNS:-5}
out=${TMPDIR:-/tmp}/syncproto-compare
mkdir -p "$out"

# Builds land in CARGO_TARGET_DIR when it is set (a shared target dir).
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --example write_capture
cargo build --release --quiet -p syncproto-tokio --bin syncproto
interop/go/build.sh "$out/go" >/dev/null
"$target/release/examples/write_capture" "$megabytes" "$out"
syncproto=${SYNCPROTO:-$target/release/syncproto}

python3 - "$runs" "$out" "$syncproto" "${BASELINE:-}" <<'PY'
import json, statistics, subprocess, sys, time

runs, out, syncproto, baseline = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
go = f"{out}/go/go-peer-new"
commands = [
    ("Go encoding/gob, gob", [go, "decode", "--stats", f"{out}/capture.gob"]),
    ("Go encoding/gob, gob+snappy", [go, "decode", "--stats", "--compressed-ok", f"{out}/capture.gob-snappy"]),
    ("syncproto, gob", [syncproto, "decode", "--stats", f"{out}/capture.gob"]),
    ("syncproto, gob+snappy", [syncproto, "decode", "--stats", f"{out}/capture.gob-snappy"]),
    ("syncproto, native", [syncproto, "decode", "--stats", f"{out}/capture.native"]),
]
if baseline:
    commands += [
        ("baseline, gob", [baseline, "decode", "--stats", f"{out}/capture.gob"]),
        ("baseline, gob+snappy", [baseline, "decode", "--stats", f"{out}/capture.gob-snappy"]),
        ("baseline, native", [baseline, "decode", "--stats", f"{out}/capture.native"]),
    ]

def run(command):
    started = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    return json.loads(done.stdout.strip().splitlines()[-1]), wall

# Interleaved (one run of each command, RUNS times) so that a busy spell
# of the machine falls on every command alike.
results = {name: [] for name, _ in commands}
for _ in range(runs):
    for name, command in commands:
        results[name].append(run(command))

best = {}
print(f"{'decoder':30} {'bytes':>11} {'KVs':>7} {'decoder MB/s':>13} {'decoder KVs/s':>14} {'wall ms':>8} {'process KVs/s':>14}")
for name, _ in commands:
    stats = max((s for s, _ in results[name]), key=lambda s: s["kvs_per_s"])
    wall = min(w for _, w in results[name])
    best[name] = (stats, wall)
    print(f"{name:30} {stats['bytes']:>11} {stats['kvs']:>7} {stats['mb_per_s']:>13.1f} {stats['kvs_per_s']:>14.0f} {wall * 1e3:>8.1f} {stats['kvs'] / wall:>14.0f}")

def ratio(ours, theirs):
    (s1, w1), (s2, w2) = best[ours], best[theirs]
    return s1["kvs_per_s"] / s2["kvs_per_s"], (s1["kvs"] / w1) / (s2["kvs"] / w2)

def paired(ours, theirs):
    # Whole process, round by round: the two runs of a round are under a
    # second apart, so a slow spell of the machine that lasts longer than
    # that (this VM's come and go over tens of seconds) falls on both.
    # KVs are the same on both sides, so the ratio of KVs/s is the inverse
    # ratio of wall times.
    ratios = sorted(
        (s1["kvs"] / w1) / (s2["kvs"] / w2)
        for (s1, w1), (s2, w2) in zip(results[ours], results[theirs])
    )
    if len(ratios) < 2:
        return ratios[0], ratios[0], ratios[0]
    q1, median, q3 = statistics.quantiles(ratios, n=4)
    return q1, median, q3

print(f"\nratios in KVs/s: best run against best run of {runs} (decoder only / whole process),")
print("and the whole process's ratio within each round (median, with the middle half of rounds):")
for tool in ["syncproto", "baseline"] if baseline else ["syncproto"]:
    for label, ours, theirs, goal in [
        ("gob", f"{tool}, gob", "Go encoding/gob, gob", "4x"),
        ("gob+snappy", f"{tool}, gob+snappy", "Go encoding/gob, gob+snappy", "-"),
        ("native vs Go's gob", f"{tool}, native", "Go encoding/gob, gob", "10x"),
    ]:
        decoder, process = ratio(ours, theirs)
        q1, median, q3 = paired(ours, theirs)
        print(
            f"{tool:9} {label:20} decoder {decoder:5.2f}x   whole process {process:5.2f}x   "
            f"per round {median:5.2f}x ({q1:.2f}-{q3:.2f})   (goal {goal})"
        )
PY
