"""build_network: the series short forms (conv1d, gru, lstm) are the composite form with one sequence encoder,
and every column gets its own submodule name even when '.' -> '_' would make two the same."""

import pytest
import torch

from forgeml.config import CompositeConfig, load_config
from forgeml.data.features import ClassLabels, NumericFeature, RegressionTarget
from forgeml.data.features.sequence import SequenceFeature
from forgeml.errors import ConfigError
from forgeml.models import build_network
from forgeml.models.network import module_keys


def series(name="series"):
    return SequenceFeature(name, channels=2, length=12)


def short_and_composite(name, settings):
    """`model.name: <name>` and the composite form with `model.encoders.sequence: {name: <name>}`, built from YAML."""
    short = load_config({"model": {"name": name, **settings}}).model
    composite = load_config({"model": {"name": "composite", "encoders": {"sequence": {"name": name, **settings}}}}).model
    outputs = [ClassLabels("y", ["a", "b", "c"])]
    return build_network(short, [series()], outputs, seed=0), build_network(composite, [series()], outputs, seed=0)


@pytest.mark.parametrize("name, settings", [
    ("conv1d", {"channels": [8, 16], "kernel_sizes": [5, 3]}),
    ("gru", {"hidden": 8, "layers": 1}),
    ("lstm", {"hidden": 8, "pooling": "mean"}),
])
def test_series_short_form_builds_the_composite_layers(name, settings):
    short, composite = short_and_composite(name, settings)
    a, b = short.state_dict(), composite.state_dict()
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}  # same layers, same weight names
    assert any(k.startswith("encoders.series.") for k in a)
    assert str(short.encoders) == str(composite.encoders)  # same modules in the same order (an lstm is an LSTM)
    x = {"series": torch.randn(4, 12, 2)}
    assert short.eval()(x)["y"].shape == (4, 3)


def test_series_short_form_refuses_other_inputs():
    cfg = load_config({"model": {"name": "gru"}}).model
    with pytest.raises(ConfigError, match=r"model.name: gru reads one sequence input, but the inputs are 'age' \(numeric\).*"
                                          r"model.encoders.sequence: \{name: gru\}"):
        build_network(cfg, [NumericFeature("age")], [ClassLabels("y", ["a", "b"])])
    with pytest.raises(ConfigError, match="model.name: conv1d reads one sequence input"):
        build_network(load_config({"model": {"name": "conv1d"}}).model, [series("a"), series("b")], [ClassLabels("y", ["a", "b"])])


def test_module_keys_are_distinct_and_stable():
    assert module_keys(["age", "a.b", "c"]) == {"age": "age", "a.b": "a_b", "c": "c"}  # no collision: '.' -> '_' as before
    assert module_keys(["a.b", "a_b"]) == {"a.b": "a_b_2", "a_b": "a_b"}  # the name that is valid as it is keeps it
    assert module_keys(["a.b", "a_b", "a_b_2"]) == {"a.b": "a_b_3", "a_b": "a_b", "a_b_2": "a_b_2"}
    assert module_keys(["type", "values"]) == {"type": "type_", "values": "values_"}  # nn.ModuleDict attributes


def test_columns_whose_module_names_collide_get_their_own_encoders_and_heads():
    inputs = [series("s.x"), series("s_x")]
    outputs = [ClassLabels("y.1", ["a", "b"]), RegressionTarget("y_1"), RegressionTarget("type")]
    net = build_network(CompositeConfig(), inputs, outputs, seed=0)
    assert sorted(net.encoders) == ["s_x", "s_x_2"] and sorted(net.heads) == ["type_", "y_1", "y_1_2"]
    x = {"s.x": torch.randn(3, 12, 2), "s_x": torch.zeros(3, 12, 2)}
    out = net.eval()(x)
    assert out["y.1"].shape == (3, 2) and out["y_1"].shape == (3, 1) and out["type"].shape == (3, 1)
    # each encoder reads its own column: changing one input changes the output, and the other's is still read
    x2 = {"s.x": x["s.x"], "s_x": torch.randn(3, 12, 2)}
    assert not torch.allclose(net(x2)["y.1"], out["y.1"])
    targets = {"y.1": torch.tensor([0, 1, 0]), "y_1": torch.zeros(3, 1), "type": torch.zeros(3, 1)}
    assert torch.isfinite(net.loss(out, targets))


def test_a_column_named_tabular_beside_tabular_columns_is_refused():
    with pytest.raises(ConfigError, match="column 'tabular' would get the key of the shared tabular encoder"):
        build_network(CompositeConfig(), [NumericFeature("age"), series("tabular")], [ClassLabels("y", ["a", "b"])])
