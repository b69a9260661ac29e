"""A chute with a job: renders frames of a Mandelbrot zoom to PNG files, on CPU, with no dependencies.

chutes jobs run examples/jobs/jobs.py:chute render --json '{"frames": 4}'
chutes deploy jobs:chute && chutes jobs start jobs render --json '{"frames": 4}' --follow
"""

from __future__ import annotations

import os
import struct
import time
import zlib

from chutes.chute import Chute, NodeSelector
from chutes.image import Image

image = Image("myuser", "jobs", "0.1")
chute = Chute(username="myuser", name="jobs", image=image, node_selector=NodeSelector(gpu_count=0))
CENTER = (-0.743643887037151, 0.131825904205330)  # a spiral on the set's edge: detail at every zoom


def mandelbrot(width: int, height: int, zoom: float, max_iter: int) -> bytes:
    """Returns the frame's pixels as 8-bit grey rows, each prefixed by PNG's filter byte 0."""
    rows = bytearray()
    span = 3.0 / zoom
    for y in range(height):
        rows.append(0)
        ci = CENTER[1] + (y / height - 0.5) * span * height / width
        for x in range(width):
            cr = CENTER[0] + (x / width - 0.5) * span
            zr = zi = 0.0
            n = 0
            while n < max_iter and zr * zr + zi * zi <= 4.0:
                zr, zi = zr * zr - zi * zi + cr, 2.0 * zr * zi + ci
                n += 1
            rows.append(0 if n == max_iter else 255 - (n * 255 // max_iter))
    return bytes(rows)


def png(width: int, height: int, rows: bytes) -> bytes:
    """Returns a greyscale PNG file of the rows (the format is small enough to write by hand)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


@chute.job(timeout=300)
async def render(
    self, frames: int = 4, width: int = 160, height: int = 120, max_iter: int = 200, output_dir: str = ""
) -> dict:
    """Renders `frames` frames zooming 2x each into frame-NNN.png, and their timings into frames.csv."""
    if not 1 <= frames <= 100 or not 8 <= width <= 2000 or not 8 <= height <= 2000:
        raise ValueError("frames must be 1-100, width and height 8-2000")
    lines = ["frame,zoom,seconds,black_pixels"]
    for index in range(frames):
        zoom = 2.0**index
        started = time.perf_counter()
        rows = mandelbrot(width, height, zoom, max_iter)
        with open(os.path.join(output_dir, f"frame-{index:03d}.png"), "wb") as f:
            f.write(png(width, height, rows))
        black = rows.count(0) - height  # each row's filter byte is 0 too
        lines.append(f"{index},{zoom:g},{time.perf_counter() - started:.3f},{black}")
        print(f"frame {index + 1}/{frames} rendered", flush=True)
    with open(os.path.join(output_dir, "frames.csv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return {"frames": frames, "files": [f"frame-{i:03d}.png" for i in range(frames)] + ["frames.csv"]}
