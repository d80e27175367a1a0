"""The aiohttp application factory (aiohttp-demos ``polls`` style: ``web.AppKey`` and ``cleanup_ctx``)."""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot import metrics
from bot.clock import Clock, ShiftableClock, system_clock
from bot.config import ConfigError, ConfigProblem, Settings, listens_on_loopback_only
from bot.core import effects
from bot.core.actions import CardActions
from bot.core.callers import CallerDirectory
from bot.core.commands import Commands
from bot.core.coordinator import MailboxCoordinator
from bot.core.ingest import MailIngestor
from bot.core.jobs import IngressGauge, JobRunner
from bot.core.live_calls import LiveCalls
from bot.core.ports import RetryPolicy, Store
from bot.core.reminders import OVERVIEW as OVERVIEW_JOB
from bot.core.reminders import REMINDER as REMINDER_JOB
from bot.core.reminders import ReminderService
from bot.core.repair import RepairSweep
from bot.core.retention import Retention
from bot.core.sync import FlagSync
from bot.core.values import GLOBAL_SCOPE
from bot.core.voicemail import VOICEMAIL_PATH, LegacyVoicemailLinks, VoicemailAccess
from bot.graph.channel_cards import ChannelCards
from bot.graph.client import build_credential, build_graph_client
from bot.graph.directory import GraphDirectory
from bot.graph.mailbox import GraphMailboxes
from bot.graph.people import GraphPeople
from bot.graph.subscriptions import LIFECYCLE_PATH, NOTIFICATION_PATH, SubscriptionManager
from bot.graph.webhooks import NOTIFICATION_JOB, notification_handler
from bot.placetel.notify import NOTIFY_JOB, NOTIFY_PATH, notify_handler
from bot.placetel.profiles import BUILTIN_PROFILES, ParserProfile, load_profiles, merge_profiles
from bot.placetel.runner import ParserRunner
from bot.stats.chart import CHART_PATH, ChartLinks, chart_handler
from bot.stats.digest import DIGEST_JOB, DigestRuns, DigestScheduler
from bot.stats.queries import StatsQueries
from bot.stats.service import StatsService
from bot.storage.caller_store import CallerCache
from bot.storage.factory import open_store, sql_database
from bot.storage.repair_store import SqlRepairQueries
from bot.tasks import SHUTDOWN_STEP_SECONDS, cancel_and_wait, stop_each
from bot.teams.adapter import build_adapter, inbound_policy
from bot.teams.auth import authenticated_messages_handler
from bot.teams.bot import RufpoolBot
from bot.teams.digest import DigestPoster
from bot.teams.pacing import Pacer
from bot.teams.reminder_posting import ReminderPoster
from bot.web.voicemail import voicemail_handler
from cards.i18n import BERLIN, language_for
from cards.renderer import CardRenderer

log = logging.getLogger(__name__)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Services:
    """Everything the running bot holds; tests reach in through ``app[SERVICES]``."""

    settings: Settings
    store: Store
    runner: JobRunner
    coordinator: MailboxCoordinator
    mailboxes: GraphMailboxes
    actions: CardActions
    messages: Handler
    notifications: Handler
    voicemail: Handler
    placetel_notify: Handler
    clock: Clock
    """Where the bot reads the time; shiftable only in the local sandbox (the demo's "+1 h")."""
    reminders: ReminderService
    ingress: IngressGauge
    """Counts the requests being answered; the job workers step back during a burst of them."""


SETTINGS = web.AppKey("settings", Settings)
SERVICES = web.AppKey("services", Services)
CHART: web.AppKey[Handler] = web.AppKey("chart")
CALLERS = web.AppKey("callers", CallerDirectory)
METRICS_ONLY = web.AppKey("metrics_only", Services)
"""Set on the separate metrics listener: it serves /metrics without the bearer token."""
CLOCK = web.AppKey("clock", object)


def answered_first(ingress: IngressGauge, handler: Handler) -> Handler:
    """``handler`` counted on ``ingress``: while a burst of such requests is answered, the job workers step back."""

    async def counted(request: web.Request) -> web.StreamResponse:
        with ingress.answering():
            return await handler(request)

    return counted


def notify_secrets(settings: Settings) -> dict[str, str]:
    """Placetel Notify secrets by scope: the global one and each line's own."""
    secrets = {GLOBAL_SCOPE: settings.placetel_notify_secret.get_secret_value()}
    secrets.update(
        {line.id: line.notify_secret.get_secret_value() for line in settings.pool_lines if line.notify_secret}
    )
    return secrets


def parser_profiles(settings: Settings) -> tuple[ParserProfile, ...]:
    raw = settings.parser_profiles.strip()
    if not raw:
        return tuple(BUILTIN_PROFILES)
    text = Path(raw).read_text(encoding="utf-8") if not raw.lstrip().startswith(("[", "{")) else raw
    return merge_profiles(load_profiles(text), BUILTIN_PROFILES)


async def _services(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    clock = clock_for(app)
    instance_id = f"instance-{uuid.uuid4().hex[:8]}"
    # Everything that only needs the settings first: a failure then leaves nothing open (an open store's thread
    # would keep the process alive).
    credential = build_credential(settings)
    graph = build_graph_client(settings, credential)
    adapter, authentication, bot_auth = build_adapter(settings)
    store = await open_store(settings.database_url)
    mailboxes = GraphMailboxes(graph)

    async def refresh_cards_of(numbers: set[str]) -> None:
        cases, _ = await store.cases.list_active([line.id for line in settings.pool_lines], limit=10_000)
        for case in cases:
            if case.caller in numbers:
                await store.jobs.add([effects.RefreshCard(case.id, redraw=True)])

    callers = CallerDirectory(
        settings,
        CallerCache(sql_database(store)),
        GraphPeople(graph),
        store.leases,
        instance_id,
        on_numbers_changed=refresh_cards_of,
    )
    flag_sync = FlagSync(settings, store, mailboxes)
    parser = ParserRunner(parser_profiles(settings))
    ingestor = MailIngestor(settings, store, mailboxes, parser, flag_sync.observe)
    subscriptions = SubscriptionManager(graph, store, settings, instance_id)
    repair = RepairSweep(store, SqlRepairQueries(sql_database(store)))
    coordinator = MailboxCoordinator(
        settings, store, subscriptions, ingestor, instance_id, flag_sync.reconcile, repair.run
    )
    chart_links = ChartLinks.from_settings(settings)
    app[CHART] = chart_handler(chart_links)
    app[CALLERS] = callers
    queries = StatsQueries(sql_database(store), callbacks_known=any(notify_secrets(settings).values()))
    stats = StatsService(settings, queries, chart_links, callers.name_for_number)
    commands = Commands(settings, store, GraphDirectory(graph).is_team_owner, stats=stats)
    voicemail_access = VoicemailAccess.from_settings(settings, store)
    renderer = CardRenderer(settings, callers.identify, clock=clock)
    actions = CardActions(settings, store, commands.list_page, voicemail_access, renderer, clock=clock)
    bot = RufpoolBot(store, commands, actions, settings.default_locale)
    # The runner is built below with live_calls among its handlers; the lambda reaches it once it exists.
    live_calls = LiveCalls(settings, store, wake_workers=lambda: runner.wake())
    pacer, channel_lang = Pacer(), language_for(settings.default_locale)
    poster = ReminderPoster(
        adapter,
        settings.app_id,
        store,
        renderer,
        pacer,
        channel_lang,
        settings.is_teams_service_url,
        {line.id: line.display_name or line.id for line in settings.pool_lines},
        channel_cards=ChannelCards(graph),
        settings=settings,
        clock=clock,
    )
    digest_runs = DigestRuns(sql_database(store))
    digests = DigestPoster(
        adapter, settings.app_id, store, digest_runs, stats, pacer, channel_lang, settings.is_teams_service_url
    )
    ingress = IngressGauge()
    runner = JobRunner(
        store.jobs,
        {
            NOTIFICATION_JOB: coordinator.handle_notification,
            effects.RESYNC_MAILBOX: coordinator.handle_resync,
            effects.POST_CARD: poster.handle_card,
            effects.THREAD_REPLY: poster.handle_reply,
            effects.BACKLOG_SUMMARY: poster.handle_backlog_summary,
            effects.SET_FLAG: flag_sync.handle_write_flag,
            DIGEST_JOB: digests.handle_digest,
            effects.ERASED_CARD: poster.handle_erased,
            NOTIFY_JOB: live_calls.handle_notification,
            REMINDER_JOB: poster.handle_reminder,
            OVERVIEW_JOB: poster.handle_overview,
        },
        policy=RetryPolicy(base_delay=timedelta(seconds=settings.outbox_retry_base_seconds)),
        on_give_up={NOTIFICATION_JOB: coordinator.notification_given_up},
        ingress=ingress,
    )
    reminders = ReminderService(settings, store.cases, store.reminders, clock, runner.wake)
    app[SERVICES] = Services(
        settings,
        store,
        runner,
        coordinator,
        mailboxes,
        actions,
        messages=answered_first(
            ingress,
            authenticated_messages_handler(
                adapter,
                bot,
                authentication,
                inbound_policy(settings),
                allow_unauthenticated=bot_auth.allow_unauthenticated,
                card_actions=bot.answer_card_action,
            ),
        ),
        notifications=answered_first(
            ingress, notification_handler(store.jobs, settings.graph_client_state.get_secret_value(), runner.wake)
        ),
        voicemail=voicemail_handler(voicemail_access, LegacyVoicemailLinks.from_settings(settings), store, mailboxes),
        placetel_notify=answered_first(
            ingress, notify_handler(store.jobs, notify_secrets(settings), runner.wake, clock)
        ),
        clock=clock,
        reminders=reminders,
        ingress=ingress,
    )
    retention = Retention(settings, store, instance_id)
    runner.start()
    parser.start()
    retention.start()
    # Subscribing makes Graph call our webhook back (validation handshake): that needs the server listening,
    # so it runs in the background after start-up.
    start_up = asyncio.create_task(coordinator.start_up(), name="mailbox-start-up")
    coordinator.start()
    await callers.reload()
    callers.start()
    digest_scheduler = DigestScheduler(settings, digest_runs, BERLIN, wake=runner.wake)
    digest_scheduler.start()
    reminders.start()
    log.info("Rufpool is listening (%d pool lines)", len(settings.pool_lines))
    if bot_auth.allow_unauthenticated:
        log.warning("SANDBOX_MODE without MicrosoftAppId: activities are accepted WITHOUT authentication (local only)")
    if settings.local_only_switches:
        log.warning(
            "LOCAL SANDBOX, NOT PRODUCTION: %s in effect (allowed only because HOST %s is loopback)",
            ", ".join(settings.local_only_switches),
            settings.host,
        )
    # Everything imported and built so far lives as long as the process: keep it out of the garbage collector's
    # full passes, which otherwise walk the whole heap (tens of milliseconds of stalled event loop each time).
    gc.freeze()
    try:
        yield
    finally:

        async def close_parser() -> None:
            ingestor.close()  # on the loop, not in a thread: a stuck thread would keep the loop from closing

        await stop_each(
            [
                ("mailbox start-up", lambda: cancel_and_wait([start_up])),
                ("retention", retention.stop),
                ("mailbox coordinator", coordinator.stop),
                ("caller directory", callers.stop),
                ("weekly digest", digest_scheduler.stop),
                ("reminders", reminders.stop),
                ("job runner", runner.stop),
                ("mail parser", close_parser),
                ("Graph credential", credential.close),
                ("store", store.close),
            ],
            SHUTDOWN_STEP_SECONDS,
        )


async def healthz(request: web.Request) -> web.Response:
    """Liveness and readiness in one answer.

    The process answering is alive; it is ready when its database answers. Plain ``/healthz`` is the liveness probe
    (always 200 while the process serves, so a database outage does not restart containers);
    ``/healthz?probe=ready`` answers 503 until the bot is ready.
    """
    services = request.app.get(SERVICES)
    database = False
    if services is not None:
        try:
            await services.store.ping()
            database = True
        except Exception as exc:
            log.warning("readiness: database unreachable: %s", type(exc).__name__)
    body: dict[str, object] = {"live": True, "ready": database, "checks": {"database": database}}
    switches = request.app[SETTINGS].local_only_switches
    if switches:
        body["local_sandbox"] = switches  # setting names only: an operator must see that this is no production
    status = 503 if request.query.get("probe") == "ready" and not database else 200
    return web.json_response(body, status=status)


async def metrics_endpoint(request: web.Request) -> web.Response:
    """Prometheus text; on the main port only with ``Authorization: Bearer <METRICS_TOKEN>``."""
    settings = request.app[SETTINGS]
    token = settings.metrics_token.get_secret_value()
    if request.app.get(METRICS_ONLY) is None:
        if not token:
            raise web.HTTPNotFound(text="/metrics is served on METRICS_PORT or with METRICS_TOKEN")
        offered = request.headers.get("Authorization", "")
        if not hmac.compare_digest(offered.encode(), f"Bearer {token}".encode()):
            raise web.HTTPUnauthorized(text="bearer token required", headers={"WWW-Authenticate": "Bearer"})
    services = request.app.get(SERVICES) or request.app.get(METRICS_ONLY)
    if services is not None:
        for state, count in (await services.store.jobs.depth()).items():
            metrics.OUTBOX_DEPTH.labels(state).set(count)
        for state, count in (await services.store.cases.count_by_state()).items():
            metrics.CASES.labels(state).set(count)
    body = generate_latest(metrics.REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _metrics_site(app: web.Application) -> AsyncIterator[None]:
    """``/metrics`` on METRICS_HOST:METRICS_PORT, a listener apart from the one Teams and Graph reach."""
    settings = app[SETTINGS]
    if not settings.metrics_port:
        yield
        return
    metrics_app = web.Application()
    metrics_app[SETTINGS] = settings
    metrics_app[METRICS_ONLY] = app[SERVICES]
    metrics_app.router.add_get("/metrics", metrics_endpoint)
    runner = web.AppRunner(metrics_app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.metrics_host, settings.metrics_port).start()
        log.info("metrics on %s:%d", settings.metrics_host, settings.metrics_port)
        yield
    finally:
        await runner.cleanup()


async def messages(request: web.Request) -> web.StreamResponse:
    return await request.app[SERVICES].messages(request)


async def notifications(request: web.Request) -> web.StreamResponse:
    return await request.app[SERVICES].notifications(request)


async def voicemail(request: web.Request) -> web.StreamResponse:
    return await request.app[SERVICES].voicemail(request)


def clock_for(app: web.Application) -> Clock:
    """A clock given to :func:`create_app` (tests), else the system clock; the sandbox's can be shifted forward."""
    given = app.get(CLOCK)
    if callable(given):
        return given  # type: ignore[no-any-return]
    return ShiftableClock() if app[SETTINGS].sandbox_mode else system_clock


async def chart(request: web.Request) -> web.StreamResponse:
    return await request.app[CHART](request)


async def placetel_notify(request: web.Request) -> web.StreamResponse:
    return await request.app[SERVICES].placetel_notify(request)


def create_app(settings: Settings, clock: Clock | None = None) -> web.Application:
    switches = settings.local_only_switches
    if switches and not listens_on_loopback_only(settings.host):
        # Settings validation refuses this already; a copied or constructed Settings must not slip through.
        raise ConfigError(
            [
                ConfigProblem(
                    "HOST",
                    f"{settings.host} is not a loopback address, but {', '.join(switches)} are only allowed when HOST "
                    "is a loopback address",
                    "remove them for production, or set HOST=127.0.0.1 for a local sandbox.",
                )
            ]
        )
    app = web.Application(client_max_size=1024 * 1024)
    app[SETTINGS] = settings
    if clock is not None:
        app[CLOCK] = clock
    app.cleanup_ctx.append(_services)
    app.cleanup_ctx.append(_metrics_site)
    app.router.add_post("/api/messages", messages)
    app.router.add_post(NOTIFICATION_PATH, notifications)
    app.router.add_post(LIFECYCLE_PATH, notifications)
    app.router.add_get(VOICEMAIL_PATH, voicemail, allow_head=False)  # a HEAD must not use up the single-use link
    app.router.add_get(CHART_PATH, chart)
    app.router.add_post(NOTIFY_PATH, placetel_notify)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_endpoint)
    return app
