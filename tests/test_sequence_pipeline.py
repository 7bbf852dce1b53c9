"""The `sequence` input kind through the CLI: LIBRAS (45 (x, y) steps per row) read from a header-less CSV
by data.sequence.pattern, trained, evaluated and predicted from a CSV row; list columns with padding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from forgeml.cli import main
from forgeml.config import load_config
from forgeml.errors import ConfigError, DataError
from tests.conftest import quick

SMALL = ["train.max_steps=4", "model.encoders.sequence.channels=[8,8]", "model.encoders.sequence.kernel_sizes=[3,3]"]


def test_libras_trains_evaluates_and_predicts_from_a_csv_row(runs, tmp_path, capsys):
    assert main(["train", "examples/libras-conv1d.yaml", *quick(runs, *SMALL)]) == 0
    run = runs / "libras-conv1d"
    features = json.loads((run / "features.json").read_text())
    (series,) = features["inputs"]  # the 90 pattern columns became one input
    assert series["kind"] == "sequence" and series["name"] == "series"
    assert (series["channels"], series["length"]) == (2, 45)
    assert "conv1d" in (run / "config.yaml").read_text()

    assert main(["evaluate", str(run)]) == 0
    assert "accuracy" in capsys.readouterr().out

    lines = open("data/libras/movement_libras.data").read().splitlines()
    rows = tmp_path / "rows.csv"
    rows.write_text("\n".join(lines[:2]) + "\n")  # two lines as the file has them: no header, class last
    assert main(["predict", str(run), str(rows)]) == 0
    out = capsys.readouterr().out
    assert "rows.csv:0" in out and "rows.csv:1" in out


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_recurrent_encoders_train_on_the_series(cell, runs):
    sets = ["train.max_steps=2", f"model.encoders.sequence={{name: {cell}, hidden: 8, layers: 1}}"]
    assert main(["train", "examples/libras-conv1d.yaml", *quick(runs, *sets)]) == 0
    saved = (runs / "libras-conv1d" / "config.yaml").read_text()
    assert f"cell: {cell}" in saved


def test_the_encoder_name_picks_the_cell_and_a_contradiction_is_an_error():
    cfg = load_config("examples/libras-conv1d.yaml", ["model.encoders.sequence={name: lstm}"])
    assert cfg.model.encoders["sequence"].cell == "lstm"
    with pytest.raises(ConfigError, match="contradicts"):
        load_config("examples/libras-conv1d.yaml", ["model.encoders.sequence={name: lstm, cell: gru}"])


def test_a_pattern_matching_no_column_says_which_columns_there_are(runs):
    from forgeml.api import train

    with pytest.raises(DataError, match=r"no column matches data.sequence.pattern 'z_\{t\}' \(columns: x_0, y_0"):
        train("examples/libras-conv1d.yaml", [f"runs_dir={runs}", "data.sequence.pattern=z_{t}", *SMALL])


def test_list_column_of_uneven_series_pads_and_trains(tmp_path, runs, capsys):
    rng = np.random.default_rng(0)
    lines = ["id,walk,label"]
    for i in range(60):  # a rising or falling walk of 5..12 steps: the label is the direction
        up = i % 2
        steps = np.cumsum(rng.normal(0.5 if up else -0.5, 0.3, size=rng.integers(5, 13)))
        lines.append(f'{i},"{json.dumps([round(float(v), 3) for v in steps])}",{"up" if up else "down"}')
    path = tmp_path / "walks.csv"
    path.write_text("\n".join(lines) + "\n")
    cfg = tmp_path / "walks.yaml"
    cfg.write_text(f"name: walks\ndata: {{path: {path}, target: label, drop: [id], features: {{walk: sequence}}, "
                   "sequence: {pad: zero}}\nmodel: {name: composite, encoders: {walk: {name: gru, hidden: 8, layers: 1}}}\n"
                   "train: {max_steps: 3, batch_size: 16}\n")
    assert main(["train", str(cfg), *quick(runs)]) == 0
    (walk,) = json.loads((runs / "walks" / "features.json").read_text())["inputs"]
    assert walk["kind"] == "sequence" and walk["length"] == 12 and walk["channels"] == 1
    assert main(["predict", str(runs / "walks"), '{"walk": [0.1, 0.5, 1.2]}']) == 0
    out = capsys.readouterr().out
    assert "up" in out or "down" in out


def test_an_npz_series_array_trains_with_the_conv1d_short_form_and_predicts_from_an_npz(tmp_path, runs, capsys):
    a = np.loadtxt("data/libras/movement_libras.data", delimiter=",")
    x, y = a[:, :90].reshape(-1, 45, 2), a[:, 90].astype(np.int64)  # (360, 45, 2): the (x, y) steps
    np.savez(tmp_path / "libras.npz", x=x, y=y)
    np.savez(tmp_path / "two.npz", x=x[:2])  # inputs only, to predict
    config = tmp_path / "libras-npz.yaml"
    config.write_text(f"data: {{path: {tmp_path / 'libras.npz'}, x_kind: sequence, sequence: {{name: hand}}}}\n"
                      "model: {name: conv1d, channels: [8, 8], kernel_sizes: [3, 3]}\n")
    assert main(["train", str(config), *quick(runs, "train.max_steps=3")]) == 0
    run = runs / "libras-npz"
    (hand,) = json.loads((run / "features.json").read_text())["inputs"]
    assert (hand["name"], hand["kind"], hand["channels"], hand["length"]) == ("hand", "sequence", 2, 45)
    capsys.readouterr()
    assert main(["predict", str(run), str(tmp_path / "two.npz")]) == 0
    out = capsys.readouterr().out
    assert "two.npz:0" in out and "two.npz:1" in out
