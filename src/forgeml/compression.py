"""The compress stage: variants of a trained run, each an ordinary bundle beside it, measured side by side.

    forgeml compress runs/mnist-cnn --quantize int8        # -> runs/mnist-cnn-int8 (model.onnx, int8)
    forgeml compress runs/mnist-cnn --prune 0.5            # -> runs/mnist-cnn-pruned50 (fewer channels, fine-tuned)
    forgeml compress runs/adult-mlp --distill student.yaml # -> runs/adult-mlp-distilled
    forgeml compress runs/mnist-cnn --auto                 # all that apply; the best within --max-drop -> RUN-best

Every compress run measures the original (PyTorch fp32 eager, and ONNX Runtime fp32 where the onnx extra is
installed) and each variant the same way: the metric per output on the held-out split, parameters, file size,
latency at batch 1 and 64 (median of repeated runs, threads stated). The table is printed, saved as
RUN/compression.json and drawn in RUN/report.html.
"""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from forgeml import __version__
from forgeml.bundle import FORMAT_VERSION, ONNX_RUNTIME, Bundle
from forgeml.compress.measure import BATCHES, REPEATS, onnx_latency, torch_latency
from forgeml.compress.variant import staged_variant, variant_path
from forgeml.errors import ConfigError, ForgeError
from forgeml.predictor import Predictor

TABLE_FILE = "compression.json"
HEADLINE = {"classification": "accuracy", "multilabel": "f1_macro", "regression": "rmse", "next_token": "perplexity"}
LOWER_IS_BETTER = {"rmse", "mae", "mse", "loss", "perplexity"}
TARGETS = ("latency", "size")
FASTER = 1.05  # "faster" means at least 5% less time: medians of 30 runs on a busy CPU move by a few per cent


class CompressError(ForgeError):
    """A compress request that cannot be carried out: nothing asked, a bad ratio, an already compressed bundle."""


# ------------------------------------------------------------------------------------------------ int8
def make_int8(run: str | Path, method: str = "auto", *, name: str | None = None, overwrite: bool = False,
             trust_code: bool = False, say: Callable[[str], None] | None = None) -> Path:
    """RUN-int8: the run's network exported to ONNX (verified against PyTorch), quantized to int8 by ONNX Runtime
    (dynamic for Linear/attention models, static QDQ with training-split calibration where there are convolutions),
    evaluated on the run's held-out splits. Returns the new bundle's folder; the source run is not changed."""
    from forgeml.compress.quantize import QuantizeError, calibration_batches, quantize_int8
    from forgeml.data.features.text import kept_tokenizers
    from forgeml.data.prepare import prepare
    from forgeml.export.onnx import require_onnx, write_onnx

    say = say or (lambda line: None)
    require_onnx("int8 quantization")
    source = _torch_source(run, trust_code, "quantize")
    lm = source.tokenizer is not None  # a GPT: its KV-cache graph, dynamic int8, perplexity on RUN/data/val.bin
    data = None if lm else prepare(source.config.data, tokenizers=kept_tokenizers(source.features))
    dest = variant_path(source.path, "int8", name)
    with staged_variant(source.bundle, dest, overwrite) as stage, tempfile.TemporaryDirectory(prefix="forgeml-fp32-") as tmp:
        fp32 = write_onnx(source, Path(tmp) / "model.onnx", say=lambda line: None)
        say(f"exported the fp32 graph, verified against PyTorch on {fp32.verified.rows} {fp32.verified.split} rows")
        try:
            done = quantize_int8(fp32.path, stage / "model.onnx", method, calibration=None if lm else
                                 lambda: calibration_batches(data.splits["train"].x, seed=source.config.train.seed))
        except QuantizeError as exc:
            raise QuantizeError(f"{source.path}: {exc}") from None
        say(f"int8 {done.method}{' (reduce_range: this CPU has no VNNI)' if done.reduce_range else ''}: "
            f"{done.fp32_bytes / 1e6:.2f} MB -> {done.int8_bytes / 1e6:.2f} MB")
        variant = {"kind": "int8", "source": str(source.path), "method": done.method, "reduce_range": done.reduce_range,
                   "calibration_rows": done.calibration_rows, "fp32_bytes": done.fp32_bytes, "int8_bytes": done.int8_bytes}
        _finish_variant(source, stage, dest, data, variant, runtime=ONNX_RUNTIME)
    return dest


def _torch_source(run: str | Path, trust_code: bool, what: str) -> Predictor:
    """The run to compress, with its PyTorch weights; an int8 (ONNX-only) bundle cannot be compressed again."""
    source = Predictor(run, trust_code=trust_code)
    if source.bundle.onnx_only:
        kind = (source.bundle.meta().get("variant") or {}).get("kind", "ONNX")
        origin = (source.bundle.meta().get("variant") or {}).get("source")
        raise CompressError(f"{source.path}: already {'quantized (an int8 variant)' if kind == 'int8' else f'an {kind} ONNX-only bundle'}; "
                            f"it has no PyTorch weights to {what}. Compress the original run{f' ({origin})' if origin else ''} instead")
    if source.tokenizer is not None and what != "quantize":
        raise CompressError(f"{source.path}: a language model (GPT) can only be quantized so far (--quantize int8), "
                            f"not {what}ed; pruning and distillation take a classification, regression or multi-output run")
    return source


def _finish_variant(source: Predictor, stage: Path, dest: Path, data, variant: dict[str, Any], runtime: str | None = None) -> None:
    """meta.json, config name, metrics.json and report.html of a staged variant, measured through forgeml.load's path:
    on the run's held-out splits, or for a GPT (data None) by perplexity on its held-out text, whose tokens
    (RUN/data/val.bin) travel with the variant so that `forgeml evaluate` measures it as it measures the source."""
    from forgeml.report.build import report_split, write_report

    cfg = source.config.model_copy(deep=True)
    cfg.name = dest.name
    (stage / "config.yaml").write_text(cfg.to_yaml())
    val = source.path / "data" / "val.bin"
    if data is None and val.is_file():
        (stage / "data").mkdir()
        shutil.copy2(val, stage / "data" / "val.bin")
    meta = source.bundle.meta()
    fields = {k: meta[k] for k in ("task", "data", "parameters", "precision", "hardware", "weights") if k in meta}
    Bundle(stage).update_meta(format_version=FORMAT_VERSION, forgeml_version=__version__, torch_version=torch.__version__,
                              status="complete", created=time.strftime("%Y-%m-%dT%H:%M:%S"), python=platform.python_version(),
                              **fields, **({"runtime": runtime} if runtime else {}), variant=variant)
    predictor = Predictor(stage, trust_code=True)  # the source's config, already past require_trust
    step = (meta.get("weights") or {}).get("step") or meta.get("steps")
    shown: list[dict[str, torch.Tensor]] = []
    if data is None:
        from forgeml.data.corpus import open_tokens

        if val.is_file():
            tokens = open_tokens(stage / "data" / "val.bin", predictor.tokenizer.vocab_size)
            Bundle(stage).write_json("metrics.json", {"val": {"step": step, **predictor.evaluate_tokens(tokens)}})
    else:
        from forgeml.pipeline import evaluate_splits

        metrics = evaluate_splits(predictor, data, source.config.eval.splits, step, keep={report_split(data.splits): shown})
        Bundle(stage).write_json("metrics.json", metrics)
    write_report(stage, data, predictor, outputs=shown if data is not None else None, title=dest.name)


# ------------------------------------------------------------------------------------------------ the table
@dataclass
class Row:
    """One line of the comparison table."""

    variant: str  # fp32, int8, pruned50, distilled, ...
    runtime: str  # PyTorch eager | ONNX Runtime
    path: str
    metrics: dict[str, float]  # "accuracy", "income.accuracy", "loss", ...: on the held-out split
    parameters: int
    size_bytes: int
    latency_ms: dict[int, float]  # batch -> median ms
    speedup: dict[int, float] = field(default_factory=dict)  # batch -> (PyTorch fp32 eager ms) / (this ms)
    note: str = ""


def headline_metrics(metrics: dict[str, Any], features) -> dict[str, float]:
    """The metric that says how good each output is (accuracy, macro-F1, RMSE, perplexity), plus the loss."""
    single = len(features.outputs) == 1
    out = {}
    for o in features.outputs:
        key = HEADLINE.get(o.kind)
        full = key if single else f"{o.name}.{key}"
        if key and full in metrics:
            out[full] = float(metrics[full])
    if "loss" in metrics:
        out["loss"] = float(metrics["loss"])
    return out


def held_out_split(metrics: dict[str, Any]) -> str:
    return next((s for s in ("test", "val") if s in metrics), next(iter(metrics), ""))


def _measure_row(predictor: Predictor, variant: str, inputs: dict[str, torch.Tensor], split: str, repeats: int,
              session=None, size_file: Path | None = None, batches: tuple[int, ...] = BATCHES) -> Row:
    bundle = predictor.bundle
    metrics = bundle.read_json("metrics.json").get(split, {}) if bundle.file("metrics.json").is_file() else {}
    if session is not None:
        latency = onnx_latency(session, inputs, batches, repeats)
        runtime, file = "ONNX Runtime", size_file or bundle.file("model.onnx")
    else:
        latency = torch_latency(predictor.model, inputs, batches, repeats)
        runtime, file = "PyTorch eager", bundle.file("model.safetensors")
    params = int(bundle.meta().get("parameters") or sum(p.numel() for p in predictor.model.parameters()))
    return Row(variant, runtime, str(bundle.path), headline_metrics(metrics, predictor.features), params, file.stat().st_size,
               {lat.batch: round(lat.median_ms, 4) for lat in latency})


def measure(run: str | Path, variants: list[tuple[str, Path]], *, repeats: int = REPEATS, batches: tuple[int, ...] = BATCHES,
            trust_code: bool = False, say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The table: the source in PyTorch fp32 eager (and ONNX Runtime fp32 when the onnx extra is there), then
    each variant in its own runtime, all on the same held-out rows and thread count."""
    import importlib.util

    from forgeml.export.onnx import held_out_inputs

    say = say or (lambda line: None)
    source = Predictor(run, trust_code=trust_code)
    split = held_out_split(source.bundle.read_json("metrics.json"))
    inputs, _ = held_out_inputs(source.config, source.features, max(batches), run=source.path, network=source.model)
    threads = torch.get_num_threads()
    say(f"measuring latency at batch {', '.join(map(str, batches))}: median of {repeats} runs, {threads} threads")

    def _measured(*args, **kwargs) -> Row:
        return _measure_row(*args, **kwargs, batches=batches)

    rows = [_measured(source, "fp32", inputs, split, repeats)]
    with tempfile.TemporaryDirectory(prefix="forgeml-measure-") as tmp:
        onnx = importlib.util.find_spec("onnxruntime") is not None

        def in_onnx_runtime(predictor: Predictor, name: str) -> None:
            """The same network (fp32) in ONNX Runtime: a row beside its PyTorch one."""
            from forgeml.export.onnx import ExportError, open_session, write_onnx

            try:
                fp32 = write_onnx(predictor, Path(tmp) / f"{name}.onnx")
            except ExportError as exc:
                say(f"no ONNX Runtime row for {name}: {exc}")
                return
            rows.append(_measured(predictor, name, inputs, split, repeats, open_session(fp32.path, threads), fp32.path))

        if onnx:
            in_onnx_runtime(source, "fp32")
        for name, path in variants:
            variant = Predictor(path, trust_code=trust_code)
            if variant.backend == "onnx":
                from forgeml.export.onnx import open_session

                rows.append(_measured(variant, name, inputs, split, repeats, open_session(variant.bundle.file("model.onnx"), threads)))
                continue
            rows.append(_measured(variant, name, inputs, split, repeats))
            if onnx:
                in_onnx_runtime(variant, name)
    base = rows[0].latency_ms
    for row in rows:
        row.speedup = {b: round(base[b] / row.latency_ms[b], 3) for b in row.latency_ms if row.latency_ms[b] > 0}
    from forgeml.training.runtime import describe_cpu

    return {"source": str(source.path), "split": split, "threads": threads, "repeats": repeats, "cpu": describe_cpu(),
            "onnxruntime": _version("onnxruntime"), "torch": torch.__version__, "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "rows": [asdict(r) for r in rows]}


def _version(module: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(module)
    except importlib.metadata.PackageNotFoundError:
        return None


# ------------------------------------------------------------------------------------------------ choosing
def drop(metric: str, base: float, value: float) -> float:
    """How much worse `value` is than `base`: percentage points for scores in [0, 1] (accuracy, F1), per cent of
    the original for errors (RMSE, perplexity, loss). Negative: better."""
    name = metric.rpartition(".")[2]
    if name in LOWER_IS_BETTER:
        return 100.0 * (value - base) / max(abs(base), 1e-12)
    return 100.0 * (base - value)


def choose(table: dict[str, Any], max_drop: float, target: str) -> tuple[int | None, list[str]]:
    """The index of the row to keep (None: keep the original) and why, one line per row: within max_drop on every
    output's headline metric; for latency, faster at the largest batch measured (64) than ONNX Runtime fp32 (else
    PyTorch fp32)."""
    if target not in TARGETS:
        raise ConfigError(f"--target {target!r}: choose one of {', '.join(TARGETS)}")
    rows = table["rows"]
    reference = next((i for i, r in enumerate(rows) if r["variant"] == "fp32" and r["runtime"] == "ONNX Runtime"), 0)
    big = max(int(b) for b in rows[0]["latency_ms"])  # the largest batch measured: where int8 and pruning pay
    reasons, fit = [], []
    for i, row in enumerate(rows):
        worst = max((drop(k, rows[0]["metrics"][k], v) for k, v in row["metrics"].items() if k != "loss" and k in rows[0]["metrics"]),
                    default=0.0)
        label = f"{row['variant']} ({row['runtime']})"
        if worst > max_drop:
            reasons.append(f"{label}: loses {worst:.2f} (more than --max-drop {max_drop:g})")
            continue
        if target == "latency" and i != reference and _lat(row, big) * FASTER > _lat(rows[reference], big):
            reasons.append(f"{label}: not faster than {rows[reference]['variant']} {rows[reference]['runtime']} at batch {big} "
                           f"({_lat(row, big):.3g} ms against {_lat(rows[reference], big):.3g}; faster means {FASTER - 1:.0%} less time)")
            continue
        fit.append(i)
    if not fit:
        return None, reasons + ["kept the original: no variant stays within the allowed drop"]
    key = (lambda i: _lat(rows[i], big)) if target == "latency" else (lambda i: rows[i]["size_bytes"])
    best = min(fit, key=key)
    reasons.append(f"kept {rows[best]['variant']} ({rows[best]['runtime']}): the {'fastest at batch ' + str(big) if target == 'latency' else 'smallest'} "
                   f"within --max-drop {max_drop:g}")
    return best, reasons


def _lat(row: dict[str, Any], batch: int) -> float:
    lat = row["latency_ms"]
    return float(lat.get(batch, lat.get(str(batch), float("inf"))))


def keep_best(table: dict[str, Any], best: int, run: Path, name: str | None, overwrite: bool) -> Path:
    """RUN-best: a copy of the chosen row's bundle; a row measured in ONNX Runtime becomes an ONNX-only bundle
    (model.onnx in place of model.safetensors), so that forgeml.load runs it the way it was measured."""
    import yaml

    row = table["rows"][best]
    source = Bundle.open(run)
    dest = variant_path(source.path, "best", name)
    origin = Bundle.open(row["path"])
    with staged_variant(source, dest, overwrite) as stage:
        for item in origin.path.iterdir():
            if item.name in ("checkpoints", "tensorboard", TABLE_FILE, "model.onnx") or item.name.startswith("."):
                continue
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, stage / item.name)
        if origin.onnx_only:
            shutil.copy2(origin.file("model.onnx"), stage / "model.onnx")
        elif row["runtime"] == "ONNX Runtime":
            from forgeml.export.onnx import write_onnx

            write_onnx(Predictor(origin.path, trust_code=True), stage / "model.onnx")
            (stage / "model.safetensors").unlink()
            Bundle(stage).update_meta(runtime=ONNX_RUNTIME)
        variant = Bundle(stage).meta().get("variant") or {"kind": "fp32", "source": str(source.path)}
        Bundle(stage).update_meta(variant={**variant, "best_of": str(source.path), "runtime": row["runtime"],
                                           "chosen_from": row["path"]})
        cfg = Bundle(stage).read_config_dict()
        cfg["name"] = dest.name
        (stage / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dest


def save_table(run: Path, table: dict[str, Any]) -> Path:
    from forgeml.atomic import write_json

    return write_json(Path(run) / TABLE_FILE, json.loads(json.dumps(table)))  # batch keys become strings, as read back


# ------------------------------------------------------------------------------------------------ the stage
QUANTIZE = {"int8": "auto", "int8-dynamic": "dynamic", "int8-static": "static"}


def compress(run: str | Path, *, quantize: str | None = None, prune: float | None = None, distill: str | Path | None = None,
             temperature: float = 4.0, alpha: float = 0.5, auto: bool = False, max_drop: float = 0.5, target: str = "latency",
             overwrite: bool = False, repeats: int = REPEATS, batches: tuple[int, ...] = BATCHES, trust_code: bool = False,
             say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Make the asked variants (each a bundle beside the run), measure them against the original, save the table as
    RUN/compression.json; with `auto`, try every variant that applies and copy the best within `max_drop` to RUN-best.
    Returns the table (rows, and with auto: chosen, reasons, best)."""
    say = say or (lambda line: None)
    source_path = _check_request(run, quantize, prune, distill, auto, max_drop, target, trust_code)
    if auto:
        quantize = quantize or "int8"
        prune = prune or 0.5
    variants: list[tuple[str, Path]] = []
    skipped: list[str] = []

    def attempt(label: str, make: Callable[[], Path]) -> None:
        say(f"making {label}")
        try:
            variants.append((label, make()))
        except ForgeError as exc:
            if not auto:  # asked for by name: its failure is the answer
                raise
            skipped.append(f"{label}: not made ({exc})")
            say(f"{label}: skipped ({exc})")

    if quantize:
        attempt("int8", lambda: make_int8(source_path, QUANTIZE[quantize], overwrite=overwrite, trust_code=trust_code, say=say))
    if prune:
        from forgeml import pipeline

        attempt(f"pruned{round(100 * prune)}", lambda: pipeline.prune(source_path, prune, overwrite=overwrite, say=say))
    if distill:
        from forgeml import pipeline

        attempt("distilled", lambda: pipeline.distill(source_path, distill, temperature=temperature, alpha=alpha, overwrite=overwrite))
    table = measure(source_path, variants, repeats=repeats, batches=batches, trust_code=trust_code, say=say)
    table = json.loads(json.dumps(table))  # the form compression.json is read back in (batch keys as strings)
    if auto:
        best, reasons = choose(table, max_drop, target)
        table.update(target=target, max_drop=max_drop, reasons=skipped + reasons,
                     chosen=None if best is None else {"row": best, "variant": table["rows"][best]["variant"],
                                                       "runtime": table["rows"][best]["runtime"]})
        if best is not None and best != 0:
            table["best"] = str(keep_best(table, best, source_path, None, overwrite))
    save_table(source_path, table)
    from forgeml.report.build import write_report

    write_report(source_path, trust_code=trust_code)  # the table joins the run's report
    return table


def _check_request(run, quantize, prune, distill, auto, max_drop, target, trust_code) -> Path:
    """Every option checked before any work: a mistake costs nothing and leaves nothing behind."""
    from forgeml.rec_predictor import is_recommendation_bundle

    if is_recommendation_bundle(run):
        raise CompressError(f"{run}: a recommendation run (mf, two_tower) is not compressed: quantization goes through ONNX "
                            "export, and pruning and distillation are written for encoders and heads; shrink model.dim instead")
    if not (quantize or prune or distill or auto):
        raise CompressError("nothing to do: give --quantize int8, --prune RATIO, --distill STUDENT.yaml or --auto")
    if quantize and quantize not in QUANTIZE:
        raise CompressError(f"--quantize {quantize!r}: choose one of {', '.join(QUANTIZE)}")
    if prune is not None and not 0 < prune < 1:
        raise CompressError(f"--prune {prune:g}: give the share of channels/neurons to remove, between 0 and 1 (e.g. 0.5)")
    if distill is not None and not Path(distill).is_file():
        raise CompressError(f"--distill {distill}: no such student config file")
    if max_drop < 0:
        raise CompressError(f"--max-drop {max_drop:g}: give the allowed loss in metric points, 0 or more (e.g. 0.5)")
    if target not in TARGETS:
        raise CompressError(f"--target {target!r}: choose one of {', '.join(TARGETS)}")
    only_quantize = quantize and not (prune or distill or auto)  # all that a language model can have so far
    return _torch_source(run, trust_code, "quantize" if only_quantize else "compress").path
