"""Maps Graph errors onto the job runner's retry vocabulary."""

from __future__ import annotations

from datetime import timedelta

import httpx
from kiota_abstractions.api_error import APIError

from bot import metrics
from bot.jobs import PermanentFailure, RetryLater

TRANSIENT_STATUSES = {408, 409, 412, 429, 500, 502, 503, 504}


def retry_after(headers: dict[str, str] | None) -> timedelta | None:
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            try:
                return timedelta(seconds=max(0.0, float(value)))
            except ValueError:
                return None
    return None


def graph_status(error: BaseException) -> int | None:
    """The HTTP status of a failed Graph call, also when it was already mapped by :func:`as_job_error`."""
    for candidate in (error, error.__cause__):
        if isinstance(candidate, APIError):
            return candidate.response_status_code
    return None


def as_job_error(error: Exception) -> Exception:
    """The exception a job handler should raise for a failed Graph call."""
    if isinstance(error, APIError):
        status = error.response_status_code or 0
        metrics.REMOTE_ERRORS.labels("graph", str(status)).inc()
        if status in TRANSIENT_STATUSES or status >= 500:
            return RetryLater(f"Graph answered {status}: {error.primary_message}", retry_after(error.response_headers))
        return PermanentFailure(f"Graph refused the request ({status}): {error.primary_message}")
    if isinstance(error, httpx.HTTPError | OSError | TimeoutError):
        metrics.REMOTE_ERRORS.labels("graph", "network").inc()
        return RetryLater(f"Graph unreachable: {type(error).__name__}: {error}")
    return error
