#!/bin/sh
# Keep one Locust worker joined to whichever master is running. A Locust worker exits when its master quits
# (at the end of every grid cell); this loop starts it again, and it waits for and joins the next cell's master.
#
#   scripts/locust_worker_loop.sh -f locustfiles/batch.py --master-host MASTER [--master-port 5557] [options]
#
# Arguments go to `locust --worker` as they are. Environment: LOCUST, the command that runs Locust (default
# `locust`); RESTART_DELAY_S, the pause before a restart (default 1). SIGTERM or SIGINT stops the worker and
# the loop. A worker that fails within QUICK_S seconds of starting MAX_QUICK_FAILURES times in a row (a wrong
# option or locustfile, which no restart mends) ends the loop with its exit status.
set -u

LOCUST=${LOCUST:-locust}
RESTART_DELAY_S=${RESTART_DELAY_S:-1}
QUICK_S=10
MAX_QUICK_FAILURES=5

child=""
stop() {
    trap - INT TERM
    if [ -n "$child" ]; then
        kill -TERM "$child" 2>/dev/null
        wait "$child" 2>/dev/null
    fi
    exit 0
}
trap stop INT TERM

quick_failures=0
while :; do
    started=$(date +%s)
    # In the background, so a signal reaches the trap at once rather than after the worker exits.
    # shellcheck disable=SC2086 # LOCUST may be a command with arguments, e.g. "python -m locust"
    $LOCUST --worker "$@" &
    child=$!
    wait "$child"
    rc=$?
    child=""
    if [ "$rc" -ne 0 ] && [ $(($(date +%s) - started)) -lt "$QUICK_S" ]; then
        quick_failures=$((quick_failures + 1))
        if [ "$quick_failures" -ge "$MAX_QUICK_FAILURES" ]; then
            echo "locust_worker_loop: the worker failed $quick_failures times within ${QUICK_S}s of starting" \
                "(last exit status $rc); check its options and locustfile" >&2
            exit "$rc"
        fi
    else
        quick_failures=0
    fi
    echo "locust_worker_loop: worker exited ($rc); restarting in ${RESTART_DELAY_S}s" >&2
    sleep "$RESTART_DELAY_S"
done
