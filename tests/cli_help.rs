//! The CLI describes itself: every argument and command has help text, global options stand under
//! their own heading, shell completions load and complete names from the store (reading it only),
//! and manual pages are written for every command.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use ospdeck::cli::Cli;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The binary, run from its home (where `man` without --dir would write).
fn ospdeck_command(home: &Path, args: &[&str]) -> Command {
    let mut command = common::ospdeck_command(home, args);
    command.current_dir(home);
    command
}

fn ospdeck(home: &Path, args: &[&str]) -> std::io::Result<Output> {
    ospdeck_command(home, args).output()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
}

/// Every command of the tree with its path (`run list`), the root first.
fn commands() -> Vec<(String, clap::Command)> {
    fn walk(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
        out.push((path.clone(), cmd.clone()));
        for sub in cmd.get_subcommands() {
            let sub_path = format!("{path} {}", sub.get_name()).trim().to_owned();
            walk(sub, sub_path, out);
        }
    }
    let mut root = Cli::command();
    root.build();
    let mut out = Vec::new();
    walk(&root, String::new(), &mut out);
    out
}

#[test]
fn every_argument_and_command_is_described() {
    let mut missing = Vec::new();
    let all = commands();
    for (path, cmd) in &all {
        let shown = if path.is_empty() { "ospdeck" } else { path };
        if cmd.get_about().is_none() && cmd.get_long_about().is_none() {
            missing.push(format!("command `{shown}` has no about"));
        }
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            let help = arg.get_help().or(arg.get_long_help());
            if help.is_none_or(|h| h.to_string().trim().is_empty()) {
                let name = match arg.get_long() {
                    Some(long) => format!("--{long}"),
                    None => format!("<{}>", id.to_uppercase()),
                };
                missing.push(format!("`{shown}` {name} has no help"));
            }
        }
    }
    assert!(all.len() > 60, "the walk found only {} commands", all.len());
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// The options listed under `heading` in rendered help.
fn section<'a>(help: &'a str, heading: &str) -> Vec<&'a str> {
    help.lines()
        .skip_while(|l| l.trim_end() != format!("{heading}:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty() && l.starts_with(' '))
        .filter(|l| l.trim_start().starts_with('-'))
        .collect()
}

#[test]
fn global_options_stand_under_their_own_heading() -> TestResult {
    let home = tempfile::tempdir()?;
    for words in [
        &["run", "enqueue", "--help"][..],
        &["template", "publish", "--help"],
        &["--help"],
    ] {
        let o = ospdeck(home.path(), words)?;
        assert_ok(&o);
        let help = text(&o.stdout);
        let global = section(&help, "Global options").join("\n");
        for flag in [
            "--db <URL>",
            "--json",
            "--as <USER>",
            "--read-only",
            "--no-mouse",
            "--color <WHEN>",
        ] {
            assert!(
                global.contains(flag),
                "{words:?}: {flag} not under Global options:\n{help}"
            );
        }
        let own = section(&help, "Options").join("\n");
        assert!(
            !own.contains("--db"),
            "{words:?}: --db among the command's own options:\n{help}"
        );
    }
    Ok(())
}

#[test]
fn completion_scripts_generate_for_every_shell() -> TestResult {
    let home = tempfile::tempdir()?;
    for (shell, marker) in [
        ("bash", "complete -o"),
        ("zsh", "compdef"),
        ("fish", "complete"),
        ("elvish", "edit:completion:arg-completer"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let o = ospdeck(home.path(), &["completions", shell])?;
        assert_ok(&o);
        let script = text(&o.stdout);
        assert!(script.contains(marker), "{shell}: no {marker} in\n{script}");
        // The script calls this very binary back to complete.
        assert!(
            script.contains(env!("CARGO_BIN_EXE_ospdeck")),
            "{shell}: does not call the binary back:\n{script}"
        );
    }
    let o = ospdeck(home.path(), &["completions", "nope"])?;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("nope"), "{}", text(&o.stderr));
    Ok(())
}

/// A home for a test that drives bash, which must be there.
fn home_with_bash() -> Result<tempfile::TempDir, Box<dyn std::error::Error>> {
    let bash = Command::new("bash").args(["-c", "true"]).output();
    assert!(
        bash.is_ok_and(|o| o.status.success()),
        "bash is needed for this test"
    );
    Ok(tempfile::tempdir()?)
}

#[test]
fn bash_loads_the_completions() -> TestResult {
    let home = home_with_bash()?;
    let script = format!(
        "source <({} completions bash) && complete -p ospdeck",
        env!("CARGO_BIN_EXE_ospdeck")
    );
    let o = Command::new("bash")
        .args(["-c", &script])
        .env("HOME", home.path())
        .output()?;
    assert_ok(&o);
    let registered = text(&o.stdout);
    assert!(
        registered.contains("-F _clap_complete_ospdeck ospdeck"),
        "{registered}"
    );
    Ok(())
}

/// What bash offers for the last of `words` (after `ospdeck`), through the sourced script as a
/// Tab would call it.
fn bash_complete(home: &Path, words: &[&str]) -> Result<(Vec<String>, Duration), std::io::Error> {
    let mut line = vec!["ospdeck"];
    line.extend_from_slice(words);
    let quoted: Vec<String> = line.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "source <({bin} completions bash) || exit 9
COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_TYPE=9
_clap_complete_ospdeck ospdeck {current} {previous}
printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        bin = env!("CARGO_BIN_EXE_ospdeck"),
        words = quoted.join(" "),
        cword = line.len() - 1,
        current = quoted[line.len() - 1],
        previous = quoted[line.len() - 2],
    );
    let started = Instant::now();
    let o = Command::new("bash")
        .args(["-c", &script])
        .current_dir(home)
        .env("HOME", home)
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("OSPDECK_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .output()?;
    let took = started.elapsed();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        o.stderr.is_empty(),
        "completion wrote to stderr: {}",
        text(&o.stderr)
    );
    let offered = text(&o.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    Ok((offered, took))
}

fn files_under(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(files_under(&path)?);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}

/// The offered words that are not options.
fn values(offered: &[String]) -> Vec<&str> {
    offered
        .iter()
        .map(String::as_str)
        .filter(|w| !w.starts_with('-'))
        .collect()
}

#[test]
fn completion_offers_names_from_the_store() -> TestResult {
    let home = home_with_bash()?;
    let db = home.path().join("store.db");
    let db = db.to_str().ok_or("temp path is not UTF-8")?;
    for words in [
        &["db", "migrate"][..],
        &["project", "create", "acme", "--name", "Acme Inc"],
        &["project", "create", "other"],
        &[
            "workflow",
            "create",
            "--project",
            "acme",
            "nightly",
            "--type",
            "test",
            "--command",
            "true",
        ],
        &[
            "run",
            "enqueue",
            "--project",
            "acme",
            "--workflow",
            "nightly",
        ],
    ] {
        let mut args = vec!["--db", db];
        args.extend_from_slice(words);
        assert_ok(&ospdeck(home.path(), &args)?);
    }
    let (offered, _) = bash_complete(
        home.path(),
        &["--db", db, "workflow", "list", "--project", "a"],
    )?;
    assert_eq!(offered, ["acme"]);
    let (offered, _) = bash_complete(
        home.path(),
        &["--db", db, "run", "enqueue", "--project", ""],
    )?;
    assert!(
        offered.contains(&"acme".to_owned()) && offered.contains(&"other".to_owned()),
        "{offered:?}"
    );
    let (offered, _) = bash_complete(
        home.path(),
        &["--db", db, "run", "enqueue", "--workflow", "n"],
    )?;
    assert_eq!(offered, ["nightly"]);
    // An empty word is offered the options too; the store's part is the run id.
    let (offered, _) = bash_complete(home.path(), &["--db", db, "run", "show", ""])?;
    assert_eq!(values(&offered), ["1"], "{offered:?}");
    // The protocol the script speaks, without bash: `COMPLETE=bash ospdeck -- <words>`.
    let o = ospdeck_command(
        home.path(),
        &[
            "--",
            "ospdeck",
            "--db",
            db,
            "member",
            "list",
            "--project",
            "o",
        ],
    )
    .env("COMPLETE", "bash")
    .env("_CLAP_COMPLETE_INDEX", "6")
    .env("_CLAP_IFS", "\n")
    .output()?;
    assert_ok(&o);
    assert_eq!(text(&o.stdout).trim(), "other");
    Ok(())
}

#[test]
fn completion_against_a_missing_store_offers_nothing_and_creates_nothing() -> TestResult {
    let home = home_with_bash()?;
    let missing = home.path().join("missing.db");
    let db = missing.to_str().ok_or("temp path is not UTF-8")?;
    let (offered, took) = bash_complete(
        home.path(),
        &["--db", db, "workflow", "list", "--project", ""],
    )?;
    assert!(offered.is_empty(), "{offered:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        !missing.exists(),
        "completion created {}",
        missing.display()
    );
    // Without --db the embedded default is read, and is not made on the way.
    let (offered, _) = bash_complete(home.path(), &["run", "show", ""])?;
    assert!(values(&offered).is_empty(), "{offered:?}");
    assert!(offered.contains(&"--db".to_owned()), "{offered:?}");
    // Only `ospdeck completions`, run to load the script, leaves its log file.
    let logs = home.path().join(".local/state");
    let left: Vec<_> = files_under(home.path())?
        .into_iter()
        .filter(|f| !f.starts_with(&logs))
        .collect();
    assert!(left.is_empty(), "completion left files in HOME: {left:?}");
    // Commands and flags still complete without a store.
    let (offered, _) = bash_complete(home.path(), &["compl"])?;
    assert_eq!(offered, ["completions"]);
    Ok(())
}

#[test]
fn man_writes_a_page_per_command() -> TestResult {
    let home = tempfile::tempdir()?;
    let dir = home.path().join("share/man/man1");
    let dir_arg = dir.to_str().ok_or("temp path is not UTF-8")?;
    let o = ospdeck(home.path(), &["man", "--dir", dir_arg])?;
    assert_ok(&o);
    let said = text(&o.stdout);
    let expected_pages = commands()
        .iter()
        .filter(|(path, _)| !path.split(' ').any(|w| w == "help"))
        .count();
    let pages: Vec<_> = std::fs::read_dir(&dir)?.filter_map(Result::ok).collect();
    assert_eq!(pages.len(), expected_pages, "{said}");
    for name in [
        "ospdeck.1",
        "ospdeck-run-list.1",
        "ospdeck-completions.1",
        "ospdeck-man.1",
    ] {
        let page = std::fs::read_to_string(dir.join(name))?;
        assert!(
            page.lines().any(|l| l.starts_with(".TH ")),
            "{name}:\n{page}"
        );
        assert!(said.contains(name), "{name} not reported: {said}");
    }
    let run_list = std::fs::read_to_string(dir.join("ospdeck-run-list.1"))?;
    assert!(run_list.contains(".SH \"GLOBAL OPTIONS\""), "{run_list}");
    // man itself renders the page (man-db is a test dependency: .ci/run installs it).
    let man = Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(dir.join("ospdeck-run-list.1"))
        .env("MANWIDTH", "100")
        .output()
        .map_err(|e| {
            format!("`man` is needed to render the pages (apt-get install man-db): {e}")
        })?;
    assert_ok(&man);
    assert!(
        text(&man.stdout).contains("newest first"),
        "{}",
        text(&man.stdout)
    );

    // Piped without --dir: the top page on stdout.
    let o = ospdeck(home.path(), &["man"])?;
    assert_ok(&o);
    assert!(
        text(&o.stdout)
            .lines()
            .any(|l| l.starts_with(".TH ospdeck 1")),
        "{}",
        text(&o.stdout)
    );

    // A directory that cannot be made is refused, in one line.
    let file = home.path().join("a-file");
    std::fs::write(&file, "")?;
    let under_file = file.join("man1");
    let o = ospdeck(
        home.path(),
        &["man", "--dir", under_file.to_str().ok_or("not UTF-8")?],
    )?;
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.starts_with("error: cannot write manual pages to") && err.lines().count() == 1,
        "{err}"
    );
    Ok(())
}
