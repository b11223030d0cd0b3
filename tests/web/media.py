"""Pictures of a pass QR for the browser tests: a Y4M file for Chromium's fake camera and a
PNG for the photo input. Made from the QR text with segno (QR level M, as the pass app)."""

from __future__ import annotations

import io
from pathlib import Path

import segno

WIDTH, HEIGHT = 640, 480


def qr_matrix(text: str) -> list[list[bool]]:
    qr = segno.make(text, error="m", micro=False, boost_error=False)
    return [[bool(cell) for cell in row] for row in qr.matrix], qr.version


def luma_frame(text: str, width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """A grey-level picture (Y plane): the QR, with its quiet zone, centred on white."""
    matrix, _ = qr_matrix(text)
    modules = len(matrix) + 8  # 4-module quiet zone on each side
    scale = max(1, min(width, height) * 9 // 10 // modules)
    size = modules * scale
    left, top = (width - size) // 2, (height - size) // 2
    rows = bytearray(b"\xeb" * (width * height))  # video white (235)
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            if not dark:
                continue
            y0, x0 = top + (r + 4) * scale, left + (c + 4) * scale
            for y in range(y0, y0 + scale):
                start = y * width + x0
                rows[start:start + scale] = b"\x10" * scale  # video black (16)
    return bytes(rows)


def write_y4m(path: Path, text: str, frames: int = 1) -> Path:
    """YUV 4:2:0 (C420) with neutral chroma; one frame is enough (the fake camera loops it)."""
    y = luma_frame(text)
    chroma = b"\x80" * ((WIDTH // 2) * (HEIGHT // 2))
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + y + chroma + chroma)
    return path


def write_blank_y4m(path: Path) -> Path:
    y = b"\xeb" * (WIDTH * HEIGHT)
    chroma = b"\x80" * ((WIDTH // 2) * (HEIGHT // 2))
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode())
        f.write(b"FRAME\n" + y + chroma + chroma)
    return path


def png(text: str) -> bytes:
    buf = io.BytesIO()
    segno.make(text, error="m", micro=False, boost_error=False).save(buf, kind="png", scale=8, border=4)
    return buf.getvalue()
