#!/usr/bin/env bash
# The README's second command: install into .venv, then run the whole test suite.
# Integration tests use the broker named by TRACEPIPE_KAFKA_BOOTSTRAP, or start their own
# (Apache Kafka from Maven Central, KRaft, loopback). The native-protocol backend test needs
# Debian's clickhouse-server; it is installed here when missing and we are root.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bash "$root/deploy/local/bootstrap.sh"
if ! command -v clickhouse-server >/dev/null 2>&1 && [ ! -x /usr/bin/clickhouse ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "test: installing Debian's clickhouse-server for the native-backend test" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server) >/dev/null
  else
    echo "test: clickhouse-server is missing; run: sudo apt-get install -y clickhouse-server" >&2
    exit 1
  fi
fi
cd "$root"
exec "$root/.venv/bin/python" -m pytest "$@"
