"""Streams handed over by the host: a client's connection, received with its request and answered here.

A host on the process executor gives each instance one end of a Unix socket pair (`--handoff FD`); on
the docker executor, the instance connects to a Unix socket the host binds into its container, named
in CHUTES_HANDOFF_SOCKET, and the accepted connection is the pair. For
a request to a streaming cord, it sends the request as the gateway would forward it (its head and its
whole body) together with the client's connection itself (SCM_RIGHTS). The instance serves it as if it
had come on its own listener, and writes the stream straight to the client, with `connection: close`:
the host relays none of its events. When the connection ends here, the instance tells the host
the status and the time to the first byte, and the host closes the connection for good.

Wire format: one SOCK_SEQPACKET message per stream each way.
  host -> instance: HEADER (the stream's id), the request bytes; the client's socket attached.
  instance -> host: DONE (the id, the status or 0 if no answer started, seconds to the first byte).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import time
from collections import deque
from typing import Any

# In a container, the path of the Unix socket where the instance connects for its end of the pair
# (the docker executor sets it; the process executor passes the descriptor with --handoff instead).
HANDOFF_ENV = "CHUTES_HANDOFF_SOCKET"
HEADER = struct.Struct("!I")
DONE = struct.Struct("!IHf")
# A request head is at most 64 KiB and a handed-over body at most 64 KiB (the host's limits).
MAX_MESSAGE = 192 * 1024
READS_PER_WAKEUP = 64

logger = logging.getLogger("chutes.handoff")


class _Watched:
    """Stands in for a handed-over connection's transport: notes the status and time of the first write."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.status = 0
        self.first_byte = 0.0

    def write(self, data: bytes) -> None:
        if not self.status and data[:5] == b"HTTP/":
            with contextlib.suppress(ValueError):
                self.status = int(data[9:12])
            self.first_byte = time.monotonic()
            self.write = self._transport.write  # the rest go straight through
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HandedOffProtocol:
    """Mixed into the server's HTTP protocol class for the connections the host hands over."""

    handoff: HandoffReceiver
    handoff_id: int
    received: float

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.watched = _Watched(transport)
        super().connection_made(self.watched)  # type: ignore[misc]

    def on_headers_complete(self) -> None:
        super().on_headers_complete()  # type: ignore[misc]
        if self.cycle is not None:  # type: ignore[attr-defined]
            self.cycle.keep_alive = False  # type: ignore[attr-defined]  # one response, then the connection ends

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)  # type: ignore[misc]
        watched = self.watched
        latency = watched.first_byte - self.received if watched.status else 0.0
        self.handoff.done(self.handoff_id, watched.status, latency)


class HandoffReceiver:
    """The instance's end of the handoff socket pair: adopts each connection the host sends."""

    def __init__(self, sock: socket.socket, protocol_class: type, options: dict[str, Any], server: Any) -> None:
        self.sock = sock
        self.protocol_class = type("HandedOff" + protocol_class.__name__, (HandedOffProtocol, protocol_class), {})
        self.options = options  # what the server passes its protocols: config, server_state, app_state
        self.server = server  # the listener's address, as the protocol would see it for a request of its own
        self.loop = asyncio.get_running_loop()
        self.unsent: deque[bytes] = deque()
        self.closed = False
        sock.setblocking(False)
        self.loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        for _ in range(READS_PER_WAKEUP):
            try:
                data, fds, flags, _ = socket.recv_fds(self.sock, MAX_MESSAGE, 1)  # more are cut (MSG_CTRUNC)
            except BlockingIOError:
                return
            except OSError:
                return self.close()
            if not data and not fds:
                return self.close()  # the host is gone
            if len(fds) != 1 or len(data) <= HEADER.size or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                for fd in fds:
                    os.close(fd)
                logger.warning("ignored a malformed handoff message (%d bytes, %d descriptors)", len(data), len(fds))
                continue
            (ident,) = HEADER.unpack_from(data)
            self._adopt(ident, data[HEADER.size :], fds[0])

    def _adopt(self, ident: int, request: bytes, fd: int) -> None:
        received = time.monotonic()
        try:
            sock = socket.socket(fileno=fd)
            sock.setblocking(False)
        except OSError:  # not a socket
            os.close(fd)
            return self.done(ident, 0, 0.0)

        def protocol() -> Any:
            made = self.protocol_class(**self.options)
            made.handoff, made.handoff_id, made.received = self, ident, received
            return made

        self.loop.create_task(self._serve(sock, protocol, request, ident))

    async def _serve(self, sock: socket.socket, factory: Any, request: bytes, ident: int) -> None:
        try:
            _, protocol = await self.loop.connect_accepted_socket(factory, sock)
        except OSError:
            sock.close()
            return self.done(ident, 0, 0.0)
        protocol.client = None  # as for a request on the instance's own (Unix) listener
        protocol.server = self.server
        protocol.data_received(request)

    def done(self, ident: int, status: int, latency: float) -> None:
        """Tells the host that stream `ident` has ended here."""
        if self.closed:
            return
        self.unsent.append(DONE.pack(ident, status, max(latency, 0.0)))
        self._flush()

    def _flush(self) -> None:
        while self.unsent:
            try:
                self.sock.send(self.unsent[0])
            except BlockingIOError:
                self.loop.add_writer(self.sock.fileno(), self._writable)
                return
            except OSError:
                return self.close()
            self.unsent.popleft()

    def _writable(self) -> None:
        self.loop.remove_writer(self.sock.fileno())
        self._flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        fd = self.sock.fileno()
        if fd >= 0:
            self.loop.remove_reader(fd)
            self.loop.remove_writer(fd)
        self.sock.close()


def connect(path: str) -> socket.socket | None:
    """Connects to the host's handoff socket at `path` (a container's instance); None, with a warning, if it
    cannot: the host then relays every stream, as it would without handoff."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        logger.warning("no stream handoff: cannot connect to %s (%s); the host relays the streams", path, exc)
        return None
    return sock
