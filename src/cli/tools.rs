//! `tool …` and `advisory …`.

use std::process::ExitCode;

use clap::Subcommand;

use super::CliResult;
use super::output::{emit, opt, table, time};
use crate::domain::tool::{NewAdvisory, Severity};
use crate::ops::Ops;

#[derive(Debug, Subcommand)]
pub enum ToolCommand {
    /// Register a tool version and its image
    Add {
        /// Tool name
        name: String,
        /// Tool version, e.g. 17.0
        version: String,
        /// Its container image reference
        #[arg(long)]
        image: String,
    },
    /// Registered tool versions and their images
    List,
}

#[derive(Debug, Subcommand)]
pub enum AdvisoryCommand {
    /// Record a warning for upgrades from one version of a tool to another
    Add {
        /// Tool name
        #[arg(long)]
        tool: String,
        /// The version the change starts after: an upgrade from it or older…
        #[arg(long = "from", value_name = "VERSION")]
        from_version: String,
        /// …to this version or newer crosses the advisory
        #[arg(long = "to", value_name = "VERSION")]
        to_version: String,
        /// info, warning or breaking (breaking upgrades need --acknowledge to be queued)
        #[arg(long, value_parser = parse_severity)]
        severity: Severity,
        /// One-line summary of the warning
        #[arg(long)]
        title: String,
        /// How to upgrade safely (text or a link)
        #[arg(long)]
        guide: Option<String>,
    },
    /// Recorded upgrade advisories
    List {
        /// Only this tool's advisories
        #[arg(long)]
        tool: Option<String>,
    },
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse().map_err(|e: crate::domain::InvalidInput| e.0)
}

pub async fn tool(ops: &Ops, json: bool, cmd: &ToolCommand) -> CliResult<ExitCode> {
    match cmd {
        ToolCommand::Add {
            name,
            version,
            image,
        } => {
            let tool = ops.add_tool(name, version, image).await?;
            emit(json, &tool, || {
                format!("added {} {}", tool.name, tool.version)
            });
        }
        ToolCommand::List => {
            let tools = ops.list_tools().await?;
            emit(json, &tools, || {
                table(
                    &["NAME", "VERSION", "IMAGE", "ADDED"],
                    tools.iter().map(|t| {
                        vec![
                            t.name.clone(),
                            t.version.clone(),
                            t.image.clone(),
                            time(&t.created_at),
                        ]
                    }),
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn advisory(ops: &Ops, json: bool, cmd: &AdvisoryCommand) -> CliResult<ExitCode> {
    match cmd {
        AdvisoryCommand::Add {
            tool,
            from_version,
            to_version,
            severity,
            title,
            guide,
        } => {
            let new = NewAdvisory::new(
                tool,
                from_version,
                to_version,
                *severity,
                title,
                guide.as_deref(),
            )?;
            let a = ops.add_advisory(&new).await?;
            emit(json, &a, || {
                format!(
                    "advisory {} added: {} {}→{} ({})",
                    a.id, a.tool_name, a.from_version, a.to_version, a.severity
                )
            });
        }
        AdvisoryCommand::List { tool } => {
            let list = ops.advisories(tool.as_deref()).await?;
            emit(json, &list, || {
                table(
                    &["ID", "TOOL", "FROM", "TO", "SEVERITY", "TITLE", "GUIDE"],
                    list.iter().map(|a| {
                        vec![
                            a.id.to_string(),
                            a.tool_name.clone(),
                            a.from_version.clone(),
                            a.to_version.clone(),
                            a.severity.to_string(),
                            a.title.clone(),
                            opt(&a.guide_url),
                        ]
                    }),
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
