"""A single-node KRaft Kafka broker run from Apache's Maven Central artifacts, no Docker needed.

`LocalKafka(config).up()` resolves `org.apache.kafka:kafka_<scala>:<version>` with Maven once per
machine (the classpath is cached under `cache_dir/<version>/`), formats KRaft storage in
`data_dir` once, starts the JVM detached and waits until the broker answers a metadata request.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from streams.broker.classpath import LOG_TAIL_LINES, require_tool, resolve_classpath
from streams.broker.kraft_files import (
    LOG4J2_XML,
    controller_port,
    file_lock,
    new_cluster_id,
    render_properties,
    server_properties,
    write_if_changed,
)
from streams.broker.probe import port_in_use, wait_for_broker
from streams.config import LocalKafkaConfig, Settings
from streams.errors import BrokerError
from streams.paths import resolve_path

log = logging.getLogger("tracepipe.broker")

FORMAT_TIMEOUT_S = 120.0

# Exit code of `status` when the broker is not running, as LSB init scripts use.
EXIT_NOT_RUNNING = 3


@dataclass(frozen=True)
class LocalKafkaStatus:
    """What `status()` reports; `running` means the broker process named by the pid file lives."""

    running: bool
    pid: int | None
    bootstrap: str
    version: str
    data_dir: Path
    log_file: Path


def _resolve(path: str) -> Path:
    # Resolved once, at construction, so a later chdir cannot move the broker's files.
    return resolve_path(path).resolve()


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _reap(pid: int) -> None:
    # A broker we started ourselves is our child: once it exits it stays a zombie (and answers
    # kill(pid, 0)) until waited for.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _pid_alive(pid: int) -> bool:
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalKafka:
    """One single-node KRaft broker: its cached classpath, its data dir and its process."""

    def __init__(self, config: LocalKafkaConfig) -> None:
        """Bind to `config`; nothing is touched on disk until `up()`."""
        config.validate()
        self.config = config
        self.cache_dir = _resolve(config.cache_dir) / config.version
        self.data_dir = _resolve(config.data_dir)
        self.storage_dir = self.data_dir / "storage"
        self.properties_file = self.data_dir / "server.properties"
        self.pid_file = self.data_dir / "kafka.pid"
        self.log_file = self.data_dir / "server.log"
        self.stdout_file = self.data_dir / "kafka.out"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """`host:port` for clients."""
        return f"{self.config.host}:{self.config.port}"

    # -- classpath -------------------------------------------------------------------------

    def classpath(self) -> str:
        """The broker's Java classpath, resolved by Maven on first use and cached after."""
        return resolve_classpath(self.config, self.cache_dir)

    # -- process ---------------------------------------------------------------------------

    def read_pid(self) -> int | None:
        """The pid in the pid file if it names a live broker of this data dir, else None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if pid <= 0 or not _pid_alive(pid):
            return None
        return pid if self._is_our_broker(pid) else None

    def _is_our_broker(self, pid: int) -> bool:
        # Pids are reused: after a reboot the pid file may name an unrelated process.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            return False
        except OSError:
            return True  # no /proc to ask: trust the pid file
        return b"kafka.Kafka" in cmdline and str(self.properties_file).encode() in cmdline

    def status(self) -> LocalKafkaStatus:
        """Whether the broker of this data dir is running, and where its files are."""
        return LocalKafkaStatus(
            running=(pid := self.read_pid()) is not None,
            pid=pid,
            bootstrap=self.bootstrap,
            version=self.config.version,
            data_dir=self.data_dir,
            log_file=self.log_file,
        )

    def _java_opts(self, heap_mb: int) -> list[str]:
        heap = f"{heap_mb}m"
        return [
            f"-Xmx{heap}",
            f"-Xms{heap}",
            # Kafka's own kafka-run-class.sh defaults, with GC threads matched to a small host.
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:ParallelGCThreads=2",
            "-XX:ConcGCThreads=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.cache_dir / 'log4j2.xml'}",
            f"-Dtracepipe.kafka.log.file={self.log_file}",
            f"-Dkafka.logs.dir={self.data_dir}",
        ]

    def _format_storage(self, java: str, cp: str) -> None:
        if (self.storage_dir / "meta.properties").exists():
            return
        cluster_id = new_cluster_id()
        log.info("formatting KRaft storage in %s (cluster id %s)", self.storage_dir, cluster_id)
        opts = self._java_opts(min(256, self.config.heap_mb))
        cmd = [
            java, *opts, "-cp", cp, "kafka.tools.StorageTool",
            "format", "--ignore-formatted", f"--cluster-id={cluster_id}",
            "-c", str(self.properties_file),
        ]  # fmt: skip
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=FORMAT_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as err:
            raise BrokerError(
                f"formatting {self.storage_dir} took over {FORMAT_TIMEOUT_S} s"
            ) from err
        if done.returncode != 0:
            raise BrokerError(
                f"formatting KRaft storage in {self.storage_dir} failed (exit {done.returncode}); "
                f"delete {self.data_dir} to start afresh. StorageTool said:\n"
                + (done.stdout + done.stderr).strip()
            )

    def _check_ports_free(self) -> None:
        ports = [
            ("port", self.config.host, self.config.port),
            ("controller_port", "127.0.0.1", controller_port(self.config)),
        ]
        for key, host, port in ports:
            try:
                taken = port_in_use(host, port)
            except OSError as err:
                raise BrokerError(f"cannot bind {host}:{port}: {err}") from err
            if taken:
                raise BrokerError(
                    f"{host}:{port} is already in use by another process, so the local Kafka "
                    f"broker cannot listen there; stop that process or set local_kafka.{key} "
                    f"(TRACEPIPE_LOCAL_KAFKA_{key.upper()}) to a free port"
                )

    def up(self) -> str:
        """Start the broker unless it already runs; return its bootstrap once it answers."""
        with file_lock(self.data_dir / ".lock"):
            return self._up_locked()

    def _up_locked(self) -> str:
        pid = self.read_pid()
        if pid is not None:
            log.info("kafka already running (pid %d); waiting until it answers", pid)
            self._wait_ready(pid)
            return self.bootstrap
        self.pid_file.unlink(missing_ok=True)
        self._check_ports_free()
        java = require_tool("java")
        cp = self.classpath()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        write_if_changed(self.cache_dir / "log4j2.xml", LOG4J2_XML)
        write_if_changed(
            self.properties_file,
            render_properties(server_properties(self.config, self.storage_dir)),
        )
        self._format_storage(java, cp)

        log.info(
            "starting kafka %s on %s (data %s)", self.config.version, self.bootstrap, self.data_dir
        )
        started = time.monotonic()
        cmd = [
            java,
            *self._java_opts(self.config.heap_mb),
            "-cp",
            cp,
            "kafka.Kafka",
            str(self.properties_file),
        ]
        with self.stdout_file.open("ab") as out:
            # A new session: the broker outlives this process and ignores its terminal's ^C.
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
                close_fds=True,
            )
        pid = self._proc.pid
        self.pid_file.write_text(f"{pid}\n")
        self._wait_ready(pid)
        log.info(
            "kafka answered at %s after %.1f s (pid %d)",
            self.bootstrap,
            time.monotonic() - started,
            pid,
        )
        return self.bootstrap

    def _wait_ready(self, pid: int) -> None:
        try:
            wait_for_broker(
                self.bootstrap, self.config.start_timeout_s, alive=lambda: _pid_alive(pid)
            )
        except BrokerError as err:
            self._stop_pid(pid, timeout_s=10.0)
            self.pid_file.unlink(missing_ok=True)
            raise BrokerError(
                f"kafka did not start: {err}; raise local_kafka.start_timeout_s if the machine "
                f"is just slow. Last lines of {self.log_file}:\n{_tail(self.log_file)}\n"
                f"Last lines of {self.stdout_file}:\n{_tail(self.stdout_file, 15)}"
            ) from err

    def _stop_pid(self, pid: int, timeout_s: float) -> None:
        for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if not _pid_alive(pid):
                    return
                time.sleep(0.1)
            if sig == signal.SIGTERM:
                log.warning("kafka (pid %d) ignored SIGTERM for %.0f s; killing it", pid, wait_s)
        if _pid_alive(pid):
            raise BrokerError(f"kafka (pid {pid}) survived SIGKILL; it may be stuck in the kernel")

    def down(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL after `timeout_s`); True if one was running."""
        pid = self.read_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        log.info("stopping kafka (pid %d)", pid)
        self._stop_pid(pid, timeout_s)
        self.pid_file.unlink(missing_ok=True)
        self._proc = None
        return True


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def run_kafka_command(action: str, settings: Settings) -> int:
    """`tracepipe kafka up|down|status`: act, print one line, return the exit code.

    status exits 3 when the broker is not running; BrokerError propagates to the CLI.
    """
    broker = LocalKafka(settings.local_kafka)
    if action == "up":
        bootstrap = broker.up()
        if bootstrap not in settings.kafka.bootstrap.split(","):
            log.warning(
                "kafka.bootstrap is %s but the local broker listens on %s; "
                "set TRACEPIPE_KAFKA_BOOTSTRAP=%s",
                settings.kafka.bootstrap,
                bootstrap,
                bootstrap,
            )
    elif action == "down":
        stopped = broker.down()
        print("kafka stopped" if stopped else "kafka was not running")
        return 0
    elif action != "status":
        raise ValueError(f"unknown kafka action {action!r}; expected up, down or status")
    state = broker.status()
    if not state.running:
        print(f"kafka {state.version} not running (data {_shown(state.data_dir)})")
        return EXIT_NOT_RUNNING
    print(
        f"kafka {state.version} running at {state.bootstrap} "
        f"(pid {state.pid}, data {_shown(state.data_dir)})"
    )
    return 0


__all__ = [
    "LocalKafka",
    "LocalKafkaStatus",
    "run_kafka_command",
]
