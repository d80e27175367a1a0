-- Live work before backlog: a job's priority (0 = live, 1 = backlog such as the cards of a catch-up). Due jobs are
-- leased per priority in run_at order, each from its own range of this index.
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;

CREATE INDEX jobs_due_by_priority ON jobs (state, priority, run_at);

DROP INDEX jobs_due;
