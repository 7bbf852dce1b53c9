"""What a user sees when something around the run is wrong: one line saying what, where and how to fix
it, exit 2, never a traceback; a reader that closes the pipe early ends the command quietly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import forgeml
from forgeml.cli import main
from tests.conftest import quick

QUIET = {"train.progress": False, "train.tensorboard": False}


@pytest.fixture(scope="module")
def wine_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return forgeml.train("examples/wine-regression.yaml", {"runs_dir": str(runs), "train.max_steps": 3, **QUIET})


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return forgeml.train("examples/shakespeare-gpt.yaml", {
        "runs_dir": str(runs), "train.max_steps": 2, "train.warmup_steps": 0, "train.eval_batches": 1, **QUIET,
        "model.n_layer": 1, "model.n_embd": 32, "model.n_head": 2})


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


def read_only(run: Path, *names: str) -> None:
    """Make a run folder unwritable. chmod stops no one when the tests run as root: then a folder takes the
    place of each file that would be written, which no user can write a file onto either."""
    for path in [run, *run.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    probe = run / ".probe"
    try:
        probe.write_text("")
    except OSError:
        return
    probe.unlink()
    for name in names:
        (run / name).unlink(missing_ok=True)
        (run / name / "in-the-way").mkdir(parents=True)


@pytest.fixture
def ro_run(wine_run, tmp_path):
    run = Path(shutil.copytree(wine_run, tmp_path / "ro"))
    read_only(run, "metrics.json", "report.html")
    yield run
    for path in [run, *run.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)  # let pytest clean up


def forgeml_cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "forgeml", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_a_runs_dir_that_cannot_be_written(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    runs = tmp_path / "a-file" / "runs"  # a path through a regular file: unwritable for root too
    assert main(["train", "examples/wine-regression.yaml", *quick(runs, "train.max_steps=1")]) == 2
    line = one_line(capsys.readouterr().err)
    assert str(runs) in line and "not a folder" in line and "--set runs_dir=" in line


def test_evaluate_on_a_read_only_run_still_prints_the_metrics(ro_run, capsys):
    assert main(["evaluate", str(ro_run)]) == 2
    out, err = capsys.readouterr()
    assert "rmse" in out and "test" in out  # measured and shown
    line = one_line(err)
    assert str(ro_run / "metrics.json") in line and "not saved" in line and "writable" in line


def test_report_on_a_read_only_run(ro_run, capsys):
    assert main(["report", str(ro_run)]) == 2
    line = one_line(capsys.readouterr().err)
    assert str(ro_run / "report.html") in line and "writable" in line


def test_compare_out_to_a_path_that_cannot_be_written(wine_run, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    out = tmp_path / "a-file" / "compare.html"
    assert main(["compare", str(wine_run), str(wine_run), "--out", str(out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert str(out) in line and "--out FILE" in line


def test_an_unknown_device_lists_the_valid_ones(tmp_path, capsys):
    assert main(["train", "examples/wine-regression.yaml", *quick(tmp_path, "train.device=gpu")]) == 2
    line = one_line(capsys.readouterr().err)
    assert "train.device: 'gpu'" in line and "auto, cpu, cuda, cuda:N, mps" in line
    if not torch.cuda.is_available():
        assert "no GPU is visible" in line


def test_evaluate_a_file_of_random_bytes(wine_run, tmp_path, capsys):
    junk = tmp_path / "junk.csv"
    junk.write_bytes(os.urandom(4000))
    assert main(["evaluate", str(wine_run), "--data", str(junk)]) == 2
    assert str(junk) in one_line(capsys.readouterr().err)


def test_library_warnings_only_with_verbose(tmp_path):
    # a test file with a single class: torchmetrics warns that AUROC's false positive rate means nothing
    run = forgeml.train("examples/adult-mlp.yaml", {"runs_dir": str(tmp_path), "data.limit": 500, "train.max_steps": 1, **QUIET})
    import gzip

    rows = [line for line in gzip.open("data/adult/adult.data.gz", "rt") if "<=50K" in line][:20]
    one_class = tmp_path / "one-class.csv"
    one_class.write_text("".join(rows))
    quiet = subprocess.run([sys.executable, "-m", "forgeml", "evaluate", str(run), "--data", str(one_class)], capture_output=True)
    assert quiet.returncode == 0 and quiet.stderr == b""
    verbose = subprocess.run([sys.executable, "-m", "forgeml", "evaluate", str(run), "--data", str(one_class), "--verbose"],
                             capture_output=True, text=True)
    err = verbose.stderr
    assert verbose.returncode == 0 and "warning: No negative samples in targets" in err and "warnings.warn" not in err  # one line, no source echo


def test_predict_into_a_pipe_closed_early(wine_run, tmp_path):
    rows = Path("data/wine_quality/winequality-white.csv").read_text().splitlines()
    many = tmp_path / "many.csv"
    many.write_text("\n".join([rows[0]] + rows[1:] * 2) + "\n")  # ~9,800 JSON lines: more than a pipe holds
    proc = forgeml_cli("predict", str(wine_run), str(many), "--json")
    assert proc.stdout.readline().startswith(b'{"input"')  # | head -1
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert proc.stderr.read() == b""


def test_a_pipe_closed_before_anything_is_written(wine_run, tmp_path):
    # the output fits Python's buffer: it is written at the very end, when the reader is long gone
    few = tmp_path / "few.csv"
    few.write_text("\n".join(Path("data/wine_quality/winequality-white.csv").read_text().splitlines()[:4]) + "\n")
    proc = forgeml_cli("predict", str(wine_run), str(few), "--json")
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert proc.stderr.read() == b""


def test_generate_into_a_pipe_closed_early(lm_run):
    proc = forgeml_cli("generate", str(lm_run), "--prompt", "ROMEO: " * 12000, "--max-new-tokens", "5", "--seed", "0")
    assert len(proc.stdout.read(5)) == 5  # | head -c 5
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert proc.stderr.read() == b""


def test_generate_help_shows_the_stop_example_as_typed(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    assert '--stop "\\n\\n"' in capsys.readouterr().out


def test_stop_understands_backslash_n(lm_run, capsys):
    assert main(["generate", str(lm_run), "--max-new-tokens", "300", "--seed", "0", "--quiet-prompt", "--stop", "\\n"]) == 0
    assert "\n" not in capsys.readouterr().out.rstrip("\n")
