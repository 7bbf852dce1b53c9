"""ONNX export and the ONNX Runtime backend on real tiny runs: every kind of input, two outputs, and the
ways it must refuse (a layer ONNX cannot express, no weights, a damaged model.onnx). The GPT: test_gpt_onnx.py."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'forgeml[onnx]'")

import forgeml  # noqa: E402
from forgeml.cli import main  # noqa: E402
from forgeml.errors import BundleError  # noqa: E402
from forgeml.export.onnx import ExportError, held_out_inputs, open_session, verify  # noqa: E402
from tests.conftest import ROOT, quick  # noqa: E402

pytestmark = pytest.mark.slow

# one tiny run per kind of input: (example, overrides); 3 optimizer steps each
RUNS = {
    "adult-mlp": ("adult-mlp", ["data.limit=2000"]),  # tabular: numbers, categories
    "digits-cnn": ("digits-cnn", []),  # image
    "sms-spam-transformer": ("sms-spam-transformer", ["data.limit=600"]),  # text: a dynamic length axis
    "adult-multitask": ("adult-multitask", ["data.limit=2000"]),  # two outputs: a class and a regression
    "libras-conv1d": ("libras-conv1d", ["model.encoders.sequence.channels=[8,8]", "model.encoders.sequence.kernel_sizes=[3,3]"]),
}


def _train(runs: Path, example: str, extra: list[str]) -> Path:
    assert main(["train", f"examples/{example}.yaml", *quick(runs, "train.max_steps=3", *extra)]) == 0
    return runs / example


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    """Each tiny run trained and exported once through the CLI (the export prints its differences)."""
    os.chdir(ROOT)  # a module fixture runs before the per-test chdir; the examples' data paths are relative
    torch.manual_seed(0)
    runs = tmp_path_factory.mktemp("runs")
    out = {}
    for key, (example, extra) in RUNS.items():
        run = _train(runs, example, extra)
        assert main(["export", str(run), "--format", "onnx"]) == 0
        out[key] = run
    return out


@pytest.mark.parametrize("key", list(RUNS))
def test_onnx_runtime_predicts_what_torch_predicts(exported, key):
    run = exported[key]
    assert (run / "model.onnx").is_file()
    assert not [p.name for p in run.iterdir() if ".tmp-" in p.name]  # no temporary file left behind
    torch_model, onnx_model = forgeml.load(run), forgeml.load(run, backend="onnx")
    x, _ = held_out_inputs(torch_model.config, torch_model.features, 300)
    want, got = torch_model.outputs(x), onnx_model.outputs(x)
    assert set(want) == set(got) == set(torch_model.model.output_names)
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-4, rtol=1e-3)
    a, b = torch_model.decode(want), onnx_model.decode(got)
    assert len(a) == len(b) == len(next(iter(x.values())))
    for ra, rb in zip(a, b):
        for pa, pb in zip(_per_output(ra), _per_output(rb)):
            if "label" in pa:
                assert pa["label"] == pb["label"]
                assert np.allclose(list(pa["probabilities"].values()), list(pb["probabilities"].values()), atol=1e-5)
            else:
                assert pa["prediction"] == pytest.approx(pb["prediction"], rel=1e-4, abs=1e-4)


def _per_output(row: dict) -> list[dict]:
    """A decoded row's fields per output: the row itself for one output, its values for several."""
    return [row] if "label" in row or "prediction" in row else list(row.values())


def test_the_graph_speaks_the_contract_and_meta_says_what_was_verified(exported):
    import onnx

    run = exported["sms-spam-transformer"]
    graph = onnx.load(str(run / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["text"] and [o.name for o in graph.output] == ["label"]
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[1].dim_param  # batch and text length are both dynamic
    meta = json.loads((run / "meta.json").read_text())["exports"]["onnx"]
    assert meta["opset"] == 18 and meta["split"] == "test" and meta["rows"] > 4  # more rows than the export traced
    assert 0 <= meta["max_abs_diff"]["label"] < 1e-4

    two = json.loads((exported["adult-multitask"] / "meta.json").read_text())["exports"]["onnx"]
    assert set(two["max_abs_diff"]) == {"income", "hours-per-week"}
    assert "workclass" in two["inputs"]  # a category input is its own int64 input


def test_export_prints_the_differences_per_output(exported, capsys):
    assert main(["export", str(exported["adult-multitask"]), "--format", "onnx", "--opset", "20"]) == 0
    out = capsys.readouterr().out
    assert "income (float32): max abs diff" in out and "hours-per-week (float32): max abs diff" in out
    assert "opset 20" in out


def test_a_network_that_disagrees_with_the_graph_fails_the_bound(exported):
    run = exported["digits-cnn"]
    model = forgeml.load(run)
    x, _ = held_out_inputs(model.config, model.features, 64)
    session = open_session(run / "model.onnx")
    assert verify(session, model.model, x).passed
    with torch.no_grad():
        next(model.model.parameters()).mul_(1.01)  # the PyTorch side moves by 1%: far past the float32 bound
    check = verify(session, model.model, x).checks[0]
    assert not check.passed and check.max_abs_diff > 1e-3


def test_a_layer_onnx_cannot_express_is_named_and_nothing_is_written(tmp_path, capsys):
    run = _train(tmp_path, "sms-spam-lstm", ["data.limit=300", "model.hidden=8", "model.embed_dim=8"])
    before = sorted(p.name for p in run.iterdir())
    assert main(["export", str(run), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "encoders.text (RNNEncoder" in err and "cannot be expressed in ONNX" in err
    assert sorted(p.name for p in run.iterdir()) == before  # no model.onnx, no temporary file, meta.json untouched
    with pytest.raises(ExportError, match="RNNEncoder"):
        from forgeml.export.onnx import export_onnx

        export_onnx(run)


def test_a_bundle_without_weights_or_with_a_damaged_onnx_file(exported, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(exported["adult-mlp"], run)
    data = (run / "model.onnx").read_bytes()
    (run / "model.onnx").write_bytes(data[: len(data) // 2])  # a copy cut short
    with pytest.raises(BundleError, match=r"model.onnx: cannot be read as an ONNX model .*damaged or truncated"):
        forgeml.load(run, backend="onnx")
    (run / "model.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(BundleError, match="damaged or truncated"):
        forgeml.load(run, backend="onnx")
    (run / "model.onnx").unlink()
    with pytest.raises(BundleError, match="no ONNX model; write one with: forgeml export"):
        forgeml.load(run, backend="onnx")
    (run / "model.safetensors").unlink()
    assert main(["export", str(run), "--format", "onnx"]) == 2
    assert not (run / "model.onnx").exists()
    with pytest.raises(BundleError, match="missing model.safetensors"):
        forgeml.load(run, backend="onnx")


def test_predict_through_onnx_runtime_from_the_cli(exported, capsys):
    rows = ROOT / "data" / "libras" / "movement_libras.data"
    line = rows.read_text().splitlines()[0]
    path = Path(str(exported["libras-conv1d"])) / "rows.csv"
    path.write_text(line + "\n")
    assert main(["predict", str(exported["libras-conv1d"]), str(path), "--json", "--backend", "onnx"]) == 0
    onnx_row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert main(["predict", str(exported["libras-conv1d"]), str(path), "--json"]) == 0
    torch_row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert onnx_row["label"] == torch_row["label"]
    assert onnx_row["confidence"] == pytest.approx(torch_row["confidence"], abs=1e-5)
