"""Terminal and report cells read well: integers as integers, a dash for what is missing."""

import numpy as np

from forgeml.format import cell


def test_cells():
    assert [cell(v) for v in (None, float("nan"), np.float64(39.0), np.int64(5), 0.12345, 1234567)] == \
        ["-", "-", "39", "5", "0.1235", "1,234,567"]
    assert cell(1.0, whole=False) == "1.0000"  # a metric keeps its digits


def test_the_report_stands_below_the_cli():
    # report/ is a stage; show.py is the CLI face's: an arrow only points down (DESIGN.md)
    import ast
    from pathlib import Path

    import forgeml.report

    for path in Path(forgeml.report.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not imported & {"forgeml.show", "forgeml.cli", "forgeml.api"}, path
