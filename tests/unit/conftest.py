"""Unit tests: the bot's modules in-process, without stand-in servers or a browser.

Storage tests run on SQLite and, through the ``database`` fixtures of :mod:`tests.support.storage` (registered in
tests/conftest.py), on PostgreSQL. Nothing here may start the bot behind the stand-ins or import a stand-in, not
even through a helper: such a test belongs in ``tests/e2e`` (``test_test_layout.py`` checks it).
"""
