//! Stopping an agent's whole process tree (SPEC §7.1 step 3, §5.5, TC-S03,
//! TC-S04).
//!
//! An agent is started as the leader of its own session and process group,
//! so its pid is also its session id and process group id. Its tree is:
//!
//! - the leader, if the process at its pid still has the recorded start time;
//! - every process whose session id or process group id is the leader's pid
//!   and which started no earlier than the leader. This finds descendants
//!   that were re-parented to init (ppid 1) or a subreaper because their
//!   parent exited, e.g. a background job or a daemon that forked but kept
//!   the session; it works even after the leader itself has exited, because
//!   the kernel does not hand out a pid again while a session or group of
//!   that id still has a member;
//! - every descendant of those, found by walking the ppid links of
//!   `/proc/*/stat` (a child always starts no earlier than its parent), which
//!   finds processes that left the session with `setsid` or moved to another
//!   group while their parent is still in the tree;
//! - every process found that way in an earlier scan of the same stop that
//!   still has the same start time, so a descendant that left the session
//!   stays known after its parent dies during the grace period.
//!
//! What cannot be found: a process that left the agent's session *and*
//! whose parent chain to the tree was broken before orch first looked, the
//! classic double fork plus `setsid` of a daemon that finishes before the
//! stop begins. Nothing in `/proc` links it to the agent any more. (Making
//! orch a child subreaper would keep such orphans attached to orch; that
//! would also make orch responsible for reaping them, and is not done.)
//!
//! The stop sends SIGTERM to the group (and individually to members outside
//! it), polls every few milliseconds until no process of the tree is
//! running, and after `grace` sends SIGKILL to what is left. Each process is
//! verified by its start time right before it is signalled; the group is
//! signalled only while its leader is verified alive, so a reused pid is
//! left alone and no process outside the tree is ever signalled. A zombie
//! counts as ended: it has finished and only waits for its parent to reap it.

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::AgentError;
use super::proc::{ProcStat, read_stat, snapshot};
use super::signal::{signal_group, signal_verified};

/// The longest pause between two looks at the tree. Short, so a cooperative
/// agent is seen dead within a few milliseconds of its exit.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// How long to wait for SIGKILLed processes to disappear. Only a process in
/// uninterruptible sleep (stuck on I/O) takes longer; it is reported as a
/// survivor instead of blocking the stop.
pub const KILL_WAIT: Duration = Duration::from_secs(2);

/// How a stop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// No process of the tree was running: nothing was signalled.
    NotRunning,
    /// The pid belongs to another process now (its start time differs), and
    /// nothing of the agent's tree remains: nothing was signalled.
    PidReused,
    /// Every process of the tree ended within the grace after SIGTERM.
    Terminated,
    /// The grace ran out; the processes still running were SIGKILLed.
    Killed,
}

/// What a stop did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopReport {
    pub outcome: StopOutcome,
    /// Pids of the tree that were running when SIGTERM was sent.
    pub terminated: Vec<u32>,
    /// Pids that received SIGKILL.
    pub killed: Vec<u32>,
    /// Pids still running after SIGKILL and [`KILL_WAIT`]; normally empty.
    pub survivors: Vec<u32>,
    /// From the call to the moment the tree was seen ended.
    pub elapsed: Duration,
}

/// Stops the tree of the agent `pid` that started at `start_time`: SIGTERM,
/// up to `grace` for it to end, then SIGKILL. Runs the blocking loop on
/// tokio's blocking pool.
pub async fn stop_tree(
    pid: u32,
    start_time: u64,
    grace: Duration,
) -> Result<StopReport, AgentError> {
    tokio::task::spawn_blocking(move || stop_tree_blocking(pid, start_time, grace))
        .await
        .map_err(|e| AgentError::StopTask(e.to_string()))?
}

/// [`stop_tree`] for callers outside an async context. It blocks for up to
/// `grace` + [`KILL_WAIT`].
pub fn stop_tree_blocking(
    pid: u32,
    start_time: u64,
    grace: Duration,
) -> Result<StopReport, AgentError> {
    let began = Instant::now();
    let mut stop = Stop {
        pid,
        start_time,
        known: BTreeMap::new(),
        own_pid: std::process::id(),
    };
    let report = |outcome, terminated, killed, survivors| StopReport {
        outcome,
        terminated,
        killed,
        survivors,
        elapsed: began.elapsed(),
    };

    let tree = stop.scan()?;
    if tree.live().next().is_none() {
        let outcome = if tree.leader == Leader::Reused {
            StopOutcome::PidReused
        } else {
            StopOutcome::NotRunning
        };
        return Ok(report(outcome, vec![], vec![], vec![]));
    }
    let mut termed = BTreeSet::new();
    let terminated = stop.signal(&tree, Signal::SIGTERM, &mut termed);

    let deadline = began + grace;
    let mut pause = Duration::from_millis(1);
    loop {
        thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(POLL_INTERVAL);
        let tree = stop.scan()?;
        if tree.live().next().is_none() {
            return Ok(report(StopOutcome::Terminated, terminated, vec![], vec![]));
        }
        if Instant::now() >= deadline {
            break;
        }
        // Processes forked or found after the first SIGTERM get it too, so a
        // cooperative tree is not held up until the grace ends.
        stop.signal_each(&tree, Signal::SIGTERM, &mut termed);
    }

    let kill_deadline = Instant::now() + KILL_WAIT;
    let mut killed = BTreeSet::new();
    let mut pause = Duration::from_millis(1);
    loop {
        let tree = stop.scan()?;
        let live: Vec<u32> = tree.live().map(|p| p.pid).collect();
        if live.is_empty() {
            return Ok(report(
                StopOutcome::Killed,
                terminated,
                killed.into_iter().collect(),
                vec![],
            ));
        }
        if Instant::now() >= kill_deadline {
            tracing::warn!(pid, survivors = ?live, "agent processes survived SIGKILL");
            return Ok(report(
                StopOutcome::Killed,
                terminated,
                killed.into_iter().collect(),
                live,
            ));
        }
        stop.signal(&tree, Signal::SIGKILL, &mut killed);
        thread::sleep(pause);
        pause = (pause * 2).min(POLL_INTERVAL);
    }
}

/// The state of one stop: the agent's identity and every tree member seen
/// so far.
struct Stop {
    pid: u32,
    start_time: u64,
    known: BTreeMap<u32, u64>,
    own_pid: u32,
}

impl Stop {
    fn scan(&mut self) -> Result<Tree, AgentError> {
        let procs = snapshot().map_err(AgentError::Proc)?;
        let tree = collect_tree(self.pid, self.start_time, &procs, &self.known, self.own_pid);
        for p in tree.members.values() {
            self.known.insert(p.pid, p.start_time);
        }
        Ok(tree)
    }

    /// Signals the group (when its leader is verified right now) and every
    /// running member outside it; returns the pids signalled this time.
    fn signal(&self, tree: &Tree, sig: Signal, done: &mut BTreeSet<u32>) -> Vec<u32> {
        let group_sent = self.leader_verified() && signal_group(self.pid, sig);
        let mut sent = Vec::new();
        for p in tree.live() {
            let reached = (group_sent && p.pgrp == self.pid)
                || (!done.contains(&p.pid) && signal_verified(p.pid, p.start_time, sig));
            if reached {
                done.insert(p.pid);
                sent.push(p.pid);
            }
        }
        sent
    }

    /// Signals, one by one, the running members not signalled yet.
    fn signal_each(&self, tree: &Tree, sig: Signal, done: &mut BTreeSet<u32>) {
        for p in tree.live() {
            if !done.contains(&p.pid) && signal_verified(p.pid, p.start_time, sig) {
                done.insert(p.pid);
            }
        }
    }

    /// The leader still exists (running or as an unreaped zombie) with the
    /// recorded start time and still leads its group, which keeps the group
    /// id from being reused.
    fn leader_verified(&self) -> bool {
        matches!(read_stat(self.pid),
            Ok(Some(s)) if s.start_time == self.start_time && s.pgrp == self.pid)
    }
}

/// What one look at `/proc` says about the leader's pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leader {
    /// The pid holds the agent, running or as an unreaped zombie.
    Present,
    /// No process has the pid.
    Gone,
    /// Another process holds the pid now.
    Reused,
}

/// The agent's tree in one snapshot of `/proc`.
#[derive(Debug)]
struct Tree {
    leader: Leader,
    members: BTreeMap<u32, ProcStat>,
}

impl Tree {
    fn live(&self) -> impl Iterator<Item = &ProcStat> {
        self.members.values().filter(|p| !p.is_finished())
    }
}

/// Finds the tree of the agent `pid`/`start_time` in `procs` (see the module
/// documentation for the rules). `known` holds members of earlier scans by
/// pid and start time. Orch itself and init are never members.
fn collect_tree(
    pid: u32,
    start_time: u64,
    procs: &[ProcStat],
    known: &BTreeMap<u32, u64>,
    own_pid: u32,
) -> Tree {
    let leader = match procs.iter().find(|p| p.pid == pid) {
        None => Leader::Gone,
        Some(p) if p.start_time == start_time => Leader::Present,
        Some(_) => Leader::Reused,
    };
    // When another process holds the pid, the session and group ids that
    // equal it are that process's, not the agent's.
    let ids_are_ours = leader != Leader::Reused;
    let is_root = |p: &ProcStat| {
        (p.pid == pid && leader == Leader::Present)
            || (ids_are_ours && (p.session == pid || p.pgrp == pid) && p.start_time >= start_time)
            || known.get(&p.pid) == Some(&p.start_time)
    };
    let eligible = |p: &ProcStat| p.pid != own_pid && p.pid > 1;

    let mut members: BTreeMap<u32, ProcStat> = BTreeMap::new();
    let mut queue: Vec<u32> = Vec::new();
    for p in procs.iter().filter(|p| eligible(p) && is_root(p)) {
        members.insert(p.pid, p.clone());
        queue.push(p.pid);
    }
    let mut children: BTreeMap<u32, Vec<&ProcStat>> = BTreeMap::new();
    for p in procs {
        children.entry(p.ppid).or_default().push(p);
    }
    while let Some(parent) = queue.pop() {
        let Some(parent_start) = members.get(&parent).map(|p| p.start_time) else {
            continue;
        };
        for child in children.get(&parent).into_iter().flatten() {
            if eligible(child)
                && child.start_time >= parent_start
                && !members.contains_key(&child.pid)
            {
                members.insert(child.pid, (*child).clone());
                queue.push(child.pid);
            }
        }
    }
    Tree { leader, members }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: u32 = 50;

    fn p(pid: u32, ppid: u32, pgrp: u32, session: u32, start: u64) -> ProcStat {
        ProcStat {
            pid,
            comm: format!("p{pid}"),
            state: 'S',
            ppid,
            pgrp,
            session,
            start_time: start,
        }
    }

    fn members(procs: &[ProcStat], known: &[(u32, u64)]) -> (Leader, Vec<u32>) {
        let known = known.iter().copied().collect();
        let tree = collect_tree(100, 1000, procs, &known, ME);
        (tree.leader, tree.live().map(|p| p.pid).collect())
    }

    fn base() -> Vec<ProcStat> {
        vec![
            p(1, 0, 1, 1, 1),
            p(ME, 1, ME, ME, 10),
            // The agent (session leader) with a child in its group.
            p(100, ME, 100, 100, 1000),
            p(101, 100, 100, 100, 1001),
            // An unrelated process in its own session.
            p(200, 1, 200, 200, 1500),
        ]
    }

    #[test]
    fn leader_and_group() {
        assert_eq!(members(&base(), &[]), (Leader::Present, vec![100, 101]));
    }

    #[test]
    fn setsid_grandchild_is_found_through_its_parent() {
        let mut procs = base();
        procs.push(p(102, 101, 102, 102, 1002));
        procs.push(p(103, 102, 102, 102, 1003));
        assert_eq!(members(&procs, &[]).1, vec![100, 101, 102, 103]);
    }

    #[test]
    fn orphans_in_the_session_are_found_after_the_leader_exits() {
        let procs = vec![
            p(1, 0, 1, 1, 1),
            p(101, 1, 100, 100, 1001),
            p(105, 1, 105, 100, 1005),
        ];
        assert_eq!(members(&procs, &[]), (Leader::Gone, vec![101, 105]));
    }

    #[test]
    fn a_reused_leader_pid_is_left_alone() {
        let procs = vec![
            p(1, 0, 1, 1, 1),
            p(100, 1, 100, 100, 9000),
            p(101, 100, 100, 100, 9001),
        ];
        assert_eq!(members(&procs, &[]), (Leader::Reused, vec![]));
        // A member recorded earlier is still followed, by its start time.
        let mut procs = procs;
        procs.push(p(102, 1, 102, 102, 1002));
        assert_eq!(members(&procs, &[(102, 1002), (101, 1001)]).1, vec![102]);
    }

    #[test]
    fn known_members_survive_reparenting() {
        let mut procs = base();
        procs.push(p(102, 1, 102, 102, 1002));
        assert_eq!(members(&procs, &[]).1, vec![100, 101]);
        assert_eq!(members(&procs, &[(102, 1002)]).1, vec![100, 101, 102]);
        assert_eq!(members(&procs, &[(102, 7)]).1, vec![100, 101]);
    }

    #[test]
    fn older_processes_and_orch_itself_are_never_members() {
        let mut procs = base();
        // Its pid equals a member's ppid but it started before that member:
        // the ppid link belongs to an earlier holder of that pid.
        procs.push(p(300, 101, 300, 300, 900));
        // A session id match that predates the agent.
        procs.push(p(301, 1, 301, 100, 999));
        // Orch and init, even if they appeared linked.
        procs.push(p(ME, 100, 100, 100, 2000));
        assert_eq!(members(&procs, &[(1, 1)]).1, vec![100, 101]);
    }

    #[test]
    fn zombies_are_members_but_not_live() {
        let mut procs = base();
        procs[2].state = 'Z';
        let known = BTreeMap::new();
        let tree = collect_tree(100, 1000, &procs, &known, ME);
        assert!(tree.members.contains_key(&100));
        assert_eq!(tree.live().map(|p| p.pid).collect::<Vec<_>>(), vec![101]);
    }
}
