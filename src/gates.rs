//! The claim gates as pure decisions (SPEC §5): which switches apply to a
//! repo, whether a task holds its repo, and where a queued job belongs in the
//! claim indexes. The store feeds facts in and applies the answer.

use serde::{Deserialize, Serialize};

use crate::domain::{JobStatus, Role};

/// The kill-switches and scope read at start (SPEC §5.1). The values in force
/// are recorded in the store; a change rebuilds the claim indexes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateConfig {
    pub serial_enabled: bool,
    /// Repos the serial gate applies to; empty means every repo.
    pub serial_repos: Vec<String>,
    pub freeze_enabled: bool,
    pub deps_enabled: bool,
    pub stop_enabled: bool,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            serial_enabled: true,
            serial_repos: Vec::new(),
            freeze_enabled: true,
            deps_enabled: true,
            stop_enabled: true,
        }
    }
}

impl GateConfig {
    /// Enabled, and the CSV is empty or names the repo.
    pub fn serial_gate_applies(&self, repo: &str) -> bool {
        self.serial_enabled
            && (self.serial_repos.is_empty() || self.serial_repos.iter().any(|r| r == repo))
    }

    /// Whether a task keeps its repo's serial gate closed to other tasks: it
    /// was admitted and is unfinished, and with the freeze layer off a blocked
    /// task lets the next one in.
    pub fn holds_repo(&self, t: &TaskFacts) -> bool {
        t.admitted && !t.terminal && (self.freeze_enabled || !t.blocked)
    }
}

/// What the gates need to know about a task.
#[derive(Debug, Clone, Copy)]
pub struct TaskFacts {
    pub terminal: bool,
    pub cancel_requested: bool,
    pub admitted: bool,
    pub blocked: bool,
}

/// Where a job belongs in the claim indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Not claimable: not queued, task terminal or cancelling, or a
    /// dependency is unfinished.
    Out,
    /// Claimable now.
    Ready,
    /// Behind its repo's serial gate: claimable only as the repo's oldest
    /// waiting job while no task holds the repo.
    Waiting,
}

/// Places one job. `deps_open` and `serial_gated` are the already-evaluated
/// gate predicates (an evaluation error has made them open). The terminal and
/// cancel checks come first and fail closed.
pub fn place(
    status: JobStatus,
    task: &TaskFacts,
    deps_open: bool,
    serial_gated: bool,
) -> Placement {
    if status != JobStatus::Queued || task.terminal || task.cancel_requested || !deps_open {
        Placement::Out
    } else if serial_gated {
        Placement::Waiting
    } else {
        Placement::Ready
    }
}

/// Whether the serial gate concerns a job at all: only analyst jobs of tasks
/// not yet admitted, in a repo the gate applies to.
pub fn serial_gate_concerns(cfg: &GateConfig, repo: &str, role: Role, task: &TaskFacts) -> bool {
    cfg.serial_gate_applies(repo) && role == Role::Analyst && !task.admitted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(enabled: bool, csv: &[&str]) -> GateConfig {
        GateConfig {
            serial_enabled: enabled,
            serial_repos: csv.iter().map(|s| s.to_string()).collect(),
            ..GateConfig::default()
        }
    }

    fn check(c: &GateConfig, repo: &str, expected: bool) {
        assert_eq!(c.serial_gate_applies(repo), expected, "{c:?} {repo}");
    }

    /// TC-02: enabled + empty CSV → every repo; CSV membership; outside the
    /// CSV → false; disabled → false.
    #[test]
    fn serial_gate_applies_tc02() {
        check(&cfg(true, &[]), "orchestrator", true);
        check(&cfg(true, &[]), "enduro-trails", true);
        check(&cfg(true, &["orchestrator"]), "orchestrator", true);
        check(&cfg(true, &["orchestrator"]), "enduro-trails", false);
        check(&cfg(false, &[]), "orchestrator", false);
        check(&cfg(false, &["orchestrator"]), "orchestrator", false);
    }

    /// TC-22 (decision half): with the freeze layer a blocked task holds its
    /// repo; without it, it does not.
    #[test]
    fn freeze_layer_tc22() {
        let blocked = TaskFacts {
            terminal: false,
            cancel_requested: false,
            admitted: true,
            blocked: true,
        };
        let frozen = GateConfig::default();
        let thawed = GateConfig {
            freeze_enabled: false,
            ..GateConfig::default()
        };
        assert!(frozen.holds_repo(&blocked));
        assert!(!thawed.holds_repo(&blocked));
        let done = TaskFacts {
            terminal: true,
            ..blocked
        };
        assert!(!frozen.holds_repo(&done));
    }

    #[test]
    fn placement_fails_closed_on_terminal_and_cancel() {
        let live = TaskFacts {
            terminal: false,
            cancel_requested: false,
            admitted: false,
            blocked: false,
        };
        assert_eq!(
            place(JobStatus::Queued, &live, true, false),
            Placement::Ready
        );
        assert_eq!(
            place(JobStatus::Queued, &live, true, true),
            Placement::Waiting
        );
        assert_eq!(
            place(JobStatus::Queued, &live, false, false),
            Placement::Out
        );
        assert_eq!(
            place(JobStatus::Running, &live, true, false),
            Placement::Out
        );
        let cancelling = TaskFacts {
            cancel_requested: true,
            ..live
        };
        assert_eq!(
            place(JobStatus::Queued, &cancelling, true, false),
            Placement::Out
        );
        let terminal = TaskFacts {
            terminal: true,
            ..live
        };
        assert_eq!(
            place(JobStatus::Queued, &terminal, true, false),
            Placement::Out
        );
    }
}
