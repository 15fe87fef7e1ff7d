"""The README's set-up commands that the rest of the suite does not run: opening the tutorials."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS_COMMAND = "uv run --with jupyterlab jupyter lab tutorials/"


def test_the_readme_says_how_to_open_the_tutorials():
    readme = (ROOT / "README.md").read_text()
    assert TUTORIALS_COMMAND in readme
    assert len(list((ROOT / "tutorials").glob("*.ipynb"))) >= 7


@pytest.mark.skipif(shutil.which("uv") is None, reason="needs uv (the README's set-up)")
def test_the_tutorials_command_starts_jupyterlab():
    # The same command, asking JupyterLab for its version instead of serving. --offline: the test
    # never downloads; where uv's cache lacks JupyterLab (the command's first run fetches it) it skips.
    argv = [*TUTORIALS_COMMAND.split()[:-1], "--version"]
    out = subprocess.run([argv[0], argv[1], "--offline", *argv[2:]], cwd=ROOT, capture_output=True, text=True, timeout=300)
    if out.returncode != 0 and re.search(r"offline|network|cache", out.stderr, re.I) and "jupyterlab" in out.stderr.lower():
        pytest.skip(f"JupyterLab is not in uv's cache and the test does not download ({out.stderr.strip().splitlines()[-1][:200]})")
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", out.stdout.strip().splitlines()[-1]), out.stdout
