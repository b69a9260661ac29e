"""The host's end of stream handoff: client connections of streaming requests, given to the instance.

An SSE stream relayed by the gateway costs the host a read and a write for every event, and with
thousands of streams whose events come in bursts (an LLM's batched decode step gives every stream its
token at once) the relay alone delays the last events of a burst by tens of milliseconds. For a
request to a streaming cord, the direct path instead sends the request, with the client's connection
attached (SCM_RIGHTS), over a Unix socket pair it shares with the instance: made by the process
executor, or accepted by a HandoffListener bound into a docker container (see chutes.handoff for the
instance's side and the wire format). The instance writes
the stream to the client itself; the host keeps its own reference to the connection, stops reading
it, and when the instance reports the stream done (or dies), shuts the connection down for good.

What the instance gets is its own client's connection, for one response: the request is already read,
the response ends with `connection: close`, and the host's shutdown ends the connection even if the
instance kept a copy. A client that pipelined a request behind the stream is never handed over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import struct
import tempfile
from pathlib import Path
from typing import Any, Protocol

from chutes.handoff import DONE, HEADER, MAX_MESSAGE

READS_PER_WAKEUP = 64
SEND_BUFFER = 1024 * 1024

logger = logging.getLogger("chutes_host.gateway.handoff")


class HandedOff(Protocol):
    def handoff_done(self, status: int, latency: float) -> None:
        """The instance says the stream ended: `status` 0 when no answer started."""


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """Returns (the host's end, the instance's end) of a new handoff socket pair; only the second is
    inheritable."""
    host_end, instance_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with contextlib.suppress(OSError):
        host_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    instance_end.set_inheritable(True)
    return host_end, instance_end


class HandoffListener:
    """Where a container's instance connects, once, for its end of a handoff socket pair: a listening
    Unix socket alone in a directory of its own, which the container gets bound (its path never names
    anything else of the host's), owned by the container's user. The first connection from that user
    becomes the instance's HandoffChannel; the listener is then gone."""

    SOCKET = "handoff.sock"

    def __init__(self, run_dir: Path, uid: int, gid: int) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="handoff-", dir=run_dir))
        self.uid = uid
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.sock.bind(str(self.directory / self.SOCKET))
            self.sock.listen(1)
            self.sock.setblocking(False)
            for path in (self.directory, self.directory / self.SOCKET):
                os.chown(path, uid, gid)
        except OSError:
            self.close()
            raise

    def attach(self, handle: Any, loop: asyncio.AbstractEventLoop) -> None:
        """Makes the instance's connection, when it comes, `handle.handoff`."""
        if self.closed:
            return
        self.loop = loop
        loop.add_reader(self.sock.fileno(), self._accept, handle)

    def _accept(self, handle: Any) -> None:
        try:
            conn, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return self.close()
        _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        if uid != self.uid:  # not the container's user (or a user namespace maps it elsewhere): relay instead
            logger.warning("a handoff connection came from uid %d, not the instance's %d; refused", uid, self.uid)
            conn.close()
            return self.close()
        handle.handoff = HandoffChannel(conn, self.loop)
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.loop is not None:
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        shutil.rmtree(self.directory, ignore_errors=True)


class HandoffChannel:
    """The host's end of one instance's handoff socket pair, and the streams handed over on it."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.sock = sock
        self.loop = loop
        self.streams: dict[int, HandedOff] = {}
        self.next_id = 0
        self.closed = False
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._readable)

    def send(self, stream: HandedOff, request: bytes, client: int) -> bool:
        """Hands the client connection `client` (a file descriptor) with its `request` to the instance;
        returns False, having sent nothing, when it cannot take it now."""
        if self.closed or len(request) + HEADER.size > MAX_MESSAGE:
            return False
        self.next_id = ident = (self.next_id + 1) & 0xFFFFFFFF
        try:
            socket.send_fds(self.sock, [HEADER.pack(ident), request], [client])
        except BlockingIOError:
            return False  # the instance is not keeping up: relay this one
        except (BrokenPipeError, ConnectionError):
            self.close()  # the instance exited
            return False
        except OSError:
            return False  # e.g. a message over the socket's buffer: relay this one
        self.streams[ident] = stream
        return True

    def _readable(self) -> None:
        for _ in range(READS_PER_WAKEUP):
            try:
                data = self.sock.recv(DONE.size + 1)  # descriptors it might attach are discarded by recv
            except BlockingIOError:
                return
            except OSError:
                return self.close()
            if not data:
                return self.close()  # the instance exited
            stream = None
            if len(data) == DONE.size:
                ident, status, latency = DONE.unpack(data)
                stream = self.streams.pop(ident, None)
            if stream is None:  # not what our runtime sends: no more handoffs to this instance
                logger.warning("an instance sent an unexpected handoff message; its streams are closed")
                return self.close()
            stream.handoff_done(status, latency)

    def close(self) -> None:
        """Ends the channel: every stream still handed over on it is closed, and nothing more is sent."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(ValueError, OSError):
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream.handoff_done(0, 0.0)


def end_connection(transport: Any) -> None:
    """Shuts a handed-over client connection down for both sides (the instance's copy included), then
    closes the host's."""
    sock = transport.get_extra_info("socket")
    fd = sock.fileno() if sock is not None else -1
    if fd >= 0:
        shared = socket.socket(fileno=fd)
        try:
            shared.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the client already went
        finally:
            shared.detach()
    transport.close()
