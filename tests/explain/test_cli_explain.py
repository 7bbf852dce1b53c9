"""`forgeml explain` end to end on small real runs: tables, --json, --png, and errors that leave nothing behind."""

from __future__ import annotations

import json

import numpy as np
import pytest

from forgeml.cli import main


def test_explain_a_table_row_as_json_and_as_a_table(known_run, capsys):
    run, test = known_run
    row = json.dumps(test.drop(columns=["y", "z"]).iloc[0].to_dict())
    assert main(["explain", str(run), row, "--json", "--output", "y", "--method", "shap"]) == 0
    got = json.loads(capsys.readouterr().out.strip())
    assert got["input"] == "arg:0" and got["output"] == "y" and got["method"] == "shap"
    assert set(got["attributions"]) == {"x0", "x1", "x2", "x3", "x4", "x5", "c0", "c1"}
    assert main(["explain", str(run), row]) == 0
    out = capsys.readouterr().out
    assert "arg:0: y = " in out and "arg:0: z = z" in out and "delta" in out  # every output, integrated gradients


def test_png_writes_a_heat_map_over_each_image(digits_run, tmp_path, capsys):
    from PIL import Image
    from sklearn.datasets import load_digits

    image = load_digits().images[0].tolist()
    assert main(["explain", str(digits_run), json.dumps({"image": image}), "--method", "occlusion", "--png", str(tmp_path / "png")]) == 0
    (png,) = (tmp_path / "png").glob("*.png")
    assert png.name == "arg_0.target.image.png"
    assert np.asarray(Image.open(png)).shape == (224, 224, 3)
    assert "heat map 8x8" in capsys.readouterr().out


@pytest.mark.parametrize("extra, words", [
    (["--png", "PNG"], "has no image input to draw a heat map over"),
    (["--target", "maybe", "--output", "y"], "target 'maybe': not a class of 'y'"),
    (["--output", "w"], "output 'w': not an output"),
])
def test_errors_are_one_line_and_write_nothing(known_run, tmp_path, capsys, monkeypatch, extra, words):
    run, test = known_run
    monkeypatch.chdir(tmp_path)
    row = json.dumps(test.drop(columns=["y", "z"]).iloc[0].to_dict())
    assert main(["explain", str(run), row, *extra]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
