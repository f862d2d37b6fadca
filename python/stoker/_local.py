"""Finding the local fast path: the server's unix socket on this host.

A Client whose server is on this host streams over the server's unix
socket with shared memory (and the shared memory tier where the server
has one), with no setting: TCP stays for servers elsewhere. The socket is,
in this order:

1. ``$STOKER_SOCKET`` (a path, or ``unix:`` / ``unix://`` and a path);
2. for a loopback ``host:port`` and a plaintext client, the socket stokerd
   serves by default for that port: ``<tmp>/stoker-<uid>/stokerd-<port>.sock``
   (no call over TCP at all);
3. what the server says in ``Stats.host.unix_socket``, which it tells a
   client connected from a loopback address (``stokerd --unix PATH``).

Before it is used the socket is checked: it must be a socket this process
can connect to, and the server behind it must name the same socket (so it
is the same server). Anything else keeps the stream where it was, saying
why in :attr:`LocalPath.reason`.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from . import errors
from .v1 import loader_pb2, loader_pb2_grpc

__all__ = ["LocalLink", "LocalPath", "check_socket", "discover", "find_socket", "is_loopback", "socket_path"]


@dataclass(frozen=True)
class LocalPath:
    """How a client reaches its server's bytes: ``socket`` is the unix
    socket streams use ("" for none) and ``reason`` says why (or why not)."""

    socket: str
    reason: str


def socket_path(addr: str) -> str:
    """The path of a ``unix:`` address (``unix:/p``, ``unix:///p``), or ""."""
    if addr.startswith("unix://"):
        return addr[len("unix://") :]
    if addr.startswith("unix:"):
        return addr[len("unix:") :]
    return ""


def is_loopback(addr: str) -> bool:
    """Whether a ``host:port`` address is on this host (a loopback IP or
    localhost)."""
    host = addr.rsplit(":", 1)[0].strip("[]") if ":" in addr else addr
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _usable(path: str) -> str:
    """Why path is not a socket this process can connect to, or ""."""
    try:
        st = os.stat(path)
    except OSError as err:
        return f"{path}: {err.strerror}"
    if not stat.S_ISSOCK(st.st_mode):
        return f"{path} is not a socket"
    if not os.access(path, os.R_OK | os.W_OK):
        return f"{path}: this user may not connect to it"
    if st.st_uid != os.geteuid() and os.geteuid() != 0:
        # The server's shared memory and cache files are its user's alone.
        return f"{path} is another user's (uid {st.st_uid}): its shared memory would not open"
    return ""


def well_known(addr: str) -> str:
    """The socket stokerd serves by default (--unix auto) for the port of
    addr: ``<tmp>/stoker-<uid>/stokerd-<port>.sock``; "" without a port."""
    port = addr.rsplit(":", 1)[-1] if ":" in addr else ""
    if not port.isdigit():
        return ""
    return os.path.join(tempfile.gettempdir(), f"stoker-{os.getuid()}", f"stokerd-{int(port)}.sock")


def find_socket(
    addr: str, stats: Any, env: Mapping[str, str] | None = None, *, plaintext: bool = True, known: bool = True
) -> LocalPath:
    """The socket a client of addr streams over. ``stats`` is a function
    that asks the server at addr for its Stats (called only for a loopback
    TCP address with no $STOKER_SOCKET and no socket at the well-known
    path, or with ``known=False``). A TLS client (``plaintext=False``)
    asks the server first, so a handshake that fails says so."""
    told = (os.environ if env is None else env).get("STOKER_SOCKET", "")
    own = socket_path(addr)
    if own:
        return LocalPath(own, "connected to the unix socket")
    if told:
        path = socket_path(told) or told
        why = _usable(path)
        return LocalPath("", f"$STOKER_SOCKET: {why}") if why else LocalPath(path, "$STOKER_SOCKET")
    if not is_loopback(addr):
        return LocalPath("", f"{addr} is not on this host: TCP")
    at = well_known(addr) if plaintext and known else ""
    if at and not _usable(at):
        return LocalPath(at, "the server's default socket for its port")
    try:
        path = stats().host.unix_socket
    except Exception as err:  # the stream's own call will say what is wrong
        return LocalPath("", f"could not ask {addr} for its socket: {err}")
    if not path:
        return LocalPath("", f"the server at {addr} serves no unix socket (stokerd --unix)")
    why = _usable(path)
    return LocalPath("", f"the server's socket {why}") if why else LocalPath(path, f"the server at {addr} named it")


def check_socket(
    path: str, options: Sequence[tuple[str, Any]], metadata: Sequence[tuple[str, str]]
) -> tuple[grpc.Channel | None, str]:
    """A channel to the unix socket path, when the server behind it
    names the same socket; else None and why."""
    ch = grpc.insecure_channel(f"unix://{path}", options=options)
    try:
        st = loader_pb2_grpc.LoaderStub(ch).Stats(loader_pb2.StatsRequest(), timeout=10.0, metadata=metadata)
    except grpc.RpcError as err:
        ch.close()
        return None, f"{path}: {errors.from_rpc_error(err, op='Stats', target=path)}"
    if st.host.unix_socket != path:
        ch.close()
        return None, f"{path} is another server's (it names {st.host.unix_socket or 'no socket'})"
    return ch, ""


def discover(
    addr: str,
    local: bool | None,
    stats: Callable[[], Any],
    options: Sequence[tuple[str, Any]],
    metadata: Sequence[tuple[str, str]],
    *,
    plaintext: bool,
) -> tuple[LocalPath, grpc.Channel | None]:
    """The local path of a Client of addr (``local`` is its argument: False
    for none) and a checked channel to its socket when that is not addr
    itself (see find_socket for ``stats`` and ``plaintext``)."""
    if local is False:
        return LocalPath("", "local=False"), None
    found = find_socket(addr, stats, plaintext=plaintext)
    if not found.socket or found.socket == socket_path(addr):
        return found, None
    channel, why = check_socket(found.socket, options, metadata)
    if channel is None and found.socket == well_known(addr):
        # A socket left at the well-known path by a server that was killed
        # (another server now has the port): ask the server for its own.
        named = find_socket(addr, stats, plaintext=plaintext, known=False)
        if named.socket and named.socket != found.socket:
            channel, also = check_socket(named.socket, options, metadata)
            if channel is not None:
                return named, channel
            why = f"{why}; {also}"
    return (found, channel) if channel is not None else (LocalPath("", why), None)


class LocalLink:
    """A Client's local fast path: found once, on the first call of
    :meth:`path` (see discover), then its channel and stub, when the socket
    is not the client's address itself. ``local`` is the Client's argument:
    True makes path() raise InvalidArgument when there is none. Safe to
    use from several threads."""

    def __init__(
        self,
        addr: str,
        local: bool | None,
        stats: Callable[[], Any],
        options: Sequence[tuple[str, Any]],
        metadata: Callable[[], Sequence[tuple[str, str]]],
        *,
        plaintext: bool,
    ) -> None:
        self._addr, self._local, self._stats, self._options = addr, local, stats, options
        self._metadata, self._plaintext = metadata, plaintext
        self._lock = threading.Lock()  # guards _path, channel and stub
        self._path: LocalPath | None = None
        self.channel: grpc.Channel | None = None  # to the socket, when it is not addr
        self.stub: loader_pb2_grpc.LoaderStub | None = None

    def path(self) -> LocalPath:
        """The local path, found on the first call."""
        with self._lock:
            if self._path is not None:
                return self._path
        found, channel = discover(
            self._addr, self._local, self._stats, self._options, self._metadata(), plaintext=self._plaintext
        )
        with self._lock:
            if self._path is None:
                self._path, self.channel = found, channel
                if channel is not None:
                    self.stub = loader_pb2_grpc.LoaderStub(channel)
            elif channel is not None:
                channel.close()
            if self._local is True and not self._path.socket:
                raise errors.InvalidArgument(f"stoker: local=True, but there is no local path: {self._path.reason}")
            return self._path

    def shm_channel(self) -> grpc.Channel | None:
        """The channel of a shared-memory stream, when it is not addr's."""
        if socket_path(self._addr):
            return None
        self.path()
        return self.channel

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
