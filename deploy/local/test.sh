#!/usr/bin/env bash
# The README's second command: install into .venv, then run the whole test suite.
# Integration tests use the broker named by TRACEPIPE_KAFKA_BOOTSTRAP, or start their own
# (Apache Kafka from Maven Central, KRaft, loopback). The native-protocol backend test needs
# Debian's clickhouse-server, the web view's browser test Debian's chromium and chromium-driver;
# they are installed here when missing and we are root.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bash "$root/deploy/local/bootstrap.sh"
# need WHY CHECK PACKAGE...: install Debian packages the suite needs when CHECK (a shell test)
# fails: as root here, else exit with the command that does it.
need() {
  local why=$1 check=$2
  shift 2
  if sh -c "$check" >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" = 0 ]; then
    echo "test: installing Debian's $* for $why" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@") >/dev/null
  else
    echo "test: $* missing ($why); run: sudo apt-get install -y $*" >&2
    exit 1
  fi
}
need "the native-backend test" "command -v clickhouse-server || [ -x /usr/bin/clickhouse ]" \
  clickhouse-server
# The web view's browser test drives headless Chromium through Debian's chromedriver.
need "the web view's browser test" "[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]" \
  chromium chromium-driver
cd "$root"
exec "$root/.venv/bin/python" -m pytest "$@"
