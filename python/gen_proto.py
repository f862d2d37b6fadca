#!/usr/bin/env python3
"""Generate the Python stubs of the Stoker proto into stoker/v1.

Run from anywhere: ``python python/gen_proto.py`` (needs grpcio-tools; the
version pinned in pyproject's ``test`` extra is the one that made the
committed files). The proto package ``stoker.v1`` lands at ``stoker/v1``,
so the generated ``from stoker.v1 import loader_pb2`` works inside the
package without rewriting imports. tests/test_proto_stubs.py regenerates
into a temporary folder and fails when the committed files differ.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent / "proto"
PROTOS = ["stoker/v1/loader.proto"]
GENERATED = ["loader_pb2.py", "loader_pb2.pyi", "loader_pb2_grpc.py"]


def generate(out_root: Path) -> list[Path]:
    """Write the stubs under out_root/stoker/v1 and return their paths."""
    spec = importlib.util.find_spec("grpc_tools")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("grpcio-tools is not installed (pip install grpcio-tools)")
    include = Path(list(spec.submodule_search_locations)[0]) / "_proto"
    out_root.mkdir(parents=True, exist_ok=True)
    # protoc runs in its own process: its bundled protobuf library can
    # crash a process that has loaded grpcio's.
    args = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *PROTOS,
    ]
    res = subprocess.run(args, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"protoc failed ({res.returncode}): {' '.join(args)}\n{res.stderr}")
    return [out_root / "stoker" / "v1" / name for name in GENERATED]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="root to write stoker/v1 under")
    args = parser.parse_args()
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
