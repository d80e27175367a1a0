"""``python -m bot [serve|doctor|report|erase --number <E.164>]``.

``serve`` never starts half-configured: an invalid or incomplete configuration, or a start-up that fails (database
unreachable, port taken), ends the process with one message and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import getpass
import logging
import sys
from datetime import date

from bot.config import ConfigError, Settings, load_serving_settings, load_settings
from bot.logging_setup import configure_logging, redact


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Rufpool: pool-line callbacks in Teams")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "doctor", "report", "erase"])
    report = parser.add_argument_group("report", "one CSV row per case created in a period (python -m bot report)")
    report.add_argument("--from", dest="first_day", type=date.fromisoformat, help="first day, YYYY-MM-DD")
    report.add_argument("--to", dest="last_day", type=date.fromisoformat, help="last day (included), YYYY-MM-DD")
    report.add_argument("--csv", action="store_true", help="CSV on standard output (the only format)")
    report.add_argument("--line", action="append", default=[], help="only this line id (repeatable)")
    report.add_argument("--with-numbers", action="store_true", help="full phone numbers instead of masked ones")
    parser.add_argument("--number", help="erase: the caller's phone number (E.164, e.g. +4930123456)")
    args = parser.parse_args(argv)
    if args.command == "report":
        if args.first_day is None or args.last_day is None:
            parser.error("report needs --from and --to")
        if not args.csv:
            parser.error("report writes CSV only: add --csv")
        from bot.stats.report_cli import run_report

        return asyncio.run(run_report(args.first_day, args.last_day, args.line, args.with_numbers))
    if args.command == "doctor":
        from bot.doctor import run_doctor_from_env

        # The report says what went wrong; library warnings (token failures, pool retries) would only repeat it.
        configure_logging("ERROR")
        logging.getLogger("azure").setLevel(logging.ERROR)
        return asyncio.run(run_doctor_from_env())
    try:
        # erase needs only the database; serve needs everything.
        settings = load_settings() if args.command == "erase" else load_serving_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if args.command == "erase":
        return asyncio.run(erase(settings, args.number or ""))
    # Heavy imports only once the configuration is known to be good: a bad one is reported at once.
    from aiohttp import web

    from bot.app import create_app

    try:
        web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(
                f"Rufpool could not start: port {settings.port} on {settings.host} is in use; set PORT.",
                file=sys.stderr,
            )
        else:
            print(f"Rufpool could not start: {redact(str(exc))}", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"Rufpool could not start: {type(exc).__name__}: {redact(str(exc))}", file=sys.stderr)
        return 1
    return 0


def _operator() -> str:
    """Who runs the command, for the audit entry (containers often have no user name)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


async def erase(settings: Settings, number: str) -> int:
    """Erase every case and event of ``number`` from the database; the running bot replaces the cards."""
    from bot.core.retention import NotANumber, erase_number
    from bot.storage.factory import open_store

    store = await open_store(settings.database_url)
    try:
        outcome = await erase_number(store, number, actor=f"cli:{_operator()}")
    except NotANumber as error:
        print(f"erase: {error}", file=sys.stderr)
        return 2
    finally:
        await store.close()
    print(
        f"Erased {outcome.cases} case(s) with {outcome.events} call(s); {len(outcome.cards)} Teams card(s) will be "
        "replaced by the running bot. The mails themselves follow the shared mailbox's own retention in Outlook."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
