"""The layers as the folders show them, held against every import of the ``bot`` package (read with ``ast``).

- ``bot.domain`` is pure: the standard library without I/O, and itself.
- ``bot.core`` (the use cases, their ports and shared values) imports no adapter and no I/O client library.
- An adapter (``bot.graph``, ``bot.teams``, ``bot.storage``, ``bot.placetel``, ``bot.web``) imports the core's shared
  modules (ports, values, jobs, effects, numbers), the domain, the shared kernel and itself, never another adapter.
  Only an inbound entry point calls a use case (the Teams bot: actions and commands; the voicemail link): no adapter
  on the way out (posting, Graph, storage) calls back up into one.
- The shared kernel (settings, clock, logging, metrics, small helpers) imports neither the core nor an adapter.

Only ``bot.app``, ``bot.__main__`` and ``bot.doctor`` wire adapters to use cases. Every import counts, also one inside
a function or under ``TYPE_CHECKING``: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ADAPTERS = ("bot.graph", "bot.teams", "bot.storage", "bot.placetel", "bot.web")
KERNEL = (
    "bot.config",
    "bot.line_rules",
    "bot.clock",
    "bot.metrics",
    "bot.logging_setup",
    "bot.tasks",
    "bot.heartbeat",
    "bot.http_body",
)
KNOWN: dict[str, dict[str, str]] = {
    "bot.config": {
        "bot.placetel.profiles": "loading the settings checks that the configured parser profiles compile",
        "bot.stats.schedule": "loading the settings checks the digest schedule",
    },
}
"""The exceptions, each with its reason: parsers the settings run to fail at start rather than at the first mail."""
CORE_SHARED = ("bot.core.ports", "bot.core.values", "bot.core.jobs", "bot.core.effects", "bot.core.numbers")
ENTRY_POINTS: dict[str, tuple[str, ...]] = {
    "bot.teams.bot": ("bot.core.actions", "bot.core.commands"),
    "bot.web.voicemail": ("bot.core.voicemail",),
}
WIRING = ("bot.app", "bot.__main__", "bot.doctor", "bot.packaging")
IO_LIBRARIES = (
    "aiohttp",
    "aiosqlite",
    "asyncpg",
    "azure",
    "botbuilder",
    "botframework",
    "httpx",
    "kiota_abstractions",
    "msgraph",
    "msal",
    "psycopg",
    "sqlite3",
)
DOMAIN_FORBIDDEN_STDLIB = ("asyncio", "socket", "ssl", "sqlite3", "subprocess", "http", "urllib", "logging")


def _within(module: str, packages: tuple[str, ...]) -> str | None:
    return next((p for p in packages if module == p or module.startswith(p + ".")), None)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str) -> Iterator[str]:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            # ``from bot.core import effects`` imports the module bot.core.effects
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def violation(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported``; None when it may."""
    top = imported.split(".")[0]
    if importer.startswith("bot.domain"):
        if imported.startswith("bot.") and not imported.startswith("bot.domain"):
            return "the domain imports only itself"
        if top != "bot" and (top not in sys.stdlib_module_names or top in DOMAIN_FORBIDDEN_STDLIB):
            return "the domain does no I/O and uses the standard library only"
        return None
    if importer.startswith("bot.core"):
        if adapter := _within(imported, ADAPTERS):
            return f"a use case imports the adapter {adapter}"
        if _within(imported, WIRING):
            return "a use case imports the wiring"
        if top in IO_LIBRARIES:
            return f"a use case imports the I/O library {top}"
        return None
    if own := _within(importer, ADAPTERS):
        other = _within(imported, ADAPTERS)
        if other is not None and other != own:
            return f"the adapter {own} imports another adapter, {other}"
        if _within(imported, WIRING):
            return "an adapter imports the wiring"
        if imported.startswith("bot.core.") and not _within(imported, CORE_SHARED + ENTRY_POINTS.get(importer, ())):
            return "an adapter calls up into a use case"
        return None
    if _within(importer, KERNEL) and imported.startswith("bot.") and not _within(imported, (*KERNEL, "bot.domain")):
        if _within(imported, tuple(KNOWN.get(importer, {}))):
            return None
        return "the shared kernel imports only itself and the domain"
    return None


def violations(root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted((root / "bot").rglob("*.py")):
        importer = module_name(path, root)
        for imported in sorted(set(imports_of(path.read_text(encoding="utf-8")))):
            reason = violation(importer, imported)
            if reason is not None:
                found.append(f"{importer} -> {imported}: {reason}")
    return found


def test_no_import_crosses_a_layer() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("bot.core.voicemail", "bot.graph.errors"),
        ("bot.core.ingest", "bot.placetel.parser"),
        ("bot.core.jobs", "bot.storage.database"),
        ("bot.core.actions", "bot.app"),
        ("bot.core.sync", "aiohttp.web"),
        ("bot.teams.posting", "bot.graph.channel_cards"),
        ("bot.placetel.notify", "bot.graph.webhooks"),
        ("bot.teams.posting", "bot.core.actions"),
        ("bot.storage.caller_store", "bot.core.callers"),
        ("bot.domain.cases", "bot.core.values"),
        ("bot.domain.cases", "asyncio"),
        ("bot.domain.cases", "pydantic"),
        ("bot.config", "bot.core.ports"),
    ],
)
def test_each_rule_catches_its_violation(importer: str, imported: str) -> None:
    assert violation(importer, imported) is not None


def test_a_lazy_import_counts(tmp_path: Path) -> None:
    core = tmp_path / "bot" / "core"
    core.mkdir(parents=True)
    (core / "sneaky.py").write_text("def f():\n    from bot.storage.sql_store import SqlStore\n", encoding="utf-8")
    assert violations(tmp_path) == [
        "bot.core.sneaky -> bot.storage.sql_store: a use case imports the adapter bot.storage",
        "bot.core.sneaky -> bot.storage.sql_store.SqlStore: a use case imports the adapter bot.storage",
    ]
