"""`gateway serve --help` documents every setting: its flag, environment variable and default.

The shown default is checked by meaning: fed back through its environment variable, it must give
the setting's actual default (so "5m" for 300 seconds passes, a stale "10m" fails).
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys

import pytest

from gateway.settings import Settings
from tools.paths import REPO

SETTINGS = [f for f in dataclasses.fields(Settings) if "env" in f.metadata]


@pytest.fixture(scope="module")
def help_text() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "100"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return " ".join(result.stdout.split())  # argparse wraps lines; compare words, not layout


def test_every_setting_is_a_settings_field_with_an_env_var() -> None:
    assert len(SETTINGS) == len(dataclasses.fields(Settings)), "every setting has an env var"
    assert {"host", "port", "api_keys", "cors_origins", "keep_alive"} <= {f.name for f in SETTINGS}


@pytest.mark.parametrize("setting", SETTINGS, ids=[f.name for f in SETTINGS])
def test_help_lists_flag_env_and_default(help_text: str, setting: dataclasses.Field) -> None:
    flag = "--" + setting.name.replace("_", "-")
    env = setting.metadata["env"]
    match = re.search(rf"{re.escape(flag)} VALUE (.+?) \[env {env}; default ([^\]]*)\]", help_text)
    assert match, f"{flag} / {env} not documented in:\n{help_text}"
    description, shown = match.groups()
    assert description.strip(), f"{flag} has no description"
    raw = "" if shown in ("(empty)", "(none)") else shown
    parsed = getattr(Settings.load(environ={env: raw}), setting.name)
    assert parsed == setting.default, f"{flag}: help says {shown!r}, default is {setting.default!r}"


def test_well_known_defaults(help_text: str) -> None:
    assert "--port VALUE" in help_text and "[env GATEWAY_PORT; default 11434]" in help_text
    assert "[env GATEWAY_HOST; default 127.0.0.1]" in help_text
    assert "[env GATEWAY_API_KEYS; default (empty)]" in help_text
