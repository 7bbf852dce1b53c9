"""One study in a real PostgreSQL server, worked on by two `forgeml tune` processes at once (as two machines
would: each with its own runs_dir). The server is Debian's PostgreSQL, started here as the postgres user in a
temporary folder on a free port; the test skips, saying why, where that cannot be done."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.tune.conftest import wine_config

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    psycopg2 = pytest.importorskip("psycopg2", reason="the PostgreSQL driver is missing: pip install psycopg2-binary")
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb): apt-get install postgresql")
    bindir = Path(found[-1]).parent
    try:
        pg = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no 'postgres' user to run the server as (PostgreSQL refuses to run as root)")
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("starting the server as the postgres user needs root and runuser")
    base = Path(tempfile.mkdtemp(prefix="forgeml-pg-"))
    os.chown(base, pg.pw_uid, pg.pw_gid)
    data, port = base / "data", _free_port()

    def as_postgres(*cmd: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True, timeout=120)

    try:
        as_postgres(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
        as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-w", "-t", "60", "start", "-o",
                    f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off")
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"the PostgreSQL server did not start: {exc.stderr.decode(errors='replace').strip()[-300:]}")
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE studies")
        conn.close()
        yield f"postgresql://postgres@127.0.0.1:{port}/studies"
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def test_a_process_and_this_one_share_one_postgres_study(postgres_url, tmp_path):
    """A `forgeml tune` process and this test's own forgeml.tune, each with its own runs_dir (as two machines), work
    on one study at once: the study ends with the total, trials from both."""
    import time

    import optuna

    import forgeml

    url = postgres_url.replace("postgresql://", "postgresql+psycopg2://")
    paths = {}
    for machine in ("a", "b"):
        (tmp_path / machine).mkdir()
        paths[machine] = wine_config(tmp_path / machine / "runs", tmp_path / machine, trials=5, pruner="none", epochs=3)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    other = subprocess.Popen([sys.executable, "-m", "forgeml", "tune", str(paths["a"]), "--storage", postgres_url, "--study", "shared"],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    from forgeml import pipeline
    from forgeml.config import load_config

    pipeline._val_metric_names(load_config(paths["b"]))  # while the other process starts: this one's imports and data, warm
    deadline = time.time() + 120
    while time.time() < deadline and other.poll() is None:  # until the other process has a trial running
        try:
            if optuna.load_study(study_name="shared", storage=url).get_trials(deepcopy=False):
                break
        except KeyError:  # no such study yet
            pass
        time.sleep(0.2)
    here = forgeml.tune(str(paths["b"]), storage=postgres_url, study="shared")
    out, err = other.communicate(timeout=300)
    assert other.returncode == 0, err
    assert "study shared: value = val.accuracy" in out
    trials = optuna.load_study(study_name="shared", storage=url).get_trials(deepcopy=False)
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(done) == 5 and here.counts["complete"] == 5  # the total, not 5 each
    workers = {t.user_attrs["worker"].split(":")[1] for t in done}
    assert workers == {str(other.pid), str(os.getpid())}  # both processes contributed trials
    assert {p.relative_to(tmp_path).parts[0] for p in tmp_path.glob("*/runs/shared-tune/trials/trial-*")} == {"a", "b"}
