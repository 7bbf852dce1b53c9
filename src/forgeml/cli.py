"""The `forgeml` command. One table maps each subcommand to a plain function; its help comes from
the function's docstring. User mistakes (ForgeError) print one message and exit 2; bugs stay tracebacks."""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from forgeml.errors import ForgeError, WriteError

# Off a terminal (a file, a pipe, a CI log) rich would wrap at 80 columns; there lines stay whole.
console = Console(soft_wrap=not sys.stdout.isatty())
errors = Console(stderr=True)


# ------------------------------------------------------------------------------------------ commands
def cmd_train(args: argparse.Namespace) -> int:
    """Train a model from a YAML config and write a run folder (a bundle).

    The run goes to runs/<name>/ (name: --name, the config's `name`, or the file name). An existing
    run of that name is never overwritten: the new one gets name-2, unless --overwrite. Ctrl-C saves
    a checkpoint; `forgeml train --resume RUN` continues exactly where it stopped.

    --nproc N starts N training processes on this machine through torchrun (DDP, or FSDP: train.strategy);
    train.batch_size stays the global batch. Across machines run torchrun yourself:
      torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:PORT -m forgeml train CONFIG

    examples:
      forgeml train examples/digits-cnn.yaml
      forgeml train examples/mnist-cnn.yaml --set train.epochs=3 --set train.precision=bf16
      forgeml train examples/mnist-cnn.yaml --nproc 2
      forgeml train --resume runs/mnist-cnn
    """
    from forgeml import pipeline
    from forgeml.training import distributed

    if args.nproc is not None and not distributed.launched():
        from forgeml.launch import launch

        return launch(args.nproc, args.argv, resume=args.resume)
    try:
        if args.resume:
            path = pipeline.resume(Path(args.resume), args.config, args.set, trust_code=args.trust_code)
        else:
            if not args.config:
                raise ForgeError("give a CONFIG file to train, or --resume RUN")
            if args.trust_code:  # a fresh run builds the user's own CONFIG: there is nothing to trust
                raise ForgeError("--trust-code is for --resume RUN (a run folder's config); training from your own CONFIG needs no flag")
            path = pipeline.train(args.config, overrides=args.set, name=args.name, overwrite=args.overwrite)
    except KeyboardInterrupt as exc:
        run = getattr(exc, "run", None)
        if run is None:
            errors.print("\n[yellow]interrupted[/] before training started; nothing was written")
        else:
            errors.print(f"\n[yellow]interrupted[/]: a checkpoint was saved; continue with  forgeml train --resume {run}")
        return 130
    finally:
        distributed.shutdown()
    if not distributed.is_main():  # torchrun's other ranks: rank 0 reports
        return 0
    _print_run(path)
    return 0


def _print_run(path: Path) -> None:
    from forgeml.bundle import Bundle
    from forgeml.show import metrics_table

    bundle = Bundle(path)
    meta = bundle.meta()
    metrics = bundle.read_json("metrics.json")
    console.print(metrics_table({k: v for k, v in metrics.items()}, title=f"{path.name}: final metrics"))
    speed = f"{meta['tokens_per_s']:,.0f} tokens/s" if meta.get("tokens_per_s") else f"{meta.get('samples_per_s', 0):,.0f} samples/s"
    console.print(f"wall time {meta.get('wall_time', 0):.1f} s, {speed}, "
                  f"{meta.get('parameters', 0):,} parameters, {meta.get('hardware', '')}")
    if meta.get("weights"):
        console.print(f"weights: step {meta['weights']['step']} ({meta['weights']['why']})")
    _print_privacy(meta)
    console.print(f"bundle: [bold]{path}[/]   report: {path / 'report.html'}")


def _print_privacy(meta: dict) -> None:
    """A private run's spent budget (meta.json's privacy), said wherever its figures are shown."""
    from forgeml.report.privacy import privacy_line

    line = privacy_line(meta)
    if line:
        console.print(f"privacy: {line}", highlight=False)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Measure a trained run: on its own held-out splits (val/test), or on a new labelled file.

    Classification: accuracy, precision/recall/F1 (macro and per class), AUROC, confusion matrix.
    Regression: MSE, MAE, R². Results are merged into RUN/metrics.json.

    examples:
      forgeml evaluate runs/digits-cnn
      forgeml evaluate runs/adult-mlp --data data/adult/adult.test.gz
    """
    from forgeml import pipeline
    from forgeml.show import metrics_table, per_class_table

    unsaved = None
    try:
        result = pipeline.evaluate(args.run, args.data, args.split, trust_code=args.trust_code)
    except WriteError as exc:
        if getattr(exc, "result", None) is None:
            raise
        result, unsaved = exc.result, exc  # measured but not saved: show the metrics, then say why they were not kept
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        console.print(metrics_table(result, title=f"{Path(args.run).name}: evaluation"))
        table = per_class_table(list(result.values())[-1])
        if table is not None:
            console.print(table)
        from forgeml.bundle import Bundle

        _print_privacy(Bundle(args.run).meta())
    if unsaved is not None:
        raise unsaved
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict from raw inputs with a trained run; preprocessing is the run's own (features.json).

    INPUT is any of: a CSV/TSV/Parquet file (one prediction per row), image files, a .json/.jsonl
    file of rows, JSON text ('{"age": 39, ...}'), or - for JSON lines on stdin. Prints a table,
    or JSON lines with --json. Rows that carry the target column show it beside the prediction.

    examples:
      forgeml predict runs/mnist-cnn digit.png
      forgeml predict runs/adult-mlp people.csv --json
    """
    from forgeml.api import load
    from forgeml.predict_inputs import read_inputs
    from forgeml.show import image_as_text, predictions_table

    predictor = load(args.run, trust_code=args.trust_code, backend=args.backend)
    if predictor.task == "recommend":
        from forgeml.errors import RequestError

        raise RequestError(f"{args.run} is a recommendation run: rank items with forgeml recommend {args.run} --user ID; "
                           "the score of given (user, item) pairs is forgeml.load(RUN).predict([{'user': ..., 'item': ...}])")
    cols, names, truth = read_inputs(predictor, args.inputs)
    preds = predictor.predict(cols)
    if args.json:
        for name, pred in zip(names, preds):
            print(json.dumps({"input": name, **pred}))
        return 0
    pictures = None
    if predictor.features.inputs[0].kind == "image" and len(preds) <= 50:
        pictures = [image_as_text(im, width=14) for im in cols.data[predictor.features.inputs[0].name]]
    console.print(predictions_table(names, preds, truth, pictures))
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    """Recommend items to a user with a trained recommendation run (model.name mf or two_tower).

    Every item is scored for the user (full ranking) and the K best are printed, best first; the items the
    user interacted with in the run's data (training, validation and test) are left out unless --include-seen.
    USER is an id as it appears in the training data's user column (data.users). A user the run never trained on is an error that says
    what to do. --json prints one JSON object: {"user", "k", "items": [{"item", "score", "rank"}]}.

    examples:
      forgeml recommend runs/msweb-mf --user 10001
      forgeml recommend runs/msweb-mf --user 10001 --k 5 --json --include-seen
    """
    from forgeml.api import load
    from forgeml.errors import RequestError

    predictor = load(args.run)
    if getattr(predictor, "task", None) != "recommend":
        raise RequestError(f"{args.run}: not a recommendation run (its config sets no data.users/data.items); "
                           f"use forgeml predict {args.run} INPUT")
    items = predictor.recommend(args.user, k=args.k, exclude_seen=not args.include_seen)
    if args.json:
        print(json.dumps({"user": args.user, "k": args.k, "exclude_seen": not args.include_seen, "items": items}))
        return 0
    from rich.table import Table

    seen = "" if args.include_seen else f", {len(predictor.seen(args.user))} seen item(s) left out"
    table = Table(title=f"{Path(args.run).name}: top {len(items)} for user {args.user}{seen}")
    for col in ("rank", "item", "score"):
        table.add_column(col, justify="right" if col != "item" else "left")
    for row in items:
        table.add_row(str(row["rank"]), row["item"], f"{row['score']:.4f}")
    console.print(table)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Attribute each prediction to its inputs (Captum): per column, per token, per pixel, per time step.

    INPUT is what forgeml predict takes. --method integrated_gradients (default), shap or occlusion; docs/explain.md
    says what each number means. Explains every output, the predicted class unless --target names one. Needs
    pip install 'forgeml[explain]'.

    examples:
      forgeml explain runs/adult-mlp '{"age": 39, "workclass": "Private", ...}'
      forgeml explain runs/mnist-cnn digit.png --method occlusion --png explained/
      forgeml explain runs/adult-multitask people.csv --output income --target '>50K' --json
    """
    from forgeml.api import load
    from forgeml.errors import RequestError
    from forgeml.explain.per_kind import jsonable
    from forgeml.predict_inputs import read_inputs
    from forgeml.show_explain import explanation_table

    predictor = load(args.run, trust_code=args.trust_code)
    if predictor.task == "recommend":
        predictor.explain()  # a recommendation run's score is a dot product: refused there, with the reason
    if args.png and not any(f.kind == "image" for f in predictor.features.inputs):
        raise RequestError(f"--png {args.png}: {args.run} has no image input to draw a heat map over")
    cols, names, _ = read_inputs(predictor, args.inputs)
    explanations = predictor.explain(cols, method=args.method, output=args.output, target=args.target)
    if args.png:
        _write_overlays(Path(args.png), predictor, cols, names, explanations)
    for name, e in zip(names, explanations):
        if args.json:
            print(json.dumps({"input": name, **jsonable(e)}))
        else:
            for table in explanation_table(name, e):
                console.print(table)
    return 0


def _write_overlays(folder: Path, predictor, cols, names: list[str], explanations: list[dict]) -> None:
    """--png: each image input's heat map over the image, FOLDER/<input>.<output>.<image>.png."""
    from forgeml.atomic import atomic_write
    from forgeml.explain.overlay import overlay_png
    from forgeml.explain.per_kind import by_output

    images = [f.name for f in predictor.features.inputs if f.kind == "image"]
    for i, (name, e) in enumerate(zip(names, explanations)):
        for out, one in by_output(e).items():
            for col in images:
                safe = re.sub(r"[^\w.-]+", "_", f"{name}.{out}.{col}")
                path = folder / f"{safe}.png"
                png = overlay_png(cols.data[col][i], one["attributions"][col])
                atomic_write(path, lambda tmp, png=png: tmp.write_bytes(png))
                errors.print(f"wrote {path}")


def cmd_generate(args: argparse.Namespace) -> int:
    """Generate text with a trained language model (a GPT run), streamed to the terminal as it is produced.

    Sampling: --temperature (0 = greedy), --top-k, --top-p; --seed makes it repeatable; --stop ends
    the text at a string. Past the model's context length the window slides, so any length works.

    examples:
      forgeml generate runs/shakespeare-gpt --prompt "ROMEO:" --max-new-tokens 300 --temperature 0.8 --top-k 40 --seed 1
      forgeml generate runs/shakespeare-gpt --prompt "JULIET:" --stop "\\n\\n"
      forgeml generate runs/shakespeare-gpt --prompt "ROMEO:" --backend onnx   # after: forgeml export RUN --format onnx
    """
    from forgeml.api import load

    lm = load(args.run, trust_code=args.trust_code, backend=args.backend)
    stops = [_unescape(s) for s in args.stop]
    pieces = lm.stream(args.prompt, args.max_new_tokens, args.temperature, args.top_k, args.top_p, stops or None,
                       args.seed, use_cache=not args.no_cache)  # a model with no next-token output says so here
    if not args.quiet_prompt:
        sys.stdout.write(args.prompt)
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()  # stream: show each piece as it arrives
    sys.stdout.write("\n")
    return 0


def _unescape(text: str) -> str:
    r"""A shell passes --stop "\n\n" as backslashes: read \n, \t and \\ as the characters they name."""
    return re.sub(r"\\([nt\\])", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}[m.group(1)], text)


def cmd_report(args: argparse.Namespace) -> int:
    """Write RUN/report.html, one self-contained page to look at a run.

    It shows a summary, training curves, metrics, the confusion matrix, a per-class table, ROC/PR
    (binary), predicted-vs-true (regression), the worst mistakes, generated samples (language models).

    One self-contained file (plots inlined) that opens offline with no JavaScript. It is also written
    at the end of `forgeml train` and `forgeml evaluate`.

    examples:
      forgeml report runs/digits-cnn
    """
    from forgeml.report.build import write_report

    console.print(f"report: [bold]{write_report(args.run, trust_code=args.trust_code)}[/]")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare runs side by side: a table in the terminal and compare.html with the curves overlaid.

    The table has the final metrics, parameter counts and wall times.

    examples:
      forgeml compare runs/sms-spam-lstm runs/sms-spam-transformer
      forgeml compare runs/* --out reports/all.html
    """
    from rich.table import Table

    from forgeml.format import cell
    from forgeml.report.compare import write_compare
    from forgeml.show import HEADLINE

    path, runs = write_compare(args.runs, args.out)
    shown = [k for k in HEADLINE if k not in ("n", "n_tokens", "precision_macro", "recall_macro")]
    keys = [k for k in shown if any(k in r["final"] for r in runs.values())]  # the full set is in compare.html
    table = Table(title="runs")
    for col in ["run", "split", *keys, "parameters", "wall time (s)"]:
        # run names may wrap in a narrow window; figures never do
        table.add_column(col, justify="left" if col in ("run", "split") else "right",
                         overflow="fold" if col == "run" else "ellipsis", no_wrap=col != "run")
    for name, r in runs.items():
        wall = f"{r['wall_time']:.1f}" if r["wall_time"] is not None else "-"
        table.add_row(name, r["split"] or "-", *[cell(r["final"].get(k), whole=False) for k in keys], cell(r["parameters"]), wall)
    console.print(table)
    console.print(f"curves: [bold]{path}[/]")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """Show the resolved config: the file with every default filled in and --set applied.

    examples:
      forgeml config show examples/digits-cnn.yaml
      forgeml config show examples/mnist-cnn.yaml --set train.lr=3e-4
    """
    from rich.syntax import Syntax

    from forgeml.config import load_config

    cfg = load_config(args.config, args.set)
    text = cfg.to_yaml()
    if sys.stdout.isatty():
        console.print(Syntax(text, "yaml"))
    else:
        print(text, end="")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The whole life on shipped data: train, evaluate and predict with a CNN on scikit-learn's digits.

    It trains on the digits inside scikit-learn's wheel, evaluates on a held-out test split, then loads
    the bundle back and predicts raw test images.

    examples:
      forgeml demo
      forgeml demo --set train.epochs=5
    """
    from forgeml.demo import run_demo

    run_demo(console, overrides=args.set, runs_dir=args.runs_dir)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a trained run to RUN/model.onnx, verified against PyTorch before it is written.

    The graph's inputs and outputs are named as in the run's features.json (one input per feature, one
    output per target), with a dynamic batch axis and a dynamic length on text and ragged series. ONNX
    Runtime and PyTorch then run the same held-out rows (the run's test split, else validation, at most
    256); per output, the largest absolute and relative difference is printed, and if any exceeds its
    bound (float32: 1e-4 + 1e-3 * |value|) nothing is written. What was verified goes into meta.json.
    Load the result with forgeml.load(RUN, backend="onnx") or forgeml predict RUN --backend onnx.
    Needs pip install 'forgeml[onnx]'. Language models (GPT) cannot be exported yet.

    examples:
      forgeml export runs/digits-cnn --format onnx
      forgeml export runs/adult-mlp --format onnx --opset 20
    """
    from forgeml.export.onnx import export_onnx

    done = export_onnx(args.run, opset=args.opset, rows=args.rows, trust_code=args.trust_code, say=console.print)
    size = done.path.stat().st_size / 1e6
    console.print(f"wrote [bold]{done.path}[/] ({size:.2f} MB, opset {done.opset}; inputs {', '.join(done.input_names)}; "
                  f"outputs {', '.join(done.output_names)})")
    return 0


def cmd_compress(args: argparse.Namespace) -> int:
    """Make smaller or faster variants of a trained run, each a bundle beside it, and measure them against it.

    --quantize int8   RUN-int8: ONNX Runtime int8 (dynamic for Linear/attention models, static QDQ with
                      calibration batches from the training split where there are convolutions)
    --prune 0.5       RUN-pruned50: half the channels/neurons of every prunable layer removed (the least
                      important by L1 norm), then a short fine-tune on the training data
    --distill S.yaml  RUN-distilled: the student model in S.yaml trained on the run's data from its soft targets
    --auto            every variant that applies; the best within --max-drop is copied to RUN-best (never one
                      slower than ONNX Runtime fp32 at batch 64 for --target latency)

    The table (metric per output on the held-out split, parameters, file size, latency at batch 1 and 64 as the
    median of repeated runs, speed-up against PyTorch fp32 eager) is printed, saved as RUN/compression.json and
    drawn in RUN/report.html. Every variant is an ordinary run folder: predict, evaluate, report and export take it.
    int8 needs pip install 'forgeml[onnx]'. A language model (GPT) takes --quantize only (its KV-cache graph,
    measured by perplexity); RNN/LSTM/GRU models cannot be pruned.

    examples:
      forgeml compress runs/mnist-cnn --quantize int8
      forgeml compress runs/mnist-cnn --prune 0.5
      forgeml compress runs/adult-mlp --distill examples/adult-mlp-student.yaml
      forgeml compress runs/mnist-cnn --auto --max-drop 0.5 --target latency
    """
    from forgeml.compression import compress
    from forgeml.show import compression_table

    table = compress(args.run, quantize=args.quantize, prune=args.prune, distill=args.distill, temperature=args.temperature,
                     alpha=args.alpha, auto=args.auto, max_drop=args.max_drop, target=args.target, overwrite=args.overwrite,
                     repeats=args.repeats, trust_code=args.trust_code, say=console.print)
    wide = console if console.is_terminal else Console(width=200, soft_wrap=True)  # a log keeps whole rows
    wide.print(compression_table(table))
    for reason in table.get("reasons", []):
        console.print(f"  {reason}")
    if table.get("best"):
        console.print(f"best variant copied to [bold]{table['best']}[/]")
    console.print(f"table saved in {Path(table['source']) / 'compression.json'} and drawn in its report.html")
    return 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    """Convert a run folder of bundle format 1 to format 2 in place (weights renamed, never changed).

    examples:
      forgeml upgrade runs/adult-mlp
    """
    from forgeml.upgrade import upgrade

    for line in upgrade(args.run):
        console.print(line)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve a trained run over HTTP: predictions with dynamic batching, metrics, and a page to try it.

    Routes: POST /v1/predict (one row or {"instances": [...]}), GET /v1/model, GET /health, GET /ready,
    GET /metrics (Prometheus), GET /docs (the request schema, built from the run's features), for a
    language model POST /v1/generate, and for a recommendation run POST /v1/recommend (a user's top k items;
    /v1/predict answers 400 there). Requests that arrive within --max-wait-ms share one forward pass of
    up to --max-batch-size rows; more than --max-queue waiting rows get 503 with Retry-After. The server
    binds 127.0.0.1 unless --host says otherwise. Ctrl-C or SIGTERM finishes the requests in flight first.
    Needs pip install 'forgeml[serve]'.

    examples:
      forgeml serve runs/digits-cnn --port 8000
      forgeml serve runs/digits-cnn --backend onnx --max-batch-size 32 --workers 2
      FORGEML_KEY=s3cret forgeml serve runs/adult-mlp --api-key-env FORGEML_KEY
      curl -s localhost:8000/v1/model
      curl -s localhost:8000/v1/predict -H 'Content-Type: application/json' -d '{"instances": [{"age": 39, ...}]}'
      curl -s localhost:8000/v1/predict -F image=@digit.png         # an image model trained on 8-bit images
      curl -s localhost:8000/v1/recommend -d '{"user": "10001", "k": 5}'   # a recommendation run (mf, two_tower)
    """
    try:
        import uvicorn

        import forgeml.serve.app as serve_app
    except ImportError as exc:
        raise ForgeError(f"forgeml serve needs the serve extra ({exc.name} is missing): pip install 'forgeml[serve]'") from None
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ForgeError(f"--api-key-env {args.api_key_env}: that environment variable is not set or empty; "
                             f"set it first: export {args.api_key_env}=YOUR_KEY")
    if args.workers < 1 or args.max_batch_size < 1 or args.max_queue < 1 or args.max_body_mb <= 0:
        raise ForgeError("--workers, --max-batch-size, --max-queue and --max-body-mb must be positive")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        errors.print(f"[yellow]warning:[/] binding {args.host}: the model is reachable from the network"
                     + ("" if api_key else " by anyone (consider --api-key-env)"), highlight=False, soft_wrap=True)
    settings = {"backend": args.backend, "max_batch_size": args.max_batch_size, "max_wait_ms": args.max_wait_ms,
                "max_queue": args.max_queue, "max_body_bytes": int(args.max_body_mb * 1_000_000), "trust_code": args.trust_code}
    if args.workers > 1:  # each worker process builds its own app from the environment (uvicorn's factory mode)
        serve_app.create_app(args.run, **settings, api_key=api_key)  # fail here, once, on a bad run folder
        os.environ.update(serve_app.settings_to_env(args.run, **settings, api_key_env=args.api_key_env))
        uvicorn.run("forgeml.serve.app:app_from_env", factory=True, host=args.host, port=args.port, workers=args.workers,
                    log_level="info")
        return 0
    app = serve_app.create_app(args.run, **settings, api_key=api_key)
    console.print(f"serving [bold]{args.run}[/] on http://{args.host}:{args.port} (docs: /docs)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    """Search hyperparameters with Optuna: train trials of a config, keep the best as a YAML file.

    The config's `tune` section says what to search and how, e.g.
      tune:
        space:
          train.lr: {log_uniform: [1e-4, 1e-2]}
          model.hidden: {choice: [[128], [256, 256]]}
          train.batch_size: {int: [32, 256], step: 32}
          model.dropout: {uniform: [0, 0.5]}
        objective: val.accuracy        # any metric measured on val; default: train.monitor
        pruner: median                 # stop hopeless trials early: median, hyperband or none
    (every field: forgeml config show CONFIG after adding `tune: {}`). The study lives in a database:
    by default runs/<study>-tune/study.db (SQLite; <study> is --study, or the config's name); --storage
    takes any SQLAlchemy URL, e.g. postgresql://user:pw@host/db, so that several machines run one study
    (pip install psycopg2-binary). The same command again resumes it: --trials is the total of finished
    trials wanted, those already there count. Trials run in runs/<study>-tune/trials/trial-NNNN (pruned
    and failed ones are deleted). At the end: a table of trials, best.yaml (forgeml train it),
    tune_report.html (history, parameter importances, parallel coordinates) and tune.json.
    Needs pip install 'forgeml[tune]'.

    examples:
      forgeml tune examples/adult-mlp.yaml --trials 30
      forgeml tune examples/adult-mlp.yaml --trials 30 --jobs 2 --timeout 600
      forgeml tune examples/adult-mlp.yaml --storage postgresql://me@db-host/studies --study adult
      forgeml train runs/adult-mlp-tune/best.yaml
    """
    from forgeml import pipeline
    from forgeml.tune.report import importances_line, table

    try:
        result = pipeline.tune(args.config, overrides=args.set, trials=args.trials, timeout=args.timeout, storage=args.storage,
                               study=args.study, jobs=args.jobs, say=lambda text: errors.print(text, highlight=False, soft_wrap=True))
    except KeyboardInterrupt:
        errors.print("\n[yellow]interrupted[/]: every finished trial is kept in the study; run the same command again to continue")
        return 130
    wide = console if console.is_terminal else Console(width=200, soft_wrap=True)  # a log keeps whole rows
    wide.print(table(result.trials, result.objective, title=f"study {result.study}: value = {result.objective} ({result.direction})"))
    c = result.counts
    console.print(f"{c['complete']} complete, {c['pruned']} pruned (@N: at evaluation N), {c['fail']} failed"
                  + (f", {c['running']} still running elsewhere" if c.get("running") else ""))
    finished = c["complete"] + c["pruned"] + sum(1 for r in result.trials if r["state"] == "fail" and not r["note"].startswith("its process"))
    if finished < result.wanted:
        console.print(f"[yellow]{finished} of {result.wanted} trials finished[/] (the timeout passed); the same command continues the study")
    for row in result.trials:
        if row["state"] == "fail":
            console.print(f"  trial {row['number']} failed: {row['note']}", highlight=False)
    shown = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.best_params.items())
    console.print(f"best: trial {result.best_trial}, {result.objective} [bold]{result.best_value:.4f}[/]  {shown}")
    console.print(importances_line(result.folder))
    console.print(f"best config: [bold]{result.best_config}[/]  (forgeml train {result.best_config})")
    console.print(f"report: {result.report}   study: {result.storage}")
    return 0


def cmd_federate(args: argparse.Namespace) -> int:
    """Federated training with Flower: a SuperLink and one SuperNode per client as real processes on 127.0.0.1.

    Each client trains with forgeml's Trainer on its own share of the config's training split (--partition iid,
    or dirichlet:ALPHA for clients skewed by label); the server sees only the clients' weights, metrics and feature
    summaries (counts and sums: docs/federated.md). After each round the global weights are measured on the held-out
    val/test split. The result is an ordinary bundle in runs/<name>/ (default name: <config name>-federated) that
    evaluate, predict, serve and export read. The config's `federate:` section holds the defaults of the flags.
    Needs pip install 'forgeml[federated]'. Separate machines (--superlink, with flower-supernode on each client's
    machine): docs/federated.md.

    examples:
      forgeml federate examples/adult-mlp.yaml --clients 5 --rounds 20
      forgeml federate examples/adult-mlp.yaml --clients 5 --rounds 20 --partition dirichlet:0.5 --strategy fedprox
      forgeml federate examples/digits-cnn.yaml --clients 3 --rounds 5 --local-epochs 2 --strategy fedadam
    """
    import signal

    from forgeml.federate.launch import federate

    def stop(signum, frame):  # a SIGTERM or SIGHUP ends the run as Ctrl-C does: the launcher stops every Flower process
        raise KeyboardInterrupt

    before = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        path = federate(args.config, overrides=args.set, clients=args.clients, rounds=args.rounds, partition=args.partition,
                        strategy=args.strategy, local_epochs=args.local_epochs, proximal_mu=args.proximal_mu,
                        min_clients=args.min_clients, name=args.name, overwrite=args.overwrite, superlink=args.superlink,
                        root_certificates=args.root_certificates, say=lambda text: errors.print(text, highlight=False, soft_wrap=True))
    except KeyboardInterrupt:
        errors.print("\n[yellow]interrupted[/]: every Flower process of the run was stopped; nothing was written")
        return 130
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
    metrics = json.loads((path / "metrics.json").read_text())
    shown = "  ".join(f"{split}.{k} {v:.4f}" for split, m in metrics.items() for k, v in m.items()
                      if k in ("accuracy", "loss", "mae") and isinstance(v, float))
    console.print(f"federated run: [bold]{path}[/]  {shown}")
    from forgeml.bundle import Bundle

    _print_privacy(Bundle(path).meta())
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "recommend": cmd_recommend, "explain": cmd_explain, "generate": cmd_generate, "report": cmd_report,
    "compare": cmd_compare, "config": cmd_config, "demo": cmd_demo, "export": cmd_export, "compress": cmd_compress,
    "upgrade": cmd_upgrade, "serve": cmd_serve, "tune": cmd_tune, "federate": cmd_federate,
}


# -------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from forgeml import __version__

    parser = argparse.ArgumentParser(prog="forgeml", description="A deep-learning model's whole life from one YAML file: "
                                     "data, model, training, evaluation, prediction.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"forgeml {__version__}")
    verbose_help = "also show warnings from the libraries forgeml uses (torch, scikit-learn, pandas, ...)"
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose_help)
    # accepted after the command too (forgeml train x.yaml -v); SUPPRESS keeps a later default from undoing an earlier -v
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parsers = {}
    for name, fn in COMMANDS.items():
        doc = inspect.getdoc(fn) or ""
        summary = doc.splitlines()[0] if doc else ""
        parsers[name] = sub.add_parser(name, help=summary, description=doc, parents=[common],
                                       formatter_class=argparse.RawDescriptionHelpFormatter)
    set_help = "override a config value, e.g. --set train.lr=3e-4 (repeatable; values parsed as YAML)"
    p = parsers["train"]
    p.add_argument("config", nargs="?", help="YAML config file (with --resume: only to check it matches the run)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.add_argument("--name", help="run folder name under runs_dir (default: the config's name)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run of the same name")
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted run folder from its last checkpoint")
    p.add_argument("--trust-code", action="store_true", help="with --resume: allow the run's custom model's Python code to be imported")
    p.add_argument("--nproc", type=int, metavar="N", help="train with N processes on this machine (torchrun; DDP or FSDP as "
                                                         "train.strategy says); also with --resume, on any N")
    p = parsers["export"]
    p.add_argument("run", help="run folder, e.g. runs/digits-cnn")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="the file format to write (default: onnx)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset version (default 18)")
    p.add_argument("--rows", type=int, default=256, help="held-out rows to verify on (default 256)")
    p.add_argument("--trust-code", action="store_true", help="allow a custom model's Python code to be imported")
    p = parsers["compress"]
    p.add_argument("run", help="run folder, e.g. runs/mnist-cnn")
    p.add_argument("--quantize", choices=["int8", "int8-dynamic", "int8-static"],
                   help="int8 through ONNX Runtime (int8: dynamic, or static where there are convolutions)")
    p.add_argument("--prune", type=float, metavar="RATIO", help="share of channels/neurons to remove, e.g. 0.5, then fine-tune")
    p.add_argument("--distill", metavar="STUDENT.yaml", help="train this smaller model config from the run's soft targets")
    p.add_argument("--temperature", type=float, default=4.0, help="with --distill: softmax temperature of the soft targets (default 4)")
    p.add_argument("--alpha", type=float, default=0.5, help="with --distill: weight of the soft targets against the labels (default 0.5)")
    p.add_argument("--auto", action="store_true", help="try every variant that applies and keep the best in RUN-best")
    p.add_argument("--max-drop", type=float, default=0.5,
                   help="with --auto: the most a variant may lose, in points of accuracy/F1 or per cent of RMSE (default 0.5)")
    p.add_argument("--target", choices=["latency", "size"], default="latency", help="with --auto: what 'best' means (default latency)")
    p.add_argument("--repeats", type=int, default=30, help="timed runs per latency figure; the median is reported (default 30)")
    p.add_argument("--overwrite", action="store_true", help="replace variant folders of the same names")
    p.add_argument("--trust-code", action="store_true", help="allow a custom model's Python code to be imported")
    parsers["upgrade"].add_argument("run", help="a format-1 run folder, e.g. runs/adult-mlp")
    p = parsers["evaluate"]
    p.add_argument("run", help="run folder, e.g. runs/digits-cnn")
    p.add_argument("--data", metavar="FILE", help="a labelled file in the training data's format (default: the run's own splits)")
    p.add_argument("--split", action="append", choices=["train", "val", "test"], help="which of the run's splits (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--trust-code", action="store_true", help="allow a custom model's Python code to be imported")
    p = parsers["predict"]
    p.add_argument("run", help="run folder, e.g. runs/digits-cnn")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, JSON text, or - for JSON lines on stdin")
    p.add_argument("--json", action="store_true", help="print one JSON object per input row")
    p.add_argument("--backend", choices=["torch", "onnx"], default=None,
                   help="onnx: run RUN/model.onnx with ONNX Runtime (write it with forgeml export RUN --format onnx); "
                        "default: torch, or onnx for a bundle that holds only model.onnx (an int8 variant)")
    p.add_argument("--trust-code", action="store_true", help="allow a custom model's Python code to be imported")
    p = parsers["recommend"]
    p.add_argument("run", help="a recommendation run folder, e.g. runs/msweb-mf")
    p.add_argument("--user", required=True, metavar="ID", help="the user's id, as in the training data's user column")
    p.add_argument("--k", type=int, default=10, help="how many items to recommend (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--include-seen", action="store_true", help="also rank the items the user interacted with in the run's data (train, val, test)")
    p = parsers["explain"]
    p.add_argument("run", help="run folder, e.g. runs/adult-mlp")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, JSON text, or - for JSON lines on stdin (as predict)")
    p.add_argument("--method", choices=["integrated_gradients", "shap", "occlusion"], default="integrated_gradients",
                   help="how attributions are computed (default integrated_gradients; docs/explain.md)")
    p.add_argument("--output", metavar="NAME", help="explain only this output (default: every output)")
    p.add_argument("--target", metavar="CLASS", help="the class or label to explain (default: the predicted one)")
    p.add_argument("--json", action="store_true", help="print one JSON object per input row")
    p.add_argument("--png", metavar="FOLDER", help="image models: write each heat map over its image as a PNG here")
    p.add_argument("--trust-code", action="store_true", help="allow a custom model's Python code to be imported")
    p = parsers["generate"]
    p.add_argument("run", help="a language-model run folder, e.g. runs/shakespeare-gpt")
    p.add_argument("--prompt", default="", help="text to continue (default: a new line)")
    p.add_argument("--max-new-tokens", type=int, default=200, help="tokens to generate (default 200)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature; 0 = greedy (default 1.0)")
    p.add_argument("--top-k", type=int, default=None, help="sample only among the k most likely tokens")
    p.add_argument("--top-p", type=float, default=None, help="sample only among the most likely tokens holding this much probability")
    p.add_argument("--seed", type=int, default=None, help="random seed: the same seed gives the same text")
    p.add_argument("--stop", action="append", default=[],
                   help="end the text where this string appears (repeatable; \\n is a new line, \\t a tab)")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole prefix each token (slow; for comparison)")
    p.add_argument("--backend", choices=["torch", "onnx"], default=None,
                   help="onnx: generate through RUN/model.onnx (its KV cache) with ONNX Runtime (write it with forgeml export "
                        "RUN --format onnx); default: torch, or onnx for a bundle that holds only model.onnx (an int8 variant)")
    p.add_argument("--quiet-prompt", action="store_true", help="print only the generated text, not the prompt before it")
    p.add_argument("--trust-code", action="store_true", help="allow a custom model's Python code to be imported")
    p = parsers["serve"]
    p.add_argument("run", help="run folder, e.g. runs/digits-cnn")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--backend", choices=["torch", "onnx"], default=None,
                   help="onnx: RUN/model.onnx through ONNX Runtime (forgeml export RUN --format onnx first); default: torch")
    p.add_argument("--max-batch-size", type=int, default=64, help="most rows in one forward pass; 1 = a pass per request (default 64)")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a batch waits for more requests (default 5)")
    p.add_argument("--max-queue", type=int, default=1024, help="most rows waiting; beyond, 503 with Retry-After (default 1024)")
    p.add_argument("--max-body-mb", type=float, default=10.0, help="larger request bodies get 413 before they are read (default 10)")
    p.add_argument("--workers", type=int, default=1, help="server processes, each with its own copy of the model (default 1)")
    p.add_argument("--api-key-env", metavar="NAME", help="require the API key held in this environment variable on /v1/ routes")
    p.add_argument("--trust-code", action="store_true", help="allow a custom model's Python code to be imported")
    p = parsers["report"]
    p.add_argument("run", help="run folder, e.g. runs/digits-cnn")
    p.add_argument("--trust-code", action="store_true", help="allow a custom model's Python code to be imported")
    p = parsers["compare"]
    p.add_argument("runs", nargs="+", metavar="RUN", help="two run folders or more")
    p.add_argument("--out", default="compare.html", help="where to write the page (default: compare.html)")
    p = parsers["config"]
    p.add_argument("action", choices=["show"], help="show: print the resolved config")
    p.add_argument("config", help="YAML config file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p = parsers["tune"]
    p.add_argument("config", help="YAML config file with a tune section")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.add_argument("--trials", type=int, help="finished trials wanted in the study in all, those already there included "
                                              "(default: tune.trials)")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="start no trial after this many seconds (each worker runs at least one; default: tune.timeout)")
    p.add_argument("--storage", metavar="URL", help="SQLAlchemy database URL of the study, e.g. sqlite:///runs/study.db or "
                                                    "postgresql://user:pw@host/db (default: runs/<study>-tune/study.db)")
    p.add_argument("--study", metavar="NAME", help="study name in the storage (default: the config's name)")
    p.add_argument("--jobs", type=int, metavar="N", help="trials at once, as N worker processes on the study's storage, "
                                                         "each with cores/N torch threads (default: tune.jobs)")
    p = parsers["federate"]
    p.add_argument("config", help="YAML config file (its federate section, if any, gives the defaults below)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.add_argument("--clients", type=int, metavar="N", help="clients, one SuperNode process each (default: federate.clients, 5)")
    p.add_argument("--rounds", type=int, metavar="N", help="federated rounds (default: federate.rounds, 20)")
    p.add_argument("--partition", metavar="iid|dirichlet:ALPHA", help="how the training rows are shared out (default: iid)")
    p.add_argument("--strategy", choices=["fedavg", "fedprox", "fedadam"], help="aggregation (default: federate.strategy, fedavg)")
    p.add_argument("--local-epochs", type=int, metavar="N", help="epochs each client trains per round (default: 1)")
    p.add_argument("--proximal-mu", type=float, metavar="MU", help="fedprox's proximal weight (default: federate.proximal_mu, 0.01)")
    p.add_argument("--min-clients", type=int, metavar="N", help="fewest replies a round needs (default: every client)")
    p.add_argument("--superlink", metavar="HOST:PORT", help="use a SuperLink already running on this machine, its SuperNodes "
                                                           "elsewhere (docs/federated.md); default: start them all here")
    p.add_argument("--root-certificates", metavar="CA.crt", help="with --superlink: reach it over TLS with this CA certificate")
    p.add_argument("--name", help="run folder name under runs_dir (default: <config name>-federated)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run of the same name")
    p = parsers["demo"]
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.add_argument("--runs-dir", default="runs", help="where the demo run folder goes (default: runs)")
    return parser


class _NotesToStderr(logging.Handler):
    """forgeml.notes on stderr: 'note: ...' and 'warning: ...', one line each, never wrapped."""

    def emit(self, record: logging.LogRecord) -> None:
        from rich.markup import escape

        label = "[yellow]warning:[/]" if record.levelno >= logging.WARNING else "[cyan]note:[/]"
        errors.print(f"{label} {escape(record.getMessage())}", highlight=False, soft_wrap=True)


def _show_notes() -> None:
    logger = logging.getLogger("forgeml")
    if not any(isinstance(h, _NotesToStderr) for h in logger.handlers):
        logger.addHandler(_NotesToStderr())
    # torchrun's other ranks would repeat every note of rank 0: they only speak up for an error
    logger.setLevel(logging.INFO if os.environ.get("RANK", "0") == "0" else logging.ERROR)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings as one 'warning:' line, like forgeml's notes (not the file:line + source echo)."""
    from rich.markup import escape

    errors.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


def _show_warnings(verbose: bool) -> None:
    """forgeml's own warnings always; the libraries' (deprecations, internals a user cannot act on) only with --verbose."""
    warnings.showwarning = _show_warning
    if not verbose:
        warnings.filterwarnings("ignore")
        warnings.filterwarnings("default", module=r"forgeml(\.|$)")  # later filters are checked first


# what to tell a user whose folder cannot be written, per command
WRITE_FIX = {"train": "set runs_dir to a folder you can write: --set runs_dir=DIR", "federate": "set runs_dir to a folder you can write: --set runs_dir=DIR", "tune": "set runs_dir to a folder you can write: --set runs_dir=DIR", "demo": "choose a folder you can write: --runs-dir DIR",
             "compare": "choose a place you can write: --out FILE",
             "evaluate": "the metrics above are not saved; make the run folder writable, or copy the run to a folder you can write",
             "report": "make the run folder writable, or copy the run to a folder you can write",
             "export": "make the run folder writable, or copy the run to a folder you can write",
             "compress": "make the folder that holds the run writable, or copy the run to a folder you can write"}


def _error(message: str) -> None:
    from rich.markup import escape

    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])  # what --nproc hands on to torchrun
    if not args.command:
        parser.print_help()
        return 2
    _show_notes()
    _show_warnings(args.verbose)
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a reader that went away (| head) shows up here, not at interpreter shutdown
        return code
    except BrokenPipeError:
        # The reader has all it wanted. Point stdout at devnull so that Python's own flush at exit does not fail
        # again (the recipe in Python's signal docs), and end quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except WriteError as exc:
        fix = WRITE_FIX.get(args.command)
        _error(f"{exc.path}: cannot be written ({exc.reason}); {fix}" if fix and hasattr(exc, "reason") else str(exc))
        return 2
    except ForgeError as exc:
        _error(str(exc))
        return 2
    except OSError as exc:  # a folder made with mkdir, not atomic_write: the same one line when the user can fix it
        from forgeml.atomic import write_error

        error = write_error(exc, exc.filename, WRITE_FIX.get(args.command, "make that folder writable or choose another place"))
        if error is None:
            raise
        _error(str(error))
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
