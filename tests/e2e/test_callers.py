"""Caller identification: matching numbers to contacts and directory users, the delta-refreshed cache, the card."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import Settings
from bot.core.callers import CallerDirectory, entries_of
from bot.core.values import Person
from bot.domain.callers import (
    DIRECTORY_SOURCE_KEY,
    UNKNOWN_CALLER,
    CallerIdentity,
    CallerIndex,
    CallerSource,
    contacts_source_key,
    identify,
)
from bot.graph.people import GraphPeople
from bot.storage.caller_store import CallerCache
from bot.storage.database import Database
from bot.storage.sql_store import SqlLeaseRepository
from cards.case_card import build_case_card
from sandbox.graph import GraphStandIn
from tests.support.cards import card_event, case_view, make_case, texts
from tests.support.graph import graph_client

POOL = "zentrale@praxis.example"
OTHER_POOL = "labor@praxis.example"
WEBER = "+492214710355"
ALL = (CallerSource.CONTACTS, CallerSource.DIRECTORY, CallerSource.PBX)


def contact(entry_id: str, name: str, *phones: str, company: str | None = None, mailbox: str = POOL) -> list:
    return entries_of(contacts_source_key(mailbox), Person(entry_id, name, company, phones))


def user(entry_id: str, name: str, *phones: str, department: str | None = None) -> list:
    return entries_of(DIRECTORY_SOURCE_KEY, Person(entry_id, name, department, phones))


def who(index: CallerIndex, number: str | None, *, sources=ALL, pbx_name: str | None = None) -> CallerIdentity:
    return identify(index, sources, number=number, mailbox=POOL, pbx_name=pbx_name)


# Matching --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    ["0221 4710355", "0221/47103-55", "+49 221 4710355", "+49 (0)221 4710355", "0049 221 4710355", "tel:+492214710355"],
)
def test_national_and_international_spellings_match_the_e164_caller(typed: str) -> None:
    index = CallerIndex(contact("c1", "Dr. Weber", typed, company="Labor Nord"))
    assert who(index, WEBER) == CallerIdentity("Dr. Weber", "Labor Nord", CallerSource.CONTACTS)


def test_every_phone_field_of_a_contact_matches() -> None:
    index = CallerIndex(contact("c1", "Dr. Weber", "0221 4710355", "0171 2345678", "+43 1 5121234"))
    for number in (WEBER, "+491712345678", "+4315121234"):
        assert who(index, number).name == "Dr. Weber"


def test_no_match_gives_no_name() -> None:
    index = CallerIndex(contact("c1", "Dr. Weber", "0221 4710355"))
    assert who(index, "+4930999999") == UNKNOWN_CALLER
    assert who(index, None) == UNKNOWN_CALLER


def test_a_number_two_people_share_is_ambiguous_and_shows_no_name() -> None:
    index = CallerIndex(
        contact("c1", "Dr. Weber", "0221 4710355") + contact("c2", "Dr. Vogel", "+49 221 4710355")
        + user("u1", "Anna Intern", "0221 4710355")
    )  # fmt: skip
    assert who(index, WEBER, pbx_name="Weber") == UNKNOWN_CALLER


def test_the_same_person_saved_twice_is_not_ambiguous() -> None:
    index = CallerIndex(contact("c1", "Dr. Weber", "0221 4710355") + contact("c2", "dr. weber ", "0221 4710355"))
    assert who(index, WEBER).name == "Dr. Weber"


def test_sources_are_asked_in_the_configured_order() -> None:
    index = CallerIndex(
        contact("c1", "Dr. Weber", "0221 4710355", company="Labor Nord")
        + user("u1", "Wolf Weber", "0221 4710355", department="Einkauf")
    )
    assert who(index, WEBER).source is CallerSource.CONTACTS
    directory_first = (CallerSource.DIRECTORY, CallerSource.CONTACTS)
    assert who(index, WEBER, sources=directory_first) == CallerIdentity("Wolf Weber", "Einkauf", CallerSource.DIRECTORY)
    assert who(index, "+4930555", pbx_name="Herr Sommer") == CallerIdentity("Herr Sommer", None, CallerSource.PBX)
    assert who(index, "+4930555", sources=(CallerSource.CONTACTS,), pbx_name="Herr Sommer") == UNKNOWN_CALLER


def test_contacts_of_another_pool_mailbox_do_not_match() -> None:
    index = CallerIndex(contact("c1", "Dr. Weber", "0221 4710355", mailbox=OTHER_POOL))
    assert who(index, WEBER) == UNKNOWN_CALLER


def test_entries_skip_what_is_no_number_and_people_without_a_name() -> None:
    assert [e.number for e in contact("c1", "X", "n/a", "", "0221 4710355", "0221 4710355")] == [WEBER]
    assert contact("c2", "   ", "0221 4710355") == []


# Cache refreshed by delta through msgraph-sdk against the Graph stand-in ------------------------------------------


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "sandbox_mode": True,
        "graph_client_state": "state-secret",
        "pool_lines": [{"id": "zentrale", "mailbox": POOL, "numbers": ["+49301234500"], "display_name": "Zentrale"}],
        "caller_sources": "contacts,directory,pbx",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def graph() -> AsyncIterator[GraphStandIn]:
    stand_in = GraphStandIn(mailboxes=[POOL])
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


def directory_over(database: Database, graph: GraphStandIn, instance: str = "one") -> CallerDirectory:
    return CallerDirectory(
        settings(),
        CallerCache(database),
        GraphPeople(graph_client(graph), page_size=3),
        SqlLeaseRepository(database),
        instance,
    )


def card_name(directory: CallerDirectory, caller: str, caller_name: str | None = None) -> CallerIdentity | None:
    return directory.identify(
        replace(make_case(card_event(caller=caller, caller_name=caller_name)), line_id="zentrale")
    )


async def test_the_cache_follows_contacts_and_users_by_delta(database: Database, graph: GraphStandIn) -> None:
    graph.upsert_contact(POOL, {"id": "c1", "displayName": "Dr. Weber", "companyName": "Labor Nord",
                                "businessPhones": ["0221 4710355"], "mobilePhone": "0171 2345678"})  # fmt: skip
    for n in range(7):  # more than one page
        graph.upsert_contact(
            POOL, {"id": f"filler-{n}", "displayName": f"Kontakt {n}", "homePhones": [f"030 55500{n}"]}
        )
    graph.upsert_user({"id": "u1", "displayName": "Anna Intern", "department": "Empfang", "mobilePhone": "+4915112345"})
    directory = directory_over(database, graph)

    await directory.refresh()
    assert card_name(directory, WEBER) == CallerIdentity("Dr. Weber", "Labor Nord", CallerSource.CONTACTS)
    assert card_name(directory, "+4915112345") == CallerIdentity("Anna Intern", "Empfang", CallerSource.DIRECTORY)
    assert card_name(directory, "+4930555006") == CallerIdentity("Kontakt 6", None, CallerSource.CONTACTS)
    first_round = [r for r in graph.requests if "delta" in r.path]
    assert len([r for r in first_round if "$skiptoken" in r.query]) >= 2  # several pages followed
    assert all(r.query.get("$select") for r in first_round if "$skiptoken" not in r.query)

    graph.clear_requests()
    graph.upsert_contact(POOL, {"id": "c1", "displayName": "Dr. Weber", "companyName": "Labor Süd",
                                "businessPhones": ["0221 4710399"], "mobilePhone": None})  # fmt: skip
    graph.remove_user("u1")
    await directory.refresh()
    delta_requests = [r for r in graph.requests if "delta" in r.path]
    assert delta_requests and all("$deltatoken" in r.query for r in delta_requests)  # only changes, by deltaLink
    assert card_name(directory, WEBER) == UNKNOWN_CALLER  # the old number is gone
    assert card_name(directory, "+492214710399") == CallerIdentity("Dr. Weber", "Labor Süd", CallerSource.CONTACTS)
    assert card_name(directory, "+4915112345") == UNKNOWN_CALLER
    assert card_name(directory, "+491712345678") == UNKNOWN_CALLER  # the mobile number was removed from the contact

    # Another instance on the same database answers from the cache without asking Graph itself.
    graph.clear_requests()
    other = directory_over(database, graph, instance="two")
    await other.reload()
    assert card_name(other, "+492214710399") == CallerIdentity("Dr. Weber", "Labor Süd", CallerSource.CONTACTS)
    assert graph.requests == []


async def test_an_expired_delta_state_reads_everything_again(database: Database, graph: GraphStandIn) -> None:
    graph.upsert_contact(POOL, {"id": "c1", "displayName": "Dr. Weber", "businessPhones": ["0221 4710355"]})
    directory = directory_over(database, graph)
    await directory.refresh()
    graph.expire_delta_tokens()
    graph.remove_contact(POOL, "c1")
    graph.upsert_contact(POOL, {"id": "c2", "displayName": "Frau Lind", "businessPhones": ["030 1111111"]})
    await directory.refresh()
    assert card_name(directory, WEBER) == UNKNOWN_CALLER
    assert card_name(directory, "+49301111111") == CallerIdentity("Frau Lind", None, CallerSource.CONTACTS)


async def test_a_refused_source_keeps_the_others_and_the_last_known_names(
    database: Database, graph: GraphStandIn
) -> None:
    graph.upsert_contact(POOL, {"id": "c1", "displayName": "Dr. Weber", "businessPhones": ["0221 4710355"]})
    graph.upsert_user({"id": "u1", "displayName": "Anna Intern", "mobilePhone": "+4915112345"})
    directory = directory_over(database, graph)
    await directory.refresh()
    graph.add_fault("403", path="/users/delta")
    graph.upsert_contact(POOL, {"id": "c2", "displayName": "Frau Lind", "businessPhones": ["030 1111111"]})
    await directory.refresh()
    assert card_name(directory, "+4915112345") == CallerIdentity("Anna Intern", None, CallerSource.DIRECTORY)
    assert card_name(directory, "+49301111111") == CallerIdentity("Frau Lind", None, CallerSource.CONTACTS)


async def test_only_one_instance_asks_graph_at_a_time(database: Database, graph: GraphStandIn) -> None:
    leases = SqlLeaseRepository(database)
    assert await leases.try_acquire("caller-cache-refresh", "someone-else", timedelta(minutes=5), datetime.now(UTC))
    graph.upsert_contact(POOL, {"id": "c1", "displayName": "Dr. Weber", "businessPhones": ["0221 4710355"]})
    await directory_over(database, graph).refresh()
    assert graph.requests == []


# The card --------------------------------------------------------------------------------------------------------


def test_card_shows_name_and_company_and_always_the_number() -> None:
    view = case_view(make_case(card_event(caller=WEBER)), identity=CallerIdentity("Dr. Weber", "Labor Nord"))
    shown = list(texts(build_case_card(view)))
    assert "0221 4710355" in shown
    assert any("Dr. Weber" in t and "Labor Nord" in t for t in shown)


def test_card_without_a_known_name_shows_the_number_only() -> None:
    view = case_view(make_case(card_event(caller=WEBER, caller_name="PBX Name")), identity=UNKNOWN_CALLER)
    shown = list(texts(build_case_card(view)))
    assert "0221 4710355" in shown
    assert not any("PBX Name" in t for t in shown)


def test_card_without_caller_sources_shows_the_mail_name_as_before() -> None:
    view = case_view(make_case(card_event(caller=WEBER, caller_name="Herr Sommer")))
    assert "Herr Sommer" in list(texts(build_case_card(view)))
    for sources in ("", "pbx"):
        directory = CallerDirectory(settings(caller_sources=sources), None, None, None, "x")  # type: ignore[arg-type]
        assert directory.identify(make_case(card_event(caller=WEBER, caller_name="Herr Sommer"))) is None


def test_default_setting_is_todays_behaviour() -> None:
    default = Settings(_env_file=None, sandbox_mode=True)  # type: ignore[call-arg]
    assert default.caller_sources == ["pbx"]
