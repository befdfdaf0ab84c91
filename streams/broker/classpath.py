"""The local broker's Java classpath: resolved from Maven Central once per machine and Kafka
version, cached under `cache_dir/<version>/`, resolved again when the cache no longer holds."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from streams.broker.kraft_files import (
    CLASSPATH_POM,
    LOG4J_VERSION,
    file_lock,
    write_if_changed,
)
from streams.config import LocalKafkaConfig
from streams.errors import BrokerError

log = logging.getLogger("tracepipe.broker")

APT_INSTALL = "apt-get install -y maven openjdk-17-jre-headless"
MAVEN_TIMEOUT_S = 900.0
LOG_TAIL_LINES = 40


def require_tool(tool: str) -> str:
    """The path of `tool`; BrokerError with the install command when it is not on PATH."""
    found = shutil.which(tool)
    if found is None:
        raise BrokerError(
            f"`{tool}` is not on PATH; the local Kafka broker needs Java 17+ and Maven. "
            f"On Debian/Ubuntu: sudo {APT_INSTALL}"
        )
    return found


def resolve_classpath(config: LocalKafkaConfig, cache_dir: Path) -> str:
    """The broker's Java classpath, resolved by Maven on first use and cached after."""
    cp_file = cache_dir / "classpath.txt"
    pom_file = cache_dir / "pom.xml"
    pom = CLASSPATH_POM.format(
        scala_version=config.scala_version,
        version=config.version,
        log4j_version=LOG4J_VERSION,
    )
    with file_lock(cache_dir / ".lock"):
        cached = _cached_classpath(cp_file, pom_file, pom)
        if cached is not None:
            return cached
        mvn = require_tool("mvn")
        write_if_changed(pom_file, pom)
        log.info(
            "resolving kafka_%s:%s from Maven Central into %s (about a minute the first time)",
            config.scala_version,
            config.version,
            cache_dir,
        )
        started = time.monotonic()
        tmp = cp_file.with_name(f".classpath.{os.getpid()}.tmp")
        cmd = [
            mvn, "-B", "-q", "-f", str(pom_file),
            "dependency:build-classpath", f"-Dmdep.outputFile={tmp}",
        ]  # fmt: skip
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as err:
            raise BrokerError(
                f"Maven did not resolve Kafka within {MAVEN_TIMEOUT_S:.0f} s; "
                "check network access to Maven Central (repo.maven.apache.org)"
            ) from err
        if done.returncode != 0 or not tmp.exists():
            output = "\n".join((done.stdout + done.stderr).splitlines()[-LOG_TAIL_LINES:])
            raise BrokerError(
                f"Maven could not resolve org.apache.kafka:kafka_{config.scala_version}:"
                f"{config.version} (exit {done.returncode}); check local_kafka.version "
                f"and network access to Maven Central. Maven said:\n{output}"
            )
        os.replace(tmp, cp_file)
        log.info("classpath resolved in %.0f s", time.monotonic() - started)
        return cp_file.read_text().strip()


def _cached_classpath(cp_file: Path, pom_file: Path, pom: str) -> str | None:
    if not (cp_file.exists() and pom_file.exists()) or pom_file.read_text() != pom:
        return None
    text = cp_file.read_text().strip()
    # A cleaned ~/.m2 leaves a classpath naming missing jars: resolve again.
    if not text or not all(Path(jar).exists() for jar in text.split(os.pathsep)):
        return None
    return text
