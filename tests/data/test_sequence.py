"""The sequence input kind: readers (list column, column group, npz array), SequenceFeature, duplicate groups."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from forgeml.data.features.sequence import SequenceFeature
from forgeml.data.groups import duplicate_groups, stratified_group_split
from forgeml.data.sequence_columns import (
    read_npz_series,
    series_from_array,
    series_from_cells,
    series_from_column_group,
    stack_series,
)
from forgeml.errors import DataError

LIBRAS = Path(__file__).resolve().parents[2] / "data" / "libras" / "movement_libras.data"


@pytest.fixture(scope="module")
def libras() -> tuple[np.ndarray, np.ndarray]:
    a = np.loadtxt(LIBRAS, delimiter=",")
    return a[:, :90].reshape(-1, 45, 2), a[:, 90].astype(np.int64)  # (360, 45, 2): x1, y1, x2, y2, ... interleaved


# ------------------------------------------------------------------------------------------------ readers
def test_list_column_reads_json_arrays_lists_and_delimited_strings():
    rows = series_from_cells(["[1, 2, 3]", [4.0, 5.0], np.array([6.0]), "7;8", "9 10,11"], "s")
    assert [r.shape for r in rows] == [(3, 1), (2, 1), (1, 1), (2, 1), (3, 1)]
    assert rows[4][:, 0].tolist() == [9.0, 10.0, 11.0]
    two = series_from_cells(["[[1, 10], [2, 20]]", [[3, 30]]], "s")
    assert [r.tolist() for r in two] == [[[1, 10], [2, 20]], [[3, 30]]]
    assert series_from_cells(["1|2|3"], "s", sep="|")[0][:, 0].tolist() == [1, 2, 3]


def test_list_column_from_a_jsonl_file(tmp_path):
    import pandas as pd

    path = tmp_path / "s.jsonl"
    path.write_text('{"s": [1, 2, 3], "y": 0}\n{"s": [4, 5], "y": 1}\n')
    cells = pd.read_json(path, lines=True)["s"].to_numpy()
    x, lengths = stack_series(series_from_cells(cells, "s"), "s", pad="zero")
    assert x.shape == (2, 3, 1) and lengths.tolist() == [3, 2] and x[1, 2, 0] == 0


def test_list_column_errors_name_the_row_and_the_fix():
    with pytest.raises(DataError, match=r"column 's' row 1: 'abc' is not a series"):
        series_from_cells(["[1]", "abc"], "s")
    with pytest.raises(DataError, match="row 1: 2 channels per step but row 0 has 1"):
        series_from_cells(["[1, 2]", "[[1, 2]]"], "s")
    with pytest.raises(DataError, match="row 0: the series is missing"):
        series_from_cells([None], "s")


def test_column_group_by_pattern_matches_libras_layout(libras):
    x, _ = libras
    flat = x.reshape(len(x), 90)
    # the table as a user would name it: x_0..x_44 and y_0..y_44, in the file's interleaved order
    cols = {f"{c}_{t}": flat[:, 2 * t + (c == "y")] for t in range(45) for c in "xy"}
    cols["label"] = np.zeros(len(x))
    got, used = series_from_column_group(cols, "{c}_{t}")
    assert got.shape == (360, 45, 2) and np.array_equal(got, x)
    assert "label" not in used and len(used) == 90
    one, _ = series_from_column_group({"v10": flat[:, 1], "v2": flat[:, 0]}, "v{t}")  # steps sorted by number, not name
    assert one.shape == (360, 2, 1) and np.array_equal(one[:, :, 0], flat[:, :2])


def test_column_group_errors():
    with pytest.raises(DataError, match=r"no column matches data.sequence.pattern 'z_\{t\}'"):
        series_from_column_group({"x_0": np.zeros(2)}, "z_{t}")
    with pytest.raises(DataError, match="put {t} where the step number stands"):
        series_from_column_group({"x_0": np.zeros(2)}, "x_")
    with pytest.raises(DataError, match="channel 'y' has steps"):
        series_from_column_group({"x_0": np.zeros(2), "x_1": np.zeros(2), "y_0": np.zeros(2)}, "{c}_{t}")


def test_arrays_n_t_and_n_t_c_and_npz(tmp_path):
    assert series_from_array(np.zeros((4, 7))).shape == (4, 7, 1)
    assert series_from_array(np.zeros((4, 7, 3))).shape == (4, 7, 3)
    with pytest.raises(DataError, match=r"must be \(N, T\) or \(N, T, C\); got shape \(4,\)"):
        series_from_array(np.zeros(4))
    np.savez(tmp_path / "a.npz", x=np.arange(24.0).reshape(2, 4, 3), y=np.zeros(2))
    assert read_npz_series(str(tmp_path / "a.npz"), "x")[1, 0].tolist() == [12.0, 13.0, 14.0]
    with pytest.raises(DataError, match="not 'series'; set data.x_key"):
        read_npz_series(str(tmp_path / "a.npz"), "series")


def test_unequal_lengths_need_a_padding_rule():
    rows = series_from_cells(["[1, 2, 3]", "[4]"], "s")
    with pytest.raises(DataError, match=r"series of unequal length .* set data.sequence.pad: zero"):
        stack_series(rows, "s")
    x, lengths = stack_series(rows, "s", pad="zero", max_length=2)
    assert x[:, :, 0].tolist() == [[1, 2], [4, 0]] and lengths.tolist() == [2, 1]


# ------------------------------------------------------------------------------------------------ feature
def test_feature_standardises_per_channel_on_training_rows_only(libras):
    x, _ = libras
    f = SequenceFeature("s").fit(x[:200])
    assert (f.channels, f.length, f.width) == (2, 45, 90)
    out = f.transform(x[:200])
    assert out.dtype == np.float32 and out.shape == (200, 45, 2)
    np.testing.assert_allclose(out.reshape(-1, 2).mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(out.reshape(-1, 2).std(0), 1, atol=1e-4)
    assert set(f.inputs(x[200:])) == {"s"}  # equal lengths: no length tensor


def test_padding_never_enters_the_statistics_and_stays_zero():
    cells = ["[[1, 10], [3, 30]]", "[[5, 50], [7, 70], [9, 90], [11, 110]]"]
    f = SequenceFeature("s", {"pad": "zero"}).fit(cells)
    np.testing.assert_allclose(f.mean, [6, 60])  # the mean of the six real steps, not of eight with zeros
    got = f.inputs(cells)
    assert got["s"].shape == (2, 4, 2) and got["s.length"].tolist() == [2, 4] and got["s.length"].dtype == np.int64
    assert (got["s"][0, 2:] == 0).all()


def test_feature_errors_name_the_setting():
    with pytest.raises(DataError, match="set data.sequence.pad: zero"):
        SequenceFeature("s").fit(["[1, 2]", "[1]"])
    f = SequenceFeature("s").fit(np.zeros((3, 5, 2)))
    with pytest.raises(DataError, match="series of 4 steps, but the model was trained on 5 and data.sequence.pad is none"):
        f.transform(np.zeros((1, 4, 2)))
    with pytest.raises(DataError, match="3 channels per step, but the model was trained on 2"):
        f.transform(np.zeros((1, 5, 3)))
    with pytest.raises(DataError, match="row 1: a missing or infinite value at step 2"):
        SequenceFeature("s").fit(np.array([[1.0, 2, 3], [1, 2, np.nan]]))


def test_to_json_round_trip_gives_the_same_tensors(libras):
    x, _ = libras
    cells = [json.dumps(r[: 20 + i % 25].tolist()) for i, r in enumerate(x[:50])]  # unequal lengths, as JSON text
    f = SequenceFeature("s", {"pad": "zero", "max_length": 40}).fit(cells)
    g = SequenceFeature.from_json(json.loads(json.dumps(f.to_json())))
    a, b = f.inputs(cells), g.inputs(cells)
    assert a.keys() == b.keys() == {"s", "s.length"}
    assert np.array_equal(a["s"], b["s"]) and np.array_equal(a["s.length"], b["s.length"])
    assert g.length == 40 and g.cfg.max_length == 40


# ------------------------------------------------------------------------------------------------ groups
def test_libras_has_30_duplicate_pairs(libras):
    x, y = libras
    groups = duplicate_groups(x)
    sizes = np.bincount(groups)
    assert len(sizes) == 330 and (sizes == 2).sum() == 30 and sizes.max() == 2
    for g in np.flatnonzero(sizes == 2):
        rows = np.flatnonzero(groups == g)
        assert np.array_equal(x[rows[0]], x[rows[1]]) and y[rows[0]] == y[rows[1]]
    assert sorted(np.unique(y[np.isin(groups, np.flatnonzero(sizes == 2))]).tolist()) == [4, 5, 6, 9, 10, 11, 12, 13, 14, 15]


def test_duplicate_groups_are_numbered_in_order_of_first_row():
    assert duplicate_groups(np.array([[3.0], [1.0], [3.0], [2.0], [1.0]])).tolist() == [0, 1, 0, 2, 1]


def test_split_keeps_every_duplicate_pair_on_one_side_and_classes_balanced(libras):
    x, y = libras
    groups = duplicate_groups(x)
    train, test = stratified_group_split(y, groups, test=0.2, seed=3)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 360
    assert not set(groups[train]) & set(groups[test])
    assert 0.17 < len(test) / 360 < 0.23
    assert set(np.bincount(y[test])[1:]) <= {4, 5, 6}  # about 24 * 0.2 of each class
    again = stratified_group_split(y, groups, test=0.2, seed=3)
    assert np.array_equal(again[1], test)


def _libras_npz(tmp_path, libras, x=None) -> str:
    path = tmp_path / "libras.npz"
    np.savez(path, x=libras[0] if x is None else x, y=libras[1])
    return str(path)


def test_npz_series_by_x_kind(tmp_path, libras):
    from forgeml.config import DataConfig
    from forgeml.data.prepare import prepare

    path = _libras_npz(tmp_path, libras)
    data = prepare(DataConfig(path=path, x_kind="sequence", sequence={"name": "hand"}))
    (feat,) = data.features.inputs
    assert (feat.name, feat.kind, feat.channels, feat.length) == ("hand", "sequence", 2, 45)
    assert data.splits["train"].x["hand"].shape[1:] == (45, 2)  # (B, T, C) per the contract
    # the same file without x_kind: (N, 45, 2) has the shape of 360 gray 45x2 images, and is read as such
    assert prepare(DataConfig(path=path)).features.inputs[0].kind == "image"
    # (N, T): one channel
    flat = prepare(DataConfig(path=_libras_npz(tmp_path, libras, libras[0][:, :, 0]), x_kind="sequence"))
    assert (flat.features.inputs[0].name, flat.features.inputs[0].channels) == ("series", 1)


@pytest.mark.parametrize("kind, shape, needs", [
    ("sequence", (360,), r"\(N, T\) or \(N, T, C\)"),
    ("sequence", (360, 5, 5, 2), r"\(N, T\) or \(N, T, C\)"),
    ("image", (360, 90), r"\(N, H, W\)"),
    ("table", (360, 45, 2), r"\(N, F\)"),
])
def test_npz_of_the_wrong_rank_for_x_kind_is_refused(tmp_path, libras, kind, shape, needs):
    from forgeml.config import DataConfig
    from forgeml.data.prepare import prepare

    path = _libras_npz(tmp_path, libras, np.zeros(shape))
    with pytest.raises(DataError, match=rf"data.x_kind is {kind}, which needs x of shape {needs}.*; it has shape "
                                        rf"\({shape[0]},.*Set data.x_kind to auto or"):
        prepare(DataConfig(path=path, x_kind=kind))


def test_x_kind_on_a_file_that_is_not_npz_is_refused():
    from forgeml.config import DataConfig
    from forgeml.data.prepare import prepare
    from forgeml.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data.x_kind: sequence says what an NPZ inputs array holds, but .* is read as csv"):
        prepare(DataConfig(path=str(LIBRAS), header=False, x_kind="sequence"))
