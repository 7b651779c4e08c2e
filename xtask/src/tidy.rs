//! The tidy checks, run as ordinary tests (`cargo test -p xtask`, so `cargo xtask test` too):
//! - every `.rs` file under `crates/`, `xtask/` and `benches/` opens with a `//!` doc saying what
//!   it owns;
//! - the library crates' `src/` never print (`println!`, `eprintln!`, `print!`, `eprint!`,
//!   `dbg!`) outside `#[cfg(test)]` code and test-only modules; the CLI, xtask, benches and
//!   reelvec-testkit (whose job is to print a skip) are exempt;
//! - no `#[ignore]` without a reason (`#[ignore = "..."]`).
//!
//! The checks list every offender, so one run shows all there is to fix.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Library crates whose `src/` must not print.
const QUIET_CRATES: &[&str] = &["data", "engine", "models", "metrics", "outfile", "report"];

/// A known print in library code: (path relative to the workspace, the printing line's text,
/// why it is still there).
type AllowedPrint = (&'static str, &'static str, &'static str);

/// Known prints in library code. Every entry must still match, so a fixed one must be removed
/// from here. Empty: P1's per-step progress line (`pipelines/p1_cooc.rs`), the last entry, was
/// removed under issue 9.
const ALLOWED_PRINTS: &[AllowedPrint] = &[];

/// Every `.rs` file under `dir`, skipping `target` folders, sorted.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The line without its `//` comment and with string and char literals emptied, so braces and
/// macro names inside them count for nothing.
fn code_of(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => break,
            '"' => {
                out.push('"');
                while let Some(s) = chars.next() {
                    match s {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                out.push('"');
            }
            '\'' => {
                // A char literal ('x', '\n', '{'), else a lifetime.
                let rest: String = chars.clone().take(3).collect();
                let literal = rest.starts_with('\\') || rest.chars().nth(1) == Some('\'');
                if literal {
                    while let Some(s) = chars.next() {
                        if s == '\\' {
                            chars.next();
                        } else if s == '\'' {
                            break;
                        }
                    }
                    out.push_str("' '");
                } else {
                    out.push('\'');
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Line numbers (0-based) of `text` that are test-only: the items after `#[cfg(test)]`.
fn test_only_lines(lines: &[String]) -> HashSet<usize> {
    let mut skip = HashSet::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != "#[cfg(test)]" {
            i += 1;
            continue;
        }
        // The item: up to its `;` if it has no body, else to the brace that closes its body.
        let mut depth = 0i32;
        let mut opened = false;
        let mut j = i;
        while j < lines.len() {
            skip.insert(j);
            for c in lines[j].chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            let ends_without_body = !opened && lines[j].trim_end().ends_with(';') && j > i;
            if (opened && depth <= 0) || ends_without_body {
                break;
            }
            j += 1;
        }
        i = j + 1;
    }
    skip
}

/// `mod NAME;` declared under `#[cfg(test)]` in `lines`: files that are test-only.
fn test_only_modules(lines: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    for pair in lines.windows(2) {
        if pair[0].trim() == "#[cfg(test)]" {
            let item = pair[1].trim();
            let item = item.strip_prefix("pub(crate) ").unwrap_or(item);
            if let Some(name) = item.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
                names.push(name.trim().to_string());
            }
        }
    }
    names
}

/// Every problem the tidy checks find under `root`, as `path:line: problem`.
pub fn problems(root: &Path) -> Vec<String> {
    problems_allowing(root, ALLOWED_PRINTS)
}

/// [`problems`] with `allowed` as the list of known prints.
fn problems_allowing(root: &Path, allowed: &[AllowedPrint]) -> Vec<String> {
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "benches"] {
        rust_files(&root.join(dir), &mut files);
    }
    let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).to_string_lossy().into_owned();
    let mut found = Vec::new();
    let mut test_files: HashSet<PathBuf> = HashSet::new();
    let mut texts = Vec::new();
    for path in &files {
        let Ok(text) = std::fs::read_to_string(path) else {
            found.push(format!("{}: unreadable", rel(path)));
            continue;
        };
        let code: Vec<String> = text.lines().map(code_of).collect();
        if let Some(dir) = path.parent() {
            for name in test_only_modules(&code) {
                test_files.insert(dir.join(format!("{name}.rs")));
                test_files.insert(dir.join(&name).join("mod.rs"));
            }
        }
        texts.push((path, text, code));
    }
    let mut allowed_used = vec![false; allowed.len()];
    for (path, text, code) in &texts {
        let name = rel(path);
        if !text.starts_with("//!") {
            found.push(format!("{name}:1: does not open with a `//!` doc saying what it owns"));
        }
        for (n, line) in code.iter().enumerate() {
            let squashed: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            if squashed.contains("#[ignore]") {
                found.push(format!(
                    "{name}:{}: #[ignore] without a reason (write #[ignore = \"why\"])",
                    n + 1
                ));
            }
        }
        let quiet = QUIET_CRATES.iter().any(|c| name.starts_with(&format!("crates/{c}/src/")));
        if !quiet || test_files.contains(*path) {
            continue;
        }
        let test_lines = test_only_lines(code);
        for (n, line) in code.iter().enumerate() {
            if test_lines.contains(&n) {
                continue;
            }
            let prints = ["println!", "eprintln!", "print!", "eprint!", "dbg!"].iter().any(|m| {
                line.match_indices(m).any(|(at, _)| {
                    !line[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
                })
            });
            if !prints {
                continue;
            }
            let original = text.lines().nth(n).unwrap_or("").trim();
            match allowed.iter().position(|(p, l, _)| *p == name && *l == original) {
                Some(k) => allowed_used[k] = true,
                None => found.push(format!("{name}:{}: prints in library code: {original}", n + 1)),
            }
        }
    }
    for ((path, line, _), used) in allowed.iter().zip(allowed_used) {
        if !used {
            found
                .push(format!("{path}: the allowed print `{line}` is gone: remove its ALLOWED_PRINTS entry"));
        }
    }
    found
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn the_workspace_is_tidy() {
        let found = problems(&crate::util::project_root());
        assert!(found.is_empty(), "tidy problems:\n{}", found.join("\n"));
    }

    #[test]
    fn each_rule_finds_its_offender() {
        let root = tempfile::tempdir().unwrap();
        let src = root.path().join("crates/engine/src");
        std::fs::create_dir_all(&src).unwrap();
        let write = |name: &str, text: &str| std::fs::write(src.join(name), text).unwrap();
        write("no_doc.rs", "fn f() {}\n");
        write(
            "loud.rs",
            "//! Loud.\nfn f() {\n    eprintln!(\"x\");\n    let s = \"println!(\";\n    my_println!(s);\n}\n\
             #[cfg(test)]\nmod tests {\n    fn g() { println!(\"fine in tests\"); }\n}\nfn h() { print!(\"known\"); }\n",
        );
        write(
            "ignored.rs",
            "//! Tests.\n#[test]\n#[ignore]\nfn slow() {}\n#[test]\n#[ignore = \"why\"]\nfn ok() {}\n",
        );
        write("lib.rs", "//! Lib.\n#[cfg(test)]\nmod helpers;\n");
        write("helpers.rs", "//! Test helpers.\npub fn h() { dbg!(1); }\n");
        let allowed: &[AllowedPrint] = &[
            ("crates/engine/src/loud.rs", "fn h() { print!(\"known\"); }", "allowed"),
            ("crates/engine/src/loud.rs", "eprintln!(\"stale\");", "fixed long ago"),
        ];
        let found = problems_allowing(root.path(), allowed);
        let has = |needle: &str| found.iter().any(|p| p.contains(needle));
        assert!(has("crates/engine/src/no_doc.rs:1: does not open"), "{found:#?}");
        assert!(has("crates/engine/src/loud.rs:3: prints in library code"), "{found:#?}");
        assert!(has("crates/engine/src/ignored.rs:3: #[ignore] without a reason"), "{found:#?}");
        assert!(has("the allowed print `eprintln!(\"stale\");` is gone"), "{found:#?}");
        // Strings, other macros, #[cfg(test)] code and test-only files are not offenders.
        assert_eq!(found.len(), 4, "{found:#?}");
    }
}
