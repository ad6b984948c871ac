"""GATEWAY_MALLOC_ARENAS: the cap reaches glibc, counted from malloc_info's own report."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from gateway.memory import limit_malloc_arenas

# Four threads alive at once, each allocating from the C heap (blocks over pymalloc's 512 bytes,
# under the mmap threshold); then glibc's malloc_info lists one <heap> per arena.
PROBE = textwrap.dedent(
    """
    import ctypes, sys, tempfile, threading
    from gateway.memory import limit_malloc_arenas
    if sys.argv[1] != "none":
        print(limit_malloc_arenas(int(sys.argv[1]), environ={}), file=sys.stderr)
    barrier = threading.Barrier(5)
    def work():
        blocks = [bytearray(50_000) for _ in range(20)]
        barrier.wait()
        barrier.wait()
        del blocks
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads: t.start()
    barrier.wait()
    libc = ctypes.CDLL("libc.so.6")
    libc.fopen.restype = ctypes.c_void_p
    libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
    libc.fclose.argtypes = (ctypes.c_void_p,)
    with tempfile.NamedTemporaryFile(suffix=".xml") as out:
        stream = libc.fopen(out.name.encode(), b"w")
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        print(open(out.name).read().count("<heap nr="))
    barrier.wait()
    for t in threads: t.join()
    """
)


def _arenas(cap: str) -> int:
    env = {"PATH": "/usr/bin:/bin"}  # no MALLOC_ARENA_MAX from the caller
    done = subprocess.run(
        [sys.executable, "-c", PROBE, cap], capture_output=True, text=True, env=env, check=True
    )
    return int(done.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_the_cap_limits_the_arenas_threads_get() -> None:
    assert _arenas("none") >= 4  # glibc's default: a fresh arena for each busy thread
    assert _arenas("2") <= 2


def test_the_environment_and_zero_leave_glibc_alone() -> None:
    assert "from the environment" in limit_malloc_arenas(2, environ={"MALLOC_ARENA_MAX": "4"})
    assert "glibc default" in limit_malloc_arenas(0, environ={})
