"""A card click's answer as JSON: the refused clicks of a race, answered with one card object, share one encoding."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botbuilder.core import InvokeResponse

from bot.teams import auth
from bot.teams.auth import _AnswerEncoder

CARD_TYPE = "application/vnd.microsoft.card.adaptive"


def card_answer(card: dict[str, Any]) -> InvokeResponse:
    return InvokeResponse(status=200, body={"statusCode": 200, "type": CARD_TYPE, "value": card})


def test_one_card_object_is_encoded_once_and_every_answer_is_its_json(monkeypatch: pytest.MonkeyPatch) -> None:
    encodings: list[Any] = []
    dumps = json.dumps

    def counting(value: Any, **kwargs: Any) -> str:
        encodings.append(value)
        return dumps(value, **kwargs)

    monkeypatch.setattr(auth.json, "dumps", counting)
    encoder = _AnswerEncoder()
    shared = {"type": "AdaptiveCard", "body": [{"type": "TextBlock", "text": "Bereits übernommen von Anna"}]}
    other = {"type": "AdaptiveCard", "body": [{"type": "TextBlock", "text": "Übernommen"}]}

    answers = [encoder.response(card_answer(shared)) for _ in range(49)]
    assert len(encodings) == 1
    winner = encoder.response(card_answer(other))
    again = encoder.response(card_answer(dict(shared)))  # equal, but another object: encoded anew
    assert len(encodings) == 3

    for response, card in [*((answer, shared) for answer in answers), (winner, other), (again, shared)]:
        assert response.status == 200
        assert response.content_type == "application/json"
        assert response.body is not None
        assert json.loads(bytes(response.body)) == {"statusCode": 200, "type": CARD_TYPE, "value": card}


def test_answers_without_a_card_are_encoded_each_time() -> None:
    encoder = _AnswerEncoder()
    first = encoder.response(InvokeResponse(status=200, body={"statusCode": 400, "value": {"message": "a"}}))
    second = encoder.response(InvokeResponse(status=200, body={"statusCode": 400, "value": {"message": "b"}}))
    assert first.body is not None and second.body is not None
    assert json.loads(bytes(first.body))["value"] == {"message": "a"}
    assert json.loads(bytes(second.body))["value"] == {"message": "b"}
