"""doctor: the database (reachable, migrated or not, without migrating it) and the outbox's dead letters."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from bot.config import Settings
from bot.core.ports import Store
from bot.doctor.results import (
    DATABASE,
    OUTBOX,
    Problem,
    _brief,
)
from bot.storage.factory import open_store, pending_migrations


def masked_url(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def check_database(settings: Settings) -> tuple[Store | None, list[Problem]]:
    """Open the store without migrating it and ping it; the open store is returned for the next checks. Migrations
    not applied yet are a warning: the bot applies them when it starts."""
    if settings.database_url.startswith("sqlite:"):
        fix = "Check DATABASE_URL: the file's directory must exist or be creatable and writable by the bot's user."
    else:
        fix = (
            "Check DATABASE_URL (host, port, database, user, percent-encoded password, sslmode=require on Azure), "
            "that PostgreSQL runs and that its firewall admits this host."
        )
    store: Store | None = None
    try:
        store = await open_store(settings.database_url, migrate=False)
        await store.ping()
        pending = await pending_migrations(store)
    except Exception as exc:
        if store is not None:
            await store.close()
        message = f"cannot use the database {masked_url(settings.database_url)}: {_brief(exc)}"
        return None, [Problem(DATABASE, message, fix)]
    if pending:
        versions = ", ".join(f"{version:04d}" for version in pending)
        message = f"{len(pending)} schema migration(s) not applied yet ({versions})"
        return store, [Problem(DATABASE, message, "Start the bot once: it applies them at start.", warning=True)]
    return store, []


async def check_outbox(store: Store) -> list[Problem]:
    """Dead letters are effects on Teams or Graph that never happened: each one is worth a look."""
    dead = await store.jobs.dead_letters(limit=5)
    if not dead:
        return []
    depth = await store.jobs.depth()
    errors = "; ".join(f"{job.kind} #{job.id}: {job.last_error or '?'}" for job in dead)
    return [
        Problem(
            OUTBOX,
            f"{depth.get('dead', len(dead))} job(s) gave up after all retries (newest: {errors})",
            "Fix the cause the errors name (permissions, a deleted channel, a removed mail); the card or flag "
            "catches up with the next change of its case, and the periodic catch-up repairs flags.",
        )
    ]
