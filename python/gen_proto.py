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
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent / "proto"
PROTOS = ["stoker/v1/loader.proto"]
GENERATED = ["loader_pb2.py", "loader_pb2.pyi", "loader_pb2_grpc.py"]


def generate(out_root: Path) -> list[Path]:
    """Write the stubs under out_root/stoker/v1 and return their paths."""
    from grpc_tools import protoc  # imported here: only needed to generate

    out_root.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).resolve().parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *PROTOS,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
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
