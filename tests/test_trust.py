"""A bundle is data: nothing its config names is imported unless the user passes --trust-code.

Each crafted bundle is a real tiny run whose config.yaml was edited to name a module (written into a
temporary folder on PYTHONPATH) that leaves a marker file when imported or called, with meta.json's
config digest recomputed so that the resume guard passes, as an attacker's would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import forgeml
from forgeml import pipeline
from forgeml.config import Config
from forgeml.errors import BundleError
from forgeml.report.build import write_report
from tests.conftest import ROOT

PROBE = "forge_trust_probe"
TARGET = f"{PROBE}:Net"
PROBE_CODE = '''
import pathlib

import torch

MARKER = pathlib.Path(__file__).with_name("ran")
MARKER.write_text("imported")  # what a malicious bundle's code could do instead


class Net(torch.nn.Module):
    def __init__(self, in_features, n_outputs):
        super().__init__()
        MARKER.write_text("called")
        self.net = torch.nn.Linear(in_features, n_outputs)

    def forward(self, x):
        return self.net(x)
'''
FLOWER = json.dumps({"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2})
QUIET = {"train.progress": False, "train.tensorboard": False}


@pytest.fixture(scope="module")
def code(tmp_path_factory) -> Path:
    """A folder holding the probe module, on sys.path for this module's tests."""
    folder = tmp_path_factory.mktemp("code")
    (folder / f"{PROBE}.py").write_text(PROBE_CODE)
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))
    sys.modules.pop(PROBE, None)


def fresh(code: Path) -> Path:
    """No marker and no imported probe: the next import or call of it leaves the marker again."""
    sys.modules.pop(PROBE, None)
    (code / "ran").unlink(missing_ok=True)
    return code / "ran"


def craft(run: Path, dest: Path, status: str) -> Path:
    """A copy of `run` whose config names the probe, with a matching config digest and the given status."""
    shutil.copytree(run, dest)
    cfg = yaml.safe_load((dest / "config.yaml").read_text())
    cfg["model"] = {"name": "custom", "target": TARGET}
    (dest / "config.yaml").write_text(yaml.safe_dump(cfg))
    meta = json.loads((dest / "meta.json").read_text())
    meta.update(status=status, config_digest=pipeline.config_digest(Config.model_validate(cfg)))
    (dest / "meta.json").write_text(json.dumps(meta))
    return dest


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, code) -> dict[str, Path]:
    """Crafted bundles of both kinds, complete and interrupted, and a genuine custom run."""
    runs = tmp_path_factory.mktemp("runs")
    table = forgeml.train({"runs_dir": str(runs), "name": "iris", "data": {"path": "sklearn:iris"}, "model": {"name": "mlp"},
                           "train": {"epochs": 1, **{k.split(".")[1]: v for k, v in QUIET.items()}}})
    gpt = forgeml.train("examples/shakespeare-gpt.yaml", {
        "runs_dir": str(runs), "train.max_steps": 2, "train.warmup_steps": 1, "train.eval_every_steps": 2, "train.eval_batches": 1,
        "model.n_layer": 1, "model.n_head": 2, "model.n_embd": 16, "model.block_size": 16, **QUIET})
    custom = forgeml.train({"runs_dir": str(runs), "name": "custom", "data": {"path": "sklearn:iris"},
                            "model": {"name": "custom", "target": TARGET},
                            "train": {"epochs": 1, **{k.split(".")[1]: v for k, v in QUIET.items()}}})
    out = {"custom": custom}
    for kind, run in (("table", table), ("gpt", gpt)):
        out[kind] = craft(run, runs / f"crafted-{kind}", "complete")
        out[f"{kind}-interrupted"] = craft(run, runs / f"crafted-{kind}-interrupted", "interrupted")
    return out


def cli(code: Path, *args: str) -> subprocess.CompletedProcess:
    path = os.pathsep.join([str(code), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "forgeml", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": path})


COMMANDS = {  # each command line, given a complete crafted run and an interrupted one
    "report": lambda run, stopped: ["report", run],
    "train --resume": lambda run, stopped: ["train", "--resume", stopped],
    "predict": lambda run, stopped: ["predict", run, FLOWER],
    "evaluate": lambda run, stopped: ["evaluate", run],
    "generate": lambda run, stopped: ["generate", run, "--prompt", "a", "--max-new-tokens", "2"],
}


@pytest.mark.parametrize(("command", "kind"), [(c, k) for c in COMMANDS for k in ("table", "gpt") if (c, k) != ("generate", "table")])
def test_every_command_refuses_a_bundle_that_names_code(bundles, code, command, kind):
    args = COMMANDS[command](bundles[kind], bundles[f"{kind}-interrupted"])
    marker = fresh(code)
    result = cli(code, *args)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert TARGET in lines[0] and "--trust-code" in lines[0]
    assert not marker.exists()


def test_compare_reads_no_code(bundles, code, tmp_path):
    marker = fresh(code)
    result = cli(code, "compare", bundles["table"], bundles["gpt"], "--out", tmp_path / "compare.html")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "compare.html").is_file() and not marker.exists()


@pytest.mark.parametrize("kind", ["table", "gpt"])
def test_the_python_api_refuses_a_bundle_that_names_code(bundles, code, kind):
    marker = fresh(code)
    for call in (lambda: forgeml.load(bundles[kind]), lambda: forgeml.evaluate(bundles[kind]),
                 lambda: write_report(bundles[kind]), lambda: pipeline.resume(bundles[f"{kind}-interrupted"])):
        with pytest.raises(BundleError, match=rf"{TARGET}.*--trust-code.*trust_code=True"):
            call()
    assert not marker.exists()


def test_trust_code_loads_a_custom_model(bundles, code):
    marker = fresh(code)
    with pytest.raises(BundleError, match=TARGET):
        forgeml.load(bundles["custom"])
    assert not marker.exists()
    result = cli(code, "predict", bundles["custom"], FLOWER, "--json", "--trust-code")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["label"] in ("setosa", "versicolor", "virginica")
    assert marker.read_text() == "called"
    assert forgeml.load(bundles["custom"], trust_code=True).predict(json.loads(FLOWER))[0]["label"]


def test_trust_code_on_a_fresh_train_is_an_error(code):
    result = cli(code, "train", "examples/digits-cnn.yaml", "--trust-code")
    assert result.returncode == 2 and "--trust-code is for --resume" in result.stderr
