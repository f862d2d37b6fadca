"""Bearer tokens for a server started with ``stokerd --auth-token-file``.

The token goes with every call as ``authorization: Bearer TOKEN``. It comes
from ``Client(token=...)``, else from a file (``Client(token_file=...)``),
else from ``$STOKER_TOKEN``. A token file holds one token a line (blank
lines and ``#`` comments skipped); a client sends the first, and re-reads
the file when it changes, so a rotated token is used by the next call
without a new Client. Without TLS the token crosses the network in clear.
"""

from __future__ import annotations

import os
import threading

from .errors import InvalidArgument

__all__ = ["TokenFile", "metadata_now", "token_metadata"]

Metadata = tuple[tuple[str, str], ...]


class TokenFile:
    """A token file, re-read when its modification time, size or identity
    changes; a rewrite that leaves no token keeps the token read before."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()  # guards _stamp, _token
        self._stamp: tuple[int, int, int, int] | None = None
        self._token = ""
        if not self.token():
            raise InvalidArgument(f"stoker: token file {self.path}: no token in it (one a line)")

    def token(self) -> str:
        """The first token of the file as it is now."""
        with self._lock:
            try:
                st = os.stat(self.path)
            except OSError as err:
                if self._token:
                    return self._token
                raise InvalidArgument(f"stoker: token file: {err}") from None
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)
            if stamp != self._stamp:
                with open(self.path, encoding="utf-8") as f:
                    lines = [ln.strip() for ln in f]
                first = next((ln for ln in lines if ln and not ln.startswith("#")), "")
                if first:
                    self._token, self._stamp = first, stamp
            return self._token


def token_metadata(token: str | None, token_file: str | os.PathLike[str] | None) -> TokenFile | Metadata:
    """The metadata of the token given, read from token_file, or from
    $STOKER_TOKEN; a TokenFile when it must be read at each call."""
    if token is not None and token_file is not None:
        raise InvalidArgument("stoker: give token or token_file, not both")
    if token_file is not None:
        return TokenFile(token_file)
    token = token if token is not None else os.environ.get("STOKER_TOKEN", "")
    return (("authorization", f"Bearer {token}"),) if token else ()


def metadata_now(token: TokenFile | Metadata) -> Metadata:
    """The metadata of a call made now, from what token_metadata gave."""
    if isinstance(token, TokenFile):
        return (("authorization", f"Bearer {token.token()}"),)
    return token
