"""Run a command while busy loops keep some CPU cores busy, then stop them.

`python -m tools.cpu_hog [--cores N] [--max-seconds S] -- COMMAND...` runs COMMAND with N
processes spinning (one core each), and stops them when COMMAND ends, however it ends. The
hogs also stop by themselves after S seconds, so a killed parent never leaves them behind. It
exits with COMMAND's status. `make test-contended` runs `make test` this way (issue 17: the gate
must pass on a busy machine).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import subprocess
import sys
import time


def spin(until: float) -> None:
    """Burn one core until the monotonic clock reaches `until`, or the parent is gone."""
    parent = os.getppid()
    while time.monotonic() < until:
        for _ in range(100_000):
            pass
        if os.getppid() != parent:
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.cpu_hog", description=__doc__)
    parser.add_argument("--cores", type=int, default=1, help="cores to keep busy (default 1)")
    parser.add_argument(
        "--max-seconds", type=float, default=7200, help="the hogs' own time limit (default 7200)"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")
    if args.cores < 0:
        parser.error("--cores must be 0 or more")

    until = time.monotonic() + args.max_seconds
    hogs = [
        multiprocessing.Process(target=spin, args=(until,), name=f"cpu-hog-{i}", daemon=True)
        for i in range(args.cores)
    ]
    for hog in hogs:
        hog.start()
    pids = " ".join(str(hog.pid) for hog in hogs)
    print(f"cpu_hog: {args.cores} busy loop(s) (pid {pids}) while running: {' '.join(command)}")
    started = time.monotonic()
    try:
        status = subprocess.call(command)
    except KeyboardInterrupt:
        status = 128 + signal.SIGINT
    finally:
        for hog in hogs:
            hog.terminate()
        for hog in hogs:
            hog.join(timeout=10)
    print(f"cpu_hog: command exited {status} after {time.monotonic() - started:.0f}s; hogs stopped")
    return status


if __name__ == "__main__":
    sys.exit(main())
