"""Maps Graph errors onto the job runner's retry vocabulary."""

from __future__ import annotations

from datetime import timedelta
from typing import NoReturn

import httpx
from kiota_abstractions.api_error import APIError

from bot import metrics
from bot.core.jobs import PermanentFailure, RetryLater, failure_status, parse_retry_after

TRANSIENT_STATUSES = {408, 409, 412, 429, 500, 502, 503, 504}


def retry_after(headers: dict[str, str] | None) -> timedelta | None:
    values = [value for name, value in (headers or {}).items() if name.lower() == "retry-after"]
    return parse_retry_after(values[0] if values else None)


def graph_status(error: BaseException) -> int | None:
    """The HTTP status of a failed Graph call: raw, or already mapped by :func:`as_job_error`."""
    if isinstance(error, APIError):
        return error.response_status_code
    return failure_status(error)


def raise_mapped(error: Exception) -> NoReturn:
    """Raise a failed Graph call as the job runner's vocabulary (:func:`as_job_error`), chained to the original."""
    mapped = as_job_error(error)
    if mapped is error:
        raise error
    raise mapped from error


def as_job_error(error: Exception) -> Exception:
    """The exception a job handler should raise for a failed Graph call."""
    if isinstance(error, APIError):
        status = error.response_status_code or 0
        metrics.REMOTE_ERRORS.labels("graph", str(status)).inc()
        if status in TRANSIENT_STATUSES or status >= 500:
            return RetryLater(
                f"Graph answered {status}: {error.primary_message}", retry_after(error.response_headers), status=status
            )
        return PermanentFailure(f"Graph refused the request ({status}): {error.primary_message}", status=status)
    if isinstance(error, httpx.HTTPError | OSError | TimeoutError):
        metrics.REMOTE_ERRORS.labels("graph", "network").inc()
        return RetryLater(f"Graph unreachable: {type(error).__name__}: {error}")
    return error
