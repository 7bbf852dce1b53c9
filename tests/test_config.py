import pytest

from forgeml.config import CNNConfig, Config, load_config
from forgeml.errors import ConfigError


def test_defaults_fill_every_section():
    cfg = load_config({})
    assert isinstance(cfg, Config)
    assert cfg.train.epochs == 10 and cfg.train.optimizer == "adamw"
    assert isinstance(cfg.model, CNNConfig)
    assert "batch_size" in cfg.to_yaml()


def test_overrides_are_typed_and_nested():
    cfg = load_config({}, ["train.lr=3e-4", "train.epochs=5", "model.name=mlp", "model.hidden=[32, 16]", "data.split.seed=7"])
    assert cfg.train.lr == pytest.approx(3e-4) and cfg.train.epochs == 5
    assert cfg.model.name == "mlp" and cfg.model.hidden == [32, 16]
    assert cfg.data.split.seed == 7


def test_list_item_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  name: cnn\n  blocks: [{channels: 8}, {channels: 16}]\n")
    cfg = load_config(path, ["model.blocks.1.channels=4"])
    assert [b.channels for b in cfg.model.blocks] == [8, 4]
    assert cfg.name == "c"  # from the file name


@pytest.mark.parametrize("override, expected", [
    ("train.epoch=3", "train.epoch: unknown key; did you mean train.epochs?"),
    ("data.split.vall=0.1", "did you mean data.split.val?"),
    ("train.lr=abc", "train.lr: got 'abc'"),
    ("train.optimizer=adamx", "'sgd', 'adam', 'adamw' or 'rmsprop'"),
    ("model.name=cnm", "did you mean cnn?"),
    ("trian.lr=1", "did you mean train?"),
])
def test_mistakes_name_the_field_the_value_and_the_fix(override, expected):
    with pytest.raises(ConfigError) as err:
        load_config({}, [override])
    assert expected in str(err.value)


def test_an_unknown_encoder_or_combiner_name_names_its_field_and_its_choices():
    composite = {"model": {"name": "composite", "encoders": {"sequence": {"name": "conv2d"}}}}
    with pytest.raises(ConfigError) as err:
        load_config(composite)
    assert ("model.encoders.sequence.name: 'conv2d' is not an encoder; choose one of tabular, cnn, rnn, transformer, "
            "conv1d, gru, lstm, pretrained, frames; did you mean conv1d?") in str(err.value)
    with pytest.raises(ConfigError, match="model.combiner.name: 'attn' is not a combiner; choose one of concat, transformer$"):
        load_config({"model": {"name": "composite", "combiner": {"name": "attn"}}})
    with pytest.raises(ConfigError, match="model.name: 'lstn' is not a model; choose one of mlp, .*lstm.*did you mean lstm"):
        load_config({}, ["model.name=lstn"])


def test_series_short_forms_are_models():
    assert load_config({}, ["model.name=conv1d"]).model.kernel_sizes == [8, 5, 3]
    assert load_config({}, ["model.name=lstm"]).model.cell == "lstm"
    assert load_config({}, ["model.name=gru", "model.hidden=16"]).model.hidden == 16


def test_cross_field_check():
    with pytest.raises(ConfigError, match="divisible by train.grad_accum"):
        load_config({}, ["train.batch_size=10", "train.grad_accum=3"])


def test_bad_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config({}, ["train.lr"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_every_field_is_described():
    from pydantic import BaseModel

    def walk(model):
        for name, field in model.model_fields.items():
            if name == "name" and model is not Config:
                continue
            assert field.description, f"{model.__name__}.{name} has no description"
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann)

    walk(Config)


def test_set_on_a_text_field_keeps_what_was_typed():
    # YAML would keep '\t' as backslash-t, turn ' ' and '#' into null and '2024' into a number
    assert load_config({}, ["data.sep=\\t"]).data.sep == "\t"
    assert load_config({}, ["data.sep= "]).data.sep == " "
    assert load_config({}, ["data.comment=#"]).data.comment == "#"
    assert load_config({}, ["name=2024"]).name == "2024"
    assert load_config({}, ["data.sep=;"]).data.sep == ";"
    assert load_config({"data": {"sep": ";"}}, ["data.sep=null"]).data.sep is None
    assert load_config({}, ["train.lr=3e-4"]).train.lr == 3e-4  # non-text fields still read YAML
    assert load_config({}, ["data.path=C:\\new\\x.csv"]).data.path == "C:\\new\\x.csv"
    assert load_config({}, ["data.label_aliases.a=1"]).data.label_aliases == {"a": "1"}
    assert load_config({}, ["data.quote_char='"]).data.quote_char == "'"
