"""`bench prune` and `bench ls` end to end (tiny model saved to a local folder)."""

import json
import subprocess
import sys

import pytest
import torch
from tiny import tiny_model
from transformers import AutoModelForCausalLM

from bench.cli import main


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-llama")
    model, tok = tiny_model("llama", n_layers=6)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    text = tmp_path_factory.mktemp("calib") / "calib.txt"
    text.write_text("\n\n".join(f"Paragraph {i}: the Eiffel Tower stands in Paris by the Seine." * 3
                                for i in range(30)))
    return folder, text


def test_prune_writes_stock_checkpoint(tiny_folder, tmp_path, capsys):
    folder, text = tiny_folder
    out = tmp_path / "pruned"
    code = main(["prune", "--model", str(folder), "--method", "shortgpt", "--layers", "2", "--calib", str(text),
                 "--calib-samples", "4", "--calib-seq-len", "16", "--device", "cpu", "--dtype", "float32",
                 "--out", str(out)])
    assert code == 0
    assert "removed dense layers" in capsys.readouterr().out
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert model.config.num_hidden_layers == 4 and len(model.model.layers) == 4
    plan = json.loads((out / "plan.json").read_text())
    assert plan["method"] == "shortgpt" and plan["layers_removed"] == 2
    card = (out / "README.md").read_text()
    assert card.startswith("---\nbase_model: ") and "library_name: transformers" in card


def test_prune_with_method_param(tiny_folder, tmp_path):
    folder, _ = tiny_folder
    out = tmp_path / "last"
    assert main(["prune", "--model", str(folder), "--method", "last", "--layers", "1", "--param", "keep_last=true",
                 "--device", "cpu", "--dtype", "float32", "--out", str(out)]) == 0
    assert json.loads((out / "plan.json").read_text())["removed_original"] == [4]


@pytest.mark.parametrize("argv, needle", [
    (["--method", "shortgtp", "--layers", "1"], "did you mean shortgpt"),
    (["--method", "laco", "--layers", "1", "--param", "treshold=0.3"], "unknown parameter of laco"),
    (["--method", "laco", "--layers", "1", "--param", "threshold"], "malformed --param"),
    (["--method", "shortgpt", "--ratio", "1.5"], "outside (0, 1)"),
    (["--method", "shortgpt", "--layers", "6"], "leaves no layer"),
])
def test_prune_bad_input_is_one_line_exit_2(tiny_folder, tmp_path, capsys, argv, needle):
    folder, text = tiny_folder
    out = tmp_path / "never"
    code = main(["prune", "--model", str(folder), "--calib", str(text), "--calib-samples", "4",
                 "--calib-seq-len", "16", "--device", "cpu", "--out", str(out), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_ls_methods_imports_no_torch():
    code = ("import sys; from bench.cli import main; rc = main(['ls', 'methods', '--json']); "
            "assert rc == 0; assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert {r["name"] for r in rows} >= {"shortgpt", "streamline", "laco", "last", "angular", "random"}
