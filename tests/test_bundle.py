import pytest
import torch

from forgeml.bundle import FORMAT_VERSION, Bundle
from forgeml.errors import BundleError


def test_open_reports_missing_files(tmp_path):
    with pytest.raises(BundleError, match="no such run folder"):
        Bundle.open(tmp_path / "absent")
    run = tmp_path / "run"
    run.mkdir()
    b = Bundle(run)
    b.update_meta(status="interrupted", format_version=FORMAT_VERSION)
    with pytest.raises(BundleError, match="missing config.yaml, model.safetensors, features.json.*resume it"):
        Bundle.open(run)


def test_weights_round_trip_with_tied_tensors(tmp_path):
    b = Bundle(tmp_path)
    w = torch.randn(3, 4)
    b.save_weights({"a": w, "b": w})  # shared storage, as tied embeddings have
    back = b.load_weights()
    assert torch.equal(back["a"], w) and torch.equal(back["b"], w)
    assert not list(tmp_path.glob(".*tmp*")), "no temporary file left behind"


def test_damaged_weights_and_json_are_clear_errors(tmp_path):
    b = Bundle(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(BundleError, match="damaged"):
        b.load_weights()
    (tmp_path / "features.json").write_text("{")
    with pytest.raises(BundleError, match="not valid JSON"):
        b.read_json("features.json")


def test_history_skips_a_cut_line_and_truncates_after_resume(tmp_path):
    b = Bundle(tmp_path)
    for step in (1, 2, 3):
        b.append_history({"step": step})
    with open(tmp_path / "history.jsonl", "a") as fh:
        fh.write('{"step": 4, "lo')  # a crash mid-line
    assert [r["step"] for r in b.read_history()] == [1, 2, 3]
    b.truncate_history(2)
    assert [r["step"] for r in b.read_history()] == [1, 2]
