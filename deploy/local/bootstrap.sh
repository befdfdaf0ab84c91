#!/usr/bin/env bash
# Create .venv with tracepipe and its test tools; re-run pip only when pyproject.toml changed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
stamp="$venv/.tracepipe-installed"
want=$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing tracepipe and its dependencies into .venv" >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  # setuptools warns on every editable install that a folder named like the package could
  # shadow it: not news here (streams/ is the package), and it would land on the demo's screen.
  PYTHONWARNINGS="ignore:Editable installation" \
    "$venv/bin/python" -m pip install --quiet -e "$root[test]"
  echo "$want" > "$stamp"
fi
