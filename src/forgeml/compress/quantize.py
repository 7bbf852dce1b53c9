"""int8 quantization of a bundle's ONNX graph with ONNX Runtime's quantization tools.

    dynamic  weights stored int8, activations quantized on the fly per batch (MatMul/Gemm/attention/RNN):
             no calibration; what Linear-heavy models (MLP, Transformer, GPT) want.
    static   weights and activations int8 in QDQ format, activation ranges fixed from calibration batches
             of the training split: what convolutions need (dynamic int8 convolution is often slower than fp32).
    auto     static where the graph has convolutions, dynamic elsewhere.

On x86 CPUs without VNNI (AVX2 only) int8 products of u8 x s8 can overflow their 16-bit intermediate sums;
ONNX Runtime's `reduce_range` (7-bit weights) avoids it there, at a small cost in precision: chosen from the
CPU's flags, and recorded.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from forgeml.errors import ForgeError

METHODS = ("auto", "dynamic", "static")
# never Conv: dynamic ConvInteger is slower than fp32 on CPUs; Gather: the token embeddings, most of a text model's bytes
DYNAMIC_OPS = ["MatMul", "Gemm", "Attention", "LSTM", "GRU", "Gather"]
CALIBRATION_ROWS = 512  # training rows whose activations fix the static ranges: every class seen, seconds to run
CALIBRATION_BATCH = 64


class QuantizeError(ForgeError):
    """A bundle cannot be quantized: already quantized, an unknown method, a graph ONNX Runtime cannot quantize."""


@dataclass
class Quantized:
    path: Path
    method: str  # dynamic | static
    reduce_range: bool
    calibration_rows: int
    fp32_bytes: int
    int8_bytes: int


def needs_reduce_range() -> bool:
    """True on x86 CPUs without VNNI (avx512_vnni / avx_vnni): u8 x s8 products could saturate there."""
    from forgeml.training.runtime import cpu_flags

    flags = cpu_flags()
    return flags is not None and "avx2" in flags and not any("vnni" in f for f in flags)


def has_convolutions(path: Path) -> bool:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(node.op_type in ("Conv", "ConvTranspose") for node in model.graph.node)


def calibration_batches(train_x: dict[str, torch.Tensor], rows: int = CALIBRATION_ROWS, batch: int = CALIBRATION_BATCH,
                        seed: int = 0) -> list[dict[str, np.ndarray]]:
    """A seeded random sample of the training rows, in batches, as ONNX Runtime feeds."""
    n = len(next(iter(train_x.values())))
    pick = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: min(rows, n)]
    return [{k: v[pick[i : i + batch]].numpy() for k, v in train_x.items()} for i in range(0, len(pick), batch)]


def quantize_int8(fp32: Path, out: Path, method: str = "auto", calibration: Callable[[], list[dict[str, np.ndarray]]] | None = None,
                  reduce_range: bool | None = None) -> Quantized:
    """Write an int8 copy of the fp32 ONNX graph `fp32` to `out` (atomically). `calibration` gives the static batches."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from forgeml.atomic import atomic_write

    if method not in METHODS:
        raise QuantizeError(f"int8 method {method!r}: choose one of {', '.join(METHODS)}")
    if method == "auto":
        method = "static" if has_convolutions(fp32) else "dynamic"
    reduce_range = needs_reduce_range() if reduce_range is None else reduce_range
    rows = 0
    with tempfile.TemporaryDirectory(prefix="forgeml-int8-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)  # shapes inferred, graph folded: what the quantizer reads best

        if method == "dynamic":
            def write(path: Path) -> None:
                # MatMulConstBOnly: weights only; attention's activation x activation products stay fp32 (quantizing
                # both sides per batch costs more than it saves, and loses precision)
                quantize_dynamic(str(pre), str(path), op_types_to_quantize=DYNAMIC_OPS, weight_type=QuantType.QInt8,
                                 reduce_range=reduce_range, extra_options={"MatMulConstBOnly": True})
        else:
            batches = calibration() if calibration is not None else []
            if not batches:
                raise QuantizeError("static int8 needs calibration batches from the training split; it has no rows")
            rows = sum(len(next(iter(b.values()))) for b in batches)

            class Reader(CalibrationDataReader):
                def __init__(self):
                    self.left = iter(batches)

                def get_next(self):
                    return next(self.left, None)

            def write(path: Path) -> None:
                quantize_static(str(pre), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=reduce_range)

        try:
            atomic_write(out, write)
        except ForgeError:
            raise
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise QuantizeError(f"{fp32}: ONNX Runtime could not quantize this graph to int8 ({method}: {reason})") from None
    return Quantized(Path(out), method, reduce_range, rows, Path(fp32).stat().st_size, Path(out).stat().st_size)
