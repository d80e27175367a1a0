"""The product ships without the stand-ins: the wheel and the image hold `bot` and `cards` only, and neither imports
`sandbox` (the local Graph, Bot Connector, identity and Placetel stand-ins and the demo; one of them mints tokens).
"""

from __future__ import annotations

import ast
import re
import tomllib
from fnmatch import fnmatchcase
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("bot", "cards")
NEVER_SHIPPED = ("sandbox", "tests", "bench")


def _packages_on_disk(folder: Path, prefix: str = "") -> list[str]:
    """Dotted names of the folders setuptools' discovery walks: those with an ``__init__.py`` under a package."""
    names = []
    for child in sorted(folder.iterdir()):
        if (child / "__init__.py").is_file():
            names += [prefix + child.name, *_packages_on_disk(child, f"{prefix}{child.name}.")]
    return names


def _wheel_packages() -> list[str]:
    """The packages `pip install .` puts in the wheel: setuptools matches `packages.find` patterns with fnmatchcase."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert set(config) <= {"packages", "package-data"}  # no `py-modules` or explicit package list beside the finder
    find = config["packages"]["find"]

    def matches(name: str, patterns: list[str]) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in patterns)

    return [
        name
        for name in _packages_on_disk(ROOT)
        if matches(name, find.get("include", ["*"])) and not matches(name, find.get("exclude", []))
    ]


def test_the_wheel_holds_the_product_packages_and_no_stand_in() -> None:
    assert {"sandbox", "tests"} <= set(_packages_on_disk(ROOT))  # packages the finder would take if let in
    packages = _wheel_packages()
    assert {"bot", "bot.teams", "bot.graph", "cards"} <= set(packages)
    assert [name for name in packages if name.split(".")[0] not in PRODUCT] == []


def test_the_image_copies_the_product_only() -> None:
    copied = re.findall(r"^COPY (?!--from)(\S+)", (ROOT / "Dockerfile").read_text(encoding="utf-8"), re.MULTILINE)
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = [line[1:] for line in ignore if line.startswith("!")]  # an allow-list after `*`
    for source in copied + allowed:
        assert source.rstrip("/").split("/")[0] not in NEVER_SHIPPED, source
    assert {"bot", "cards"} <= {source.rstrip("/") for source in copied}


def _first_party_imports(path: Path) -> set[str]:
    """Top-level names of the absolute imports of one module."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_product_imports_nothing_that_does_not_ship() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {sorted(_first_party_imports(path) & set(NEVER_SHIPPED))}"
        for package in PRODUCT
        for path in sorted((ROOT / package).rglob("*.py"))
        if _first_party_imports(path) & set(NEVER_SHIPPED)
    ]
    assert offenders == []
