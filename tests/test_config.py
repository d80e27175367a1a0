"""Configuration: clear errors naming the setting; README and .env.example list every setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, env_example, load_settings, settings_markdown

ROOT = Path(__file__).resolve().parents[1]
LINE = (
    '[{"id":"zentrale","mailbox":"Zentrale@Praxis.example","numbers":["030 / 12 34 56-7"],"display_name":"Zentrale"}]'
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env from the developer's checkout
    for name in ("MicrosoftAppId", "MicrosoftAppPassword", "MicrosoftAppTenantId", "POOL_LINES", "SANDBOX_MODE"):
        monkeypatch.delenv(name, raising=False)


def test_pool_lines_are_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOL_LINES", LINE)
    settings = load_settings(sandbox_mode=True, graph_client_state="s")
    line = settings.pool_lines[0]
    assert line.mailbox == "zentrale@praxis.example"
    assert line.numbers == ["+49301234567"]
    assert settings.line_for_mailbox("ZENTRALE@praxis.example") == line


def test_production_needs_the_bot_identity() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings()
    message = str(error.value)
    assert "MicrosoftAppId: required" in message
    assert "MicrosoftAppTenantId: required for SingleTenant" in message


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({"MicrosoftAppType": "Foo"}, "MicrosoftAppType: Input should be"),
        ({"POOL_LINES": "[{"}, "POOL_LINES: must be a JSON list"),
        ({"POOL_LINES": LINE.replace('"zentrale"', '"Zentrale!"')}, "POOL_LINES[0].id: must be a lower-case slug"),
        ({"POOL_LINES": LINE.replace("030 / 12 34 56-7", "abc")}, "POOL_LINES[0].numbers: 'abc' is not a phone"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL: must start with sqlite:/// or postgresql://"),
        ({"PUBLIC_BASE_URL": "ftp://x"}, "PUBLIC_BASE_URL: 'ftp://x' is not an http(s) URL"),
        ({"MicrosoftAppId": "not-a-guid", "MicrosoftAppTenantId": "t"}, "MicrosoftAppId: must be a GUID"),
        ({"POOL_LINES": LINE, "SANDBOX_MODE": "true"}, "GRAPH_CLIENT_STATE: required"),
        ({"PORT": "0", "SANDBOX_MODE": "true"}, "PORT: Input should be greater than or equal to 1"),
    ],
)
def test_each_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], expected: str) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert expected in str(error.value)


def test_start_up_stops_with_one_clear_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "serve"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "MicrosoftAppType": "Foo", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("Invalid configuration:")
    assert "MicrosoftAppType" in result.stderr
    assert "Traceback" not in result.stderr


def test_readme_and_env_example_list_every_setting() -> None:
    assert settings_markdown() in (ROOT / "README.md").read_text(encoding="utf-8")
    assert (ROOT / ".env.example").read_text(encoding="utf-8") == env_example()
