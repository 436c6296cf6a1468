//! What happens when a job ends: a pure decision from the task's counters and
//! the job's outcome (SPEC §3). The driver applies the decision in one store
//! transaction.

use crate::domain::{Role, Stage};

/// The limits that bound retries and review loops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `ORCH_MAX_ATTEMPTS`: failed jobs per stage before the task is blocked.
    pub max_attempts: u32,
    /// `ORCH_MAX_REVIEW_ROUNDS`: `changes_requested` verdicts before the
    /// task is blocked.
    pub max_review_rounds: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            max_review_rounds: 3,
        }
    }
}

/// How a job ended, once its exit checks ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0 and every exit check passed.
    Passed,
    /// Exit ≠ 0, timeout, or a failed exit check; the reason is for humans
    /// and for the next attempt's prompt.
    Failed(String),
    /// The reviewer asked for changes; the comments go to the developer.
    ChangesRequested(String),
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The job is done; the task moves to `to`, and `role`'s job is queued
    /// (none when `to` is `done`).
    Advance { to: Stage, role: Option<Role> },
    /// The job failed; a new job of the same role is queued with the reason.
    Retry { role: Role, note: String },
    /// The job failed too often (or the review loop is exhausted): the task
    /// waits for a human.
    Block { reason: String },
    /// The review asked for changes: back to development, with the comments.
    Rework { note: String },
}

/// The task's counters as they stand after the job's own failure (if any)
/// was counted.
#[derive(Debug, Clone, Copy)]
pub struct Counters {
    pub stage: Stage,
    pub failures: u32,
    pub review_rounds: u32,
}

pub fn decide(c: Counters, outcome: &Outcome, limits: Limits) -> Decision {
    let role = c.stage.transition().and_then(|t| t.role);
    match outcome {
        Outcome::Passed => {
            let to = c
                .stage
                .transition()
                .and_then(|t| t.next)
                .unwrap_or(Stage::Done);
            Decision::Advance {
                to,
                role: to.transition().and_then(|t| t.role),
            }
        }
        Outcome::Failed(reason) => match role {
            Some(role) if c.failures < limits.max_attempts => Decision::Retry {
                role,
                note: reason.clone(),
            },
            _ => Decision::Block {
                reason: format!("{} failed {} times; last: {reason}", c.stage, c.failures),
            },
        },
        Outcome::ChangesRequested(comments) => {
            if c.review_rounds < limits.max_review_rounds {
                Decision::Rework {
                    note: comments.clone(),
                }
            } else {
                Decision::Block {
                    reason: format!(
                        "review requested changes {} times; last: {comments}",
                        c.review_rounds
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(stage: Stage, failures: u32, rounds: u32, outcome: Outcome, expected: Decision) {
        let got = decide(
            Counters {
                stage,
                failures,
                review_rounds: rounds,
            },
            &outcome,
            Limits::default(),
        );
        assert_eq!(got, expected, "{stage} failures={failures} rounds={rounds}");
    }

    /// TC-34 (decisions): a pass advances and names the next role; a failure
    /// retries with its reason until max attempts, then blocks; a review
    /// asking for changes loops to development at most max_review_rounds.
    #[test]
    fn decisions_tc34() {
        use Decision::*;
        use Stage::*;
        let fail = || Outcome::Failed("tests failed".into());
        check(
            Analysis,
            0,
            0,
            Outcome::Passed,
            Advance {
                to: Architecture,
                role: Some(Role::Architect),
            },
        );
        check(
            Architecture,
            0,
            0,
            Outcome::Passed,
            Advance {
                to: Development,
                role: Some(Role::Developer),
            },
        );
        check(
            Development,
            0,
            0,
            Outcome::Passed,
            Advance {
                to: Review,
                role: Some(Role::Reviewer),
            },
        );
        check(
            Review,
            0,
            0,
            Outcome::Passed,
            Advance {
                to: Testing,
                role: Some(Role::Tester),
            },
        );
        check(
            Testing,
            0,
            0,
            Outcome::Passed,
            Advance {
                to: DeployStaging,
                role: Some(Role::Deployer),
            },
        );
        check(
            DeployStaging,
            0,
            0,
            Outcome::Passed,
            Advance {
                to: Deploy,
                role: Some(Role::Deployer),
            },
        );
        check(
            Deploy,
            0,
            0,
            Outcome::Passed,
            Advance {
                to: Done,
                role: None,
            },
        );
        check(
            Testing,
            1,
            0,
            fail(),
            Retry {
                role: Role::Tester,
                note: "tests failed".into(),
            },
        );
        check(
            Testing,
            2,
            0,
            fail(),
            Retry {
                role: Role::Tester,
                note: "tests failed".into(),
            },
        );
        check(
            Testing,
            3,
            0,
            fail(),
            Block {
                reason: "testing failed 3 times; last: tests failed".into(),
            },
        );
        check(
            Review,
            0,
            0,
            Outcome::ChangesRequested("rename x".into()),
            Rework {
                note: "rename x".into(),
            },
        );
        check(
            Review,
            0,
            2,
            Outcome::ChangesRequested("rename x".into()),
            Rework {
                note: "rename x".into(),
            },
        );
        check(
            Review,
            0,
            3,
            Outcome::ChangesRequested("rename x".into()),
            Block {
                reason: "review requested changes 3 times; last: rename x".into(),
            },
        );
    }
}
