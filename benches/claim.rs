//! P1: claim latency with the gates on (SPEC §11 P1, docs/perf/claim.md).
//!
//! For each store size, orch (redb) and the predecessor's claim as SQL on
//! SQLite are loaded with the same tasks and jobs (`claim/plan.rs`): a
//! tenth of the jobs queued (at most 100,000), 99% of those gated and older
//! than the claimable ones, the rest done or failed history. Each engine is
//! then measured at both durabilities: redb `Immediate` against SQLite
//! `synchronous=FULL`, redb `None` against `synchronous=OFF`.
//!
//! One timed iteration is one claim transaction, commit included. After it,
//! untimed, the claimed job is put back in the queue the way a shutdown
//! interrupts a job (a fenced transaction of its own), so every claim sees
//! the same store and claims the same, oldest claimable, job.
//!
//! Criterion reports mean and median; p50 and p99 are computed here from
//! every timed claim (criterion's warm-up and measurement alike, all after
//! untimed warm-up rounds) and printed at the end with the growth and speed
//! ratios.
//!
//! Environment:
//! - `ORCH_BENCH_SIZES`: comma-separated store sizes in jobs (default
//!   `1000,100000,1000000`), e.g. `ORCH_BENCH_SIZES=1000,100000` for a
//!   quick run.
//! - `ORCH_BENCH_ENGINES`: `orch`, `sqlite` or both (default both).
//! - `ORCH_BENCH_DIR`: where the store files go (default the system temp
//!   dir). It must be on a real disk: on tmpfs an fsync costs nothing and
//!   `Immediate` / `FULL` measure nothing.
//!
//! Run: `cargo bench --bench claim`.

#[path = "claim/peer.rs"]
mod peer;
#[path = "claim/plan.rs"]
mod plan;
#[path = "claim/subject.rs"]
mod subject;

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode};
use orch::store::Durability;

use plan::Plan;

pub const WORKER: &str = "bench-worker";
pub const LEASE_MS: i64 = 60_000;
/// The lease of the developer jobs that stay running for the whole run.
pub const LONG_LEASE_MS: i64 = 10 * 365 * 24 * 3_600_000;
pub const LOAD_NOW: i64 = 1_700_000_000_000;
pub const PUT_BACK_REASON: &str = "benchmark put-back";

/// Untimed claim and put-back rounds after opening, so the first timed
/// claim does not pay for cold caches and first-use statement preparation.
const WARM_ROUNDS: usize = 20;
/// A configuration whose claim takes longer than this is sampled less.
const SLOW_CLAIM: Duration = Duration::from_millis(20);
/// How many timed claims a slow configuration gets at least.
const SLOW_CLAIMS: u32 = 100;

/// What a claim hands back, enough to put the job back.
pub struct Claimed {
    pub job_id: u64,
    pub task_id: u64,
    pub attempt: u32,
}

/// One engine under test: a claim transaction, and the transaction that
/// returns the claimed job to the queue.
pub trait Engine {
    fn claim(&mut self, now: i64) -> Option<Claimed>;
    fn put_back(&mut self, now: i64, claimed: &Claimed);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Orch,
    Sqlite,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Orch => "orch",
            Kind::Sqlite => "sqlite",
        }
    }

    /// How this engine spells a durability level.
    fn durability(self, d: Durability) -> &'static str {
        match (self, d) {
            (Kind::Orch, Durability::Immediate) => "Immediate",
            (Kind::Orch, Durability::None) => "None",
            (Kind::Sqlite, Durability::Immediate) => "FULL",
            (Kind::Sqlite, Durability::None) => "OFF",
        }
    }
}

struct Row {
    size: u64,
    kind: Kind,
    durability: Durability,
    claims: usize,
    p50: Duration,
    p99: Duration,
    /// Claims slower than the p99 target at `Immediate` (2 ms).
    over_2ms: usize,
    /// The disk's fdatasync p50 and p99, probed just before and just after
    /// a durable run: a durable claim cannot beat them, and on a shared
    /// disk they vary from minute to minute.
    floor: Option<(Duration, Duration)>,
}

fn main() {
    let sizes = env_list("ORCH_BENCH_SIZES", "1000,100000,1000000")
        .iter()
        .map(|s| s.parse::<u64>().expect("ORCH_BENCH_SIZES lists job counts"))
        .collect::<Vec<_>>();
    let kinds = env_list("ORCH_BENCH_ENGINES", "orch,sqlite")
        .iter()
        .map(|s| match s.as_str() {
            "orch" => Kind::Orch,
            "sqlite" => Kind::Sqlite,
            other => panic!("ORCH_BENCH_ENGINES: unknown engine {other:?}"),
        })
        .collect::<Vec<_>>();
    let base = std::env::var_os("ORCH_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);

    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .nresamples(20_000)
        .configure_from_args();

    println!("store files in {}", base.display());

    let mut rows = Vec::new();
    let mut clock = LOAD_NOW + 1_000_000;
    for &size in &sizes {
        let plan = Plan::new(size);
        let s = plan.shape;
        println!(
            "\n== {size} jobs: {} queued ({} serial-gated, {} deps-gated, {} claimable), \
             {} repos, {} done tasks; FIFO head job {}, first claimable job {}",
            s.queued,
            s.serial_gated,
            s.deps_gated,
            s.claimable,
            s.repos,
            s.history_tasks,
            plan.fifo_head(),
            plan.first_claimable(),
        );
        let dir = tempfile::tempdir_in(&base).expect("bench dir");
        for &kind in &kinds {
            let started = Instant::now();
            let path = match kind {
                Kind::Orch => subject::load(&plan, dir.path()),
                Kind::Sqlite => peer::load(&plan, dir.path()),
            };
            println!(
                "{} loaded in {:.1} s, {} MiB",
                kind.name(),
                started.elapsed().as_secs_f64(),
                std::fs::metadata(&path).map_or(0, |m| m.len() >> 20),
            );
            for durability in [Durability::Immediate, Durability::None] {
                clock += 1_000_000;
                let mut engine: Box<dyn Engine> = match kind {
                    Kind::Orch => Box::new(subject::Subject::open(&path, durability, clock)),
                    Kind::Sqlite => {
                        let p = peer::Peer::open(&path, durability == Durability::Immediate);
                        if durability == Durability::Immediate {
                            println!("sqlite claim plan:");
                            for line in p.query_plan() {
                                println!("  {line}");
                            }
                        }
                        Box::new(p)
                    }
                };
                let durable = durability == Durability::Immediate;
                let before = if durable {
                    fsync_probe(&base)
                } else {
                    Vec::new()
                };
                let id = format!("{}/{}/{size}", kind.name(), kind.durability(durability));
                let claims = measure(
                    &mut c,
                    &id,
                    engine.as_mut(),
                    &mut clock,
                    plan.first_claimable(),
                );
                let floor = durable.then(|| {
                    let mut probes = before;
                    probes.extend(fsync_probe(&base));
                    percentiles(probes)
                });
                if !claims.is_empty() {
                    let (p50, p99) = percentiles(claims.clone());
                    println!(
                        "{id}: p50 {} p99 {} over {} claims{}",
                        fmt(p50),
                        fmt(p99),
                        claims.len(),
                        floor.map_or_else(String::new, |(p50, p99)| format!(
                            " (fdatasync around it: p50 {} p99 {})",
                            fmt(p50),
                            fmt(p99)
                        )),
                    );
                    rows.push(Row {
                        size,
                        kind,
                        durability,
                        claims: claims.len(),
                        p50,
                        p99,
                        over_2ms: claims
                            .iter()
                            .filter(|d| **d > Duration::from_millis(2))
                            .count(),
                        floor,
                    });
                }
            }
        }
    }
    report(&rows);
    c.final_summary();
}

/// What one durable commit cannot go below on this disk: 200 times a 4 KiB
/// write and an fdatasync, timed. Both durable engines pay at least this per
/// claim.
fn fsync_probe(base: &std::path::Path) -> Vec<Duration> {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = tempfile::tempfile_in(base).expect("probe file");
    let page = [0x5au8; 4096];
    let mut took = Vec::new();
    for i in 0..200u64 {
        f.seek(SeekFrom::Start((i % 64) * 4096)).expect("seek");
        f.write_all(&page).expect("write");
        let started = Instant::now();
        f.sync_data().expect("fdatasync");
        took.push(started.elapsed());
    }
    took
}

/// Warms the engine up, then lets criterion time claims; returns every
/// timed claim.
fn measure(
    c: &mut Criterion,
    id: &str,
    engine: &mut dyn Engine,
    clock: &mut i64,
    expected: u64,
) -> Vec<Duration> {
    let round = |engine: &mut dyn Engine, clock: &mut i64| -> Duration {
        *clock += 1;
        let started = Instant::now();
        let claimed = engine.claim(*clock);
        let took = started.elapsed();
        let claimed = claimed.expect("a claimable job");
        assert_eq!(claimed.job_id, expected, "{id} claimed another job");
        *clock += 1;
        engine.put_back(*clock, &claimed);
        took
    };
    let warm: Duration = (0..WARM_ROUNDS).map(|_| round(engine, clock)).sum();
    let per_claim = warm / WARM_ROUNDS as u32;

    let timed = RefCell::new(Vec::new());
    let mut group = c.benchmark_group("claim");
    if per_claim > SLOW_CLAIM {
        // A scanning claim: about a hundred claims in ten samples are all
        // the time budget allows.
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(per_claim)
            .measurement_time(per_claim * SLOW_CLAIMS);
    }
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let took = round(engine, clock);
                timed.borrow_mut().push(took);
                total += took;
            }
            total
        })
    });
    group.finish();
    timed.into_inner()
}

/// Nearest-rank p50 and p99.
fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort_unstable();
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (rank(0.50), rank(0.99))
}

fn report(rows: &[Row]) {
    let find = |size: u64, kind: Kind, d: Durability| {
        rows.iter()
            .find(|r| r.size == size && r.kind == kind && r.durability == d)
    };
    println!();
    println!(
        "| jobs | engine | durability | p50 | p99 | claims | over 2 ms | fdatasync p50 / p99 around |"
    );
    println!("|---:|---|---|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.size,
            r.kind.name(),
            r.kind.durability(r.durability),
            fmt(r.p50),
            fmt(r.p99),
            r.claims,
            r.over_2ms,
            r.floor.map_or_else(
                || "—".to_owned(),
                |(p50, p99)| format!("{} / {}", fmt(p50), fmt(p99))
            ),
        );
    }

    let mut sizes: Vec<u64> = rows.iter().map(|r| r.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    if let (Some(&small), Some(&large)) = (sizes.first(), sizes.last())
        && small != large
    {
        for kind in [Kind::Orch, Kind::Sqlite] {
            for d in [Durability::None, Durability::Immediate] {
                if let (Some(a), Some(b)) = (find(small, kind, d), find(large, kind, d)) {
                    println!(
                        "growth {small} → {large} jobs, {} {}: p50 ×{:.2}, p99 ×{:.2}",
                        kind.name(),
                        kind.durability(d),
                        ratio(b.p50, a.p50),
                        ratio(b.p99, a.p99),
                    );
                }
            }
        }
    }
    for &size in &sizes {
        for d in [Durability::Immediate, Durability::None] {
            if let (Some(o), Some(s)) = (find(size, Kind::Orch, d), find(size, Kind::Sqlite, d)) {
                println!(
                    "speed at {size} jobs, orch {} vs sqlite {}: sqlite/orch p50 ×{:.1}, p99 ×{:.1}",
                    Kind::Orch.durability(d),
                    Kind::Sqlite.durability(d),
                    ratio(s.p50, o.p50),
                    ratio(s.p99, o.p99),
                );
            }
        }
    }
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1_000.0 {
        format!("{:.2} ms", us / 1_000.0)
    } else {
        format!("{us:.1} µs")
    }
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}
