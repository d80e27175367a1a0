"""Prometheus figures served on /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry(auto_describe=True)

NOTIFICATIONS = Counter(
    "rufpool_notifications_received_total", "Graph change notifications received", ["outcome"], registry=REGISTRY
)
EVENTS = Counter("rufpool_call_events_total", "Call events stored", ["kind"], registry=REGISTRY)
CASES = Gauge("rufpool_cases", "Cases by state", ["state"], registry=REGISTRY)
OUTBOX_DEPTH = Gauge("rufpool_outbox_jobs", "Jobs in the outbox by state", ["state"], registry=REGISTRY)
JOBS_DONE = Counter("rufpool_jobs_done_total", "Jobs completed", ["kind"], registry=REGISTRY)
JOB_RETRIES = Counter("rufpool_job_retries_total", "Jobs scheduled for a retry", ["kind"], registry=REGISTRY)
REPAIRS = Counter("rufpool_repairs_total", "Missing effects queued by the repair sweep", ["kind"], registry=REGISTRY)
DEAD_LETTERS = Counter("rufpool_dead_letters_total", "Jobs moved to the dead letters", ["kind"], registry=REGISTRY)
REMOTE_ERRORS = Counter(
    "rufpool_remote_errors_total", "Errors answered by Graph or Teams", ["service", "status"], registry=REGISTRY
)
PLACETEL_WEBHOOKS = Counter(
    "rufpool_placetel_webhooks_total", "Placetel call events received, by outcome", ["outcome"], registry=REGISTRY
)
CONTACTS = Counter(
    "rufpool_contacts_total", "Callbacks and answered repeat calls recorded on cases", ["kind"], registry=REGISTRY
)
CARDS_ADOPTED = Counter(
    "rufpool_cards_adopted_total",
    "Cards found in their channel after a POST whose outcome was unknown, adopted instead of posted again",
    registry=REGISTRY,
)
