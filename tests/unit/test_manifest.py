"""The Teams app package: built from the template, validated offline with npm @microsoft/app-manifest."""

from __future__ import annotations

import importlib.util
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageStat

from bot import packaging
from bot.packaging import (
    PackagingError,
    ValidatorUnavailableError,
    build_app_package,
    validate_app_package,
    validate_manifest,
    validator_available,
)

APP_ID = "6f1c2b3a-1111-4222-8333-944445555666"
BASE_URL = "https://rufpool.muster.example"
DEVELOPER = {"developer_name": "Muster GmbH", "developer_website_url": "https://www.muster.example"}
SCHEMA_URL = "https://developer.microsoft.com/json-schemas/teams/v1.30/MicrosoftTeams.schema.json"


@pytest.fixture
def require_validator() -> None:
    """Skip only when npm packages are absent and REQUIRE_MANIFEST_VALIDATION is unset (CI sets it)."""
    if validator_available():
        return
    if os.environ.get("REQUIRE_MANIFEST_VALIDATION"):
        pytest.fail("REQUIRE_MANIFEST_VALIDATION is set but node or node_modules is missing: run `npm ci`")
    pytest.skip("offline manifest validator not installed (run `npm ci`)")


@pytest.fixture
def package(tmp_path: Path) -> Path:
    return build_app_package(APP_ID, tmp_path / "out" / "rufpool.zip", base_url=BASE_URL, **DEVELOPER)


@pytest.fixture
def unpacked(package: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(folder)
    return folder


@pytest.fixture
def write_json(tmp_path: Path) -> Callable[[str, dict[str, Any]], Path]:
    def write(name: str, document: dict[str, Any]) -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
        return path

    return write


def _manifest(folder: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return result


def test_package_holds_filled_manifest_icons_and_english_strings(package: Path, unpacked: Path) -> None:
    with zipfile.ZipFile(package) as archive:
        assert sorted(archive.namelist()) == ["color.png", "en.json", "manifest.json", "outline.png"]
    manifest = _manifest(unpacked)
    assert manifest["id"] == APP_ID
    assert manifest["bots"][0]["botId"] == APP_ID
    assert manifest["validDomains"] == ["rufpool.muster.example"]
    assert manifest["developer"]["privacyUrl"] == "https://www.muster.example"
    assert manifest["localizationInfo"]["defaultLanguageTag"] == "de"
    assert "${{" not in (unpacked / "manifest.json").read_text(encoding="utf-8")


def test_bot_offers_open_mine_help_in_team_and_personal_scope(unpacked: Path) -> None:
    bot = _manifest(unpacked)["bots"][0]
    assert sorted(bot["scopes"]) == ["personal", "team"]
    assert (bot["supportsFiles"], bot["isNotificationOnly"]) == (False, False)
    lists = {scope: entry["commands"] for entry in bot["commandLists"] for scope in entry["scopes"]}
    for scope in ("team", "personal"):
        assert [(c["title"], c["description"]) for c in lists[scope]] == [
            ("open", "Offene Rückrufe anzeigen"),
            ("mine", "Meine übernommenen Rückrufe"),
            ("statistik", "Statistik der Leitung (woche, monat)"),
            ("help", "Hilfe"),
        ]


def test_english_file_translates_every_command(unpacked: Path) -> None:
    english = json.loads((unpacked / "en.json").read_text(encoding="utf-8"))
    bot = _manifest(unpacked)["bots"][0]
    keys = {
        f"bots[0].commandLists[{i}].commands[{j}].description"
        for i, command_list in enumerate(bot["commandLists"])
        for j in range(len(command_list["commands"]))
    }
    assert keys <= english.keys()
    assert english["bots[0].commandLists[0].commands[0].description"] == "Show open callbacks"


def test_package_validates_offline_against_microsoft_schema(require_validator: None, package: Path) -> None:
    assert validate_app_package(package) == []


def test_manifest_and_language_file_validate_one_by_one(require_validator: None, unpacked: Path) -> None:
    assert validate_manifest(unpacked / "manifest.json") == []
    assert validate_manifest(unpacked / "en.json") == []


def test_manifest_without_name_is_reported_invalid(
    require_validator: None, unpacked: Path, write_json: Callable[[str, dict[str, Any]], Path]
) -> None:
    manifest = _manifest(unpacked)
    del manifest["name"]
    errors = validate_manifest(write_json("no-name.json", manifest))
    assert any("name" in error and "required" in error for error in errors), errors


def test_bad_values_in_manifest_are_reported(
    require_validator: None, unpacked: Path, write_json: Callable[[str, dict[str, Any]], Path]
) -> None:
    manifest = _manifest(unpacked)
    manifest["bots"][0]["botId"] = "not-a-guid"
    manifest["description"]["short"] = "x" * 81
    errors = validate_manifest(write_json("bad-values.json", manifest))
    assert any(error.startswith("/bots/0/botId") for error in errors), errors
    assert any(error.startswith("/description/short") for error in errors), errors


def test_broken_language_file_is_reported_invalid(
    require_validator: None, unpacked: Path, write_json: Callable[[str, dict[str, Any]], Path]
) -> None:
    english = json.loads((unpacked / "en.json").read_text(encoding="utf-8"))
    english["description.short"] = "x" * 81
    english["name.shortt"] = "typo"
    errors = validate_manifest(write_json("en-broken.json", english))
    assert any("description.short" in error for error in errors), errors
    assert any("name.shortt" in error for error in errors), errors


def test_package_missing_a_file_is_reported(require_validator: None, package: Path, tmp_path: Path) -> None:
    stripped = tmp_path / "stripped.zip"
    with zipfile.ZipFile(package) as source, zipfile.ZipFile(stripped, "w") as target:
        for name in source.namelist():
            if name != "outline.png":
                target.writestr(name, source.read(name))
    assert validate_app_package(stripped) == ["outline.png: named in manifest.json but missing"]


def test_validator_never_downloads_a_schema(
    require_validator: None, write_json: Callable[[str, dict[str, Any]], Path]
) -> None:
    path = write_json("unknown-schema.json", {"$schema": SCHEMA_URL.replace("v1.30", "v9.99")})
    with pytest.raises(ValidatorUnavailableError, match="not bundled"):
        validate_manifest(path)


def test_icons_have_teams_sizes_and_outline_is_white_on_transparent(unpacked: Path) -> None:
    with Image.open(unpacked / "color.png") as color:
        assert color.size == (192, 192)
        assert color.convert("RGBA").getchannel("A").getextrema() == (255, 255), "must be fully opaque"
    with Image.open(unpacked / "outline.png") as outline:
        assert outline.size == (32, 32)
        assert outline.mode == "RGBA"
        alpha = outline.getchannel("A")
        assert alpha.getextrema() == (0, 255), "needs transparent and opaque pixels"
        assert alpha.histogram()[0] > 32 * 32 // 3, "mostly transparent background"
        assert outline.convert("RGB").getextrema() == ((255, 255),) * 3, "outline must be white only"


def _load_icon_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_icons", packaging.MANIFEST_DIR / "make_icons.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("function", "file"), [("color_icon", "color.png"), ("outline_icon", "outline.png")])
def test_committed_icons_come_from_the_script(function: str, file: str) -> None:
    drawn = getattr(_load_icon_script(), function)().convert("RGBA")
    with Image.open(packaging.MANIFEST_DIR / file) as committed:
        difference = ImageChops.difference(drawn, committed.convert("RGBA"))
    assert max(ImageStat.Stat(difference).mean) < 2.0


@pytest.mark.parametrize("app_id", ["", "rufpool", "6f1c2b3a-1111-4222-8333-94444555566", f"{{{APP_ID}}}"])
def test_bad_app_id_names_the_setting(app_id: str, tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match=r"^MicrosoftAppId: must be a GUID") as caught:
        build_app_package(app_id, tmp_path / "x.zip", base_url=BASE_URL, **DEVELOPER)
    assert caught.value.setting == "MicrosoftAppId"
    assert not (tmp_path / "x.zip").exists()


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"base_url": "http://rufpool.muster.example"}, "PUBLIC_BASE_URL"),
        ({"base_url": "https://"}, "PUBLIC_BASE_URL"),
        ({"developer_website_url": "www.muster.example"}, "DEVELOPER_WEBSITE_URL"),
        ({"developer_terms_url": "ftp://muster.example/agb"}, "DEVELOPER_TERMS_URL"),
        ({"developer_name": ""}, "DEVELOPER_NAME"),
        ({"developer_name": "M" * 33}, "DEVELOPER_NAME"),
        ({"version": "1.0"}, "version"),
    ],
)
def test_other_bad_settings_are_named(overrides: dict[str, str], setting: str, tmp_path: Path) -> None:
    arguments: dict[str, Any] = {"base_url": BASE_URL, **DEVELOPER, **overrides}
    with pytest.raises(PackagingError) as caught:
        build_app_package(APP_ID, tmp_path / "x.zip", **arguments)
    assert caught.value.setting == setting
    assert str(caught.value).startswith(f"{setting}: ")


def test_same_inputs_give_identical_package(package: Path, tmp_path: Path) -> None:
    again = build_app_package(APP_ID, tmp_path / "again.zip", base_url=BASE_URL, **DEVELOPER)
    assert again.read_bytes() == package.read_bytes()


def test_cli_reads_settings_from_environment(
    require_validator: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MicrosoftAppId", APP_ID.upper())
    monkeypatch.setenv("PUBLIC_BASE_URL", BASE_URL + "/")
    monkeypatch.setenv("DEVELOPER_NAME", "Muster GmbH")
    monkeypatch.setenv("DEVELOPER_WEBSITE_URL", "https://www.muster.example")
    out = tmp_path / "cli.zip"
    assert packaging.main(["--out", str(out), "--app-version", "2.3.4"]) == 0
    assert "validated offline" in capsys.readouterr().out
    with zipfile.ZipFile(out) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert (manifest["id"], manifest["version"]) == (APP_ID, "2.3.4")


def test_cli_reports_bad_setting_and_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MicrosoftAppId", raising=False)
    code = packaging.main(
        [
            "--out", str(tmp_path / "cli.zip"),
            "--base-url", BASE_URL,
            "--developer-name", "Muster GmbH",
            "--developer-website-url", "https://www.muster.example",
            "--skip-validation",
        ]
    )  # fmt: skip
    assert code == 2
    assert "error: MicrosoftAppId: must be a GUID" in capsys.readouterr().err
