"""Pure domain model: call events, cases, the claim/done state machine and grouping (no I/O imports)."""
