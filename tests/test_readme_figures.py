"""The README's quoted figures are all re-measured by benchmarks/readme_figures.py (no figure without a script)."""

from __future__ import annotations

import importlib.util
import sys

from tests.conftest import ROOT


def _script():
    spec = importlib.util.spec_from_file_location("readme_figures", ROOT / "benchmarks" / "readme_figures.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_every_marked_figure_is_measured_and_every_measured_figure_is_marked():
    script = _script()
    quoted = script.readme_values((ROOT / "README.md").read_text())
    ids = {f.id for f in script.FIGURES}
    assert set(quoted) == ids
    for fig in script.FIGURES:  # the README writes each figure the way the script formats it
        example = fig.id.split(".")[0]
        assert (ROOT / "examples" / f"{example}.yaml").is_file()
        assert quoted[fig.id] == fig.fmt(_parse(quoted[fig.id], fig.fmt))


def _parse(text: str, fmt) -> float:
    number = float(text.rstrip("%s ").replace(",", ""))
    return number / 100 if text.endswith("%") else number
