"""Posts the weekly digest (a stats card) as a new thread in the line's channel; the ``teams.digest`` job."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from botbuilder.core import CardFactory, MessageFactory, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import ChannelAccount, ConversationParameters
from msrest.exceptions import HttpOperationError

from bot.core.jobs import PermanentFailure
from bot.core.ports import Store
from bot.stats.digest import DigestRuns, digest_payload_period
from bot.stats.service import StatsService
from bot.teams.pacing import Pacer
from bot.teams.posting import as_job_error
from cards.i18n import Lang

log = logging.getLogger(__name__)


class DigestPoster:
    def __init__(
        self,
        adapter: CloudAdapter,
        app_id: str,
        store: Store,
        runs: DigestRuns,
        stats: StatsService,
        pacer: Pacer,
        lang: Lang,
        service_url_allowed: Callable[[str | None], bool],
    ) -> None:
        self._service_url_allowed = service_url_allowed
        self._adapter = adapter
        self._app_id = app_id
        self._store = store
        self._runs = runs
        self._stats = stats
        self._pacer = pacer
        self._lang = lang

    async def handle_digest(self, payload: dict[str, Any]) -> None:
        try:
            line_id, week = str(payload["line_id"]), str(payload["week"])
            period = digest_payload_period(payload)
        except (KeyError, ValueError) as error:
            raise PermanentFailure(f"bad digest job: {error!r}") from error
        if await self._runs.posted_activity(line_id, week) is not None:
            return
        link = await self._store.links.link_for_line(line_id)
        if link is None:
            log.info("weekly digest of %s skipped: the line is not linked to a channel", line_id)
            return
        if not self._service_url_allowed(link.service_url):
            # Stored when the line was linked; TEAMS_SERVICE_URLS may have been narrowed since.
            raise PermanentFailure("the line's service URL is not a Teams service URL (TEAMS_SERVICE_URLS)")
        card = await self._stats.card([line_id], period, self._lang, digest=True)
        created: dict[str, str] = {}

        async def remember(turn_context: TurnContext) -> None:
            created["activity_id"] = turn_context.activity.id

        parameters = ConversationParameters(
            is_group=True,
            bot=ChannelAccount(id=self._app_id or "rufpool"),
            channel_data={"channel": {"id": link.channel_id}, "tenant": {"id": link.tenant_id}},
            tenant_id=link.tenant_id,
            activity=MessageFactory.attachment(CardFactory.adaptive_card(card)),
        )
        await self._pacer.wait(link.channel_id, link.tenant_id)
        try:
            await self._adapter.create_conversation(
                self._app_id, remember, parameters, "msteams", link.service_url, None
            )
        except HttpOperationError as error:
            raise as_job_error(error) from error
        await self._runs.mark_posted(line_id, week, created.get("activity_id") or "posted")
        log.info("weekly digest of %s for the week of %s posted", line_id, week)
