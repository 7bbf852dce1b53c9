"""Reports for every kind of run, checked as HTML and, where Chromium is installed, in a real headless browser."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import forgeml
from forgeml.cli import main
from forgeml.report.build import write_report
from tests.conftest import quick

KINDS = {  # example, overrides, sections the page must have
    "digits-cnn": (["train.epochs=2"], ["summary", "curves", "metrics", "confusion", "per-class", "mistakes"]),
    "adult-mlp": (["data.limit=2000", "train.epochs=1"], ["summary", "curves", "metrics", "confusion", "roc", "mistakes"]),
    "wine-regression": (["train.epochs=2"], ["summary", "curves", "metrics", "regression", "mistakes"]),
    "sms-spam-lstm": (["data.limit=600", "train.epochs=1"], ["summary", "confusion", "roc", "mistakes"]),
    "shakespeare-gpt": (["train.max_steps=10", "train.eval_every_steps=5", "train.eval_batches=2", "model.n_layer=1"],
                        ["summary", "curves", "metrics", "samples"]),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, (overrides, _) in KINDS.items():
        assert main(["train", f"examples/{name}.yaml", *quick(root, *overrides)]) == 0
    return root


def sections(html: str) -> set[str]:
    return set(re.findall(r'<section id="([a-z-]+)"', html))


@pytest.mark.parametrize("name", KINDS)
def test_training_writes_a_self_contained_report(runs, name):
    html = (runs / name / "report.html").read_text()
    assert set(KINDS[name][1]) <= sections(html)
    assert "<script" not in html and "http://" not in html and "https://" not in html  # offline, no JavaScript
    images = re.findall(r'<img src="([^"]+)"', html)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)


def test_text_mistakes_are_quoted_and_lm_samples_shown(runs):
    assert "<blockquote>" in (runs / "sms-spam-lstm" / "report.html").read_text()
    assert len(re.findall(r"<pre>", (runs / "shakespeare-gpt" / "report.html").read_text())) >= 3


def test_a_run_interrupted_before_its_first_log_line(runs, tmp_path):
    broken = tmp_path / "cut"
    shutil.copytree(runs / "digits-cnn", broken)
    for f in ("history.jsonl", "metrics.json", "model.safetensors"):
        (broken / f).unlink()
    meta = json.loads((broken / "meta.json").read_text())
    meta["status"] = "interrupted"
    (broken / "meta.json").write_text(json.dumps(meta))
    html = write_report(broken).read_text()
    assert "no training history yet" in html and "status is &#39;interrupted&#39;" in html


def test_a_run_without_a_test_split_and_an_absent_class(runs, tmp_path):
    run = forgeml.train("examples/digits-cnn.yaml", {"runs_dir": str(tmp_path), "data.split.test": 0, "train.epochs": 1,
                                                     "train.progress": False, "train.tensorboard": False})
    html = (run / "report.html").read_text()
    assert "no test split" in html and "confusion" in sections(html)


def test_many_classes_keep_the_confusion_matrix_readable(tmp_path):
    from forgeml.report import build

    classes = [f"c{i}" for i in range(1000)]

    class FakeSplit:  # outputs and labels of a real shape, without training a 1000-class model
        pass

    rng = np.random.default_rng(0)
    y = rng.integers(0, 1000, 3000)
    logits = rng.normal(size=(3000, 1000)).astype(np.float32)
    logits[np.arange(3000), y] += 4

    class P:
        features = type("F", (), {"inputs": [type("I", (), {"kind": "numeric", "name": "x"})()], "schema": lambda self: {"x": "numeric"}})()

    import torch

    target = type("T", (), {"name": "y", "kind": "classification", "classes": classes})()
    split = FakeSplit()
    split.x, split.y = {"x": torch.zeros(3000, 1)}, {"y": torch.from_numpy(y)}
    split.raw = type("R", (), {"data": {"x": np.zeros(3000)}})()
    out = build.classification_sections(P(), split, target, torch.from_numpy(logits))  # the contract: a tensor per output
    assert out["confusion"].startswith("data:image/png") and 0 < len(out["top_confusions"]) <= 20
    absent = 1000 - len(set(y.tolist()))
    assert absent > 0 and any("never appear" in n for n in out["notes"])  # 3,000 draws miss some of 1,000 classes


def test_compare_prints_a_table_and_writes_a_page(runs, tmp_path, capsys):
    out = tmp_path / "compare.html"
    assert main(["compare", str(runs / "digits-cnn"), str(runs / "adult-mlp"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "digits-cnn" in text and "adult-mlp" in text and "accuracy" in text
    assert {"table", "curves"} <= sections(out.read_text())
    assert main(["compare", str(runs / "digits-cnn")]) == 2


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic"]
PROBE = """<script>addEventListener('load', () => { const im = [...document.images];
document.body.setAttribute('data-probe', JSON.stringify({n: im.length, broken: im.filter(i => !(i.naturalWidth > 0)).length,
sections: [...document.querySelectorAll('section')].map(s => s.id)})); });</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed: apt-get install chromium (make test and .ci/run do it)")
@pytest.mark.parametrize("page", ["digits-cnn/report.html", "adult-mlp/report.html", "shakespeare-gpt/report.html", "compare"])
def test_pages_render_in_headless_chromium(runs, tmp_path, page):
    if page == "compare":
        main(["compare", *(str(runs / k) for k in KINDS), "--out", str(tmp_path / "compare.html")])
        source = tmp_path / "compare.html"
    else:
        source = runs / page
    probed = tmp_path / "probed.html"  # a copy with a probe script: the report itself has no JavaScript
    probed.write_text(source.read_text().replace("</body>", PROBE + "</body>"))
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *FLAGS, *profile, "--window-size=1200,2400", f"--screenshot={shot}", probed.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000
    dom = subprocess.run([CHROMIUM, *FLAGS, *profile, "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    probe = json.loads(re.search(r"data-probe=\"([^\"]+)\"", dom).group(1).replace("&quot;", '"'))
    assert probe["n"] > 0 and probe["broken"] == 0
    expected = {"table", "curves"} if page == "compare" else set(KINDS[Path(page).parent.name][1])
    assert expected <= set(probe["sections"])
