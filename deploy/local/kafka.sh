#!/bin/sh
# Start, stop or query the local single-node Kafka broker (no Docker): a thin wrapper over
# `python -m streams kafka up|down|status`. Settings come from TRACEPIPE_LOCAL_KAFKA_* variables
# or the config file named by TRACEPIPE_CONFIG; PYTHON picks the interpreter (default python3).
set -eu

case "${1:-}" in
    up|down|status) ;;
    *)
        echo "usage: $0 up|down|status" >&2
        exit 2
        ;;
esac

exec "${PYTHON:-python3}" -m streams kafka "$@"
