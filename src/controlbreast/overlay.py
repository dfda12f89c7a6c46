"""Params overlays: a small YAML file (e.g. ``profiles/busi-cpu.yaml``) and ``key=value`` overrides
merged into ``params.yaml``, so recipes, CI and retraining change knobs without editing it by hand.

The merged params are validated like any params file (unknown keys and bad values are errors)
before anything is written. The file is edited round-trip (ruamel.yaml, as DVC's ``--set-param``
does): only the keys an overlay names change, and every comment, the key order and the layout of
the rest stay, so ``git diff params.yaml`` shows exactly what a recipe changed.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from controlbreast.config import parse_config, parse_value, read_params
from controlbreast.errors import ConfigError
from controlbreast.outputs import write_atomic


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overlay`` on top; mappings merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_assignment(text: str) -> dict[str, Any]:
    """``"train_base.steps=4"`` → ``{"train_base": {"steps": 4}}`` (the value read as YAML)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise ConfigError(f"{text!r}: expected KEY=VALUE with a dotted key, e.g. train_base.steps=4")
    nested: Any = parse_value(value)
    for part in reversed(key.strip().split(".")):
        nested = {part: nested}
    return nested


def round_trip_yaml() -> YAML:
    """A round-trip YAML 1.2 reader/writer laid out as the project's params files are (2-space
    mappings, lists indented under their key, long lines kept, ``null`` written out)."""
    rt = YAML(typ="rt")
    rt.indent(mapping=2, sequence=4, offset=2)
    rt.width = 4096
    rt.preserve_quotes = True
    rt.representer.add_representer(
        type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null"))
    return rt


def _node(value: Any) -> Any:
    """A plain value as a ruamel node: collections of scalars in flow style (``[0.1, 0.5]``,
    ``{low: 1.0, high: 3.0}``) as the params files write them, nested ones in block style."""
    if isinstance(value, Mapping):
        node: Any = CommentedMap((key, _node(item)) for key, item in value.items())
    elif isinstance(value, list | tuple):
        node = CommentedSeq(_node(item) for item in value)
    else:
        return value
    items = value.values() if isinstance(value, Mapping) else value
    if not any(isinstance(item, Mapping | list | tuple) for item in items):
        node.fa.set_flow_style()
    return node


def _set_changed(document: CommentedMap, merged: Mapping[str, Any]) -> None:
    """Write into ``document`` (in place) each value of ``merged`` that differs from it, descending
    into mappings both hold, so untouched keys keep their nodes, comments and styles."""
    for key, value in merged.items():
        current = document.get(key)
        if isinstance(value, Mapping) and isinstance(current, CommentedMap):
            _set_changed(current, value)
        elif key not in document or current != value:
            document[key] = _node(value)


def apply_overlay(params: Path, overlays: Sequence[Path] = (), assignments: Sequence[str] = ()
                  ) -> dict[str, Any]:
    """Merge the ``overlays`` files, then the ``assignments``, into ``params``; validate; write
    only the values that changed. Returns the merged mapping."""
    if not overlays and not assignments:
        raise ConfigError(f"{params}: no overlay file and no KEY=VALUE given: nothing to apply")
    merged = read_params(params)
    for overlay in overlays:
        merged = deep_merge(merged, read_params(overlay))
    for assignment in assignments:
        merged = deep_merge(merged, parse_assignment(assignment))
    parse_config(merged, f"{params} with {', '.join(map(str, [*overlays, *assignments]))}")
    rt = round_trip_yaml()
    document = rt.load(Path(params).read_text()) or CommentedMap()
    _set_changed(document, merged)
    text = io.StringIO()
    rt.dump(document, text)
    if parse_value(text.getvalue()) != merged:  # an alias would carry the change to another section
        raise ConfigError(f"{params}: a YAML anchor shares the changed keys with another section; "
                          "write that section out in full (no `<<: *anchor`), then apply the overlay")
    write_atomic(Path(params), text.getvalue().encode())
    return merged
