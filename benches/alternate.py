#!/usr/bin/env python3
"""Whole-process wall time of `decode --stats` for builds run in turn.

    benches/alternate.py RUNS CAPTURE BUILD...

Runs each build's `decode --stats CAPTURE` once per round, RUNS rounds, so
that a busy spell of the machine falls on every build alike, and prints
each build's best and median wall time (from start to exit, output thrown
away). For before/after pairs of one change; `benches/compare_go.sh` is
the comparison with Go.
"""
import statistics
import subprocess
import sys
import time

runs, capture, builds = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
times = {build: [] for build in builds}
for _ in range(runs):
    for build in builds:
        started = time.perf_counter()
        subprocess.run([build, "decode", "--stats", capture], stdout=subprocess.DEVNULL, check=True)
        times[build].append((time.perf_counter() - started) * 1e3)
for build in builds:
    print(f"{build}: best {min(times[build]):.2f} ms, median {statistics.median(times[build]):.2f} ms")
