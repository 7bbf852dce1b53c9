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


def test_cli_never_imports_an_extra_it_does_not_use():
    """Each stage's heavy library is imported inside the function that needs it: building the CLI (every
    command's parser) and `forgeml --help` import none of them."""
    extras = ("onnxruntime", "fastapi", "uvicorn", "optuna", "transformers", "captum", "opacus", "flwr")
    code = ("import sys, forgeml.cli, contextlib, io\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit): forgeml.cli.main(['--help'])\n"
            f"print([m for m in {extras!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def readme_commands() -> list[tuple[list[str], bool]]:
    """Every `forgeml ...` command line inside the README's code blocks, and whether the README shows
    it failing (its next line starts with 'error:')."""
    import shlex

    text = Path("README.md").read_text()
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    commands = []
    for block in blocks:
        lines = [line.strip().removeprefix("$ ") for line in block.splitlines()]
        for i, line in enumerate(lines):
            if line.startswith("forgeml "):
                line = line.split("  #")[0].split(" | ")[0]
                fails = i + 1 < len(lines) and lines[i + 1].startswith("error:")
                commands.append((shlex.split(line)[1:], fails))
    return commands


def test_every_readme_command_parses_and_its_config_overrides_are_valid():
    from forgeml.config import load_config
    from forgeml.errors import ForgeError

    commands = readme_commands()
    assert len(commands) >= 15 and any(fails for _, fails in commands)
    parser = build_parser()
    for argv, fails in commands:
        args = parser.parse_args(argv)  # exits (fails the test) on a flag the CLI does not have
        made_by_a_run = str(getattr(args, "config", "") or "").startswith("runs/")  # e.g. a study's best.yaml
        if args.command in ("train", "config") and getattr(args, "config", None) and not made_by_a_run:
            if fails:  # the README shows this one as a mistake: it must be one
                with pytest.raises(ForgeError):
                    from forgeml.data.prepare import prepare

                    prepare(load_config(args.config, args.set).data)
            else:
                load_config(args.config, args.set)  # a misspelt --set key in the README fails here


def test_config_show_reads_a_tab_and_a_space_separator(capsys):
    from forgeml.cli import main

    assert main(["config", "show", "examples/adult-mlp.yaml", "--set", "data.sep=\\t"]) == 0
    assert "sep: \"\\t\"" in capsys.readouterr().out
    assert main(["config", "show", "examples/adult-mlp.yaml", "--set", "data.sep= "]) == 0
    assert "sep: ' '" in capsys.readouterr().out
