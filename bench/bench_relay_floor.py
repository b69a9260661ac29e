"""The floor under the gateway's stream relay: what the bare minimum relay costs per event on this machine.

    .venv/bin/python bench/bench_relay_floor.py [--streams 2000] [--events 100] [--interval 0.05] [--lockstep]
                                                [--parse] [--rounds 1]

The same shape as bench_streams.py (its clients, --streams SSE streams of --events events, the relay pinned to
core 1 and the event source to core 0), with the host replaced by the least a relay can do: a uvloop server
that, for each client connection, opens a Unix connection to the source and writes every read from it to the
client with one `transport.write`, no HTTP parsing, no routing, no counters. With --parse it also parses the
source's response with httptools and frames each body part again, as the gateway must (it never passes a
chute's framing through). Its CPU per event (user + system of the relay process) is the part of the host's
figure in bench_streams.py that no change to the host's Python can remove: the syscalls and the kernel's
work for one read and one write per event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_gateway import free_port, wait_until  # noqa: E402
from bench_streams import cpu_split, raise_open_files, run_streams  # noqa: E402

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def serve_source(path: str) -> None:
    """Serves SSE streams on a Unix socket as the chute's `ticks` cord does (count, interval and lockstep from
    the request's JSON body), each event in one chunk of the chunked transfer coding."""

    async def stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line[15:]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:"))
        request = json.loads(await reader.readexactly(length))
        count, interval, lockstep = request["count"], request["interval"], request["lockstep"]
        writer.write(HEAD)
        for i in range(count):
            await asyncio.sleep(interval - time.time() % interval if lockstep else interval)
            event = b'data: {"i": %d, "t": %r}\n\n' % (i, time.time())
            writer.write(b"%x\r\n%b\r\n" % (len(event), event))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_unix_server(stream, path, backlog=4096)
        async with server:
            await server.serve_forever()

    import uvloop

    uvloop.run(main())


def serve_relay(path: str, port: int, *, parse: bool) -> None:
    """Relays each client connection to a new Unix connection to `path`, one write per read (see module doc)."""
    import httptools
    import uvloop

    class Upstream(asyncio.Protocol):
        def __init__(self, client: asyncio.Transport) -> None:
            self.client = client
            self.parser = httptools.HttpResponseParser(self) if parse else None

        def data_received(self, data: bytes) -> None:
            if self.parser is None:
                self.client.write(data)
            else:
                self.parser.feed_data(data)

        def on_headers_complete(self) -> None:
            self.client.write(HEAD)

        def on_body(self, body: bytes) -> None:
            self.client.write(b"%x\r\n%b\r\n" % (len(body), body))

        def on_message_complete(self) -> None:
            self.client.write(b"0\r\n\r\n")

        def connection_lost(self, exc: Exception | None) -> None:
            self.client.close()

    class Client(asyncio.Protocol):
        """Forwards what the client sends (one request) on a new Unix connection to the source."""

        def connection_made(self, transport: asyncio.Transport) -> None:
            self.transport = transport
            self.upstream: asyncio.Transport | None = None
            self.pending = b""

        def data_received(self, data: bytes) -> None:
            if self.upstream is not None:
                return self.upstream.write(data)
            if not self.pending:
                asyncio.get_running_loop().create_task(self.open())
            self.pending += data

        async def open(self) -> None:
            loop = asyncio.get_running_loop()
            self.upstream, _ = await loop.create_unix_connection(lambda: Upstream(self.transport), path)
            self.upstream.write(self.pending)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Client, "127.0.0.1", port, backlog=4096)
        async with server:
            await server.serve_forever()

    uvloop.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=2000, help="SSE streams open at once")
    parser.add_argument("--events", type=int, default=100, help="events per stream")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between a stream's events")
    parser.add_argument("--lockstep", action="store_true", help="every stream's events at the same instants")
    parser.add_argument("--parse", action="store_true", help="parse the source's framing and frame each part again")
    parser.add_argument("--rounds", type=int, default=1, help="runs; the median is reported")
    parser.add_argument("--role", choices=("source", "relay"), help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "source":
        return serve_source(args.path)
    if args.role == "relay":
        return serve_relay(args.path, args.port, parse=args.parse)
    if shutil.which("taskset") is None:
        raise SystemExit("Error: needs taskset; install it with: apt-get install -y util-linux")
    raise_open_files(args.streams * 3 + 1024)
    root = Path(tempfile.mkdtemp(prefix="chutes-bench-floor-"))
    path, port = str(root / "source.sock"), free_port()
    me = [sys.executable, __file__, "--path", path]
    source = subprocess.Popen(["taskset", "-c", "0", *me, "--role", "source"])
    wait_until(lambda: os.path.exists(path), 30, "the event source to listen")
    relay_command = ["taskset", "-c", "1", *me, "--role", "relay", "--port", str(port)]
    relay = subprocess.Popen(relay_command + (["--parse"] if args.parse else []))
    common = dict(streams=args.streams, events=args.events, interval=args.interval, lockstep=args.lockstep)
    figures = []
    try:
        wait_until(lambda: _listens(port), 30, "the relay to listen")
        asyncio.run(run_streams(port, "x", **{**common, "streams": 50}, sample=lambda: 0))  # warm-up
        for _ in range(args.rounds):
            load, before = os.getloadavg()[0], cpu_split(relay.pid)
            delays, failed, _ = asyncio.run(run_streams(port, "x", **common, sample=lambda: 0))
            user, system = (now - then for now, then in zip(cpu_split(relay.pid), before, strict=True))
            events = max(len(delays), 1)
            p99 = statistics.quantiles(delays, n=100)[98]
            figures.append((user / events * 1e6, system / events * 1e6, failed, p99, load, os.getloadavg()[0]))
    finally:
        for proc in (relay, source):
            proc.terminate()
            proc.wait(20)
        shutil.rmtree(root, ignore_errors=True)
    how = "parsed and framed again" if args.parse else "passed through"
    print(f"\nbare relay, {args.streams} streams x {args.events} events ({how}), relay on core 1")
    print(f"{'round':>5}{'failed':>8}{'p99 ms':>10}{'user us':>10}{'system us':>11}{'CPU us/event':>14}{'load':>12}")
    for n, (user, system, failed, p99, load_start, load_end) in enumerate(figures, 1):
        loads = f"{load_start:.1f}-{load_end:.1f}"
        print(f"{n:>5}{failed:>8}{p99:>10.2f}{user:>10.1f}{system:>11.1f}{user + system:>14.1f}{loads:>12}")
    median = statistics.median(user + system for user, system, *_ in figures)
    print(f"relay CPU per event, median: {median:.1f} us")


def _listens(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    main()
