#!/usr/bin/env bash
# `make test-stress`: the whole suite RUNS times in a row while BURNERS busy loops keep the
# cores saturated, as a loaded CI machine would. A test that fails here is timing-bound or
# synchronises on time instead of on the condition it means. Prints one summary line per run
# and exits non-zero if any run failed. The burners end with this script, whatever happens.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
RUNS=${RUNS:-3}
BURNERS=${BURNERS:-2}
LOG_DIR=${LOG_DIR:-$(mktemp -d -t skybroker-stress.XXXXXX)}
mkdir -p "$LOG_DIR"

burners=()
stop_burners() {
    for pid in "${burners[@]}"; do kill "$pid" 2>/dev/null; done
    wait "${burners[@]}" 2>/dev/null
}
trap stop_burners EXIT INT TERM
for _ in $(seq "$BURNERS"); do
    "$PYTHON" -c 'while True: pass' &
    burners+=("$!")
done

echo "stress: $RUNS runs with $BURNERS CPU burners; logs in $LOG_DIR"
failed=0
for run in $(seq "$RUNS"); do
    log="$LOG_DIR/run-$run.log"
    "$PYTHON" -m pytest -q -p no:cacheprovider "$@" >"$log" 2>&1
    code=$?
    [ "$code" -eq 0 ] || failed=1
    echo "run $run: $(tail -n 1 "$log")"
    grep -E '^(FAILED|ERROR) ' "$log" | sed 's/^/    /'
done
exit "$failed"
