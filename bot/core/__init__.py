"""The use cases: ingest a mail, act on a click, answer a command, sync flags, voicemail access, reminders.

They depend on the ports in :mod:`bot.core.ports` and the values in :mod:`bot.core.values`, never on an adapter
(``bot.graph``, ``bot.teams``, ``bot.storage``, ``bot.placetel``); ``tests/test_layers.py`` holds them to it.
"""
