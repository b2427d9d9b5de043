"""Test params files: the repository's params.yaml with a test's overrides merged in, so
that every section stays complete (stages refuse a section that misses a key)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`overrides` over `base`, key by key; maps of methods and datasets are replaced."""
    merged = dict(base)
    for key, value in overrides.items():
        keep_nested = key not in ("datasets", "baseline_methods", "methods")
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and keep_nested:
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def write_params(path: Path, overrides: dict[str, Any]) -> Path:
    base = yaml.safe_load(REPO_PARAMS.read_text())
    path.write_text(yaml.safe_dump(merge(base, overrides), sort_keys=False))
    return path
