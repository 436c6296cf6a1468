//! The peer: the predecessor's claim as SQL on SQLite, loaded with the same
//! plan as orch. The SQL it runs is `docs/perf/predecessor-claim.sql`,
//! included here so the pinned file and the measured SQL cannot drift.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, TransactionBehavior, named_params};

use super::plan::Plan;
use super::{Claimed, Engine, LEASE_MS, LOAD_NOW, WORKER};

const SQL: &str = include_str!("../../docs/perf/predecessor-claim.sql");

/// The section of the pinned file that follows `-- name: <name>`.
fn section(name: &str) -> &'static str {
    let marker = format!("-- name: {name}\n");
    let start = SQL
        .find(&marker)
        .unwrap_or_else(|| panic!("predecessor-claim.sql has no section {name}"))
        + marker.len();
    let end = SQL[start..]
        .find("-- name: ")
        .map_or(SQL.len(), |i| start + i);
    &SQL[start..end]
}

/// Creates the database file and loads the plan's final state in one
/// transaction, then builds the indexes.
pub fn load(plan: &Plan, dir: &Path) -> PathBuf {
    let path = dir.join("peer.sqlite");
    let mut conn = Connection::open(&path).expect("open sqlite");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;",
    )
    .expect("pragmas");
    conn.execute_batch(section("schema")).expect("schema");
    let tx = conn.transaction().expect("begin");
    {
        let mut task = tx
            .prepare(
                "INSERT INTO tasks (id, work_item_id, repo, branch, stage, title, created_at, admitted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .expect("prepare tasks");
        for t in &plan.tasks {
            task.execute(rusqlite::params![
                t.id,
                t.work_item_id,
                t.repo,
                format!("feature/{}", t.work_item_id),
                t.stage.as_str(),
                format!("title of {}", t.work_item_id),
                LOAD_NOW,
                t.admitted.then_some(LOAD_NOW),
            ])
            .expect("insert task");
        }
        let mut dep = tx
            .prepare("INSERT INTO task_deps (task_id, depends_on) VALUES (?1, ?2)")
            .expect("prepare deps");
        for t in &plan.tasks {
            for d in &t.deps {
                dep.execute([t.id, *d]).expect("insert dep");
            }
        }
        let mut job = tx
            .prepare(
                "INSERT INTO jobs (id, task_id, role, stage, status, attempt, lease_expires_at,
                                   worker, created_at, started_at, finished_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .expect("prepare jobs");
        for j in &plan.jobs {
            let started = j.attempt > 0;
            let running = j.status == orch::domain::JobStatus::Running;
            job.execute(rusqlite::params![
                j.id,
                j.task_id,
                j.role.as_str(),
                j.stage.as_str(),
                j.status.as_str(),
                j.attempt,
                running.then_some(LOAD_NOW + super::LONG_LEASE_MS),
                started.then_some("loader"),
                LOAD_NOW,
                started.then_some(LOAD_NOW),
                (started && !running).then_some(LOAD_NOW),
            ])
            .expect("insert job");
        }
    }
    tx.commit().expect("commit load");
    conn.execute_batch(section("indexes")).expect("indexes");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("checkpoint");
    path
}

pub struct Peer {
    conn: Connection,
    claim: &'static str,
    admit: &'static str,
    event: &'static str,
    put_back: &'static str,
}

impl Peer {
    /// Opens the loaded file with `synchronous = FULL` (`durable`) or `OFF`.
    pub fn open(path: &Path, durable: bool) -> Peer {
        let conn = Connection::open(path).expect("open sqlite");
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; PRAGMA cache_size = -65536;",
            if durable { "FULL" } else { "OFF" }
        ))
        .expect("pragmas");
        Peer {
            conn,
            claim: section("claim"),
            admit: section("admit"),
            event: section("event"),
            put_back: section("put_back"),
        }
    }

    /// The plan SQLite chose for the claim, one line per step.
    pub fn query_plan(&self) -> Vec<String> {
        let mut stmt = self
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", self.claim))
            .expect("explain");
        stmt.query_map(
            named_params! {":now": 0i64, ":lease_ms": 0i64, ":worker": ""},
            |r| r.get::<_, String>(3),
        )
        .expect("explain rows")
        .map(|r| r.expect("explain row"))
        .collect()
    }
}

impl Engine for Peer {
    fn claim(&mut self, now: i64) -> Option<Claimed> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .expect("begin");
        let claimed = {
            let mut claim = tx.prepare_cached(self.claim).expect("prepare claim");
            let mut rows = claim
                .query(named_params! {":now": now, ":lease_ms": LEASE_MS, ":worker": WORKER})
                .expect("claim");
            rows.next().expect("claim row").map(|r| {
                (
                    r.get::<_, u64>(0).expect("id"),
                    r.get::<_, u64>(1).expect("task_id"),
                    r.get::<_, String>(2).expect("role"),
                    r.get::<_, u32>(3).expect("attempt"),
                )
            })
        };
        let out = claimed.map(|(job_id, task_id, role, attempt)| {
            let admitted = tx
                .prepare_cached(self.admit)
                .expect("prepare admit")
                .execute(named_params! {":now": now, ":task_id": task_id, ":role": role})
                .expect("admit");
            let mut event = tx.prepare_cached(self.event).expect("prepare event");
            event
                .execute(named_params! {
                    ":task_id": task_id, ":now": now, ":kind": "claimed", ":job_id": job_id,
                    ":detail": format!("{role} attempt {attempt} by {WORKER}"),
                })
                .expect("event");
            if admitted == 1 {
                event
                    .execute(named_params! {
                        ":task_id": task_id, ":now": now, ":kind": "admitted", ":job_id": job_id,
                        ":detail": "first analyst claim",
                    })
                    .expect("event");
            }
            Claimed {
                job_id,
                task_id,
                attempt,
            }
        });
        tx.commit().expect("commit claim");
        out
    }

    fn put_back(&mut self, now: i64, c: &Claimed) {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .expect("begin");
        let changed = tx
            .prepare_cached(self.put_back)
            .expect("prepare put_back")
            .execute(named_params! {
                ":job_id": c.job_id, ":attempt": c.attempt, ":reason": super::PUT_BACK_REASON,
            })
            .expect("put back");
        assert_eq!(changed, 1, "put-back lost its fence");
        tx.prepare_cached(self.event)
            .expect("prepare event")
            .execute(named_params! {
                ":task_id": c.task_id, ":now": now, ":kind": "job_interrupted", ":job_id": c.job_id,
                ":detail": super::PUT_BACK_REASON,
            })
            .expect("event");
        tx.commit().expect("commit put back");
    }
}
