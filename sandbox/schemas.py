"""A throw-away PostgreSQL schema for tests and benchmarks, so runs never see each other's tables."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote

import psycopg


def postgres_problem(url: str) -> str | None:
    """Why the PostgreSQL server at ``url`` cannot be used, or None when it answers."""
    try:
        with psycopg.connect(url, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        return str(error).strip() or type(error).__name__
    return None


@asynccontextmanager
async def fresh_postgres_schema(base_url: str, prefix: str = "t") -> AsyncIterator[str]:
    """A URL whose connections work in a new, empty schema; the schema is dropped afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(base_url, autocommit=True) as connection:
        await connection.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        async with await psycopg.AsyncConnection.connect(base_url, autocommit=True) as connection:
            await connection.execute(f"DROP SCHEMA {schema} CASCADE")
