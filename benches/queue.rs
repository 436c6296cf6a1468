//! P4 (SPEC §11): `GET /queue` with 1,000,000 jobs in the store, target
//! p99 < 20 ms.
//!
//! The store is bulk-loaded at `Durability::None` in large transactions
//! through the store's own operations (so every index is as a real run
//! leaves it): 90,000 finished tasks of 10 jobs each (done, one failed);
//! one active task in each of 300 repos, 200 with a running developer job
//! and 100 blocked; and 100,000 started tasks whose queued analyst jobs wait
//! at their repo's serial gate, 1,000 of them also waiting on a dependency.
//! That is 1,000,200 jobs, 100,000 of them queued and gated.
//!
//! It then times the snapshot function behind `/queue` directly, and real
//! HTTP requests to `/queue` (and `/metrics`) of the API served on a
//! loopback port by the same code as `orch serve`, on the default cache.
//!
//! Run with `cargo bench --bench queue`; `ORCH_BENCH_SCALE=0.01` runs the
//! same shape at 1% for a quick look, and `ORCH_BENCH_REPOS=<n>` spreads it
//! over another number of repos (the snapshot lists up to 50 waiting jobs
//! per repo, so its size follows the repos). `ORCH_BENCH_DATA=<dir>` keeps the
//! loaded store in that directory and reuses it on the next run, so the
//! measurement can be repeated without the load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orch::config::{Env, Settings};
use orch::domain::{RepoName, Role, Stage, WorkItemId};
use orch::http::{ClaimStats, Listener};
use orch::store::{Completion, Durability, NewTask, Options, Store, StoreError, Tx};

const REPOS: usize = 300;
/// Of the active tasks (one per repo), this share has a running job; the
/// others are blocked.
const RUNNING_SHARE: f64 = 2.0 / 3.0;
const FINISHED_TASKS: usize = 90_000;
const JOBS_PER_FINISHED: usize = 10;
const QUEUED_TASKS: usize = 100_000;
const WITH_DEPS: usize = 1_000;
/// Tasks per load transaction: large, so the load is not commit-bound.
const BATCH: usize = 1_000;
const SNAPSHOT_RUNS: usize = 300;
const HTTP_RUNS: usize = 200;
const LEASE_MS: i64 = 3_600_000;

fn repo(i: usize, repos: usize) -> String {
    format!("repo-{:03}", i % repos)
}

fn new_task(seq: &mut u64, repo: &str, deps: Vec<String>) -> NewTask {
    *seq += 1;
    let wi = format!("BENCH-{seq}");
    NewTask {
        work_item_id: WorkItemId::parse(&wi).expect("valid id"),
        plane_issue_id: None,
        repo: RepoName::parse(repo).expect("valid repo"),
        title: format!("bench task {seq}"),
        description: String::new(),
        depends_on: deps,
    }
}

/// One task through ten jobs to `done`: each job is queued, claimed and
/// completed, the fifth one failed.
fn finished_task(tx: &mut Tx<'_>, new: NewTask) -> Result<(), StoreError> {
    let t = tx.create_task(new)?;
    tx.set_stage(t.id, Stage::Analysis)?;
    for i in 0..JOBS_PER_FINISHED {
        let role = Role::ALL[i % Role::ALL.len()];
        let job = tx.enqueue(t.id, role, None)?;
        let lease = tx
            .claim("bench", LEASE_MS, None)?
            .ok_or_else(|| StoreError::Invalid("nothing claimable while loading".into()))?;
        if lease.job_id != job.id {
            return Err(StoreError::Invalid(format!(
                "claimed job {} instead of {}",
                lease.job_id, job.id
            )));
        }
        let how = if i == 4 {
            Completion::Failed("bench failure".into())
        } else {
            Completion::Done
        };
        tx.complete(job.id, lease.attempt, how)?;
    }
    tx.set_stage(t.id, Stage::Done)?;
    Ok(())
}

struct Shape {
    scale: f64,
    repos: usize,
}

impl Shape {
    fn of(&self, n: usize) -> usize {
        ((n as f64 * self.scale).round() as usize).max(1)
    }
}

fn load(store: &Store, shape: &Shape) -> Result<(), StoreError> {
    let repos = shape.repos;
    let mut seq = 0u64;
    let mut now = 1_000_000_000_000i64;
    let finished = shape.of(FINISHED_TASKS);
    let mut done = 0;
    while done < finished {
        let n = BATCH.min(finished - done);
        now += 1;
        store.write(now, |tx| {
            for i in 0..n {
                let new = new_task(&mut seq, &repo(done + i, repos), Vec::new());
                finished_task(tx, new)?;
            }
            Ok(())
        })?;
        done += n;
    }
    // One active task per repo: running developer jobs, the rest blocked.
    let mut active = Vec::new();
    now += 1;
    store.write(now, |tx| {
        let running = (repos as f64 * RUNNING_SHARE).round() as usize;
        for r in 0..repos {
            let new = new_task(&mut seq, &repo(r, repos), Vec::new());
            active.push(new.work_item_id.to_string());
            let t = tx.create_task(new)?;
            tx.set_stage(t.id, Stage::Development)?;
            if r < running {
                tx.enqueue(t.id, Role::Developer, None)?;
                tx.claim("bench", LEASE_MS, None)?;
            } else {
                tx.set_blocked(t.id, Some("bench: waits for a human".into()))?;
            }
        }
        Ok(())
    })?;
    let queued = shape.of(QUEUED_TASKS);
    let with_deps = shape.of(WITH_DEPS);
    let mut started = 0;
    while started < queued {
        let n = BATCH.min(queued - started);
        now += 1;
        store.write(now, |tx| {
            for i in 0..n {
                let k = started + i;
                let deps = if k < with_deps {
                    vec![active[k % active.len()].clone()]
                } else {
                    Vec::new()
                };
                let t = tx.create_task(new_task(&mut seq, &repo(k, repos), deps))?;
                tx.set_stage(t.id, Stage::Analysis)?;
                tx.enqueue(t.id, Role::Analyst, None)?;
            }
            Ok(())
        })?;
        started += n;
    }
    Ok(())
}

/// p50, p99 and max of a set of durations, in milliseconds.
fn summary(mut d: Vec<Duration>) -> String {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1e3;
    let at = |q: f64| d[((d.len() as f64 * q).ceil() as usize).clamp(1, d.len()) - 1];
    format!(
        "p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (n={})",
        ms(at(0.50)),
        ms(at(0.99)),
        ms(*d.last().expect("samples")),
        d.len()
    )
}

fn main() {
    let shape = Shape {
        scale: std::env::var("ORCH_BENCH_SCALE")
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|s: &f64| *s > 0.0 && *s <= 1.0)
            .unwrap_or(1.0),
        repos: std::env::var("ORCH_BENCH_REPOS")
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|n: &usize| (1..=999).contains(n))
            .unwrap_or(REPOS),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = std::env::var_os("ORCH_BENCH_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("data"));
    std::fs::create_dir_all(&data).expect("data dir");
    let db = data.join("orch.redb");

    let started = Instant::now();
    let reuse = db.exists();
    let opts = Options {
        durability: Durability::None,
        cache_bytes: 1 << 30,
        ..Options::default()
    };
    let store = Store::open(&db, opts, 1).expect("open store");
    if !reuse {
        load(&store, &shape).expect("bulk load");
    }
    let counts = store.job_counts();
    let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    println!(
        "P4 store: {} jobs ({counts:?}), {} MiB, {} in {:.1} s",
        counts.values().sum::<u64>(),
        size >> 20,
        if reuse { "reused" } else { "loaded" },
        started.elapsed().as_secs_f64()
    );
    drop(store);

    // From here on, the store as `orch serve` opens it: default cache.
    let env = Env::from_pairs([
        ("ORCH_DATA_DIR", data.display().to_string()),
        (
            "ORCH_CONFIG",
            dir.path().join("orch.toml").display().to_string(),
        ),
        ("ORCH_HTTP_ADDR", "127.0.0.1:0".to_owned()),
    ]);
    let settings = Settings::load(&env).expect("settings");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    runtime.block_on(async move {
        let listener = Listener::bind(&settings).await.expect("bind");
        let addr = listener.local_addr();
        let rt = orch::runtime::Runtime::open(settings, env).expect("runtime");
        let server = tokio::spawn(orch::http::serve(
            listener,
            rt.clone(),
            Arc::new(ClaimStats::default()),
        ));

        let snap = orch::queue::snapshot(&rt.store, 0);
        let waiting: u64 = snap
            .serial_gate
            .per_repo
            .values()
            .map(|g| g.waiting_count)
            .sum();
        println!(
            "P4 snapshot: {} repos, {waiting} jobs waiting at the serial gate, {} on deps, {} running, {} blocked",
            snap.serial_gate.per_repo.len(),
            snap.task_deps.blocked_count,
            snap.running_count,
            snap.blocked_count
        );
        for _ in 0..20 {
            orch::queue::snapshot(&rt.store, 0);
        }
        let mut direct = Vec::with_capacity(SNAPSHOT_RUNS);
        for _ in 0..SNAPSHOT_RUNS {
            let t = Instant::now();
            std::hint::black_box(orch::queue::snapshot(&rt.store, 0));
            direct.push(t.elapsed());
        }
        println!("P4 queue::snapshot (direct):  {}", summary(direct));
        let store = rt.store.clone();
        let parts: [(&str, &dyn Fn()); 3] = [
            ("job counts", &|| {
                std::hint::black_box(store.job_counts());
            }),
            ("serial gate", &|| {
                std::hint::black_box(store.serial_snapshot());
            }),
            ("deps gate", &|| {
                std::hint::black_box(store.deps_snapshot());
            }),
        ];
        for (name, part) in parts {
            let times = (0..50)
                .map(|_| {
                    let t = Instant::now();
                    part();
                    t.elapsed()
                })
                .collect();
            println!("P4   of which {name}: {}", summary(times));
        }

        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        for (path, target) in [("/queue", "p99 < 20 ms"), ("/metrics", "no target")] {
            let url = format!("http://{addr}{path}");
            let mut bytes = 0;
            for _ in 0..10 {
                client.get(&url).send().await.expect("warm-up");
            }
            let mut times = Vec::with_capacity(HTTP_RUNS);
            for _ in 0..HTTP_RUNS {
                let t = Instant::now();
                let r = client.get(&url).send().await.expect("request");
                assert!(r.status().is_success(), "{path}: {}", r.status());
                bytes = r.bytes().await.expect("body").len();
                times.push(t.elapsed());
            }
            println!(
                "P4 GET {path} over HTTP ({bytes} bytes): {}  [{target}]",
                summary(times)
            );
        }
        rt.request_shutdown();
        let _ = server.await;
    });
}
