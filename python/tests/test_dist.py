"""The package as published: ``python -m build`` makes a wheel and an
sdist; each installs (with its dependencies, from the package index) into
a clean venv of the oldest and of the newest Python the package claims,
and reads an epoch from a real stokerd there.

The interpreters are found as ``python3.10`` / ``python3.13`` under pyenv's
versions or on PATH, or named in ``$STOKER_TEST_PYTHONS``
(``3.10=/path/python,3.13=/path/python``). A claimed version with no
interpreter fails the test: the claim is what is tested."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import Data

PYTHON_DIR = Path(__file__).resolve().parents[1]
OLDEST, NEWEST = "3.10", "3.13"


def claimed_versions() -> list[str]:
    meta = tomllib.loads((PYTHON_DIR / "pyproject.toml").read_text())["project"]
    prefix = "Programming Language :: Python :: "
    versions = [c[len(prefix):] for c in meta["classifiers"] if c.startswith(prefix) and c.count(".") >= 1]
    versions = [v for v in versions if "." in v]
    assert meta["requires-python"] == f">={min(versions, key=_key)}"
    return sorted(versions, key=_key)


def _key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def interpreter(version: str) -> str:
    named = dict(p.split("=", 1) for p in os.environ.get("STOKER_TEST_PYTHONS", "").split(",") if "=" in p)
    candidates = [named.get(version, ""), *sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")))]
    found = shutil.which(f"python{version}")
    if found and "/shims/" not in found:
        candidates.append(found)
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    pytest.fail(f"no Python {version} interpreter (pyenv install {version}, or $STOKER_TEST_PYTHONS={version}=PATH)")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The wheel and sdist built from a copy of the package's sources."""
    root = tmp_path_factory.mktemp("dist")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PYTHON_DIR / name, src / name)
    shutil.copytree(PYTHON_DIR / "stoker", src / "stoker", ignore=shutil.ignore_patterns("__pycache__"))
    res = subprocess.run([sys.executable, "-m", "build", "--outdir", str(root / "out"), str(src)],
                         capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, f"python -m build failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    wheel = next((root / "out").glob("stoker-*.whl"))
    sdist = next((root / "out").glob("stoker-*.tar.gz"))
    return {"wheel": wheel, "sdist": sdist}


def test_claims_the_tested_versions() -> None:
    versions = claimed_versions()
    assert (versions[0], versions[-1]) == (OLDEST, NEWEST)


def test_wheel_holds_the_package_and_its_stubs(dist: dict[str, Path]) -> None:
    import zipfile

    names = set(zipfile.ZipFile(dist["wheel"]).namelist())
    for want in ("stoker/__init__.py", "stoker/py.typed", "stoker/v1/loader_pb2.py", "stoker/v1/loader_pb2.pyi",
                 "stoker/torch.py", "stoker/tf.py", "stoker/collate.py", "stoker/torch_loader.py"):
        assert want in names, want
    assert not any(n.startswith("tests/") for n in names)


SMOKE = """
import sys
import stoker
from stoker.split import loader_cursor
from stoker.decode import decoder_for
assert stoker.__file__.startswith(sys.prefix), stoker.__file__
url, server = sys.argv[1], sys.argv[2]
with stoker.Client(server) as c:
    info = c.open_dataset(url, fields=True)
    keys = [s.key for b in c.stream(url, batch_size=16, seed=1) for s in b.samples]
decoded = decoder_for(True)({"__key__": "k", "cls": b"3"})
print(stoker.__version__, "%d.%d" % sys.version_info[:2], info.num_samples, len(set(keys)),
      ",".join(f.name for f in info.fields), decoded["cls"])
"""


@pytest.mark.parametrize("artifact", ["wheel", "sdist"])
@pytest.mark.parametrize("version", [OLDEST, NEWEST])
def test_installs_in_a_clean_venv_and_reads_an_epoch(
    dist: dict[str, Path], server: str, data: Data, tmp_path: Path, version: str, artifact: str
) -> None:
    py = interpreter(version)
    venv = tmp_path / "venv"
    subprocess.run([py, "-m", "venv", str(venv)], check=True, timeout=300)
    res = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                          str(dist[artifact])], capture_output=True, text=True, timeout=900, check=False)
    assert res.returncode == 0, f"pip install {dist[artifact].name} on {version}:\n{res.stdout}\n{res.stderr}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    out = subprocess.run([str(venv / "bin" / "python"), "-c", SMOKE, data.url, server], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, f"smoke test on {version} ({artifact}):\n{out.stdout}\n{out.stderr}"
    n = len(data.keys)
    assert out.stdout.split() == ["0.1.0", version, str(n), str(n),
                                  "bin,cls,json,npy,seg.png,txt", "3"], out.stdout
