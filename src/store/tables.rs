//! Every redb table of the store, declared in one place. `schema/store.md`
//! documents each of them; a change here is a schema change.
//!
//! Records live in `TASKS`, `JOBS` and `EVENTS`. Everything else is an index
//! derived from the records, changed in the same write transaction as the
//! records it indexes, and verified by `orch db check`.

use redb::TableDefinition;

/// Schema version, id sequences, boot id and the gate switches in force.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// task id → task record.
pub const TASKS: TableDefinition<u64, &[u8]> = TableDefinition::new("tasks");
/// job id → job record.
pub const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
/// (task id, seq) → event record: the append-only audit log of each task.
pub const EVENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("events");

/// Natural key → task id. Live keys and tombstoned keys (`K::cancelled::id`).
pub const KEY_WORK_ITEM: TableDefinition<&str, u64> = TableDefinition::new("key_work_item");
pub const KEY_PLANE: TableDefinition<&str, u64> = TableDefinition::new("key_plane_issue");

/// (task id, job id): every job of a task.
pub const JOBS_BY_TASK: TableDefinition<(u64, u64), ()> = TableDefinition::new("jobs_by_task");
/// (task id, job id) of queued and running jobs: what re-evaluating a task
/// looks at, so a task's finished history costs nothing.
pub const LIVE_JOBS: TableDefinition<(u64, u64), ()> = TableDefinition::new("live_jobs_by_task");
/// (status code, job id): every job by status.
pub const JOBS_BY_STATUS: TableDefinition<(u8, u64), ()> = TableDefinition::new("jobs_by_status");
/// (lease expiry, job id) of running jobs: what the reaper reads.
pub const LEASES: TableDefinition<(i64, u64), ()> = TableDefinition::new("leases");
/// (repo, task id) of unfinished tasks: each repo's FIFO.
pub const REPO_TASKS: TableDefinition<(&str, u64), ()> = TableDefinition::new("repo_tasks");
/// (dependency task id, dependent task id): reverse deps.
pub const DEPS_REVERSE: TableDefinition<(u64, u64), ()> = TableDefinition::new("deps_reverse");

/// Claimable queued jobs that no serial gate holds back.
pub const READY: TableDefinition<u64, ()> = TableDefinition::new("claim_ready");
/// (repo, job id) → task id: analyst jobs of unadmitted tasks behind a
/// serial gate. The task id spares the snapshot a job read per entry.
pub const REPO_WAITING: TableDefinition<(&str, u64), u64> =
    TableDefinition::new("claim_repo_waiting");
/// (repo, task id): tasks that hold their repo's serial gate.
pub const HOLDERS: TableDefinition<(&str, u64), ()> = TableDefinition::new("claim_holders");
/// repo → its oldest waiting job, present only while nothing holds the repo.
pub const REPO_HEAD: TableDefinition<&str, u64> = TableDefinition::new("claim_repo_head");
/// The set of those heads: job id → (). A claim takes the smaller of the
/// first entry here and the first entry of `READY`.
pub const HEADS: TableDefinition<u64, ()> = TableDefinition::new("claim_heads");

/// Unfinished tasks waiting on a dependency.
pub const DEPS_WAITING: TableDefinition<u64, ()> = TableDefinition::new("deps_waiting");
/// Unfinished tasks that are blocked and wait for a human.
pub const BLOCKED: TableDefinition<u64, ()> = TableDefinition::new("blocked_tasks");
/// Unfinished tasks with a cancel requested and not yet resolved.
pub const CANCELLING: TableDefinition<u64, ()> = TableDefinition::new("cancelling_tasks");

/// (task id, what) → cleanup debt: a cancel step that failed and is
/// retried by the reaper with backoff. A record table, not derived.
pub const CLEANUP_DEBT: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("cleanup_debt");
/// (cancelled at, task id) of cancelled tasks: the `recent` list of `/queue`.
pub const CANCELLED: TableDefinition<(i64, u64), ()> = TableDefinition::new("cancelled_tasks");

/// Counters kept in step with the tables they count, so no snapshot counts by
/// scanning: `jobs/<status>`, `waiting/<repo>`, `deps_waiting`, `blocked`,
/// `cancelling`, `cleanup_debt`.
pub const COUNTS: TableDefinition<&str, u64> = TableDefinition::new("counts");
