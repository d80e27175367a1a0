"""Dependencies: every third-party import is declared in the right place, and the lock files pin what pyproject asks.

The production image installs ``requirements/prod.txt`` (no extras), so a module of the bot that imports a package
declared only for the stand-ins would crash in production while every test passes.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
FIRST_PARTY = {"bot", "cards", "sandbox", "tests", "bench", "docs", "manifest"}


def _requirements(group: str | None) -> list[Requirement]:
    project = PYPROJECT["project"]
    raw = project["dependencies"] if group is None else project["optional-dependencies"][group]
    return [Requirement(line) for line in raw]


def _declared(*groups: str | None) -> set[str]:
    names: set[str] = set()
    for group in groups:
        for requirement in _requirements(group):
            if canonicalize_name(requirement.name) == "rufpool":
                names |= _declared(*sorted(requirement.extras))
            else:
                names.add(canonicalize_name(requirement.name))
    return names


def _third_party_imports(paths: list[Path]) -> dict[str, set[str]]:
    """Top-level module name -> files importing it (absolute imports, outside the stdlib and this repository)."""
    found: dict[str, set[str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _python_files(*folders: str) -> list[Path]:
    return [path for folder in folders for path in (ROOT / folder).rglob("*.py")]


def _undeclared(paths: list[Path], declared: set[str]) -> list[str]:
    distributions = packages_distributions()
    problems = []
    for module, files in sorted(_third_party_imports(paths).items()):
        candidates = {canonicalize_name(name) for name in distributions.get(module, [module])}
        if not candidates & declared:
            problems.append(f"{module} (from {sorted(candidates)}) imported by {sorted(files)}")
    return problems


def test_the_bot_imports_only_its_runtime_dependencies() -> None:
    """What ships (bot/, cards/) runs on `dependencies` alone, without any extra."""
    production = _python_files("bot", "cards")
    production = [path for path in production if path.name != "packaging.py"]  # `make package`: the package extra
    assert _undeclared(production, _declared(None)) == []


def test_every_other_import_is_declared_in_an_extra() -> None:
    everything = _python_files("bot", "cards", "sandbox", "tests", "bench", "docs", "manifest")
    assert _undeclared(everything, _declared(None, "dev")) == []


def _lock(name: str) -> dict[str, str]:
    text = (ROOT / "requirements" / name).read_text(encoding="utf-8")
    return {canonicalize_name(m[1]): m[2] for m in re.finditer(r"^([A-Za-z0-9._-]+)==(\S+)", text, re.MULTILINE)}


@pytest.mark.parametrize(("lock", "groups"), [("prod.txt", (None,)), ("dev.txt", (None, "dev"))])
def test_lock_files_pin_every_declared_dependency_within_its_bounds(lock: str, groups: tuple[str | None, ...]) -> None:
    """Stale lock files (pyproject edited, `make lock` not run) fail here instead of installing something else."""
    pinned = _lock(lock)
    problems = []
    for group in groups:
        for requirement in _requirements(group):
            name = canonicalize_name(requirement.name)
            if name == "rufpool":
                continue
            if name not in pinned:
                problems.append(f"{name} is not pinned in requirements/{lock}")
            elif not requirement.specifier.contains(pinned[name], prereleases=True):
                problems.append(f"{name}=={pinned[name]} does not satisfy {requirement.specifier}")
    assert problems == [], "run `make lock`: " + "; ".join(problems)


def test_production_lock_holds_no_stand_in_or_test_package() -> None:
    # (pillow is a runtime dependency: the bot renders the stats card's chart.)
    assert {"jsonschema", "pytest", "playwright", "uv"} & set(_lock("prod.txt")) == set()
