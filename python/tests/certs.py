"""Certificate authorities and certificates for the TLS tests (ECDSA
P-256, made in the test with the openssl command, never committed), as
the PEM files stokerd and the client read. Like the Go tests'
clients/stoker/tlstest."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# No system openssl.cnf: what req needs, and nothing it would add.
_CONFIG = "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n"
_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


def available() -> bool:
    return shutil.which("openssl") is not None


def _run(*args: str) -> None:
    res = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{res.stdout}{res.stderr}")


@dataclass(frozen=True)
class Pair:
    """A certificate and its key, as files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class CA:
    """A self-signed certificate authority; ``cert`` is the bundle that
    verifies what it issues."""

    cert: Path
    key: Path

    @classmethod
    def make(cls, folder: Path, name: str) -> CA:
        folder.mkdir(parents=True, exist_ok=True)
        cnf = _config(folder)
        ca = cls(folder / f"{name}-ca.pem", folder / f"{name}-ca-key.pem")
        _run("req", "-config", str(cnf), "-x509", "-new", *_KEY, "-keyout", str(ca.key), "-out", str(ca.cert),
             "-days", "1", "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,digitalSignature")
        return ca

    def issue(self, folder: Path, name: str, *, server: bool = False, client: bool = False,
              ips: tuple[str, ...] = (), dns: tuple[str, ...] = ()) -> Pair:
        """A certificate for name, good for server and/or client
        authentication, valid for the IP addresses and DNS names given."""
        cnf = _config(folder)
        pair = Pair(folder / f"{name}.pem", folder / f"{name}-key.pem")
        csr = folder / f"{name}.csr"
        _run("req", "-config", str(cnf), "-new", *_KEY, "-keyout", str(pair.key), "-out", str(csr),
             "-subj", f"/CN={name}")
        usages = [u for u, on in (("serverAuth", server), ("clientAuth", client)) if on]
        ext = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature",
               f"extendedKeyUsage={','.join(usages)}"]
        sans = [f"IP:{ip}" for ip in ips] + [f"DNS:{d}" for d in dns]
        if sans:
            ext.append(f"subjectAltName={','.join(sans)}")
        extfile = folder / f"{name}.ext"
        extfile.write_text("\n".join(ext) + "\n")
        _run("x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
             "-set_serial", f"0x{secrets.token_hex(16)}", "-days", "1", "-extfile", str(extfile),
             "-out", str(pair.cert))
        csr.unlink()
        extfile.unlink()
        return pair


def _config(folder: Path) -> Path:
    cnf = folder / "openssl.cnf"
    if not cnf.exists():
        cnf.write_text(_CONFIG)
    return cnf
