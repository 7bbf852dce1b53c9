"""POST /v1/predict and /v1/explain with a sound, through a real uvicorn server on 127.0.0.1: base64 WAV/FLAC/OGG file
bytes in JSON, or the file in a multipart form; a 400 naming the field for bytes that do not decode, a 413 for a clip
whose decoded length is past the request's budget, a 422 for silence."""

import base64
import io

import numpy as np
import pytest

from tests.audio_runs import RATE, SECONDS, audio_run, clip
from tests.serve.conftest import httpx, running

sf = pytest.importorskip("soundfile", reason="the audio extra is not installed: pip install 'forgeml[audio]'")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from forgeml.serve.app import create_app

    app = create_app(audio_run(tmp_path_factory.getbasetemp()))
    with running(app) as (url, _):
        yield app, url


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def encoded(path, fmt: str, subtype: str | None = None) -> bytes:
    """A recording re-encoded as FLAC or OGG/Vorbis in memory."""
    wave, rate = sf.read(str(path), dtype="float32")
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def post(url: str, body) -> httpx.Response:
    return httpx.post(url + "/v1/predict", json=body, timeout=60)


def test_wav_flac_and_ogg_bytes_predict_as_the_file_does(served):
    app, url = served
    wav = clip("2", "theo", 5)
    expected = app.state.predictor.predict([{"path": str(wav)}])[0]
    answer = post(url, {"instances": [{"path": b64(wav.read_bytes())}, {"path": b64(encoded(wav, "FLAC"))}]})
    assert answer.status_code == 200, answer.text
    wav_p, flac_p = answer.json()["predictions"]
    assert wav_p["label"] == flac_p["label"] == expected["label"]
    for p in (wav_p, flac_p):  # FLAC is lossless: the very same samples, the very same probabilities
        assert p["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-5)
    ogg = post(url, {"path": "data:audio/ogg;base64," + b64(encoded(wav, "OGG", "VORBIS"))})  # one bare row, a data: URL
    assert ogg.status_code == 200, ogg.text
    assert set(ogg.json()["predictions"][0]["probabilities"]) == set(expected["probabilities"])


def test_a_clip_at_another_rate_predicts_as_the_predictor_reads_its_bytes(served):
    from scipy.signal import resample_poly

    app, url = served
    wave, rate = sf.read(str(clip("5", "jackson", 0)), dtype="float32")
    buf = io.BytesIO()  # 16 kHz stereo, 24-bit: the server decodes and resamples it once, before the batch
    sf.write(buf, np.stack([resample_poly(wave, 2, 1)] * 2, axis=1), 2 * rate, format="WAV", subtype="PCM_24")
    expected = app.state.predictor.predict([{"path": buf.getvalue()}])[0]  # the feature's own path from the bytes
    answer = post(url, {"instances": [{"path": b64(buf.getvalue())}]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-5)


def test_a_multipart_upload_is_the_same_file(served):
    app, url = served
    wav = clip("0", "jackson", 6)
    answer = httpx.post(url + "/v1/predict", files={"path": ("zero.wav", wav.read_bytes(), "audio/wav")}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["label"] == app.state.predictor.predict([{"path": str(wav)}])[0]["label"]


@pytest.mark.parametrize("value, status, says", [
    ("not base64 at all!", 400, "not valid base64"),
    (b64(b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(40)), 400, "cannot decode as a WAV, FLAC or OGG file"),
    (b64(b"%PNG\r\n\x1a\n" + bytes(100)), 400, "cannot decode as a WAV, FLAC or OGG file"),
    ("", 422, "at least 1 character"),
    (12, 422, "string"),
])
def test_bytes_that_are_not_a_sound_name_the_field(served, value, status, says):
    _, url = served
    good = b64(clip("1", "theo", 0).read_bytes())
    answer = post(url, {"instances": [{"path": good}, {"path": value}]})
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["field"] == "instances[1].path" and says in body["error"]


def test_silence_decodes_but_is_refused_as_silence(served):
    _, url = served
    buf = io.BytesIO()
    sf.write(buf, np.zeros(int(RATE * SECONDS), dtype=np.float32), RATE, format="WAV", subtype="PCM_16")
    answer = post(url, {"instances": [{"path": b64(buf.getvalue())}]})
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "instances[0].path" and "silen" in answer.json()["error"]


def test_a_clip_with_more_channels_than_the_feature_mixes_down_is_a_422(served):
    _, url = served
    buf = io.BytesIO()
    sf.write(buf, np.full((800, 9), 0.1, dtype=np.float32), RATE, format="WAV", subtype="PCM_16")
    answer = post(url, {"path": b64(buf.getvalue())})
    assert answer.status_code == 422 and answer.json()["field"] == "path" and "9 channels" in answer.json()["error"]


def test_a_small_flac_of_hours_of_sound_is_refused_before_it_is_decoded(served):
    from forgeml.serve.audio import MAX_AUDIO_SAMPLES

    _, url = served
    buf = io.BytesIO()  # silence compresses to almost nothing: a few hundred kilobytes for more than the budget
    sf.write(buf, np.zeros(MAX_AUDIO_SAMPLES + 8000, dtype=np.int16), 8000, format="FLAC")
    assert len(buf.getvalue()) < 2_000_000
    answer = post(url, {"instances": [{"path": b64(buf.getvalue())}]})
    assert answer.status_code == 413, answer.text
    assert answer.json()["field"] == "instances[0].path" and "decoded samples" in answer.json()["error"]


def test_a_long_clip_at_a_low_rate_is_counted_at_the_feature_rate(served):
    from forgeml.serve.audio import MAX_AUDIO_SAMPLES

    _, url = served
    buf = io.BytesIO()  # 1 kHz: under the budget as decoded, 8 times over it once resampled to the feature's 8 kHz
    sf.write(buf, np.zeros(MAX_AUDIO_SAMPLES - 1000, dtype=np.int16), 1000, format="FLAC")
    answer = post(url, {"instances": [{"path": b64(buf.getvalue())}]})
    assert answer.status_code == 413, answer.text
    assert answer.json()["field"] == "instances[0].path" and "1000 Hz" in answer.json()["error"]


def test_the_sample_budget_counts_every_clip_of_a_request():
    from forgeml.serve.audio import AudioBudget, checked_length
    from forgeml.serve.schema import ImageDecodeError

    wav = clip("1", "theo", 6).read_bytes()
    budget = AudioBudget(limit=2 * sf.info(io.BytesIO(wav)).frames)
    for i in range(2):  # two clips fit
        checked_length(wav, f"instances[{i}].path", ImageDecodeError, budget)
    with pytest.raises(ImageDecodeError) as refused:  # the third crosses the budget, and is the one named
        checked_length(wav, "instances[2].path", ImageDecodeError, budget)
    assert refused.value.status == 413 and refused.value.field == "instances[2].path"


def test_the_model_description_gives_the_rate_and_the_docs_an_example(served):
    _, url = served
    model = httpx.get(url + "/v1/model", timeout=30).json()
    (entry,) = model["inputs"]
    assert entry["kind"] == "audio" and entry["sample_rate"] == RATE and entry["duration"] == SECONDS
    example = httpx.get(url + "/openapi.json", timeout=30).json()["paths"]["/v1/predict"]["post"]["requestBody"]
    data = base64.b64decode(example["content"]["application/json"]["example"]["instances"][0]["path"])
    assert sf.info(io.BytesIO(data)).samplerate == RATE  # the warm-up row: a WAV at the model's rate


def test_explain_gives_a_heat_map_over_the_spectrogram(served):
    pytest.importorskip("captum", reason="the explain extra is not installed")
    app, url = served
    answer = httpx.post(url + "/v1/explain", json={"instances": [{"path": b64(clip("2", "jackson", 5).read_bytes())}]},
                        timeout=120)
    assert answer.status_code == 200, answer.text
    e = answer.json()["explanations"][0]
    heat = np.asarray(e["attributions"]["path"])
    _, n_mels, frames = app.state.predictor.features.inputs[0].shape
    assert heat.shape == (n_mels, frames) and np.abs(heat).sum() > 0
    assert heat.sum() == pytest.approx(e["score"] - e["baseline"], abs=max(0.05, abs(e["delta"]) * 2 + 0.02))
