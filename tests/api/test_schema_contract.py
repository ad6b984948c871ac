"""The OpenAPI document is the contract: schemathesis drives every operation of the server's own
/docs/openapi.json (but the destructive pull and delete) and checks each answer against it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tools.gateway_server import GatewayServer

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
DESTRUCTIVE = ("/api/pull", "/api/delete")
# 25 operations: with 40 examples each, about 1,700 cases (with the coverage phase's own) in
# under two minutes here; SCHEMATHESIS_EXAMPLES=200 for a deeper run.
EXAMPLES_PER_OPERATION = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "40"))


def test_every_answer_matches_the_openapi_document(server: GatewayServer, tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/docs/openapi.json",
        "--checks", ",".join(CHECKS),
        "--max-examples", str(EXAMPLES_PER_OPERATION),
        "--seed", "14",
        "--workers", "2",
        "--request-timeout", "60",
        "--phases", "examples,coverage,fuzzing",
        "--report", "junit",
        "--report-dir", str(tmp_path),
        *(arg for path in DESTRUCTIVE for arg in ("--exclude-path", path)),
    ]  # fmt: skip
    env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-12000:]
    summary = output[output.rindex("Test cases:") :]
    generated = int(summary.split()[2])
    print(" ".join(summary.split()[:6]))
    assert generated >= 1000, summary  # the run really exercised the API
    assert f"{generated} generated, {generated} passed" in summary, summary
