"""Packaging: committed stubs are fresh, frameworks stay optional."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

PYTHON_DIR = Path(__file__).resolve().parents[1]


def _load_generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_proto", PYTHON_DIR / "gen_proto.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    gen = _load_generator()
    stale = []
    for fresh in gen.generate(tmp_path):
        committed = PYTHON_DIR / "stoker" / "v1" / fresh.name
        if not committed.exists() or committed.read_bytes() != fresh.read_bytes():
            stale.append(fresh.name)
    assert not stale, f"stale generated stubs {stale}: run python python/gen_proto.py and commit"


def test_import_stoker_does_not_import_torch_or_tensorflow() -> None:
    code = (
        "import sys, stoker, stoker.split, stoker.decode; "
        "bad = [m for m in ('torch', 'tensorflow', 'pyarrow') if m in sys.modules]; "
        "assert not bad, bad; print(len(stoker.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PYTHON_DIR, check=False)
    assert out.returncode == 0, out.stderr


def test_torch_and_tf_import_pyarrow_only_for_columnar_datasets() -> None:
    code = "import sys, stoker.torch, stoker.tf; assert 'pyarrow' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PYTHON_DIR, check=False)
    assert out.returncode == 0, out.stderr


def test_py_typed_and_all() -> None:
    import stoker

    assert (Path(stoker.__file__).parent / "py.typed").exists()
    for name in stoker.__all__:
        assert hasattr(stoker, name), name


@pytest.mark.parametrize(
    "field,data,want",
    [("cls", b"7", 7), ("txt", "héllo".encode(), "héllo"), ("json", b'{"a": [1]}', {"a": [1]}), ("x.bin", b"\x00", b"\x00")],
)
def test_decoders(field: str, data: bytes, want: object) -> None:
    from stoker.decode import decode_sample

    assert decode_sample({"__key__": "k", field: data})[field] == want
