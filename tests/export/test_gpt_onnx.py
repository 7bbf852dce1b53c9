"""The GPT through ONNX: export with a KV cache, generation/predict/evaluate through ONNX Runtime, int8, and the
ways a bundle's model.onnx can be wrong. One tiny GPT trained once for the module."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'forgeml[onnx]'")

import forgeml  # noqa: E402
from forgeml.cli import main  # noqa: E402
from forgeml.errors import BundleError  # noqa: E402
from forgeml.export.gpt_onnx import CachedGPT, past_names, present_names  # noqa: E402
from forgeml.export.onnx import ExportError, export_onnx, held_out_inputs, open_session  # noqa: E402
from tests.conftest import ROOT, quick  # noqa: E402

pytestmark = pytest.mark.slow

TINY = ["train.max_steps=10", "train.warmup_steps=2", "train.eval_every_steps=10", "train.eval_batches=2", "train.batch_size=16",
        "model.n_layer=2", "model.n_embd=32", "model.n_head=2", "model.block_size=32"]


@pytest.fixture(scope="module")
def gpt(tmp_path_factory) -> Path:
    """A tiny GPT trained a few steps and exported through the CLI. Its weights are first given seeded noise: a few
    steps only teach a GPT to say spaces, and greedy text of one repeated character would make equal text mean little."""
    import os

    from forgeml.bundle import Bundle

    os.chdir(ROOT)  # a module fixture runs before the per-test chdir; the example's data path is relative
    torch.manual_seed(0)
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", "examples/shakespeare-gpt.yaml", *quick(runs, *TINY)]) == 0
    run = runs / "shakespeare-gpt"
    weights = Bundle(run).load_weights()
    noise = torch.Generator().manual_seed(0)
    Bundle(run).save_weights({k: v if "wte" in k or "heads" in k else v + torch.randn(v.shape, generator=noise)
                              for k, v in weights.items()})  # the blocks' noise, not the (tied) embedding's: it would echo
    assert main(["evaluate", str(run)]) == 0  # metrics.json of the weights as they now are
    assert main(["export", str(run), "--format", "onnx"]) == 0
    return run


def test_the_graph_carries_the_kv_cache_and_meta_says_what_was_verified(gpt):
    session = open_session(gpt / "model.onnx")
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name: o.shape for o in session.get_outputs()}
    assert list(inputs) == ["text", *past_names(2)] and list(outputs) == ["next_token", *present_names(2)]
    assert inputs["text"] == ["batch", "text_length"] and inputs["past_key_1"] == ["batch", 2, "past_length", 16]
    meta = json.loads((gpt / "meta.json").read_text())["exports"]["onnx"]
    assert meta["split"] == "val" and meta["inputs"] == list(inputs) and meta["outputs"] == list(outputs)
    assert "next_token after a past of 16" in meta["max_abs_diff"] and max(meta["max_abs_diff"].values()) < 1e-3


def test_a_past_continues_the_positions_and_matches_the_whole_window(gpt):
    """ONNX Runtime fed 10 tokens, then 1 token at a time with present -> past, gives the whole window's logits:
    a past of P tokens means positions P.. (the fixture's noisy position table makes a wrong position show)."""
    model = forgeml.load(gpt)
    x, _ = held_out_inputs(model.config, model.features, 3, run=gpt, network=model.model)
    windows = x["text"]  # (3, 32)
    with torch.no_grad():
        want = model.model({"text": windows})["next_token"].numpy()  # (3, 32, V)
    session = open_session(gpt / "model.onnx")
    cached = CachedGPT(model.model)
    past = {k: v.numpy() for k, v in cached.empty_past(3).items()}
    got = []
    for lo, hi in [(0, 10), *[(t, t + 1) for t in range(10, 32)]]:
        out = session.run(None, {"text": windows[:, lo:hi].numpy(), **past})
        got.append(out[0])
        past = dict(zip(past_names(2), out[1:]))
        assert past["past_value_0"].shape == (3, 2, hi, 16)
    np.testing.assert_allclose(np.concatenate(got, axis=1), want, atol=1e-4, rtol=1e-3)


def test_generation_predict_and_evaluate_through_onnx_runtime_match_torch(gpt, capsys):
    torch_lm, onnx_lm = forgeml.load(gpt), forgeml.load(gpt, backend="onnx")
    assert onnx_lm.session is not None
    greedy = torch_lm.generate("ROMEO:", 40, temperature=0)
    assert len(set(greedy)) > 3  # a model that says something, so that equality means something
    assert onnx_lm.generate("ROMEO:", 40, temperature=0) == greedy
    long = torch_lm.generate("A", 80, temperature=0)  # past the 32-token context: the window slides in both
    assert onnx_lm.generate("A", 80, temperature=0) == long
    assert onnx_lm.generate("ROMEO:", 40, temperature=0, use_cache=False) == greedy
    [p_torch], [p_onnx] = torch_lm.predict(["ROMEO:"]), onnx_lm.predict(["ROMEO:"])
    assert p_onnx["token"] == p_torch["token"] and p_onnx["probability"] == pytest.approx(p_torch["probability"], rel=1e-4)
    text = (ROOT / "data/tinyshakespeare/input.txt").read_text()[:3000]
    e_torch, e_onnx = torch_lm.evaluate_text(text), onnx_lm.evaluate_text(text)
    assert e_onnx["n_tokens"] == e_torch["n_tokens"] and e_onnx["loss"] == pytest.approx(e_torch["loss"], rel=1e-5)
    args = ["generate", str(gpt), "--prompt", "ROMEO:", "--max-new-tokens", "30", "--temperature", "0.8", "--seed", "3"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main([*args, "--backend", "onnx"]) == 0 and capsys.readouterr().out == first


def test_int8_of_a_gpt_is_a_bundle_measured_by_perplexity(gpt, tmp_path):
    from forgeml.compression import compress

    run = tmp_path / "gpt"
    shutil.copytree(gpt, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name not in ("report.html",)}
    table = compress(run, quantize="int8", repeats=2)
    variant = tmp_path / "gpt-int8"
    assert sorted(p.name for p in variant.iterdir()) == ["config.yaml", "data", "features.json", "meta.json", "metrics.json",
                                                        "model.onnx", "report.html"]
    assert (variant / "data" / "val.bin").read_bytes() == (run / "data" / "val.bin").read_bytes()
    rows = {(r["variant"], r["runtime"]): r for r in table["rows"]}
    fp32, int8 = rows[("fp32", "ONNX Runtime")], rows[("int8", "ONNX Runtime")]
    assert set(int8["metrics"]) == {"perplexity", "loss"} and int8["size_bytes"] < 0.75 * fp32["size_bytes"]
    assert abs(int8["metrics"]["loss"] - fp32["metrics"]["loss"]) < 0.05 * fp32["metrics"]["loss"]
    assert int8["metrics"]["loss"] != fp32["metrics"]["loss"]  # quantized: not the same numbers
    lm = forgeml.load(variant)  # ONNX-only: ONNX Runtime by default
    assert lm.backend == "onnx" and len(lm.generate("ROMEO:", 20, seed=1)) > 0
    assert main(["evaluate", str(variant), "--json"]) == 0
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.name in before} == before  # the source untouched
    with pytest.raises(Exception, match="only be quantized"):
        compress(run, prune=0.5)


def test_a_damaged_or_older_model_onnx_names_the_command_that_rewrites_it(gpt, tmp_path):
    import onnx

    run = tmp_path / "copy"
    shutil.copytree(gpt, run)
    good = (run / "model.onnx").read_bytes()
    (run / "model.onnx").write_bytes(good[: len(good) // 3])
    with pytest.raises(BundleError, match=r"damaged or truncated.*forgeml export .*copy --format onnx"):
        forgeml.load(run, backend="onnx")
    (run / "model.onnx").write_bytes(good)
    graph = onnx.load(str(run / "model.onnx"))
    keep = [o for o in graph.graph.output if not o.name.startswith("present_")]  # an export without the cache's outputs
    del graph.graph.output[:]
    graph.graph.output.extend(keep)
    onnx.save(graph, str(run / "model.onnx"))
    with pytest.raises(BundleError, match=r"not a KV-cache graph.*present_key_0.*forgeml export .*copy --format onnx"):
        forgeml.load(run, backend="onnx")


def test_export_refuses_a_gpt_without_held_out_text(gpt, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(gpt, run)
    (run / "model.onnx").unlink()
    (run / "data" / "val.bin").unlink()
    with pytest.raises(ExportError, match="no held-out text"):
        export_onnx(run)
    assert not (run / "model.onnx").exists() and not [p for p in run.iterdir() if ".tmp" in p.name]
