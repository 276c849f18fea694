//! `ospdeck completions SHELL`, and the dynamic completion it registers.
//!
//! One mechanism for every shell: the printed script calls `ospdeck` back with `COMPLETE=<shell>`
//! and the words typed so far, and clap_complete's engine answers from the command tree plus the
//! candidate functions below, which read the configured store. They read only: the store is
//! opened read-only (nothing is created or migrated), and a store that is missing, unmigrated,
//! unreachable or slow completes nothing, quietly, within [`STORE_DEADLINE`].

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Duration;

use clap::{CommandFactory, ValueEnum};
use clap_complete::CompleteEnv;
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};

use super::{Cli, CliError, CliResult};
use crate::config;
use crate::ops::{Ops, OpsResult, RunQuery};
use crate::root;
use crate::store::StoreOptions;

/// The environment variable that turns a start of `ospdeck` into a completion request.
const COMPLETE_VAR: &str = "COMPLETE";
/// How long a completion may wait for the store: a shell blocks on it at every Tab.
const STORE_DEADLINE: Duration = Duration::from_secs(2);
/// Run ids offered: the newest this many.
const RUN_CANDIDATES: i64 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

impl Shell {
    fn completer(self) -> &'static dyn EnvCompleter {
        match self {
            Self::Bash => &Bash,
            Self::Zsh => &Zsh,
            Self::Fish => &Fish,
            Self::Elvish => &Elvish,
            Self::Powershell => &Powershell,
        }
    }
}

/// The store a completion reads: `--db` and `--as` as typed on the line being completed, since
/// a candidate function sees no other argument.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct LineContext {
    db: Option<String>,
    as_user: Option<String>,
}

static LINE: OnceLock<LineContext> = OnceLock::new();

impl LineContext {
    /// `words` are the typed words (the program first); `current` is the index of the word
    /// being completed, which is left out as it is still being typed.
    fn from_words(words: &[OsString], current: Option<usize>) -> Self {
        let mut context = Self::default();
        let typed: Vec<&str> = words
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(i, _)| Some(*i) != current)
            .filter_map(|(_, w)| w.to_str())
            .collect();
        let mut iter = typed.iter().copied();
        while let Some(word) = iter.next() {
            if word == "--" {
                break;
            }
            for (flag, slot) in [("--db", &mut context.db), ("--as", &mut context.as_user)] {
                if word == flag {
                    *slot = iter.next().map(str::to_owned);
                } else if let Some(value) =
                    word.strip_prefix(flag).and_then(|r| r.strip_prefix('='))
                {
                    *slot = Some(value.to_owned());
                }
            }
        }
        context
    }
}

/// Answers a completion request (`COMPLETE=<shell> ospdeck -- ospdeck …`) and exits; returns
/// at once when the process was started for anything else. Must run before anything is printed.
pub fn complete_if_requested() {
    let requested = std::env::var_os(COMPLETE_VAR).is_some_and(|v| !v.is_empty() && v != "0");
    if !requested {
        return;
    }
    let words: Vec<OsString> = std::env::args_os()
        .skip_while(|a| a != "--")
        .skip(1)
        .collect();
    // Every built-in shell's script passes the index of the word being completed this way
    // (fish's completes the last word, which is then the only one that can be partial).
    let current = std::env::var("_CLAP_COMPLETE_INDEX")
        .ok()
        .and_then(|i| i.parse().ok())
        .or(words.len().checked_sub(1));
    let _ = LINE.set(LineContext::from_words(&words, current));
    CompleteEnv::with_factory(Cli::command)
        .var(COMPLETE_VAR)
        .complete();
}

/// `ospdeck completions SHELL`: the registration script, the same as `COMPLETE=SHELL ospdeck`
/// prints. It calls back the program as it was invoked here (made absolute when given as a path),
/// so `source <(./target/debug/ospdeck completions bash)` completes with that binary.
pub async fn completions(shell: Shell) -> CliResult<ExitCode> {
    let invoked = std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "ospdeck".into());
    let program = if invoked.components().count() > 1 {
        std::env::current_dir()
            .map(|dir| dir.join(&invoked))
            .unwrap_or(invoked)
    } else {
        invoked
    };
    let mut script = Vec::new();
    shell
        .completer()
        .write_registration(
            COMPLETE_VAR,
            "ospdeck",
            "ospdeck",
            &program.to_string_lossy(),
            &mut script,
        )
        .map_err(|e| CliError::failed(format!("cannot write the completion script: {e}")))?;
    let script = String::from_utf8_lossy(&script);
    let _ = crate::stdio::stdout_line(script.trim_end());
    Ok(ExitCode::SUCCESS)
}

/// Candidates from the rows `query` reads, or none when the store cannot answer within the
/// deadline.
fn from_store<T, Q>(query: Q, describe: fn(T) -> CompletionCandidate) -> Vec<CompletionCandidate>
where
    Q: AsyncFnOnce(&Ops) -> OpsResult<Vec<T>>,
{
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let context = LINE.get().cloned().unwrap_or_default();
    let rows = runtime.block_on(async {
        let work = async {
            let paths = config::Paths::platform().ok()?;
            let resolved =
                config::resolve(context.db.as_deref(), |k| std::env::var(k).ok(), paths).ok()?;
            let options = StoreOptions {
                read_only: true,
                max_connections: 1,
                ..StoreOptions::default()
            };
            let ops = root::connect(&resolved, &options, context.as_user.as_deref())
                .await
                .ok()?;
            query(&ops).await.ok()
        };
        tokio::time::timeout(STORE_DEADLINE, work)
            .await
            .ok()
            .flatten()
    });
    // A connection still being attempted must not hold the shell past the deadline.
    runtime.shutdown_background();
    rows.unwrap_or_default().into_iter().map(describe).collect()
}

fn candidate(value: impl Into<String>, help: impl Into<String>) -> CompletionCandidate {
    CompletionCandidate::new(value.into()).help(Some(help.into().into()))
}

/// Project keys, described by name.
pub(crate) fn project_keys() -> Vec<CompletionCandidate> {
    from_store(
        async |ops: &Ops| ops.list_projects().await,
        |p| candidate(p.key, p.name),
    )
}

/// Workflow names of every project (a name may repeat across projects; offered once).
pub(crate) fn workflow_names() -> Vec<CompletionCandidate> {
    let query = async |ops: &Ops| {
        let mut workflows = ops.list_workflows(None).await?;
        workflows.sort_by(|a, b| a.name.cmp(&b.name));
        workflows.dedup_by(|a, b| a.name == b.name);
        Ok(workflows)
    };
    from_store(query, |w| {
        candidate(w.name, format!("{} in {}", w.workflow_type, w.project))
    })
}

/// Services by schema, the name every service command takes.
pub(crate) fn service_schemas() -> Vec<CompletionCandidate> {
    from_store(
        async |ops: &Ops| ops.list_services().await,
        |s| candidate(s.service.schema, s.service.name),
    )
}

/// Template names, described by their default version.
pub(crate) fn template_names() -> Vec<CompletionCandidate> {
    from_store(
        async |ops: &Ops| ops.list_templates().await,
        |t| {
            let help = match &t.default_version {
                Some(v) => format!("default {v}"),
                None => format!("{} version(s)", t.versions),
            };
            candidate(t.name, help)
        },
    )
}

/// The newest runs' ids, described by workflow and status.
pub(crate) fn run_ids() -> Vec<CompletionCandidate> {
    let query = async |ops: &Ops| {
        let newest = RunQuery {
            limit: Some(RUN_CANDIDATES),
            ..RunQuery::default()
        };
        ops.list_runs(&newest).await
    };
    from_store(query, |r| {
        candidate(r.id.to_string(), format!("{} {}", r.workflow, r.status))
    })
}

/// `add = …` values for the arguments that take these names.
pub(crate) fn projects() -> ArgValueCandidates {
    ArgValueCandidates::new(project_keys)
}

pub(crate) fn workflows() -> ArgValueCandidates {
    ArgValueCandidates::new(workflow_names)
}

pub(crate) fn services() -> ArgValueCandidates {
    ArgValueCandidates::new(service_schemas)
}

pub(crate) fn templates() -> ArgValueCandidates {
    ArgValueCandidates::new(template_names)
}

pub(crate) fn runs() -> ArgValueCandidates {
    ArgValueCandidates::new(run_ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<OsString> {
        line.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn the_line_names_its_store_and_user() {
        let context = LineContext::from_words(
            &words("ospdeck --db /tmp/x.db run list --as=alice --project a"),
            Some(7),
        );
        assert_eq!(context.db.as_deref(), Some("/tmp/x.db"));
        assert_eq!(context.as_user.as_deref(), Some("alice"));
    }

    #[test]
    fn the_word_being_typed_and_words_after_the_escape_are_not_read() {
        let partial = LineContext::from_words(&words("ospdeck --db=/tmp/x"), Some(1));
        assert_eq!(partial, LineContext::default());
        let escaped = LineContext::from_words(&words("ospdeck run -- --db y"), Some(4));
        assert_eq!(escaped, LineContext::default());
        let equals_form = LineContext::from_words(&words("ospdeck --db=/a.db run"), Some(2));
        assert_eq!(equals_form.db.as_deref(), Some("/a.db"));
    }
}
