"""Session-wide fixtures shared by every test directory."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from streams.broker.local import LocalKafka
from streams.broker.probe import free_port, wait_for_broker
from streams.config import LocalKafkaConfig
from streams.errors import BrokerError
from streams.paths import HOME_VARIABLE

KAFKA_BOOTSTRAP_ENV = "TRACEPIPE_KAFKA_BOOTSTRAP"
EXTERNAL_BROKER_TIMEOUT_S = 60.0


@pytest.fixture(scope="session", autouse=True)
def data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Default paths of every test (and of the processes it starts) under a temporary data
    home, never the user's own store, broker or worker state."""
    previous = os.environ.get(HOME_VARIABLE)
    os.environ[HOME_VARIABLE] = str(tmp_path_factory.mktemp("home"))
    yield
    if previous is None:
        del os.environ[HOME_VARIABLE]
    else:
        os.environ[HOME_VARIABLE] = previous


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka broker's bootstrap: `$TRACEPIPE_KAFKA_BOOTSTRAP`, else one started here.

    Never skips: CI's integration tests need the real broker, so a missing one is a failure.
    """
    external = os.environ.get(KAFKA_BOOTSTRAP_ENV, "").strip()
    problem: str | None = None
    if external:
        try:
            wait_for_broker(external, EXTERNAL_BROKER_TIMEOUT_S)
        except BrokerError as err:
            problem = str(err)
        # Failing outside the except block keeps the report to one message, not a chained trace.
        if problem is not None:
            pytest.fail(
                f"{KAFKA_BOOTSTRAP_ENV}={external} is unreachable: {problem}", pytrace=False
            )
        yield external
        return

    # The default cache_dir is kept on purpose: Maven resolves Kafka once per machine.
    broker = LocalKafka(
        LocalKafkaConfig(
            port=free_port(),
            controller_port=free_port(),
            data_dir=str(tmp_path_factory.mktemp("kafka")),
        )
    )
    bootstrap = ""
    try:
        bootstrap = broker.up()
    except BrokerError as err:
        problem = str(err)
    if problem is not None:
        pytest.fail(
            f"could not start the local Kafka broker for the test session: {problem}\n"
            f"(or point {KAFKA_BOOTSTRAP_ENV} at a running broker)",
            pytrace=False,
        )
    try:
        yield bootstrap
    finally:
        broker.down()
