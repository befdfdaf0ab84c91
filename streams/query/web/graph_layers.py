"""The service graph's layering (Sugiyama-style, kept simple): which layer each service is in
and the order of each layer's slots.

- cycles are broken by a depth-first search from the services nobody calls (then the rest, by
  name): the calls that close a cycle are left out of the layering;
- each service's layer is the longest chain of calls that reaches it, so callers sit left of
  the services they call;
- a call that skips layers gets a `Bend` in every layer it crosses, which takes a slot there
  like a small node, so the line runs in a channel of its own instead of through boxes;
- the first layer is ordered by name, then each layer by the mean slot of its neighbours
  (barycentres), sweeping down, up and down again, which untangles most crossings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

SWEEPS = 2
"""Up-and-down barycentre passes after the first downward one."""


@dataclass(frozen=True, order=True)
class Bend:
    """Where a call that skips layers crosses an intermediate layer."""

    client: str
    server: str
    layer: int


Slot = str | Bend
"""What takes a place in a layer: a service, or a call passing through."""


@dataclass(frozen=True)
class Layering:
    """Services in layers (callers left), each layer's slots top to bottom."""

    layer: Mapping[str, int]
    columns: tuple[tuple[Slot, ...], ...]
    bends: Mapping[tuple[str, str], tuple[Bend, ...]]
    """The bends of each call that skips layers, left to right."""


def _acyclic_calls(nodes: Sequence[str], calls: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """`calls` without those that close a cycle (found by an iterative depth-first search from
    the services nobody calls, then from the rest in order)."""
    called = {callee for callees in calls.values() for callee in callees}
    kept: dict[str, list[str]] = {n: [] for n in nodes}
    state: dict[str, int] = {}  # 1: on the search stack, 2: done
    for origin in [n for n in nodes if n not in called] + list(nodes):
        if origin in state:
            continue
        state[origin] = 1
        stack = [(origin, iter(calls[origin]))]
        while stack:
            node, todo = stack[-1]
            callee = next(todo, None)
            if callee is None:
                state[node] = 2
                stack.pop()
            elif state.get(callee) != 1:
                kept[node].append(callee)
                if callee not in state:
                    state[callee] = 1
                    stack.append((callee, iter(calls[callee])))
    return kept


def _longest_path_layers(nodes: Sequence[str], calls: Mapping[str, list[str]]) -> dict[str, int]:
    """Each service's layer: the longest chain of (acyclic) calls that reaches it."""
    incoming = dict.fromkeys(nodes, 0)
    for callees in calls.values():
        for callee in callees:
            incoming[callee] += 1
    layer = dict.fromkeys(nodes, 0)
    ready = [n for n in nodes if incoming[n] == 0]
    while ready:
        node = ready.pop()
        for callee in calls[node]:
            layer[callee] = max(layer[callee], layer[node] + 1)
            incoming[callee] -= 1
            if incoming[callee] == 0:
                ready.append(callee)
    return layer


def _name(slot: Slot) -> tuple[str, str]:
    """A slot's tie-breaking sort key: a bend sorts by the service it leads to."""
    return (slot.server, slot.client) if isinstance(slot, Bend) else (slot, "")


def layer_services(pairs: Sequence[tuple[str, str]]) -> Layering:
    """The layered layout of caller -> callee `pairs`; the same pairs give the same layout."""
    nodes = sorted({n for pair in pairs for n in pair})
    calls: dict[str, list[str]] = {n: [] for n in nodes}
    for client, server in sorted(set(pairs)):
        if client != server:
            calls[client].append(server)
    acyclic = _acyclic_calls(nodes, calls)
    layer = _longest_path_layers(nodes, acyclic)
    # Links between neighbouring layers, with a bend wherever a call skips a layer.
    down: dict[Slot, list[Slot]] = {}
    up: dict[Slot, list[Slot]] = {}
    bends: dict[tuple[str, str], tuple[Bend, ...]] = {}
    for client in nodes:
        for server in acyclic[client]:
            route = tuple(Bend(client, server, i) for i in range(layer[client] + 1, layer[server]))
            if route:
                bends[client, server] = route
            chain: list[Slot] = [client, *route, server]
            for a, b in pairwise(chain):
                down.setdefault(a, []).append(b)
                up.setdefault(b, []).append(a)
    depth = max(layer.values(), default=-1) + 1
    columns: list[list[Slot]] = [[] for _ in range(depth)]
    for n in nodes:
        columns[layer[n]].append(n)
    for route in bends.values():
        for bend in route:
            columns[bend.layer].append(bend)
    if columns:
        columns[0].sort(key=_name)

    def arrange(i: int, neighbours: Mapping[Slot, list[Slot]], beside: list[Slot]) -> None:
        """Order layer `i` by the mean slot of each member's neighbours in layer `beside`."""
        where = {slot: k for k, slot in enumerate(beside)}
        now = {slot: k for k, slot in enumerate(columns[i])}

        def key(slot: Slot) -> tuple[float, tuple[str, str]]:
            seen = [where[n] for n in neighbours.get(slot, []) if n in where]
            return (sum(seen) / len(seen) if seen else now[slot], _name(slot))

        columns[i].sort(key=key)

    for i in range(1, depth):
        arrange(i, up, columns[i - 1])
    for _ in range(SWEEPS):
        for i in range(depth - 2, -1, -1):
            arrange(i, down, columns[i + 1])
        for i in range(1, depth):
            arrange(i, up, columns[i - 1])
    return Layering(layer, tuple(tuple(c) for c in columns), bends)
