"""Structured pruning: the slicing keeps exactly the right weights, the config says the new widths, the bundle that
pipeline.prune writes is an ordinary run, and bad input is one clear error with the source run untouched."""

from __future__ import annotations

import json

import pytest
import torch

import forgeml
from forgeml import pipeline
from forgeml.compress.prune import prune_network
from forgeml.config import load_config
from forgeml.data.features import ClassLabels, ImageFeature, NumericFeature
from forgeml.data.features.sequence import SequenceFeature
from forgeml.data.features.text import TextFeature
from forgeml.errors import BundleError, ConfigError
from forgeml.models import build_network, count_parameters


def text_feature():
    return TextFeature("text", max_length=12, settings={"tokenizer": "word"}).fit(
        ["the cat sat", "a dog ran far", "birds fly high up", "fish swim"])


CASES = {  # model section, inputs, the widths a 0.5 prune must leave
    "cnn+bn": ({"name": "cnn", "blocks": [{"channels": 6, "padding": 1, "batch_norm": True},
                                          {"channels": 8, "padding": 1, "batch_norm": True, "pool": 2}], "hidden": [10, 6]},
               lambda: [ImageFeature("image", [1, 8, 8])],
               {"model.blocks[0].channels": 3, "model.blocks[1].channels": 4, "model.hidden[0]": 5, "model.hidden[1]": 3}),
    "cnn global avg, no hidden": ({"name": "cnn", "blocks": [{"channels": 6}, {"channels": 4, "pool": 2}], "head": "global_avg",
                                   "hidden": []},
                                  lambda: [ImageFeature("image", [2, 8, 8])],
                                  {"model.blocks[0].channels": 3, "model.blocks[1].channels": 2}),
    "mlp+batchnorm": ({"name": "mlp", "hidden": [12, 7], "norm": "batch"},
                      lambda: [NumericFeature("a"), NumericFeature("b")],
                      {"model.hidden[0]": 6, "model.hidden[1]": 4}),
    "conv1d": ({"name": "conv1d", "channels": [6, 10], "kernel_sizes": [5, 3]},
               lambda: [SequenceFeature("s", channels=2, length=12)],
               {"model.channels[0]": 3, "model.channels[1]": 5}),
    "transformer ff": ({"name": "transformer", "d_model": 8, "heads": 2, "layers": 2, "ff_mult": 4},
                       lambda: [text_feature()],
                       {"model.ff_mult": 2}),
    "composite cnn (kind default) + numbers + concat mlp": (
        {"name": "composite", "combiner": {"name": "concat", "hidden": [9]}},
        lambda: [NumericFeature("a"), ImageFeature("image", [1, 8, 8])],
        {"model.encoders.image.blocks[0].channels": 16, "model.encoders.image.blocks[1].channels": 32,
         "model.encoders.image.hidden[0]": 64, "model.combiner.hidden[0]": 5}),
}


def example_inputs(inputs, n=5):
    torch.manual_seed(1)
    x = {}
    for f in inputs:
        if f.kind == "image":
            x[f.name] = torch.randn(n, *f.shape)
        elif f.kind == "sequence":
            x[f.name] = torch.randn(n, 12, 2)
        elif f.kind == "text":
            x[f.name] = torch.randint(2, f.vocab_size, (n, 7))
        else:
            x[f.name] = torch.randn(n, 1)
    return x


def trained_looking(net):
    """Seeded weights plus batch-norm statistics and scales that are not the identity, so a wrong slice shows."""
    g = torch.Generator().manual_seed(2)
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))
    return net.eval()


def zero_removed(net, kept):
    """Hooks that set every removed unit of the original network to zero where it leaves its producer's norm (or the
    producer itself without one): every activation here maps 0 to 0 and pooling keeps it 0."""
    modules = dict(net.named_modules())
    handles = []
    for producer, index in kept.items():
        where = producer
        parent, _, i = producer.rpartition(".")
        sibling = f"{parent}.{int(i) + 1}" if i.isdigit() else None
        if sibling in modules and isinstance(modules[sibling], (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            where = sibling
        elif producer.endswith(".conv") and f"{parent}.bn" in modules:
            where = f"{parent}.bn"
        size = getattr(modules[producer], "out_features", None) or modules[producer].out_channels
        mask = torch.zeros(size)
        mask[index] = 1
        dim = -1 if ".mlp." in producer else 1  # a transformer's feed-forward units are its last dim (B, T, F)

        def hook(_m, _in, out, mask=mask, dim=dim):
            shape = [1] * out.dim()
            shape[dim] = -1
            return out * mask.view(shape)

        handles.append(modules[where].register_forward_hook(hook))
    return handles


@pytest.mark.parametrize("case", list(CASES))
def test_the_pruned_network_is_the_original_with_the_removed_units_zeroed(case):
    section, make_inputs, widths = CASES[case]
    inputs, outputs = make_inputs(), [ClassLabels("y", ["a", "b", "c"])]
    cfg = load_config({"model": section}).model
    net = trained_looking(build_network(cfg, inputs, outputs, seed=0))
    before = {k: v.clone() for k, v in net.state_dict().items()}

    pruned = prune_network(net, cfg, 0.5)

    assert pruned.widths_after == widths
    small = build_network(pruned.model, inputs, outputs)
    small.load_state_dict(pruned.state, strict=True)  # the config alone rebuilds layers the kept weights fit
    assert count_parameters(small) < count_parameters(net)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # the original is left as it was
    x = example_inputs(inputs)
    handles = zero_removed(net, pruned.kept)
    with torch.no_grad():
        expected, got = net(x)["y"], small.eval()(x)["y"]
    for h in handles:
        h.remove()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # and the zeroing mattered: the pruned network is not the original
        assert not torch.allclose(net(x)["y"], got, atol=1e-4)


def test_the_units_kept_are_the_ones_with_the_largest_weights():
    cfg = load_config({"model": {"name": "mlp", "hidden": [6]}}).model
    inputs = [NumericFeature("a"), NumericFeature("b")]
    net = build_network(cfg, inputs, [ClassLabels("y", ["a", "b"])], seed=0)
    with torch.no_grad():
        body, head = net.combiner.body[0], net.heads["y"].proj
        body.weight.fill_(0.1)
        head.weight.fill_(0.1)
        body.weight[[1, 4]] = 5.0  # units 1 and 4 read their inputs strongly ...
        head.weight[:, 3] = 9.0  # ... unit 3 sends strongly; with 0.5 of 6 removed, these three stay
    pruned = prune_network(net, cfg, 0.5)
    assert pruned.kept == {"combiner.body.0": [1, 3, 4]}
    assert pruned.state["heads.y.proj.weight"][:, 1].eq(9.0).all()  # unit 3 is now column 1 of the head


def test_ratios_that_leave_nothing_or_remove_nothing_are_refused():
    cfg = load_config({"model": {"name": "mlp", "hidden": [8, 1]}}).model
    net = build_network(cfg, [NumericFeature("a")], [ClassLabels("y", ["a", "b"])], seed=0)
    with pytest.raises(ConfigError, match=r"leaves model.hidden\[1\] \(now 1 units\) with nothing; use a ratio of at most 0.5"):
        prune_network(net, cfg, 0.6)
    with pytest.raises(ConfigError, match="removes no unit"):
        prune_network(net, cfg, 0.01)
    for bad in (0, 1, 1.5, -0.2, "0.5", True):
        with pytest.raises(ConfigError, match="must be a number between 0 and 1"):
            prune_network(net, cfg, bad)


@pytest.mark.parametrize("section, message", [
    ({"name": "gru", "hidden": 4}, "model.name: gru: pruning does not apply to a recurrent series encoder"),
    ({"name": "rnn", "hidden": 4}, "model.name: rnn: pruning does not apply"),
    ({"name": "mlp", "hidden": []}, "nothing to prune in this mlp model"),
])
def test_models_with_nothing_to_prune_say_what_can_be(section, message):
    cfg = load_config({"model": section}).model
    inputs = [SequenceFeature("s", channels=2, length=12)] if section["name"] == "gru" else (
        [text_feature()] if section["name"] == "rnn" else [NumericFeature("a")])
    net = build_network(cfg, inputs, [ClassLabels("y", ["a", "b"])], seed=0)
    with pytest.raises(ConfigError, match=message) as err:
        prune_network(net, cfg, 0.5)
    assert "structured pruning reaches cnn" in str(err.value)


# ---------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return pipeline.train("examples/digits-cnn.yaml", overrides={
        "runs_dir": str(runs), "train.epochs": 4, "train.max_steps": 6, "train.progress": False, "train.tensorboard": False,
        "model.blocks.0.channels": 8, "model.blocks.1.channels": 16, "model.hidden": [32]})


def snapshot(folder):
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_prune_writes_an_ordinary_smaller_bundle_and_leaves_the_source_alone(digits_run):
    source = snapshot(digits_run)
    said = []
    out = pipeline.prune(digits_run, 0.5, epochs=2, say=said.append)

    assert out == digits_run.parent / f"{digits_run.name}-pruned50"
    assert snapshot(digits_run) == source
    assert "model.blocks[1].channels 16 -> 8" in said[0]
    meta = json.loads((out / "meta.json").read_text())
    variant = meta["variant"]
    assert variant["kind"] == "pruned" and variant["source"] == str(digits_run) and variant["ratio"] == 0.5
    assert variant["widths_after"] == {"model.blocks[0].channels": 4, "model.blocks[1].channels": 8, "model.hidden[0]": 16}
    assert variant["params_after"] == meta["parameters"] < variant["params_before"] / 2
    assert variant["finetune_epochs"] == 2 and meta["epochs"] == 2 and meta["status"] == "complete"
    cfg = load_config(str(out / "config.yaml"))
    assert [b.channels for b in cfg.model.blocks] == [4, 8] and cfg.model.hidden == [16]
    assert cfg.train.lr == pytest.approx(0.1 * load_config(str(digits_run / "config.yaml")).train.lr)
    assert "accuracy" in json.loads((out / "metrics.json").read_text())["test"]
    assert (out / "report.html").is_file()

    model = forgeml.load(out)  # every command's road: config.yaml + model.safetensors, strictly
    assert count_parameters(model.model) == meta["parameters"]
    image = torch.rand(8, 8).numpy() * 16
    assert model.predict([{"image": image}])[0]["label"] in [str(i) for i in range(10)]
    assert "test" in pipeline.evaluate(out)

    with pytest.raises(BundleError, match="already exists; pass --overwrite"):
        pipeline.prune(digits_run, 0.5, epochs=1)
    assert snapshot(digits_run) == source


def test_prune_default_epochs_name_and_overwrite(digits_run):
    out = pipeline.prune(digits_run, 0.25, name="smaller", overwrite=True)  # overwrite with no such folder: a new run
    assert out.name == "smaller"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["variant"]["finetune_epochs"] == 1  # a quarter of the source's 4 epochs ...
    assert meta["steps"] == 2  # ... and of its max_steps (6 / 4, rounded)
    first = (out / "model.safetensors").stat().st_mtime_ns
    pipeline.prune(digits_run, 0.25, name="smaller", overwrite=True)
    assert (out / "model.safetensors").stat().st_mtime_ns != first


def test_prune_refuses_bad_input_before_writing_anything(digits_run, tmp_path):
    before = sorted(p.name for p in digits_run.parent.iterdir())
    with pytest.raises(ConfigError, match="must be a number between 0 and 1"):
        pipeline.prune(digits_run, 1.0)
    with pytest.raises(ConfigError, match="leaves model.blocks"):
        pipeline.prune(digits_run, 0.99)
    with pytest.raises(ConfigError, match="fine-tune epochs"):
        pipeline.prune(digits_run, 0.5, epochs=0)
    with pytest.raises(BundleError):
        pipeline.prune(tmp_path / "no-such-run", 0.5)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in ("config.yaml", "features.json", "meta.json"):
        (damaged / name).write_bytes((digits_run / name).read_bytes())
    (damaged / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(BundleError):
        pipeline.prune(damaged, 0.5)
    assert sorted(p.name for p in digits_run.parent.iterdir()) == before


def test_the_fine_tune_starts_from_the_given_weights_not_the_seeded_init(digits_run):
    predictor = forgeml.load(digits_run)
    cfg = predictor.config
    seeded = pipeline._trainer(cfg, predictor.features, digits_run.parent / "unused", ()).model.state_dict()
    given = predictor.model.state_dict()
    started = pipeline._trainer(cfg, predictor.features, digits_run.parent / "unused", (), init=given).model.state_dict()
    assert all(torch.equal(started[k], given[k]) for k in given)
    head = next(k for k in given if k.startswith("heads."))
    assert not torch.equal(seeded[head], given[head])
