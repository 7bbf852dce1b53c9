"""End to end through the CLI and the Python API on shipped data: predictions equal evaluation,
bad input gives one clear message and leaves no run folder behind."""

import gzip
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import forgeml
from forgeml.cli import main
from forgeml.errors import BundleError, ConfigError, DataError
from tests.conftest import quick

ADULT_COLUMNS = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation", "relationship",
                 "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country", "income"]


@pytest.fixture(scope="module")
def adult_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return forgeml.train("examples/adult-mlp.yaml", {"runs_dir": str(runs), "data.limit": 4000, "train.epochs": 2,
                                                     "train.progress": False, "train.tensorboard": False})


def test_predicting_raw_rows_gives_exactly_what_evaluation_gave(adult_run):
    metrics = json.loads((adult_run / "metrics.json").read_text())["test"]
    raw = pd.read_csv("data/adult/adult.test.gz", header=None, names=ADULT_COLUMNS, skipinitialspace=True, comment="|",
                      na_values=["?"])
    truth = raw.pop("income").str.rstrip(".")
    rows = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in raw.to_dict("records")]
    model = forgeml.load(adult_run)
    preds = model.predict(rows)
    accuracy = np.mean([p["label"] == t for p, t in zip(preds, truth)])
    assert accuracy == pytest.approx(metrics["accuracy"], abs=1e-6)
    assert len(preds) == metrics["n"] == 16281
    assert metrics["accuracy"] > 0.8  # majority class is 0.76


def test_evaluate_on_a_new_file_and_predict_from_the_cli(adult_run, tmp_path, capsys):
    assert main(["evaluate", str(adult_run), "--data", "data/adult/adult.test.gz", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["file:adult.test.gz"]["n"] == 16281
    sample = tmp_path / "people.csv"
    with gzip.open("data/adult/adult.test.gz", "rt") as fh:
        sample.write_text("".join(fh.readlines()[1:4]))  # three raw rows, header-less like the training file
    assert main(["predict", str(adult_run), str(sample), "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3 and {"input", "label", "confidence", "probabilities"} <= set(lines[0])
    row = json.dumps({c: v for c, v in zip(ADULT_COLUMNS[:-1], [39, "State-gov", 77516, "Bachelors", 13, "Never-married",
                      "Adm-clerical", "Not-in-family", "White", "Male", 2174, 0, 40, "United-States"])})
    assert main(["predict", str(adult_run), row]) == 0
    assert "<=50K" in capsys.readouterr().out


def test_predict_image_files_and_regression(runs, tmp_path, capsys):
    from forgeml.data.sources.arrays import read_idx

    assert main(["train", "examples/mnist-cnn.yaml", *quick(runs, "data.limit=500", "train.epochs=1")]) == 0
    image = tmp_path / "seven.png"
    Image.fromarray(read_idx("data/mnist/t10k-images-idx3-ubyte.gz")[0]).save(image)
    capsys.readouterr()
    assert main(["predict", str(runs / "mnist-cnn"), str(image), "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)
    assert pred["input"] == "seven.png" and set(pred["probabilities"]) == {str(i) for i in range(10)}
    assert main(["predict", str(runs / "mnist-cnn"), "data/adult/adult.names"]) == 2  # not images: clear error
    assert "this model takes images" in capsys.readouterr().err.replace("\n", "")


def test_config_show_prints_every_default(capsys):
    assert main(["config", "show", "examples/digits-cnn.yaml", "--set", "train.lr=0.01"]) == 0
    out = capsys.readouterr().out
    assert "lr: 0.01" in out and "clip_grad_norm: null" in out and "precision: auto" in out


def test_training_twice_never_overwrites_a_finished_run(runs):
    args = ["train", "examples/wine-regression.yaml", *quick(runs, "train.epochs=1")]
    assert main(args) == 0 and main(args) == 0
    assert (runs / "wine-regression").is_dir() and (runs / "wine-regression-2").is_dir()
    first = (runs / "wine-regression" / "model.safetensors").stat().st_mtime_ns
    assert main([*args, "--overwrite"]) == 0
    assert (runs / "wine-regression" / "model.safetensors").stat().st_mtime_ns != first
    assert not (runs / "wine-regression-3").exists()


BAD = [
    (["--set", "train.epoch=3"], "did you mean train.epochs?"),
    (["--set", "train.lr=fast"], "train.lr: got 'fast'"),
    (["--set", "data.path=data/nope.csv"], "data/nope.csv: no such file"),
    (["--set", "data.target=incme"], "no target column 'incme'"),
]


@pytest.mark.parametrize("extra, message", BAD)
def test_bad_input_is_one_clear_message_and_no_run_folder(runs, capsys, extra, message):
    assert main(["train", "examples/adult-mlp.yaml", *quick(runs), *extra]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert message in err and "Traceback" not in err
    assert list(runs.iterdir()) == []


def test_csv_with_unparseable_rows_and_a_missing_target_column(runs, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,label\n1,2,x\n3,4,5,6\n")
    with pytest.raises(DataError, match="cannot parse as csv"):
        forgeml.train({"data": {"path": str(bad)}, "runs_dir": str(runs)})
    text = tmp_path / "text.csv"
    text.write_text("a,label\n1,x\nnot-a-number,y\n2,x\n")
    with pytest.raises(DataError, match="column 'a' line 3: 'not-a-number' is not a number"):
        forgeml.train({"data": {"path": str(text), "features": {"a": "numeric"}, "split": {"val": 0, "test": 0}},
                       "model": {"name": "mlp"}, "runs_dir": str(runs)})
    assert list(runs.iterdir()) == []


def test_image_that_will_not_decode(runs, tmp_path):
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "imgs" / cls / "ok.png")
    (tmp_path / "imgs" / "b" / "bad.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match="bad.jpg: cannot decode as an image"):
        forgeml.train({"data": {"path": str(tmp_path / "imgs")}, "runs_dir": str(runs)})
    assert list(runs.iterdir()) == []


def test_bundle_missing_a_file(adult_run, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(adult_run, broken)
    (broken / "features.json").unlink()
    with pytest.raises(BundleError, match="missing features.json"):
        forgeml.load(broken)
    with pytest.raises(BundleError, match="no such run folder"):
        forgeml.load(tmp_path / "nothing")


def test_cli_errors_exit_nonzero_without_traceback(runs):
    proc = subprocess.run([sys.executable, "-m", "forgeml", "train", "examples/adult-mlp.yaml", "--set", "trian.lr=1",
                           "--set", f"runs_dir={runs}"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "did you mean train?" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "forgeml", "evaluate", str(runs / "nope")], capture_output=True, text=True)
    assert proc.returncode == 2 and "no such run folder" in proc.stderr


def test_python_trainer_on_a_users_own_module():
    import torch

    x = torch.randn(256, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    net = torch.nn.Linear(4, 1)
    result = forgeml.Trainer(net, lambda out, t: torch.nn.functional.mse_loss(out.squeeze(1), t), optimizer="adam",
                             lr=0.05, epochs=30, batch_size=32, progress=False).fit((x, y))
    assert result.steps == 240
    assert torch.allclose(net.weight.detach(), torch.tensor([[1.0, -2.0, 0.5, 3.0]]), atol=0.05)


def test_config_errors_from_python_are_config_errors():
    with pytest.raises(ConfigError):
        forgeml.train({"train": {"epochz": 1}})


def test_a_failed_overwrite_puts_the_old_run_back(runs):
    from forgeml.training.callbacks import Callback

    class Boom(Callback):
        def on_step_end(self, trainer):
            raise RuntimeError("boom")

    overrides = {"runs_dir": str(runs), "train.epochs": 1, "train.progress": False, "train.tensorboard": False}
    run = forgeml.train("examples/wine-regression.yaml", overrides)
    before = (run / "model.safetensors").read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        forgeml.train("examples/wine-regression.yaml", overrides, overwrite=True, callbacks=[Boom()])
    assert (run / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in runs.iterdir()) == ["wine-regression"]


def test_monitor_must_be_measured(runs):
    with pytest.raises(ConfigError, match="train.monitor: 'val.acuracy'.*did you mean val.accuracy"):
        forgeml.train("examples/adult-mlp.yaml", {"runs_dir": str(runs), "train.monitor": "val.acuracy"})
    with pytest.raises(ConfigError, match="for a regression run"):
        forgeml.train("examples/wine-regression.yaml", {"runs_dir": str(runs), "train.monitor": "val.accuracy"})
    assert list(runs.iterdir()) == []


def test_resume_refuses_an_edited_config_yaml(runs):
    from forgeml import pipeline
    from tests.training.test_resume import InterruptAt

    with pytest.raises(KeyboardInterrupt) as info:
        forgeml.train("examples/wine-regression.yaml", {"runs_dir": str(runs), "train.progress": False,
                                                        "train.tensorboard": False}, callbacks=[InterruptAt(5)])
    run = info.value.run
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.replace("lr: 0.002", "lr: 0.02"))
    with pytest.raises(BundleError, match="edited since the run started"):
        pipeline.resume(run)


def test_a_custom_model_bundle_does_not_run_code_unless_trusted(runs, tmp_path):
    cfg = {"runs_dir": str(runs), "data": {"path": "data/wine_quality/winequality-red.csv", "sep": ";", "target": "quality",
                                           "task": "regression"},
           "model": {"name": "custom", "target": "tests.models.test_models:Tiny"},
           "train": {"epochs": 1, "progress": False, "tensorboard": False}}
    run = forgeml.train(cfg)
    with pytest.raises(BundleError, match="tests.models.test_models:Tiny.*--trust-code"):
        forgeml.load(run)
    assert forgeml.load(run, trust_code=True).task == "regression"


def test_missing_training_labels_are_an_error(tmp_path, runs):
    bad = tmp_path / "t.csv"
    bad.write_text("a,label\n1,x\n2,\n3,y\n4,x\n")
    with pytest.raises(DataError, match="line 3: target 'label' is missing"):
        forgeml.train({"runs_dir": str(runs), "data": {"path": str(bad), "split": {"val": 0, "test": 0}}, "model": {"name": "mlp"}})


def test_ctrl_c_in_the_cli_saves_a_resumable_run(runs):
    import signal
    import time

    args = [sys.executable, "-m", "forgeml", "train", "examples/shakespeare-gpt.yaml", "--set", f"runs_dir={runs}",
            "--set", "train.max_steps=100000", "--set", "train.log_every_steps=5", "--set", "model.n_layer=1",
            "--set", "train.progress=false", "--set", "train.tensorboard=false"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    history = runs / "shakespeare-gpt" / "history.jsonl"
    deadline = time.time() + 120
    while not (history.is_file() and history.read_text().strip()) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)  # a real Ctrl-C
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and f"forgeml train --resume {runs / 'shakespeare-gpt'}" in err.replace("\n", "")
    meta = json.loads((runs / "shakespeare-gpt" / "meta.json").read_text())
    assert meta["status"] == "interrupted" and (runs / "shakespeare-gpt" / "checkpoints" / "last.pt").is_file()


def test_training_without_a_validation_split_says_what_it_gives_up(runs, tmp_path, capsys):
    for name in ("train.csv", "test.csv"):
        (tmp_path / name).write_text("a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40)))
    config = tmp_path / "noval.yaml"
    config.write_text(f"data: {{path: {tmp_path / 'train.csv'}, test_path: {tmp_path / 'test.csv'}, split: {{val: 0}}}}\n"
                      "model: {name: mlp, hidden: [4]}\ntrain: {epochs: 1, batch_size: 16}\n")
    assert main(["train", str(config), *quick(runs)]) == 0
    err = capsys.readouterr().err
    assert "warning: no validation split (data.split.val is 0 and no data.val_path)" in err
    assert "the bundle keeps the last weights" in err
