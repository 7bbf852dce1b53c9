"""The Flower processes of one run on this machine: a SuperLink and a SuperNode per client, each started in its own
process group, on free ports bound to 127.0.0.1, with its log in <work>/logs. stop() ends every one of them and every
process they started (Flower's SuperExec detaches into a session of its own, so the process tree, read from /proc, is
what is killed, not only the groups). Every process carries FORGEML_FEDERATE_RUN=<id> in its environment, so a test can
check that none survives."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

MARK = "FORGEML_FEDERATE_RUN"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _children() -> dict[int, list[int]]:
    """parent pid -> child pids, from /proc (Linux); empty elsewhere (then only the process groups are ended)."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(pids: list[int]) -> set[int]:
    tree, out, todo = _children(), set(), list(pids)
    while todo:
        pid = todo.pop()
        for child in tree.get(pid, []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def marked(run_id: str) -> list[int]:
    """Live processes (not zombies) whose environment carries this run's mark."""
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read()
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"{MARK}={run_id}".encode() in env.split(b"\0") and state != "Z":
            found.append(int(entry))
    return found


class Fleet:
    """Started processes, stopped all together (a context manager: stop() on every exit path)."""

    def __init__(self, work: Path, run_id: str):
        self.work, self.run_id = work, run_id
        (work / "logs").mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        bin_dir = str(Path(sys.executable).parent)  # flower-* and flwr-* scripts sit beside this Python
        src = str(Path(__file__).resolve().parents[2])  # the folder holding forgeml, so Flower's processes import it
        self.env = {**os.environ, MARK: run_id, "FLWR_HOME": str(work / "flwr-home"),
                    "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
                    "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p),
                    "FLWR_TELEMETRY_ENABLED": "0", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.work / "logs" / f"{name}.log", "wb")
        try:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
                                    cwd=self.work, start_new_session=True)
        finally:
            log.close()
        self.procs[name] = proc
        return proc

    def dead(self) -> list[tuple[str, int]]:
        """(name, exit code) of the started processes that have exited."""
        return [(n, p.returncode) for n, p in self.procs.items() if p.poll() is not None]

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.work / "logs" / f"{name}.log"
        if not path.is_file():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self, name: str) -> None:
        """End one process and everything it started (a client dying mid-run, for instance)."""
        proc = self.procs[name]
        _end([proc.pid, *descendants([proc.pid])])
        proc.wait(timeout=10)

    def stop(self) -> None:
        for _ in range(3):  # a SuperExec may start a clientapp while the tree is read: look again
            alive = [p.pid for p in self.procs.values() if p.poll() is None]
            pids = set(alive) | descendants([p.pid for p in self.procs.values()]) | set(marked(self.run_id))
            pids.discard(os.getpid())
            if not pids:
                break
            _end(sorted(pids))
        for p in self.procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _end(pids: list[int], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL what is still there after `grace` seconds."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    end = time.monotonic() + grace
    while time.monotonic() < end and any(_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        try:
            os.kill(pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False
