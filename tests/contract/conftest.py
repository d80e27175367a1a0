"""Contract tests: the local stand-ins (Graph, Bot Connector, identity) against what Microsoft documents.

They drive each stand-in through Microsoft's own clients (msgraph-sdk, azure-identity, MSAL, botbuilder) and the Bot
Connector swagger, so the e2e tests can trust the stand-ins. The identity and connector fixtures come from
:mod:`tests.support.teams_standins`, registered in tests/conftest.py because the e2e tests use them too.
"""
