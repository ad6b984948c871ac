"""Process-wide settings: the `Settings` dataclass, one home for every knob that is not a per-model
fact, with its loading and `--help` description. Each setting is read from its environment
variable and can be overridden by the matching `gateway serve` flag; per-model facts live in
registry.yaml instead. The fields are declared by concern in gateway.server_settings and
gateway.model_settings; how a field is declared, parsed and shown lives in gateway.setting_fields.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.model_settings import ImageSettings, InferenceSettings, MemorySettings
from gateway.server_settings import ConnectionSettings, ServerSettings
from gateway.setting_fields import SettingsError as SettingsError  # re-exported
from gateway.setting_fields import describe_fields, load_fields, public_view_of

# GATEWAY_MAX_BATCH_TOKENS=auto, per device. On the CPU a run's working memory grows with its
# padded tokens (a MiniLM server's RSS peaked at 1.6 GiB at 16384, 0.6 GiB at 4096) while its
# speed did not drop (four runs of 16 x 256 took 0.91-1.01x one of 64 x 256): docs/memory.md.
AUTO_BATCH_TOKENS = {"cpu": 4096, "cuda": 16384}


# A dataclass takes its bases' fields in reverse order of the bases: this list, last group
# first, keeps the fields (and so `gateway serve --help`, the docs and /info) in the order
# server, inference, images, memory, connections.
@dataclass(frozen=True)
class Settings(
    ConnectionSettings, MemorySettings, ImageSettings, InferenceSettings, ServerSettings
):
    """Every setting: the groups' fields, with their loading and views."""

    def batch_tokens(self, device: str) -> int:
        """GATEWAY_MAX_BATCH_TOKENS on `device` (cpu or cuda)."""
        return self.max_batch_tokens or AUTO_BATCH_TOKENS[device]

    def public_view(self) -> dict[str, Any]:
        """Settings as shown by /info: secrets reduced to a count."""
        return public_view_of(self)

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, overrides: Mapping[str, str] | None = None
    ) -> Settings:
        """Build settings from the environment, then from flag overrides (both as text)."""
        environ = os.environ if environ is None else environ
        return cls(**load_fields(cls, environ, overrides or {}))


def describe_settings() -> list[tuple[str, str, str, str]]:
    """(flag, env var, default, help) for every setting, for `gateway serve --help`."""
    return describe_fields(Settings)


def settings_field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Settings)]
