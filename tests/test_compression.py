"""The compress stage end to end through the CLI: --auto makes the variants that apply, measures them beside the
original, keeps the best within --max-drop in RUN-best (an ordinary bundle), and the table reaches the report."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'forgeml[onnx]'")

import forgeml  # noqa: E402
from forgeml.cli import main  # noqa: E402
from tests.conftest import quick  # noqa: E402

pytestmark = pytest.mark.slow


def test_auto_measures_every_variant_and_keeps_the_best_within_the_drop(runs, capsys):
    assert main(["train", "examples/adult-mlp.yaml", *quick(runs, "data.limit=3000", "train.epochs=3")]) == 0
    run = runs / "adult-mlp"
    capsys.readouterr()
    assert main(["compress", str(run), "--auto", "--max-drop", "100", "--target", "size", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "compression of" in out and "kept" in out
    table = json.loads((run / "compression.json").read_text())
    made = [(r["variant"], r["runtime"]) for r in table["rows"]]
    assert made == [("fp32", "PyTorch eager"), ("fp32", "ONNX Runtime"), ("int8", "ONNX Runtime"),
                    ("pruned50", "PyTorch eager"), ("pruned50", "ONNX Runtime")]
    sizes = [r["size_bytes"] for r in table["rows"]]
    chosen = table["chosen"]["row"]
    assert sizes[chosen] == min(sizes)  # --target size with a drop nothing exceeds: the smallest file wins
    best = runs / "adult-mlp-best"
    meta = json.loads((best / "meta.json").read_text())
    assert meta["variant"]["chosen_from"] == table["rows"][chosen]["path"] and meta["variant"]["best_of"] == str(run)
    model = forgeml.load(best)
    row = {**{name: None for name in model.features.schema()}, "age": 40, "education": "Bachelors", "hours-per-week": 50}
    assert model.predict([row])[0]["label"] in (">50K", "<=50K")
    assert "Compressed variants" in (run / "report.html").read_text()  # the table joins the run's report
    for folder in ("adult-mlp-int8", "adult-mlp-pruned50"):  # each variant measured on the same held-out rows
        assert json.loads((runs / folder / "metrics.json").read_text())["test"]["n"] == json.loads((run / "metrics.json").read_text())["test"]["n"]
    # a drop of zero: every variant that loses anything is refused, and the reasons say so
    assert main(["compress", str(run), "--auto", "--max-drop", "0", "--overwrite", "--repeats", "2"]) == 0
    table = json.loads((run / "compression.json").read_text())
    lost = [r for r in table["rows"] if r["metrics"]["accuracy"] < table["rows"][0]["metrics"]["accuracy"]]
    assert all(any(r["variant"] in why and "loses" in why for why in table["reasons"]) for r in lost)
    assert table["chosen"] is None or table["rows"][table["chosen"]["row"]] not in lost


def test_distill_through_the_cli_passes_temperature_and_alpha(runs, tmp_path, capsys):
    assert main(["train", "examples/adult-mlp.yaml", *quick(runs, "data.limit=3000", "train.epochs=1")]) == 0
    run = runs / "adult-mlp"
    student = tmp_path / "student.yaml"
    student.write_text("model: {name: mlp, hidden: [8]}\ntrain: {epochs: 1, progress: false}\n")
    assert main(["compress", str(run), "--distill", str(student), "--temperature", "2.5", "--alpha", "0.7", "--repeats", "2"]) == 0
    meta = json.loads((runs / "adult-mlp-distilled" / "meta.json").read_text())
    assert meta["variant"]["kind"] == "distilled" and meta["variant"]["temperature"] == 2.5 and meta["variant"]["alpha"] == 0.7
    assert meta["parameters"] < json.loads((run / "meta.json").read_text())["parameters"] / 4
    rows = json.loads((run / "compression.json").read_text())["rows"]
    assert [(r["variant"], r["runtime"]) for r in rows][2:] == [("distilled", "PyTorch eager"), ("distilled", "ONNX Runtime")]
    capsys.readouterr()
    assert main(["compress", str(run), "--distill", str(tmp_path / "missing.yaml")]) == 2
    assert "no such student config" in capsys.readouterr().err
