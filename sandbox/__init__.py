"""Local stand-ins for Microsoft Graph, the Bot Connector and Entra sign-in (tests and `make demo`)."""
