"""Images built to be refused: decompression bombs, real and header-only, and empty ones."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header states a size; its pixel data is a few bytes (a bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b""))  # fmt: skip


def real_bomb() -> bytes:
    """A genuine 8000 x 8000 grey PNG of zeros: 64 MP, about 60 KB compressed."""
    out = io.BytesIO()
    Image.new("L", (8000, 8000)).save(out, "PNG")
    return out.getvalue()
