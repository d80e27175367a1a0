"""The docs against the code: every setting, command, module and make target they name exists.

README.md, docs/*.md and infra/README.md are read as an admin reads them. A setting in a configuration table must
be a field of :class:`bot.config.Settings`; any other upper-case name in backticks (``LINK_ALLOW_TEAM_OWNERS``)
must at least occur in the code; every ``@Rufpool <word>`` must be a command, every ``python -m <module>`` an
importable module (with its sub-command), every ``make <target>`` a target of the Makefile.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from bot.config import Settings
from bot.core.commands import ALIASES

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", ROOT / "infra" / "README.md", *(ROOT / "docs").glob("*.md")])
CODE = [
    path
    for folder in ("bot", "cards", "sandbox", "bench", "tests", "manifest", "infra", ".ci")
    for path in (ROOT / folder).rglob("*")
    if path.is_file()
    and path.suffix in {".py", ".bicep", ".ps1", ".json", ".js", ".sh", ""}
    and path != Path(__file__).resolve()
] + [ROOT / "Makefile", ROOT / "Dockerfile", ROOT / "pyproject.toml"]

SETTING_NAME = re.compile(r"`((?:Microsoft[A-Z]\w+)|(?:[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+))(?:=[^`]*)?`")
TABLE_SETTING = re.compile(r"^\| `([A-Za-z_][A-Za-z0-9_]*)` \|", re.MULTILINE)
MENTION_COMMAND = re.compile(r"@Rufpool ([^\s`<‹,.)]+)")
PYTHON_MODULE = re.compile(r"python -m ([a-z_][\w.]*)(?: ([a-z]+))?")
MAKE_TARGET = re.compile(r"(?:`|^\s*)make ([a-z][\w-]*)", re.MULTILINE)


def settings_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.add(name.upper())
        names.update(str(choice) for choice in getattr(alias, "choices", []))
    return names


def code_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace") for path in CODE)


def doc_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _config_tables(text: str) -> list[str]:
    """The setting names in the first column of the configuration tables (headed "setting" / "Einstellung")."""
    names: list[str] = []
    for table in re.findall(r"^\| (?:setting|Einstellung) \|.*?(?=\n\n|\Z)", text, re.MULTILINE | re.DOTALL):
        names.extend(TABLE_SETTING.findall(table))
    return names


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_configuration_tables_name_real_settings(path: Path) -> None:
    unknown = sorted(set(_config_tables(doc_text(path))) - settings_names())
    assert unknown == []


def test_the_admin_guides_configuration_tables_are_found() -> None:
    for guide in ("admin-guide.en.md", "admin-guide.de.md"):
        assert "MicrosoftAppType" in _config_tables(doc_text(ROOT / "docs" / guide))


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_setting_like_name_exists(path: Path) -> None:
    code, settings = code_text(), settings_names()
    named = set(SETTING_NAME.findall(doc_text(path)))
    unknown = sorted(name for name in named if name not in settings and not re.search(rf"\b{name}\b", code))
    assert unknown == []


def test_an_invented_setting_is_caught() -> None:
    code = code_text()
    assert "LINK_ALLOW_TEAM_OWNERS" in SETTING_NAME.findall("unless `LINK_ALLOW_TEAM_OWNERS=false`")
    assert not re.search(r"\bLINK_ALLOW_TEAM_OWNERS\b", code) and "LINK_ALLOW_TEAM_OWNERS" not in settings_names()


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_command_exists(path: Path) -> None:
    words = {word.lstrip("/").lower() for word in MENTION_COMMAND.findall(doc_text(path))}
    assert sorted(words - set(ALIASES)) == []


@pytest.mark.parametrize("path", [*DOCS, ROOT / "Dockerfile"], ids=lambda path: str(path.relative_to(ROOT)))
def test_every_python_module_and_subcommand_exists(path: Path) -> None:
    for module, sub in PYTHON_MODULE.findall(doc_text(path)):
        if module in {"venv", "pip"}:
            continue
        assert importlib.util.find_spec(module) is not None, module
        if module == "bot" and sub:
            assert sub in {"serve", "doctor", "report", "erase"}, f"python -m bot {sub}"


def make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][\w-]*):", makefile, re.MULTILINE))


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_make_target_exists(path: Path) -> None:
    assert sorted(set(MAKE_TARGET.findall(doc_text(path))) - make_targets()) == []


def test_the_readme_names_the_serve_command() -> None:
    assert "python -m bot serve" in doc_text(ROOT / "README.md")
    assert '"serve"' in (ROOT / "Dockerfile").read_text(encoding="utf-8")
