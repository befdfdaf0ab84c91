"""Topologies load from YAML: the shipped web shop, every call kind, each invalid file's error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.errors import ConfigError
from streams.generate.topology import (
    default_topology,
    default_topology_path,
    load_topology,
    load_topology_file,
)
from streams.generate.topology_types import (
    DEFAULT_NETWORK,
    DatabaseCall,
    Latency,
    PublishCall,
    ServiceCall,
    Step,
)
from streams.paths import deploy_root

TESTDATA = Path(__file__).parents[2] / "testdata" / "generate"
EXPECTED_ERRORS: dict[str, str] = json.loads((TESTDATA / "invalid" / "errors.json").read_text())


def test_default_is_the_shipped_web_shop() -> None:
    assert default_topology_path() == deploy_root() / "generate" / "webshop.yaml"
    topology = default_topology()
    assert topology.source == str(default_topology_path())
    assert set(topology.services) == {
        "frontend",
        "checkout",
        "cart",
        "payment",
        "shipping",
        "currency",
        "inventory",
    }
    assert [(e.service, e.operation) for e in topology.entrypoints] == [
        ("frontend", "GET /"),
        ("frontend", "GET /product"),
        ("frontend", "POST /checkout"),
    ]
    assert topology.operation("frontend", "POST /checkout").steps == (
        Step((ServiceCall("checkout", "PlaceOrder"),)),
    )


def test_default_checkout_calls_cart_first_then_in_parallel_then_publishes() -> None:
    topology = default_topology()
    steps = topology.operation("checkout", "PlaceOrder").steps
    assert len(steps) == 3
    assert steps[0] == Step((ServiceCall("cart", "GetCart"),))
    assert steps[1].parallel
    assert {(c.service, c.operation) for c in steps[1].calls if isinstance(c, ServiceCall)} == {
        ("payment", "Charge"),
        ("shipping", "GetQuote"),
        ("currency", "Convert"),
        ("inventory", "Reserve"),
    }
    (publish,) = steps[2].calls
    assert isinstance(publish, PublishCall)
    assert (publish.destination, publish.system) == ("orders", "kafka")
    assert (publish.consumer_service, publish.consumer_operation) == ("shipping", "ShipOrder")
    (database,) = topology.operation("inventory", "Reserve").steps[0].calls
    assert isinstance(database, DatabaseCall)
    assert (database.system, database.name, database.address) == (
        "postgresql",
        "inventory",
        "postgres",
    )


def test_every_call_kind_and_default() -> None:
    path = TESTDATA / "valid" / "every_call_kind.yaml"
    topology = load_topology_file(path)
    assert topology.source == str(path)
    assert topology.network == Latency(0.5)  # sigma defaults to 0.5
    web = topology.services["web"]
    assert web.instances == 2
    assert web.attributes == {"deployment.environment": "test", "team.size": 4, "canary": False}
    assert topology.services["api"].instances == 1
    operation = web.operations["GET /orders/{id}"]
    assert operation.latency == Latency(2.0, 0.0)
    assert operation.error_rate == pytest.approx(0.01)
    assert operation.attributes == {"http.route": "/orders/{id}", "tags": ["a", "b"]}
    call, group, publish = operation.steps
    assert call == Step((ServiceCall("api", "GetOrder", 0.5, 0.0, {"rpc.system": "grpc"}),))
    assert group.parallel
    assert group.calls == (
        DatabaseCall("postgresql", Latency(1.0), "orders", "SELECT orders", "pg-1", 0.01),
        # Without name/operation/address: no db.name, the system names the span and address.
        DatabaseCall("redis", Latency(0.2, 1.5), "", "redis", "redis"),
    )
    assert publish == Step(
        (PublishCall("audit", "worker", "Audit", Latency(0.3), Latency(20.0), "kafka"),)
    )
    assert [e.weight for e in topology.entrypoints] == [3.0, 1.0]


def test_network_defaults_when_absent() -> None:
    text = (TESTDATA / "valid" / "every_call_kind.yaml").read_text()
    text = text.replace("network: {median_ms: 0.5}\n", "")
    assert load_topology(text, "x").network == DEFAULT_NETWORK


@pytest.mark.parametrize("name", sorted(EXPECTED_ERRORS))
def test_invalid_topology_names_service_operation_and_key(name: str) -> None:
    path = TESTDATA / "invalid" / name
    with pytest.raises(ConfigError) as info:
        load_topology(path.read_text(), path.name)
    assert EXPECTED_ERRORS[name] in str(info.value)


def test_every_invalid_file_has_an_expected_error() -> None:
    files = {p.name for p in (TESTDATA / "invalid").iterdir() if p.suffix != ".json"}
    assert files == set(EXPECTED_ERRORS)


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"topology file .*missing.yaml cannot be read"):
        load_topology_file(tmp_path / "missing.yaml")
