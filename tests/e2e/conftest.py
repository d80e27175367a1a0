"""End-to-end tests: the bot (``create_app``) behind the stand-ins, and ``make demo`` through the Agents Playground.

``bot_stack`` runs the bot against the Graph, identity and Bot Connector stand-ins; a module or a test changes its
settings by overriding ``bot_settings_overrides``. ``demo`` starts ``python -m sandbox.demo`` as a subprocess.
"""

from tests.support.bot_stack import bot_settings_overrides, bot_stack
from tests.support.demo import demo

__all__ = ["bot_settings_overrides", "bot_stack", "demo"]
