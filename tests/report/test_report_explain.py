"""The report's explanations: the global view beside permutation importance and the worst mistakes explained; a
one-line note without Captum; eval.explain: false leaves them out."""

from __future__ import annotations

import sys

import pytest

import forgeml
from forgeml.predictor import load
from forgeml.report.build import write_report

pytest.importorskip("captum", reason="the explain extra is not installed: pip install 'forgeml[explain]'")


@pytest.fixture(scope="module")
def adult(tmp_path_factory):
    return forgeml.train("examples/adult-mlp.yaml", {"runs_dir": str(tmp_path_factory.mktemp("runs")), "data.limit": 2000,
                                                     "train.max_steps": 20, "train.progress": False, "train.tensorboard": False})


def test_the_report_explains_the_worst_mistakes_and_ranks_the_columns(adult):
    html = (adult / "report.html").read_text()
    assert 'id="explained-mistakes"' in html and 'id="explain-global"' in html
    assert "permutation importance" in html and "Over 256 of the" in html  # the cap is said
    section = html[html.index('id="explained-mistakes"'):html.index('id="explain-global"')]
    assert section.count('class="explained"') == 12  # every worst mistake of the table is explained
    assert "marital-status" in section


def test_eval_explain_false_leaves_the_section_out(adult):
    predictor = load(adult)
    predictor.config.eval.explain = False
    html = write_report(adult, predictor=predictor).read_text()
    assert "explained-mistakes" not in html and "explain-global" not in html and "Captum" not in html


def test_without_captum_the_report_says_so_in_one_line(adult, monkeypatch):
    monkeypatch.setitem(sys.modules, "captum", None)  # `import captum` now fails as if the extra were not installed
    html = write_report(adult).read_text()
    assert "explanations skipped: Captum is not installed (pip install &#39;forgeml[explain]&#39;)" in html
    assert "explained-mistakes" not in html
