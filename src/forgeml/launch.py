"""`forgeml train CONFIG --nproc N`: the same command under torchrun, N processes on this machine.

forgeml does not start or connect the processes itself: it runs `python -m torch.distributed.run --standalone
--nproc-per-node N -m forgeml train ...` (PyTorch's own launcher and rendezvous) and waits. When a process dies,
torchrun stops the others (no hang) and exits non-zero; this says so in one line and names the resume command.
Rank 0 writes the run folder's path into FORGEML_RUN_FILE, so that command names the real folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from forgeml.training.distributed import RUN_FILE_ENV


def without_nproc(argv: list[str]) -> list[str]:
    """The command line minus --nproc N / --nproc=N: what each process runs."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def launch(nproc: int, argv: list[str], resume: str | None = None) -> int:
    """Run `forgeml ARGV` as `nproc` torchrun processes; their exit status (torchrun's)."""
    from forgeml.errors import ForgeError

    if nproc < 1:
        raise ForgeError(f"--nproc {nproc}: give a number of processes of 1 or more")
    run_file = Path(tempfile.mkstemp(prefix="forgeml-run-")[1])
    env = {**os.environ, RUN_FILE_ENV: str(run_file)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "--max-restarts=0",
           "-m", "forgeml", *without_nproc(argv)]
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches torchrun and the workers; we report after
    try:
        code = subprocess.call(cmd, env=env)
        run = run_file.read_text().strip() or resume
    finally:
        signal.signal(signal.SIGINT, previous)
        run_file.unlink(missing_ok=True)
    if code != 0:
        from rich.console import Console

        again = (f"; continue from its last checkpoint with  forgeml train --resume {run} --nproc {nproc}" if run else "")
        Console(stderr=True).print(f"[bold red]error:[/] the {nproc}-process training job stopped (torchrun exit status {code}; "
                                   f"the first error above says why){again}", highlight=False, soft_wrap=True)
    return code

