"""``python -m bot [serve|doctor]``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from aiohttp import web

from bot.config import ConfigError, load_settings
from bot.logging_setup import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Rufpool: pool-line callbacks in Teams")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "doctor"])
    args = parser.parse_args(argv)
    if args.command == "doctor":
        from bot.doctor import run_doctor_from_env

        # The report says what went wrong; library warnings (token failures, pool retries) would only repeat it.
        configure_logging("ERROR")
        logging.getLogger("azure").setLevel(logging.ERROR)
        return asyncio.run(run_doctor_from_env())
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    from bot.app import create_app

    web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
