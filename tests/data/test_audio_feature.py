"""The audio feature: decoding, mixdown, resampling, level, length, the saved settings, and bad files."""

import json

import numpy as np
import pytest

from forgeml.config import AudioConfig
from forgeml.data.features.audio import AudioFeature, decode_bytes, looks_like_audio
from forgeml.errors import DataError

sf = pytest.importorskip("soundfile")

CLIP = "data/spoken_digits/clips/4_jackson_5.wav"
QUIET = "data/spoken_digits/clips/4_theo_5.wav"  # theo's clips are recorded some 30 dB below jackson's


def settings(**kw) -> dict:
    return AudioConfig(**{"sample_rate": 8000, "n_fft": 256, "hop_length": 80, "n_mels": 40, **kw}).model_dump()


def tone(rate: int, seconds: float, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def spec(values, **kw) -> np.ndarray:
    return AudioFeature("path", settings(**kw)).spectrograms(np.array(values, dtype=object))


def test_fit_transform_shape_and_standardised():
    values = np.array([CLIP, QUIET], dtype=object)
    f = AudioFeature("path", settings()).fit(values)
    x = f.transform(values)
    assert x.shape == (2, 1, 40, 101) and x.dtype == np.float32
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3


def test_features_json_round_trip_gives_the_same_tensor(tmp_path):
    values = np.array([CLIP, QUIET], dtype=object)
    f = AudioFeature("path", settings(duration=0.7, align="start")).fit(values)
    first = f.transform(values)
    again = AudioFeature.from_json(json.loads(json.dumps(f.to_json())))
    assert again.settings == f.settings and again.shape == [1, 40, 71]
    np.testing.assert_array_equal(again.transform(np.array([CLIP, QUIET], dtype=object)), first)


def test_a_path_its_bytes_and_its_wave_give_one_spectrogram():
    raw = open(CLIP, "rb").read()
    wave, rate = decode_bytes(raw, "upload")
    assert rate == 8000 and wave.dtype == np.float32 and wave.ndim == 1
    x = spec([CLIP, raw, wave])
    np.testing.assert_allclose(x[0], x[1])
    np.testing.assert_allclose(x[0], x[2], atol=1e-4)


def test_normalise_levels_quiet_and_loud_recordings():
    loud, quiet = spec([CLIP, QUIET], normalise="none")
    assert loud.max() - quiet.max() > 15  # dB apart as recorded
    loud, quiet = spec([CLIP, QUIET], normalise="peak")
    assert abs(loud.max() - quiet.max()) < 6
    peak, rms = spec([CLIP], normalise="peak")[0], spec([CLIP], normalise="rms")[0]
    assert not np.allclose(peak, rms)


def test_resampling_to_the_feature_rate(tmp_path):
    sig = tone(16000, 0.5, 1000.0)
    sf.write(tmp_path / "a16k.wav", sig, 16000)
    sf.write(tmp_path / "a8k.wav", sig[::2].copy(), 8000)
    at16, at8 = spec([str(tmp_path / "a16k.wav"), str(tmp_path / "a8k.wav")])
    assert at16.shape == at8.shape
    assert np.argmax(at16.mean(-1)) == np.argmax(at8.mean(-1))  # the 1 kHz tone lands in the same mel band
    loud = at8 > at8.max() - 20  # the tone's bins: the same to a fraction of a dB (the filter only shapes the faint ones)
    np.testing.assert_allclose(at16[loud], at8[loud], atol=0.5)


def test_mixdown_mean_or_first_channel(tmp_path):
    stereo = np.stack([tone(8000, 0.5, 300.0), tone(8000, 0.5, 2500.0)], axis=1)
    sf.write(tmp_path / "st.wav", stereo, 8000)
    sf.write(tmp_path / "left.wav", stereo[:, 0].copy(), 8000)
    first, left = spec([str(tmp_path / "st.wav"), str(tmp_path / "left.wav")], mixdown="first", duration=0.5)
    np.testing.assert_allclose(first, left, atol=1e-3)
    mean = spec([str(tmp_path / "st.wav")], mixdown="mean", duration=0.5)[0]
    band = 32  # the mel band of 2.5 kHz (40 bands up to 4 kHz)
    assert np.median(mean[0, band]) > np.median(first[0, band]) + 40  # the right channel's tone is in the mean only


def test_duration_and_align_pad_or_crop(tmp_path):
    short = np.zeros(4000, dtype=np.float32)
    short[:400] = tone(8000, 0.05, 500.0)  # a burst at the very start of a half-second clip
    sf.write(tmp_path / "short.wav", short, 8000)
    start = spec([str(tmp_path / "short.wav")], duration=1.0, align="start")[0, 0]
    centre = spec([str(tmp_path / "short.wav")], duration=1.0, align="center")[0, 0]
    assert start.shape == (40, 101)
    assert np.argmax(start.mean(0)) < 10 and np.argmax(centre.mean(0)) > 20  # the burst moves by the pad before it
    assert spec([str(tmp_path / "short.wav")], duration=0.25, align="start").shape[-1] == 1 + 2000 // 80
    with pytest.raises(DataError, match="silence"):  # the centred quarter second keeps none of the burst: silence
        spec([str(tmp_path / "short.wav")], duration=0.25)


@pytest.mark.parametrize("rate, align", [(1000, "center"), (44100, "start"), (22050, "center"), (8000, "center")])
def test_a_long_clip_is_resampled_only_around_its_window(rate, align):
    """prepare_wave crops at the file's rate (with the filter's margin) before resampling: the same wave as
    resampling the whole clip and cropping it after, the level taken over the window it keeps."""
    from scipy.signal import resample_poly

    from forgeml.data.audio.decode import fit_length, normalise, prepare_wave, ratio

    s = settings(duration=0.5, align=align, normalise="peak")
    rng = np.random.default_rng(rate)
    wave = (0.1 * rng.standard_normal(rate * 7)).astype(np.float32)  # 7 s of noise, a loud burst outside the window
    wave[: rate // 10] *= 9
    up, down = ratio(rate, 8000, "x")
    whole = resample_poly(wave, up, down).astype(np.float32)
    expected = normalise(fit_length(whole, 4000, align), "peak", 1e-4, "x")
    got = prepare_wave(wave, rate, s, "x")
    assert got.shape == (4000,)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_a_column_of_audio_file_names_is_read_as_audio():
    assert looks_like_audio(np.array(["a.wav", "b/c.FLAC", "d.ogg"], dtype=object))
    assert not looks_like_audio(np.array(["a.wav", "hello"], dtype=object))
    assert looks_like_audio(np.array(["a.wav", None], dtype=object))  # still audio: the empty cell is an error later
    assert not looks_like_audio(np.array(["a.wav", 3.0], dtype=object))
    assert looks_like_audio(np.array(["a.wav", "", "  ", float("nan"), "b.flac"], dtype=object))  # blanks are missing
    assert not looks_like_audio(np.array(["", None], dtype=object))


def test_the_chunk_of_clips_fits_the_memory_budget(monkeypatch):
    from forgeml.data.features import audio

    short, long = AudioFeature("path", settings()), AudioFeature("path", settings(duration=60.0, sample_rate=48000,
                                                                                 n_fft=4096, hop_length=256))
    assert short.chunk == audio.MAX_CHUNK  # 1 s at 8 kHz: 256 clips are some 20 MB
    bins = 4096 // 2 + 1
    assert 1 <= long.chunk < 32 and long.chunk * bins * long.frames * 8 <= audio.CHUNK_BYTES
    values = np.array([CLIP, QUIET, CLIP], dtype=object)
    whole = short.spectrograms(values)
    monkeypatch.setattr(audio, "CHUNK_BYTES", 1)  # one clip per batch: the same spectrograms
    assert short.chunk == 1
    np.testing.assert_array_equal(short.spectrograms(values), whole)


# ------------------------------------------------------------------------------ bad input
def test_bad_files_are_data_errors_naming_the_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not a sound at all, just words\n" * 20)
    sf.write(tmp_path / "silent.wav", np.zeros(8000, dtype=np.float32), 8000)
    sf.write(tmp_path / "header_only.wav", np.zeros((0, 1), dtype=np.float32), 8000)
    sf.write(tmp_path / "odd_rate.wav", tone(7919, 0.3), 7919)
    sf.write(tmp_path / "many.wav", np.tile(tone(8000, 0.2)[:, None], (1, 12)), 8000)
    cases = {"empty.wav": "empty file", "text.wav": "cannot decode as audio", "silent.wav": "silence",
             "header_only.wav": "no samples", "odd_rate.wav": "7919 Hz", "many.wav": "12 channels",
             "missing.wav": "no such audio file"}
    for name, said in cases.items():
        with pytest.raises(DataError, match=said) as exc:
            spec([CLIP, str(tmp_path / name)])
        assert name in str(exc.value)
    assert spec([str(tmp_path / "silent.wav")], min_rms=0).shape == (1, 1, 40, 101)  # kept on request
    with pytest.raises(DataError, match="empty"):
        decode_bytes(b"", "upload")
    with pytest.raises(DataError, match="1-D"):
        spec([np.zeros((2, 100), dtype=np.float32)])


@pytest.mark.parametrize("change", [{"sample_rate": 16000}, {"n_fft": 512}, {"hop_length": 40}, {"n_mels": 64},
                                    {"top_db": 20.0}, {"duration": 0.8}, {"align": "start"}, {"normalise": "rms"}])
def test_every_setting_changes_the_spectrogram(change):
    base = spec([QUIET])
    other = spec([QUIET], **change)
    assert base.shape != other.shape or not np.allclose(base, other)


# ------------------------------------------------------------------------------ the folder source
def test_an_audio_folder_notes_what_it_skips_and_keeps_absolute_paths(tmp_path, caplog, monkeypatch):
    import logging
    import shutil

    from forgeml.data.audio.decode import audio_ext
    from forgeml.data.sources.audio import is_audio_folder, read_audio_folder

    root = tmp_path / "clips"
    for name in ("one", "two", "three"):
        (root / name).mkdir(parents=True)
    (root / "one" / "README.md").write_text("recorded in 2024\n")  # sorts first: it does not decide the folder's kind
    (root / "one" / "a.m4a").write_bytes(b"\x00" * 10)
    (root / "one" / ".DS_Store").write_bytes(b"\x00")
    shutil.copy(CLIP, root / "one" / "b.wav")
    shutil.copy(QUIET, root / "two" / "c.flac.wav")
    (root / "three" / "notes.txt").write_text("no clips yet\n")
    assert is_audio_folder(root)
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO, logger="forgeml"):
        cols = read_audio_folder("clips")
    assert list(cols.data["label"]) == ["one", "two"]
    assert all(p.startswith(str(tmp_path.resolve())) for p in cols.data["path"])  # absolute: readable from anywhere
    said = caplog.text
    assert "2 files of other types skipped" in said and ".m4a" in said and ".txt" in said
    assert "three" in said and "hold no audio files" in said
    assert (".mp3" in audio_ext()) == ("MP3" in sf.available_formats())
