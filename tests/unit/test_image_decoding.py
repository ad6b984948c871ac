"""Decoding details of gateway.media.decode: high-depth transparency and the pixel limit."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from gateway.media import decode_image, image_stats
from gateway.media.decode import open_image


def sixteen_bit_grey_png(values: np.ndarray, transparent: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(values.astype(np.uint16)).save(out, "PNG", transparency=transparent)
    return out.getvalue()


def test_16_bit_grey_keeps_its_transparent_colour() -> None:
    # Column 0 is the transparent key; column 1 is 100/65535, which scales to the same 8-bit
    # grey (0) but is opaque; column 2 is mid grey.
    data = sixteen_bit_grey_png(np.array([[0, 100, 257 * 128]] * 2), transparent=0)
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    rgb = np.asarray(decode_image(data))
    assert rgb[0].tolist() == [[255, 255, 255], [0, 0, 0], [128, 128, 128]]
    assert open_image(data).mode == "LA"


def test_16_bit_grey_all_transparent_has_no_colours() -> None:
    data = sixteen_bit_grey_png(np.zeros((8, 8)), transparent=0)
    assert np.asarray(decode_image(data)).min() == 255  # white, as the 8-bit picture
    assert image_stats(data).color_data is None


def test_16_bit_grey_transparency_survives_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise
    out = io.BytesIO()
    values = np.zeros((10, 20), np.uint16)
    values[:, 0] = 65535  # the left column, opaque white -> the top row after rotation
    Image.fromarray(values).save(out, "PNG", transparency=0, exif=exif.tobytes())
    image = open_image(out.getvalue())
    assert (image.mode, image.size) == ("LA", (10, 20))
    alpha = np.asarray(image)[..., 1]
    assert alpha[0].tolist() == [255] * 10 and alpha[1:].max() == 0
