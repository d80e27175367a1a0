"""The tests are sorted by kind: a unit test starts no stand-in, so it imports no stand-in module of ``sandbox``,
neither directly nor through a helper. A test that needs them belongs in ``tests/e2e`` (or in ``tests/contract``
when it checks a stand-in itself).
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
KINDS = ("unit", "contract", "e2e")
NOT_A_STAND_IN = {"sandbox.schemas"}  # a throw-away PostgreSQL schema: the storage tests' database, no server
STAND_IN_FIXTURES = {"bot_stack", "connector", "identity_server", "sandbox_tls", "trust_sandbox_ca", "demo"}


def _imports(path: Path) -> set[str]:
    """The absolute module names a file imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _reaches_the_stand_ins(module: str, seen: frozenset[str] = frozenset()) -> bool:
    """Whether a module is or imports a stand-in module, directly or through the test helpers."""
    if module.split(".")[0] == "sandbox":
        return module not in NOT_A_STAND_IN
    path = TESTS.parent / (module.replace(".", "/") + ".py")
    if not module.startswith("tests.") or module in seen or not path.is_file():
        return False
    return any(_reaches_the_stand_ins(name, seen | {module}) for name in _imports(path))


def _fixture_arguments(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        argument.arg
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for argument in node.args.args
    }


def test_every_kind_has_its_conftest_and_no_test_sits_outside_a_kind() -> None:
    assert all((TESTS / kind / "conftest.py").is_file() for kind in KINDS)
    assert sorted(path.name for path in TESTS.glob("test_*.py")) == []


def test_unit_tests_reach_no_stand_in() -> None:
    offenders = []
    for path in sorted((TESTS / "unit").glob("*.py")):
        through = sorted(name for name in _imports(path) if _reaches_the_stand_ins(name))
        fixtures = sorted(_fixture_arguments(path) & STAND_IN_FIXTURES)
        if through or fixtures:
            offenders.append(f"{path.name}: imports {through}, fixtures {fixtures}")
    assert offenders == [], "move these to tests/e2e: " + "; ".join(offenders)
