"""The example and the benchmark script run end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import Data
from servers import S3Server

PYTHON_DIR = Path(__file__).resolve().parents[1]


def run_script(args: list[str], env: dict[str, str] | None = None) -> str:
    res = subprocess.run([sys.executable, *args], cwd=PYTHON_DIR, capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, timeout=600, check=False)
    assert res.returncode == 0, f"{args[0]} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def test_train_tiny_example(server: str, workdir: Path) -> None:
    out = run_script(["examples/train_tiny.py", "--server", server, "--shards", "4", "--samples", "64",
                      "--data-dir", str(workdir / "files")])
    assert "epoch 0: 256 samples" in out, out


def test_benchmark_script(server: str, data: Data, s3_server: S3Server, tmp_path: Path) -> None:
    out = run_script(["bench/bench_loader.py", "--server", server, "--url", data.url, "--workers", "0",
                      "--repeat", "1", "--batch-size", "8", "--json", str(tmp_path / "r.json")], env=s3_server.env())
    assert "stoker/webdataset" in out, out
    assert (tmp_path / "r.json").exists()
