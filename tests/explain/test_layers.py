"""explain/ sits under the faces: it never imports the pipeline, the CLI, serve or the report, nor Captum at import."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_explain_imports_only_downward():
    for path in (ROOT / "src/forgeml/explain").glob("*.py"):
        found = re.findall(r"^\s*(?:from|import) forgeml\.(pipeline|cli|serve|report|api)\b", path.read_text(), re.M)
        assert not found, f"{path.name} imports forgeml.{found[0]}"


def test_importing_the_predictor_does_not_import_captum():
    code = "import sys, forgeml.predictor, forgeml.explain; print('captum' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr
