"""Text commands: one handler per command, with German and English aliases. No botbuilder here."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.config import PoolLine, Settings
from bot.core import effects
from bot.core.actions import ActionRequest, ActionResult
from bot.core.ports import ChannelLink, Store, TeamOwnerCheck
from bot.core.retention import NotANumber, erase_number
from bot.domain.cases import Actor
from bot.stats.service import BadPeriod, StatsService, parse_days
from cards.i18n import Lang, conversation_language, text
from cards.list_card import PAGE_SIZE, CaseListView, ListCommand, build_list_card
from cards.messages import build_help_card, build_link_confirmation_card, build_unlink_confirmation_card
from cards.reminder_cards import LineRulesSummary, help_rules_blocks

log = logging.getLogger(__name__)

Json = dict[str, Any]

ALIASES = {
    "open": "open",
    "offen": "open",
    "mine": "mine",
    "meine": "mine",
    "help": "help",
    "hilfe": "help",
    "?": "help",
    "link": "link",
    "verbinden": "link",
    "unlink": "unlink",
    "trennen": "unlink",
    "statistik": "stats",
    "stats": "stats",
    "forget": "forget",
    "vergessen": "forget",
}
MAX_LIST_OFFSET = 10_000
_LEADING_BOT_NAME = re.compile(r"^\s*@?rufpool\b[:,]?\s*", re.IGNORECASE)
_MENTION = re.compile(r"<at\b[^>]*>.*?</at>", re.IGNORECASE | re.DOTALL)
"""A Teams mention anywhere in the text; botbuilder strips only the bot's own, and only when its name is no regex."""


@dataclass(frozen=True, slots=True)
class CommandRequest:
    text: str
    """The message text as Teams sent it; :func:`parse_command` strips mentions and `&nbsp;`."""
    actor: Actor
    actor_upn: str | None
    tenant_id: str | None
    conversation_id: str
    service_url: str
    team_id: str | None = None
    channel_id: str | None = None
    locale: str | None = None
    is_team_member: Callable[[str], Awaitable[bool]] | None = None
    """Whether the user belongs to a team (asked in a personal chat); supplied by the Teams layer."""
    team_group_id: str | None = None
    """The team's Microsoft 365 group id (``aadGroupId``), for ``LINK_TEAM_OWNERS``."""


@dataclass(frozen=True, slots=True)
class CommandReply:
    card: Json | None = None
    text: str | None = None


def parse_command(message: str) -> tuple[str | None, str]:
    """``"<at>Rufpool</at> /Offen&nbsp;"`` → ``("open", "")``; unknown text → ``(None, the cleaned text)``."""
    cleaned = _LEADING_BOT_NAME.sub("", _MENTION.sub(" ", message.replace("&nbsp;", " ")).strip())
    word, *rest = cleaned.split(maxsplit=1) or [""]
    command = ALIASES.get(word.lstrip("/").rstrip(".!").lower())
    return (command, rest[0] if rest else "") if command else (None, cleaned)


class Commands:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        is_team_owner: TeamOwnerCheck | None = None,
        *,
        stats: StatsService | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._is_team_owner = is_team_owner
        self._stats = stats
        self._handlers: dict[str, Callable[[CommandRequest, str], Awaitable[CommandReply]]] = {
            "open": self.open_cases,
            "mine": self.my_cases,
            "help": self.help,
            "link": self.link,
            "unlink": self.unlink,
            "stats": self.stats,
            "forget": self.forget,
        }

    def language(self, request: CommandRequest) -> Lang:
        """Everyone in a channel reads the answer: the channel's language there, the user's own in personal chat."""
        return conversation_language(self._settings.default_locale, request.locale, in_channel=request.channel_id)

    async def handle(self, request: CommandRequest) -> CommandReply:
        command, argument = parse_command(request.text)
        if command is None:
            return CommandReply(
                card=build_help_card(
                    self.language(request),
                    unknown_text=argument or None,
                    extra=self._rules_help(self.language(request)),
                )
            )
        return await self._handlers[command](request, argument)

    async def help(self, request: CommandRequest, _argument: str) -> CommandReply:
        return CommandReply(
            card=build_help_card(self.language(request), extra=self._rules_help(self.language(request)))
        )

    def _rules_help(self, lang: Lang) -> list[Json]:
        """The reminder rules and every line's business hours (hilfe explains when reminders come)."""
        summaries = [
            LineRulesSummary(
                line.display_name,
                line.hours.weekly_hours.describe(),
                line.reminders.enabled,
                line.reminders.unclaimed_minutes,
                line.reminders.claimed_minutes,
                line.reminders.escalate_after,
            )
            for line in self._settings.pool_lines
        ]
        return help_rules_blocks(summaries, lang)

    async def open_cases(self, request: CommandRequest, _argument: str) -> CommandReply:
        return CommandReply(card=await self._list(request, ListCommand.OPEN, 0))

    async def my_cases(self, request: CommandRequest, _argument: str) -> CommandReply:
        return CommandReply(card=await self._list(request, ListCommand.MINE, 0))

    async def stats(self, request: CommandRequest, argument: str) -> CommandReply:
        """The stats card: a channel's lines, or in personal chat the user's own numbers and their teams' lines."""
        lang = self.language(request)
        if self._stats is None:
            return CommandReply(card=build_help_card(lang, unknown_text=request.text or None))
        try:
            days = parse_days(argument)
        except BadPeriod as bad:
            return CommandReply(text=text(lang, "stats_bad_period", value=str(bad)))
        period = StatsService.last_days(days, datetime.now(UTC))
        you = request.actor.id if request.channel_id is None else None
        card = await self._stats.card(await self._line_ids(request), period, lang, you=you)
        return CommandReply(card=card)

    async def list_page(
        self, request: ActionRequest, notice: str | None = None, positive: bool = False
    ) -> ActionResult:
        """The paging buttons of a list card (an ``Action.Execute``), and the list again after a Claim in it."""
        try:
            command = ListCommand(str(request.data.get("command", "open")))
            offset = int(request.data.get("offset", 0))
        except (TypeError, ValueError, OverflowError):
            return ActionResult(400, message="list_page needs a known command (open, mine) and an integer offset")
        if not 0 <= offset <= MAX_LIST_OFFSET:
            return ActionResult(400, message=f"list_page offset must be between 0 and {MAX_LIST_OFFSET}")
        listing = CommandRequest(
            text="",
            actor=request.actor,
            actor_upn=None,
            tenant_id=request.tenant_id,
            conversation_id=request.conversation_id,
            service_url="",
            channel_id=request.channel_id,
            locale=request.locale,
            is_team_member=request.is_team_member,
        )
        return ActionResult(200, card=await self._list(listing, command, offset, notice, positive))

    async def _line_ids(self, request: CommandRequest) -> list[str]:
        if request.channel_id is not None:
            links = await self._store.links.links_for_channel(request.channel_id)
        else:
            all_links = await self._all_links()
            check = request.is_team_member
            teams = [team for team in sorted({link.team_id for link in all_links}) if check and await check(team)]
            links = [link for link in all_links if link.team_id in teams]
        return [link.line_id for link in links if link.tenant_id == request.tenant_id]

    async def _all_links(self) -> list[ChannelLink]:
        links = []
        for line in self._settings.pool_lines:
            link = await self._store.links.link_for_line(line.id)
            if link is not None:
                links.append(link)
        return links

    async def _list(
        self,
        request: CommandRequest,
        command: ListCommand,
        offset: int,
        notice: str | None = None,
        positive: bool = False,
    ) -> Json:
        line_ids = await self._line_ids(request)
        claimed_by = request.actor.id if command is ListCommand.MINE else None
        cases, total = await self._store.cases.list_active(
            line_ids, claimed_by=claimed_by, limit=PAGE_SIZE, offset=offset
        )
        return build_list_card(
            CaseListView(
                command=command,
                cases=cases,
                total=total,
                offset=offset,
                line_names={line.id: line.display_name for line in self._settings.pool_lines},
                lang=self.language(request),
                now=datetime.now(UTC),
                notice=notice,
                notice_positive=positive,
            )
        )

    async def _may_link(self, request: CommandRequest) -> bool:
        """``LINK_ADMINS``; with ``LINK_TEAM_OWNERS`` also the owners of the team whose channel it is."""
        allowed = set(self._settings.link_admins)
        if request.actor.id.lower() in allowed or (request.actor_upn or "").lower() in allowed:
            return True
        check = self._is_team_owner if self._settings.link_team_owners else None
        if check is None or not request.team_group_id:
            return False
        return await check(request.team_group_id, request.actor.id)

    def _find_line(self, argument: str) -> PoolLine | None:
        wanted = argument.strip().lower()
        return next(
            (
                line
                for line in self._settings.pool_lines
                if wanted in (line.id, line.mailbox, line.display_name.lower())
            ),
            None,
        )

    async def _link_refusal(
        self, request: CommandRequest, argument: str, usage_key: str
    ) -> tuple[str | None, PoolLine | None]:
        lang = self.language(request)
        if request.channel_id is None or request.team_id is None or request.tenant_id is None:
            return text(lang, "link_only_in_channel"), None
        if not await self._may_link(request):
            return text(lang, "link_not_allowed"), None
        known = ", ".join(line.id for line in self._settings.pool_lines) or "-"
        if not argument.strip():
            linked = [link.line_id for link in await self._store.links.links_for_channel(request.channel_id)]
            return text(lang, usage_key, known=known, linked=", ".join(linked) or "-"), None
        line = self._find_line(argument)
        if line is None:
            return text(lang, "link_unknown_line", line=argument, known=known), None
        return None, line

    async def link(self, request: CommandRequest, argument: str) -> CommandReply:
        refusal, line = await self._link_refusal(request, argument, "link_usage")
        if refusal is not None or line is None:
            return CommandReply(text=refusal)
        assert request.channel_id and request.team_id and request.tenant_id
        await self._store.links.link_channel(
            ChannelLink(
                line_id=line.id,
                tenant_id=request.tenant_id,
                team_id=request.team_id,
                channel_id=request.channel_id,
                service_url=request.service_url,
                linked_by=request.actor.id,
                linked_at=datetime.now(UTC),
                group_id=request.team_group_id,
            )
        )
        log.info("line %s linked to a channel of team %s", line.id, request.team_id[:12])
        cases, _ = await self._store.cases.list_active([line.id], limit=10_000)
        await self._store.jobs.add([effects.RefreshCard(case.id) for case in cases])
        return CommandReply(card=build_link_confirmation_card(line.display_name, self.language(request)))

    async def unlink(self, request: CommandRequest, argument: str) -> CommandReply:
        refusal, line = await self._link_refusal(request, argument, "unlink_usage")
        if refusal is not None or line is None:
            return CommandReply(text=refusal)
        await self._store.links.unlink_line(line.id)
        return CommandReply(card=build_unlink_confirmation_card(line.display_name, self.language(request)))

    async def forget(self, request: CommandRequest, argument: str) -> CommandReply:
        """``vergessen <Nummer>`` (admins): erase every case and event of a caller's number."""
        lang = self.language(request)
        # LINK_ADMINS only, also with LINK_TEAM_OWNERS: an erasure reaches every line, not one team's.
        admins = set(self._settings.link_admins)
        if request.actor.id.lower() not in admins and (request.actor_upn or "").lower() not in admins:
            return CommandReply(text=text(lang, "forget_not_allowed"))
        try:
            outcome = await erase_number(self._store, argument, actor=f"teams:{request.actor.id}")
        except NotANumber:
            return CommandReply(text=text(lang, "forget_usage"))
        counts = {"cases": outcome.cases, "events": outcome.events, "cards": len(outcome.cards)}
        return CommandReply(text=text(lang, "forget_done", **counts))
