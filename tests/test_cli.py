"""The command table, its help, and the README stay in sync."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from forgeml.cli import COMMANDS, build_parser


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_from_its_docstring(name, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([name, "--help"])
    out = capsys.readouterr().out
    assert COMMANDS[name].__doc__.splitlines()[0] in out
    assert "examples:" in out


def test_readme_tours_every_command():
    readme = Path("README.md").read_text()
    for name in COMMANDS:
        assert re.search(rf"forgeml {name}\b", readme), f"README does not show `forgeml {name}`"
    for target in ("make demo", "make test"):
        assert target in readme


def test_top_level_help_and_version():
    out = subprocess.run([sys.executable, "-m", "forgeml", "--help"], capture_output=True, text=True).stdout
    assert all(name in out for name in COMMANDS)
    assert "forgeml 0.1.0" in subprocess.run([sys.executable, "-m", "forgeml", "--version"], capture_output=True, text=True).stdout


def test_import_is_light():
    code = "import sys, forgeml; print(any(m in sys.modules for m in ('torch', 'pandas', 'sklearn', 'torchmetrics')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
