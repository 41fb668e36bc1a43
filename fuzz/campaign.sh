#!/usr/bin/env bash
# A fuzzing campaign: every target for SECONDS (default 420) with memory
# capped low, two at a time, then the corpora minimised. Prints, per target,
# executions, coverage, and when edge coverage (cov) and features (ft) last
# grew, in seconds since the target started: a plateau shows as growth that
# stopped well before the end.
#
#   fuzz/campaign.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-420}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
logs=$(mktemp -d)
cargo fuzz build -s none

run() {
    local target=$1
    mkdir -p "corpus/$target"
    # Stamp every line with the seconds since this target started, to see
    # when coverage last grew.
    SECONDS=0
    cargo fuzz run -s none "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=64 -malloc_limit_mb=64 \
        -print_final_stats=1 2>&1 |
        while IFS= read -r line; do printf '%s %s\n' "$SECONDS" "$line"; done >"$logs/$target.log"
}

for ((i = 0; i < ${#targets[@]}; i += 2)); do
    run "${targets[i]}" &
    if [ $((i + 1)) -lt ${#targets[@]} ]; then run "${targets[i + 1]}" & fi
    wait
done

printf '%-16s %12s %8s %8s %10s %10s %10s\n' target executions cov ft corpus "cov grew" "ft grew"
failed=0
for target in "${targets[@]}"; do
    log="$logs/$target.log"
    if grep -aqE 'ERROR|panicked|deadly signal|out-of-memory|malloc limit' "$log"; then
        echo "$target: FAILED, see $log" >&2
        grep -aE 'ERROR|panicked|SUMMARY|Test unit' "$log" >&2 || true
        failed=1
        continue
    fi
    # libFuzzer separates its status words with tabs; a missing line is a blank
    # column, not a failed script.
    execs=$(grep -aoE 'stat::number_of_executed_units: [0-9]+' "$log" | grep -oE '[0-9]+$' || true)
    done_line=$(grep -aE '[[:space:]]DONE[[:space:]]' "$log" | tail -1 || true)
    cov=$(grep -oE 'cov: [0-9]+' <<<"$done_line" | grep -oE '[0-9]+' || true)
    ft=$(grep -oE 'ft: [0-9]+' <<<"$done_line" | grep -oE '[0-9]+' || true)
    corpus=$(grep -oE 'corp: [0-9]+' <<<"$done_line" | grep -oE '[0-9]+' || true)
    # When edge coverage (cov) last grew, and when any new feature (ft, which
    # keeps creeping up with rare counts long after cov is flat) was found.
    cov_grew=$(awk '{ for (i = 1; i < NF; i++) if ($i == "cov:" && $(i + 1) + 0 > best) { best = $(i + 1) + 0; at = $1 } }
        END { print at + 0 }' "$log")
    last_new=$(grep -aE '[[:space:]]NEW[[:space:]]' "$log" | tail -1 | cut -d' ' -f1 || true)
    printf '%-16s %12s %8s %8s %10s %9ss %9ss of %ss\n' "$target" "$execs" "$cov" "$ft" "$corpus" \
        "$cov_grew" "${last_new:-0}" "$seconds"
done
for target in "${targets[@]}"; do
    cargo fuzz cmin -s none "$target" "corpus/$target" >/dev/null 2>&1 || true
done
echo "corpora minimised; logs in $logs"
exit "$failed"
