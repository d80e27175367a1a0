"""User-facing strings: German first, English when the user's locale is English.

Every string a person reads lives in :data:`TEXTS`, one table per language with the same keys. Texts are plain
(no markdown); the card builders escape whatever they put into a TextBlock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from enum import StrEnum

from bot.domain.state_machine import Refusal, RefusalCode
from bot.domain.zone import BERLIN

"""The team's time zone: every time a person reads is shown in it."""


class Lang(StrEnum):
    DE = "de"
    EN = "en"


def language_for(locale: str | None) -> Lang:
    """English for any ``en*`` locale (``en-US``, ``en_GB``), German for everything else, including none."""
    return Lang.EN if locale is not None and locale.strip().lower().startswith("en") else Lang.DE


def conversation_language(channel_locale: str, user_locale: str | None, *, in_channel: object) -> Lang:
    """The language of what the bot says in a conversation.

    A channel is shared: every card, list, help, refusal and thread line there is in the channel's language
    (``DEFAULT_LOCALE``), whoever asked, so an English Teams client never posts English into a German channel and an
    updated card does not flip languages. Only personal chat follows the user's own locale.
    """
    return language_for(channel_locale if in_channel else user_locale)


_DE: Mapping[str, str] = {
    # states and badges
    "state_open": "Offen",
    "state_claimed": "In Bearbeitung – {name}",
    "state_done": "Erledigt – {name}",
    "state_done_outlook": "In Outlook erledigt",
    "actor_outlook": "in Outlook (von wem, ist unbekannt)",
    # caller
    "caller_withheld": "Unbekannt / unterdrückt",
    "caller_none": "Unbekannt – Rufnummer nicht lesbar",
    "caller_unrecognised": "Nicht erkannt",
    "unrecognised_hint": "Keine Anrufbenachrichtigung der Telefonanlage – bitte die Mail ansehen.",
    "call_phone": "Anrufen",
    "call_teams": "In\u00a0Teams\u00a0anrufen",
    "mail_subject": "Betreff",
    "mail_sender": "Absender",
    # facts
    "fact_calls": "Anrufe",
    "fact_claimed": "Übernommen",
    "fact_done": "Erledigt",
    "calls_summary": "{count} · zuletzt {relative}",
    "holder_since": "{name} · {absolute} ({relative})",
    "claim_timed_out": "Seit über {minutes} Min. in Bearbeitung – jeder kann den Fall freigeben.",
    "previous_done": "Zuletzt erledigt von {name} am {date}",
    "previous_done_unknown": "Schon einmal erledigt",
    # events
    "events_title": "Verlauf",
    "event_missed_call": "Verpasster Anruf",
    "event_voicemail": "Sprachnachricht",
    "event_voicemail_duration": "Sprachnachricht ({duration})",
    "event_fax": "Fax",
    "event_unrecognised": "Mail",
    "event_called": "auf\u00a0{number}",
    "listen": "Anhören",
    "open_mail": "Mail\u00a0öffnen",
    "more_events": "+{count} weitere",
    # buttons
    "verb_claim": "Übernehmen",
    "verb_done": "Erledigt",
    "verb_release": "Freigeben",
    "verb_reopen": "Wieder öffnen",
    "verb_take_over": "Übernehmen von {name}",
    "take_over_question": "Fall von {name} übernehmen? {name} hat ihn seit {time}.",
    "take_over_confirm": "Ja, übernehmen",
    # times
    "just_now": "gerade eben",
    "minutes_ago": "vor {n} Min.",
    "hours_ago": "vor {n} Std.",
    "day_ago": "vor 1 Tag",
    "days_ago": "vor {n} Tagen",
    "date_time": "{day:02d}.{month:02d}.{year}, {time}",
    "date": "{day:02d}.{month:02d}.{year}",
    "minutes_seconds": "{m}:{s:02d} Min.",
    # refusals
    "refused_already_claimed": "Bereits übernommen von {name} um {time}",
    "refused_already_claimed_anonymous": "Bereits übernommen",
    "refused_already_yours": "Du hast diesen Fall bereits übernommen",
    "refused_already_done": "Bereits erledigt von {name} um {time}",
    "refused_already_done_anonymous": "Bereits erledigt",
    "refused_claimed_by_other": "Übernommen von {name} um {time} – das kann nur {name} tun",
    "refused_not_claimed": "Niemand hat diesen Fall übernommen",
    "refused_not_done": "Dieser Fall ist nicht erledigt",
    "refused_not_possible": "Diese Aktion ist gerade nicht möglich",
    "refused_caller_has_active_case": "Für diesen Anrufer gibt es schon einen neueren offenen Fall",
    "action_unknown_case": "Diesen Fall gibt es nicht (mehr)",
    "turn_failed": "Entschuldigung, da ist etwas schiefgegangen. Bitte erneut versuchen.",
    "action_not_saved": "Das konnte gerade nicht gespeichert werden, nichts wurde geändert. Bitte erneut versuchen.",
    "backlog_title": "{count} Anrufe während der Störung, älteste zuerst",
    "backlog_text": "Während Rufpool nicht erreichbar war, kamen auf der Leitung {line} {count} neue Anrufe an. "
    "Ihre Karten folgen in den nächsten Minuten in diesem Kanal, die ältesten zuerst; neue Anrufe erscheinen "
    "sofort dazwischen.",
    "use_current_card": "Bitte die Schaltflächen der aktuellen Karte nutzen.",
    "list_action_done": "Gespeichert – die Karte im Kanal ist aktualisiert",
    "action_wrong_conversation": "Diese Aktion gilt nur im Kanal der Leitung (oder für Mitglieder ihres Teams)",
    "link_only_in_channel": "Verbinden und Trennen geht nur in einem Teamkanal: @Rufpool verbinden <Leitung>",
    "link_not_allowed": (
        "Nur Administratoren (LINK_ADMINS) und, wenn erlaubt, die Teambesitzer dürfen Kanäle mit Leitungen verbinden"
    ),
    "link_unknown_line": "Die Leitung „{line}“ ist nicht konfiguriert. Bekannt: {known}",
    # thread replies
    "reply_claim": "{name} hat übernommen · {time}",
    "reply_take_over": "{name} hat von {previous} übernommen · {time}",
    "reply_release": "{name} hat freigegeben · {time}",
    "reply_done": "{name} hat erledigt · {time}",
    "reply_reopen": "{name} hat wieder geöffnet · {time}",
    "reply_outlook_complete": "In Outlook als erledigt markiert · {time}",
    "reply_outlook_reopen": "In Outlook wieder geöffnet · {time}",
    "reply_outlook_release": "In Outlook freigegeben (war bei {previous}) · {time}",
    "reply_repeat_call": "Erneuter Anruf · {time} ({ordinal} Anruf)",
    "reply_repeat_voicemail": "Neue Sprachnachricht · {time} ({ordinal} Anruf)",
    "reply_repeat_fax": "Neues Fax · {time} ({ordinal} Anruf)",
    "reply_repeat_mail": "Weitere Mail · {time} ({ordinal} Anruf)",
    # list
    "list_open_title": "Offene Rückrufe ({total})",
    "list_mine_title": "Meine Rückrufe ({total})",
    "list_open_empty": "Alles erledigt – keine offenen Rückrufe 🎉",
    "list_mine_empty": "Du hast gerade keine Rückrufe übernommen.",
    "list_range": "{first}–{last} von {total}",
    "list_row_details": "{line} · {calls} · {relative}",
    "calls_count_one": "1 Anruf",
    "calls_count_many": "{n} Anrufe",
    "page_next": "Weiter",
    "page_previous": "Zurück",
    # messages
    "linked_title": "Kanal verbunden",
    "linked_text": "Neue Anrufe der Leitung {line} erscheinen ab jetzt hier als Karte.",
    "unlinked_title": "Kanal getrennt",
    "unlinked_text": "Die Leitung {line} postet nicht mehr in diesen Kanal.",
    "help_title": "Rufpool",
    "help_intro": (
        "Ich mache aus verpassten Anrufen und Sprachnachrichten der Sammelrufnummer je eine Karte. "
        "Wer zurückruft, klickt auf „{claim}“, danach auf „{done}“ – so ruft niemand doppelt an "
        "und kein Anruf geht verloren."
    ),
    "help_unknown": "Den Befehl „{text}“ kenne ich nicht.",
    "help_commands": "Befehle",
    "help_cmd_open": "Offene und übernommene Rückrufe, älteste zuerst",
    "help_cmd_mine": "Rückrufe, die du übernommen hast",
    "help_cmd_stats": "Anrufe, Fälle und wie schnell übernommen und erledigt wird (Standard: 7 Tage)",
    "help_cmd_help": "Diese Hilfe",
    "help_cmd_link": "Diesen Kanal mit einer Leitung verbinden (Admins)",
    "help_cmd_unlink": "Die Verbindung dieses Kanals trennen (Admins)",
    "cmd_open": "offen",
    "cmd_mine": "meine",
    "cmd_stats": "statistik [woche|monat]",
    "cmd_forget": "vergessen ‹Rufnummer›",
    "help_cmd_forget": "Alle Fälle und Anrufe einer Rufnummer löschen (Admins, am besten im persönlichen Chat)",
    "cmd_help": "hilfe",
    "cmd_link": "verbinden ‹Leitung›",
    "cmd_unlink": "trennen ‹Leitung›",
    # callbacks and answered repeat calls (Placetel call webhooks)
    "state_done_callback": "Erledigt – durch Rückruf",
    "actor_callback": "durch Rückruf",
    "fact_callback": "Rückruf",
    "fact_caller_reached": "Erreicht",
    "callback_fact": "{agent} · {absolute} · {result}",
    "callback_reached": "erreicht ({duration})",
    "callback_not_reached": "nicht erreicht",
    "caller_reached_fact": "Anrufer hat erneut angerufen · {absolute}",
    "reached_hint": "Der Anrufer wurde erreicht – erledigt?",
    "reply_callback": "Rückruf von {agent} · {time} · {result}",
    "reply_caller_reached": "Anrufer hat erneut angerufen und wurde erreicht · {time}",
    "reply_callback_reached": "Durch Rückruf erledigt · {time}",
    "refused_already_done_callback": "Bereits erledigt – durch Rückruf um {time}",
    # activity summary
    "activity_summary": "{state}: {caller} · {calls}",
    # link and unlink without a line
    "link_usage": "So geht's: @Rufpool verbinden ‹Leitung›. Leitungen: {known}",
    "unlink_usage": "So geht's: @Rufpool trennen ‹Leitung›. Mit diesem Kanal verbunden: {linked}",
    # statistics (statistik command, weekly digest)
    "stats_title": "Statistik – {scope}",
    "stats_digest_title": "Wochenrückblick – {scope}",
    "stats_period": "{start} bis {end} ({days} Tage)",
    "stats_fact_calls": "Anrufe",
    "stats_fact_cases": "Fälle",
    "stats_fact_handled": "Erledigt",
    "stats_handled_value": "{done} von {cases} ({share})",
    "stats_fact_to_claim": "Bis übernommen",
    "stats_fact_to_done": "Bis erledigt",
    "stats_duration_value": "Median {median} · 90 % in {p90}",
    "stats_fact_repeat": "Mehrfach-Anrufer (ab 3 Anrufen)",
    "stats_fact_unreached": "Nicht erreichte Rückrufe",
    "stats_unreached_unavailable": "noch nicht verfügbar – dafür braucht Rufpool die Anrufdaten von Placetel",
    "stats_measure_wall": "Zeiten in Kalenderzeit gemessen (Geschäftszeiten sind nicht eingerichtet).",
    "stats_measure_business": "Zeiten in Geschäftszeit gemessen.",
    "stats_precision": "Ab 10 Min. auf 5 Min. abgerundet, ab 1 Std. auf 15 Min., ab 4 Std. auf die Stunde, ab 7 Tagen "
    "auf den Tag.",
    "stats_lines_title": "Nach Leitung",
    "stats_people_title": "Nach Person",
    "stats_col_line": "Leitung",
    "stats_col_person": "Person",
    "stats_col_calls": "Anrufe",
    "stats_col_cases": "Fälle",
    "stats_col_done": "Erledigt",
    "stats_col_claimed": "Übernommen",
    "stats_col_median_claim": "Median bis übernommen",
    "stats_col_median_done": "Median bis erledigt",
    "stats_you_title": "Deine Zahlen",
    "stats_you_value": "{claimed} übernommen · {done} erledigt · Median bis übernommen: {median}",
    "stats_chart_title": "Wann rufen Leute an? Anrufe nach Wochentag und Uhrzeit",
    "stats_chart_alt": "Anrufe nach Wochentag und Stunde",
    "stats_repeat_line": "{caller} · {calls} Anrufe",
    "stats_outlook": "Outlook (wer, ist unbekannt)",
    "stats_callback": "Durch Rückruf (Telefonanlage)",
    "stats_no_lines": "Hier ist keine Leitung verbunden, also gibt es keine Statistik.",
    "stats_bad_period": "Zeitraum „{value}“ nicht erkannt. Möglich: woche, monat, 7 oder 30.",
    "stats_percent": "{n} %",
    "stats_minutes": "{n} Min.",
    "stats_hours": "{h} Std. {m} Min.",
    "stats_days": "{d} Tg. {h} Std.",
    "stats_none": "–",
    # privacy: voicemail links, erasure
    "listen_now": "Jetzt abspielen",
    "listen_ready": "Ihr Link zur Sprachnachricht gilt {minutes} Minuten und spielt einmal.",
    "listen_unknown": "Diese Sprachnachricht gibt es nicht mehr.",
    "erased_title": "Gelöscht",
    "erased_text": "Dieser Eintrag wurde auf Wunsch gelöscht (Datenschutz).",
    "expired_text": "Dieser Eintrag wurde nach Ablauf der Aufbewahrungsfrist gelöscht.",
    "forget_usage": "Bitte so: vergessen ‹Rufnummer›, z. B. vergessen +49 30 1234567",
    "forget_not_allowed": "Löschen dürfen nur Admins (LINK_ADMINS).",
    "forget_done": "Gelöscht: {cases} Fälle mit {events} Anrufen dieser Nummer; {cards} Karten werden ersetzt. "
    "Die Mails selbst unterliegen der Aufbewahrung des Postfachs in Outlook.",
}

_EN: Mapping[str, str] = {
    "state_open": "Open",
    "state_claimed": "In progress – {name}",
    "state_done": "Done – {name}",
    "state_done_outlook": "Done in Outlook",
    "actor_outlook": "in Outlook (by someone unknown)",
    "caller_withheld": "Unknown / withheld",
    "caller_none": "Unknown – number not readable",
    "caller_unrecognised": "Not recognised",
    "unrecognised_hint": "No call notification from the phone system – please look at the mail.",
    "call_phone": "Call",
    "call_teams": "Call\u00a0in\u00a0Teams",
    "mail_subject": "Subject",
    "mail_sender": "Sender",
    "fact_calls": "Calls",
    "fact_claimed": "Claimed",
    "fact_done": "Done",
    "calls_summary": "{count} · last {relative}",
    "holder_since": "{name} · {absolute} ({relative})",
    "claim_timed_out": "In progress for over {minutes} min – anyone may release it.",
    "previous_done": "Last done by {name} on {date}",
    "previous_done_unknown": "Done before",
    "events_title": "History",
    "event_missed_call": "Missed call",
    "event_voicemail": "Voicemail",
    "event_voicemail_duration": "Voicemail ({duration})",
    "event_fax": "Fax",
    "event_unrecognised": "Mail",
    "event_called": "to\u00a0{number}",
    "listen": "Listen",
    "open_mail": "Open\u00a0mail",
    "more_events": "+{count} more",
    "verb_claim": "Claim",
    "verb_done": "Done",
    "verb_release": "Release",
    "verb_reopen": "Reopen",
    "verb_take_over": "Take over from {name}",
    "take_over_question": "Take this case over from {name}? {name} has held it since {time}.",
    "take_over_confirm": "Yes, take over",
    "just_now": "just now",
    "minutes_ago": "{n} min ago",
    "hours_ago": "{n} h ago",
    "day_ago": "1 day ago",
    "days_ago": "{n} days ago",
    "date_time": "{year}-{month:02d}-{day:02d} {time}",
    "date": "{year}-{month:02d}-{day:02d}",
    "minutes_seconds": "{m}:{s:02d} min",
    "refused_already_claimed": "Already claimed by {name} at {time}",
    "refused_already_claimed_anonymous": "Already claimed",
    "refused_already_yours": "You have claimed this case already",
    "refused_already_done": "Already done by {name} at {time}",
    "refused_already_done_anonymous": "Already done",
    "refused_claimed_by_other": "Claimed by {name} at {time} – only {name} can do that",
    "refused_not_claimed": "Nobody has claimed this case",
    "refused_not_done": "This case is not done",
    "refused_not_possible": "This action is not possible right now",
    "refused_caller_has_active_case": "This caller already has a newer open case",
    "action_unknown_case": "This case does not exist (any more)",
    "turn_failed": "Sorry, something went wrong. Please try again.",
    "action_not_saved": "That could not be saved just now; nothing was changed. Please try again.",
    "backlog_title": "{count} calls during the outage, oldest first",
    "backlog_text": "While Rufpool was unreachable, {count} new calls came in on the line {line}. Their cards follow "
    "in this channel over the next minutes, oldest first; new calls appear in between right away.",
    "use_current_card": "Please use the buttons of the current card.",
    "list_action_done": "Saved – the card in the channel is updated",
    "action_wrong_conversation": "This action only works in the line's channel (or for members of its team)",
    "link_only_in_channel": "Linking and unlinking work in a team channel only: @Rufpool link <line>",
    "link_not_allowed": (
        "Only administrators (LINK_ADMINS) and, where allowed, the team's owners may link channels to lines"
    ),
    "link_unknown_line": "The line “{line}” is not configured. Known: {known}",
    "reply_claim": "{name} claimed · {time}",
    "reply_take_over": "{name} took over from {previous} · {time}",
    "reply_release": "{name} released · {time}",
    "reply_done": "{name} marked done · {time}",
    "reply_reopen": "{name} reopened · {time}",
    "reply_outlook_complete": "Marked done in Outlook · {time}",
    "reply_outlook_reopen": "Reopened in Outlook · {time}",
    "reply_outlook_release": "Released in Outlook (was with {previous}) · {time}",
    "reply_repeat_call": "Called again · {time} ({ordinal} call)",
    "reply_repeat_voicemail": "New voicemail · {time} ({ordinal} call)",
    "reply_repeat_fax": "New fax · {time} ({ordinal} call)",
    "reply_repeat_mail": "Another mail · {time} ({ordinal} call)",
    "list_open_title": "Open callbacks ({total})",
    "list_mine_title": "My callbacks ({total})",
    "list_open_empty": "All done – no open callbacks 🎉",
    "list_mine_empty": "You have no claimed callbacks right now.",
    "list_range": "{first}–{last} of {total}",
    "list_row_details": "{line} · {calls} · {relative}",
    "calls_count_one": "1 call",
    "calls_count_many": "{n} calls",
    "page_next": "Next",
    "page_previous": "Back",
    "linked_title": "Channel linked",
    "linked_text": "New calls of the line {line} now appear here as cards.",
    "unlinked_title": "Channel unlinked",
    "unlinked_text": "The line {line} no longer posts to this channel.",
    "help_title": "Rufpool",
    "help_intro": (
        "I turn the missed calls and voicemails of the shared number into one card each. "
        "Whoever calls back clicks “{claim}”, then “{done}” – so nobody calls twice and no call is forgotten."
    ),
    "help_unknown": "I don't know the command “{text}”.",
    "help_commands": "Commands",
    "help_cmd_open": "Open and claimed callbacks, oldest first",
    "help_cmd_mine": "Callbacks you have claimed",
    "help_cmd_stats": "Calls, cases and how fast they are claimed and done (default: 7 days)",
    "help_cmd_help": "This help",
    "help_cmd_link": "Link this channel to a line (admins)",
    "help_cmd_unlink": "Unlink this channel (admins)",
    "cmd_open": "open",
    "cmd_mine": "mine",
    "cmd_stats": "stats [week|month]",
    "cmd_forget": "forget ‹number›",
    "help_cmd_forget": "Delete every case and call of a number (admins, best in personal chat)",
    "cmd_help": "help",
    "cmd_link": "link ‹line›",
    "cmd_unlink": "unlink ‹line›",
    # callbacks and answered repeat calls (Placetel call webhooks)
    "state_done_callback": "Done – called back",
    "actor_callback": "by a callback",
    "fact_callback": "Callback",
    "fact_caller_reached": "Reached",
    "callback_fact": "{agent} · {absolute} · {result}",
    "callback_reached": "reached ({duration})",
    "callback_not_reached": "not reached",
    "caller_reached_fact": "Caller called again · {absolute}",
    "reached_hint": "The caller was reached – done?",
    "reply_callback": "Callback by {agent} · {time} · {result}",
    "reply_caller_reached": "Caller called again and was reached · {time}",
    "reply_callback_reached": "Done by callback · {time}",
    "refused_already_done_callback": "Already done – called back at {time}",
    "activity_summary": "{state}: {caller} · {calls}",
    "link_usage": "Usage: @Rufpool link ‹line›. Lines: {known}",
    "unlink_usage": "Usage: @Rufpool unlink ‹line›. Linked to this channel: {linked}",
    # statistics (stats command, weekly digest)
    "stats_title": "Statistics – {scope}",
    "stats_digest_title": "Weekly review – {scope}",
    "stats_period": "{start} to {end} ({days} days)",
    "stats_fact_calls": "Calls",
    "stats_fact_cases": "Cases",
    "stats_fact_handled": "Done",
    "stats_handled_value": "{done} of {cases} ({share})",
    "stats_fact_to_claim": "Time to claim",
    "stats_fact_to_done": "Time to done",
    "stats_duration_value": "median {median} · 90% within {p90}",
    "stats_fact_repeat": "Repeat callers (3 calls or more)",
    "stats_fact_unreached": "Callbacks that did not reach",
    "stats_unreached_unavailable": "not available yet – Rufpool needs Placetel's call data for it",
    "stats_measure_wall": "Times in calendar time (no business hours are set up).",
    "stats_measure_business": "Times in business hours.",
    "stats_precision": "From 10 min on rounded down to 5 min, from 1 h to 15 min, from 4 h to the hour, from 7 days to "
    "the day.",
    "stats_lines_title": "By line",
    "stats_people_title": "By person",
    "stats_col_line": "Line",
    "stats_col_person": "Person",
    "stats_col_calls": "Calls",
    "stats_col_cases": "Cases",
    "stats_col_done": "Done",
    "stats_col_claimed": "Claimed",
    "stats_col_median_claim": "Median to claim",
    "stats_col_median_done": "Median to done",
    "stats_you_title": "Your numbers",
    "stats_you_value": "{claimed} claimed · {done} done · median to claim: {median}",
    "stats_chart_title": "When do people call? Calls per weekday and hour",
    "stats_chart_alt": "Calls per weekday and hour",
    "stats_repeat_line": "{caller} · {calls} calls",
    "stats_outlook": "Outlook (who is unknown)",
    "stats_callback": "By callback (phone system)",
    "stats_no_lines": "No line is linked here, so there are no statistics.",
    "stats_bad_period": "Period “{value}” not recognised. Use week, month, 7 or 30.",
    "stats_percent": "{n}%",
    "stats_minutes": "{n} min",
    "stats_hours": "{h} h {m} min",
    "stats_days": "{d} d {h} h",
    "stats_none": "–",
    "listen_now": "Play now",
    "listen_ready": "Your link to the voicemail is valid for {minutes} minutes and plays once.",
    "listen_unknown": "This voicemail no longer exists.",
    "erased_title": "Deleted",
    "erased_text": "This entry was deleted on request (data protection).",
    "expired_text": "This entry was deleted when its retention period ended.",
    "forget_usage": "Like this: forget ‹number›, e.g. forget +49 30 1234567",
    "forget_not_allowed": "Only admins (LINK_ADMINS) may erase data.",
    "forget_done": "Deleted: {cases} cases with {events} calls of this number; {cards} cards will be replaced. "
    "The mails themselves follow the mailbox's own retention in Outlook.",
}

# Reminders, business hours and the morning overview.
_DE_REMINDERS: Mapping[str, str] = {
    "due_new": "Neu · wartet seit {waited}",
    "due_since": "Fällig seit {since} · wartet seit {waited}",
    "due_claim_overdue": "Seit {waited} in Bearbeitung – fertig? Sonst bitte „Freigeben“.",
    "waited_minutes": "{m} Min.",
    "waited_hours": "{h} Std. {m} Min.",
    "reminder_unclaimed": "⏰ {mentions} Dieser Rückruf wartet seit {waited} – wer übernimmt?",
    "reminder_unclaimed_nobody": "⏰ Dieser Rückruf wartet seit {waited} – wer übernimmt?",
    "reminder_claimed": "⏰ {mentions} du hast diesen Rückruf seit {waited}. Erledigt? Sonst bitte „Freigeben“, "
    "damit jemand anderes zurückruft.",
    "reminder_escalation": "🚨 {mentions} Eskalation: dieser Rückruf ({line}, {caller}) ist seit {waited} offen – "
    "{count}× erinnert, niemand hat übernommen.",
    "reminder_escalation_claimed": "🚨 {mentions} Eskalation: dieser Rückruf ({line}, {caller}) ist seit {waited} "
    "bei {name} in Bearbeitung – {count}× erinnert.",
    "overview_title": "Guten Morgen – {count} seit {since} ({line})",
    "overview_title_first": "Guten Morgen – {count} vor Öffnung ({line})",
    "overview_intro": "Eingegangen, während die Leitung geschlossen war, älteste zuerst:",
    "overview_more": "+{count} weitere – alle mit „@Rufpool offen“",
    "help_rules_title": "Erinnerungen",
    "help_rules": (
        "Gezählt wird nur in den Geschäftszeiten der Leitung (Feiertage und Schließtage zählen nicht). "
        "Ein Rückruf, den nach {unclaimed} Min. niemand übernommen hat, bekommt eine Erinnerung im Thread; "
        "wer einen Fall länger als {claimed} Min. hat, wird erinnert und kann ihn freigeben; nach {after} "
        "Erinnerungen wird eskaliert. Zur ersten Öffnung des Tages kommt eine Übersicht der Anrufe aus der Nacht."
    ),
    "help_hours": "{line}: {hours}",
    "help_hours_off": "{line}: {hours} · Erinnerungen aus",
    "nudge_release_hint": "Schaffst du es nicht? Freigeben macht den Fall wieder offen für alle.",
    "nudge_released": "Freigegeben – der Fall ist wieder offen.",
}

_EN_REMINDERS: Mapping[str, str] = {
    "due_new": "New · waiting for {waited}",
    "due_since": "Due since {since} · waiting for {waited}",
    "due_claim_overdue": "In progress for {waited} – done? Otherwise please “Release”.",
    "waited_minutes": "{m} min",
    "waited_hours": "{h} h {m} min",
    "reminder_unclaimed": "⏰ {mentions} This callback has been waiting for {waited} – who takes it?",
    "reminder_unclaimed_nobody": "⏰ This callback has been waiting for {waited} – who takes it?",
    "reminder_claimed": "⏰ {mentions} you have held this callback for {waited}. Done? Otherwise please “Release” "
    "it so someone else calls back.",
    "reminder_escalation": "🚨 {mentions} Escalation: this callback ({line}, {caller}) has been open for {waited} – "
    "reminded {count}×, nobody took it.",
    "reminder_escalation_claimed": "🚨 {mentions} Escalation: this callback ({line}, {caller}) has been with {name} "
    "for {waited} – reminded {count}×.",
    "overview_title": "Good morning – {count} since {since} ({line})",
    "overview_title_first": "Good morning – {count} before opening ({line})",
    "overview_intro": "Came in while the line was closed, oldest first:",
    "overview_more": "+{count} more – see all with “@Rufpool open”",
    "help_rules_title": "Reminders",
    "help_rules": (
        "Only the line's business hours count (holidays and closed days do not). A callback nobody claimed "
        "for {unclaimed} min gets a reminder in its thread; whoever holds a case longer than {claimed} min is "
        "reminded and may release it; after {after} reminders it is escalated. At the first opening of the day an "
        "overview lists the calls of the night."
    ),
    "help_hours": "{line}: {hours}",
    "help_hours_off": "{line}: {hours} · reminders off",
    "nudge_release_hint": "Can't get to it? Releasing makes the case open for everyone again.",
    "nudge_released": "Released – the case is open again.",
}

TEXTS: Mapping[Lang, Mapping[str, str]] = {Lang.DE: {**_DE, **_DE_REMINDERS}, Lang.EN: {**_EN, **_EN_REMINDERS}}


def text(lang: Lang, key: str, **values: object) -> str:
    return TEXTS[lang][key].format(**values)


def clock(moment: datetime, tz: tzinfo = BERLIN) -> str:
    """``10:32`` in the team's time zone."""
    return f"{moment.astimezone(tz):%H:%M}"


def ordinal(n: int, lang: Lang) -> str:
    """``3.`` in German, ``3rd`` in English."""
    if lang is Lang.DE:
        return f"{n}."
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def calls_count(n: int, lang: Lang) -> str:
    return text(lang, "calls_count_one") if n == 1 else text(lang, "calls_count_many", n=n)


_REFUSAL_KEYS: Mapping[RefusalCode, tuple[str, str | None]] = {
    # code: (key naming the holder, key without a holder — None when the first key needs no holder)
    RefusalCode.ALREADY_CLAIMED: ("refused_already_claimed", "refused_already_claimed_anonymous"),
    RefusalCode.CLAIMED_BY_OTHER: ("refused_claimed_by_other", "refused_already_claimed_anonymous"),
    RefusalCode.ALREADY_DONE: ("refused_already_done", "refused_already_done_anonymous"),
    RefusalCode.ALREADY_YOURS: ("refused_already_yours", None),
    RefusalCode.NOT_CLAIMED: ("refused_not_claimed", None),
    RefusalCode.NOT_DONE: ("refused_not_done", None),
    RefusalCode.OUTLOOK_ONLY: ("refused_not_possible", None),
    RefusalCode.PHONE_ONLY: ("refused_not_possible", None),
    RefusalCode.USERS_ONLY: ("refused_not_possible", None),
    RefusalCode.NO_CHANGE: ("refused_not_possible", None),
    RefusalCode.CALLER_HAS_ACTIVE_CASE: ("refused_caller_has_active_case", None),
}


def refusal_text(refusal: Refusal, lang: Lang, tz: tzinfo = BERLIN) -> str:
    """Why an action was refused, e.g. "Bereits übernommen von Anna Schmidt um 10:32" (plain text, not escaped)."""
    with_holder, without_holder = _REFUSAL_KEYS[refusal.code]
    if refusal.code is RefusalCode.ALREADY_DONE and refusal.holder and refusal.holder.is_callback and refusal.since:
        return text(lang, "refused_already_done_callback", time=clock(refusal.since, tz))
    if without_holder is None:
        return text(lang, with_holder)
    if refusal.holder is None or refusal.since is None:
        return text(lang, without_holder)
    return text(lang, with_holder, name=refusal.holder.name, time=clock(refusal.since, tz))
