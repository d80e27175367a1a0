"""Build the Teams app package (``manifest.json`` + icons + language files, zipped) and validate it offline.

The manifest comes from ``manifest/manifest.template.json``, whose ``${{NAME}}`` placeholders are filled from
arguments (the CLI takes them from the environment). Validation runs Microsoft's own validator, npm
``@microsoft/app-manifest``, through ``manifest/validate.js`` against the schemas bundled in that package, so it
needs ``node`` and ``npm ci`` but no internet. This is a tool for a repository checkout (``make package``); the
running bot does not use it.

    python -m bot.packaging --app-id <GUID> --out build/rufpool.zip
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

from bot.config import GUID_PATTERN

REPO_ROOT = Path(__file__).resolve().parents[1]
MANIFEST_DIR = REPO_ROOT / "manifest"
TEMPLATE_PATH = MANIFEST_DIR / "manifest.template.json"
VALIDATOR_SCRIPT = MANIFEST_DIR / "validate.js"
VALIDATOR_PACKAGE = REPO_ROOT / "node_modules" / "@microsoft" / "app-manifest"
VALIDATOR_TIMEOUT_SECONDS = 120

PLACEHOLDER = re.compile(r"\$\{\{([A-Z0-9_]+)\}\}")
SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
DEVELOPER_NAME_MAX = 32  # manifest schema: developer.name maxLength
# Zip entries get a fixed timestamp so that the same inputs always give a byte-identical package.
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)


class PackagingError(ValueError):
    """A setting needed for the app package is missing or malformed; ``setting`` names it."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting


class ValidatorUnavailableError(RuntimeError):
    """The offline validator cannot run (node or node_modules missing, or the validator itself failed)."""


def build_app_package(
    app_id: str,
    out_path: Path,
    *,
    base_url: str,
    developer_name: str,
    developer_website_url: str,
    developer_privacy_url: str | None = None,
    developer_terms_url: str | None = None,
    version: str | None = None,
) -> Path:
    """Write the Teams app package zip to ``out_path`` and return that path.

    ``app_id`` is the bot's Microsoft App ID (also used as the Teams app id). ``base_url`` is the bot's public
    https base URL; its host becomes the manifest's only valid domain. Privacy and terms URLs default to the
    website URL; ``version`` defaults to the installed rufpool version. Raises :class:`PackagingError` naming
    the setting that is wrong.
    """
    app_id = _guid(app_id, "MicrosoftAppId")
    website = _https_url(developer_website_url, "DEVELOPER_WEBSITE_URL")
    values = {
        "MICROSOFT_APP_ID": app_id,
        "APP_VERSION": _semver(version if version is not None else metadata.version("rufpool")),
        "DEVELOPER_NAME": _developer_name(developer_name),
        "DEVELOPER_WEBSITE_URL": website,
        "DEVELOPER_PRIVACY_URL": _https_url(developer_privacy_url or website, "DEVELOPER_PRIVACY_URL"),
        "DEVELOPER_TERMS_URL": _https_url(developer_terms_url or website, "DEVELOPER_TERMS_URL"),
        "BOT_DOMAIN": _host(_https_url(base_url, "PUBLIC_BASE_URL")),
    }
    manifest = _fill(json.loads(TEMPLATE_PATH.read_text(encoding="utf-8")), values)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        _add(archive, "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8"))
        for name in _package_files(manifest):
            _add(archive, name, (MANIFEST_DIR / name).read_bytes())
    return out_path


def validator_available() -> bool:
    """True when ``node`` and the installed npm validator are there (``npm ci`` has run)."""
    return shutil.which("node") is not None and VALIDATOR_PACKAGE.is_dir()


def validate_manifest(path: Path) -> list[str]:
    """Validate one manifest or localization JSON file offline; return its schema errors (empty = valid)."""
    return _run_validator([path])[str(path)]


def validate_app_package(zip_path: Path) -> list[str]:
    """Validate a built package: its manifest and every language file it names; errors prefixed by file."""
    with tempfile.TemporaryDirectory(prefix="rufpool-package-") as tmp:
        folder = Path(tmp)
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(folder)
        manifest_path = folder / "manifest.json"
        if not manifest_path.is_file():
            return ["manifest.json: missing from the package root"]
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        missing = [
            f"{name}: named in manifest.json but missing"
            for name in _package_files(manifest)
            if not (folder / name).is_file()
        ]
        language_files = [folder / name for name in _language_files(manifest) if (folder / name).is_file()]
        results = _run_validator([manifest_path, *language_files])
        return missing + [f"{Path(file).name}: {error}" for file, errors in results.items() for error in errors]


def _run_validator(paths: Sequence[Path]) -> dict[str, list[str]]:
    node = shutil.which("node")
    if node is None or not VALIDATOR_PACKAGE.is_dir():
        raise ValidatorUnavailableError(
            "the offline manifest validator needs node and the npm packages: run `npm ci` in the repository"
        )
    completed = subprocess.run(
        [node, str(VALIDATOR_SCRIPT), *map(str, paths)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=VALIDATOR_TIMEOUT_SECONDS,
        check=False,
    )
    if completed.returncode not in (0, 1):
        raise ValidatorUnavailableError(f"manifest validator failed: {completed.stderr.strip()}")
    results: dict[str, list[str]] = json.loads(completed.stdout)
    return results


def _package_files(manifest: dict[str, Any]) -> list[str]:
    """Files besides manifest.json that the package must contain: the icons and the language files."""
    return [manifest["icons"]["color"], manifest["icons"]["outline"], *_language_files(manifest)]


def _language_files(manifest: dict[str, Any]) -> list[str]:
    languages = manifest.get("localizationInfo", {}).get("additionalLanguages", [])
    return [language["file"] for language in languages]


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def _fill(node: Any, values: dict[str, str]) -> Any:
    """Replace ``${{NAME}}`` in every string of the parsed template (never in raw JSON text: no injection)."""
    if isinstance(node, dict):
        return {key: _fill(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_fill(item, values) for item in node]
    if isinstance(node, str):
        unknown = sorted(set(PLACEHOLDER.findall(node)) - values.keys())
        if unknown:
            raise PackagingError(str(TEMPLATE_PATH), f"unknown placeholder(s) {', '.join(unknown)}")
        return PLACEHOLDER.sub(lambda match: values[match.group(1)], node)
    return node


def _guid(value: str, setting: str) -> str:
    if not GUID_PATTERN.match(value.strip()):
        raise PackagingError(
            setting, f"must be a GUID like 00000000-0000-0000-0000-000000000000, got {value.strip()!r}"
        )
    return value.strip().lower()


def _https_url(value: str, setting: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise PackagingError(setting, f"must be an https:// URL, got {value.strip()!r}")
    return value.strip().rstrip("/")


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


def _semver(value: str) -> str:
    if not SEMVER.match(value):
        raise PackagingError("version", f"must be MAJOR.MINOR.PATCH (e.g. 1.0.0), got {value!r}")
    return value


def _developer_name(value: str) -> str:
    name = value.strip()
    if not name or len(name) > DEVELOPER_NAME_MAX:
        raise PackagingError("DEVELOPER_NAME", f"must be 1 to {DEVELOPER_NAME_MAX} characters, got {value!r}")
    return name


def _parser() -> argparse.ArgumentParser:
    dotenv = {key: value for key, value in dotenv_values(".env").items() if value is not None}

    def env(name: str, default: str | None = None) -> str | None:
        """The environment first, then ``.env`` (as the bot reads its settings)."""
        return os.environ.get(name, dotenv.get(name, default))

    parser = argparse.ArgumentParser(
        prog="python -m bot.packaging",
        description="Build the Rufpool Teams app package (zip) and validate it offline.",
    )
    parser.add_argument("--app-id", default=env("MicrosoftAppId", ""), help="bot app id (env MicrosoftAppId)")
    parser.add_argument("--out", type=Path, default=Path("build/rufpool.zip"), help="zip to write")
    parser.add_argument("--base-url", default=env("PUBLIC_BASE_URL", ""), help="public https URL (env PUBLIC_BASE_URL)")
    parser.add_argument("--developer-name", default=env("DEVELOPER_NAME", ""), help="env DEVELOPER_NAME")
    parser.add_argument(
        "--developer-website-url", default=env("DEVELOPER_WEBSITE_URL", ""), help="env DEVELOPER_WEBSITE_URL"
    )
    parser.add_argument(
        "--developer-privacy-url", default=env("DEVELOPER_PRIVACY_URL"), help="env DEVELOPER_PRIVACY_URL"
    )
    parser.add_argument("--developer-terms-url", default=env("DEVELOPER_TERMS_URL"), help="env DEVELOPER_TERMS_URL")
    parser.add_argument("--app-version", default=None, help="manifest version (default: rufpool's version)")
    parser.add_argument("--skip-validation", action="store_true", help="do not run the offline validator")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        package = build_app_package(
            args.app_id,
            args.out,
            base_url=args.base_url,
            developer_name=args.developer_name,
            developer_website_url=args.developer_website_url,
            developer_privacy_url=args.developer_privacy_url,
            developer_terms_url=args.developer_terms_url,
            version=args.app_version,
        )
        errors = [] if args.skip_validation else validate_app_package(package)
    except (PackagingError, ValidatorUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if errors:
        print(f"{package} is NOT a valid Teams app package:", file=sys.stderr)
        for error in errors:
            print(f"  - {error}", file=sys.stderr)
        return 1
    print(f"wrote {package}" + ("" if args.skip_validation else " (validated offline)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
