"""Audio end to end: train from a table of clips and from a folder of class folders, predict from files, bytes and
waves (CLI and Python), and bad files that stop a run before its folder exists."""

import json
import shutil

import numpy as np
import pytest

import forgeml
from forgeml.cli import main
from tests.conftest import quick

sf = pytest.importorskip("soundfile")

SMALL = ["data.path=data/spoken_digits/small_train.csv", "data.test_path=data/spoken_digits/small_test.csv",
         "data.split.val=0.25"]
CLIP = "data/spoken_digits/clips/7_jackson_0.wav"


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", "examples/spoken-digits-cnn.yaml", *quick(runs, *SMALL, "train.epochs=2")]) == 0
    return runs / "spoken-digits-cnn"


def test_cli_trains_from_a_table_of_clips_and_predicts_a_wav_file(cnn_run, capsys):
    features = json.loads((cnn_run / "features.json").read_text())
    audio = features["inputs"][0]
    assert [f["name"] for f in features["inputs"]] == ["path"] and audio["kind"] == "audio"
    assert audio["settings"]["sample_rate"] == 8000 and audio["shape"] == [1, 40, 101]
    metrics = json.loads((cnn_run / "metrics.json").read_text())
    assert metrics["test"]["n"] == 20  # small_test.csv's 20 clips
    capsys.readouterr()
    assert main(["predict", str(cnn_run), CLIP, "data/spoken_digits/clips/3_theo_0.wav", "--json"]) == 0
    out = capsys.readouterr().out
    rows = [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")] or json.loads(out)
    assert len(rows) == 2 and all(r["label"] in list("0123456789") for r in rows)


def test_spec_augment_is_off_in_evaluation(cnn_run):
    """The example trains with freq_mask, time_mask and time_shift: the test metrics written at training time and
    two fresh passes of the Predictor over the same clips all agree, so no mask or shift reached an evaluation."""
    import csv

    model = forgeml.load(cnn_run)
    assert model.config.data.augment.freq_mask and model.config.data.augment.time_mask
    with open("data/spoken_digits/small_test.csv") as f:
        rows = list(csv.DictReader(f))
    clips = [{"path": "data/spoken_digits/" + r["path"]} for r in rows]
    first, second = model.predict(clips), model.predict(clips)
    assert [p["probabilities"] for p in first] == [p["probabilities"] for p in second]
    accuracy = np.mean([p["label"] == r["label"] for p, r in zip(first, rows)])
    metrics = json.loads((cnn_run / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] == pytest.approx(accuracy)


def test_predictor_takes_a_path_the_bytes_or_the_wave(cnn_run):
    model = forgeml.load(cnn_run)
    wave, rate = sf.read(CLIP, dtype="float32")
    assert rate == 8000
    by_path, by_bytes, by_wave = model.predict([{"path": CLIP}, {"path": open(CLIP, "rb").read()}, {"path": wave}])
    assert by_path["label"] == by_bytes["label"] == by_wave["label"]
    assert by_path["probabilities"] == pytest.approx(by_bytes["probabilities"])
    assert by_path["probabilities"] == pytest.approx(by_wave["probabilities"], abs=1e-4)
    bare = model.predict([CLIP, open(CLIP, "rb").read()])  # one audio input: raw clips without the column name
    assert [r["label"] for r in bare] == [by_path["label"]] * 2
    with pytest.raises(forgeml.errors.ForgeError, match="nothere.wav"):
        model.predict([{"path": "nothere.wav"}])


def test_a_folder_of_class_folders_trains_the_frames_encoder(runs, tmp_path):
    root = tmp_path / "digits"
    for name in ("0_jackson_5", "0_jackson_6", "0_theo_5", "0_theo_6", "1_jackson_5", "1_jackson_6", "1_theo_5", "1_theo_6"):
        (root / name[0]).mkdir(parents=True, exist_ok=True)
        shutil.copy(f"data/spoken_digits/clips/{name}.wav", root / name[0] / f"{name}.wav")
    config = tmp_path / "folder.yaml"
    config.write_text(f"""data:
  path: {root}
  split: {{val: 0.25, test: 0.25}}
  audio: {{sample_rate: 8000, n_fft: 256, hop_length: 160, n_mels: 16}}
  augment: {{time_mask: 5}}
model: {{name: frames, hidden: 8, layers: 1}}
train: {{max_steps: 2, batch_size: 4}}
""")
    assert main(["train", str(config), *quick(runs)]) == 0
    run = runs / "folder"
    features = json.loads((run / "features.json").read_text())
    assert features["inputs"][0]["kind"] == "audio" and features["outputs"][0]["classes"] == ["0", "1"]
    assert forgeml.load(run).predict([{"path": str(root / "1" / "1_theo_5.wav")}])[0]["label"] in ("0", "1")


def test_a_bad_clip_stops_training_before_the_run_folder_exists(runs, tmp_path, capsys):
    table = tmp_path / "clips.csv"
    shutil.copy("data/spoken_digits/small_train.csv", table)
    (tmp_path / "clips").mkdir()
    for line in table.read_text().splitlines()[1:]:
        shutil.copy(f"data/spoken_digits/{line.split(',')[0]}", tmp_path / line.split(",")[0])
    (tmp_path / "clips" / "4_theo_6.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")  # a broken header
    sf.write(tmp_path / "clips" / "2_theo_5.wav", np.zeros(4000, dtype=np.float32), 8000)  # silence
    for bad, said in (("4_theo_6.wav", "cannot decode as audio"), ("2_theo_5.wav", "silence")):
        rows = [line for line in table.read_text().splitlines() if "4_theo_6" not in line or bad == "4_theo_6.wav"]
        (tmp_path / "one_bad.csv").write_text("\n".join(r for r in rows if "2_theo_5" not in r or bad == "2_theo_5.wav") + "\n")
        code = main(["train", "examples/spoken-digits-cnn.yaml", *quick(runs, f"data.path={tmp_path / 'one_bad.csv'}",
                                                                        "data.test_path=null", "data.split.val=0.25",
                                                                        "data.split.test=0", "train.epochs=1")])
        err = capsys.readouterr().err
        assert code != 0 and bad in err and said in err
        assert not (runs / "spoken-digits-cnn").exists()
