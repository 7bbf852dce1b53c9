import pytest
import torch

from forgeml.config import CNNConfig, CustomConfig, MLPConfig
from forgeml.data.features import ClassLabels, ImageFeature, NumericFeature
from forgeml.errors import ConfigError
from forgeml.models import build_network, count_parameters
from forgeml.models.init import initialise


def build_model(cfg, in_shape, n_outputs, seed=None):
    """The short form on stand-in features: numbers for [n], one image for [C, H, W]; one class output 'y'."""
    if len(in_shape) == 3:
        inputs = [ImageFeature("image", list(in_shape))]
    else:
        inputs = [NumericFeature(f"x{i}") for i in range(in_shape[0])]
    net = build_network(cfg, inputs, [ClassLabels("y", [str(i) for i in range(n_outputs)])], seed=seed)
    names = [f.name for f in inputs]
    return _Call(net, names, len(in_shape) == 3)


class _Call(torch.nn.Module):
    """The network called like the old single-tensor models: a (B, ...) tensor in, (B, K) logits out."""

    def __init__(self, net, names, image):
        super().__init__()
        self.net, self.names, self.image = net, names, image

    def forward(self, x):
        inputs = {"image": x} if self.image else {n: x[:, i : i + 1] for i, n in enumerate(self.names)}
        return self.net(inputs)["y"]


def test_mlp_shapes_norms_and_parameter_count():
    m = build_model(MLPConfig(hidden=[8, 4], norm="batch", dropout=0.1), [5], 3)
    assert m(torch.randn(7, 5)).shape == (7, 3)
    # Linear(5,8) no bias + BN(8) + Linear(8,4) no bias + BN(4) + Linear(4,3)
    assert count_parameters(m) == 40 + 16 + 32 + 8 + 15
    assert build_model(MLPConfig(norm="layer"), [5], 2)(torch.randn(2, 5)).shape == (2, 2)


def test_cnn_is_the_pytorch_mnist_example():
    cfg = CNNConfig(blocks=[{"channels": 32, "kernel": 3}, {"channels": 64, "kernel": 3, "pool": 2, "dropout": 0.25}],
                    hidden=[128], dropout=0.5)
    m = build_model(cfg, [1, 28, 28], 10)
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert count_parameters(m) == 1_199_882  # the figure of PyTorch's examples/mnist Net
    gap = build_model(CNNConfig(head="global_avg", blocks=[{"channels": 4, "batch_norm": True}]), [3, 9, 9], 2)
    assert gap(torch.randn(2, 3, 9, 9)).shape == (2, 2)


def test_cnn_that_shrinks_the_image_to_nothing_is_a_config_error():
    with pytest.raises(ConfigError, match="shrink"):
        build_model(CNNConfig(blocks=[{"channels": 4, "kernel": 3, "pool": 4}]), [1, 4, 4], 2)
    with pytest.raises(ConfigError, match="'cnn' encoder reads image"):
        build_model(CNNConfig(), [10], 2)


def test_seeded_builds_repeat():
    a = build_model(MLPConfig(), [4], 2, seed=3)
    b = build_model(MLPConfig(), [4], 2, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("scheme", ["kaiming", "xavier", "normal", "orthogonal"])
def test_init_schemes(scheme):
    torch.manual_seed(0)
    m = initialise(torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Conv2d(3, 8, 3)), scheme)
    w = m[0].weight
    assert torch.all(m[0].bias == 0)
    if scheme == "orthogonal":
        torch.testing.assert_close(w @ w.T / (w @ w.T)[0, 0], torch.eye(64), atol=1e-4, rtol=0)
    if scheme == "normal":
        assert abs(w.std().item() - 0.02) < 0.003


class Tiny(torch.nn.Module):
    def __init__(self, in_features: int, n_outputs: int, width: int = 4):
        super().__init__()
        self.net = torch.nn.Linear(in_features, n_outputs)
        self.width = width

    def forward(self, x):
        return self.net(x)


def test_custom_module_by_import_path():
    m = build_model(CustomConfig(target="tests.models.test_models:Tiny", kwargs={"width": 9}), [5], 3)
    tiny = m.net.combiner.module
    assert isinstance(tiny, Tiny) and tiny.width == 9 and m(torch.randn(2, 5)).shape == (2, 3)
    with pytest.raises(ConfigError, match="cannot import"):
        build_model(CustomConfig(target="tests.models.nope:Tiny"), [5], 3)
    with pytest.raises(ConfigError, match="package.module:ClassName"):
        build_model(CustomConfig(target="Tiny"), [5], 3)
