"""What a study shows at the end: a table of trials, parameter importances, three plots in a self-contained
tune_report.html (inline PNGs, no scripts from anywhere), best.yaml ready for `forgeml train`, and tune.json.
Every file is written atomically."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import yaml

from forgeml.atomic import write_json, write_text
from forgeml.config import Config
from forgeml.tune import space as tune_space


def trial_rows(study, cfg: Config) -> list[dict[str, Any]]:
    """One plain dict per trial, in trial order."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("surplus"):  # stepped back before running anything (two workers took one place)
            continue
        note = ""
        if t.state.name == "PRUNED":
            at = t.user_attrs.get("pruned_at") or {}
            note = f"pruned at evaluation {at.get('evaluation', '?')}" + (f" ({at['value']:.4f})" if "value" in at else "")
        elif t.state.name == "FAIL":
            note = (t.user_attrs.get("fail_reason") or "its process stopped (killed or interrupted); values retried").splitlines()[0]
        rows.append({"number": t.number, "state": t.state.name.lower(), "value": t.value if t.state.name == "COMPLETE" else None,
                     "params": tune_space.decode(t.params, cfg.tune.space),
                     "duration": t.duration.total_seconds() if t.duration else None, "note": note,
                     "run": t.user_attrs.get("run"), "worker": t.user_attrs.get("worker"),
                     "start": t.datetime_start.timestamp() if t.datetime_start else None,
                     "end": t.datetime_complete.timestamp() if t.datetime_complete else None,
                     "intermediate": dict(t.intermediate_values)})
    return rows


def importances(study) -> tuple[dict[str, float] | None, str]:
    """Each searched field's share of the objective's variance (fANOVA, seeded), or None and why not."""
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(complete) < 2:
        return None, f"needs 2 complete trials or more (this study has {len(complete)})"
    try:
        found = optuna.importance.get_param_importances(study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    except (RuntimeError, ValueError) as exc:
        if "zero total variance" in str(exc):
            return None, "every complete trial has the same value"
        return None, str(exc).splitlines()[0]
    if not found:
        return None, "no field took more than one value"
    return {k: float(v) for k, v in found.items()}, ""


def table(rows: list[dict[str, Any]], objective: str, title: str):
    """A rich Table of the trials: number, state, objective, duration, values."""
    from rich.table import Table

    keys = list(dict.fromkeys(k for r in rows for k in r["params"]))
    t = Table(title=title)
    t.add_column("trial", justify="right", no_wrap=True)
    t.add_column("state", no_wrap=True)
    t.add_column("value", justify="right", no_wrap=True)
    t.add_column("seconds", justify="right", no_wrap=True)
    for k in keys:
        t.add_column(k, justify="right", no_wrap=True, overflow="fold")
    for r in rows:  # a failure's reason is long: the line printed as the trial ended, and tune_report.html, have it
        state = r["state"]
        if state == "pruned" and r["intermediate"]:
            state = f"pruned @{max(r['intermediate'])}"
        t.add_row(str(r["number"]), state, "-" if r["value"] is None else f"{r['value']:.4f}",
                  "-" if r["duration"] is None else f"{r['duration']:.1f}", *[_cell(r["params"].get(k)) for k in keys])
    return t


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else str(v).replace(" ", "")


def best_config(cfg: Config, values: dict[str, Any]) -> Config:
    """The config with the best trial's values, no tune section, named <name>-best: `forgeml train best.yaml`."""
    return tune_space.apply(cfg, values, name=f"{cfg.name or 'run'}-best")


# -------------------------------------------------------------------------------------------- figures
def _history(rows, objective: str, direction: str) -> str | None:
    from forgeml.report import plots

    done = [r for r in rows if r["state"] == "complete"]
    if not done:
        return None
    plt = plots._plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    xs, ys = [r["number"] for r in done], [r["value"] for r in done]
    ax.scatter(xs, ys, s=16, label="complete", zorder=3)
    pruned = [(r["number"], r["intermediate"][max(r["intermediate"])]) for r in rows if r["state"] == "pruned" and r["intermediate"]]
    if pruned:
        ax.scatter(*zip(*pruned), marker="x", s=16, color=plots.COLORS[6], label="pruned (last value)", zorder=2)
    best, run = [], None
    for y in ys:
        run = y if run is None else (min(run, y) if direction == "minimize" else max(run, y))
        best.append(run)
    ax.step(xs, best, where="post", color=plots.COLORS[1], label="best so far")
    ax.set(title="optimisation history", xlabel="trial", ylabel=objective)
    ax.legend()
    return plots.to_data_uri(fig)


def _importance_figure(found: dict[str, float] | None) -> str | None:
    from forgeml.report import plots

    if not found:
        return None
    plt = plots._plt()
    names = list(found)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.4 * len(names)))
    ax.barh(names, [found[n] for n in names])
    ax.set(title="parameter importances (fANOVA)", xlabel="share of the objective's variance")
    return plots.to_data_uri(fig)


def _parallel(rows, cfg: Config, objective: str, direction: str) -> str | None:
    """Parallel coordinates: one line per complete trial across every searched field (each axis scaled to its
    range; log ranges in log scale; choices by their position), coloured by the objective."""
    from forgeml.report import plots

    done = [r for r in rows if r["state"] == "complete"]
    if not done:
        return None
    plt = plots._plt()
    keys = list(cfg.tune.space)
    columns, labels = [], []
    for key in keys:
        spec = cfg.tune.space[key]
        if spec.kind == "choice":
            codes = [tune_space._encode(c) for c in spec.choice]
            col = [codes.index(tune_space._encode(r["params"].get(key))) if tune_space._encode(r["params"].get(key)) in codes else 0
                   for r in done]
            lo, hi = 0, max(1, len(codes) - 1)
            labels.append(f"{key}\n" + " | ".join(_cell(c) for c in spec.choice))
        else:
            low, high = spec.int_ if spec.kind == "int" else getattr(spec, spec.kind)
            log = spec.kind == "log_uniform" or spec.log
            f = (lambda v: math.log10(v)) if log else (lambda v: v)
            col = [f(float(r["params"].get(key, low))) for r in done]
            lo, hi = f(low), f(high)
            labels.append(f"{key}\n{_cell(low)} .. {_cell(high)}{' (log)' if log else ''}")
        columns.append([(c - lo) / (hi - lo) if hi > lo else 0.5 for c in col])
    values = [r["value"] for r in done]
    vmin, vmax = min(values), max(values)
    columns.append([(v - vmin) / (vmax - vmin) if vmax > vmin else 0.5 for v in values])
    labels.append(f"{objective}\n{vmin:.4g} .. {vmax:.4g}")
    cmap = plt.get_cmap("viridis" if direction == "maximize" else "viridis_r")
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(labels)), 3.6))
    order = sorted(range(len(done)), key=lambda i: values[i] if direction == "maximize" else -values[i])  # best drawn last
    for i in order:
        shade = (values[i] - vmin) / (vmax - vmin) if vmax > vmin else 0.5
        ax.plot(range(len(labels)), [c[i] for c in columns], color=cmap(shade), alpha=0.8, linewidth=1.2)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_yticks([0, 0.5, 1], ["low", "", "high"])
    ax.set(title="parallel coordinates (complete trials; brighter = better)")
    return plots.to_data_uri(fig)


def write_outputs(folder: Path, study, cfg: Config, objective: str, direction: str, url: str) -> dict[str, Any]:
    """tune_report.html, best.yaml (when a trial completed) and tune.json in the study folder; returns tune.json's content."""
    from forgeml.report.build import render

    rows = trial_rows(study, cfg)
    found, why = importances(study)
    complete = [r for r in rows if r["state"] == "complete"]
    best = None
    if complete:
        pick = min if direction == "minimize" else max
        best = pick(complete, key=lambda r: r["value"])
    summary = {"study": study.study_name, "storage": url, "objective": objective, "direction": direction,
               "counts": {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail", "running", "waiting")},
               "best": None if best is None else {"trial": best["number"], "value": best["value"], "params": best["params"],
                                                  "run": best["run"], "config": str(folder / "best.yaml")},
               "importances": found, "importances_note": why, "trials": rows}
    if best is not None:
        text = best_config(cfg, best["params"]).to_yaml()
        head = (f"# the best of study {study.study_name!r}: trial {best['number']}, {objective} {best['value']:.4f}\n"
                f"#   forgeml train {folder / 'best.yaml'}\n")
        write_text(folder / "best.yaml", head + text)
    figures = [f for f in (_history(rows, objective, direction), _importance_figure(found), _parallel(rows, cfg, objective, direction)) if f]
    keys = list(cfg.tune.space)
    html = render("tune.html.j2", title=f"tune {study.study_name}", generated=time.strftime("%Y-%m-%d %H:%M"), summary=summary,
                  rows=rows, keys=keys, figures=figures, importances=found, why=why,
                  space=yaml.safe_dump(cfg.tune.model_dump(mode="json", by_alias=True, exclude_none=True)["space"], sort_keys=False),
                  cell=_cell, best_yaml=str(folder / "best.yaml") if best else None)
    write_text(folder / "tune_report.html", html)
    write_json(folder / "tune.json", summary)
    return summary


def importances_line(folder: Path) -> str:
    """'importances: train.lr 0.71, model.dropout 0.29' from tune.json, or why there are none."""
    import json

    summary = json.loads((Path(folder) / "tune.json").read_text())
    found = summary.get("importances")
    if not found:
        return f"parameter importances: {summary.get('importances_note') or 'none'}"
    return "parameter importances: " + ", ".join(f"{k} {v:.2f}" for k, v in found.items())
