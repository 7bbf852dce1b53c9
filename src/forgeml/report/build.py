"""The run report: RUN/report.html, one self-contained file (images inlined, no JavaScript needed).

    forgeml report runs/digits-cnn       # also written at the end of train and evaluate

It reads only the bundle (and, for the worst mistakes, the run's own held-out split rebuilt from its
config); whatever is missing — no history yet, no test split, a class absent from the test set — is
said on the page instead of failing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from forgeml.atomic import write_text
from forgeml.bundle import Bundle
from forgeml.errors import ForgeError
from forgeml.format import cell
from forgeml.notes import note, warn
from forgeml.report import plots

WORST_K = 12
MAX_HEATMAP_CLASSES = 30


def render(template: str, **context: Any) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("forgeml.report", "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters["num"] = lambda v: (f"{v:,}" if isinstance(v, int) else f"{v:.4f}" if isinstance(v, float) else ("-" if v is None else v))
    env.filters["cell"] = cell  # the worst-mistakes table: raw values, integers as integers, a dash for missing
    return env.get_template(template).render(**context)


def summary(bundle: Bundle) -> list[tuple[str, str]]:
    meta = bundle.meta()
    cfg = bundle.read_config_dict()
    rows = [("task", meta.get("task", "?")), ("status", meta.get("status", "?"))]
    variant = meta.get("variant") or {}
    if variant:
        how = ", ".join(f"{k} {v}" for k, v in variant.items() if k not in ("kind", "source") and not isinstance(v, (dict, list)))
        rows.append(("variant", f"{variant.get('kind', '?')} of {variant.get('source', '?')}" + (f" ({how})" if how else "")))
    sizes = meta.get("data") or {}
    if sizes:
        rows.append(("data", ", ".join(f"{k} {v:,}" for k, v in sizes.items())))
    rows.append(("model", f"{cfg['model']['name']}, {meta.get('parameters', 0):,} parameters"))
    rows += [("hardware", meta.get("hardware", "?")), ("precision", meta.get("precision", "?"))]
    if meta.get("wall_time") is not None:
        rows.append(("wall time", f"{meta['wall_time']:.1f} s for {meta.get('steps', '?')} steps ({meta.get('epochs', '?')} epochs)"))
    speed = meta.get("tokens_per_s") or meta.get("samples_per_s")
    if speed:
        rows.append(("throughput", f"{speed:,.0f} {'tokens' if meta.get('tokens_per_s') else 'samples'}/s"))
    best = meta.get("best") or {}
    if best.get("value") is not None:
        rows.append(("best", f"{best['metric']} = {best['value']:.4f} at step {best['step']}"))
    weights = meta.get("weights") or {}
    if weights:
        rows.append(("weights", f"step {weights.get('step', '?')}" + (f" ({weights['why']})" if weights.get("why") else "")))
    if meta.get("error"):
        rows.append(("error", meta["error"]))
    if meta.get("privacy"):
        from forgeml.report.privacy import privacy_line

        rows.append(("privacy", privacy_line(meta)))
    rows.append(("forgeml / torch", f"{meta.get('forgeml_version', '?')} / {meta.get('torch_version', '?')}"))
    return rows


def curve_figures(history: list[dict[str, Any]], lm: bool) -> list[str]:
    def series(split: str, key: str):
        pts = [(r["step"], r[key]) for r in history if r.get("split") == split and isinstance(r.get(key), (int, float))]
        return ([p[0] for p in pts], [p[1] for p in pts]) if pts else None

    figs = []
    loss = {f"{s} loss": v for s in ("train", "val") if (v := series(s, "loss"))}
    if loss:
        figs.append(plots.curves(loss, "loss", "loss"))
    val_keys = sorted({k for r in history if r.get("split") == "val" for k, v in r.items()
                       if isinstance(v, float) and k not in ("loss", "time", "epoch", "step")})
    if val_keys:
        figs.append(plots.curves({f"val {k}": series("val", k) for k in val_keys}, "validation metrics", "value",
                                 log=lm and val_keys == ["perplexity"]))
    lr = series("train", "lr")
    if lr:
        figs.append(plots.curves({"learning rate": lr}, "learning rate", "lr"))
    return figs


def _output_names(bundle: Bundle) -> list[str]:
    if not bundle.file("features.json").is_file():
        return []
    return [o["name"] for o in bundle.read_json("features.json").get("outputs", [])]


def metric_tables(metrics: dict[str, dict[str, Any]], outputs: list[str]) -> list[tuple[str, list[str], dict[str, dict[str, Any]]]]:
    """The final metrics as (title, columns, {split: {column: value}}) tables: one for a single output; for
    several, the run's n and weighted loss, then a table per output with its '<output>.' dropped (one wide
    table of every output's metrics runs off the page)."""
    keys = list(dict.fromkeys(k for m in metrics.values() for k in m))
    if len(outputs) < 2:
        return [("", keys, metrics)] if keys else []
    tables = []
    taken: set[str] = set()
    for name in sorted(outputs, key=len, reverse=True):  # 'a.b' before 'a': a longer name owns its prefix
        own = [k for k in keys if k.startswith(name + ".") and k not in taken]
        taken.update(own)
        cut = len(name) + 1
        tables.append((name, [k[cut:] for k in own], {s: {k[cut:]: m.get(k) for k in own} for s, m in metrics.items()}))
    tables.sort(key=lambda t: outputs.index(t[0]))
    rest = [k for k in keys if k not in taken]
    return [("all outputs", rest, metrics)] + tables


def report_split(splits) -> str | None:
    """The split the report draws from: test, else validation; None when the run has neither."""
    return "test" if "test" in splits else "val" if "val" in splits else None


def join_batches(batches: list[dict[str, Any]]) -> dict[str, Any]:
    """Output dicts of consecutive batches (as evaluate_split keeps them) -> one tensor per output."""
    import torch

    return {name: torch.cat([b[name] for b in batches]) for name in batches[0]}


def classification_sections(predictor, split, target, logits) -> dict[str, Any]:
    """Confusion matrix, ROC/PR when binary, the most confident mistakes: one class output."""
    out: dict[str, Any] = {}
    classes = target.classes
    probs = logits.softmax(-1).numpy()  # (N, K)
    y = split.y[target.name].numpy()
    pred = probs.argmax(1)
    k = len(classes)
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (y, pred), 1)
    if k <= MAX_HEATMAP_CLASSES:
        out["confusion"] = plots.confusion(matrix, classes)
    else:  # a thousand classes: the most frequent ones as a heatmap, the biggest confusions as a table
        top = np.argsort(-matrix.sum(1))[:MAX_HEATMAP_CLASSES]
        out["confusion"] = plots.confusion(matrix[np.ix_(top, top)], [classes[i] for i in top],
                                           f"confusion among the {MAX_HEATMAP_CLASSES} most frequent of {k} classes")
        off = matrix.copy()
        np.fill_diagonal(off, 0)
        flat = np.argsort(-off.ravel())[:20]
        out["top_confusions"] = [(classes[i // k], classes[i % k], int(off.ravel()[i])) for i in flat if off.ravel()[i] > 0]
    absent = [c for i, c in enumerate(classes) if matrix[i].sum() == 0]
    if absent:
        out["notes"] = [f"{target.name}: class{'es' if len(absent) > 1 else ''} {', '.join(absent[:10])} never appear{'s' if len(absent) == 1 else ''} "
                        "in this split: their recall is undefined (shown as 0)"]
    if k == 2:
        out["roc"] = plots.roc_pr((y == 1).astype(int), probs[:, 1], classes[1])
    wrong = np.nonzero(pred != y)[0]
    worst = wrong[np.argsort(-probs[wrong, pred[wrong]])][:WORST_K]  # the most confident mistakes first
    captions = [f"true {classes[y[i]]}\npredicted {classes[pred[i]]} ({probs[i, pred[i]]:.2f})" for i in worst]
    out["mistakes"] = mistakes(predictor, split, worst, captions)
    out["worst"] = (worst, captions)
    return out


def regression_sections(predictor, split, target, values) -> dict[str, Any]:
    """Predicted against true, residuals, the largest errors: one regression output."""
    pred = target.decode(values.reshape(-1).numpy().astype(np.float64))
    true = target.decode(split.y[target.name].reshape(-1).numpy().astype(np.float64))
    worst = np.argsort(-np.abs(pred - true))[:WORST_K]
    captions = [f"true {cell(true[i], 3)}, predicted {cell(pred[i], 3)}" for i in worst]
    return {"regression": plots.regression(true, pred), "mistakes": mistakes(predictor, split, worst, captions),
            "worst": (worst, captions)}


def multilabel_sections(predictor, split, target, logits, measured: dict[str, Any] | None, source: str) -> dict[str, Any]:
    """Per-label table and F1 bars (from metrics.json, sorted by support), micro/macro F1 beside where the
    thresholds came from, and the rows with the most wrong labels: one multi-label output."""
    out: dict[str, Any] = {"threshold_source": source}
    per_label = (measured or {}).get("per_label") or {}
    if per_label:
        rows = sorted(per_label.items(), key=lambda kv: (-kv[1]["support"], kv[0]))
        out["per_label"] = rows
        out["label_f1"] = plots.label_bars([label for label, _ in rows], [m["f1"] for _, m in rows],
                                           [m["support"] for _, m in rows], "F1 per label (most frequent first)")
        out["label_summary"] = [(k.replace("_", " "), measured[k]) for k in ("f1_macro", "f1_micro", "precision_micro",
                                                                             "recall_micro", "subset_accuracy") if k in measured]
    probs = logits.sigmoid().numpy()  # (N, L)
    chosen = probs >= np.asarray(target.thresholds, dtype=np.float32)  # (N, L): each label at its own threshold
    y = split.y[target.name].numpy() > 0.5  # (N, L)
    wrong = (chosen != y).sum(1)  # labels missed or added, per row
    distance = np.abs(probs - y).sum(1)  # ties: the more confidently wrong row first
    worst = [i for i in np.lexsort((-distance, -wrong)) if wrong[i] > 0][:WORST_K]
    labels = target.labels

    def named(mask: np.ndarray) -> str:
        return ", ".join(labels[j] for j in np.nonzero(mask)[0]) or "(none)"

    captions = [f"true {named(y[i])}\npredicted {named(chosen[i])}" for i in worst]
    out["mistakes"] = mistakes(predictor, split, np.asarray(worst, dtype=np.int64), captions)
    out["worst"] = (np.asarray(worst, dtype=np.int64), captions)
    return out


def threshold_source(predictor, target, has_val: bool) -> str:
    """Where a multi-label output's thresholds came from, in words (its config entry decides)."""
    given = {o.name: o for o in predictor.config.data.outputs}.get(target.name)
    setting = given.threshold if given is not None else "tune"
    if setting != "tune":
        return f"one threshold for every label, {setting:g}, set in data.outputs ({target.name}.threshold)"
    if not has_val:
        return "every label at 0.5: threshold 'tune' needs a validation split and the run has none"
    return "tuned per label for the best F1 on the validation split (labels too rare there keep 0.5)"


def series_cell(value: Any, name: str) -> str:
    """A sequence input in a table cell: its shape and first steps, not hundreds of numbers."""
    from forgeml.data.sequence_columns import series_from_cells

    try:
        x = series_from_cells([value], name)[0]  # (T, C)
    except Exception:  # a cell the feature could not read never reached the model; show its start as text
        return str(value)[:60]
    T, C = x.shape
    head = ", ".join("(" + " ".join(f"{v:.3g}" for v in step) + ")" if C > 1 else f"{step[0]:.3g}" for step in x[:4])
    return f"{T} steps × {C} channel{'s' if C > 1 else ''}: {head}{' …' if T > 4 else ''}"


def mistakes(predictor, split, index: np.ndarray, captions: list[str]) -> dict[str, Any] | None:
    if len(index) == 0:
        return None
    feature = predictor.features.inputs[0]
    raw = split.raw.data
    alone = len(predictor.features.inputs) == 1  # mixed inputs: a table of the columns a table can show
    if alone and feature.kind == "image":
        return {"kind": "image", "image": plots.image_grid([raw[feature.name][i] for i in index], captions,
                                                              f"the {len(index)} worst mistakes")}
    if alone and feature.kind == "sequence":  # a series reads as a line, not as numbers
        from forgeml.data.sequence_columns import series_from_cells

        rows = series_from_cells([raw[feature.name][i] for i in index], feature.name)  # (T_i, C) each
        return {"kind": "image", "image": plots.series_grid(rows, captions, f"the {len(index)} worst mistakes: "
                                                            f"{feature.name}, a line per channel over its steps")}
    if alone and feature.kind == "audio":  # spectrograms, and players with the clips inlined
        from forgeml.report.audio import audio_mistakes

        return audio_mistakes(feature, split, index, captions)
    if alone and feature.kind == "text":
        return {"kind": "text", "rows": [(str(raw[feature.name][i]), c) for i, c in zip(index, captions)]}
    shown = [f for f in predictor.features.inputs if f.kind != "image"]

    def value(f, i):
        return series_cell(raw[f.name][i], f.name) if f.kind == "sequence" else raw[f.name][i]

    # the outcome first: with many columns the inputs scroll sideways, and what went wrong stays in view
    return {"kind": "table", "columns": ["outcome"] + [f.name for f in shown],
            "rows": [[c] + [value(f, i) for f in shown] for i, c in zip(index, captions)]}


def write_report(run: str | Path, data=None, predictor=None, trust_code: bool = False,
                 outputs: list[dict[str, Any]] | None = None, title: str | None = None) -> Path:
    """Write RUN/report.html and return its path. `data`/`predictor` save rebuilding them when at hand;
    `outputs`, the network's output batches over the split the report draws (report_split, in row order, as
    evaluate_split keeps them), save a second pass over it; trust_code allows rebuilding a model whose
    config names code (model.name: custom); `title` names a run still in its staging folder."""
    bundle = Bundle.open(run, require_weights=False)
    meta = bundle.meta()
    history = bundle.read_history()
    lm = meta.get("task") == "language_model"
    ctx: dict[str, Any] = {"title": title or bundle.path.name, "generated": time.strftime("%Y-%m-%d %H:%M"), "notes": [],
                           "summary": summary(bundle), "lm": lm}
    ctx["curves"] = curve_figures(history, lm)
    if not history:
        ctx["notes"].append("no training history yet: the run stopped before its first log line")
    metrics = bundle.read_json("metrics.json") if bundle.file("metrics.json").is_file() else {}
    ctx["metrics"] = metric_tables({s: {k: v for k, v in m.items() if not isinstance(v, (dict, list)) and k != "step"}
                                    for s, m in metrics.items()}, _output_names(bundle))
    if not metrics and meta.get("status") == "diverged":  # its weights are not finite: nothing to measure
        ctx["notes"].append("no metrics: the run diverged (see the error above); the curves show it up to there")
    elif not metrics:
        ctx["notes"].append("no metrics yet: the run has not finished (resume it, then evaluate)")
    if meta.get("status") != "complete":
        ctx["notes"].append(f"the run's status is {meta.get('status', 'unknown')!r}: figures below are partial")
    elif lm:
        from forgeml.predictor import Predictor

        model = predictor or Predictor(bundle.path, trust_code=trust_code)
        ctx["samples"] = [model.generate("\n", 240, temperature=0.8, top_k=40, seed=s) for s in (1, 2, 3)]
    elif meta.get("task") == "recommend":  # ranking metrics by user activity (report/rec_section.py)
        from forgeml.report.rec_section import rec_sections

        ctx.update(rec_sections(bundle, data, predictor, ctx["notes"]))
    else:
        ctx.update(_task_sections(bundle, data, predictor, metrics, ctx["notes"], trust_code, outputs))
    ctx["compression"] = _compression(bundle)
    ctx["config"] = bundle.file("config.yaml").read_text() if bundle.file("config.yaml").is_file() else ""
    return write_text(bundle.file("report.html"), render("report.html.j2", **ctx))


def _compression(bundle: Bundle) -> dict[str, Any] | None:
    """The table `forgeml compress` saved (compression.json), shaped for the template; None when there is none."""
    if not bundle.file("compression.json").is_file():
        return None
    table = bundle.read_json("compression.json")
    rows = table.get("rows") or []
    return {**table, "rows": rows, "chosen": (table.get("chosen") or {}).get("row"),
            "metrics": list(dict.fromkeys(k for r in rows for k in r["metrics"])),
            "batches": list(dict.fromkeys(b for r in rows for b in r["latency_ms"]))}


def report_diverged(run: Path) -> None:
    """A run that diverged still gets its report.html: the history up to there and the error; no metrics.json
    (there are no finite weights to measure). The divergence itself stays the error the caller raises."""
    try:
        note(f"{write_report(run)}: the report of the diverged run")
    except ForgeError as exc:  # e.g. a folder made read-only meanwhile: the divergence is still what to tell
        warn(f"{run}: the diverged run's report.html could not be written ({str(exc).splitlines()[0]})")


def _task_sections(bundle: Bundle, data, predictor, metrics: dict[str, Any], notes: list[str], trust_code: bool,
                   outputs: list[dict[str, Any]] | None) -> dict[str, Any]:
    from forgeml.data.features.text import kept_tokenizers
    from forgeml.data.prepare import prepare
    from forgeml.predictor import Predictor

    predictor = predictor or Predictor(bundle.path, trust_code=trust_code)
    if data is None:
        try:
            data = prepare(predictor.config.data, tokenizers=kept_tokenizers(predictor.features))
        except ForgeError as exc:  # a bundle moved to another machine: its training data may not be there
            notes.append(f"the run's data cannot be read here ({str(exc).splitlines()[0]}): no confusion matrix or mistakes")
            return {}
    name = report_split(data.splits)
    if name is None:
        notes.append("the run has no test or validation split: no confusion matrix or mistakes to show")
        return {}
    if name == "val":
        notes.append("the run has no test split: the sections below use the validation split")
    split = data.splits[name]
    # the evaluation's own outputs when it measured this split; a report made alone runs the network once here
    out = join_batches(outputs) if outputs else predictor.outputs(split.x)
    several = len(predictor.features.outputs) > 1
    measured = metrics.get(name, {})
    sections = []
    worst: dict[str, tuple[np.ndarray, list[str]]] = {}  # per output: its worst rows and their captions, to explain
    for target in predictor.features.outputs:
        prefix = f"{target.name}." if several else ""
        own = {k[len(prefix):]: v for k, v in measured.items() if k.startswith(prefix)}  # this output's metrics, flat names
        section: dict[str, Any] = {"name": target.name, "kind": target.kind,
                                   "id": slug(target.name) + "-" if several else "", "of": f" of {target.name}" if several else ""}
        if target.kind == "classification":
            section["per_class"] = list(own.get("per_class", {}).items())
            section.update(classification_sections(predictor, split, target, out[target.name]))
        elif target.kind == "regression":
            section.update(regression_sections(predictor, split, target, out[target.name]))
        elif target.kind == "multilabel":
            section.update(multilabel_sections(predictor, split, target, out[target.name], own,
                                               threshold_source(predictor, target, "val" in data.splits)))
        notes += section.pop("notes", [])
        worst[target.name] = section.pop("worst")
        sections.append(section)
    found: dict[str, Any] = {}
    if predictor.config.eval.explain:
        from forgeml.report.explain_section import explain_sections

        found = explain_sections(predictor, split, worst, notes)
    for section in sections:
        section["explained"] = found.get("explained_mistakes", {}).get(section["name"])
    return {"split": name, "outputs": sections, "explain_global": found.get("explain_global")}


def slug(name: str) -> str:
    """An output's name as part of an HTML id: lower case, runs of other characters as one '-'."""
    import re

    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "output"
