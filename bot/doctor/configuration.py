"""doctor: the settings themselves (what is missing or contradicts itself), before anything is contacted."""

from __future__ import annotations

from bot.config import ConfigError, ConfigProblem, Settings, serving_problems
from bot.doctor.results import (
    CONFIGURATION,
    Problem,
)


def config_error_problems(error: ConfigError) -> list[Problem]:
    """One problem per bad setting named by :func:`bot.config.load_settings`, with its fix."""
    return [_config_problem(problem) for problem in error.problems] or [
        Problem(CONFIGURATION, str(error), "Correct the settings named above.")
    ]


def _config_problem(problem: ConfigProblem) -> Problem:
    where = " (in the environment: .env locally; the container app's settings or Key Vault in Azure)"
    return Problem(CONFIGURATION, str(problem), problem.fix[:1].upper() + problem.fix[1:].rstrip(".") + where + ".")


def graph_configured(settings: Settings) -> bool:
    has_secret = bool(settings.graph_client_secret.get_secret_value() or settings.graph_client_certificate_path)
    return bool(settings.graph_tenant_id and settings.graph_client_id and has_secret)


def bot_credentials_configured(settings: Settings) -> bool:
    """Enough set to ask for a Bot Framework token (a missing setting is a configuration problem, not a network one)."""
    has_secret = settings.app_type == "UserAssignedMSI" or bool(settings.app_password.get_secret_value())
    return bool(settings.app_id and settings.app_tenant_id and has_secret)


def check_configuration(settings: Settings) -> list[Problem]:
    """What ``python -m bot serve`` would refuse, and what makes the bot less useful than expected."""
    problems = [_config_problem(problem) for problem in serving_problems(settings)]
    if settings.local_only_switches:
        problems.append(
            Problem(
                CONFIGURATION,
                f"Local sandbox, not production: {', '.join(settings.local_only_switches)} in effect "
                f"(authentication off or endpoints other than Microsoft's); allowed only on loopback HOST "
                f"{settings.host}.",
                "For production remove these settings (and SANDBOX_MODE); the bot then refuses to start with them "
                "on a public address anyway.",
                warning=True,
            )
        )
    if not settings.sandbox_mode and not settings.public_base_url.startswith("https://"):
        problems.append(
            Problem(
                CONFIGURATION,
                f"PUBLIC_BASE_URL {settings.public_base_url} is not https: Graph only notifies https URLs.",
                "Set PUBLIC_BASE_URL to the bot's public https address (the reverse proxy or Container App ingress).",
                warning=True,
            )
        )
    if not settings.link_admins:
        problems.append(
            Problem(
                CONFIGURATION,
                "LINK_ADMINS is empty: nobody may link a pool line to a channel.",
                "Set LINK_ADMINS to the UPNs (comma-separated) of the people who link channels, e.g. it@firma.de.",
                warning=True,
            )
        )
    return problems
