"""``python -m bot doctor``: checks what an admin sets up and prints every problem together with its fix.

One module per area (configuration, credentials, Graph, database, endpoints, business hours) holds small check
functions; :mod:`bot.doctor.registry` registers one function per report line (``@register``), runs them in order over
a shared context and formats the report (Django's check framework, in small). Doctor only reads: it opens the
database without migrating it.
"""

from bot.doctor.business_hours import check_business_hours
from bot.doctor.configuration import check_configuration
from bot.doctor.credentials import check_bot_token
from bot.doctor.registry import (
    REGISTRY,
    Context,
    RegisteredCheck,
    diagnose,
    exit_code,
    format_report,
    register,
    run_doctor,
    run_doctor_from_env,
    secret_masker,
)
from bot.doctor.results import (
    BUSINESS_HOURS,
    CALLER_SOURCES,
    CONFIGURATION,
    CREDENTIALS,
    DATABASE,
    MAILBOXES,
    OUTBOX,
    PLACETEL_NOTIFY,
    PUBLIC_URL,
    SUBSCRIPTIONS,
    CheckResult,
    Problem,
)

__all__ = [
    "BUSINESS_HOURS",
    "CALLER_SOURCES",
    "CONFIGURATION",
    "CREDENTIALS",
    "DATABASE",
    "MAILBOXES",
    "OUTBOX",
    "PLACETEL_NOTIFY",
    "PUBLIC_URL",
    "REGISTRY",
    "SUBSCRIPTIONS",
    "CheckResult",
    "Context",
    "Problem",
    "RegisteredCheck",
    "check_bot_token",
    "check_business_hours",
    "check_configuration",
    "diagnose",
    "exit_code",
    "format_report",
    "register",
    "run_doctor",
    "run_doctor_from_env",
    "secret_masker",
]
