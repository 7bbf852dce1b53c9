"""The search space and every other input a study checks before it writes anything: each mistake is one
clear error naming the field, and leaves no study database and no folder."""

from __future__ import annotations

import pytest

from forgeml.cli import main
from forgeml.config import load_config
from forgeml.errors import ConfigError
from forgeml.tune import space as tune_space
from tests.tune.conftest import wine_config


def refused(runs, tmp_path, capsys, *extra, space=None, **tune) -> str:
    """Run `forgeml tune` on a bad input: exit code 2, and nothing at all under runs_dir."""
    path = wine_config(runs, tmp_path, space=space, **tune)
    assert main(["tune", str(path), *extra]) == 2
    assert list(runs.iterdir()) == []  # no study folder, no study.db, no trial folder
    return capsys.readouterr().err.replace("\n", " ")


@pytest.mark.parametrize("space, expected", [
    ({"train.lrr": {"log_uniform": [1e-4, 1e-2]}}, "tune.space.train.lrr: not a config field (train.lrr: unknown key; did you mean train.lr?)"),
    ({"trian.lr": {"log_uniform": [1e-4, 1e-2]}}, "did you mean train"),
    ({"train.optimizer": {"log_uniform": [1e-4, 1e-2]}}, "tune.space.train.optimizer: its low end, 0.0001, is refused by the config"),
    ({"data.path": {"uniform": [0, 1]}}, "tune.space.data.path: its low end"),
    ({"train.epochs": {"uniform": [1, 5]}}, "tune.space.train.epochs: its a value inside"),
    ({"train.lr": {"log_uniform": [1e-2, 1e-4]}}, "tune.space.train.lr: log_uniform: [0.01, 0.0001]: low must be below high"),
    ({"train.lr": {"log_uniform": [0, 1e-2]}}, "tune.space.train.lr: log_uniform: [0.0, 0.01]: a log scale needs low > 0"),
    ({"model.dropout": {"uniform": [0.5, 0.5]}}, "low must be below high"),
    ({"train.batch_size": {"int": [32, 256], "step": 50}}, "int: [32, 256] is not a whole number of steps of 50"),  # Optuna cut it quietly
    ({"model.dropout": {"uniform": [0, 1.5]}}, "tune.space.model.dropout: its high end, 1.5, is refused"),
    ({"model.hidden": {"choice": [[128], "wide"]}}, "tune.space.model.hidden: its choice 2, 'wide', is refused"),
    ({"train.optimizer": {"choice": ["adamw", "adamm"]}}, "tune.space.train.optimizer: its choice 2, 'adamm', is refused"),
    ({"train.lr": {"lognormal": [1e-4, 1e-2]}}, "tune.space.train.lr.lognormal: unknown key; did you mean tune.space.train.lr.log_uniform?"),
    ({"train.lr": {"log_uniform": [1e-4, 1e-2], "choice": [1e-3]}}, "give exactly one of uniform, log_uniform, int, choice"),
    ({"train.batch_size": {"int": [16, 64], "step": 0.5}}, "int: step 0.5 must be a whole number"),
    ({"runs_dir": {"choice": ["a", "b"]}}, "tune.space.runs_dir: runs_dir cannot be searched"),
])
def test_a_bad_space_is_refused_before_anything_is_written(runs, tmp_path, capsys, space, expected):
    assert expected in refused(runs, tmp_path, capsys, space=space)


@pytest.mark.parametrize("extra, tune, expected", [
    ((), {"objective": "val.acuracy"}, "tune.objective: 'val.acuracy' is not measured on the validation split of this run; "
                                       "choose one of val.loss, val.accuracy, val.f1_macro; did you mean val.accuracy?"),
    ((), {"objective": "val.r2"}, "tune.objective: 'val.r2' is not measured"),
    (("--trials", "-3"), {}, "tune.trials: got -3; input should be greater than or equal to 1"),
    (("--jobs", "0"), {}, "tune.jobs: got 0"),
    (("--storage", "nosuchdb://x/y"), {}, "tune.storage: 'nosuchdb://x/y': Can't load plugin: sqlalchemy.dialects:nosuchdb"),
    (("--storage", "not a url"), {}, "tune.storage: 'not a url' is not a database URL"),
    (("--storage", "sqlite:///no/such/folder/study.db"), {}, "tune.storage: 'sqlite:///no/such/folder/study.db': the folder no/such/folder does not exist"),
    (("--storage", "sqlite://"), {}, "a study in memory is lost when the command ends"),
    (("--storage", "postgresql://tuner:secret@127.0.0.1:9/studies"), {},
     "tuner:***@127.0.0.1:9/studies' cannot be opened: connection to server at \"127.0.0.1\", port 9 failed"),  # password hidden
])
def test_a_bad_objective_count_or_storage_is_refused_before_anything_is_written(runs, tmp_path, capsys, extra, tune, expected):
    err = refused(runs, tmp_path, capsys, *extra, **tune)
    assert expected in err and "secret" not in err


def test_a_sqlite_path_through_a_file_is_refused(runs, tmp_path, capsys):
    (tmp_path / "plain").write_text("a file, not a folder")
    err = refused(runs, tmp_path, capsys, "--storage", f"sqlite:///{tmp_path}/plain/study.db")
    assert "does not exist (or is not a folder)" in err


def test_a_config_without_a_tune_section_says_what_to_add(runs, tmp_path, capsys):
    path = tmp_path / "plain.yaml"
    path.write_text(f"runs_dir: {runs}\ndata: {{source: sklearn, path: wine}}\nmodel: {{name: mlp}}\n")
    assert main(["tune", str(path)]) == 2
    assert "tune: the config has no tune section" in capsys.readouterr().err
    assert list(runs.iterdir()) == []


def test_every_probe_of_a_range_goes_through_the_config():
    cfg = load_config({"data": {"source": "sklearn", "path": "wine"}, "model": {"name": "mlp"},
                       "tune": {"space": {"train.batch_size": {"int": [32, 256], "step": 32},
                                          "model.hidden": {"choice": [[128], [256, 256]]},
                                          "train.lr": {"log_uniform": [1e-4, 1e-2]}, "model.dropout": {"uniform": [0, 0.5]}}}})
    tune_space.check_space(cfg)  # all fine
    applied = tune_space.apply(cfg, {"model.hidden": [256, 256], "train.batch_size": 64})
    assert applied.model.hidden == [256, 256] and applied.train.batch_size == 64 and applied.tune is None
    assert "tune" not in applied.to_dict()


@pytest.mark.parametrize("objective, direction", [("val.loss", "minimize"), ("val.rmse", "minimize"), ("val.income.mae", "minimize"),
                                                  ("val.perplexity", "minimize"), ("val.accuracy", "maximize"),
                                                  ("val.income.f1_macro", "maximize"), ("val.r2", "maximize")])
def test_direction_auto_minimizes_losses_and_errors(objective, direction):
    assert tune_space.direction(objective, "auto") == direction
    assert tune_space.direction(objective, "maximize") == "maximize"


def test_a_config_without_tune_reads_and_digests_as_before():
    from forgeml.pipeline import config_digest

    cfg = load_config("src/forgeml/examples/wine-regression.yaml")
    assert "tune" not in cfg.to_dict() and "tune" not in cfg.to_yaml()
    assert config_digest(cfg) == config_digest(load_config(cfg.to_dict()))


def test_choice_values_that_are_lists_travel_through_optuna():
    import optuna

    cfg = load_config({"model": {"name": "mlp"}, "tune": {"space": {"model.hidden": {"choice": [[8], [32, 16]]}}}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = [tune_space.suggest(study.ask(), cfg.tune.space)["model.hidden"] for _ in range(8)]
    assert {tuple(h) for h in seen} == {(8,), (32, 16)}
    with pytest.raises(ConfigError):
        tune_space.check_space(load_config({"model": {"name": "mlp"}, "tune": {"space": {}}}))
