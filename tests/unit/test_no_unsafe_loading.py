"""Nothing pickled is ever loaded and nothing in a request is ever executed: checked on the AST."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*ROOT.joinpath("service").rglob("*.py"), *ROOT.joinpath("bench").rglob("*.py")])


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def is_constant(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def unsafe_calls(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = (
            func.id
            if isinstance(func, ast.Name)
            else func.attr
            if isinstance(func, ast.Attribute)
            else ""
        )
        owner = (
            func.value.id
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
            else ""
        )
        where = f"line {node.lineno}"
        if name in ("eval", "exec") and isinstance(func, ast.Name):
            found.append(f"{where}: {name}()")
        if owner in ("pickle", "cPickle", "dill", "joblib") and name in ("load", "loads"):
            found.append(f"{where}: {owner}.{name}()")
        if (
            owner == "torch"
            and name == "load"
            and not is_constant(keyword(node, "weights_only"), True)
        ):
            found.append(f"{where}: torch.load without weights_only=True")
        if (
            owner == "np"
            and name == "load"
            and not is_constant(keyword(node, "allow_pickle"), False)
        ):
            found.append(f"{where}: np.load without allow_pickle=False")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_source_never_loads_pickles_or_executes_code(path: Path) -> None:
    assert unsafe_calls(ast.parse(path.read_text(), filename=str(path))) == []


def test_the_checker_catches_each_unsafe_call() -> None:
    code = """
import pickle, torch, numpy as np
eval("1")
exec("x = 1")
pickle.loads(b"")
torch.load("w.pt")
torch.load("w.pt", weights_only=False)
np.load("a.npz")
torch.load("w.pt", weights_only=True)
np.load("a.npz", allow_pickle=False)
"""
    assert [line.split(": ", 1)[1] for line in unsafe_calls(ast.parse(code))] == [
        "eval()",
        "exec()",
        "pickle.loads()",
        "torch.load without weights_only=True",
        "torch.load without weights_only=True",
        "np.load without allow_pickle=False",
    ]
