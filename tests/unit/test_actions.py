"""Card actions on the store (SQLite and PostgreSQL): one handler per verb, compare-and-set, origin checks, effects."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.config import Settings
from bot.core import effects
from bot.core.actions import ActionRequest, ActionResult, CardActions
from bot.core.effects import no_effects
from bot.core.ports import ChannelLink
from bot.core.voicemail import VoicemailAccess
from bot.domain.cases import Actor, Case
from bot.domain.events import EventKind, Voicemail
from bot.domain.state_machine import USER_VERBS
from bot.storage.sql_store import SqlStore
from cards.case_card import REFRESH_VERB
from cards.i18n import Lang
from cards.list_card import LIST_PAGE_VERB
from cards.renderer import CardRenderer
from tests.support.storage import ALICE, BOB, make_event

TENANT, TEAM, CHANNEL = "tenant-1", "19:team@thread.tacv2", "19:calls@thread.tacv2"


def _settings() -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        sandbox_mode=True,
        graph_client_state="state-secret",
        pool_lines=[{"id": "line-1", "mailbox": "line-1@example.com", "numbers": ["+49301234500"],
                     "display_name": "Zentrale"}],
    )  # fmt: skip


async def _list_page(request: ActionRequest, notice: str | None, positive: bool) -> ActionResult:
    return ActionResult(200, message=f"page {request.data.get('offset')}", extra={"notice": notice, "ok": positive})


def _actions(store: SqlStore) -> CardActions:
    access = VoicemailAccess(store, "https://bot.example", timedelta(minutes=15))
    return CardActions(_settings(), store, _list_page, access)


async def _linked_case(store: SqlStore, **event: Any) -> Case:
    await store.links.link_channel(
        ChannelLink("line-1", TENANT, TEAM, CHANNEL, "https://smba.example/", "aad-admin", datetime.now(UTC))
    )
    return (await store.cases.record_event(make_event("m-1", **event), effects=no_effects)).case


def _request(
    verb: str,
    case: Case,
    actor: Actor = ALICE,
    *,
    tenant_id: str = TENANT,
    channel_id: str | None = CHANNEL,
    version: int | None = None,
    locale: str = "de-DE",
    is_team_member: Callable[[str], Awaitable[bool]] | None = None,
) -> ActionRequest:
    data = {"case_id": case.id, "version": case.version if version is None else version, "line_id": case.line_id}
    return ActionRequest(verb, data, actor, tenant_id, f"{CHANNEL};messageid=1", channel_id, locale, is_team_member)


async def _job_kinds(store: SqlStore) -> list[str]:
    kinds = [effects.POST_CARD, effects.THREAD_REPLY, effects.SET_FLAG]
    jobs = await store.jobs.lease("test", kinds, lease_for=timedelta(minutes=1), limit=100)
    return sorted(job.kind for job in jobs)


def test_every_user_verb_and_list_paging_has_its_own_handler(store: SqlStore) -> None:
    handlers = _actions(store)._handlers
    assert set(handlers) == {verb.value for verb in USER_VERBS} | {LIST_PAGE_VERB, REFRESH_VERB, "listen"}
    assert len({id(handler) for handler in handlers.values()}) == len(handlers)


async def test_an_applied_claim_answers_with_the_new_card_and_enqueues_its_effects(store: SqlStore) -> None:
    case = await _linked_case(store)
    result = await _actions(store).handle(_request("claim", case))

    assert result.applied and result.status == 200 and result.card is not None
    assert "In Bearbeitung – Alice" in str(result.card)
    kinds = await _job_kinds(store)
    assert kinds.count(effects.POST_CARD) == 1 and kinds.count(effects.THREAD_REPLY) == 1


async def test_a_refusal_names_the_holder_and_time_and_refreshes_a_stale_card(store: SqlStore) -> None:
    case = await _linked_case(store)
    actions = _actions(store)
    await actions.handle(_request("claim", case))
    await _job_kinds(store)  # take the claim's jobs out of the way

    stale = await actions.handle(_request("claim", case, BOB))
    assert not stale.applied and stale.card is not None
    assert stale.message is not None and stale.message.startswith("Bereits übernommen von Alice um ")
    assert await _job_kinds(store) == [effects.POST_CARD]

    current = await store.cases.get(case.id)
    assert current is not None
    fresh = await actions.handle(_request("claim", current, BOB))
    assert not fresh.applied and await _job_kinds(store) == []  # the card was current: nothing to refresh


class CountingRenderer(CardRenderer):
    def __init__(self, settings: Settings, clock: Callable[[], datetime]) -> None:
        super().__init__(settings, clock=clock)
        self.drawn = 0

    def case_card(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.drawn += 1
        return super().case_card(*args, **kwargs)


async def test_the_losers_of_a_race_share_one_read_of_case_and_link_and_one_drawing_of_the_card(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fifty people clicking one card: the snapshots, the origin check and the refused answer's card are one each."""
    case = await _linked_case(store)
    now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    renderer = CountingRenderer(_settings(), clock=lambda: now)
    actions = CardActions(_settings(), store, _list_page, VoicemailAccess(store, "https://bot.example",
                          timedelta(minutes=15)), renderer, clock=lambda: now)  # fmt: skip
    await actions.handle(_request("claim", case, BOB))
    reads = {"case": 0, "link": 0}
    get, link_for_line = store.cases.get, store.links.link_for_line

    async def counted_get(case_id: str) -> Case | None:
        reads["case"] += 1
        return await get(case_id)

    async def counted_link(line_id: str) -> ChannelLink | None:
        reads["link"] += 1
        return await link_for_line(line_id)

    monkeypatch.setattr(store.cases, "get", counted_get)
    monkeypatch.setattr(store.links, "link_for_line", counted_link)
    renderer.drawn = 0
    clickers = [replace(ALICE, id=f"aad-{n}", name=f"Person {n}") for n in range(20)]

    results = await asyncio.gather(*(actions.handle(_request("claim", case, who)) for who in clickers))

    assert all(not result.applied and result.card == results[0].card for result in results)
    assert "Bereits übernommen von Bob" in str(results[0].message)
    assert reads == {"case": 1, "link": 1}
    assert renderer.drawn == 1


async def test_a_refused_answer_is_drawn_anew_after_a_second_or_for_another_version(store: SqlStore) -> None:
    case = await _linked_case(store)
    now = [datetime(2026, 12, 2, 9, 0, tzinfo=UTC)]
    renderer = CountingRenderer(_settings(), clock=lambda: now[0])
    actions = CardActions(_settings(), store, _list_page, VoicemailAccess(store, "https://bot.example",
                          timedelta(minutes=15)), renderer, clock=lambda: now[0])  # fmt: skip
    await actions.handle(_request("claim", case, BOB))
    renderer.drawn = 0

    await actions.handle(_request("claim", case, ALICE))
    now[0] += timedelta(milliseconds=500)
    await actions.handle(_request("claim", case, ALICE))
    assert renderer.drawn == 1
    now[0] += timedelta(seconds=1)
    await actions.handle(_request("claim", case, ALICE))
    assert renderer.drawn == 2

    # Bob releases and claims again: a new version, a new drawing.
    current = await store.cases.get(case.id)
    assert current is not None
    await actions.handle(_request("release", current, BOB))
    await actions.handle(_request("claim", current, BOB))
    renderer.drawn = 0
    refused = await actions.handle(_request("claim", case, ALICE))
    assert renderer.drawn == 1 and not refused.applied


async def test_english_locale_gives_english_texts_in_personal_chat(store: SqlStore) -> None:
    case = await _linked_case(store)
    actions = _actions(store)
    await actions.handle(_request("claim", case))

    async def member(_team_id: str) -> bool:
        return True

    in_channel = await actions.handle(_request("claim", case, BOB, locale="en-US"))
    refused = await actions.handle(_request("claim", case, BOB, locale="en-US", channel_id=None, is_team_member=member))

    assert in_channel.message is not None and in_channel.message.startswith("Bereits übernommen von Alice")
    assert refused.message is not None and refused.message.startswith("Already claimed by Alice at ")
    assert "In progress – Alice" in str(refused.card)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ({"tenant_id": "other-tenant"}, False),
        ({"channel_id": "19:other@thread.tacv2"}, False),
        ({"channel_id": None}, False),  # personal chat without a membership check
        ({"channel_id": None, "member": False}, False),
        ({"channel_id": None, "member": True}, True),
        ({}, True),
    ],
    ids=["other-tenant", "other-channel", "chat-unchecked", "chat-non-member", "chat-member", "own-channel"],
)
async def test_actions_count_only_from_the_cases_channel_and_tenant(
    store: SqlStore, origin: dict[str, Any], allowed: bool
) -> None:
    case = await _linked_case(store)
    origin = dict(origin)  # the parameter is shared by the SQLite and PostgreSQL runs
    member = origin.pop("member", None)

    async def is_member(team_id: str) -> bool:
        return bool(member) and team_id == TEAM

    request = _request("claim", case, is_team_member=is_member if member is not None else None, **origin)
    result = await _actions(store).handle(request)

    assert result.applied is allowed
    if not allowed:
        assert result.status == 403 and result.card is None
        current = await store.cases.get(case.id)
        assert current is not None and current.version == case.version


async def test_unknown_verbs_and_cases_are_answered_plainly(store: SqlStore) -> None:
    case = await _linked_case(store)
    actions = _actions(store)
    assert (await actions.handle(_request("explode", case))).status == 400
    missing = ActionRequest("claim", {"case_id": "nope"}, ALICE, TENANT, CHANNEL, CHANNEL)
    assert (await actions.handle(missing)).status == 404
    assert (await actions.handle(ActionRequest(LIST_PAGE_VERB, {"offset": 5}, ALICE, TENANT, CHANNEL, CHANNEL))
            ).message == "page 5"  # fmt: skip


async def test_listen_gives_members_only_a_link_and_the_card_none(store: SqlStore) -> None:
    voicemail = Voicemail(attachment_id="att-1", file_name="vm.mp3", duration_seconds=42)
    case = await _linked_case(store, kind=EventKind.VOICEMAIL, voicemail=voicemail)
    actions = _actions(store)
    assert "/voicemail/" not in str(CardRenderer(_settings()).case_card(case, Lang.DE))
    data = {"case_id": case.id, "event": case.events[0].source_id}

    async def member(team_id: str) -> bool:
        return team_id == TEAM

    async def stranger(_team_id: str) -> bool:
        return False

    granted = await actions.handle(
        ActionRequest("listen", data, ALICE, TENANT, CHANNEL, CHANNEL, is_team_member=member)
    )
    refused = await actions.handle(
        ActionRequest("listen", data, ALICE, TENANT, CHANNEL, CHANNEL, is_team_member=stranger)
    )
    unknown = await actions.handle(
        ActionRequest("listen", {**data, "event": "other"}, ALICE, TENANT, CHANNEL, CHANNEL, is_team_member=member)
    )

    assert granted.status == 200 and "https://bot.example/voicemail/v2." in str(granted.card)
    assert (refused.status, refused.card) == (403, None)
    assert unknown.status == 404


async def test_claim_from_a_list_answers_with_the_list_again(store: SqlStore) -> None:
    case = await _linked_case(store)
    request = ActionRequest(
        verb="claim",
        data={"case_id": case.id, "version": case.version, "list": {"command": "open", "offset": 10}},
        actor=ALICE,
        tenant_id=TENANT,
        conversation_id=CHANNEL,
        channel_id=CHANNEL,
    )
    actions = _actions(store)

    claimed = await actions.handle(request)
    again = await actions.handle(replace(request, actor=BOB))

    assert claimed.applied and claimed.message == "page 10"
    assert claimed.extra == {"notice": "Gespeichert – die Karte im Kanal ist aktualisiert", "ok": True}
    assert not again.applied and again.extra["ok"] is False
    assert ALICE.name in again.extra["notice"]
