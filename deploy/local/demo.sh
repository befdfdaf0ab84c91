#!/usr/bin/env bash
# The README's first command: install into .venv, then run the pipeline end to end on this machine.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bash "$root/deploy/local/bootstrap.sh"
cd "$root"
exec "$root/.venv/bin/tracepipe" demo "$@"
