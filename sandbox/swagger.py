"""Validation of Bot Connector request bodies against the published swagger 2.0 contract.

Swagger 2.0 schema objects are a JSON Schema draft-4 dialect; three AutoRest conventions need translating so the
check matches what the service (ASP.NET + Newtonsoft.Json) actually accepts:

* ``x-ms-enum`` with ``modelAsString: true`` is an *extensible* enum: any string binds (the C# property is a
  string), so the ``enum`` list is not enforced.
* ``"type": "object"`` without properties is AutoRest's "any JSON value" (C# ``object``), e.g. ``Activity.value``,
  ``channelData``, ``Attachment.content``.
* Every Bot Framework schema property is nullable in C#: an explicit ``null`` binds like an absent property.

Newtonsoft also binds property names case-insensitively, so botbuilder-schema's ``tenantID`` (where the swagger
says ``tenantId``) is accepted by the real service. We bind the same way, then validate the canonical names,
and report each case-folded name so the deviation stays visible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator

DEFAULT_SWAGGER_PATH = Path(__file__).resolve().parent / "contracts" / "bot-connector-api-v3.swagger.json"
_REF_PREFIX = "#/definitions/"


@dataclass(frozen=True)
class ValidationResult:
    body: Any  # the body as the service binds it: canonical property names, nulls removed
    errors: list[str] = field(default_factory=list)
    case_folded: list[str] = field(default_factory=list)  # "path: sent -> canonical"


def _to_json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return {"$ref": node["$ref"]}
    schema = {k: _to_json_schema(v) for k, v in node.items() if not k.startswith("x-") and k != "properties"}
    if node.get("x-ms-enum", {}).get("modelAsString"):
        schema.pop("enum", None)
    if node.get("properties"):
        schema["properties"] = {name: _to_json_schema(prop) for name, prop in node["properties"].items()}
    elif node.get("type") == "object" and "additionalProperties" not in node:
        schema.pop("type")
    return schema


class SwaggerContract:
    """The swagger document, with a draft-4 validator per definition used as a request body."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self._definitions = {name: _to_json_schema(d) for name, d in document["definitions"].items()}
        self._validators: dict[str, Draft4Validator] = {}

    @classmethod
    def load(cls, path: Path = DEFAULT_SWAGGER_PATH) -> SwaggerContract:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def body_definition(self, path_template: str, method: str) -> str | None:
        """The definition a route's body must match, read from the swagger's own ``in: body`` parameter."""
        operation = self.document["paths"].get(path_template, {}).get(method.lower(), {})
        for parameter in operation.get("parameters", []):
            if parameter.get("in") == "body":
                return str(parameter["schema"]["$ref"]).removeprefix(_REF_PREFIX)
        return None

    def validate(self, definition: str, body: Any) -> ValidationResult:
        case_folded: list[str] = []
        bound = self._bind(body, {"$ref": _REF_PREFIX + definition}, "$", case_folded)
        validator = self._validators.get(definition)
        if validator is None:
            validator = Draft4Validator({"definitions": self._definitions, "$ref": _REF_PREFIX + definition})
            self._validators[definition] = validator
        errors = [f"{error.json_path}: {error.message}" for error in validator.iter_errors(bound)]
        return ValidationResult(bound, errors, case_folded)

    def _resolve(self, schema: Any) -> Any:
        while isinstance(schema, dict) and "$ref" in schema:
            schema = self._definitions[str(schema["$ref"]).removeprefix(_REF_PREFIX)]
        return schema

    def _bind(self, value: Any, schema: Any, path: str, case_folded: list[str]) -> Any:
        """Newtonsoft-style binding: drop nulls, map property names case-insensitively onto the schema's."""
        schema = self._resolve(schema)
        if isinstance(value, list):
            items = schema.get("items", {}) if isinstance(schema, dict) else {}
            return [self._bind(v, items, f"{path}[{i}]", case_folded) for i, v in enumerate(value)]
        if not isinstance(value, dict) or not isinstance(schema, dict) or "properties" not in schema:
            return value
        properties: dict[str, Any] = schema["properties"]
        canonical = {name.lower(): name for name in properties}
        bound: dict[str, Any] = {}
        for key, item in value.items():
            if item is None:
                continue
            name: str = canonical.get(str(key).lower()) or key
            if name != key:
                case_folded.append(f"{path}.{key} -> {name}")
            if name in bound:  # both spellings sent: Newtonsoft keeps the last one
                case_folded.append(f"{path}.{key}: duplicate of {name}, last one wins")
            bound[name] = self._bind(item, properties.get(name, {}), f"{path}.{name}", case_folded)
        return bound
