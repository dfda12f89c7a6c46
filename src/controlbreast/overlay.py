"""Params overlays: a small YAML file (e.g. ``profiles/busi-cpu.yaml``) and ``key=value`` overrides
merged into ``params.yaml``, so recipes, CI and retraining change knobs without editing it by hand.

The merged params are validated like any params file (unknown keys and bad values are errors),
and by the caller's check (the CLI's: ``data.classes`` against the source's labels), before
anything is written. The file is edited
round-trip (ruamel.yaml, as DVC's ``--set-param`` does): only the keys an overlay names change, a
changed value takes the overlay's comment in place of the old value's, and every other comment,
the key order and the layout of the rest stay, so ``git diff params.yaml`` shows exactly what a
recipe changed.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.tokens import CommentToken

from controlbreast.config import Config, parse_config, parse_value, read_params
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


def _split_comment(mapping: CommentedMap, key: str) -> tuple[str, str]:
    """The comment after ``mapping[key]``'s value as (its own part: the end-of-line comment and
    the lines continuing it further right, the rest: blank lines and comments at or left of the
    key, which head what follows); ruamel keeps both in one token."""
    tokens = mapping.ca.items.get(key)
    if not tokens or len(tokens) < 3 or tokens[2] is None:
        return "", ""
    column = mapping.lc.key(key)[1] if mapping.lc.data and key in mapping.lc.data else 0
    first, _, rest = tokens[2].value.partition("\n")
    lines = rest.split("\n")
    own = next((i for i, line in enumerate(lines)
                if not line.strip() or len(line) - len(line.lstrip()) <= column), len(lines))
    return "\n".join([first, *lines[:own]]), "\n".join(lines[own:])


def _recomment(document: CommentedMap, key: str, source: CommentedMap | None) -> None:
    """After ``document[key]`` changed: drop the comment that described the old value, put the
    overlay's own comment on that key (``source``, None for ``--set``) in its place, and keep the
    comments that head the next keys."""
    _, rest = _split_comment(document, key)
    own, _ = _split_comment(source, key) if source is not None else ("", "")
    column = source.ca.items[key][2].column if own else 0  # where the overlay's file put it
    document.ca.items.pop(key, None)
    if own or rest:
        token = CommentToken(f"{own}\n{rest}", CommentMark(column), None)
        document.ca.items[key] = [None, None, token, None]


def _set_changed(document: CommentedMap, merged: Mapping[str, Any], sources: Sequence[CommentedMap]) -> None:
    """Write into ``document`` (in place) each value of ``merged`` that differs from it, descending
    into block mappings both hold, so untouched keys keep their nodes, comments and styles; a changed
    value (a one-line ``{low: 1, high: 3}`` as a whole) takes the comment of the last of ``sources``
    (the overlays, then ``--set`` ones) naming it."""
    for key, value in merged.items():
        current = document.get(key)
        if isinstance(value, Mapping) and isinstance(current, CommentedMap) and not current.fa.flow_style():
            inner = [source[key] for source in sources if isinstance(source.get(key), CommentedMap)]
            _set_changed(current, value, inner)
        elif key not in document or current != value:
            document[key] = _node(value)
            _recomment(document, key, next((source for source in reversed(sources) if key in source), None))


def apply_overlay(params: Path, overlays: Sequence[Path] = (), assignments: Sequence[str] = (),
                  check: Callable[[Config], None] | None = None) -> dict[str, Any]:
    """Merge the ``overlays`` files, then the ``assignments``, into ``params``; validate (the
    loader, then ``check``: the CLI passes what ingest would refuse later, see
    ``data.discovery.check_source_classes``); write only the values that changed. Returns the merged
    mapping."""
    if not overlays and not assignments:
        raise ConfigError(f"{params}: no overlay file and no KEY=VALUE given: nothing to apply")
    merged = read_params(params)
    rt = round_trip_yaml()
    sources = [rt.load(Path(overlay).read_text()) or CommentedMap() for overlay in overlays]
    for overlay in overlays:
        merged = deep_merge(merged, read_params(overlay))
    for assignment in assignments:
        merged = deep_merge(merged, parse_assignment(assignment))
        sources.append(_node(parse_assignment(assignment)))
    config = parse_config(merged, f"{params} with {', '.join(map(str, [*overlays, *assignments]))}")
    if check is not None:
        check(config)
    document = rt.load(Path(params).read_text()) or CommentedMap()
    _set_changed(document, merged, sources)
    text = io.StringIO()
    rt.dump(document, text)
    if parse_value(text.getvalue()) != merged:  # an alias would carry the change to another section
        raise ConfigError(f"{params}: a YAML anchor shares the changed keys with another section; "
                          "write that section out in full (no `<<: *anchor`), then apply the overlay")
    write_atomic(Path(params), text.getvalue().encode())
    return merged
