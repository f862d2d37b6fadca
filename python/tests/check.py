"""Assertions shared by the tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

K = TypeVar("K", str, int)  # sample keys, or row ids


def field_names(sample: Mapping[str, Any]) -> set[str]:
    return {k for k in sample if not k.startswith("__")}


def assert_matches_reference(sample: Mapping[str, Any], reference: Mapping[str, Mapping[str, Any]]) -> None:
    """A raw sample has webdataset's key, URL, fields and bytes (bytes of
    their own, or over the local path views that hold their lease)."""
    key = sample["__key__"]
    assert key in reference, f"unknown key {key!r}"
    ref = reference[key]
    assert field_names(sample) == field_names(ref), key
    for name in field_names(ref):
        assert isinstance(sample[name], (bytes, memoryview)), (key, name, type(sample[name]))
        assert sample[name] == ref[name], f"{key}.{name}: {len(sample[name])} bytes differ from webdataset's {len(ref[name])}"
    if "__url__" in sample:
        assert sample["__url__"] == ref["__url__"], key


def assert_exactly_once(keys: Iterable[K], expected: Iterable[K]) -> None:
    """Every expected key appears exactly once, and nothing else."""
    counts = Counter(keys)
    dup = {k: n for k, n in counts.items() if n > 1}
    assert not dup, f"{len(dup)} keys repeated, e.g. {sorted(dup.items())[:5]}"
    want = set(expected)
    missing, extra = want - set(counts), set(counts) - want
    assert not missing and not extra, f"missing {sorted(missing)[:5]} ({len(missing)}), extra {sorted(extra)[:5]} ({len(extra)})"
