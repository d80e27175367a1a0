"""Configuration from the environment and `.env`, validated once at start-up.

An invalid configuration stops start-up with one message that names every bad setting, what is wrong with it and
how to fix it. Two layers: :class:`Settings` checks formats (GUIDs, URLs, JSON, files) and consistency;
:func:`serving_problems` checks what a running bot needs on top (secrets or a certificate, the bot's identity).
:func:`load_serving_settings` reports both in one round: a setting that fails its format check is replaced by a
stand-in so that every other check still runs.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import phonenumbers
from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.domain.callbacks import AutoDone
from bot.line_rules import LineHours, LineReminders

LINE_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
GUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_GUID_FIELDS = ("app_id", "app_tenant_id", "graph_tenant_id", "graph_client_id")
_STAND_IN_GUID = "00000000-0000-0000-0000-000000000000"
URL_PATTERN = re.compile(r"^https?://[^/\s]+\S*$")


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One bad setting: which, what is wrong, and what to do."""

    setting: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.setting}: {self.problem}"


TEAMS_SERVICE_URLS = (
    "https://smba.trafficmanager.net/*",
    "https://smba.infra.gcc.teams.microsoft.com/*",
    "https://smba.infra.gov.teams.microsoft.us/*",
    "https://smba.infra.dod.teams.microsoft.us/*",
)
"""Where Teams' Bot Connector lives (public cloud, GCC, GCC High, DoD): the only hosts the bot sends activities to."""
MICROSOFT_GRAPH_HOSTS = frozenset(
    {"graph.microsoft.com", "graph.microsoft.us", "dod-graph.microsoft.us", "microsoftgraph.chinacloudapi.cn"}
)
MICROSOFT_LOGIN_HOSTS = frozenset({"login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn"})


CallerSourceName = Literal["contacts", "directory", "pbx"]


class ConfigError(Exception):
    """The configuration is invalid; the message names every bad setting and its fix."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        lines = ["Invalid configuration:"]
        for problem in problems:
            lines += [f"  - {problem}", f"    fix: {problem.fix}"]
        super().__init__("\n".join(lines))


class PoolLine(BaseModel):
    """One pool phone line: its shared mailbox, its own numbers and a display name."""

    id: str = Field(description="short slug used in commands, e.g. 'zentrale'")
    mailbox: str = Field(description="the shared mailbox's address (UPN)")
    numbers: list[str] = Field(min_length=1, description="the line's own numbers; stored as E.164")
    display_name: str = Field(min_length=1, max_length=80)
    notify_secret: SecretStr | None = Field(
        default=None, description="this line's secret for Placetel's Notify API, when it differs from the global one"
    )
    auto_done_on_callback: AutoDone | None = Field(
        default=None, description="reached|never for this line; default AUTO_DONE_ON_CALLBACK"
    )
    team_extensions: dict[str, str] = Field(
        default_factory=dict,
        description="SIP users or extensions of the team whose outgoing calls count as callbacks → name to show",
    )
    hours: LineHours = Field(default_factory=LineHours, description="business hours, holidays and closed days")
    reminders: LineReminders = Field(default_factory=LineReminders, description="reminders (off unless enabled)")

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not LINE_ID_PATTERN.match(value):
            raise ValueError("must be a lower-case slug (a-z, 0-9, '-'), at most 40 characters")
        return value

    @field_validator("mailbox")
    @classmethod
    def _mailbox(cls, value: str) -> str:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value.lower()

    @field_validator("numbers")
    @classmethod
    def _e164(cls, values: list[str]) -> list[str]:
        normalised = []
        for raw in values:
            try:
                parsed = phonenumbers.parse(raw, "DE")
            except phonenumbers.NumberParseException as exc:
                raise ValueError(f"{raw!r} is not a phone number ({exc})") from None
            if not phonenumbers.is_possible_number(parsed):
                raise ValueError(f"{raw!r} is not a possible phone number")
            normalised.append(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
        return normalised

    @field_validator("team_extensions")
    @classmethod
    def _extensions(cls, values: dict[str, str]) -> dict[str, str]:
        """SIP ids compare case-insensitively; names are what the thread shows."""
        if len(values) > 500:
            raise ValueError("at most 500 team extensions per line")
        cleaned = {}
        for key, name in values.items():
            if not key.strip() or len(key) > 128 or len(name) > 80:
                raise ValueError(f"{key[:40]!r}: an id of 1–128 characters and a name of at most 80 are expected")
            cleaned[key.strip().lower()] = name.strip()
        return cleaned

    def extension_name(self, sip_user_or_extension: str | None) -> str | None:
        """The name to show for one of the team's extensions (the id itself when no name is configured)."""
        if not sip_user_or_extension:
            return None
        key = sip_user_or_extension.strip().lower()
        if key not in self.team_extensions:
            return None
        return self.team_extensions[key] or sip_user_or_extension.strip()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True, case_sensitive=False
    )

    # Bot Framework, under botbuilder's standard names.
    app_id: str = Field(
        default="",
        validation_alias=AliasChoices("MicrosoftAppId", "MICROSOFT_APP_ID"),
        description="the bot's app registration (client) id, a GUID; empty only with SANDBOX_MODE",
    )
    app_password: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices("MicrosoftAppPassword", "MICROSOFT_APP_PASSWORD"),
        description="client secret of the bot's app registration",
    )
    app_type: Literal["SingleTenant", "MultiTenant", "UserAssignedMSI"] = Field(
        default="SingleTenant",
        validation_alias=AliasChoices("MicrosoftAppType", "MICROSOFT_APP_TYPE"),
        description="SingleTenant (new bots cannot be multi-tenant)",
    )
    app_tenant_id: str = Field(
        default="",
        validation_alias=AliasChoices("MicrosoftAppTenantId", "MICROSOFT_APP_TENANT_ID"),
        description="the Entra tenant of the bot (required for SingleTenant)",
    )
    # Endpoint overrides for botbuilder's parameterized authentication (local stand-ins); empty = public cloud.
    to_bot_from_channel_openid_metadata_url: str = Field(
        default="", description="override: OpenID metadata of the channel's signing keys (stand-ins only)"
    )
    to_bot_from_channel_token_issuer: str = Field(
        default="", description="override: issuer of inbound channel tokens (stand-ins only)"
    )
    to_channel_from_bot_login_url: str = Field(
        default="", description="override: authority for the bot's outbound tokens (stand-ins only)"
    )
    to_channel_from_bot_oauth_scope: str = Field(
        default="", description="override: scope of the bot's outbound tokens (stand-ins only)"
    )
    to_bot_from_emulator_openid_metadata_url: str = Field(
        default="", description="override: OpenID metadata for emulator tokens (stand-ins only)"
    )
    validate_authority: bool = Field(
        default=True, description="false skips MSAL's online instance discovery (a private authority)"
    )
    bot_ca_bundle: Path | None = Field(default=None, description="extra CA file for the Bot Framework endpoints")
    sandbox_mode: bool = Field(
        default=False, description="local sandbox only: accept unauthenticated activities (Agents Playground)"
    )

    # Microsoft Graph (application permissions on the shared mailboxes).
    graph_tenant_id: str = Field(default="", description="tenant of the Graph app registration")
    graph_client_id: str = Field(default="", description="client id of the app with Mail.ReadWrite (application)")
    graph_client_secret: SecretStr = Field(default=SecretStr(""), description="its client secret")
    graph_client_certificate_path: Path | None = Field(
        default=None, description="a PEM file with certificate and private key, instead of GRAPH_CLIENT_SECRET"
    )
    graph_base_url: str = Field(default="https://graph.microsoft.com/v1.0", description="Graph endpoint")
    graph_authority_host: str = Field(
        default="https://login.microsoftonline.com", description="Entra authority for Graph tokens"
    )
    graph_ca_bundle: Path | None = Field(default=None, description="extra CA file to trust (local stand-ins)")
    graph_timeout_seconds: float = Field(
        default=30.0, ge=1, le=300, description="a Graph request without an answer after this long is retried later"
    )
    graph_client_state: SecretStr = Field(
        default=SecretStr(""), description="secret (≤128 chars) Graph echoes in every notification"
    )

    database_url: str = Field(
        default="sqlite:///data/rufpool.sqlite3", description="sqlite:///file or postgresql://… (scale-out)"
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:3978", description="public https URL of the bot; Graph posts notifications there"
    )
    host: str = Field(default="127.0.0.1", description="address to listen on (0.0.0.0 in a container)")
    port: int = Field(default=3978, ge=1, le=65535, description="port to listen on")

    pool_lines: Annotated[list[PoolLine], NoDecode] = Field(
        default_factory=list,
        description='JSON list: [{"id","mailbox","numbers":[…],"display_name"}], optionally per line '
        '"notify_secret", "auto_done_on_callback", "team_extensions":{"sip-user-or-extension":"name"}, "hours":{…} '
        'and "reminders":{…} (docs/reminders.md)',
    )
    parser_profiles: str = Field(default="", description="JSON list of extra parser profiles, or a file path")
    link_admins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated AAD object ids or UPNs allowed to link channels"
    )
    link_team_owners: bool = Field(
        default=False,
        description="true: a team's owners may also link that team's channels (needs GroupMember.Read.All)",
    )
    default_locale: str = Field(default="de-DE", description="language of cards posted to channels (de or en)")

    # Placetel's call webhooks (Notify API), a second source next to the mails.
    placetel_notify_secret: SecretStr = Field(
        default=SecretStr(""),
        description="shared secret of Placetel's Notify API (Settings → External APIs), valid for every line; a "
        "line's own notify_secret is valid for that line; with neither, the webhook refuses everything",
    )
    auto_done_on_callback: AutoDone = Field(
        default=AutoDone.NEVER,
        description="reached: a callback that reached the caller marks the case done; never: it is only shown "
        "(per line: auto_done_on_callback)",
    )
    placetel_match_window_seconds: int = Field(
        default=180,
        ge=0,
        le=3600,
        description="a call's mail and its call webhook are one call when their times are at most this far apart",
    )

    initial_import_hours: int = Field(
        default=24, ge=0, description="when a mailbox is first watched, mail this much older becomes no item"
    )
    claim_timeout_minutes: int = Field(default=120, ge=1, description="after this, anyone may release a claimed case")
    delta_interval_minutes: int = Field(default=15, ge=1, description="periodic catch-up and reconciliation")
    subscription_lifetime_minutes: int = Field(
        default=4200, ge=10, le=10080, description="lifetime asked for Graph subscriptions (renewed at 1/3 left)"
    )
    outlook_categories_enabled: bool = Field(
        default=False, description="also set Outlook categories (shared by everyone using the mailbox)"
    )
    outlook_read_sync: bool = Field(
        default=True,
        description="claim/done mark a case's mails read, release/reopen unread: the unread count = untouched calls",
    )
    outlook_read_repair: bool = Field(
        default=False,
        description="also undo read/unread set by hand in Outlook where it disagrees with the case (off: people win)",
    )
    outbox_retry_base_seconds: float = Field(
        default=2.0,
        gt=0,
        le=300,
        description="first retry delay of a failed Teams or Graph effect; doubles per attempt (with jitter, at most "
        "10 min; after a throttled, unavailable or unreachable service at most 15 times this, for 30 attempts); a "
        "longer Retry-After wins",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="log level")
    # Caller names and statistics (issue 21).
    caller_sources: Annotated[list[CallerSourceName], NoDecode] = Field(
        default_factory=lambda: list[CallerSourceName](["pbx"]),
        description="where a caller's name comes from, in this order (comma-separated): contacts (the shared "
        "mailbox's Outlook contacts, Contacts.Read), directory (users' phones, User.Read.All), pbx (the mail)",
    )
    caller_refresh_minutes: int = Field(
        default=30, ge=1, le=1440, description="how often the caller cache is refreshed from Graph by delta query"
    )
    weekly_digest: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description='JSON: line id → day and time of its weekly stats card, e.g. {"zentrale": "mo 08:00"} (off '
        "when absent; Europe/Berlin time)",
    )

    # Security and privacy: who may talk to the bot, where it sends, how long it keeps personal data.
    allowed_tenant_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated further Entra tenant ids whose Teams may use the bot (MicrosoftAppTenantId "
        "always may)",
    )
    teams_service_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(TEAMS_SERVICE_URLS),
        description="comma-separated patterns (* matches anything) of the Teams service URLs the bot accepts and "
        "sends to; anything else only for local stand-ins",
    )
    retention_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        description="done cases (events, mail references, thread state) are deleted this "
        "many days after they were done",
    )
    outbox_retention_days: int = Field(
        default=7, ge=1, le=365, description="finished outbox jobs (done or dead) are deleted after this many days"
    )
    voicemail_link_minutes: int = Field(
        default=15, ge=1, le=120, description="lifetime of the link a click on Anhören answers with; it plays once"
    )
    metrics_token: SecretStr = Field(
        default=SecretStr(""),
        description="bearer token that /metrics on the main port asks for; empty = /metrics only on METRICS_PORT",
    )
    metrics_port: int = Field(default=0, ge=0, le=65535, description="separate port for /metrics (0 = none)")
    metrics_host: str = Field(default="127.0.0.1", description="address of the metrics port")

    @field_validator("pool_lines", mode="before")
    @classmethod
    def _parse_lines(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return []
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"must be a JSON list of lines ({exc.msg} at position {exc.pos})") from None
        return value

    @field_validator("link_admins", mode="before")
    @classmethod
    def _parse_admins(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip().lower() for item in value.split(",") if item.strip()]
        return value

    @field_validator(*_GUID_FIELDS)
    @classmethod
    def _guid(cls, value: str) -> str:
        value = value.strip()
        if value and not GUID_PATTERN.match(value):
            raise ValueError(f"{value[:60]!r} is not a GUID (like 00000000-0000-0000-0000-000000000000)")
        return value

    @field_validator("caller_sources", mode="before")
    @classmethod
    def _parse_sources(cls, value: object) -> object:
        if isinstance(value, str):
            sources = [item.strip().lower() for item in value.split(",") if item.strip()]
            if len(set(sources)) != len(sources):
                raise ValueError("name each source once")
            return sources
        return value

    @field_validator("weekly_digest", mode="before")
    @classmethod
    def _parse_digest(cls, value: object) -> object:
        if isinstance(value, str):
            import json

            if not value.strip():
                return {}
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"must be a JSON object ({exc.msg} at position {exc.pos})") from None
        if isinstance(value, dict):
            from bot.stats.schedule import parse_schedule

            for line_id, when in value.items():
                try:
                    parse_schedule(str(when))
                except ValueError as exc:
                    raise ValueError(f"{line_id}: {exc}") from None
        return value

    @field_validator("allowed_tenant_ids", "teams_service_urls", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("allowed_tenant_ids")
    @classmethod
    def _tenant_guids(cls, values: list[str]) -> list[str]:
        bad = [value for value in values if not GUID_PATTERN.match(value)]
        if bad:
            raise ValueError(f"tenant ids are GUIDs, not {', '.join(repr(value) for value in bad)}")
        return [value.lower() for value in values]

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("public_base_url", "graph_base_url", "graph_authority_host")
    @classmethod
    def _url(cls, value: str) -> str:
        if not URL_PATTERN.match(value):
            raise ValueError(f"{value[:80]!r} is not an http(s) URL")
        return value.rstrip("/")

    @field_validator(
        "to_bot_from_channel_openid_metadata_url",
        "to_bot_from_channel_token_issuer",
        "to_channel_from_bot_login_url",
        "to_bot_from_emulator_openid_metadata_url",
    )
    @classmethod
    def _optional_url(cls, value: str) -> str:
        if value and not URL_PATTERN.match(value):
            raise ValueError(f"{value[:80]!r} is not an http(s) URL (leave it empty for Microsoft's public cloud)")
        return value

    @field_validator("bot_ca_bundle", "graph_ca_bundle", "graph_client_certificate_path")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is None or str(value) in {"", "."}:
            return None
        try:
            content = value.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise ValueError(f"cannot read {str(value)!r} ({exc.strerror or exc})") from None
        if "-----BEGIN CERTIFICATE-----" not in content:
            raise ValueError(f"{str(value)!r} holds no PEM certificate")
        return value

    @field_validator("graph_client_certificate_path")
    @classmethod
    def _private_key(cls, value: Path | None) -> Path | None:
        if value is not None and "PRIVATE KEY-----" not in value.read_text(encoding="utf-8", errors="replace"):
            raise ValueError(f"{str(value)!r} holds no private key (PEM with certificate and key needed)")
        return value

    @field_validator("parser_profiles")
    @classmethod
    def _profiles(cls, value: str) -> str:
        from bot.placetel.profiles import ProfileConfigError, load_profiles

        raw = value.strip()
        if not raw:
            return value
        if not raw.startswith(("[", "{")):
            try:
                raw = Path(raw).read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"neither JSON nor a readable file ({exc.strerror or exc})") from None
        try:
            load_profiles(raw)
        except ProfileConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        problems: list[str] = []
        ids = [line.id for line in self.pool_lines]
        if len(set(ids)) != len(ids):
            problems.append("POOL_LINES: line ids must be unique")
        mailboxes = [line.mailbox for line in self.pool_lines]
        if len(set(mailboxes)) != len(mailboxes):
            problems.append("POOL_LINES: each mailbox may belong to one line only")
        unknown_digest_lines = sorted(set(self.weekly_digest) - set(ids))
        if unknown_digest_lines:
            problems.append(f"WEEKLY_DIGEST: unknown line(s) {', '.join(unknown_digest_lines)}")
        if len(self.graph_client_state.get_secret_value()) > 128:
            problems.append("GRAPH_CLIENT_STATE: at most 128 characters")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _local_only_switches(self) -> Settings:
        """Authentication off and endpoint overrides are for a sandbox on this machine, never for a listener
        others can reach."""
        switches = self.local_only_switches
        if switches and not listens_on_loopback_only(self.host):
            raise ValueError(
                f"HOST: {self.host} is not a loopback address, but {', '.join(switches)} are only allowed when HOST "
                "is a loopback address (127.0.0.1, ::1): they are for a local sandbox, remove them for production"
            )
        return self

    @property
    def local_only_switches(self) -> list[str]:
        """The settings in effect that switch off authentication or point the bot at other endpoints than
        Microsoft's (local stand-ins); empty in production."""
        overrides = {
            "SANDBOX_MODE": self.sandbox_mode,
            "TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL": self.to_bot_from_channel_openid_metadata_url,
            "TO_BOT_FROM_CHANNEL_TOKEN_ISSUER": self.to_bot_from_channel_token_issuer,
            "TO_CHANNEL_FROM_BOT_LOGIN_URL": self.to_channel_from_bot_login_url,
            "TO_CHANNEL_FROM_BOT_OAUTH_SCOPE": self.to_channel_from_bot_oauth_scope,
            "TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL": self.to_bot_from_emulator_openid_metadata_url,
        }
        switches = [name for name, value in overrides.items() if value]
        if not self.validate_authority:
            switches.append("VALIDATE_AUTHORITY")
        if self.bot_ca_bundle is not None:
            switches.append("BOT_CA_BUNDLE")
        if self.graph_ca_bundle is not None:
            switches.append("GRAPH_CA_BUNDLE")
        if _hostname(self.graph_base_url) not in MICROSOFT_GRAPH_HOSTS:
            switches.append("GRAPH_BASE_URL")
        if _hostname(self.graph_authority_host) not in MICROSOFT_LOGIN_HOSTS:
            switches.append("GRAPH_AUTHORITY_HOST")
        if any(pattern not in TEAMS_SERVICE_URLS for pattern in self.teams_service_urls):
            switches.append("TEAMS_SERVICE_URLS")
        return switches

    @property
    def allowed_tenants(self) -> frozenset[str]:
        return frozenset(t.lower() for t in [self.app_tenant_id, *self.allowed_tenant_ids] if t)

    def is_teams_service_url(self, url: str | None) -> bool:
        return is_allowed_service_url(url, self.teams_service_urls)

    @cached_property
    def lines_by_id(self) -> dict[str, PoolLine]:
        return {line.id: line for line in self.pool_lines}

    def auto_done_for(self, line: PoolLine) -> AutoDone:
        return line.auto_done_on_callback or self.auto_done_on_callback

    def line_for_mailbox(self, mailbox: str) -> PoolLine | None:
        return next((line for line in self.pool_lines if line.mailbox == mailbox.lower()), None)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.app_id)


def _hostname(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def listens_on_loopback_only(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def normalised_url(url: str) -> str | None:
    """``scheme://host[:port]/path`` in lower case (no user info, query or fragment); None for anything odd."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return None
    default_port = 443 if parts.scheme == "https" else 80
    netloc = parts.hostname if port in (None, default_port) else f"{parts.hostname}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path or '/'}".lower()


def is_allowed_service_url(url: str | None, patterns: list[str]) -> bool:
    """Whether ``url`` (normalised) matches one of the ``*`` patterns, e.g. ``https://smba.trafficmanager.net/*``."""
    normal = normalised_url(url) if url else None
    return normal is not None and any(fnmatchcase(normal, pattern.lower()) for pattern in patterns)


def _field_for(name: str) -> str | None:
    """The field behind ``name``: a field name, or any of its environment names, in any case."""
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = [str(choice) for choice in alias.choices] if isinstance(alias, AliasChoices) else []
        if name.lower() in {field_name, *(choice.lower() for choice in choices)}:
            return field_name
    return None


def _fix_for(setting: str) -> str:
    field_name = _field_for(setting)
    meaning = Settings.model_fields[field_name].description if field_name else None
    return f"correct {setting} ({meaning})." if meaning else f"correct {setting}."


def _problems(error: ValidationError) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if not item["loc"]:  # the model validator: "SETTING: problem; SETTING: problem"
            for entry in message.split("; "):
                setting, _, problem = entry.partition(": ")
                problems.append(ConfigProblem(setting, problem, _fix_for(setting)))
            continue
        head, *rest = item["loc"]
        field_name = _field_for(str(head))
        setting = _env_name(field_name, Settings.model_fields[field_name]) if field_name else str(head).upper()
        location = setting + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in rest)
        problems.append(ConfigProblem(location, message, _fix_for(setting)))
    return problems


_STAND_IN_LINE = {"id": "stand-in", "mailbox": "stand-in@invalid.example", "numbers": ["+4930123456"],
                  "display_name": "stand-in"}  # fmt: skip
"""Replaces invalid POOL_LINES in the second round, so the checks that need lines configured still run."""


def _stand_ins(problems: list[ConfigProblem]) -> dict[str, object]:
    values: dict[str, object] = {}
    for problem in problems:
        field_name = _field_for(re.split(r"[\[.]", problem.setting, maxsplit=1)[0])
        if field_name is None:
            continue
        field = Settings.model_fields[field_name]
        if field_name == "pool_lines":
            values[field_name] = [_STAND_IN_LINE]
        elif field_name in _GUID_FIELDS:
            values[field_name] = _STAND_IN_GUID
        else:
            values[field_name] = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
    return values


def _settings_and_problems(overrides: dict[str, object]) -> tuple[Settings | None, list[ConfigProblem]]:
    """The settings (with stand-ins for invalid values) and every format problem, in one round."""
    try:
        return Settings(**overrides), []  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = _problems(exc)
    try:
        lenient = Settings(**(overrides | _stand_ins(problems)))  # type: ignore[arg-type]
    except ValidationError as exc:
        named = {problem.setting for problem in problems}
        return None, problems + [problem for problem in _problems(exc) if problem.setting not in named]
    return lenient, problems


def serving_problems(settings: Settings) -> list[ConfigProblem]:
    """What the running bot needs beyond valid formats: its identity, secrets or a certificate."""
    problems: list[ConfigProblem] = []
    in_portal = "Azure portal > the Azure Bot > Configuration"
    if settings.app_type == "MultiTenant":
        problems.append(
            ConfigProblem(
                "MicrosoftAppType",
                "MultiTenant is no longer offered for new Azure Bots",
                "set MicrosoftAppType to SingleTenant (app registration with a client secret) or UserAssignedMSI "
                f"(a user-assigned managed identity, no secret to rotate), as shown in {in_portal}.",
            )
        )
    if not settings.sandbox_mode and not settings.app_id:
        problems.append(
            ConfigProblem(
                "MicrosoftAppId",
                "required (only SANDBOX_MODE may run without authentication)",
                f"set MicrosoftAppId to the Microsoft App ID shown in {in_portal} (a GUID).",
            )
        )
    if settings.app_id and not settings.app_tenant_id:
        problems.append(
            ConfigProblem(
                "MicrosoftAppTenantId",
                f"required for {settings.app_type}",
                f"set MicrosoftAppTenantId to the App Tenant ID shown in {in_portal} (a GUID).",
            )
        )
    if settings.app_id and settings.app_type == "SingleTenant" and not settings.app_password.get_secret_value():
        problems.append(
            ConfigProblem(
                "MicrosoftAppPassword",
                "required for SingleTenant (the client secret of the bot's app registration)",
                "create a client secret (Entra admin center > App registrations > the bot's app > Certificates & "
                "secrets > New client secret) and set MicrosoftAppPassword to its Value, not its Secret ID; or use "
                "MicrosoftAppType=UserAssignedMSI.",
            )
        )
    if not settings.pool_lines:
        problems.append(
            ConfigProblem(
                "POOL_LINES",
                "required: without a pool line the bot watches no mailbox",
                'set POOL_LINES to a JSON list, e.g. [{"id": "zentrale", "mailbox": "zentrale@firma.de", '
                '"numbers": ["+49301234567"], "display_name": "Zentrale"}].',
            )
        )
    problems += _graph_problems(settings)
    if settings.pool_lines and not settings.graph_client_state.get_secret_value():
        problems.append(
            ConfigProblem(
                "GRAPH_CLIENT_STATE",
                "required with POOL_LINES",
                "set it to a random secret of up to 128 characters, e.g. the output of "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))'; keep it when redeploying.",
            )
        )
    return problems


def _graph_problems(settings: Settings) -> list[ConfigProblem]:
    overview = "Entra admin center > App registrations > the Graph app > Overview"
    problems = []
    if not settings.graph_tenant_id:
        problems.append(
            ConfigProblem("GRAPH_TENANT_ID", "required", f"set it to the Directory (tenant) ID ({overview}).")
        )
    if not settings.graph_client_id:
        problems.append(
            ConfigProblem("GRAPH_CLIENT_ID", "required", f"set it to the Application (client) ID ({overview}).")
        )
    if not (settings.graph_client_secret.get_secret_value() or settings.graph_client_certificate_path):
        problems.append(
            ConfigProblem(
                "GRAPH_CLIENT_SECRET",
                "required (or GRAPH_CLIENT_CERTIFICATE_PATH)",
                "set GRAPH_CLIENT_SECRET to the Value of a client secret of the Graph app (Certificates & secrets), "
                "or GRAPH_CLIENT_CERTIFICATE_PATH to a PEM file holding the uploaded certificate and its private key.",
            )
        )
    return problems


_ALTERNATIVE = {"GRAPH_CLIENT_SECRET": "GRAPH_CLIENT_CERTIFICATE_PATH"}
"""A missing setting that need not be reported when its alternative is set, but invalid."""


def load_settings(**overrides: object) -> Settings:
    """Read the settings; raise :class:`ConfigError` naming every setting with a bad format."""
    settings, problems = _settings_and_problems(overrides)
    if problems or settings is None:
        raise ConfigError(problems)
    return settings


def load_serving_settings(**overrides: object) -> Settings:
    """Like :func:`load_settings`, and complete enough to serve: one error names every problem of both kinds."""
    settings, problems = _settings_and_problems(overrides)
    if settings is not None:
        named = {problem.setting for problem in problems}
        problems += [
            problem
            for problem in serving_problems(settings)
            if problem.setting not in named and _ALTERNATIVE.get(problem.setting) not in named
        ]
    if problems or settings is None:
        raise ConfigError(problems)
    return settings


def _env_name(name: str, field: FieldInfo) -> str:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return name.upper()


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return ""
    value = field.default
    if isinstance(value, SecretStr) or value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


def settings_markdown() -> str:
    """The configuration table of the README, made from the settings themselves."""
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = _default(field)
        rows.append(f"| `{_env_name(name, field)}` | {f'`{default}`' if default else ''} | {field.description} |")
    return "\n".join(rows)


def env_example() -> str:
    """``.env.example``: every setting with its meaning, made from the settings themselves."""
    lines = ["# Rufpool configuration. Every setting, its default and its meaning (python -m bot.config env)."]
    for name, field in Settings.model_fields.items():
        lines += ["", f"# {field.description}", f"{_env_name(name, field)}={_default(field)}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(env_example() if sys.argv[1:] == ["env"] else settings_markdown() + "\n")
