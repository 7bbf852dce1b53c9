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
