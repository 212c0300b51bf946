"""Every Python snippet in README.md and docs/ runs as written."""

import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _snippets():
    for path in DOCS:
        for k, block in enumerate(re.findall(r"```python\n(.*?)```", path.read_text(), re.S)):
            yield pytest.param(block, id=f"{path.name}-{k}")


@pytest.mark.parametrize("code", list(_snippets()))
def test_snippet_runs(code):
    exec(compile(code, "<snippet>", "exec"), {})
