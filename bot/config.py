"""Configuration from the environment and `.env`, validated once at start-up.

An invalid configuration stops start-up with one message that names each bad setting and what is wrong with it.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

import phonenumbers
from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LINE_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
GUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


class ConfigError(Exception):
    """The configuration is invalid; the message names every bad setting."""


class PoolLine(BaseModel):
    """One pool phone line: its shared mailbox, its own numbers and a display name."""

    id: str = Field(description="short slug used in commands, e.g. 'zentrale'")
    mailbox: str = Field(description="the shared mailbox's address (UPN)")
    numbers: list[str] = Field(min_length=1, description="the line's own numbers; stored as E.164")
    display_name: str = Field(min_length=1, max_length=80)

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
        default=None, description="or a PEM certificate with private key instead of the secret"
    )
    graph_base_url: str = Field(default="https://graph.microsoft.com/v1.0", description="Graph endpoint")
    graph_authority_host: str = Field(
        default="https://login.microsoftonline.com", description="Entra authority for Graph tokens"
    )
    graph_ca_bundle: Path | None = Field(default=None, description="extra CA file to trust (local stand-ins)")
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
        description='JSON list: [{"id","mailbox","numbers":[…],"display_name"}]',
    )
    parser_profiles: str = Field(default="", description="JSON list of extra parser profiles, or a file path")
    link_admins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated AAD object ids or UPNs allowed to link channels"
    )
    default_locale: str = Field(default="de-DE", description="language of cards posted to channels (de or en)")

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
        "10 min); a longer Retry-After wins",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="log level")

    @field_validator("pool_lines", mode="before")
    @classmethod
    def _parse_lines(cls, value: object) -> object:
        if isinstance(value, str):
            import json

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

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("public_base_url", "graph_base_url", "graph_authority_host")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        problems: list[str] = []
        ids = [line.id for line in self.pool_lines]
        if len(set(ids)) != len(ids):
            problems.append("POOL_LINES: line ids must be unique")
        mailboxes = [line.mailbox for line in self.pool_lines]
        if len(set(mailboxes)) != len(mailboxes):
            problems.append("POOL_LINES: each mailbox may belong to one line only")
        if not self.sandbox_mode:
            if not self.app_id:
                problems.append("MicrosoftAppId: required (only SANDBOX_MODE may run without authentication)")
            elif not GUID_PATTERN.match(self.app_id):
                problems.append("MicrosoftAppId: must be a GUID")
            if self.app_type == "SingleTenant" and not self.app_tenant_id:
                problems.append("MicrosoftAppTenantId: required for SingleTenant")
        if self.pool_lines and not self.graph_client_state.get_secret_value():
            problems.append("GRAPH_CLIENT_STATE: required (a random secret of up to 128 characters)")
        if len(self.graph_client_state.get_secret_value()) > 128:
            problems.append("GRAPH_CLIENT_STATE: at most 128 characters")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @cached_property
    def lines_by_id(self) -> dict[str, PoolLine]:
        return {line.id: line for line in self.pool_lines}

    def line_for_mailbox(self, mailbox: str) -> PoolLine | None:
        return next((line for line in self.pool_lines if line.mailbox == mailbox.lower()), None)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.app_id)


def _setting_name(field_name: str) -> str:
    """The environment name a person sets for ``field_name``."""
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = [str(choice) for choice in alias.choices] if isinstance(alias, AliasChoices) else []
        if field_name.lower() in {name, *(choice.lower() for choice in choices)}:
            return choices[0] if choices else name.upper()
    return field_name.upper()


def _describe(error: ValidationError) -> str:
    lines: list[str] = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if not item["loc"]:
            lines.extend(f"  - {problem}" for problem in message.split("; "))
            continue
        head, *rest = item["loc"]
        location = _setting_name(str(head)) + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in rest)
        lines.append(f"  - {location}: {message}")
    return "Invalid configuration:\n" + "\n".join(lines)


def load_settings(**overrides: object) -> Settings:
    """Read the settings; raise :class:`ConfigError` naming every bad setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


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
