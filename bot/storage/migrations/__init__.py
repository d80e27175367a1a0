"""Versioned schema migrations: ``NNNN_name.sql`` files in this package, applied in order at start.

Applied versions are recorded in ``schema_migrations``. The whole run is one transaction holding the database's
migration lock (an advisory lock on PostgreSQL, the single write lock on SQLite), so two processes starting at once
apply each migration exactly once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

from bot.storage.database import Cursor, Database
from bot.storage.stats_rollups import migration_terms

log = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self, ddl_types: dict[str, str]) -> list[str]:
        """The file's statements with the engine's type names filled in, comment lines dropped."""
        text = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        return [statement.strip() for statement in text.format_map(ddl_types).split(";") if statement.strip()]


def available_migrations() -> list[Migration]:
    migrations = []
    for entry in resources.files(__package__).iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            migrations.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(migrations, key=lambda migration: migration.version)


async def _applied_versions(cursor: Cursor) -> set[int]:
    await cursor.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "applied_at TEXT NOT NULL)"
    )
    await cursor.execute("SELECT version FROM schema_migrations")
    return {row["version"] for row in await cursor.fetchall()}


async def migrate(database: Database) -> list[int]:
    """Apply the migrations not yet applied; returns their versions."""
    applied_now = []
    async with database.transaction() as cursor:
        await database.lock_for_migrations(cursor)
        applied = await _applied_versions(cursor)
        for migration in available_migrations():
            if migration.version in applied:
                continue
            for statement in migration.statements({**database.dialect.ddl_types, **migration_terms(database.dialect)}):
                await cursor.execute(statement)
            await cursor.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, datetime.now(UTC).isoformat()),
            )
            applied_now.append(migration.version)
            log.info("applied schema migration %04d_%s", migration.version, migration.name)
    return applied_now
