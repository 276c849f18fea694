//! The layers of DESIGN.md, checked where the compiler cannot check them.
//!
//! Between crates the compiler already refuses an upward import, as long as no crate's Cargo.toml
//! names a crate above it: that is checked here. Inside this binary crate, `cli`, `tui`, `worker`
//! and the composition root `root` are modules of one crate, so an upward import would build:
//! the source of every module that is not `cli` is read here and must not name `cli` (nor
//! `clap`, whose types belong to `cli`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `path` (or `path` itself when it is a file).
fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        out.push(path.to_path_buf());
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            rust_files(&entry, out);
        } else if entry.extension().is_some_and(|e| e == "rs") {
            out.push(entry);
        }
    }
}

/// The source without its comments (line and block), with whitespace kept only between two
/// words, so that `crate :: cli` or a `use` group split over lines reads as `crate::cli`.
fn code_only(source: &str) -> String {
    let mut spaced = String::new();
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('/', Some('/')) => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                spaced.push(' ');
            }
            ('/', Some('*')) => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
                spaced.push(' ');
            }
            (c, _) if c.is_whitespace() => spaced.push(' '),
            (c, _) => spaced.push(c),
        }
    }
    let chars: Vec<char> = spaced.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let before = out.chars().next_back();
            let after = chars[i + 1..].iter().find(|&&c| c != ' ');
            if !(before.is_some_and(is_ident) && after.is_some_and(|&c| is_ident(c))) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `code` (see [`code_only`]) names the module `module` of this crate: as
/// `crate::module`, `ospdeck::module` or `super::module`, or inside a group such as
/// `use crate::{config, module::X}`.
fn names_module(code: &str, module: &str) -> bool {
    for prefix in ["crate::", "ospdeck::", "super::"] {
        for (at, _) in code.match_indices(prefix) {
            // Not the tail of a longer name (`my_crate::`, `xospdeck::`).
            if code[..at].ends_with(is_ident) {
                continue;
            }
            let rest = &code[at + prefix.len()..];
            let named = |s: &str| {
                s.strip_prefix(module)
                    .is_some_and(|tail| !tail.starts_with(is_ident))
            };
            if named(rest) {
                return true;
            }
            if let Some(group) = rest.strip_prefix('{') {
                // The group up to its matching brace; any segment that starts with `module`.
                let mut depth = 1;
                let end = group
                    .char_indices()
                    .find(|&(_, c)| {
                        match c {
                            '{' => depth += 1,
                            '}' => depth -= 1,
                            _ => {}
                        }
                        depth == 0
                    })
                    .map_or(group.len(), |(i, _)| i);
                if group[..end].split(['{', '}', ',']).any(named) {
                    return true;
                }
            }
        }
    }
    false
}

/// Whether `code` names the crate `name` in a path (`name::…`, `::name::…`).
fn names_crate(code: &str, name: &str) -> bool {
    code.match_indices(name).any(|(at, _)| {
        let before = code[..at].trim_end_matches("::").chars().next_back();
        !before.is_some_and(is_ident) && code[at + name.len()..].starts_with("::")
    })
}

/// The files of the binary crate that sit beside or below `cli` and so must not name it.
fn files_below_cli() -> Vec<PathBuf> {
    let src = root_dir().join("src");
    let mut files = Vec::new();
    for part in [
        "tui",
        "worker",
        "serve",
        "root.rs",
        "root",
        "config.rs",
        "stdio.rs",
    ] {
        rust_files(&src.join(part), &mut files);
    }
    files
}

#[test]
fn the_checks_recognise_what_they_look_for() {
    let hits = [
        "use crate::cli::Cli;",
        "use crate :: cli;",
        "use ospdeck::cli::{self, Cli};",
        "use super::cli::CliError;",
        "use crate::{config, cli::Cli};",
        "use crate::{\n    cli,\n    stdio,\n};",
        "let x = crate::cli::resolve_config(&c);",
    ];
    for source in hits {
        assert!(names_module(&code_only(source), "cli"), "missed: {source}");
    }
    let misses = [
        "use crate::client::X;",
        "use crate::config::cli_name;",
        "// use crate::cli::Cli;",
        "/* crate::cli */ use crate::root;",
        "let cli = 1; cli.json",
        "use ospdeck_cli_helpers::x;",
    ];
    for source in misses {
        assert!(
            !names_module(&code_only(source), "cli"),
            "false hit: {source}"
        );
    }
    assert!(names_crate(&code_only("use clap::Args;"), "clap"));
    assert!(names_crate(&code_only("#[derive(clap::Parser)]"), "clap"));
    assert!(!names_crate(&code_only("// clap::Args"), "clap"));
    assert!(!names_crate(&code_only("use crate::clapper::X;"), "clap"));
}

#[test]
fn nothing_beside_cli_imports_cli_or_clap() {
    let files = files_below_cli();
    let src = root_dir().join("src");
    // Not vacuous: the modules that must be checked are there to check.
    for expected in [
        "tui/view.rs",
        "tui/mod.rs",
        "worker/mod.rs",
        "serve/connection.rs",
        "config.rs",
        "root.rs",
    ] {
        let path = src.join(expected);
        assert!(
            !path.exists() || files.contains(&path),
            "{expected} exists but is not checked"
        );
    }
    assert!(
        files.len() >= 8,
        "only {} files found: {files:?}",
        files.len()
    );
    let mut offenders = Vec::new();
    for file in &files {
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        let shown = file.strip_prefix(root_dir()).unwrap().display().to_string();
        if names_module(&code, "cli") || names_module(&code, "bench") {
            offenders.push(format!("{shown} imports cli (call crate::root instead)"));
        }
        if names_crate(&code, "clap") {
            offenders.push(format!("{shown} uses clap (argument types belong in cli)"));
        }
    }
    assert!(
        offenders.is_empty(),
        "upward imports:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn panes_see_only_their_context_not_the_app_or_the_main_view() {
    // view.rs draws the frame around the panes and calls into them; a pane knows the clock, the
    // theme and the keys through `Ctx`/`KeyCtx`, never the whole App.
    let dir = root_dir().join("src/tui/panes");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    assert!(files.len() >= 6, "only {} pane files found", files.len());
    for path in files {
        let code = code_only(&std::fs::read_to_string(&path).unwrap());
        assert!(
            !names_module(&code, "view") && !names_module(&code, "tui::view"),
            "{} imports view.rs, which imports it: a cycle",
            path.display()
        );
        assert!(
            !code.contains("app::App") && !code.contains("App,") && !code.contains("{App"),
            "{} reaches into the App instead of its context",
            path.display()
        );
    }
}

/// The ospdeck crates a Cargo.toml depends on, in any dependency table (target-specific too).
fn ospdeck_dependencies(manifest: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    let mut scopes = vec![&doc];
    if let Some(targets) = doc.get("target").and_then(|t| t.as_table()) {
        scopes.extend(targets.values().filter_map(|t| t.as_table()));
    }
    let mut names = BTreeSet::new();
    for scope in scopes {
        for kind in ["dependencies", "dev-dependencies", "build-dependencies"] {
            let Some(deps) = scope.get(kind).and_then(|t| t.as_table()) else {
                continue;
            };
            for (key, value) in deps {
                let package = value.get("package").and_then(|p| p.as_str()).unwrap_or(key);
                if package == "ospdeck" || package.starts_with("ospdeck-") {
                    names.insert(package.to_owned());
                }
            }
        }
    }
    names
}

#[test]
fn crates_depend_only_on_the_layers_below_them() {
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("domain", &[][..]),
        ("store", &["ospdeck-domain"][..]),
        ("artifacts", &["ospdeck-domain", "ospdeck-store"][..]),
        ("deploy", &["ospdeck-domain", "ospdeck-store"][..]),
        (
            "ops",
            &[
                "ospdeck-domain",
                "ospdeck-store",
                "ospdeck-artifacts",
                "ospdeck-deploy",
            ][..],
        ),
    ]);
    let crates = root_dir().join("crates");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&crates).unwrap() {
        let dir = entry.unwrap().path();
        let manifest = dir.join("Cargo.toml");
        if !manifest.exists() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let Some(allowed) = allowed.get(name.as_str()) else {
            panic!("crates/{name} has no place in the layers of this test: add it");
        };
        let deps = ospdeck_dependencies(&manifest);
        let upward: Vec<&String> = deps
            .iter()
            .filter(|d| !allowed.contains(&d.as_str()))
            .collect();
        assert!(
            upward.is_empty(),
            "crates/{name}/Cargo.toml depends on {upward:?}; it may depend only on {allowed:?}"
        );
        found.push(name);
    }
    found.sort();
    assert_eq!(found, ["artifacts", "deploy", "domain", "ops", "store"]);
}
