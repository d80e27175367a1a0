"""The stats card: one team's numbers for a period, per line and per person, with the weekday/hour chart.

A pure function of :class:`bot.stats.model.TeamStats`; lists are capped so the card stays far below Teams' size
limit whatever the team's size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from bot.domain.cases import CALLBACK_ACTOR, OUTLOOK_ACTOR
from bot.stats.model import Durations, PersonStats, TeamStats
from cards.elements import Json, adaptive_card, column, column_set, fact_set, text_block
from cards.format import NAME_LIMIT, format_date, format_phone, inert, plain
from cards.i18n import Lang, text

SHOWN_LINES = 12
SHOWN_PEOPLE = 10
SCOPE_NAMES = 3


@dataclass(frozen=True, slots=True)
class StatsCardView:
    stats: TeamStats
    lang: Lang
    line_names: Mapping[str, str]
    chart_url: str | None = None
    """The signed link to the weekday/hour PNG; None shows no chart."""
    you: str | None = None
    """In personal chat: the asking user's actor id, whose own numbers come first."""
    digest: bool = False
    caller_names: Mapping[str, str] = field(default_factory=dict)
    """Number → name of the repeat callers, where a caller source knows them."""


def format_seconds(seconds: float | None, lang: Lang) -> str:
    if seconds is None:
        return text(lang, "stats_none")
    minutes = round(seconds / 60)
    if minutes < 60:
        return text(lang, "stats_minutes", n=minutes)
    if minutes < 24 * 60:
        return text(lang, "stats_hours", h=minutes // 60, m=minutes % 60)
    return text(lang, "stats_days", d=minutes // (24 * 60), h=minutes % (24 * 60) // 60)


def _share(part: int, whole: int, lang: Lang) -> str:
    return text(lang, "stats_percent", n=round(100 * part / whole)) if whole else text(lang, "stats_none")


def _durations(value: Durations, lang: Lang) -> str:
    if value.count == 0:
        return text(lang, "stats_none")
    return text(
        lang, "stats_duration_value", median=format_seconds(value.median, lang), p90=format_seconds(value.p90, lang)
    )


def _scope(view: StatsCardView) -> str:
    names = [view.line_names.get(line_id, line_id) for line_id in view.stats.line_ids]
    shown = ", ".join(plain(name, NAME_LIMIT) for name in names[:SCOPE_NAMES])
    return shown + (f" +{len(names) - SCOPE_NAMES}" if len(names) > SCOPE_NAMES else "")


def _row(cells: Sequence[str], *, header: bool = False, separator: bool = False) -> Json:
    weights = ["3"] + ["2"] * (len(cells) - 1)
    columns = [
        column(
            [
                text_block(
                    cell,
                    size="Small",
                    weight="Bolder" if header else "Default",
                    isSubtle=header,
                    horizontalAlignment="Left" if n == 0 else "Right",
                )
            ],
            width=weights[n],
        )
        for n, cell in enumerate(cells)
    ]
    return column_set(columns, spacing="Small" if not separator else "Medium", separator=separator)


def _person_name(person: PersonStats, lang: Lang) -> str:
    if person.actor_id == OUTLOOK_ACTOR.id:
        return text(lang, "stats_outlook")
    if person.actor_id == CALLBACK_ACTOR.id:
        return text(lang, "stats_callback")
    return inert(person.name, NAME_LIMIT)


def build_stats_card(view: StatsCardView) -> Json:
    stats, lang = view.stats, view.lang
    period = stats.period
    title_key = "stats_digest_title" if view.digest else "stats_title"
    body: list[Json] = [
        {
            "type": "Container",
            "style": "emphasis",
            "bleed": True,
            "items": [
                text_block(inert(text(lang, title_key, scope=_scope(view)), 200), weight="Bolder", size="Medium"),
                text_block(
                    text(
                        lang,
                        "stats_period",
                        start=format_date(period.start, lang),
                        end=format_date(period.end - timedelta(seconds=1), lang),
                        days=period.days,
                    ),
                    isSubtle=True,
                    spacing="None",
                ),
            ],
        }
    ]
    if not stats.line_ids:
        body.append(text_block(text(lang, "stats_no_lines")))
        return adaptive_card(body, fallback_text=text(lang, "stats_no_lines"))
    total = stats.total
    if view.you is not None:
        body.extend(_you(view))
    body.append(
        fact_set(
            [
                (text(lang, "stats_fact_calls"), str(total.calls)),
                (text(lang, "stats_fact_cases"), str(total.cases)),
                (
                    text(lang, "stats_fact_handled"),
                    text(
                        lang,
                        "stats_handled_value",
                        done=total.done,
                        cases=total.cases,
                        share=_share(total.done, total.cases, lang),
                    ),
                ),
                (text(lang, "stats_fact_to_claim"), _durations(total.to_claim, lang)),
                (text(lang, "stats_fact_to_done"), _durations(total.to_done, lang)),
                (text(lang, "stats_fact_repeat"), str(stats.repeat_caller_count)),
            ],
            spacing="Medium",
        )
    )
    body.extend(_repeat_callers(view))
    unreached = (
        str(stats.unreached_callbacks)
        if stats.unreached_callbacks is not None
        else text(lang, "stats_unreached_unavailable")
    )
    body.append(fact_set([(text(lang, "stats_fact_unreached"), unreached)], spacing="Small"))
    measure = "stats_measure_business" if stats.business_hours else "stats_measure_wall"
    # The durations are read from buckets (bot.storage.stats_rollups.BUCKETS): say how exact they are.
    precise = f"{text(lang, measure)} {text(lang, 'stats_precision')}"
    body.append(text_block(precise, isSubtle=True, size="Small", spacing="Small"))
    if view.chart_url:
        body.append(text_block(text(lang, "stats_chart_title"), weight="Bolder", separator=True, spacing="Medium"))
        body.append(
            {"type": "Image", "url": view.chart_url, "altText": text(lang, "stats_chart_alt"), "size": "Stretch"}
        )
    if len(stats.lines) > 1:
        body.extend(_lines(view))
    body.extend(_people(view))
    summary = f"{text(lang, title_key, scope=_scope(view))}: {total.calls} {text(lang, 'stats_fact_calls')}"
    return adaptive_card(body, fallback_text=summary)


def _you(view: StatsCardView) -> list[Json]:
    lang = view.lang
    mine = next((p for p in view.stats.people if p.actor_id == view.you), PersonStats(view.you or "", ""))
    value = text(
        lang, "stats_you_value", claimed=mine.claimed, done=mine.done, median=format_seconds(mine.to_claim.median, lang)
    )
    return [
        text_block(text(lang, "stats_you_title"), weight="Bolder", spacing="Medium"),
        text_block(value, spacing="None"),
    ]


def _repeat_callers(view: StatsCardView) -> list[Json]:
    lines = []
    for repeat in view.stats.repeat_callers:
        caller = format_phone(repeat.number)
        name = view.caller_names.get(repeat.number)
        if name:
            caller = f"{caller} ({inert(name, NAME_LIMIT)})"
        lines.append(text(view.lang, "stats_repeat_line", caller=caller, calls=repeat.calls))
    return [text_block("\n\n".join(f"- {line}" for line in lines), size="Small", spacing="None")] if lines else []


def _lines(view: StatsCardView) -> list[Json]:
    lang = view.lang
    blocks = [
        text_block(text(lang, "stats_lines_title"), weight="Bolder", separator=True, spacing="Medium"),
        _row(
            [
                text(lang, key)
                for key in (
                    "stats_col_line",
                    "stats_col_calls",
                    "stats_col_cases",
                    "stats_col_done",
                    "stats_col_median_claim",
                )
            ],
            header=True,
        ),
    ]
    for line in view.stats.lines[:SHOWN_LINES]:
        blocks.append(
            _row(
                [
                    inert(view.line_names.get(line.line_id, line.line_id), NAME_LIMIT),
                    str(line.calls),
                    str(line.cases),
                    _share(line.done, line.cases, lang),
                    format_seconds(line.to_claim.median, lang),
                ]
            )
        )
    return blocks


def _people(view: StatsCardView) -> list[Json]:
    lang, people = view.lang, view.stats.people
    if not people:
        return []
    blocks = [
        text_block(text(lang, "stats_people_title"), weight="Bolder", separator=True, spacing="Medium"),
        _row(
            [
                text(lang, key)
                for key in ("stats_col_person", "stats_col_claimed", "stats_col_done", "stats_col_median_claim")
            ],
            header=True,
        ),
    ]
    for person in people[:SHOWN_PEOPLE]:
        blocks.append(
            _row(
                [
                    _person_name(person, lang),
                    str(person.claimed),
                    str(person.done),
                    format_seconds(person.to_claim.median, lang),
                ]
            )
        )
    hidden = len(people) - SHOWN_PEOPLE
    if hidden > 0:
        blocks.append(text_block(text(lang, "more_events", count=hidden), isSubtle=True, size="Small"))
    return blocks
