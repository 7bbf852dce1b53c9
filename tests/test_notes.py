"""forgeml.notes reach the CLI user on stderr as one line each, and Python users through logging."""

from __future__ import annotations

import logging

from forgeml.cli import _show_notes
from forgeml.notes import note, warn


def test_notes_and_warnings_print_one_line_each_on_stderr(capsys):
    _show_notes()
    note("column kinds: age numeric, city category")
    warn("data.task is regression but the target has 3 integer values")
    err = capsys.readouterr().err
    assert "note: column kinds: age numeric, city category\n" in err
    assert "warning: data.task is regression but the target has 3 integer values\n" in err


def test_python_users_get_them_through_logging(caplog):
    with caplog.at_level(logging.INFO, logger="forgeml"):
        warn("something odd")
    assert [r.getMessage() for r in caplog.records] == ["something odd"]


def test_train_notes_the_inferred_columns_once_and_evaluate_does_not(runs, capsys):
    from forgeml.cli import main
    from tests.conftest import quick

    assert main(["train", "examples/wine-regression.yaml", *quick(runs, "train.max_steps=2")]) == 0
    err = capsys.readouterr().err
    assert err.count("note: columns: fixed acidity numeric") == 1 and "target quality: regression" in err
    assert main(["evaluate", str(runs / "wine-regression")]) == 0
    assert "columns:" not in capsys.readouterr().err


def test_train_warns_about_the_data_once_and_evaluate_and_report_do_not(runs, tmp_path, capsys):
    import yaml

    from forgeml.cli import main
    from tests.conftest import quick

    table = tmp_path / "t.csv"
    rows = [f"{20 + i},{'a' if i % 2 else 'b'},{i % 3}" for i in range(60)]
    rows[7] = "?,a,1"  # a non-number makes 'age' a category; the target's values look like class ids
    table.write_text("age,work,y\n" + "\n".join(rows) + "\n")
    config = tmp_path / "t.yaml"
    config.write_text(yaml.safe_dump({"name": "t", "data": {"path": str(table), "target": "y", "task": "regression"},
                                      "model": {"name": "mlp", "hidden": [8]}}))
    assert main(["train", str(config), *quick(runs, "train.max_steps=2")]) == 0
    err = capsys.readouterr().err
    assert err.count("'?' is not a number") == 1 and err.count("look like class ids") == 1
    for command in (["evaluate", str(runs / "t")], ["report", str(runs / "t")]):
        assert main(command) == 0
        err = capsys.readouterr().err
        assert "not a number" not in err and "class ids" not in err, command
