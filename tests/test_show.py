"""Terminal and report cells read well: integers as integers, a dash for what is missing."""

import numpy as np

from forgeml.show import cell


def test_cells():
    assert [cell(v) for v in (None, float("nan"), np.float64(39.0), np.int64(5), 0.12345, 1234567)] == \
        ["-", "-", "39", "5", "0.1235", "1,234,567"]
    assert cell(1.0, whole=False) == "1.0000"  # a metric keeps its digits
