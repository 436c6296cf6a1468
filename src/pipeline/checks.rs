//! The exit checks of `QG_CHECKS` (SPEC §3). Each reads the evidence the
//! driver gathered after the job (artefact contents before and after the
//! job, commits, remote state, deploy results) and returns pass, or fail
//! with a reason a human can act on. An artefact counts only if this job
//! wrote or changed it, so a stale file from an earlier round fails.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::domain::Check;

pub const ANALYSIS: &str = "01-analysis.md";
pub const ARCHITECTURE: &str = "02-architecture.md";
pub const TEST_PLAN: &str = "04-test-plan.yaml";
pub const REVIEW: &str = "05-review.json";
pub const TEST_REPORT: &str = "06-test-report.json";

/// Every artefact file name the checks read.
pub const ARTEFACTS: [&str; 5] = [ANALYSIS, ARCHITECTURE, TEST_PLAN, REVIEW, TEST_REPORT];

/// What the driver observed around one job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Artefact contents when the job started (absent files are missing).
    pub before: BTreeMap<String, Vec<u8>>,
    /// Artefact contents when the job ended.
    pub after: BTreeMap<String, Vec<u8>>,
    /// Commits on the feature branch since the stage started.
    pub commits_since_stage_start: usize,
    /// Whether the remote feature branch equals the local head.
    pub pushed: bool,
    pub staging_deployed: bool,
    pub merged: bool,
    pub deployed: bool,
}

impl Evidence {
    /// The artefact's new content, if this job created or changed it.
    fn fresh(&self, name: &str) -> Result<&[u8], String> {
        let after = self
            .after
            .get(name)
            .ok_or_else(|| format!("{name} is missing"))?;
        if self.before.get(name) == Some(after) {
            return Err(format!(
                "{name} was not written by this job (unchanged since it started)"
            ));
        }
        if after.iter().all(u8::is_ascii_whitespace) {
            return Err(format!("{name} is empty"));
        }
        Ok(after)
    }
}

/// A reviewer's verdict, `05-review.json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Review {
    pub verdict: Verdict,
    #[serde(default)]
    pub comments: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approved,
    ChangesRequested,
}

impl Review {
    /// The comments as one text for the developer's prompt.
    pub fn comments_text(&self) -> String {
        let lines: Vec<String> = self
            .comments
            .iter()
            .map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_owned))
            .collect();
        if lines.is_empty() {
            "the reviewer requested changes without comments".into()
        } else {
            lines.join("\n")
        }
    }
}

#[derive(Debug, Deserialize)]
struct TestReport {
    passed: bool,
    total: u64,
    failed: u64,
}

/// This job's review, if it wrote a valid one.
pub fn review(ev: &Evidence) -> Result<Review, String> {
    let bytes = ev.fresh(REVIEW)?;
    serde_json::from_slice(bytes).map_err(|e| format!("{REVIEW} does not parse: {e}"))
}

/// Runs one exit check.
pub fn run(check: Check, ev: &Evidence) -> Result<(), String> {
    match check {
        Check::AnalysisDoc => ev.fresh(ANALYSIS).map(drop),
        Check::ArchitectureDoc => ev.fresh(ARCHITECTURE).map(drop),
        Check::TestPlan => {
            let text = std::str::from_utf8(ev.fresh(TEST_PLAN)?)
                .map_err(|_| format!("{TEST_PLAN} is not UTF-8"))?;
            let docs = yaml_rust2::YamlLoader::load_from_str(text)
                .map_err(|e| format!("{TEST_PLAN} does not parse: {e}"))?;
            match docs.first() {
                Some(yaml_rust2::Yaml::Hash(_)) | Some(yaml_rust2::Yaml::Array(_)) => Ok(()),
                _ => Err(format!("{TEST_PLAN} holds no mapping or list")),
            }
        }
        Check::BranchHasCommits => {
            if ev.commits_since_stage_start > 0 {
                Ok(())
            } else {
                Err("no commit on the feature branch since the stage started".into())
            }
        }
        Check::BranchPushed => {
            if ev.pushed {
                Ok(())
            } else {
                Err("the remote feature branch does not match the local head".into())
            }
        }
        Check::ReviewApproved => match review(ev)?.verdict {
            Verdict::Approved => Ok(()),
            Verdict::ChangesRequested => Err("the reviewer requested changes".into()),
        },
        Check::TestsPassed => {
            let r: TestReport = serde_json::from_slice(ev.fresh(TEST_REPORT)?)
                .map_err(|e| format!("{TEST_REPORT} does not parse: {e}"))?;
            if r.passed && r.failed == 0 {
                Ok(())
            } else {
                Err(format!("tests failed: {} of {} failed", r.failed, r.total))
            }
        }
        Check::StagingDeployed => flag(ev.staging_deployed, "the staging deploy did not succeed"),
        Check::Merged => flag(
            ev.merged,
            "the feature branch was not merged into the base branch",
        ),
        Check::Deployed => flag(ev.deployed, "the production deploy did not succeed"),
    }
}

fn flag(ok: bool, reason: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(reason.into()) }
}

/// Runs every check of a stage; the first failure's reason, if any.
pub fn run_all(checks: &[Check], ev: &Evidence) -> Result<(), String> {
    checks
        .iter()
        .try_for_each(|c| run(*c, ev).map_err(|r| format!("{}: {r}", c.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(before: &[(&str, &str)], after: &[(&str, &str)]) -> Evidence {
        let m = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect()
        };
        Evidence {
            before: m(before),
            after: m(after),
            ..Evidence::default()
        }
    }

    fn check(c: Check, e: &Evidence, expect: Result<(), &str>) {
        let got = run(c, e);
        match expect {
            Ok(()) => assert_eq!(got, Ok(()), "{c:?}"),
            Err(needle) => assert!(
                got.as_ref().is_err_and(|r| r.contains(needle)),
                "{c:?}: {got:?} should say {needle:?}"
            ),
        }
    }

    #[test]
    fn artefact_checks() {
        check(
            Check::AnalysisDoc,
            &ev(&[], &[(ANALYSIS, "# Analysis")]),
            Ok(()),
        );
        check(Check::AnalysisDoc, &ev(&[], &[]), Err("missing"));
        check(
            Check::AnalysisDoc,
            &ev(&[], &[(ANALYSIS, "  \n")]),
            Err("empty"),
        );
        check(
            Check::AnalysisDoc,
            &ev(&[(ANALYSIS, "old")], &[(ANALYSIS, "old")]),
            Err("not written by this job"),
        );
        check(
            Check::TestPlan,
            &ev(&[], &[(TEST_PLAN, "cases:\n  - id: TC-1\n")]),
            Ok(()),
        );
        check(
            Check::TestPlan,
            &ev(&[], &[(TEST_PLAN, "cases: [unclosed\n")]),
            Err("does not parse"),
        );
        check(
            Check::TestPlan,
            &ev(&[], &[(TEST_PLAN, "just words")]),
            Err("no mapping"),
        );
        check(
            Check::ReviewApproved,
            &ev(&[], &[(REVIEW, r#"{"verdict":"approved","comments":[]}"#)]),
            Ok(()),
        );
        check(
            Check::ReviewApproved,
            &ev(
                &[],
                &[(
                    REVIEW,
                    r#"{"verdict":"changes_requested","comments":["x"]}"#,
                )],
            ),
            Err("requested changes"),
        );
        check(
            Check::ReviewApproved,
            &ev(&[], &[(REVIEW, r#"{"verdict":"maybe"}"#)]),
            Err("does not parse"),
        );
        let stale = r#"{"verdict":"approved","comments":[]}"#;
        check(
            Check::ReviewApproved,
            &ev(&[(REVIEW, stale)], &[(REVIEW, stale)]),
            Err("not written by this job"),
        );
        check(
            Check::TestsPassed,
            &ev(
                &[],
                &[(TEST_REPORT, r#"{"passed":true,"total":3,"failed":0}"#)],
            ),
            Ok(()),
        );
        check(
            Check::TestsPassed,
            &ev(
                &[],
                &[(TEST_REPORT, r#"{"passed":false,"total":3,"failed":1}"#)],
            ),
            Err("1 of 3"),
        );
        check(
            Check::TestsPassed,
            &ev(&[], &[(TEST_REPORT, r#"{"passed":"yes"}"#)]),
            Err("does not parse"),
        );
    }

    #[test]
    fn repository_checks() {
        let mut e = Evidence::default();
        check(Check::BranchHasCommits, &e, Err("no commit"));
        check(Check::BranchPushed, &e, Err("does not match"));
        e.commits_since_stage_start = 2;
        e.pushed = true;
        check(Check::BranchHasCommits, &e, Ok(()));
        check(Check::BranchPushed, &e, Ok(()));
        assert!(
            run_all(&[Check::Merged, Check::Deployed], &e)
                .unwrap_err()
                .starts_with("merged:")
        );
    }
}
