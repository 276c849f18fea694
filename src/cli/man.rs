//! `ospdeck man`: manual pages from the command tree (clap_mangen), one per command.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory};
use clap_mangen::Man;

use super::output::emit;
use super::{Cli, CliError, CliResult};
use crate::stdio::stdout_line;

#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// Write ospdeck.1 and a page per subcommand (ospdeck-run-list.1, …) into DIR, made if
    /// missing (e.g. ~/.local/share/man/man1). Without it, ospdeck.1 goes to stdout when that is
    /// not a terminal: `ospdeck man | man -l -`
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub dir: Option<PathBuf>,
}

/// The command tree as the pages show it: `help` is not a command of its own there.
fn tree() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

pub fn man(json: bool, args: &ManArgs) -> CliResult<ExitCode> {
    let Some(dir) = &args.dir else {
        if std::io::stdout().is_terminal() {
            return Err(CliError::usage(
                "`ospdeck man` writes the pages with --dir DIR, or ospdeck.1 to a pipe: \
                 `ospdeck man --dir ~/.local/share/man/man1` or `ospdeck man | man -l -`",
            ));
        }
        let mut page = Vec::new();
        Man::new(tree())
            .render(&mut page)
            .map_err(|e| CliError::failed(format!("cannot render the manual page: {e}")))?;
        let _ = stdout_line(String::from_utf8_lossy(&page).trim_end());
        return Ok(ExitCode::SUCCESS);
    };
    let written = write_pages(dir)?;
    let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    emit(json, &names, || {
        let mut said = format!("wrote {} manual pages to {}:", names.len(), dir.display());
        for name in written.iter().filter_map(|p| p.file_name()) {
            said.push_str("\n  ");
            said.push_str(&name.to_string_lossy());
        }
        said
    });
    Ok(ExitCode::SUCCESS)
}

/// Writes a page for the program and for each command under it, parents first.
fn write_pages(dir: &Path) -> CliResult<Vec<PathBuf>> {
    let refuse = |e: std::io::Error| {
        CliError::failed(format!(
            "cannot write manual pages to {}: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(refuse)?;
    fn write(cmd: clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> std::io::Result<()> {
        let children: Vec<clap::Command> = cmd
            .get_subcommands()
            .filter(|c| !c.is_hide_set())
            .cloned()
            .collect();
        written.push(Man::new(cmd).generate_to(dir)?);
        children
            .into_iter()
            .try_for_each(|child| write(child, dir, written))
    }
    let mut written = Vec::new();
    write(tree(), dir, &mut written).map_err(refuse)?;
    Ok(written)
}
