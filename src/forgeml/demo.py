"""`forgeml demo`: the whole life on shipped data, in under a minute on a laptop CPU."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from rich.console import Console

from forgeml import pipeline
from forgeml.config import load_config
from forgeml.show import image_as_text, metrics_table, predictions_table


def demo_config_path() -> str:
    path = Path(str(resources.files("forgeml") / "examples" / "digits-cnn.yaml"))
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def run_demo(console: Console, overrides: list[str] | None = None, runs_dir: str = "runs", n_show: int = 6) -> str:
    import forgeml
    from forgeml.data.prepare import load_columns

    cfg = load_config(demo_config_path(), list(overrides or []) + [f"runs_dir={runs_dir}"])
    console.rule("[bold]1. train[/] a CNN on scikit-learn's digits (8x8 images, 10 classes)")
    console.print(f"config: {demo_config_path()}")
    run = pipeline.train(cfg, name="demo", overwrite=True)
    console.rule("[bold]2. evaluate[/] on the held-out test split")
    metrics = forgeml.evaluate(run)
    console.print(metrics_table(metrics, title="held-out metrics"))
    console.print(f"bundle: [bold]{run}[/]  (config.yaml, model.safetensors, features.json, metrics.json, history.jsonl, checkpoints/)")
    console.print(f"report: [bold]{run / 'report.html'}[/]  (curves, confusion matrix, per-class table, worst mistakes)")
    console.rule("[bold]3. load[/] the bundle and predict raw test images")
    model = forgeml.load(run)
    held_out = load_columns(cfg.data)
    test = held_out.get("test") or held_out.get("val") or held_out["train"]
    images, labels = test.data["image"][:n_show], test.data["target"][:n_show]
    preds = model.predict([{"image": im} for im in images])
    console.print(predictions_table([f"test[{i}]" for i in range(n_show)], preds, [str(int(v)) for v in labels],
                                    [image_as_text(im, width=8) for im in images]))
    console.print(f"next: forgeml evaluate {run}   |   forgeml train examples/mnist-cnn.yaml, then forgeml predict runs/mnist-cnn DIGIT.png")
    return str(run)
