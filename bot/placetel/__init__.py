"""The Placetel adapter. This package's exports are the notification-mail parser: PBX mails (Placetel and others)
to call events, pure code without I/O. :mod:`bot.placetel.notify` is the Notify API webhook (call events over HTTP)."""

from bot.core.numbers import normalise_number
from bot.core.values import MailAttachment, MailMessage, ParsedMail
from bot.placetel.parser import OWN_SUBJECT_MARKER, parse_mail
from bot.placetel.profiles import (
    BUILTIN_PROFILES,
    PLACETEL_PROFILE,
    WAV_PBX_PROFILE,
    AttachmentRule,
    BodyPatterns,
    KindPatterns,
    ParserProfile,
    ProfileConfigError,
    load_profiles,
    merge_profiles,
)

__all__ = [
    "BUILTIN_PROFILES",
    "OWN_SUBJECT_MARKER",
    "PLACETEL_PROFILE",
    "WAV_PBX_PROFILE",
    "AttachmentRule",
    "BodyPatterns",
    "KindPatterns",
    "MailAttachment",
    "MailMessage",
    "ParsedMail",
    "ParserProfile",
    "ProfileConfigError",
    "load_profiles",
    "merge_profiles",
    "normalise_number",
    "parse_mail",
]
