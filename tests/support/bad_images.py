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


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """A well-formed JPEG as (marker, bytes) pieces; a scan's piece holds its entropy data."""
    pieces, pos = [(0xD8, data[:2])], 2
    while data[pos + 1] != 0xD9:
        end = pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if data[pos + 1] == 0xDA:  # entropy-coded data runs to the next real marker
            while data[end] != 0xFF or data[end + 1] == 0 or 0xD0 <= data[end + 1] <= 0xD7:
                end += 1
        pieces.append((data[pos + 1], data[pos:end]))
        pos = end
    return [*pieces, (0xD9, data[pos : pos + 2])]


def many_scans_jpeg(width: int, height: int, scans: int, *, junk: bytes = b"") -> bytes:
    """A valid progressive grey JPEG whose last scan is repeated `scans` times (`junk` before
    each copy, which libjpeg skips): a few KB that libjpeg decodes in time scans x pixels."""
    out = io.BytesIO()
    Image.new("L", (width, height), 128).save(out, "JPEG", progressive=True, quality=50)
    pieces = jpeg_segments(out.getvalue())
    last_scan = [piece for marker, piece in pieces if marker == 0xDA][-1]
    body = b"".join(piece for marker, piece in pieces[:-1])
    return body + (junk + last_scan) * scans + b"\xff\xd9"
