"""`bench show METHOD` and `bench ls methods -v`: every parameter with its type, default and meaning, the
LoRA healing parameters any method takes, and a CPU-cost class."""

from __future__ import annotations

import json

from bench.cli import main


def test_show_lists_parameters_with_types_defaults_and_meaning(capsys):
    assert main(["show", "LaCo", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    rows = {r["parameter"]: r for r in shown["parameters"]}
    assert rows["threshold"]["default"] == 0.45 and rows["threshold"]["type"] == "float"
    assert rows["threshold"]["meaning"].startswith("T (official")
    assert rows["merge"]["type"] == "paper | official"
    assert rows["heal"]["group"] == "any method" and rows["lora_r"]["default"] == 8
    assert shown["cpu_cost"] == "search"


def test_show_reads_inherited_training_parameters(capsys):
    assert main(["show", "streamline", "--json"]) == 0
    rows = {r["parameter"]: r for r in json.loads(capsys.readouterr().out)["parameters"]}
    assert rows["train_samples"]["default"] == 128 and "training windows" in rows["train_samples"]["meaning"]
    assert rows["objective"]["type"] == "mse | lm | kd" and rows["objective"]["default"] == "lm"


def test_show_text_names_the_quick_preset_settings(capsys):
    assert main(["show", "streamline"]) == 0
    out = capsys.readouterr().out
    assert "train_samples=32" in out and "--param streamline." in out


def test_ls_methods_verbose_has_cost_and_defaults(capsys):
    assert main(["ls", "methods", "-v", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["shortgpt"]["CPU cost"] == "pass" and rows["random"]["CPU cost"] == "none"
    assert "threshold=0.45" in rows["laco"]["parameters"]


def test_show_unknown_method_suggests(capsys):
    assert main(["show", "Shortgtp"]) == 2
    assert "did you mean shortgpt" in capsys.readouterr().err
