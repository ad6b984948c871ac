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
    import ray

    try:
        run(settings, options)
    except (ConnectionError, RuntimeError, ray.exceptions.RayError) as exc:
        # No cluster at GATEWAY_RAY_ADDRESS, a port in use, a replica that failed to start:
        # Ray's message ends with the reason, after tracebacks of its own workers.
        print(f"gateway: Ray Serve did not start: {last_line(exc)}", file=sys.stderr)
        ray.shutdown()
        return 1
    return 0


def last_line(exc: BaseException) -> str:
    """The last non-blank line of an error's text (Ray's end with the reason after the
    tracebacks of its own workers), or its type's name."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
