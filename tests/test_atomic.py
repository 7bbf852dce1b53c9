"""Files written through forgeml.atomic: whole or not at all, with the permissions any new file gets."""

from __future__ import annotations

import os
import stat

import forgeml


def test_every_file_of_a_fresh_bundle_follows_the_umask(runs):
    old = os.umask(0o022)
    try:
        run = forgeml.train("examples/wine-regression.yaml", {"runs_dir": str(runs), "train.epochs": 1, "data.limit": 300,
                                                              "train.progress": False, "train.tensorboard": False})
    finally:
        os.umask(old)
    modes = {str(p.relative_to(run)): oct(stat.S_IMODE(p.stat().st_mode)) for p in run.rglob("*") if p.is_file()}
    assert {"model.safetensors", "checkpoints/best.safetensors", "checkpoints/last.pt"} <= set(modes)
    assert modes == {name: "0o644" for name in modes}
