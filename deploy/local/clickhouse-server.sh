#!/usr/bin/env bash
# Start or stop a throwaway ClickHouse server on loopback, with its config, data and logs in
# one directory. For the native backend's integration tests: Debian's clickhouse-server
# package (18.16) is what installs here, and it cannot run the real DDL (no DateTime64, Map,
# TTL, codecs), so the tests use plain tables against it.
#
#   deploy/local/clickhouse-server.sh start [DIR]    # start, wait until it answers
#   deploy/local/clickhouse-server.sh stop [DIR]     # stop (SIGTERM, then SIGKILL after 30 s)
#   deploy/local/clickhouse-server.sh status [DIR]   # exit 0 if it answers
#
# DIR defaults to .tracepipe/clickhouse-server. Ports: CLICKHOUSE_TCP_PORT (native, 19000)
# and CLICKHOUSE_HTTP_PORT (18123). CLICKHOUSE_START_TIMEOUT_S (60) bounds the wait.
# Install on Debian: apt-get install -y clickhouse-server clickhouse-client
set -euo pipefail

action="${1:-}"
dir="${2:-.tracepipe/clickhouse-server}"
tcp_port="${CLICKHOUSE_TCP_PORT:-19000}"
http_port="${CLICKHOUSE_HTTP_PORT:-18123}"
timeout_s="${CLICKHOUSE_START_TIMEOUT_S:-60}"

die() { echo "clickhouse-server.sh: $*" >&2; exit 1; }

server_bin="$(command -v clickhouse-server || true)"
client_bin="$(command -v clickhouse-client || true)"
if [[ -z "$server_bin" && -x /usr/sbin/clickhouse-server ]]; then server_bin=/usr/sbin/clickhouse-server; fi

answers() {
  "$client_bin" --host 127.0.0.1 --port "$tcp_port" --query "SELECT 1" >/dev/null 2>&1
}

running_pid() {
  local pid
  [[ -f "$dir/server.pid" ]] || return 1
  pid="$(cat "$dir/server.pid")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

write_config() {
  mkdir -p "$dir/data" "$dir/tmp" "$dir/log" "$dir/user_files" "$dir/format_schemas"
  local abs
  abs="$(cd "$dir" && pwd)"
  cat >"$dir/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>$abs/log/server.log</log>
        <errorlog>$abs/log/server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$tcp_port</tcp_port>
    <http_port>$http_port</http_port>
    <max_connections>256</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$abs/data/</path>
    <tmp_path>$abs/tmp/</tmp_path>
    <user_files_path>$abs/user_files/</user_files_path>
    <format_schema_path>$abs/format_schemas/</format_schema_path>
    <users_config>$abs/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
</yandex>
EOF
  cat >"$dir/users.xml" <<'EOF'
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

start() {
  [[ -n "$server_bin" ]] || die "clickhouse-server not found; install it: apt-get install -y clickhouse-server clickhouse-client"
  [[ -n "$client_bin" ]] || die "clickhouse-client not found; install it: apt-get install -y clickhouse-client"
  if running_pid >/dev/null; then
    answers && { echo "clickhouse-server already running (pid $(running_pid)) on 127.0.0.1:$tcp_port"; return 0; }
  fi
  if answers; then
    die "something already answers on 127.0.0.1:$tcp_port; stop it or set CLICKHOUSE_TCP_PORT"
  fi
  write_config
  # The server stays in the foreground of this background job so its pid is the one we kill.
  nohup "$server_bin" --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 &
  echo $! >"$dir/server.pid"
  local waited=0
  until answers; do
    if ! running_pid >/dev/null; then
      tail -n 20 "$dir/log/stdout.log" "$dir/log/server.err.log" >&2 2>/dev/null || true
      die "clickhouse-server exited during start-up; logs are in $dir/log"
    fi
    if (( waited >= timeout_s * 5 )); then
      die "clickhouse-server did not answer on 127.0.0.1:$tcp_port within ${timeout_s}s; logs are in $dir/log"
    fi
    sleep 0.2
    waited=$((waited + 1))
  done
  echo "clickhouse-server running (pid $(cat "$dir/server.pid")): clickhouse://127.0.0.1:$tcp_port/default, http on $http_port, data in $dir"
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then
    echo "clickhouse-server not running (no live pid in $dir/server.pid)"
    rm -f "$dir/server.pid"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/server.pid"
  echo "clickhouse-server stopped (pid $pid)"
}

case "$action" in
  start) start ;;
  stop) stop ;;
  status) answers && echo "answering on 127.0.0.1:$tcp_port" || { echo "not answering on 127.0.0.1:$tcp_port"; exit 1; } ;;
  *) echo "usage: $0 start|stop|status [DIR]" >&2; exit 2 ;;
esac
