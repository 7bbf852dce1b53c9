"""What `forgeml predict` accepts and refuses: files missing a column, categories training never saw,
mistyped paths given to a text model, and .npz arrays for a model trained on an npz."""

import numpy as np
import pytest

import forgeml
from forgeml.cli import main

QUICK = {"train.epochs": 1, "train.batch_size": 16, "train.progress": False, "train.tensorboard": False}


def _train(tmp_path_factory, data: dict, model: dict):
    runs = tmp_path_factory.mktemp("runs")
    return forgeml.train({"data": data, "model": model, "runs_dir": str(runs), "name": "m"}, QUICK)


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("table")
    rows = "".join(f"{i / 10},{c},{'yes' if c == 'Paris' else 'no'}\n" for i, c in enumerate(["Bergen", "Paris", "Rome"] * 20))
    (folder / "people.csv").write_text("a,city,label\n" + rows)
    return _train(tmp_path_factory, {"path": str(folder / "people.csv")}, {"name": "mlp", "hidden": [4]})


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text")
    words = ["good", "bad", "fine", "awful", "great", "poor"]
    rows = "".join(f"a {words[i % 6]} film number {i},{i % 2}\n" for i in range(40))
    (folder / "reviews.csv").write_text("review,label\n" + rows)
    return _train(tmp_path_factory, {"path": str(folder / "reviews.csv"), "features": {"review": "text"}},
                  {"name": "rnn", "embed_dim": 8, "hidden": 8})


def test_a_file_missing_a_column_is_refused_naming_it(table_run, tmp_path, capsys):
    (tmp_path / "nocity.csv").write_text("a,label\n1.0,yes\n2.0,no\n")
    (tmp_path / "rows.jsonl").write_text('{"a": 1, "city": "Rome"}\n{"a": 2}\n')
    assert main(["predict", str(table_run), str(tmp_path / "nocity.csv")]) == 2
    assert "nocity.csv: no column city; the model takes a, city" in capsys.readouterr().err
    assert main(["predict", str(table_run), str(tmp_path / "rows.jsonl")]) == 2
    assert "rows.jsonl:1: missing city (the model takes a, city" in capsys.readouterr().err


def test_categories_never_seen_in_training_are_counted(table_run, tmp_path, capsys):
    (tmp_path / "new.csv").write_text("a,city\n1.0,Oslo\n2.0,Paris\n3.0,Oslo\n0.5,Lima\n,\n")
    assert main(["predict", str(table_run), str(tmp_path / "new.csv")]) == 0
    err = capsys.readouterr().err
    assert "warning: city: 3 of 5 rows have values never seen in training (e.g. 'Oslo'); they are treated as unknown" in err


@pytest.mark.parametrize("item", ["reviews.csv", "./x.txt", "img/3.png", "data/missing.jsonl"])
def test_a_text_model_refuses_a_path_that_does_not_exist(text_run, item, capsys):
    assert main(["predict", str(text_run), item]) == 2
    assert f"error: {item}: no such file" in capsys.readouterr().err


def test_a_text_model_still_reads_a_bare_sentence(text_run, capsys):
    assert main(["predict", str(text_run), "a good film", "great/awful"]) == 2  # a slash without a space reads as a path
    assert main(["predict", str(text_run), "a good film", "great, not awful."]) == 0


def test_an_npz_trained_model_predicts_on_an_npz_file(tmp_path_factory, tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "train.npz", x=rng.normal(size=(60, 3)), y=np.arange(60) % 2)
    run = _train(tmp_path_factory, {"path": str(tmp_path / "train.npz")}, {"name": "mlp", "hidden": [4]})
    np.savez(tmp_path / "new.npz", x=rng.normal(size=(5, 3)))
    assert main(["predict", str(run), str(tmp_path / "new.npz"), "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count('"label"') == 5
    np.savez(tmp_path / "other.npz", inputs=rng.normal(size=(5, 3)))
    assert main(["predict", str(run), str(tmp_path / "other.npz")]) == 2
    assert "other.npz: holds arrays ['inputs'], not 'x'" in capsys.readouterr().err
