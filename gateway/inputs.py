"""What a client asked to embed, independent of the wire format it came in.

A bare string is ambiguous until the model is known: for an image model, a URL or a data URL is an
image and anything else is text for the model of its space; for every other model it is text.
Jina-style objects (`{"text": ...}`, `{"image": ...}`) say what they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.media import looks_like_url


@dataclass(frozen=True, slots=True)
class TextInput:
    text: str


@dataclass(frozen=True, slots=True)
class ImageInput:
    """A URL, a data URL, or raw base64 bytes of an encoded image."""

    reference: str


EmbedInput = str | TextInput | ImageInput


def is_image_reference(value: str) -> bool:
    value = value.strip()
    if value[:11].lower() == "data:image/":
        return True
    return looks_like_url(value) and not any(c.isspace() for c in value)


def resolve_input(value: EmbedInput, *, images_first: bool) -> TextInput | ImageInput:
    """Decide what a bare string is; `images_first` for models that embed images."""
    if not isinstance(value, str):
        return value
    if images_first and is_image_reference(value):
        return ImageInput(value)
    return TextInput(value)
