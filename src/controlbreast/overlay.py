"""Params overlays: a small YAML file (e.g. ``ci/params-tiny.yaml``) and ``key=value`` overrides
merged into ``params.yaml``, so CI and retraining change knobs without editing the file by hand.

The merged params are validated like any params file (unknown keys and bad values are errors)
before anything is written. The file is rewritten without its comments: overlays are for CI's
throwaway checkouts and retraining runs, whose ``dvc params diff`` shows what changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from controlbreast.config import parse_config, parse_value, read_params
from controlbreast.errors import ConfigError


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


def apply_overlay(params: Path, overlays: Sequence[Path] = (), assignments: Sequence[str] = ()
                  ) -> dict[str, Any]:
    """Merge the ``overlays`` files, then the ``assignments``, into ``params``; validate; write.
    Returns the merged mapping."""
    if not overlays and not assignments:
        raise ConfigError(f"{params}: no overlay file and no KEY=VALUE given: nothing to apply")
    merged = read_params(params)
    for overlay in overlays:
        merged = deep_merge(merged, read_params(overlay))
    for assignment in assignments:
        merged = deep_merge(merged, parse_assignment(assignment))
    parse_config(merged, f"{params} with {', '.join(map(str, [*overlays, *assignments]))}")
    Path(params).write_text(yaml.safe_dump(merged, sort_keys=False))
    return merged
