"""The try-it page of an audio model in headless Chromium, against a real server: a file chosen in the upload field
(DevTools' DOM.setFileInputFiles, as a user's file dialog would) and a microphone recording (Chromium's fake capture
device: a beeping tone), converted to WAV in the page and predicted by /v1/predict."""

import base64
import io
import time

import pytest

from tests.audio_runs import RATE, audio_run, clip
from tests.serve.test_page import Browser, needs_chromium
from tests.serve.tiny_server import app_for, serving

sf = pytest.importorskip("soundfile", reason="the audio extra is not installed: pip install 'forgeml[audio]'")
FAKE_MIC = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]  # a tone, permission granted


@pytest.fixture(scope="module")
def audio_page(tmp_path_factory):
    app = app_for(audio_run(tmp_path_factory.getbasetemp()))
    with serving(app) as url:
        yield app, url


@pytest.fixture
def browser(tmp_path):
    b = Browser(tmp_path / "profile", FAKE_MIC)
    yield b
    b.close()


def field(selector: str) -> str:
    return f"document.querySelector('#fields .field[data-kind=\"audio\"] {selector}')"


def predicted(browser) -> dict:
    browser.js("document.querySelector('#submit').click()")
    state = browser.wait_for("['done', 'error'].includes(document.querySelector('#result').dataset.state) && "
                             "document.querySelector('#result').dataset.state")
    assert state == "done", browser.js("document.querySelector('#error').textContent")
    return {"label": browser.js("document.querySelector('#result .label').textContent"),
            "bars": browser.js("document.querySelectorAll('#result .bar').length")}


@needs_chromium
def test_an_uploaded_wav_is_sent_as_it_is_and_predicted(audio_page, browser):
    app, url = audio_page
    browser.open(url + "/")
    browser.wait_for(field("input[type=file]") + " !== null")
    assert browser.js(field("button.record") + ".textContent") == "Record"
    wav = clip("7", "theo", 6)
    document = browser.send("DOM.getDocument", session=True)["root"]["nodeId"]
    node = browser.send("DOM.querySelector", session=True, nodeId=document, selector="#fields input[type=file]")["nodeId"]
    browser.send("DOM.setFileInputFiles", session=True, nodeId=node, files=[str(wav)])
    sent = browser.wait_for(field("input[type=file]") + ".dataset.base64")
    assert base64.b64decode(sent) == wav.read_bytes()  # a WAV goes to the server untouched
    assert browser.wait_for(field("audio.clip") + ".readyState >= 1 && " + field("audio.clip") + ".duration") > 0
    got = predicted(browser)
    expected = app.state.predictor.predict([{"path": str(wav)}])[0]
    assert got["label"] == expected["label"] and got["bars"] == len(expected["probabilities"])
    pytest.importorskip("captum", reason="the explain extra is not installed")
    browser.js("document.querySelector('#explain').click()")  # the spectrogram's heat map: bands up, frames across
    assert browser.wait_for("['done', 'error'].includes(document.querySelector('#explanation').dataset.state) && "
                            "document.querySelector('#explanation').dataset.state") == "done"
    _, n_mels, frames = app.state.predictor.features.inputs[0].shape
    assert browser.js("[document.querySelector('canvas.heat').width, document.querySelector('canvas.heat').height]") == [frames, n_mels]


@needs_chromium
def test_a_microphone_recording_becomes_a_wav_at_the_models_rate_and_is_predicted(audio_page, browser):
    _, url = audio_page
    browser.open(url + "/")
    browser.wait_for(field("button.record") + " !== null")
    browser.js(field("button.record") + ".click()")
    browser.wait_for(field("button.record") + ".textContent === 'Stop'")
    browser.wait_for(field(".status") + ".textContent.startsWith('recording…')")
    time.sleep(1.0)  # a second of the fake device's tone
    browser.js(field("button.record") + ".click()")
    browser.wait_for(field("input[type=file]") + ".dataset.state === 'recorded'", timeout=30)
    data = base64.b64decode(browser.js(field("input[type=file]") + ".dataset.base64"))
    wave, rate = sf.read(io.BytesIO(data))
    assert rate == RATE and wave.ndim == 1 and 0.5 * RATE < len(wave) < 10 * RATE  # mono 16-bit PCM at the model's rate
    assert abs(wave).max() > 0.01  # the tone, not silence
    assert browser.js(field("button.record") + ".textContent") == "Record"
    got = predicted(browser)
    assert got["label"] in set("0123456789")


@needs_chromium
def test_a_file_that_is_not_a_sound_is_said_on_the_page(audio_page, browser, tmp_path):
    _, url = audio_page
    browser.open(url + "/")
    browser.wait_for(field("input[type=file]") + " !== null")
    bad = tmp_path / "notes.wav"
    bad.write_bytes(b"RIFF but not really a wave file")
    document = browser.send("DOM.getDocument", session=True)["root"]["nodeId"]
    node = browser.send("DOM.querySelector", session=True, nodeId=document, selector="#fields input[type=file]")["nodeId"]
    browser.send("DOM.setFileInputFiles", session=True, nodeId=node, files=[str(bad)])
    browser.wait_for(field("input[type=file]") + ".dataset.base64")
    browser.js("document.querySelector('#submit').click()")
    browser.wait_for("document.querySelector('#result').dataset.state === 'error'")
    assert "cannot decode as a WAV, FLAC or OGG file" in browser.js("document.querySelector('#error').textContent")
    assert browser.js("document.querySelector('#fields .field[data-kind=\"audio\"]').classList.contains('bad')")
