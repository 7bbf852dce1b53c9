import numpy as np
import pytest

from forgeml.config import DataConfig
from forgeml.data.prepare import load_columns, prepare
from forgeml.errors import ConfigError


def _npz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, x_train=rng.normal(size=(40, 3)), y_train=np.arange(40) % 2,
             x_test=rng.normal(size=(10, 3)) + 100, y_test=np.arange(10) % 2)
    return str(path)


def test_one_npz_holds_the_training_and_the_test_arrays(tmp_path):
    path = _npz(tmp_path)
    cfg = DataConfig(path=path, test_path=path, x_key="x_train", y_key="y_train", test_x_key="x_test", test_y_key="y_test")
    cols = load_columns(cfg)
    assert len(cols["test"]) == 10 and cols["test"].data["x0"].min() > 50  # the test arrays, not the training ones
    assert len(cols["train"]) + len(cols["val"]) == 40


def test_the_training_file_as_test_or_val_file_is_refused(tmp_path):
    path = _npz(tmp_path)
    with pytest.raises(ConfigError, match="data.test_path: .* is the training file .*data.test_x_key"):
        load_columns(DataConfig(path=path, test_path=path, x_key="x_train", y_key="y_train"))
    csv = tmp_path / "t.csv"
    csv.write_text("a,label\n" + "".join(f"{i},{i % 2}\n" for i in range(30)))
    with pytest.raises(ConfigError, match="data.val_path: .* is the training file"):
        load_columns(DataConfig(path=str(csv), val_path=str(tmp_path / "." / "t.csv")))  # another spelling, same file
    with pytest.raises(ConfigError, match="data.test_path"):
        load_columns(DataConfig(source="sklearn", path="iris", test_path="sklearn:iris"))


def _images_npz(tmp_path, h, w):
    path = tmp_path / f"im{h}x{w}.npz"
    np.savez(path, x=np.random.default_rng(0).integers(0, 255, size=(30, h, w), dtype=np.uint8), y=np.arange(30) % 3)
    return str(path)


@pytest.mark.parametrize("setting, value, size, largest", [
    ("translate", 2, (1, 6), 0),  # one pixel high: any vertical shift leaves only zero fill
    ("crop_padding", 8, (8, 8), 7),
    ("cutout", 9, (8, 8), 7),
])
def test_an_augmentation_that_cannot_apply_is_refused_at_prepare_time(tmp_path, setting, value, size, largest):
    cfg = DataConfig(path=_images_npz(tmp_path, *size), augment={setting: value})
    with pytest.raises(ConfigError, match=rf"data.augment.{setting}: {value} does not fit the {size[0]}x{size[1]} images .*"
                                          rf"largest value that works is {largest}"):
        prepare(cfg)
    prepare(DataConfig(path=cfg.path, augment={setting: largest}))  # the value the message offers works


def test_augmenting_inputs_that_are_not_images_is_refused(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("a,label\n" + "".join(f"{i},{i % 2}\n" for i in range(30)))
    with pytest.raises(ConfigError, match=r"data.augment \(hflip\): augmentation applies to images.*a \(numeric\)"):
        prepare(DataConfig(path=str(csv), augment={"hflip": True}))


def _table(tmp_path, name, target):
    csv = tmp_path / name
    csv.write_text("a,y\n" + "".join(f"{i},{t}\n" for i, t in enumerate(target)))
    return str(csv)


def test_a_task_that_does_not_fit_the_target_is_said(tmp_path, caplog):
    # fit keeps the warnings for train to give once (prepare runs again in evaluate, report and resume)
    classes = _table(tmp_path, "classes.csv", [i % 4 for i in range(40)])
    [said] = prepare(DataConfig(path=classes, target="y", task="regression")).features.warnings
    assert "data.task is regression but the target 'y' holds only 4 distinct integers (0, 1, 2, 3)" in said
    amounts = _table(tmp_path, "amounts.csv", [round(0.37 * i, 2) for i in range(40)])
    [said] = prepare(DataConfig(path=amounts, target="y", task="classification", split={"val": 0, "test": 0})).features.warnings
    assert "data.task is classification but the target 'y' holds 40 distinct values, not whole numbers" in said
    scores = _table(tmp_path, "scores.csv", [3 + i % 6 for i in range(40)])  # wine-quality style scores: a fair regression
    assert prepare(DataConfig(path=scores, target="y", task="regression")).features.warnings == []
    assert prepare(DataConfig(path=classes, target="y", task="classification")).features.warnings == []
    assert "data.task" not in caplog.text


def test_a_split_that_cannot_be_stratified_says_so_on_the_forgeml_channel(tmp_path, caplog):
    labels = ["a"] * 20 + ["b"] * 20 + ["lonely"]
    csv = tmp_path / "t.csv"
    csv.write_text("x,label\n" + "".join(f"{i},{t}\n" for i, t in enumerate(labels)))
    load_columns(DataConfig(path=str(csv), split={"test": 0}))
    assert "data.split.stratify: class 'lonely' has fewer than 2 rows, so the split is not stratified" in caplog.text


def _libras_cfg(*sets):
    from forgeml.config import load_config

    return load_config("examples/libras-conv1d.yaml", list(sets)).data


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_libras_duplicates_stay_on_one_side_of_the_split_through_the_config(seed):
    from forgeml.data.groups import duplicate_groups

    def crossing(cfg):
        cols = load_columns(cfg)
        series = np.concatenate([c.data["series"] for c in cols.values()])  # (360, 45, 2)
        split_of = np.concatenate([[k] * len(c) for k, c in cols.items()])
        groups = duplicate_groups(series)
        return sum(len(set(split_of[groups == g])) > 1 for g in np.unique(groups))

    grouped = _libras_cfg(f"data.split.seed={seed}", "data.split.group=duplicates")
    assert crossing(grouped) == 0
    assert crossing(_libras_cfg(f"data.split.seed={seed}", "data.split.group=none")) > 0  # the leak the setting stops
    summary = prepare(grouped).features.summary
    assert "split: 30 groups of 2+ rows with identical inputs (60 rows), each kept within one split (data.split.group: duplicates)" in summary


def test_split_group_by_a_column_and_its_mistakes(tmp_path):
    csv = tmp_path / "visits.csv"
    csv.write_text("patient,value,label\n" + "".join(f"p{i // 4},{i},{i // 4 % 2}\n" for i in range(80)))
    cfg = DataConfig(path=str(csv), split={"group": "patient"}, drop=["patient"])
    cols = load_columns(cfg)
    patients = [set(c.data["patient"].tolist()) for c in cols.values()]
    assert sum(len(p) for p in patients) == 20 and len(set().union(*patients)) == 20  # each patient in one split only
    assert "20 groups of 2+ rows sharing a value of 'patient' (80 rows)" in prepare(cfg).features.summary
    with pytest.raises(ConfigError, match="data.split.group: 'patien' is neither none, duplicates nor a column of .*did you mean patient"):
        load_columns(DataConfig(path=str(csv), split={"group": "patien"}))
    with pytest.raises(ConfigError, match="data.split: split.group keeps groups whole by shuffling"):
        load_columns(DataConfig(path=str(csv), split={"group": "patient", "ordered": True}))
