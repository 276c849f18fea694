//! The `:` command line. Every command is a row of `COMMANDS`; dispatch, Tab completion and the
//! help overlay's list all read that one table, so a new command is a new row and its arm in
//! `App::run_command`.

use crossterm::event::{KeyCode, KeyEvent};

use super::app::{App, Effect, Level, Mode, Pane, RunsQuery, edit_line};
use super::panes::{Goto, Reply};
use crate::domain::run::RunStatus;

/// What a command does; `App::run_command` has one arm per verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Runs,
    Run,
    Overview,
    Services,
    Service,
    Manifest,
    Template,
    Templates,
    Audit,
    Messages,
    Help,
    Sort,
    Quit,
}

/// What a command takes after its name, which decides what Tab offers there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    None,
    /// A run status, or any filter text (the rest of the line).
    RunsFilter,
    RunId,
    /// A service's schema.
    Schema,
    /// A template's name.
    Template,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    pub verb: Verb,
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub arg: Arg,
    /// The argument as help writes it (`[STATUS|FILTER]`); empty when there is none.
    pub usage: &'static str,
    pub help: &'static str,
}

const fn command(
    verb: Verb,
    name: &'static str,
    aliases: &'static [&'static str],
    arg: Arg,
    usage: &'static str,
    help: &'static str,
) -> Command {
    Command {
        verb,
        name,
        aliases,
        arg,
        usage,
        help,
    }
}

pub const COMMANDS: &[Command] = &[
    command(
        Verb::Runs,
        "runs",
        &[],
        Arg::RunsFilter,
        "[STATUS|FILTER]",
        "the run list: all, one status, or filtered by the rest of the line",
    ),
    command(Verb::Run, "run", &[], Arg::RunId, "ID", "open one run"),
    command(
        Verb::Overview,
        "overview",
        &[],
        Arg::None,
        "",
        "queues, workers and the last hour",
    ),
    command(
        Verb::Services,
        "services",
        &[],
        Arg::None,
        "",
        "the service list",
    ),
    command(
        Verb::Service,
        "service",
        &[],
        Arg::Schema,
        "[SCHEMA]",
        "a service's detail (drift, deployments, queues)",
    ),
    command(
        Verb::Manifest,
        "manifest",
        &["manifests"],
        Arg::Schema,
        "[SCHEMA]",
        "a service's manifest versions (none: the last one shown)",
    ),
    command(
        Verb::Template,
        "template",
        &[],
        Arg::Template,
        "[NAME]",
        "the template versions, that template's selected",
    ),
    command(
        Verb::Templates,
        "templates",
        &[],
        Arg::None,
        "",
        "the template versions",
    ),
    command(
        Verb::Audit,
        "audit",
        &[],
        Arg::None,
        "",
        "the audit trail: Enter shows a change's before and after, / filters",
    ),
    command(
        Verb::Messages,
        "messages",
        &["mes"],
        Arg::None,
        "",
        "every message of this session, in full",
    ),
    command(Verb::Help, "help", &[], Arg::None, "", "keys and commands"),
    command(
        Verb::Sort,
        "sort",
        &[],
        Arg::None,
        "COLUMN [desc]",
        "sort this pane's list (o and O cycle and reverse)",
    ),
    command(Verb::Quit, "q", &["quit"], Arg::None, "", "quit"),
];

/// Lines the history keeps (in the session and in the state file).
pub const HISTORY: usize = 200;

/// The command named `word`: by name or alias, else by a prefix only one name starts with.
pub fn find(word: &str) -> Option<&'static Command> {
    let word = word.to_lowercase();
    let exact = COMMANDS
        .iter()
        .find(|c| c.name == word || c.aliases.contains(&word.as_str()));
    exact.or_else(|| {
        let mut starting = COMMANDS.iter().filter(|c| c.name.starts_with(&word));
        match (starting.next(), starting.next()) {
            (Some(one), None) if !word.is_empty() => Some(one),
            _ => None,
        }
    })
}

/// What Tab can offer for arguments: names from the panes' loaded data.
#[derive(Debug, Clone, Default)]
pub struct Known<'a> {
    /// None until the Services pane has loaded its list.
    pub schemas: Option<Vec<&'a str>>,
    /// None until the Templates pane has loaded its versions.
    pub templates: Option<Vec<&'a str>>,
}

/// Where the word being completed starts in `line`, and what could go there, sorted. Err names
/// what must load before there is anything to offer.
pub fn candidates(line: &str, known: &Known) -> Result<(usize, Vec<String>), Arg> {
    let start = line.rfind(char::is_whitespace).map_or(0, |i| {
        i + line[i..].chars().next().map_or(1, char::len_utf8)
    });
    let word = line[start..].to_lowercase();
    let mut words = line.split_whitespace();
    let first = words.next().unwrap_or("");
    let before = line[..start].split_whitespace().count();
    let mut found: Vec<String> = if before == 0 {
        COMMANDS
            .iter()
            .map(|c| c.name.to_owned())
            .filter(|n| n.starts_with(&word))
            .collect()
    } else if before == 1 {
        let offered: Vec<&str> = match find(first).map(|c| c.arg) {
            Some(Arg::RunsFilter) => RunStatus::ALL.iter().map(|s| s.as_str()).collect(),
            Some(Arg::Schema) => known.schemas.clone().ok_or(Arg::Schema)?,
            Some(Arg::Template) => known.templates.clone().ok_or(Arg::Template)?,
            _ => Vec::new(),
        };
        offered
            .into_iter()
            .filter(|o| o.to_lowercase().starts_with(&word))
            .map(str::to_owned)
            .collect()
    } else {
        Vec::new()
    };
    found.sort();
    found.dedup();
    Ok((start, found))
}

/// The Tab candidates on the bottom line, and the one now in the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// Byte offset in the line where the completed word starts.
    pub start: usize,
    pub candidates: Vec<String>,
    pub chosen: usize,
}

/// The command line's memory besides its text (which `Mode::Command` holds): the history and
/// where Up/Down are in it, and the Tab candidates.
#[derive(Debug, Clone, Default)]
pub struct CommandLine {
    /// Oldest first.
    pub history: Vec<String>,
    /// The history entry on the line; None while the line is a new one.
    recall: Option<usize>,
    /// What was typed before the first Up, given back by Down past the newest entry.
    draft: String,
    pub completion: Option<Completion>,
}

impl CommandLine {
    /// Keeps `line` for Up to recall (not twice in a row).
    pub fn remember(&mut self, line: &str) {
        let line = line.trim();
        if line.is_empty() || self.history.last().is_some_and(|l| l == line) {
            return;
        }
        if self.history.len() == HISTORY {
            self.history.remove(0);
        }
        self.history.push(line.to_owned());
    }

    /// A history kept across sessions: one command a line, oldest first.
    pub fn load_history(&mut self, text: &str) {
        for line in text.lines() {
            self.remember(line);
        }
    }

    pub fn history_text(&self) -> String {
        let mut text = self.history.join("\n");
        text.push('\n');
        text
    }

    /// Forgets where Up/Down and Tab were: the line was edited, run or dropped.
    pub fn reset(&mut self) {
        self.recall = None;
        self.completion = None;
    }

    /// Up (`older`) or Down through the history; answers the line to show.
    fn recall(&mut self, text: &str, older: bool) -> Option<String> {
        self.completion = None;
        let last = self.history.len().checked_sub(1)?;
        let next = match (self.recall, older) {
            (None, true) => {
                self.draft = text.to_owned();
                Some(last)
            }
            (None, false) => return None,
            (Some(i), true) => Some(i.saturating_sub(1)),
            (Some(i), false) if i < last => Some(i + 1),
            (Some(_), false) => None,
        };
        self.recall = next;
        Some(match next {
            Some(i) => self.history.get(i).cloned().unwrap_or_default(),
            None => std::mem::take(&mut self.draft),
        })
    }

    /// Tab (`forward`) or Shift-Tab: the next candidate in the line; Err names what to load
    /// first.
    fn complete(&mut self, text: &mut String, known: &Known, forward: bool) -> Result<(), Arg> {
        if let Some(c) = self
            .completion
            .as_mut()
            .filter(|c| !c.candidates.is_empty())
        {
            let n = c.candidates.len();
            c.chosen = if forward {
                (c.chosen + 1) % n
            } else {
                (c.chosen + n - 1) % n
            };
            text.truncate(c.start);
            text.push_str(&c.candidates[c.chosen]);
            return Ok(());
        }
        let (start, found) = candidates(text, known)?;
        text.truncate(start);
        match found.as_slice() {
            [] => {}
            [one] => {
                text.push_str(one);
                // A whole command name that takes an argument: Tab next offers the argument.
                if start == 0 && find(one).is_some_and(|c| c.arg != Arg::None) {
                    text.push(' ');
                }
            }
            [first, ..] => {
                text.push_str(first);
                self.completion = Some(Completion {
                    start,
                    candidates: found,
                    chosen: 0,
                });
            }
        }
        Ok(())
    }
}

impl App {
    /// What Tab can offer from the data the panes hold.
    fn known(&self) -> Known<'_> {
        Known {
            schemas: self.services.loaded.then(|| {
                self.services
                    .list
                    .items()
                    .iter()
                    .map(|s| s.service.schema.as_str())
                    .collect()
            }),
            templates: self.templates.loaded.then(|| {
                self.templates
                    .list
                    .items()
                    .iter()
                    .map(|r| r.version.template.as_str())
                    .collect()
            }),
        }
    }

    /// A key while the command line is open.
    pub(super) fn on_command_key(&mut self, key: KeyEvent, mut text: String) -> Vec<Effect> {
        let mut effects = Vec::new();
        match key.code {
            KeyCode::Enter => {
                self.command_line.reset();
                return self.run_command(&text);
            }
            KeyCode::Esc => {
                self.command_line.reset();
                return Vec::new();
            }
            KeyCode::Tab | KeyCode::BackTab => {
                let forward = key.code == KeyCode::Tab;
                let mut line = std::mem::take(&mut self.command_line);
                let done = line.complete(&mut text, &self.known(), forward);
                self.command_line = line;
                // Names Tab could offer are not loaded yet: load them, and say so.
                match done {
                    Err(Arg::Schema) => {
                        self.message = Some((Level::Info, "loading services…".into()));
                        effects.push(Effect::LoadServices);
                    }
                    Err(Arg::Template) => {
                        self.message = Some((Level::Info, "loading templates…".into()));
                        effects.push(Effect::LoadTemplates);
                    }
                    _ => {}
                }
            }
            KeyCode::Up | KeyCode::Down => {
                if let Some(line) = self.command_line.recall(&text, key.code == KeyCode::Up) {
                    text = line;
                }
            }
            _ => {
                self.command_line.reset();
                edit_line(&mut text, &key);
            }
        }
        self.mode = Mode::Command(text);
        effects
    }

    /// Runs one command line (`runs failed`, `service billing`, `q`).
    pub(super) fn run_command(&mut self, line: &str) -> Vec<Effect> {
        let line = line.trim();
        if line.is_empty() {
            return Vec::new();
        }
        self.command_line.remember(line);
        let (verb, rest) = line
            .split_once(char::is_whitespace)
            .map_or((line, ""), |(v, r)| (v, r.trim()));
        let Some(command) = find(verb) else {
            return self.fail(format!(
                "unknown command `{verb}`: one of {} (:help says more)",
                COMMANDS
                    .iter()
                    .map(|c| c.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        let arg = (!rest.is_empty()).then_some(rest);
        let effects = self.dispatch(command.verb, arg);
        // A command names where to go, as the pane keys do: a fresh start, not a jump to come
        // back from.
        if !matches!(
            command.verb,
            Verb::Help | Verb::Messages | Verb::Audit | Verb::Sort
        ) {
            self.back.clear();
        }
        effects
    }

    fn dispatch(&mut self, verb: Verb, arg: Option<&str>) -> Vec<Effect> {
        match (verb, arg) {
            (Verb::Quit, _) => {
                self.quit = true;
                Vec::new()
            }
            // `:runs [STATUS]` names the whole filter: a text filter from before does not linger.
            (Verb::Runs, None) => self.apply(Reply::goto(Goto::Runs(RunsQuery::default()))),
            (Verb::Runs, Some(text)) => match text.parse::<RunStatus>() {
                Ok(status) => self.apply(Reply::goto(Goto::Runs(RunsQuery {
                    status: Some(status),
                    ..RunsQuery::default()
                }))),
                // One bare word is most likely a mistyped status; terms and phrases are filters.
                Err(_) if !text.contains([' ', ':', '"']) => self.fail(format!(
                    "unknown status `{text}`: one of {}",
                    RunStatus::ALL
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                Err(_) => self.apply(Reply::goto(Goto::Runs(RunsQuery {
                    text: text.to_owned(),
                    ..RunsQuery::default()
                }))),
            },
            (Verb::Run, None) => self.fail("`:run` needs a run id (:run 42)".into()),
            (Verb::Run, Some(id)) => match id.parse::<i64>() {
                Ok(id) if id > 0 => {
                    self.pane = Pane::Runs;
                    self.runs.open_run(id)
                }
                _ => self.fail(format!("`{id}` is not a run id")),
            },
            (Verb::Overview, _) => self.switch_pane(Pane::Overview),
            (Verb::Services, _) | (Verb::Service, None) => self.switch_pane(Pane::Services),
            (Verb::Service | Verb::Manifest, Some(schema)) => {
                match crate::domain::service::check_schema_name(schema) {
                    // `:service NAME` opens the service's detail, `:manifest NAME` its versions.
                    Ok(()) if verb == Verb::Service => {
                        self.apply(Reply::goto(Goto::Service(schema.to_owned())))
                    }
                    Ok(()) => self.apply(Reply::goto(Goto::Manifests(schema.to_owned()))),
                    Err(e) => self.fail(e.0),
                }
            }
            (Verb::Manifest, None) => self.switch_pane(Pane::Manifests),
            (Verb::Template, Some(name)) => {
                self.templates.wanted = Some(name.to_owned());
                self.switch_pane(Pane::Templates)
            }
            (Verb::Template | Verb::Templates, _) => self.switch_pane(Pane::Templates),
            (Verb::Help, _) => self.open_help(),
            (Verb::Sort, None) => {
                self.fail("`:sort` needs a column (:sort name, :sort beat desc)".into())
            }
            (Verb::Sort, Some(rest)) => {
                let mut words = rest.split_whitespace();
                let column = words.next().unwrap_or_default();
                let descending = matches!(words.next(), Some("desc" | "down" | "reverse"));
                match self.sort_list(column, descending) {
                    Ok(()) => Vec::new(),
                    Err(e) => self.fail(e),
                }
            }
            (Verb::Messages, _) => self.open_messages(),
            (Verb::Audit, _) => self.open_audit(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_found_by_name_alias_or_unique_prefix() {
        assert_eq!(find("runs").map(|c| c.verb), Some(Verb::Runs));
        assert_eq!(find("run").map(|c| c.verb), Some(Verb::Run));
        assert_eq!(find("mes").map(|c| c.verb), Some(Verb::Messages));
        assert_eq!(find("quit").map(|c| c.verb), Some(Verb::Quit));
        assert_eq!(find("ov").map(|c| c.verb), Some(Verb::Overview));
        assert_eq!(find("temp"), None, "template and templates");
        assert_eq!(find(""), None);
    }

    #[test]
    fn every_command_has_a_distinct_name_and_help() {
        let mut names: Vec<&str> = COMMANDS
            .iter()
            .flat_map(|c| std::iter::once(c.name).chain(c.aliases.iter().copied()))
            .collect();
        let all = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all);
        assert!(COMMANDS.iter().all(|c| !c.help.is_empty()));
    }

    #[test]
    fn candidates_come_from_the_table_then_the_data() {
        let known = Known {
            schemas: Some(vec!["telecom_billing", "telecom_sms", "payroll"]),
            templates: None,
        };
        assert_eq!(
            candidates("te", &known),
            Ok((0, vec!["template".to_owned(), "templates".to_owned()]))
        );
        assert_eq!(
            candidates("service tel", &known),
            Ok((
                8,
                vec!["telecom_billing".to_owned(), "telecom_sms".to_owned()]
            ))
        );
        assert_eq!(
            candidates("runs f", &known),
            Ok((5, vec!["failed".to_owned()]))
        );
        assert_eq!(candidates("template x", &known), Err(Arg::Template));
        assert_eq!(candidates("run 4", &known), Ok((4, Vec::new())));
    }

    #[test]
    fn tab_cycles_and_up_recalls() {
        let known = Known::default();
        let mut line = CommandLine::default();
        let mut text = "ru".to_owned();
        assert_eq!(line.complete(&mut text, &known, true), Ok(()));
        assert_eq!(text, "run");
        assert_eq!(line.complete(&mut text, &known, true), Ok(()));
        assert_eq!(text, "runs");
        assert_eq!(line.complete(&mut text, &known, false), Ok(()));
        assert_eq!(text, "run");
        line.reset();
        let mut text = "aud".to_owned();
        assert_eq!(line.complete(&mut text, &known, true), Ok(()));
        assert_eq!(text, "audit", "no argument: no space after it");

        for l in ["runs failed", "audit", "audit", "help"] {
            line.remember(l);
        }
        assert_eq!(line.history, vec!["runs failed", "audit", "help"]);
        assert_eq!(line.recall("draft", true).as_deref(), Some("help"));
        assert_eq!(line.recall("help", true).as_deref(), Some("audit"));
        assert_eq!(line.recall("audit", true).as_deref(), Some("runs failed"));
        assert_eq!(
            line.recall("runs failed", true).as_deref(),
            Some("runs failed")
        );
        assert_eq!(line.recall("", false).as_deref(), Some("audit"));
        assert_eq!(line.recall("", false).as_deref(), Some("help"));
        assert_eq!(line.recall("", false).as_deref(), Some("draft"));
        assert_eq!(line.recall("draft", false), None);
    }
}
