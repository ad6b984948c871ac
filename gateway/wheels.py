"""Download one pinned wheel with byte progress.

pip (23.x) shows no machine-readable progress, so pip only *finds* the wheel: `pip install
--dry-run --report` resolves the pinned version against the user's index configuration and
names the file's URL and sha256. The file is then streamed here, with progress, and checked
against that hash. If any of that fails (an old pip, a proxy urllib cannot use), the caller
falls back to a plain `pip download`, which has no progress but the same result.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# total (None when unknown), bytes so far
ByteProgress = Callable[[int | None, int], None]
_CHUNK = 1 << 18
_TIMEOUT = 60.0


class WheelLookupError(RuntimeError):
    """pip could not name the wheel's URL; the caller falls back to `pip download`."""


@dataclass(frozen=True)
class WheelLocation:
    url: str
    sha256: str | None

    @property
    def filename(self) -> str:
        return urllib.parse.unquote(Path(urllib.parse.urlsplit(self.url).path).name)


def locate_wheel(package: str, version: str) -> WheelLocation:
    """The URL pip would download `package==version`'s wheel from (no install, no deps)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [
            sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
            "--no-deps", "--only-binary=:all:", "--ignore-requires-python",
            "--disable-pip-version-check", "--quiet", "--report", str(report),
            f"{package}=={version}",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not report.is_file():
            raise WheelLookupError((result.stderr or result.stdout).strip()[-500:])
        try:
            install = json.loads(report.read_text())["install"][0]
            info = install["download_info"]
            hashes = info.get("archive_info", {}).get("hashes", {})
            return WheelLocation(str(info["url"]), hashes.get("sha256"))
        except (KeyError, IndexError, ValueError) as exc:
            raise WheelLookupError(f"unexpected pip report: {exc}") from None


def _ssl_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    pip_cert = os.environ.get("PIP_CERT")
    if pip_cert and Path(pip_cert).is_file():
        context.load_verify_locations(cafile=pip_cert)
    return context


def download(location: WheelLocation, dest: Path, progress: ByteProgress) -> None:
    """Stream the wheel into `dest`, reporting bytes; check its sha256 when pip knew it."""
    digest = hashlib.sha256()
    done = 0
    parts = urllib.parse.urlsplit(location.url)
    with dest.open("wb") as out:
        if parts.scheme == "file":
            source = Path(urllib.request.url2pathname(parts.path))
            total: int | None = source.stat().st_size
            with source.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    progress(total, done)
        else:
            request = urllib.request.Request(location.url, headers={"User-Agent": "gateway"})
            with urllib.request.urlopen(request, timeout=_TIMEOUT, context=_ssl_context()) as resp:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                progress(total, 0)
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    progress(total, done)
    if location.sha256 is not None and digest.hexdigest() != location.sha256:
        raise OSError(f"{location.filename}: sha256 {digest.hexdigest()} != {location.sha256}")


def fetch_wheel(package: str, version: str, directory: Path, progress: ByteProgress) -> Path:
    """Download the wheel into `directory` with progress; raises on any failure."""
    location = locate_wheel(package, version)
    target = directory / location.filename
    try:
        download(location, target, progress)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target
