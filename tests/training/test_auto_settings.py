"""train.precision=auto and train.compile=auto: the rules, what this machine resolves them to, and that the resolved
value is what the Trainer does and what meta.json records."""

import json
import logging
import shutil

import pytest
import torch
from torch import nn

import forgeml
from forgeml.config import TrainConfig, load_config
from forgeml.errors import ConfigError
from forgeml.training.compiling import auto_compile
from forgeml.training.runtime import auto_precision, cpu_has_native_bf16
from forgeml.training.trainer import Trainer

AVX2_ONLY = {"fpu", "sse2", "avx", "avx2", "fma"}  # this machine's kind
SAPPHIRE_RAPIDS = AVX2_ONLY | {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
COOPER_LAKE = AVX2_ONLY | {"avx512f", "avx512_bf16"}


def test_the_precision_rule_reads_the_flags():
    assert not cpu_has_native_bf16(AVX2_ONLY, "x86_64")
    assert cpu_has_native_bf16(SAPPHIRE_RAPIDS, "x86_64") and cpu_has_native_bf16(COOPER_LAKE, "x86_64")
    assert cpu_has_native_bf16(None, "arm64")  # macOS has no /proc/cpuinfo; Apple silicon computes bf16
    assert auto_precision("cpu", cpu_bf16=False)[0] == "fp32"
    assert auto_precision("cpu", cpu_bf16=True)[0] == "bf16"
    assert auto_precision("cuda", cuda_bf16=True)[0] == "bf16"
    assert auto_precision("cuda", cuda_bf16=False)[0] == "fp32"
    assert auto_precision("mps")[0] == "fp32"
    assert "AVX512-BF16" in auto_precision("cpu", cpu_bf16=False)[1]  # the reason is said


def test_auto_precision_here_is_what_the_trainer_does_and_says(caplog):
    expected = "bf16" if cpu_has_native_bf16() else "fp32"
    with caplog.at_level(logging.INFO, logger="forgeml"):
        trainer = Trainer(nn.Linear(4, 3), "cross_entropy", device="cpu", progress=False)
    assert TrainConfig().precision == "auto" and trainer.runtime.precision == expected
    assert trainer.runtime.dtype == (torch.bfloat16 if expected == "bf16" else None)
    with trainer.runtime.autocast():
        assert torch.is_autocast_enabled("cpu") == (expected == "bf16")
    assert any(f"train.precision=auto: {expected}" in r.getMessage() for r in caplog.records)
    asked = Trainer(nn.Linear(4, 3), "cross_entropy", device="cpu", precision="fp32", progress=False)
    assert asked.runtime.precision == "fp32" and asked.runtime.dtype is None


class Declares(nn.Module):
    compile_pays_on = ("cuda", "cpu")

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x):
        return self.lin(x)


def test_the_compile_rule():
    plain, declares = nn.Sequential(nn.Linear(4, 3)), nn.Sequential(Declares())  # a declaring submodule counts
    assert not auto_compile("cuda", plain, has_cxx=True)[0]  # not measured to pay: a small model in a test on a GPU
    assert auto_compile("cuda", declares, has_cxx=False)[0]
    assert not auto_compile("cpu", plain, has_cxx=True)[0]
    assert auto_compile("cpu", declares, has_cxx=True)[0]
    assert not auto_compile("cpu", declares, has_cxx=False)[0]  # inductor needs a C++ compiler on a CPU
    assert not auto_compile("mps", declares, has_cxx=True)[0]


def test_compile_auto_decides_whether_the_step_model_is_compiled(caplog):
    from torch._dynamo.eval_frame import OptimizedModule

    with caplog.at_level(logging.INFO, logger="forgeml"):
        plain = Trainer(nn.Linear(4, 3), "cross_entropy", device="cpu", progress=False)
        declared = Trainer(Declares(), "cross_entropy", device="cpu", progress=False)
    assert TrainConfig().compile == "auto"
    assert plain.step_model is plain.model and not plain.compiled
    has_cxx = shutil.which("c++") is not None or shutil.which("g++") is not None  # none: auto does not compile
    assert isinstance(declared.step_model, OptimizedModule) == declared.compiled == has_cxx
    assert any("train.compile=auto: not compiling" in r.getMessage() for r in caplog.records)
    forced = Trainer(nn.Linear(4, 3), "cross_entropy", device="cpu", compile=False, progress=False)
    assert forced.step_model is forced.model
    assert Trainer(nn.Linear(4, 3), "cross_entropy", device="cpu", compile=True, progress=False).compiled


def test_compile_values_from_yaml_and_overrides():
    assert load_config({"train": {"compile": False}}).train.compile is False  # an old config.yaml's bool still loads
    assert load_config({"train": {"compile": True}}).train.compile is True
    assert load_config({}, ["train.compile=false"]).train.compile is False
    assert load_config({}, ["train.compile=auto"]).train.compile == "auto"
    with pytest.raises(ConfigError, match="compile"):
        load_config({}, ["train.compile=sometimes"])
    with pytest.raises(ConfigError, match="precision"):
        load_config({}, ["train.precision=fp8"])


def test_meta_records_the_resolved_precision_and_the_compile_time(runs):
    config = {"data": {"path": "sklearn:iris"}, "model": {"name": "mlp", "hidden": [8]},
              "train": {"epochs": 1, "batch_size": 64, "progress": False, "tensorboard": False, "compile": True},
              "runs_dir": str(runs), "name": "iris"}
    try:
        run = forgeml.train(config)
    except Exception as exc:  # no working C++ toolchain for inductor here
        pytest.skip(f"torch.compile unavailable: {exc}")
    meta = json.loads((run / "meta.json").read_text())
    assert meta["precision"] == ("bf16" if cpu_has_native_bf16() else "fp32")  # resolved, never "auto"
    assert isinstance(meta["compile_seconds"], float) and meta["compile_seconds"] > 0
    plain = forgeml.train({**config, "train": {**config["train"], "compile": False}, "name": "plain"})
    assert "compile_seconds" not in json.loads((plain / "meta.json").read_text())
