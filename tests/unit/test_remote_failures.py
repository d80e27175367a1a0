"""One Retry-After parser and one status on mapped failures, for Graph as for Teams."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from kiota_abstractions.api_error import APIError

from bot.core.jobs import PermanentFailure, RetryLater, failure_status, parse_retry_after
from bot.graph.errors import as_job_error

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("7", NOW) == timedelta(seconds=7)
    assert parse_retry_after(format_datetime(NOW + timedelta(seconds=30)), NOW) == timedelta(seconds=30)
    assert parse_retry_after(format_datetime(NOW - timedelta(seconds=30)), NOW) == timedelta(0)
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None


def _graph_error(status: int, headers: dict[str, str]) -> APIError:
    error = APIError(f"status {status}")
    error.response_status_code = status
    error.response_headers = headers
    return error


def test_graph_honours_a_retry_after_date_and_keeps_the_status() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30))
    mapped = as_job_error(_graph_error(429, {"retry-after": later}))
    assert isinstance(mapped, RetryLater) and mapped.retry_after is not None
    assert timedelta(seconds=25) < mapped.retry_after <= timedelta(seconds=30)
    assert failure_status(mapped) == 429

    refused = as_job_error(_graph_error(404, {}))
    assert isinstance(refused, PermanentFailure) and failure_status(refused) == 404
    assert failure_status(ValueError("not remote")) is None
