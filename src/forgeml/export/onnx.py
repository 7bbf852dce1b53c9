"""Export a bundle's Network to RUN/model.onnx, verified against PyTorch on the run's own held-out rows.

    forgeml export runs/adult-mlp --format onnx          # or: forgeml.export.onnx.export_onnx("runs/adult-mlp")

The ONNX graph has the tensor contract's names (docs/contract.md): one input per key of the input dict
(`age`, `workclass`, `series.length`, ...) and one output per output name (`income`, ...), with a dynamic
batch axis, and a dynamic sequence axis on text and series inputs. Before model.onnx is written, ONNX
Runtime and PyTorch run the same held-out rows (test split, else validation, prepared with the run's
features.json) and every output must agree within a dtype-aware bound; otherwise nothing is written.
What was verified goes into meta.json under `exports.onnx`.

onnx, onnxruntime and onnxscript are an optional extra (`pip install 'forgeml[onnx]'`), imported here only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from forgeml.atomic import atomic_write
from forgeml.errors import BundleError, ConfigError, ForgeError

ONNX_FILE = "model.onnx"
DEFAULT_OPSET = 18  # the lowest opset torch's exporter writes natively: no version conversion to go wrong
VERIFY_ROWS = 256  # held-out rows run through both runtimes: enough to meet every class, seconds on a CPU
SAMPLE_ROWS = 4  # rows traced at export; verifying on more rows (and other text lengths) proves the axes dynamic

# (atol, rtol) by output dtype: an element passes when |onnx - torch| <= atol + rtol * |torch|. fp32 kernels
# differ in summation order (a few ulps per op, more over deep stacks); half precision has 3 decimal digits.
BOUNDS = {torch.float32: (1e-4, 1e-3), torch.float16: (1e-2, 1e-2), torch.bfloat16: (5e-2, 2e-2), torch.float64: (1e-7, 1e-6)}
SEQUENCE_KINDS = ("text", "sequence")  # inputs whose axis 1 is a length that differs between batches


class ExportError(ForgeError):
    """A bundle cannot be exported: an unsupported model, a layer ONNX cannot express, outputs that disagree."""


def require_onnx(what: str = "ONNX export") -> None:
    """A clear error, not an ImportError deep in a call, when the optional extra is missing."""
    import importlib.util

    missing = [m for m in ("onnx", "onnxruntime", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise ForgeError(f"{what} needs {', '.join(missing)}: pip install 'forgeml[onnx]'")


# -------------------------------------------------------------------------------------- the graph's signature
class _Positional(nn.Module):
    """The Network with positional tensors in and a tuple out, in a fixed order: the exporter names them
    input_names / output_names, so the ONNX graph speaks the contract's keys."""

    def __init__(self, network: nn.Module, input_names: list[str], output_names: list[str]):
        super().__init__()
        self.network, self.input_names, self.output_names = network, input_names, output_names

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.network(dict(zip(self.input_names, tensors)))
        return tuple(out[name] for name in self.output_names)


def dynamic_axes(features, input_names: list[str]) -> dict[str, dict[int, str]]:
    """Axis 0 of every input is the batch; axis 1 of a text or ragged series input (not its `.length`) is its length.

    A series whose rows all have the training length keeps it fixed: the network only ever sees that length."""
    varying = {f.name for f in features.inputs if f.kind in SEQUENCE_KINDS and getattr(f, "ragged", True)}
    axes = {}
    for name in input_names:
        axes[name] = {0: "batch"}
        if name in varying:
            axes[name][1] = f"{name}_length"
    return axes


def is_language_model(features) -> bool:
    """A GPT run (a corpus input, a next_token output): its graph carries a KV cache (export/gpt_onnx.py)."""
    return any(f.kind == "corpus" for f in features.inputs) or any(o.kind == "next_token" for o in features.outputs)


# -------------------------------------------------------------------------------------------- held-out rows
def held_out_inputs(config, features, rows: int = VERIFY_ROWS, run: Path | None = None,
                    network: nn.Module | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """The first `rows` rows of the run's test split (else validation), prepared with the run's features.json.

    A language model's rows are windows of RUN/data/val.bin with an empty past (its KV-cache graph's inputs):
    give `run` and `network` for it."""
    if is_language_model(features):
        from forgeml.export.gpt_onnx import held_out_kv_inputs

        if run is None or network is None:
            raise ValueError("a language model's held-out rows need its run folder and network")
        return held_out_kv_inputs(Path(run), network, features, rows), "val"
    from forgeml.data.prepare import load_columns

    splits = load_columns(config.data)
    name = next((s for s in ("test", "val") if s in splits and len(splits[s])), None)
    if name is None:
        raise ExportError(f"data at {config.data.path}: the run has no test or validation split to verify the export on; "
                          "set data.split.val or data.test_path and retrain")
    cols = splits[name]
    cols = cols.take(np.arange(min(rows, len(cols))))
    return features.transform_inputs(cols), name


# ------------------------------------------------------------------------------------------------ verification
@dataclass
class Check:
    """How one output of the ONNX graph compares with PyTorch's."""

    name: str
    dtype: str
    max_abs_diff: float
    max_rel_diff: float  # largest |onnx - torch| / max(|torch|, atol): relative where the value is not near zero
    atol: float
    rtol: float
    passed: bool


@dataclass
class Verified:
    checks: list[Check]
    rows: int
    split: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def run_session(session, inputs: dict[str, torch.Tensor], batch_size: int = 256) -> dict[str, np.ndarray]:
    """ONNX Runtime outputs for a dict of input tensors, batch by batch, keyed by output name."""
    names = [o.name for o in session.get_outputs()]
    n = len(next(iter(inputs.values())))
    parts: list[list[np.ndarray]] = [[] for _ in names]
    for i in range(0, n, batch_size):
        feed = {k: v[i : i + batch_size].numpy() for k, v in inputs.items()}
        for j, value in enumerate(session.run(names, feed)):
            parts[j].append(value)
    return {name: np.concatenate(p) for name, p in zip(names, parts)}


def open_session(path: str | Path, threads: int | None = None):
    """An onnxruntime InferenceSession on the CPU; a damaged or truncated file is a BundleError naming it."""
    require_onnx("the ONNX Runtime backend")
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path}: no ONNX model; write one with: forgeml export {path.parent} --format onnx")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3  # ORT's own warnings are about graph rewrites, not something a user can act on
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own types (InvalidProtobuf, Fail) for damaged files
        reason = str(exc).strip().splitlines()[0][:200]
        raise BundleError(f"{path}: cannot be read as an ONNX model ({reason}); the file is damaged or truncated. "
                          f"Write it again with: forgeml export {path.parent} --format onnx") from None


def compare(name: str, got: np.ndarray, ref: torch.Tensor, bounds: dict | None = None) -> Check:
    """One output of ONNX Runtime against PyTorch's: the largest differences, and whether every element is in bound."""
    atol, rtol = (bounds or BOUNDS).get(ref.dtype, (0.0, 0.0))  # integer outputs: exact
    dtype = str(ref.dtype).replace("torch.", "")
    ref64 = ref.detach().double().numpy()
    out = got.astype(np.float64)
    if out.shape != ref64.shape:
        return Check(name, dtype, math.inf, math.inf, atol, rtol, False)
    diff = np.abs(out - ref64)
    passed = bool(np.all(diff <= atol + rtol * np.abs(ref64)))  # NaN anywhere fails
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = float((diff / np.maximum(np.abs(ref64), max(atol, 1e-12))).max()) if diff.size else 0.0
    return Check(name, dtype, max_abs, max_rel, atol, rtol, passed)


def verify(session, network: nn.Module, inputs: dict[str, torch.Tensor], bounds: dict | None = None) -> Verified:
    """Run ONNX Runtime and PyTorch on the same inputs; per output, the largest differences and whether they pass."""
    start = time.perf_counter()
    got = run_session(session, inputs)
    network.eval()
    with torch.no_grad():
        want = network(inputs)
    checks = [compare(name, got[name], ref, bounds) for name, ref in want.items()]
    return Verified(checks, len(next(iter(inputs.values()))), seconds=time.perf_counter() - start)


# ------------------------------------------------------------------------------------------------- export
def _export_graph(network: nn.Module, sample: dict[str, torch.Tensor], axes: dict[str, dict[int, str]],
                  output_names: list[str], path: Path, opset: int) -> None:
    import warnings

    from torch.export import Dim

    names = list(sample)
    wrapped = _Positional(network, names, output_names).eval()
    dims: dict[str, Any] = {}  # one Dim per axis name: every input's batch is the same symbol
    shapes = tuple({axis: dims.setdefault(label, Dim(_symbol(label))) for axis, label in axes.get(n, {}).items()} or None
                   for n in names)
    import logging

    # the exporter's deprecation and tracing notes (and 'torchvision is not installed') are not the user's to fix
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(wrapped, tuple(sample[n] for n in names), str(path), input_names=names, output_names=output_names,
                              opset_version=opset, dynamic_shapes=(shapes,) if axes else None, dynamo=True,
                              external_data=False, verbose=False)  # *tensors is one var-positional argument: (shapes,)
        finally:
            quiet.setLevel(level)


def _symbol(label: str) -> str:
    """torch.export wants identifiers: 'Review Text_length' -> 'Review_Text_length'."""
    import re

    return re.sub(r"\W", "_", label) or "_"


def _keyword_safe(network: nn.Module) -> nn.Module:
    """A copy of the Network whose submodule keys are not Python keywords: the exporter writes the graph as Python
    code, where `self.heads.class` is a syntax error (LIBRAS's output is a column named `class`). Same weights;
    the graph's input and output names stay the contract's."""
    import copy
    import keyword

    def safe(key: str) -> str:
        return key + "_" if keyword.iskeyword(key) else key

    if not any(keyword.iskeyword(k) for k in [*network.encoders.keys(), *network.heads.keys()]):
        return network
    network = copy.deepcopy(network)
    network.encoders = nn.ModuleDict({safe(k): m for k, m in network.encoders.items()})
    network.heads = nn.ModuleDict({safe(k): m for k, m in network.heads.items()})
    network.head_keys = {name: safe(key) for name, key in network.head_keys.items()}
    return network


def _reason(exc: Exception) -> str:
    """The line of the exporter's long message that says what went wrong (its 'Exception summary')."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # no terminal colours in a one-line error
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    summary = next((i for i, line in enumerate(lines) if line.startswith("## Exception summary")), None)
    line = lines[summary + 1] if summary is not None and summary + 1 < len(lines) else (lines[0] if lines else type(exc).__name__)
    return line[:240]


def _culprit(network: nn.Module, sample: dict[str, torch.Tensor], opset: int, tmp: Path) -> str | None:
    """Which part of the Network the exporter chokes on: each encoder exported alone, then the combiner and heads."""
    with torch.no_grad():
        vectors = {key: enc(sample) for key, enc in network.encoders.items()}
    for key, encoder in network.encoders.items():
        try:
            _export_graph(_Single(encoder, list(sample)), sample, {}, ["out"], tmp, opset)
        except Exception:
            return f"encoders.{key} ({type(encoder).__name__}, {type(encoder).__module__})"
    try:
        _export_graph(_Rest(network), {k: v for k, v in vectors.items()}, {}, ["out"], tmp, opset)
    except Exception:
        return f"combiner/heads ({type(network.combiner).__name__})"
    return None


class _Single(nn.Module):
    def __init__(self, encoder: nn.Module, names: list[str]):
        super().__init__()
        self.encoder, self.names = encoder, names

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"out": self.encoder(inputs)}


class _Rest(nn.Module):
    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, vectors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        h = self.network.combiner(list(vectors.values()))  # (B, D)
        return {"out": torch.cat([head(h).flatten(1) for head in self.network.heads.values()], 1)}


@dataclass
class Exported:
    path: Path
    opset: int
    verified: Verified
    input_names: list[str]
    output_names: list[str]


def export_onnx(run: str | Path, opset: int = DEFAULT_OPSET, rows: int = VERIFY_ROWS, trust_code: bool = False,
                say: Callable[[str], None] | None = None) -> Exported:
    """Write RUN/model.onnx, verified against PyTorch on the run's held-out rows; nothing is written if it does not verify.

    Args:
        run: the run folder.
        opset: the ONNX opset to write (default 18).
        rows: held-out rows both runtimes run (default 256).
        trust_code: allow a custom model's Python code to be imported.
        say: called with each line of progress (default: silent).

    Example:
        >>> export_onnx("runs/adult-mlp").verified.passed  # doctest: +SKIP
        True
    """
    from forgeml.predictor import Predictor
    from forgeml.rec_predictor import is_recommendation_bundle

    if is_recommendation_bundle(run):
        raise ConfigError(f"{run}: a recommendation run (mf, two_tower) is not exported to ONNX; it serves its user and item "
                          "vectors from PyTorch (forgeml recommend, forgeml serve)")
    require_onnx()
    predictor = Predictor(run, trust_code=trust_code, backend="torch")
    bundle = predictor.bundle
    done = write_onnx(predictor, bundle.file(ONNX_FILE), opset, rows, say)
    verified = done.verified
    exports = dict(bundle.meta().get("exports") or {})
    exports["onnx"] = {"file": ONNX_FILE, "opset": opset, "torch": torch.__version__, "split": verified.split, "rows": verified.rows,
                       "inputs": done.input_names, "outputs": done.output_names,
                       "max_abs_diff": {c.name: c.max_abs_diff for c in verified.checks},
                       "max_rel_diff": {c.name: c.max_rel_diff for c in verified.checks},
                       "exported": time.strftime("%Y-%m-%dT%H:%M:%S")}
    bundle.update_meta(exports=exports)
    return done


@dataclass
class Graph:
    """What one kind of bundle exports and how it is checked; write_onnx's frame does the rest for every kind."""

    module: nn.Module  # a dict of named tensors in, a dict out (the contract's names)
    sample: dict[str, torch.Tensor]  # what the exporter traces
    axes: dict[str, dict[int, str]]  # input -> {axis: name} of its dynamic axes
    output_names: list[str]
    check: Callable[[Any], Verified]  # the written graph's ONNX Runtime session -> how it compares with PyTorch
    culprit: Callable[[Path], str | None] = lambda tmp: None  # which part the exporter chokes on, for the error


def _network_graph(predictor, rows: int, opset: int) -> Graph:
    """A classification, regression or multi-output Network: its held-out rows in, its outputs out."""
    network = _keyword_safe(predictor.model)
    inputs, split = held_out_inputs(predictor.config, predictor.features, rows)
    sample = {k: v[:SAMPLE_ROWS] for k, v in inputs.items()}

    def check(session) -> Verified:
        verified = verify(session, network, inputs)
        verified.split = split
        return verified

    return Graph(network, sample, dynamic_axes(predictor.features, list(inputs)), list(network.output_names), check,
                 lambda tmp: _culprit(network, sample, opset, tmp))


def write_onnx(predictor, path: str | Path, opset: int = DEFAULT_OPSET, rows: int = VERIFY_ROWS,
               say: Callable[[str], None] | None = None) -> Exported:
    """Export a loaded (torch) Predictor's Network to `path`, verified on the run's held-out rows; nothing is
    written if it does not verify. What `forgeml export` and `forgeml compress` (into a staging folder) share.
    A GPT is exported with its KV cache as inputs and outputs (export/gpt_onnx.py)."""
    require_onnx()
    say = say or (lambda line: None)
    bundle = predictor.bundle
    if not 7 <= opset <= 23:
        raise ExportError(f"--opset {opset}: choose an ONNX opset from 7 to 23 (default {DEFAULT_OPSET})")
    if is_language_model(predictor.features):
        from forgeml.export.gpt_onnx import kv_graph

        graph = kv_graph(predictor, rows)
    else:
        graph = _network_graph(predictor, rows, opset)
    result: dict[str, Any] = {}

    def write(tmp: Path) -> None:
        try:
            _export_graph(graph.module, graph.sample, graph.axes, graph.output_names, tmp, opset)
        except Exception as exc:
            reason = _reason(exc)
            where = graph.culprit(tmp.with_name(tmp.name + "-part"))
            tmp.with_name(tmp.name + "-part").unlink(missing_ok=True)
            layer = f"{where} cannot be expressed in ONNX" if where else "the network cannot be expressed in ONNX"
            raise ExportError(f"{bundle.path}: {layer} ({type(exc).__name__}: {reason}); "
                              "choose another architecture for this input to export it") from None
        verified = graph.check(open_session(tmp))
        split = verified.split
        for c in verified.checks:
            say(f"{c.name} ({c.dtype}): max abs diff {c.max_abs_diff:.3g}, max rel diff {c.max_rel_diff:.3g} "
                f"(bound {c.atol:g} + {c.rtol:g}*|torch|) on {verified.rows} {split} rows: {'ok' if c.passed else 'FAILED'}")
        if not verified.passed:
            bad = next(c for c in verified.checks if not c.passed)
            raise ExportError(f"{bundle.path}: ONNX Runtime's output '{bad.name}' differs from PyTorch's by up to "
                              f"{bad.max_abs_diff:.3g} (bound {bad.atol:g} + {bad.rtol:g}*|value|) on {verified.rows} {split} "
                              f"rows; {Path(path).name} was not written")
        result["verified"] = verified

    written = atomic_write(path, write)
    return Exported(written, opset, result["verified"], list(graph.sample), graph.output_names)
