"""The report for every output of a run: a two-output table (class + regression), a multi-label text run and
a series run, each checked against what the run itself measured; and one pass of the network over the test
rows serves both metrics.json and the report."""

import html as htmllib
import json
import re

import numpy as np
import pytest
import torch

from forgeml.cli import main
from forgeml.data.tensor_dict import n_rows
from forgeml.predictor import Predictor
from forgeml.report.build import series_cell
from tests.conftest import quick

MULTITASK = ["data.limit=1500", "train.epochs=1"]
GOEMOTIONS = ["train.max_steps=12", "model.hidden=16", "model.embed_dim=16", "eval.splits=[val,test]"]


def sections(html: str) -> list[str]:
    return re.findall(r'<section id="([a-z0-9-]+)"', html)


def section(html: str, name: str) -> str:
    start = html.index(f'<section id="{name}"')
    return html[start:html.index("</section>", start)]


def table_rows(fragment: str) -> list[list[str]]:
    """The text of each body row's cells."""
    rows = re.findall(r"<tr>(.*?)</tr>", fragment, re.S)
    return [[htmllib.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)] for r in rows if "<td" in r]


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    """Train adult-multitask while counting the rows every call of Predictor.iter_outputs runs through the network."""
    calls: list[int] = []
    original = Predictor.iter_outputs

    def counting(self, x, batch_size=None):
        calls.append(n_rows(x))
        yield from original(self, x, batch_size)

    root = tmp_path_factory.mktemp("runs")
    mp = pytest.MonkeyPatch()
    mp.setattr(Predictor, "iter_outputs", counting)
    try:
        torch.manual_seed(0)
        assert main(["train", "examples/adult-multitask.yaml", *quick(root, *MULTITASK)]) == 0
    finally:
        mp.undo()
    return root / "adult-multitask", calls


def test_the_test_rows_go_through_the_network_once_during_training(counted):
    run, calls = counted
    sizes = json.loads((run / "meta.json").read_text())["data"]
    assert sizes["test"] != sizes["val"]  # so that the counts below tell the two splits apart
    assert calls.count(sizes["test"]) == 1  # metrics.json and report.html from one pass (the report ran a second)
    assert calls.count(sizes["val"]) == 1


def test_report_and_evaluate_alone_run_the_test_rows_once(counted, monkeypatch):
    run, _ = counted
    calls: list[int] = []
    original = Predictor.iter_outputs

    def counting(self, x, batch_size=None):
        calls.append(n_rows(x))
        yield from original(self, x, batch_size)

    monkeypatch.setattr(Predictor, "iter_outputs", counting)
    n_test = json.loads((run / "meta.json").read_text())["data"]["test"]
    assert main(["report", str(run)]) == 0
    assert calls.count(n_test) == 1  # alone, the report computes the outputs itself, once
    calls.clear()
    assert main(["evaluate", str(run)]) == 0
    assert calls.count(n_test) == 1


def test_two_outputs_get_a_section_each_with_the_runs_own_figures(counted):
    run, _ = counted
    html = (run / "report.html").read_text()
    got = sections(html)
    for name in ["income-confusion", "income-per-class", "income-roc", "income-mistakes",
                 "hours-per-week-regression", "hours-per-week-mistakes"]:
        assert name in got
    assert got.index("income-mistakes") < got.index("hours-per-week-regression")  # each output's sections together
    assert "sections below are for the first" not in html
    test = json.loads((run / "metrics.json").read_text())["test"]
    rows = table_rows(section(html, "income-per-class"))
    assert [r[0] for r in rows] == list(test["income.per_class"])  # <=50K, >50K
    assert [int(r[4].replace(",", "")) for r in rows] == [m["support"] for m in test["income.per_class"].values()]
    assert sum(int(r[4].replace(",", "")) for r in rows) == test["n"]
    # the final metrics: one table per output, the output's prefix dropped from its columns
    metrics = section(html, "metrics")
    assert "<h3>income</h3>" in metrics and "<h3>hours-per-week</h3>" in metrics
    assert f"{test['hours-per-week.mae']:.4f}" in metrics and "<th>income.accuracy</th>" not in metrics
    # the worst rows of each output: the outcome first, then the inputs (never an output column)
    reg = table_rows(section(html, "hours-per-week-mistakes"))
    assert len(reg) == 12 and all(r[0].startswith("true ") and ", predicted " in r[0] for r in reg)
    header = re.findall(r"<th>(.*?)</th>", section(html, "hours-per-week-mistakes"))
    assert header[0] == "outcome" and "age" in header and "hours-per-week" not in header and "income" not in header
    pairs = [r[0].removeprefix("true ").split(", predicted ") for r in reg]
    errors = [abs(float(a.replace(",", "")) - float(b.replace(",", ""))) for a, b in pairs]
    assert all(a >= b - 1e-3 for a, b in zip(errors, errors[1:]))  # the largest errors first (captions are rounded)
    cls = table_rows(section(html, "income-mistakes"))
    assert cls and all(r[0].startswith("true ") and "predicted" in r[0] for r in cls)


@pytest.fixture(scope="module")
def goemotions(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    assert main(["train", "examples/goemotions-multilabel.yaml", *quick(root, *GOEMOTIONS)]) == 0
    return root / "goemotions-multilabel"


def test_multilabel_report_has_per_label_table_bars_and_thresholds(goemotions):
    html = (goemotions / "report.html").read_text()
    assert {"per-label", "mistakes"} <= set(sections(html))
    part = section(html, "per-label")
    test = json.loads((goemotions / "metrics.json").read_text())["test"]
    out = json.loads((goemotions / "features.json").read_text())["outputs"][0]
    rows = table_rows(part)
    assert len(rows) == 28
    supports = [int(r[1]) for r in rows]
    assert supports == sorted(supports, reverse=True)  # the most frequent labels first
    for label, support, precision, recall, f1, threshold in rows:
        m = test["per_label"][label]
        assert int(support) == m["support"] and float(f1) == pytest.approx(m["f1"], abs=1e-4)
        assert float(precision) == pytest.approx(m["precision"], abs=1e-4) and float(recall) == pytest.approx(m["recall"], abs=1e-4)
        assert float(threshold) == pytest.approx(out["thresholds"][out["labels"].index(label)])
    assert f"{test['f1_macro']:.4f}" in part and f"{test['f1_micro']:.4f}" in part
    assert "tuned per label for the best F1 on the validation split" in part
    assert re.search(r'<img src="data:image/png;base64,[^"]+" alt="F1 per label"', part)
    # worst rows: the comment quoted, with its true and predicted label sets named
    mistakes = section(html, "mistakes")
    assert "<blockquote>" in mistakes and re.search(r"true [a-z]+", mistakes) and "predicted " in mistakes


def test_a_set_threshold_is_named_as_the_source(goemotions, tmp_path):
    import shutil

    from forgeml.report.build import write_report

    run = tmp_path / "fixed"
    shutil.copytree(goemotions, run)
    config = (run / "config.yaml").read_text()
    assert "threshold: tune" in config
    (run / "config.yaml").write_text(config.replace("threshold: tune", "threshold: 0.3"))
    html = write_report(run).read_text()
    assert "one threshold for every label, 0.3, set in data.outputs" in section(html, "per-label")


def test_a_series_input_reads_as_lines_and_as_a_short_cell(tmp_path):
    assert main(["train", "examples/libras-conv1d.yaml", *quick(tmp_path, "train.epochs=1")]) == 0
    html = (tmp_path / "libras-conv1d" / "report.html").read_text()
    mistakes = section(html, "mistakes")
    assert re.search(r'<img src="data:image/png;base64,[^"]+" alt="worst mistakes"', mistakes)
    assert "[[" not in mistakes and len(mistakes) < 200_000  # not the 45 x 2 numbers of each row as text
    # in a table beside other columns: the series' shape and first steps
    assert series_cell(np.arange(90.0).reshape(45, 2), "series") == "45 steps × 2 channels: (0 1), (2 3), (4 5), (6 7) …"
    assert series_cell("[0.5, 1.5, 2.5]", "s") == "3 steps × 1 channel: 0.5, 1.5, 2.5"
