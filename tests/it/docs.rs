//! The documentation stays in step with the code.

use std::collections::BTreeSet;
use std::path::Path;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every `ORCH_*` variable named in the code is listed in `.env.example`
/// (names used only as examples in unit tests excepted).
#[test]
fn env_example_lists_every_variable() {
    let example = read(".env.example");
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut names = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        for (i, _) in text.match_indices("\"ORCH_") {
            let name: String = text[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    let examples_only = ["ORCH_SLACK_TOKEN"];
    let missing: Vec<_> = names
        .iter()
        .filter(|n| !examples_only.contains(&n.as_str()) && !example.contains(n.as_str()))
        .collect();
    assert!(missing.is_empty(), "missing from .env.example: {missing:?}");
}

/// Every event kind is documented in `schema/store.md`, and the closed list
/// has no duplicates.
#[test]
fn event_kinds_documented() {
    let doc = read("schema/store.md");
    let mut seen = std::collections::HashSet::new();
    for k in orch::store::EventKind::ALL {
        assert!(seen.insert(k.as_str()), "duplicate {}", k.as_str());
        assert!(doc.contains(k.as_str()), "{} is not documented", k.as_str());
    }
}
