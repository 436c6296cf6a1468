-- The predecessor's claim, re-expressed as SQL on SQLite: the peer that
-- orch's claim is measured against (SPEC §11 P1, docs/perf/claim.md).
--
-- This file is the SQL the benchmark runs, not a copy of it:
-- benches/claim.rs includes it at build time and executes each section by
-- its `-- name:` line. Named parameters are bound by the benchmark.
--
-- Connection settings, per run:
--   PRAGMA journal_mode = WAL;
--   PRAGMA synchronous = FULL;   -- peer of redb Durability::Immediate
--   PRAGMA synchronous = OFF;    -- peer of redb Durability::None
--   PRAGMA cache_size = -65536;  -- 64 MiB, orch's default redb cache
--
-- Semantics are orch's (SPEC §5): a job is claimable when it is queued,
-- its task is not terminal (`done`, `cancelled`) and has no cancel
-- requested, the serial gate is open (it only concerns analyst jobs of
-- tasks not yet admitted; it is closed while another admitted, unfinished
-- task of the same repo exists; freeze layer on, so a blocked task still
-- holds its repo) and the deps gate is open (no unfinished dependency).
-- The oldest claimable job by id wins. Gates are on for every repo.

-- name: schema
CREATE TABLE tasks (
    id                  INTEGER PRIMARY KEY,
    work_item_id        TEXT    NOT NULL UNIQUE,
    repo                TEXT    NOT NULL,
    branch              TEXT    NOT NULL,
    stage               TEXT    NOT NULL,
    title               TEXT    NOT NULL,
    blocked_reason      TEXT,
    created_at          INTEGER NOT NULL,
    admitted_at         INTEGER,
    cancel_requested_at INTEGER,
    cancelled_at        INTEGER
);
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY,
    task_id          INTEGER NOT NULL REFERENCES tasks (id),
    role             TEXT    NOT NULL,
    stage            TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    lease_expires_at INTEGER,
    worker           TEXT,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    reason           TEXT
);
CREATE TABLE task_deps (
    task_id    INTEGER NOT NULL REFERENCES tasks (id),
    depends_on INTEGER NOT NULL REFERENCES tasks (id),
    PRIMARY KEY (task_id, depends_on)
) WITHOUT ROWID;
CREATE TABLE events (
    id      INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL REFERENCES tasks (id),
    at      INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    job_id  INTEGER,
    detail  TEXT    NOT NULL
);

-- name: indexes
-- Created after the bulk load. Each gate predicate below is answered by an
-- index seek; the partial index on active tasks is the best index SQLite
-- can have for the serial gate (its WHERE repeats the query's terms, so
-- the planner uses it).
CREATE INDEX jobs_status_id ON jobs (status, id);
CREATE INDEX jobs_task ON jobs (task_id, id);
CREATE INDEX tasks_repo_active ON tasks (repo)
    WHERE admitted_at IS NOT NULL AND stage NOT IN ('done', 'cancelled');
CREATE INDEX task_deps_reverse ON task_deps (depends_on, task_id);
CREATE INDEX events_task ON events (task_id, id);
ANALYZE;

-- name: claim
-- One statement picks the oldest eligible queued job and sets it running.
UPDATE jobs
   SET status = 'running',
       attempt = attempt + 1,
       lease_expires_at = :now + :lease_ms,
       worker = :worker,
       started_at = :now
 WHERE id = (
       SELECT j.id
         FROM jobs j
         JOIN tasks t ON t.id = j.task_id
        WHERE j.status = 'queued'
          AND t.stage NOT IN ('done', 'cancelled')
          AND t.cancel_requested_at IS NULL
          -- serial gate
          AND NOT (j.role = 'analyst' AND t.admitted_at IS NULL AND EXISTS (
                SELECT 1
                  FROM tasks h
                 WHERE h.repo = t.repo
                   AND h.id <> t.id
                   AND h.admitted_at IS NOT NULL
                   AND h.stage NOT IN ('done', 'cancelled')))
          -- deps gate
          AND NOT EXISTS (
                SELECT 1
                  FROM task_deps d
                  JOIN tasks dt ON dt.id = d.depends_on
                 WHERE d.task_id = t.id
                   AND dt.stage NOT IN ('done', 'cancelled'))
        ORDER BY j.id
        LIMIT 1)
RETURNING id, task_id, role, attempt;

-- name: admit
-- Same transaction as the claim: the first analyst claim admits the task.
UPDATE tasks
   SET admitted_at = :now
 WHERE id = :task_id
   AND admitted_at IS NULL
   AND :role = 'analyst';

-- name: event
-- Same transaction as the claim: the audit log entry (`claimed`, and
-- `admitted` when the task was admitted), as orch writes them.
INSERT INTO events (task_id, at, kind, job_id, detail)
VALUES (:task_id, :now, :kind, :job_id, :detail);

-- name: put_back
-- Not measured: the benchmark returns the claimed job to the queue (a job
-- interrupted by shutdown), fenced on (id, attempt, running), so every
-- measured claim sees the same store.
UPDATE jobs
   SET status = 'queued',
       lease_expires_at = NULL,
       worker = NULL,
       reason = :reason
 WHERE id = :job_id
   AND attempt = :attempt
   AND status = 'running';
