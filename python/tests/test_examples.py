"""The training examples run end to end: DDP under torchrun with a
preemption and a resume from the checkpoint, and Keras fit."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import stoker

PYTHON_DIR = Path(__file__).resolve().parents[1]


def run(args: list[str], timeout: float = 600) -> str:
    res = subprocess.run(args, cwd=PYTHON_DIR, capture_output=True, text=True, env=dict(os.environ),
                         timeout=timeout, check=False)
    assert res.returncode == 0, f"{args} exited {res.returncode}:\n{res.stdout}\n{res.stderr[-6000:]}"
    return res.stdout


def test_torchrun_ddp_example_resumes_exactly_once(server: str, workdir: Path, tmp_path: Path) -> None:
    data = workdir / "files" / "ddp"
    logs = tmp_path / "keys"
    logs.mkdir()
    ckpt = tmp_path / "ckpt.pt"
    batch, ranks, workers, epochs = 8, 2, 2, 2
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
                "examples/train_ddp.py", "--server", server, "--data-dir", str(data), "--shards", "4",
                "--samples", "50", "--batch-size", str(batch), "--workers", str(workers), "--epochs", str(epochs),
                "--checkpoint", str(ckpt), "--checkpoint-every", "3", "--log-keys", str(logs)]
    first = run([*torchrun, "--stop-after", "7"])  # preempted: its last checkpoint is step 7
    assert "stopping after step 7" in first, first
    second = run(torchrun)
    assert "resumed at epoch 0 position 112 (step 7)" in second, second  # 7 steps x 2 ranks x 8
    assert "done" in second, second

    seen = Counter(line for r in range(ranks) for line in (logs / f"rank{r}.txt").read_text().splitlines())
    assert max(seen.values()) == 1, [k for k, n in seen.items() if n > 1][:5]
    url = data.resolve().as_uri() + "/"
    step = ranks * workers * batch  # drop_last: what a whole step of every worker of every rank covers
    with stoker.Client(server) as c:
        for epoch in range(epochs):
            plan = [s.key for b in c.stream(url, batch_size=64, seed=0, epoch=epoch) for s in b.samples]
            want = {f"{epoch} {k}" for k in plan[: len(plan) // step * step]}
            assert {k for k in seen if k.startswith(f"{epoch} ")} == want, epoch


def test_keras_fit_example(server: str, workdir: Path) -> None:
    out = run([sys.executable, "examples/train_keras.py", "--server", server, "--data-dir",
               str(workdir / "files" / "keras"), "--epochs", "3"])
    assert "epochs read: [0, 1, 2]" in out, out
    assert "accuracy" in out, out
