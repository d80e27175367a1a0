"""Configuration: clear errors naming the setting; README and .env.example list every setting."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.config import ConfigError, env_example, load_serving_settings, load_settings, settings_markdown

ROOT = Path(__file__).resolve().parents[2]
LINE = (
    '[{"id":"zentrale","mailbox":"Zentrale@Praxis.example","numbers":["030 / 12 34 56-7"],"display_name":"Zentrale"}]'
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env from the developer's checkout
    for name in ("MicrosoftAppId", "MicrosoftAppPassword", "MicrosoftAppTenantId", "POOL_LINES", "SANDBOX_MODE"):
        monkeypatch.delenv(name, raising=False)


def test_placetel_options_per_line_and_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    extras = '"notify_secret":"s3cret","auto_done_on_callback":"reached","team_extensions":{"7777Anna@FPBX.de":"Anna"},'
    monkeypatch.setenv("POOL_LINES", LINE.replace('"display_name"', extras + '"display_name"'))
    settings = load_settings(sandbox_mode=True, graph_client_state="s")
    line = settings.pool_lines[0]
    assert line.notify_secret is not None and line.notify_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.auto_done_for(line) == "reached" and settings.auto_done_on_callback == "never"
    assert line.extension_name("7777anna@fpbx.de") == "Anna" and line.extension_name("other@fpbx.de") is None
    assert settings.placetel_match_window_seconds == 180


def test_pool_lines_are_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOL_LINES", LINE)
    settings = load_settings(sandbox_mode=True, graph_client_state="s")
    line = settings.pool_lines[0]
    assert line.mailbox == "zentrale@praxis.example"
    assert line.numbers == ["+49301234567"]
    assert settings.line_for_mailbox("ZENTRALE@praxis.example") == line


APP_ID, TENANT = "8e1b2c3d-0000-4000-8000-00000000b001", "8e1b2c3d-0000-4000-8000-00000000b002"
COMPLETE = {
    "MicrosoftAppId": APP_ID,
    "MicrosoftAppPassword": "bot-secret",
    "MicrosoftAppTenantId": TENANT,
    "GRAPH_TENANT_ID": TENANT,
    "GRAPH_CLIENT_ID": APP_ID,
    "GRAPH_CLIENT_SECRET": "graph-secret",
    "GRAPH_CLIENT_STATE": "client-state",
    "POOL_LINES": LINE,
    "LINK_ADMINS": "it@praxis.example",
    "PUBLIC_BASE_URL": "https://rufpool.praxis.example",
}
"""A configuration ``python -m bot serve`` accepts; each row of the table below breaks it."""

PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

# (changes to COMPLETE; None removes a setting) -> every setting the message must name, in any order
BROKEN: list[tuple[str, dict[str, str | None], set[str]]] = [
    ("nothing set", {name: None for name in COMPLETE},
     {"MicrosoftAppId", "POOL_LINES", "GRAPH_TENANT_ID", "GRAPH_CLIENT_ID", "GRAPH_CLIENT_SECRET"}),
    ("only the bot's ids (the reported hang)",
     {name: None for name in COMPLETE if name not in ("MicrosoftAppId", "MicrosoftAppTenantId")},
     {"MicrosoftAppPassword", "POOL_LINES", "GRAPH_TENANT_ID", "GRAPH_CLIENT_ID", "GRAPH_CLIENT_SECRET"}),
    ("empty bot password", {"MicrosoftAppPassword": ""}, {"MicrosoftAppPassword"}),
    ("bad GUID and missing client state in one round", {"MicrosoftAppId": "rufpool-bot", "GRAPH_CLIENT_STATE": None},
     {"MicrosoftAppId", "GRAPH_CLIENT_STATE"}),
    ("bad GUIDs everywhere", {"MicrosoftAppTenantId": "contoso.onmicrosoft.com", "GRAPH_TENANT_ID": "x",
                              "GRAPH_CLIENT_ID": "{" + APP_ID + "}"},
     {"MicrosoftAppTenantId", "GRAPH_TENANT_ID", "GRAPH_CLIENT_ID"}),
    ("multi-tenant bot", {"MicrosoftAppType": "MultiTenant"}, {"MicrosoftAppType"}),
    ("unknown app type", {"MicrosoftAppType": "Foo"}, {"MicrosoftAppType"}),
    ("managed identity without tenant", {"MicrosoftAppType": "UserAssignedMSI", "MicrosoftAppTenantId": None},
     {"MicrosoftAppTenantId"}),
    ("POOL_LINES not JSON, URL not a URL", {"POOL_LINES": "[{", "PUBLIC_BASE_URL": "rufpool.praxis.example"},
     {"POOL_LINES", "PUBLIC_BASE_URL"}),
    ("bad line fields", {"POOL_LINES": LINE.replace('"zentrale"', '"Zentrale!"').replace("030 / 12 34 56-7", "abc")},
     {"POOL_LINES[0].id", "POOL_LINES[0].numbers"}),
    ("duplicate lines", {"POOL_LINES": LINE[:-1] + "," + LINE[1:]}, {"POOL_LINES"}),
    ("database and Graph URLs", {"DATABASE_URL": "mysql://x", "GRAPH_BASE_URL": "graph.microsoft.com",
                                 "TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL": "login"},
     {"DATABASE_URL", "GRAPH_BASE_URL", "TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL"}),
    ("missing Graph secret", {"GRAPH_CLIENT_SECRET": None}, {"GRAPH_CLIENT_SECRET"}),
    ("certificate file missing", {"GRAPH_CLIENT_SECRET": None, "GRAPH_CLIENT_CERTIFICATE_PATH": "missing.pem"},
     {"GRAPH_CLIENT_CERTIFICATE_PATH"}),
    ("certificate without key", {"GRAPH_CLIENT_SECRET": None, "GRAPH_CLIENT_CERTIFICATE_PATH": "cert-only.pem"},
     {"GRAPH_CLIENT_CERTIFICATE_PATH"}),
    ("CA bundle not PEM", {"GRAPH_CA_BUNDLE": "not-pem.txt", "BOT_CA_BUNDLE": "missing.pem"},
     {"GRAPH_CA_BUNDLE", "BOT_CA_BUNDLE"}),
    ("parser profiles not JSON", {"PARSER_PROFILES": "[{"}, {"PARSER_PROFILES"}),
    ("client state too long, port out of range", {"GRAPH_CLIENT_STATE": "s" * 129, "PORT": "0"},
     {"GRAPH_CLIENT_STATE", "PORT"}),
    ("sandbox on a public address", {"SANDBOX_MODE": "true", "MicrosoftAppId": None, "HOST": "0.0.0.0"}, {"HOST"}),
    ("callback options", {"AUTO_DONE_ON_CALLBACK": "always", "POOL_LINES": LINE.replace(
        '"display_name"', '"auto_done_on_callback":"maybe","team_extensions":{" ":"x"},"display_name"')},
     {"AUTO_DONE_ON_CALLBACK", "POOL_LINES[0].auto_done_on_callback", "POOL_LINES[0].team_extensions"}),
]  # fmt: skip


def _environment(tmp_path: Path, changes: dict[str, str | None]) -> dict[str, str]:
    (tmp_path / "cert-only.pem").write_text(PEM_CERT)
    (tmp_path / "not-pem.txt").write_text("hello")
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)} | COMPLETE
    for name, value in changes.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return environment


def _named_settings(message: str) -> set[str]:
    return {line[4:].split(": ", 1)[0] for line in message.splitlines() if line.startswith("  - ")}


def test_the_complete_configuration_is_accepted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in _environment(tmp_path, {}).items():
        monkeypatch.setenv(name, value)
    settings = load_serving_settings()
    assert settings.app_id == APP_ID and settings.pool_lines[0].id == "zentrale"


@pytest.mark.parametrize(("changes", "expected"), [row[1:] for row in BROKEN], ids=[row[0] for row in BROKEN])
def test_every_problem_is_named_in_one_round(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, changes: dict[str, str | None], expected: set[str]
) -> None:
    for name in COMPLETE:
        monkeypatch.delenv(name, raising=False)
    for name, value in _environment(tmp_path, changes).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_serving_settings()
    message = str(error.value)
    assert message.startswith("Invalid configuration:")
    assert _named_settings(message) == expected, message
    assert all(problem.fix for problem in error.value.problems)
    assert message.count("\n    fix: ") == len(error.value.problems)
    for secret in ("bot-secret", "graph-secret", "client-state"):
        assert secret not in message


def test_serve_exits_at_once_with_one_message_for_each_broken_configuration(tmp_path: Path) -> None:
    """The real command, every row: exit code 2, the message on stderr, no traceback, no hang."""
    for name, changes, expected in BROKEN:
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "bot", "serve"],
            cwd=tmp_path,
            env=_environment(tmp_path, changes),
            capture_output=True,
            text=True,
            timeout=30,
        )
        elapsed = time.monotonic() - started
        print(f"{name}: exit {result.returncode} after {elapsed:.2f} s")
        assert result.returncode == 2, (name, result.stderr)
        assert result.stderr.startswith("Invalid configuration:"), (name, result.stderr)
        assert _named_settings(result.stderr) == expected, (name, result.stderr)
        assert "Traceback" not in result.stderr and not result.stdout


def test_a_failing_start_up_ends_with_one_line_not_a_hang(tmp_path: Path) -> None:
    """Valid settings, but the port is taken: exit 1 naming the port, no traceback."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        environment = _environment(tmp_path, {"PORT": str(port), "DATABASE_URL": f"sqlite:///{tmp_path}/r.sqlite3"})
        result = subprocess.run(
            [sys.executable, "-m", "bot", "serve"],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1, result.stderr
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_readme_and_env_example_list_every_setting() -> None:
    assert settings_markdown() in (ROOT / "README.md").read_text(encoding="utf-8")
    assert (ROOT / ".env.example").read_text(encoding="utf-8") == env_example()
