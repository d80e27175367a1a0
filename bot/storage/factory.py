"""Open the store named by ``DATABASE_URL``: a SQLite file (default), in-memory SQLite, or PostgreSQL."""

from __future__ import annotations

from bot.core.ports import Store
from bot.storage.database import Database, SqliteDatabase
from bot.storage.migrations import available_migrations
from bot.storage.sql_store import SqlStore

_SQLITE_PREFIX = "sqlite:///"
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


async def open_database(database_url: str) -> Database:
    """``sqlite:///relative/file.sqlite3``, ``sqlite:////absolute/file.sqlite3``, ``sqlite:///:memory:`` or
    ``postgresql://user@host:port/dbname?options=…`` (a libpq URI)."""
    if database_url.startswith(_SQLITE_PREFIX):
        path = database_url.removeprefix(_SQLITE_PREFIX)
        if not path:
            raise ValueError("DATABASE_URL: sqlite:/// needs a file path, e.g. sqlite:///var/rufpool.sqlite3")
        return await SqliteDatabase.open(path)
    if database_url.startswith(_POSTGRES_SCHEMES):
        from bot.storage.postgres import PostgresDatabase  # psycopg only where PostgreSQL is used (≈ 7 MB)

        return await PostgresDatabase.open(database_url)
    scheme = database_url.split(":", 1)[0] if ":" in database_url else database_url[:20]
    raise ValueError(
        f"DATABASE_URL: unsupported database {scheme!r}; use sqlite:///path/file.sqlite3, sqlite:///:memory: "
        "or postgresql://user@host:5432/dbname"
    )


async def open_store(database_url: str, *, migrate: bool = True) -> Store:
    """Connect and (unless ``migrate`` is False, as for ``doctor``) apply pending schema migrations."""
    database = await open_database(database_url)
    store = SqlStore(database)
    try:
        if migrate:
            await store.migrate()
    except BaseException:
        await store.close()
        raise
    return store


async def pending_migrations(store: Store) -> list[int]:
    """The versions of the schema migrations not applied yet; reads only (every one when the schema is empty)."""
    try:
        async with sql_database(store).transaction() as cursor:
            await cursor.execute("SELECT version FROM schema_migrations")
            applied = {row["version"] for row in await cursor.fetchall()}
    except Exception:
        applied = set()
    return [migration.version for migration in available_migrations() if migration.version not in applied]


def sql_database(store: Store) -> Database:
    """The database under ``store``, for the modules that keep their own tables (caller cache, statistics)."""
    if not isinstance(store, SqlStore):
        raise TypeError(f"expected the SQL store, got {type(store).__name__}")
    return store.database
