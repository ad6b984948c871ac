"""Where the repository and its bundled model files are, for tests, the bench and scripts."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO / "models"
