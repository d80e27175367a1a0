"""Durable storage: repositories per entity and the job queue / outbox, on SQLite (default) or PostgreSQL."""
