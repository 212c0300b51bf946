"""The library leaves process-wide settings alone (DESIGN principles 7 and 8, and a PyTorch bug).

Changing torch's thread count down and up again corrupts later batched ``torch.linalg.solve`` results
on matrices of ~100 rows in PyTorch 2.13's CPU build (found while building thalia.mass.simulate);
global seeds and dtypes belong to the user; the library logs instead of printing.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "thalia"
FORBIDDEN = {
    "torch.set_num_threads",
    "torch.set_num_interop_threads",
    "torch.manual_seed",
    "torch.set_default_dtype",
    "np.random.seed",
    "numpy.random.seed",
    "random.seed",
    "print",
}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def offending_calls(source: str) -> list[str]:
    calls = (node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call))
    return [name for name in (_dotted(call.func) for call in calls) if name in FORBIDDEN]


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_process_wide_changes(path):
    assert offending_calls(path.read_text()) == []


def test_checker_catches_offenders():
    assert offending_calls("import torch\ntorch.set_num_threads(1)\nprint('x')") == ["torch.set_num_threads", "print"]
    assert offending_calls('"""torch.set_num_threads(1) in a docstring"""\ng = make()\ng.manual_seed(0)') == []
