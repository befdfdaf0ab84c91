"""YAML for hand-written files (alert rules, topologies): safe, and a repeated key is an error
rather than "the second one silently wins"."""

from __future__ import annotations

from typing import Any

import yaml


def _strict_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[str] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                )
            seen.add(key_node.value)
    return loader.construct_mapping(node, deep=True)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys."""


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def load_strict_yaml(text: str) -> Any:
    """One YAML document, safely loaded; yaml.YAMLError on bad syntax or a repeated key."""
    return yaml.load(text, Loader=_StrictLoader)
