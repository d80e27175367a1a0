"""Unit tests: the bot's modules in-process, without stand-in servers or a browser.

Storage tests run on SQLite and, through the ``database`` fixtures of :mod:`tests.support.storage` (registered in
tests/conftest.py), on PostgreSQL. Nothing here may start the bot or import the ``sandbox`` package: such a test
belongs in ``tests/e2e``.
"""
