"""Real servers for the tests: versitygw (S3, posix back end) and stokerd.

Both run as child processes on free loopback ports; readiness is polled
against a deadline (waiting on the process, so one that exits at start is
reported at once with its output).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
START_TIMEOUT = 60.0


# A server is started through this small program, which asks for SIGKILL
# when the test process dies (PR_SET_PDEATHSIG outlives exec), so a crashed
# or killed pytest leaves no server behind (Linux only), then becomes the
# server. Not a preexec_fn: that makes subprocess fork() instead of vfork(),
# and grpcio's fork handlers can abort a child forked while a channel is
# live before it reaches exec (grpc/grpc#43055), which a test that restarts
# a server under a connected Client did.
_DIE_WITH_PARENT = """
import ctypes, os, sys
try:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
except OSError:
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit("the test process is gone")
os.execv(sys.argv[2], sys.argv[2:])
"""


def spawn(args: list[str], out: Any, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a server (args[0] is its binary) that dies with this process,
    its output to out."""
    cmd = [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *args]
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    """Poll ready() until it is true; fail if proc exits or the deadline passes."""
    deadline = time.monotonic() + START_TIMEOUT
    last: BaseException | None = None
    while True:
        try:
            if ready():
                return
        except Exception as err:  # not up yet
            last = err
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"{what} not ready after {START_TIMEOUT}s ({last}):\n{_tail(log)}")
        try:
            code = proc.wait(timeout=0.02)  # the poll interval, and notice of an early exit
        except subprocess.TimeoutExpired:
            continue
        raise RuntimeError(f"{what} exited at start with {code}:\n{_tail(log)}")


def _tail(log: Path, n: int = 4000) -> str:
    try:
        return log.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def find_versitygw() -> str:
    for cand in (os.environ.get("VERSITYGW"), shutil.which("versitygw")):
        if cand and os.access(cand, os.X_OK):
            return cand
    gopath = subprocess.run(["go", "env", "GOPATH"], capture_output=True, text=True, check=False).stdout.strip()
    for root in filter(None, [*gopath.split(os.pathsep), str(Path.home() / "go")]):
        cand = str(Path(root) / "bin" / "versitygw")
        if os.access(cand, os.X_OK):
            return cand
    raise RuntimeError(
        "versitygw not found: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0 (or set $VERSITYGW)"
    )


def build_stokerd(out_dir: Path) -> str:
    """Build stokerd from this repository (or use $STOKERD)."""
    if os.environ.get("STOKERD"):
        return os.environ["STOKERD"]
    out = out_dir / "stokerd"
    # -tags libjpeg (libjpeg-turbo for the pipeline's JPEGs) where its headers are, as `make build` does.
    tags = os.environ.get("STOKER_GO_TAGS", "libjpeg" if Path("/usr/include/jpeglib.h").exists() else "")
    res = subprocess.run(
        ["go", "build", "-tags", tags, "-o", str(out), "./cmd/stokerd"], cwd=REPO, capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        raise RuntimeError(f"go build ./cmd/stokerd failed:\n{res.stdout}{res.stderr}")
    return str(out)


@dataclass
class S3Server:
    """versitygw serving a posix folder."""

    bin: str
    root: Path
    access: str = "stokertest"
    secret: str = "stokertest-secret-key"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access,
            aws_secret_access_key=self.secret,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point a client at this server."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_REGION": REGION,
        }

    def start(self) -> None:
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        log = self.root / "versitygw.log"
        with open(log, "ab") as out:
            self.proc = spawn(
                [self.bin, "--port", f"127.0.0.1:{self.port}", "--access", self.access, "--secret", self.secret,
                 "--region", REGION, "--quiet", "posix", str(data)],
                out, {**os.environ, "VGW_LOG_LEVEL": "silent"},
            )
        s3 = self.client()
        wait_until(lambda: bool(s3.list_buckets() is not None), self.proc, "versitygw", log)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@dataclass
class Stokerd:
    """One stokerd process; restart() brings it back on the same ports."""

    bin: str
    root: Path
    env: dict[str, str]
    extra: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.root / "stokerd.log"

    def start(self) -> None:
        cache = self.root / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        args = [self.bin, "--listen", self.address, "--http", f"127.0.0.1:{self.http_port}",
                "--cache-dir", str(cache), "--memory-cache", "256MiB", "--disk-cache", "1GiB", *self.extra]
        with open(self.log, "ab") as out:
            self.proc = spawn(args, out, {**os.environ, **self.env})
        url = f"http://127.0.0.1:{self.http_port}/healthz"

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    return bool(r.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        wait_until(healthy, self.proc, "stokerd", self.log)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def output(self) -> str:
        return _tail(self.log, 20000)


def temp_root(prefix: str) -> Path:
    """A folder under the system temp folder (versitygw needs xattrs there)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=tempfile.gettempdir()))


def start_bench_servers(
    stack: ExitStack, *, s3: bool, stokerd: bool, stokerd_args: tuple[str, ...] = ()
) -> str | None:
    """For a benchmark: start versitygw when s3 (its AWS variables go into
    os.environ) and then, when stokerd, a stokerd built from this
    repository, returning its address; in a temp folder, all stopped and
    removed when stack closes."""
    if not (s3 or stokerd):
        return None
    root = temp_root("stoker-bench-")
    stack.callback(shutil.rmtree, root, ignore_errors=True)
    if s3:
        s3srv = S3Server(bin=find_versitygw(), root=root / "s3")
        s3srv.start()
        stack.callback(s3srv.stop)
        os.environ.update(s3srv.env())
    if not stokerd:
        return None
    (root / "bin").mkdir()
    d = Stokerd(bin=build_stokerd(root / "bin"), root=root / "stokerd", env=dict(os.environ), extra=stokerd_args)
    d.start()
    stack.callback(d.kill)
    return d.address
