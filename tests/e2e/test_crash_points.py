"""A failure or a process death at each write boundary of the pipeline, then recovery: nothing lost, nothing twice.

Every point of :data:`POINTS` is enumerated, each with (a) one injected exception and (b) a death of the app that
reaches it (see :mod:`tests.support.crash`), on SQLite, PostgreSQL and two replicas on one PostgreSQL database. The
scenario takes one case through a first mail, a repeat call, a claim in Teams and a catch-up that finds a mail whose
notification was lost; the point is armed just before its step. After the retries, a restart (after a death) and
one periodic catch-up pass, :func:`sandbox.convergence.check` must hold: every mail one event, one card per
case showing its latest version, every flag agreeing with its case, no dead letter.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from botbuilder.core import TurnContext
from botbuilder.integration.aiohttp import CloudAdapter

from bot import app as app_module
from bot.core.jobs import JobRunner
from bot.graph import mailbox as mailbox_module
from bot.graph.mailbox import GraphMailboxes
from bot.storage import sql_store
from bot.storage.sql_store import SqlCardRepository, SqlCaseRepository, SqlSubscriptionRepository
from sandbox.connector import ConnectorStandIn
from sandbox.convergence import check
from sandbox.graph_model import Message
from sandbox.identity import IdentityServer
from sandbox.tls import TlsMaterial
from tests.support.bot_stack import BOT_FRAMEWORK_AUDIENCE, POOL_MAILBOX, user
from tests.support.crash import Cluster, CrashPoint, Injection, guard_databases, install, running_cluster
from tests.support.storage import fresh_postgres_schema

FIRST_MAIL, REPEAT_CALL, CLICK, CATCH_UP = "first mail", "repeat call", "click", "catch-up"
ANNA = user(0)
CALLERS = itertools.count()


def _effects(_cursor: Any, effects: Sequence[Any], *_args: Any, **_kwargs: Any) -> bool:
    return bool(effects)


POINTS = [
    CrashPoint("event-committed", SqlCaseRepository, "record_event", after=True, step=FIRST_MAIL),
    CrashPoint("outbox-insert", sql_store, "insert_effects", after=False, step=FIRST_MAIL, when=_effects),
    CrashPoint("teams-post-unsent", CloudAdapter, "create_conversation", after=False, step=FIRST_MAIL),
    CrashPoint("teams-post-accepted", CloudAdapter, "create_conversation", after=True, step=FIRST_MAIL),
    CrashPoint("activity-id-saved", SqlCardRepository, "save_card", after=True, step=FIRST_MAIL),
    CrashPoint("teams-put-accepted", TurnContext, "update_activity", after=True, step=REPEAT_CALL),
    CrashPoint("click-committed", SqlCaseRepository, "transition", after=True, step=CLICK),
    CrashPoint("click-outbox-insert", sql_store, "insert_effects", after=False, step=CLICK, when=_effects),
    CrashPoint("graph-patch-accepted", GraphMailboxes, "update_message", after=True, step=CLICK),
    CrashPoint(
        "delta-progress-saved", SqlSubscriptionRepository, "save_delta_progress", after=True, step=CATCH_UP,
        when=lambda _repository, _mailbox, next_link: next_link is not None,
    ),
    CrashPoint("delta-link-saved", SqlSubscriptionRepository, "save_delta_link", after=True, step=CATCH_UP),
]
MODES = ("fail", "die")
BACKENDS = ("sqlite", "postgres", "two-replicas")


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(
    scope="module",
    loop_scope="module",
    params=[BACKENDS[0], *(pytest.param(backend, marks=pytest.mark.postgres) for backend in BACKENDS[1:])],
)
async def cluster(
    request: pytest.FixtureRequest,
    identity_server: IdentityServer,
    sandbox_tls: TlsMaterial,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Cluster]:
    """One cluster per backend for all points (each test has cases of its own): starting one costs seconds."""
    replicas = 2 if request.param == "two-replicas" else 1
    tmp = tmp_path_factory.mktemp(str(request.param))
    connector = ConnectorStandIn(identity_server.stand_in.token_validator(BOT_FRAMEWORK_AUDIENCE))
    await connector.start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REQUESTS_CA_BUNDLE", str(sandbox_tls.trust_bundle))
        patch.setenv("OUTBOX_RETRY_BASE_SECONDS", "0.01")
        # Workers look for due jobs every 50 ms instead of 500: an enqueue that wakes nobody waits less.
        patch.setattr(app_module, "JobRunner", functools.partial(JobRunner, idle_poll=0.05))
        patch.setattr(mailbox_module, "DELTA_PAGE_SIZE", 2)  # a catch-up of several pages: progress saved per page
        async with contextlib.AsyncExitStack() as stack:
            if request.param == "sqlite":
                url = f"sqlite:///{tmp / 'rufpool.sqlite3'}"
            else:
                url = await stack.enter_async_context(fresh_postgres_schema())
            running = await stack.enter_async_context(
                running_cluster(identity_server, sandbox_tls, connector, tmp, url, replicas)
            )
            guard_databases(patch, running)
            yield running
    await connector.stop()
    assert not connector.violations


def deliver_unnoticed(cluster: Cluster, caller: str) -> str:
    """A missed-call mail whose notification is lost: only a delta query finds it."""
    box = cluster.graph.mailbox(POOL_MAILBOX)
    return box.add(
        Message(
            subject=f"Verpasster Anruf von '{caller}' auf '030 1234500'",
            sender_name="Placetel",
            sender_address="no-reply@placetel.de",
            body=f"Sie haben einen Anruf verpasst.\nVon: {caller}\nAn: 030 1234500\n",
            body_type="text",
            received=datetime.now(UTC),
            recipient_address=box.address,
            folder_id=box.inbox_id,
        )
    ).id


async def claim(cluster: Cluster, message_id: str) -> int | None:
    """Anna claims the mail's case on its card; the HTTP status Teams got (None: no answer, or no card to click)."""
    mail = await cluster.observer.mails.get_mail(POOL_MAILBOX, message_id)
    card = await cluster.observer.cards.get_card(mail.case_id) if mail else None
    if mail is None or card is None:
        return None
    stack = cluster.stack
    activity = stack._activity(  # the stack's Teams invoke, sent without asserting its status
        "invoke",
        ANNA,
        card.conversation_id,
        name="adaptiveCard/action",
        replyToId=card.activity_id,
        value={"action": {"type": "Action.Execute", "verb": "claim", "data": {"case_id": mail.case_id}}},
    )
    try:
        response = await stack.post_activity(activity)
    except aiohttp.ClientError:
        return None
    return response.status


async def scenario(cluster: Cluster) -> tuple[int | None, list[str]]:
    """Four new cases, one per step, so that no step repairs what an earlier one broke: a first mail, a repeat
    call, a claim in Teams and a mail only the catch-up finds. Returns the claim's HTTP status and the mails."""
    repeat_caller, clicked_caller, new_caller, late_caller = (f"0171 23{next(CALLERS):05d}" for _ in range(4))
    mails = [cluster.stack.deliver_missed_call(repeat_caller), cluster.stack.deliver_missed_call(clicked_caller)]
    await cluster.settle()
    cluster.arm(FIRST_MAIL)
    mails.append(cluster.stack.deliver_missed_call(new_caller))
    await cluster.settle()
    cluster.arm(REPEAT_CALL)
    mails.append(cluster.stack.deliver_missed_call(repeat_caller))
    await cluster.settle()
    cluster.arm(CLICK)
    status = await claim(cluster, mails[1])
    await cluster.settle()
    cluster.arm(CATCH_UP)
    mails.append(deliver_unnoticed(cluster, late_caller))
    await cluster.periodic_pass()
    return status, mails


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("point", POINTS, ids=[point.name for point in POINTS])
async def test_a_crash_point_loses_nothing_and_doubles_nothing(
    cluster: Cluster, point: CrashPoint, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs_before = await cluster.fresh_outbox()
    install(monkeypatch, cluster, point)
    cluster.injection = injection = Injection(point, death=mode == "die")
    try:
        status, mails = await scenario(cluster)
        await cluster.periodic_pass()  # after a restart too
    finally:
        cluster.injection = None

    assert injection.fired_in is not None, f"the scenario never reached {point.name}"
    result = await check(
        cluster.observer, cluster.graph, cluster.connector, [POOL_MAILBOX], only=mails, jobs_after=jobs_before
    )
    assert result.problems == []
    assert (result.mails, result.events, result.cases, result.cards) == (5, 5, 4, 4)
    if mode == "fail" and point.step == CLICK:
        assert status == 200, "a click answers from the committed state, never with an error"
