"""The Zipkin bridge keeps the remote endpoint's service name the dependency links read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streams.ingest.zipkin import spans_from_zipkin_json
from streams.model.span import ZIPKIN_REMOTE_SERVICE


def converted(**fields: Any) -> dict[str, Any]:
    span = {"traceId": "1".rjust(32, "0"), "id": "2".rjust(16, "0"), "kind": "CLIENT",
            "timestamp": 1_700_000_000_000_000, "duration": 10,
            "localEndpoint": {"serviceName": "app"}, **fields}  # fmt: skip
    return dict(spans_from_zipkin_json(json.dumps([span]).encode())[0]["attributes"])


@pytest.mark.parametrize(
    ("fields", "attributes"),
    [
        ({"remoteEndpoint": {"serviceName": "billing"}}, {"peer.service": "billing"}),
        ({"tags": {"peer.service": "billing-api"}}, {"peer.service": "billing-api",
                                                     ZIPKIN_REMOTE_SERVICE: ""}),
        (
            {"remoteEndpoint": {"serviceName": "billing"}, "tags": {"peer.service": "billing-api"}},
            {"peer.service": "billing-api", ZIPKIN_REMOTE_SERVICE: "billing"},
        ),
        ({"remoteEndpoint": {"serviceName": "billing"}, "tags": {"peer.service": "billing"}},
         {"peer.service": "billing"}),
        ({}, {}),
    ],
    ids=["endpoint", "tag-only", "tag-hides-endpoint", "tag-equals-endpoint", "neither"],
)
def test_the_remote_service_name_survives_a_peer_service_tag(
    fields: dict[str, Any], attributes: dict[str, Any]
) -> None:
    assert converted(**fields) == attributes
