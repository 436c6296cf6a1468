//! Stages, roles and the static pipeline registries (SPEC §3).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a task is in the pipeline. `Done` and `Cancelled` are the two sinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Stage {
    Created,
    Analysis,
    Architecture,
    Development,
    Review,
    Testing,
    DeployStaging,
    Deploy,
    Done,
    Cancelled,
}

impl Stage {
    pub const ALL: [Stage; 10] = [
        Stage::Created,
        Stage::Analysis,
        Stage::Architecture,
        Stage::Development,
        Stage::Review,
        Stage::Testing,
        Stage::DeployStaging,
        Stage::Deploy,
        Stage::Done,
        Stage::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Created => "created",
            Stage::Analysis => "analysis",
            Stage::Architecture => "architecture",
            Stage::Development => "development",
            Stage::Review => "review",
            Stage::Testing => "testing",
            Stage::DeployStaging => "deploy-staging",
            Stage::Deploy => "deploy",
            Stage::Done => "done",
            Stage::Cancelled => "cancelled",
        }
    }

    /// The one terminal predicate used everywhere: serial gate, deps gate,
    /// stage sink, reaper and requeue guards.
    pub fn is_terminal(self) -> bool {
        matches!(self, Stage::Done | Stage::Cancelled)
    }

    /// The registry entry for this stage, if the pipeline has one.
    pub fn transition(self) -> Option<&'static Transition> {
        STAGE_TRANSITIONS.iter().find(|t| t.stage == self)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Stage::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown stage {s:?}"))
    }
}

/// The kind of agent a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    Analyst,
    Architect,
    Developer,
    Reviewer,
    Tester,
    Deployer,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Analyst,
        Role::Architect,
        Role::Developer,
        Role::Reviewer,
        Role::Tester,
        Role::Deployer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Analyst => "analyst",
            Role::Architect => "architect",
            Role::Developer => "developer",
            Role::Reviewer => "reviewer",
            Role::Tester => "tester",
            Role::Deployer => "deployer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}"))
    }
}

/// A job's status. `Done`, `Failed` and `Cancelled` are final for that job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Done,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// A stable small number, used as an index key.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Done | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// Queued or running: the job still holds or may take a worker.
    pub fn is_live(self) -> bool {
        !self.is_final()
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The exit checks of SPEC §3. Each names one function in `QG_CHECKS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    AnalysisDoc,
    ArchitectureDoc,
    TestPlan,
    BranchHasCommits,
    BranchPushed,
    ReviewApproved,
    TestsPassed,
    StagingDeployed,
    Merged,
    Deployed,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::AnalysisDoc => "analysis_doc",
            Check::ArchitectureDoc => "architecture_doc",
            Check::TestPlan => "test_plan",
            Check::BranchHasCommits => "branch_has_commits",
            Check::BranchPushed => "branch_pushed",
            Check::ReviewApproved => "review_approved",
            Check::TestsPassed => "tests_passed",
            Check::StagingDeployed => "staging_deployed",
            Check::Merged => "merged",
            Check::Deployed => "deployed",
        }
    }
}

/// One row of the pipeline: a stage, the role that works in it, the exit
/// gate, and where a pass leads.
#[derive(Debug)]
pub struct Transition {
    pub stage: Stage,
    pub role: Option<Role>,
    pub checks: &'static [Check],
    pub next: Option<Stage>,
}

/// The pipeline. `Cancelled` is a sink with no edge into it: only the cancel
/// path sets it.
pub static STAGE_TRANSITIONS: [Transition; 10] = [
    Transition {
        stage: Stage::Created,
        role: None,
        checks: &[],
        next: Some(Stage::Analysis),
    },
    Transition {
        stage: Stage::Analysis,
        role: Some(Role::Analyst),
        checks: &[Check::AnalysisDoc],
        next: Some(Stage::Architecture),
    },
    Transition {
        stage: Stage::Architecture,
        role: Some(Role::Architect),
        checks: &[Check::ArchitectureDoc, Check::TestPlan],
        next: Some(Stage::Development),
    },
    Transition {
        stage: Stage::Development,
        role: Some(Role::Developer),
        checks: &[Check::BranchHasCommits, Check::BranchPushed],
        next: Some(Stage::Review),
    },
    Transition {
        stage: Stage::Review,
        role: Some(Role::Reviewer),
        checks: &[Check::ReviewApproved],
        next: Some(Stage::Testing),
    },
    Transition {
        stage: Stage::Testing,
        role: Some(Role::Tester),
        checks: &[Check::TestsPassed],
        next: Some(Stage::DeployStaging),
    },
    Transition {
        stage: Stage::DeployStaging,
        role: Some(Role::Deployer),
        checks: &[Check::StagingDeployed],
        next: Some(Stage::Deploy),
    },
    Transition {
        stage: Stage::Deploy,
        role: Some(Role::Deployer),
        checks: &[Check::Merged, Check::Deployed],
        next: Some(Stage::Done),
    },
    Transition {
        stage: Stage::Done,
        role: None,
        checks: &[],
        next: None,
    },
    Transition {
        stage: Stage::Cancelled,
        role: None,
        checks: &[],
        next: None,
    },
];

/// Every exit check by name. The serial gate is a claim rule, not a check,
/// so it has no entry here.
pub static QG_CHECKS: [(&str, Check); 10] = [
    ("analysis_doc", Check::AnalysisDoc),
    ("architecture_doc", Check::ArchitectureDoc),
    ("test_plan", Check::TestPlan),
    ("branch_has_commits", Check::BranchHasCommits),
    ("branch_pushed", Check::BranchPushed),
    ("review_approved", Check::ReviewApproved),
    ("tests_passed", Check::TestsPassed),
    ("staging_deployed", Check::StagingDeployed),
    ("merged", Check::Merged),
    ("deployed", Check::Deployed),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// TC-21: exactly the 10 stages, `cancelled` a sink with no edge into it,
    /// no check belongs to the serial gate.
    #[test]
    fn registries_tc21() {
        let stages: Vec<Stage> = STAGE_TRANSITIONS.iter().map(|t| t.stage).collect();
        assert_eq!(stages, Stage::ALL.to_vec());
        assert!(
            STAGE_TRANSITIONS
                .iter()
                .all(|t| t.next != Some(Stage::Cancelled))
        );
        let cancelled = Stage::Cancelled.transition().unwrap();
        assert!(cancelled.next.is_none() && cancelled.role.is_none());
        assert!(QG_CHECKS.iter().all(|(name, c)| *name == c.as_str()));
        assert!(QG_CHECKS.iter().all(|(name, _)| !name.contains("serial")));
        for t in &STAGE_TRANSITIONS {
            for c in t.checks {
                assert!(QG_CHECKS.iter().any(|(_, q)| q == c));
            }
        }
        let terminal: Vec<Stage> = Stage::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, vec![Stage::Done, Stage::Cancelled]);
        for s in Stage::ALL {
            assert_eq!(s.as_str().parse::<Stage>(), Ok(s));
        }
    }
}
