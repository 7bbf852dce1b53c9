"""The report of an audio run: the worst mistakes as log-mel spectrograms and as players with each clip inlined (a
base64 WAV data URI), capped in number; explanations as heat maps over the spectrogram; in headless Chromium, every
player loads its clip."""

import base64
import io
import json
import re
import subprocess

import pytest

from forgeml.report.audio import MAX_CLIPS
from tests.audio_runs import RATE, SECONDS, audio_run
from tests.report.test_report import CHROMIUM, FLAGS

sf = pytest.importorskip("soundfile", reason="the audio extra is not installed: pip install 'forgeml[audio]'")
AUDIO = re.compile(r'<audio controls preload="metadata" src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"></audio>')


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = audio_run(tmp_path_factory.getbasetemp())
    return run, (run / "report.html").read_text()


def mistakes_shown(html: str) -> int:
    return int(re.search(r"Players for the first \d+ of these (\d+) mistakes", html).group(1))


def test_the_worst_mistakes_are_spectrograms_and_players_of_decodable_wavs(report):
    _, html = report
    assert 'alt="spectrograms of the worst mistakes"' in html
    n = mistakes_shown(html)
    clips = AUDIO.findall(html)
    assert len(clips) == min(n, MAX_CLIPS) > 0  # a player per mistake, up to the cap
    assert f"(at most {MAX_CLIPS}, each cut at" in html  # the page says so
    for b64 in clips:
        data, rate = sf.read(io.BytesIO(base64.b64decode(b64, validate=True)))
        assert rate == RATE and data.shape == (int(round(RATE * SECONDS)),)  # as the model heard it: resampled, cut/padded
        assert 0.85 < abs(data).max() <= 0.9 + 1e-3  # raised to 90% of full scale for listening


def test_the_cap_keeps_the_page_small(report, monkeypatch):
    from forgeml.report import audio as report_audio
    from forgeml.report.build import write_report

    run, html = report
    monkeypatch.setattr(report_audio, "MAX_CLIPS", 1)
    smaller = write_report(run).read_text()
    assert len(AUDIO.findall(smaller)) == 1 and "Players for the first 1 of these" in smaller
    assert len(smaller) < len(html)


def test_explanations_are_heat_maps_over_the_spectrogram(report):
    pytest.importorskip("captum", reason="the explain extra is not installed")
    _, html = report
    assert "Why: the worst mistakes explained" in html
    assert html.count('alt="heat map of path"') == mistakes_shown(html)


PROBE = """<script>addEventListener('load', () => { const players = [...document.querySelectorAll('audio')];
Promise.all(players.map(a => a.readyState >= 1 ? Promise.resolve() : new Promise(done => {
  a.addEventListener('loadedmetadata', done); a.addEventListener('error', done); a.load(); })))
.then(() => document.body.setAttribute('data-probe', JSON.stringify(players.map(a => a.duration)))); });</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed: apt-get install chromium (make test and .ci/run do it)")
def test_in_chromium_every_player_loads_its_clip(report, tmp_path):
    _, html = report
    probed = tmp_path / "probed.html"  # a copy with a probe script: the report itself has no JavaScript
    probed.write_text(html.replace("</body>", PROBE + "</body>"))
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
                          "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=120).stdout
    durations = json.loads(re.search(r'data-probe="([^"]+)"', dom).group(1).replace("&quot;", '"'))
    assert len(durations) == len(AUDIO.findall(html))
    assert all(d == pytest.approx(SECONDS, abs=0.01) for d in durations)  # each decoded: its length, not NaN or 0


def test_a_clip_gone_since_the_spectrograms_loses_its_player_not_the_section(report, tmp_path):
    import numpy as np

    import forgeml
    from forgeml.data.columns import Columns
    from forgeml.data.prepare import Split
    from forgeml.report.audio import audio_mistakes
    from tests.audio_runs import clip

    run, _ = report
    predictor = forgeml.load(run)
    copies = [tmp_path / f"{d}.wav" for d in "012"]
    for d, path in zip("012", copies):
        path.write_bytes(clip(d, "theo", 5).read_bytes())
    cols = Columns({"path": np.array([str(p) for p in copies], dtype=object)}, origin="clips")
    split = Split(x=predictor.features.transform_inputs(cols), y={}, raw=cols)
    copies[1].unlink()  # gone between the spectrograms and the players
    shown = audio_mistakes(predictor.features.inputs[0], split, np.array([2, 1, 0]), ["a", "b", "c"])
    assert [c.split("\n") for c, _ in shown["clips"]] == [["a", "2.wav"], ["c", "0.wav"]]
    assert "Players for the first 2 of these 3 mistakes" in shown["note"] and "1 clip(s) could not be read" in shown["note"]
