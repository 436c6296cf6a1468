//! Agent prompts: one template per role (a file named in `orch.toml`, or the
//! built-in default), rendered with the task's context. Placeholders are
//! `{{name}}`; an unknown placeholder is left as it is, so a template can
//! show literal braces.

use crate::domain::Role;

/// Everything a prompt may mention.
#[derive(Debug, Clone, Default)]
pub struct PromptContext {
    pub task_id: u64,
    pub work_item_id: String,
    pub title: String,
    pub description: String,
    pub repo: String,
    pub branch: String,
    pub stage: String,
    pub docs_dir: String,
    /// Why the previous attempt failed, review comments, or a human's note.
    pub note: String,
}

impl PromptContext {
    fn value(&self, name: &str) -> Option<String> {
        Some(match name {
            "task_id" => self.task_id.to_string(),
            "work_item_id" => self.work_item_id.clone(),
            "title" => self.title.clone(),
            "description" => self.description.clone(),
            "repo" => self.repo.clone(),
            "branch" => self.branch.clone(),
            "stage" => self.stage.clone(),
            "docs_dir" => self.docs_dir.clone(),
            "note" => self.note.clone(),
            _ => return None,
        })
    }
}

/// Renders `template`. Values are inserted once: a value containing `{{x}}`
/// is not expanded again.
pub fn render(template: &str, ctx: &PromptContext) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => match ctx.value(after[..end].trim()) {
                Some(v) => {
                    out.push_str(&v);
                    rest = &after[end + 2..];
                }
                None => {
                    out.push_str("{{");
                    rest = after;
                }
            },
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

const COMMON: &str = "You work on {{work_item_id}}: {{title}}\n\n{{description}}\n\n\
Repository {{repo}}, branch {{branch}}, stage {{stage}}. Write your documents under {{docs_dir}}/ and commit your work.\n";

/// The built-in template of a role.
pub fn default_template(role: Role) -> String {
    let task = match role {
        Role::Analyst => "Analyse the request. Write {{docs_dir}}/01-analysis.md.",
        Role::Architect => {
            "Design the change. Write {{docs_dir}}/02-architecture.md and a test plan in {{docs_dir}}/04-test-plan.yaml."
        }
        Role::Developer => "Implement the change on the branch and commit it.",
        Role::Reviewer => {
            "Review the branch. Write {{docs_dir}}/05-review.json as {\"verdict\":\"approved\"|\"changes_requested\",\"comments\":[...]}."
        }
        Role::Tester => {
            "Run the tests of the test plan. Write {{docs_dir}}/06-test-report.json as {\"passed\":bool,\"total\":n,\"failed\":n}."
        }
        Role::Deployer => "Deploy.",
    };
    format!("{COMMON}\n{task}\n\n{{{{note}}}}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_known_placeholders_once() {
        let ctx = PromptContext {
            work_item_id: "ORCH-1".into(),
            note: "{{title}} stays literal".into(),
            title: "T".into(),
            ..Default::default()
        };
        assert_eq!(
            render("{{ work_item_id }}: {{note}} {{unknown}} {{", &ctx),
            "ORCH-1: {{title}} stays literal {{unknown}} {{"
        );
        let p = render(
            &default_template(Role::Tester),
            &PromptContext {
                docs_dir: "docs/tasks/ORCH-1".into(),
                note: "retry: x".into(),
                ..ctx
            },
        );
        assert!(p.contains("docs/tasks/ORCH-1/06-test-report.json"));
        assert!(p.trim_end().ends_with("retry: x"));
    }
}
