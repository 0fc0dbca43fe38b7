"""The README's Python example, taken from README.md and run as a user runs it: a script with no
`if __name__ == "__main__":` guard (the file loader must not start the script again)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, copy_tree

pytestmark = pytest.mark.slow


def readme_python_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("From Python:", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_readme_python_example_runs_as_a_script(home: Path, docs: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    copy_tree(docs, work / "docs")
    script = work / "example.py"
    script.write_text(readme_python_example(), encoding="utf-8")
    r = subprocess.run([sys.executable, str(script)], cwd=work, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "added" in r.stdout and "failed" in r.stdout  # the report's summary: good files in, bad ones listed
    assert "手册.pdf, p. 2" in r.stdout  # the annual-leave answer cites its page
    assert "bootstrapping" not in r.stderr
