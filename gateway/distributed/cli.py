"""Entry points that need Ray, with a clear message where the extra is missing."""

from __future__ import annotations

import sys

from gateway.settings import Settings

MISSING_RAY = (
    "gateway: Ray is not installed; install the extra: pip install 'embedding-gateway[ray]'"
)


def serve_on_ray(settings: Settings) -> int:
    """`gateway serve --ray`."""
    from gateway.distributed.options import OptionsError, RayServeOptions

    try:  # before importing Ray, which takes seconds
        options = RayServeOptions.load()
    except OptionsError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    try:
        from gateway.distributed.serve_app import run
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] in {"ray", "starlette"}:
            print(MISSING_RAY, file=sys.stderr)
            return 2
        raise
    run(settings, options)
    return 0
