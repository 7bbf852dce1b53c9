"""int8 through ONNX Runtime on real tiny runs: the variant is an ordinary bundle that every command takes, it is
smaller, it predicts what the original predicts, and every way to get it wrong is a clear error that leaves nothing."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'forgeml[onnx]'")

import forgeml  # noqa: E402
from forgeml import compression  # noqa: E402
from forgeml.cli import main  # noqa: E402
from forgeml.compress.quantize import calibration_batches, has_convolutions, needs_reduce_range, quantize_int8  # noqa: E402
from forgeml.errors import ForgeError, RequestError  # noqa: E402
from forgeml.export.onnx import held_out_inputs, open_session, write_onnx  # noqa: E402
from tests.conftest import ROOT, quick  # noqa: E402

pytestmark = pytest.mark.slow


def _train(runs: Path, example: str, *extra: str) -> Path:
    assert main(["train", f"examples/{example}.yaml", *quick(runs, *extra)]) == 0
    return runs / example


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    os.chdir(ROOT)  # a module fixture runs before the per-test chdir; the examples' data paths are relative
    torch.manual_seed(0)
    runs = tmp_path_factory.mktemp("runs")
    return {"cnn": _train(runs, "digits-cnn", "train.epochs=6"),
            "mlp": _train(runs, "adult-mlp", "data.limit=3000", "train.epochs=2")}


@pytest.fixture(scope="module")
def cnn_int8(trained) -> tuple[Path, dict[str, str], int]:
    """digits-cnn compressed once through the CLI, with the source's bytes before."""
    before = _digest(trained["cnn"])
    code = main(["compress", str(trained["cnn"]), "--quantize", "int8", "--repeats", "2"])
    return trained["cnn"].parent / "digits-cnn-int8", before, code


def test_int8_variant_is_a_smaller_bundle_that_predicts_like_the_original(trained, cnn_int8):
    variant, _, code = cnn_int8
    assert code == 0
    assert sorted(p.name for p in variant.iterdir()) == ["config.yaml", "features.json", "meta.json", "metrics.json",
                                                         "model.onnx", "report.html"]
    meta = json.loads((variant / "meta.json").read_text())
    assert meta["runtime"] == "onnx" and meta["variant"]["kind"] == "int8" and meta["variant"]["method"] == "static"
    assert meta["variant"]["calibration_rows"] > 0
    assert meta["variant"]["fp32_bytes"] / meta["variant"]["int8_bytes"] > 3  # int8 weights: about a quarter
    model, original = forgeml.load(variant), forgeml.load(trained["cnn"])
    assert model.backend == "onnx"  # an ONNX-only bundle needs no --backend
    x, _ = held_out_inputs(original.config, original.features, 300)
    name = original.model.output_names[0]
    a, b = original.outputs(x)[name], model.outputs(x)[name]
    assert (a.argmax(1) == b.argmax(1)).float().mean() > 0.97  # int8 moves a few borderline rows, no more
    assert not torch.equal(a, b)  # it really is another model
    ours = json.loads((variant / "metrics.json").read_text())["test"]
    theirs = json.loads((trained["cnn"] / "metrics.json").read_text())["test"]
    assert abs(ours["accuracy"] - theirs["accuracy"]) < 0.03 and ours["n"] == theirs["n"]


def test_source_untouched_but_for_the_table_and_the_table_is_real(trained, cnn_int8):
    variant, before, _ = cnn_int8
    after = _digest(trained["cnn"])
    mine = ("compression.json", "report.html")
    assert {k: v for k, v in after.items() if k not in mine} == {k: v for k, v in before.items() if k not in mine}
    assert "Compressed variants" in (trained["cnn"] / "report.html").read_text()  # the table joins the run's report
    table = json.loads((trained["cnn"] / "compression.json").read_text())
    assert [(r["variant"], r["runtime"]) for r in table["rows"]] == [("fp32", "PyTorch eager"), ("fp32", "ONNX Runtime"),
                                                                    ("int8", "ONNX Runtime")]
    assert table["threads"] == torch.get_num_threads() and table["repeats"] == 2 and "flags" in table["cpu"]
    rows = table["rows"]
    assert rows[2]["size_bytes"] == (variant / "model.onnx").stat().st_size < rows[1]["size_bytes"] / 3
    assert all(set(r["latency_ms"]) == {"1", "64"} and all(v > 0 for v in r["latency_ms"].values()) for r in rows)
    assert rows[0]["speedup"] == {"1": 1.0, "64": 1.0}
    assert rows[2]["metrics"]["accuracy"] == json.loads((variant / "metrics.json").read_text())["test"]["accuracy"]


def test_every_command_takes_the_int8_bundle(trained, cnn_int8, capsys):
    variant = cnn_int8[0]
    assert main(["evaluate", str(variant), "--json"]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert main(["report", str(variant)]) == 0
    assert "int8 of" in (variant / "report.html").read_text()  # the report says what this bundle is
    image = json.dumps({"image": [[0] * 8] * 8})
    assert main(["predict", str(variant), image, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["label"] in [str(i) for i in range(10)]
    with pytest.raises(RequestError, match="only an ONNX model"):
        forgeml.load(variant, backend="torch")


def test_quantizing_again_or_asking_nothing_is_refused_and_writes_nothing(trained, cnn_int8, capsys):
    variant = cnn_int8[0]
    before = _digest(variant)
    assert main(["compress", str(variant), "--quantize", "int8"]) == 2
    assert "already quantized" in capsys.readouterr().err
    assert main(["compress", str(trained["cnn"])]) == 2
    assert "nothing to do" in capsys.readouterr().err
    assert main(["compress", str(trained["cnn"]), "--prune", "1.5"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err
    assert main(["compress", str(trained["cnn"]), "--quantize", "int8"]) == 2  # the variant exists: --overwrite replaces it
    assert "--overwrite" in capsys.readouterr().err
    assert _digest(variant) == before
    assert not [p.name for p in variant.parent.iterdir() if "staging" in p.name]


def test_a_failure_midway_leaves_no_variant_folder(trained, monkeypatch):
    def broken(*args, **kwargs):
        raise compression.CompressError("the quantizer broke")

    monkeypatch.setattr("forgeml.compress.quantize.quantize_int8", broken)
    with pytest.raises(ForgeError, match="the quantizer broke"):
        compression.make_int8(trained["mlp"], name="mlp-broken")
    assert not [p.name for p in trained["mlp"].parent.iterdir() if "mlp-broken" in p.name]


def test_dynamic_for_linear_models_static_for_convolutions(trained, tmp_path):
    mlp = forgeml.load(trained["mlp"])
    fp32 = write_onnx(mlp, tmp_path / "mlp.onnx").path
    assert not has_convolutions(fp32)
    done = quantize_int8(fp32, tmp_path / "mlp8.onnx")
    assert done.method == "dynamic" and done.calibration_rows == 0
    ops = {n.op_type for n in __import__("onnx").load(str(done.path)).graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeLinear" in ops  # integer products at run time
    session = open_session(done.path)
    x, _ = held_out_inputs(mlp.config, mlp.features, 200)
    got = session.run(None, {k: v.numpy() for k, v in x.items()})[0]
    want = mlp.outputs(x)["income"].numpy()
    assert (got.argmax(1) == want.argmax(1)).mean() > 0.97
    cnn = forgeml.load(trained["cnn"])
    conv = write_onnx(cnn, tmp_path / "cnn.onnx").path
    assert has_convolutions(conv)
    from forgeml.data.prepare import prepare

    train_x = prepare(cnn.config.data).splits["train"].x
    batches = calibration_batches(train_x, rows=100, batch=32)
    assert [len(b["image"]) for b in batches] == [32, 32, 32, 4]
    static = quantize_int8(conv, tmp_path / "cnn8.onnx", "static", calibration=lambda: batches)
    ops = {n.op_type for n in __import__("onnx").load(str(static.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and static.calibration_rows == 100  # QDQ format
    with pytest.raises(ForgeError, match="calibration"):
        quantize_int8(conv, tmp_path / "none.onnx", "static", calibration=lambda: [])
    assert not (tmp_path / "none.onnx").exists()


def test_reduce_range_follows_the_cpu_flags(monkeypatch):
    monkeypatch.setattr("forgeml.training.runtime.cpu_flags", lambda: {"avx2", "fma"})
    assert needs_reduce_range()
    monkeypatch.setattr("forgeml.training.runtime.cpu_flags", lambda: {"avx2", "avx512_vnni"})
    assert not needs_reduce_range()


def test_auto_keeps_a_variant_only_within_the_drop_and_faster_than_onnx_fp32():
    rows = [{"variant": "fp32", "runtime": "PyTorch eager", "metrics": {"accuracy": 0.90}, "latency_ms": {"64": 10.0}, "size_bytes": 400},
            {"variant": "fp32", "runtime": "ONNX Runtime", "metrics": {"accuracy": 0.90}, "latency_ms": {"64": 5.0}, "size_bytes": 400},
            {"variant": "int8", "runtime": "ONNX Runtime", "metrics": {"accuracy": 0.897}, "latency_ms": {"64": 6.0}, "size_bytes": 100},
            {"variant": "pruned50", "runtime": "PyTorch eager", "metrics": {"accuracy": 0.88}, "latency_ms": {"64": 2.0}, "size_bytes": 200}]
    best, why = compression.choose({"rows": rows}, 0.5, "latency")
    assert best == 1  # int8 is slower than ONNX fp32, pruned50 loses 2 points: ONNX Runtime fp32 is kept
    assert any("int8" in r and "not faster" in r for r in why) and any("pruned50" in r and "loses 2.00" in r for r in why)
    assert compression.choose({"rows": rows}, 0.5, "size")[0] == 2  # within 0.3 points and the smallest
    assert compression.choose({"rows": rows}, 5, "latency")[0] == 3  # a looser drop lets the pruned model win
    assert compression.drop("rmse", 2.0, 2.1) == pytest.approx(5.0)  # errors: per cent of the original
