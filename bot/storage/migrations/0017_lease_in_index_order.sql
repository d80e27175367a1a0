-- Performance (issue 17). A lease takes the due jobs of a priority in (run_at, id) order, LIMIT the few it wants.
-- With the index ending at run_at, PostgreSQL read every due job of the priority and sorted them: with a backlog of
-- 3,000 notifications each lease took 2.5 ms of the server's CPU, and a burst of webhooks slowed to a crawl behind
-- the workers' leases. With id in the index, the order is the index's and a lease reads only the rows it takes.
DROP INDEX jobs_due_by_priority;

CREATE INDEX jobs_due_by_priority ON jobs (state, priority, run_at, id);

DROP INDEX jobs_lease_expiry;

CREATE INDEX jobs_lease_expiry ON jobs (state, lease_expires_at, id);
