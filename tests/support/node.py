"""Node.js and the JavaScript clients of tests/js (installed by `npm ci` from the lockfile)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from tools.paths import REPO

JS_DIR = REPO / "tests" / "js"


def ensure_js_clients() -> str:
    """The node binary, with tests/js/node_modules installed (`make test` runs `npm ci` first;
    a bare pytest run installs them here, from the committed package-lock.json)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "Node.js 20+ and npm are needed for the JavaScript client tests"
    if not (JS_DIR / "node_modules").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True, timeout=600)
    return node


def run_client(node: str, scenario: str, base_url: str, model: str) -> dict[str, Any]:
    """Run one scenario of tests/js/clients.mjs; its JSON output, or a failure with stderr."""
    done = subprocess.run(
        [node, "clients.mjs", scenario, base_url, model],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{scenario} failed:\n{done.stderr}\n{done.stdout}"
    return json.loads(done.stdout)  # type: ignore[no-any-return]
