"""Simulated calls for the demo: Placetel's call webhooks and notification mails, callbacks, and Outlook clicks.

One code path for the page (``GET /``, form ``POST /simulate``) and the CLI (``POST /api/simulate``,
``GET /api/mails``). A missed call or voicemail is what Placetel does: the signed call webhook first (the card
appears at once), then the notification mail into the Graph stand-in (it joins the same call). A repeat call is a
missed call from the last caller: the bot groups it into the open case. "Rückruf erreicht / nicht erreicht" is a
colleague calling the last caller back from the pool line (``OutgoingCall``, then ``HungUp`` accepted or busy).
"Mark done in Outlook" sets the mail's flag to ``complete`` as Outlook does; the flag sync does the rest.
Each mailbox's unread count (the number Outlook shows after a favourite's name; ``GET /api/mailboxes``) is on the
page and follows the cards live: it drops when a card is claimed and rises when it is released.
"""

from __future__ import annotations

import html
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

import phonenumbers
from aiohttp import web

from bot.config import PoolLine
from bot.domain.events import WITHHELD_KEYWORDS
from bot.domain.zone import BERLIN
from sandbox.graph import GraphStandIn
from sandbox.graph_model import Attachment, Message
from sandbox.placetel import PlacetelStandIn

Kind = Literal["missed", "voicemail", "repeat", "done", "callback-reached", "callback-missed"]
KINDS: tuple[str, ...] = get_args(Kind)
PBX_SENDER = "no-reply@placetel.de"


class SimulationError(ValueError):
    """A simulation request that cannot be carried out; the message is shown to the user."""


@dataclass(frozen=True)
class MailView:
    """A mail in a pool mailbox, as the page and the API show it."""

    message_id: str
    line: str
    subject: str
    flag_status: str
    received: str  # local time, HH:MM:SS
    is_read: bool = False


@dataclass(frozen=True)
class MailboxView:
    """A pool mailbox as Outlook's favourites show it: its name and the number of unread mails."""

    line: str
    mailbox: str
    display_name: str
    unread: int


def national(number: str) -> str:
    return phonenumbers.format_number(phonenumbers.parse(number, "DE"), phonenumbers.PhoneNumberFormat.NATIONAL)


def _e164(number: str) -> str | None:
    try:
        parsed = phonenumbers.parse(number, "DE")
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _names_caller(subject: str, caller: str) -> bool:
    """The PBX subjects quote the numbers: ``… von '0171 2345678' auf '030 1234500'`` (or ``'anonym'``)."""
    quoted = re.findall(r"'([^']+)'", subject)
    if caller.strip().lower() in WITHHELD_KEYWORDS:
        return any(value.lower() in WITHHELD_KEYWORDS for value in quoted)
    return _e164(caller) in {_e164(value) for value in quoted}


@dataclass(frozen=True)
class CallbackView:
    """A simulated callback: who was called from which line, and the call's id at Placetel."""

    call_id: str
    line: str
    subject: str


@dataclass(frozen=True)
class TimeControl:
    """The bot's shiftable clock (sandbox only): read it, and move it forward (which also runs the reminders)."""

    now: Callable[[], datetime]
    advance: Callable[[timedelta], Awaitable[datetime]]
    offset: Callable[[], timedelta]


class CallSimulator:
    def __init__(
        self,
        graph: GraphStandIn,
        lines: Sequence[PoolLine],
        placetel: PlacetelStandIn | None = None,
        *,
        team_sip_user: str = "",
        seed: int = 0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not lines:
            raise ValueError("the demo needs at least one pool line")
        self._clock = clock
        """The bot's clock: simulated mails arrive at the bot's "now", also after the demo moved time forward."""
        self._graph = graph
        self._placetel = placetel
        self._team_sip_user = team_sip_user
        self._lines = {line.id: line for line in lines}
        self._random = random.Random(seed)
        self.last_caller: str | None = None

    @property
    def lines(self) -> list[PoolLine]:
        return list(self._lines.values())

    def _line(self, line_id: str | None) -> PoolLine:
        if line_id is None:
            return self.lines[0]
        line = self._lines.get(line_id)
        if line is None:
            raise SimulationError(f"unknown line {line_id!r}; known: {', '.join(self._lines)}")
        return line

    def _new_caller(self) -> str:
        """A mobile number not used before in this demo: a new case."""
        return f"0171 {self._random.randint(1_000_000, 9_999_999)}"

    async def simulate(
        self, kind: str, caller: str | None = None, line_id: str | None = None, message_id: str | None = None
    ) -> MailView | CallbackView:
        line = self._line(line_id)
        match kind:
            case "missed" | "voicemail":
                return await self._call(line, caller or self._new_caller(), voicemail=kind == "voicemail")
            case "repeat":
                return await self._call(line, self._previous_caller(caller), voicemail=False)
            case "done":
                return self._mark_done(message_id, caller, line_id)
            case "callback-reached" | "callback-missed":
                return await self._callback(line, self._previous_caller(caller), reached=kind == "callback-reached")
        raise SimulationError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")

    def _previous_caller(self, caller: str | None) -> str:
        previous = caller or self.last_caller
        if previous is None:
            raise SimulationError("no call yet; simulate a missed call first")
        return previous

    @staticmethod
    def _checked_caller(caller: str) -> str:
        """The caller as the mail writes it: the number, or "anonym" (Placetel's word) for a withheld one."""
        if caller.strip().lower() in WITHHELD_KEYWORDS:
            return "anonym"
        if _e164(caller) is None:
            known = ", ".join(sorted({"anonym", "unbekannt", "unterdrückt"}))
            raise SimulationError(f"{caller!r} is not a phone number (for a withheld caller: {known})")
        return caller

    async def _call(self, line: PoolLine, caller: str, *, voicemail: bool) -> MailView:
        """Placetel's call webhook (when the demo has the stand-in), then its notification mail."""
        caller = self._checked_caller(caller)
        if self._placetel is not None:
            webhook_caller = "anonymous" if caller == "anonym" else caller  # the webhook's word for withheld
            await self._placetel.missed_call(webhook_caller, line.numbers[0], voicemail=voicemail)
        return self._deliver(line, caller, voicemail=voicemail)

    async def _callback(self, line: PoolLine, callee: str, *, reached: bool) -> CallbackView:
        if self._placetel is None:
            raise SimulationError("this demo runs without the Placetel stand-in")
        if _e164(callee) is None:
            raise SimulationError(f"{callee!r} is not a phone number (a withheld caller cannot be called back)")
        talk = self._random.randint(40, 300) if reached else 0
        call_id = await self._placetel.callback(
            line.numbers[0], callee, peer=self._team_sip_user, reached=reached, talk_seconds=talk
        )
        result = f"erreicht ({talk // 60}:{talk % 60:02d} Min.)" if reached else "nicht erreicht"
        return CallbackView(call_id, line.id, f"Rückruf an {callee} von {national(line.numbers[0])}: {result}")

    def _deliver(self, line: PoolLine, caller: str, *, voicemail: bool) -> MailView:
        caller = self._checked_caller(caller)
        to = national(line.numbers[0])
        attachments: list[Attachment] = []
        if voicemail:
            subject = f"Neue Sprachnachricht von '{caller}' auf '{to}'"
            seconds = self._random.randint(8, 95)
            body = (
                f"Sie haben eine neue Sprachnachricht erhalten.\n\nAnrufer: {caller}\n"
                f"Länge: {seconds // 60}:{seconds % 60:02d}\n\nDie Nachricht finden Sie im Anhang.\n"
            )
            name = (
                f"voicemail_{(self._clock() if self._clock else datetime.now(UTC)).astimezone(BERLIN):%Y%m%d_%H%M}.mp3"
            )
            attachments.append(Attachment(name, "audio/mpeg", self._random.randbytes(2000 * seconds)))
        else:
            subject = f"Verpasster Anruf von '{caller}' auf '{to}'"
            body = f"Hallo,\n\nSie haben einen Anruf verpasst.\n\nVon: '{caller}'\nAuf: '{to}'\n\nIhr Placetel-Team\n"
        # A real Placetel notice passes SPF/DKIM/DMARC at Exchange Online; only then does Rufpool trust its sender.
        message = self._graph.deliver_mail(
            line.mailbox,
            subject,
            PBX_SENDER,
            body,
            sender_name="Telefonanlage",
            attachments=attachments,
            authentication="pass",
            received=self._clock() if self._clock else None,
        )
        self.last_caller = caller
        return self._view(line, message)

    def _mark_done(self, message_id: str | None, caller: str | None, line_id: str | None) -> MailView:
        """Flag complete, as Outlook does: the given mail, else the newest open mail naming the caller, else the
        newest open mail (on the line, when given)."""
        candidates = [
            (line, message)
            for line, message in self._messages()
            if (message_id is None or message.id == message_id)
            and (caller is None or _names_caller(message.subject, caller))
            and (line_id is None or line.id == line_id)
            and (message_id is not None or message.flag.get("flagStatus") != "complete")
        ]
        if not candidates:
            raise SimulationError("no open mail matches; simulate a call first")
        line, message = candidates[0]
        self._graph.set_flag(line.mailbox, message.id, {"flagStatus": "complete"})
        return self._view(line, message)

    def _messages(self) -> list[tuple[PoolLine, Message]]:
        """Every mail in the pool mailboxes, newest first."""
        found = [(line, m) for line in self.lines for m in self._graph.mailbox(line.mailbox).messages.values()]
        return sorted(found, key=lambda item: item[1].received, reverse=True)

    @staticmethod
    def _view(line: PoolLine, message: Message) -> MailView:
        return MailView(
            message.id,
            line.id,
            message.subject,
            str(message.flag.get("flagStatus", "notFlagged")),
            message.received.astimezone(BERLIN).strftime("%H:%M:%S"),
            message.is_read,
        )

    def mails(self) -> list[MailView]:
        return [self._view(line, message) for line, message in self._messages()]

    def mailboxes(self) -> list[MailboxView]:
        return [
            MailboxView(
                line.id,
                line.mailbox,
                line.display_name,
                sum(not message.is_read for message in self._graph.mailbox(line.mailbox).messages.values()),
            )
            for line in self.lines
        ]

    def open_lines(self, now: datetime) -> dict[str, bool]:
        """Which lines are open at ``now`` (their business hours)."""
        return {line.id: line.hours.calendar.is_open(now) for line in self.lines}


def time_state(simulator: CallSimulator, time: TimeControl) -> dict[str, Any]:
    now = time.now()
    return {
        "now": now.isoformat(),
        "local": f"{now.astimezone(BERLIN):%a %d.%m.%Y %H:%M}",
        "offset_hours": time.offset().total_seconds() / 3600,
        "open": simulator.open_lines(now),
    }


# The page and its API ---------------------------------------------------------------------------------------

_BUTTONS = (
    ("missed", "Verpasster Anruf"),
    ("voicemail", "Sprachnachricht"),
    ("repeat", "Wiederholter Anruf"),
    ("callback-reached", "Rückruf erreicht"),
    ("callback-missed", "Rückruf nicht erreicht"),
)
_PAGE_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:52rem;color:#242424}
h1{font-size:1.4rem}form.sim{display:flex;gap:.5rem;flex-wrap:wrap;align-items:end;margin-bottom:1.5rem}
label{display:flex;flex-direction:column;font-size:.85rem;gap:.2rem}
input,select,button{font:inherit;padding:.35rem .6rem}
button{background:#5b5fc7;color:#fff;border:0;border-radius:4px;cursor:pointer}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4rem;text-align:left}
.note{color:#616161;font-size:.9rem}.error{color:#c4314b}.ok{color:#0e700e}
ul.boxes{list-style:none;padding:0;display:flex;gap:1.5rem}ul.boxes b{color:#5b5fc7}
"""
# Outlook's favourites update by themselves; so does the page's unread count (and the table, see _LIVE_ROWS).
_UNREAD_SCRIPT = """
async function refreshUnread(){
  try{const boxes=await (await fetch('/api/mailboxes')).json();
    for(const box of boxes){const el=document.getElementById('unread-'+box.line);if(el)el.textContent=box.unread;}
  }catch(e){}
}
setInterval(refreshUnread,1000);
"""


def _time_form(simulator: CallSimulator, time: TimeControl | None) -> str:
    if time is None:
        return ""
    state = time_state(simulator, time)
    lines = ", ".join(
        f"{html.escape(line.display_name)}: {'geöffnet' if state['open'][line.id] else 'geschlossen'} "
        f"({html.escape(line.hours.weekly_hours.describe())})"
        for line in simulator.lines
    )
    return f"""<form class="sim" method="post" action="/time">
<p class="note">Bot-Uhr: <b>{html.escape(state["local"])}</b> (+{state["offset_hours"]:g} h) · {lines}.
Erinnerungen zählen nur in den Geschäftszeiten; die Morgenübersicht kommt zur ersten Öffnung.</p>
<button name="hours" value="1">Zeit +1 h</button></form>"""


def _rows(simulator: CallSimulator) -> str:
    esc = html.escape
    return "".join(
        f"<tr><td>{esc(mail.received)}</td><td>{esc(mail.line)}</td><td>{esc(mail.subject)}</td>"
        f"<td>{esc(mail.flag_status)}</td><td>"
        + (
            ""
            if mail.flag_status == "complete"
            else f'<form method="post" action="/simulate"><input type="hidden" name="message" '
            f'value="{esc(mail.message_id)}"><button name="kind" value="done">In Outlook erledigt</button></form>'
        )
        + "</td></tr>"
        for mail in simulator.mails()
    )


# The table follows the mailboxes while the page is open: a click in Teams changes the Outlook flag column.
_LIVE_ROWS = """<script>
setInterval(async () => {
  try {
    const response = await fetch("/rows");
    if (response.ok) document.getElementById("rows").innerHTML = await response.text();
  } catch (error) {}
}, 1500);
</script>"""


def _page(
    simulator: CallSimulator,
    playground_url: str,
    error: str | None,
    notice: str | None = None,
    time: TimeControl | None = None,
) -> str:
    esc = html.escape
    options = "".join(
        f'<option value="{esc(line.id)}">{esc(line.display_name)} ({esc(national(line.numbers[0]))})</option>'
        for line in simulator.lines
    )
    buttons = "".join(f'<button name="kind" value="{kind}">{label}</button>' for kind, label in _BUTTONS)
    boxes = "".join(
        f'<li>Posteingang {esc(box.display_name)} <b id="unread-{esc(box.line)}">{box.unread}</b></li>'
        for box in simulator.mailboxes()
    )
    return f"""<!doctype html><html lang="de"><head><meta charset="utf-8"><title>Rufpool demo: Anrufe simulieren</title>
<style>{_PAGE_STYLE}</style></head><body>
<h1>Rufpool demo: Anrufe simulieren</h1>
<p class="note">Die Karten erscheinen im Agents Playground:
<a href="{esc(playground_url)}" target="_blank">{esc(playground_url)}</a>
(Team „Praxis“, Kanal „Rückrufe Zentrale“ bzw. „General“ für Praxis Nord).</p>
<p class="note">Der Playground zeigt nur, was er selbst empfangen hat, solange sein Browserfenster offen war: Wer
ihn erst nach den simulierten Anrufen öffnet (oder neu lädt), sieht einen leeren Kanal. Dann die offenen Fälle
erneut posten:</p>
<form method="post" action="/repost"><button>Offene Fälle erneut posten</button></form>
{f'<p class="error">{esc(error)}</p>' if error else ""}{f'<p class="ok">{esc(notice)}</p>' if notice else ""}
<form class="sim" method="post" action="/simulate">
<label>Leitung<select name="line">{options}</select></label>
<label>Anrufer<input name="caller" placeholder="leer: neue Nummer; anonym: unterdrückt"></label>{buttons}</form>
<p class="note">Anrufe kommen wie bei Placetel zweimal an: sofort über die Notify-API (Webhook), danach als Mail.
Ein Rückruf ist ein ausgehender Anruf von der Leitung an den letzten Anrufer.</p>
<h2>Outlook-Favoriten: ungelesene Mails</h2>
<p class="note">Die Zahl nach dem Postfach zählt die Anrufe, die noch niemand übernommen hat.</p>
<ul class="boxes">{boxes}</ul>
{_time_form(simulator, time)}
<h2>Mails im Postfach</h2>
<table><thead><tr><th>Zeit</th><th>Leitung</th><th>Betreff</th><th>Outlook-Flag</th><th></th></tr></thead>
<tbody id="rows">{_rows(simulator)}</tbody></table>
<script>{_UNREAD_SCRIPT}</script>
{_LIVE_ROWS}
</body></html>"""


Repost = Callable[[], Awaitable[int]]
"""Posts the cards of every open or claimed case again as new channel messages; returns how many."""


MAX_ADVANCE_HOURS = 72


def _hours(value: Any) -> timedelta:
    try:
        hours = float(value)
    except (TypeError, ValueError):
        raise SimulationError("hours must be a number") from None
    if not 0 < hours <= MAX_ADVANCE_HOURS:
        raise SimulationError(f"hours must be more than 0 and at most {MAX_ADVANCE_HOURS}")
    return timedelta(hours=hours)


def control_app(
    simulator: CallSimulator, playground_url: str, repost: Repost | None = None, time: TimeControl | None = None
) -> web.Application:
    """The simulation page and its JSON API; with ``time``, the "+1 h" button and ``/api/time``."""

    async def run(body: dict[str, Any]) -> MailView | CallbackView:
        def optional(key: str) -> str | None:
            value = body.get(key)
            return str(value).strip() or None if value is not None else None

        kind = str(body.get("kind", ""))
        return await simulator.simulate(kind, optional("caller"), optional("line"), optional("message"))

    async def page(request: web.Request) -> web.Response:
        text = _page(simulator, playground_url, request.query.get("error"), request.query.get("notice"), time)
        return web.Response(text=text, content_type="text/html")

    async def rows(_request: web.Request) -> web.Response:
        return web.Response(text=_rows(simulator), content_type="text/html")

    async def repost_form(request: web.Request) -> web.Response:
        count = await repost() if repost is not None else 0
        notice = (
            f"{count} offene Fälle werden erneut gepostet." if count != 1 else "1 offener Fall wird erneut gepostet."
        )
        raise web.HTTPSeeOther(request.app.router["page"].url_for().with_query(notice=notice))

    async def api_repost(_request: web.Request) -> Any:
        return {"reposted": await repost() if repost is not None else 0}

    async def form(request: web.Request) -> web.Response:
        fields = await request.post()
        try:
            await run({key: str(value) for key, value in fields.items()})
        except SimulationError as error:
            raise web.HTTPSeeOther(request.app.router["page"].url_for().with_query(error=str(error))) from None
        raise web.HTTPSeeOther("/")

    def json_api(
        handler: Callable[[web.Request], Awaitable[Any]],
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def wrapped(request: web.Request) -> web.Response:
            try:
                return web.json_response(await handler(request))
            except (SimulationError, ValueError) as error:
                return web.json_response({"error": str(error)}, status=400)

        return wrapped

    async def api_simulate(request: web.Request) -> Any:
        body = await request.json()
        if not isinstance(body, dict):
            raise SimulationError("a JSON object is expected")
        return asdict(await run(body))

    async def api_mails(_request: web.Request) -> Any:
        return [asdict(mail) for mail in simulator.mails()]

    async def api_mailboxes(_request: web.Request) -> Any:
        return [asdict(box) for box in simulator.mailboxes()]

    async def advance(hours: Any) -> dict[str, Any]:
        if time is None:
            raise SimulationError("this demo's clock cannot be moved")
        await time.advance(_hours(hours))
        return time_state(simulator, time)

    async def time_form(request: web.Request) -> web.Response:
        fields = await request.post()
        try:
            await advance(fields.get("hours", "1"))
        except SimulationError as error:
            raise web.HTTPSeeOther(request.app.router["page"].url_for().with_query(error=str(error))) from None
        raise web.HTTPSeeOther("/")

    async def api_time(request: web.Request) -> Any:
        if request.method == "GET":
            if time is None:
                raise SimulationError("this demo's clock cannot be moved")
            return time_state(simulator, time)
        body = await request.json()
        if not isinstance(body, dict):
            raise SimulationError("a JSON object is expected")
        return await advance(body.get("hours", 1))

    app = web.Application()
    app.router.add_get("/", page, name="page")
    app.router.add_post("/time", time_form)
    app.router.add_post("/api/time", json_api(api_time))
    app.router.add_get("/api/time", json_api(api_time))
    app.router.add_post("/simulate", form)
    app.router.add_post("/api/simulate", json_api(api_simulate))
    app.router.add_get("/api/mails", json_api(api_mails))
    app.router.add_get("/api/mailboxes", json_api(api_mailboxes))
    app.router.add_get("/rows", rows)
    app.router.add_post("/repost", repost_form)
    app.router.add_post("/api/repost", json_api(api_repost))
    return app
