//! The scriptable front end: parses arguments, calls `ops`, prints tables or `--json`.

mod access;
mod bench;
pub(crate) mod completions;
mod console;
mod error;
mod man;
mod output;
mod queue;
mod runs_bulk;
mod serve;
pub(crate) mod services;
pub(crate) mod templates;
mod tools;
mod user_keys;
mod worker;

pub use error::{CliError, ErrorKind};
pub use output::emit as emit_report;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::config::{Resolved, UrlSource};
use crate::ops::Ops;
use crate::root::{self, WhenMissing, with_store_file};
use crate::stdio::{self, stderr_line};
use crate::store::{self, Store, StoreOptions};

pub use completions::Shell;
pub use queue::{BenchArgs, RunCommand, WorkflowCommand};

/// The heading the global options stand under in every command's help, apart from its own.
pub(crate) const GLOBAL_OPTIONS: &str = "Global options";

#[derive(Debug, Parser)]
#[command(
    name = "ospdeck",
    version,
    about = "Operator console and control plane for manifest-driven services"
)]
pub struct Cli {
    /// Database URL: sqlite://PATH, a file path, or postgres://… (else OSPDECK_DATABASE_URL,
    /// DATABASE_URL, the config file, then the embedded SQLite file)
    #[arg(long, global = true, value_name = "URL", help_heading = GLOBAL_OPTIONS)]
    pub db: Option<String>,
    /// Print machine-readable JSON (stable field names)
    #[arg(long, global = true, help_heading = GLOBAL_OPTIONS)]
    pub json: bool,
    /// Act as this user where the store cannot know it (SQLite only; default: the OS user). The
    /// user's project roles apply unless it owns the database file
    #[arg(long = "as", global = true, value_name = "USER", help_heading = GLOBAL_OPTIONS)]
    pub as_user: Option<String>,
    /// Open the store read-only: any write is refused by the database itself
    #[arg(long, global = true, help_heading = GLOBAL_OPTIONS)]
    pub read_only: bool,
    /// The console ignores the mouse (no clicks or wheel; the terminal keeps its own selection)
    #[arg(long, global = true, help_heading = GLOBAL_OPTIONS)]
    pub no_mouse: bool,
    /// Colour status cells of tables: auto (on a terminal, unless NO_COLOR is set), always (e.g.
    /// for `| less -R`) or never. JSON is never coloured
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "WHEN",
        default_value_t = output::ColorChoice::Auto,
        help_heading = GLOBAL_OPTIONS
    )]
    pub color: output::ColorChoice,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The console, read-only: the store is opened read-only and no action key is bound
    Monitor,
    /// Seed a demo workspace into the store, then open the console with a worker keeping it moving
    Demo(console::DemoArgs),
    /// Show which store is in use, where files live, and whether the store is ready
    Doctor,
    /// Database migrations
    #[command(subcommand)]
    Db(DbCommand),
    /// Projects (workspaces)
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Workflows a worker can execute
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// The run queue
    #[command(subcommand)]
    Run(RunCommand),
    /// Services: a schema, a governed manifest, workflows and a worker
    #[command(subcommand)]
    Service(services::ServiceCommand),
    /// Governed manifests of a service
    #[command(subcommand)]
    Manifest(services::ManifestCommand),
    /// Deploy a service's worker with the configured deployer ([deployer] in config.toml)
    Deploy {
        /// The service's schema
        #[arg(add = completions::services())]
        service: String,
    },
    /// The worker registry: deployment status and heartbeat of each service's worker
    Workers,
    /// Versioned template bundles: publish, lifecycle, resolve
    #[command(subcommand)]
    Template(templates::TemplateCommand),
    /// Remove artifact-store objects no template version references (a dry run unless --delete)
    Gc(templates::GcArgs),
    /// Project members and their roles
    #[command(subcommand)]
    Member(access::MemberCommand),
    /// Users' SSH keys, which `ospdeck serve` signs in with
    #[command(subcommand)]
    User(user_keys::UserCommand),
    /// Who you are to the store, and your role in each project
    Whoami,
    /// The audit trail, newest first
    Audit {
        /// Only events of this project (its key)
        #[arg(long, value_name = "KEY", add = completions::projects())]
        project: Option<String>,
        /// Entity type: project, workflow, service, manifest, template, worker, membership, …
        #[arg(long)]
        entity: Option<String>,
        /// Print at most this many events
        #[arg(long, value_name = "N")]
        limit: Option<i64>,
    },
    /// Tool versions and their images
    #[command(subcommand)]
    Tool(tools::ToolCommand),
    /// Upgrade advisories between tool versions
    #[command(subcommand)]
    Advisory(tools::AdvisoryCommand),
    /// Claim and execute runs until stopped (SIGTERM/SIGINT finish or release what is held)
    Worker(worker::WorkerArgs),
    /// Serve the console over SSH: a registered key (`user key add`) names the user, whose roles apply
    Serve(serve::ServeArgs),
    /// Benchmarks that print figures
    #[command(subcommand)]
    Bench(BenchArgs),
    /// Print the shell script that completes commands, options and names from the store
    Completions {
        /// The shell to complete in
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Write manual pages: ospdeck.1 and one per subcommand
    Man(man::ManArgs),
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending migrations
    Migrate,
    /// List migrations and whether each is applied
    Status,
    /// Revert the newest applied migration
    Down,
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project
    Create {
        /// Key (also the slug): lower-case letters, digits, '_' and '-'
        key: String,
        /// Display name (default: the key)
        #[arg(long)]
        name: Option<String>,
    },
    /// List projects
    List,
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// This process's command line. A bad one prints clap's usage and exits 2; under `--json` the
/// error is one JSON object on stderr instead, like every other error (`--help` and `--version`
/// print and exit 0 either way).
///
/// Started by a shell to complete a command line (`COMPLETE=<shell>`), the process answers that
/// and exits here instead.
pub fn parse_args() -> Cli {
    completions::complete_if_requested();
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind as Clap;
            let wants_json = std::env::args_os()
                .skip(1)
                .take_while(|a| a != "--")
                .any(|a| a == "--json");
            if wants_json && !matches!(e.kind(), Clap::DisplayHelp | Clap::DisplayVersion) {
                let message = e.to_string();
                let first = message
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("bad command line")
                    .trim_start_matches("error: ");
                stderr_line(&CliError::usage(first).render(true));
                std::process::exit(ErrorKind::Usage.exit_status().into());
            }
            e.exit()
        }
    }
}

pub async fn run(cli: Cli) -> ExitCode {
    let json = cli.json;
    output::set_color(cli.color);
    let code = match dispatch(cli).await {
        Ok(code) => code,
        Err(error) => {
            tracing::warn!(message = %error.message, kind = error.kind.as_str(), "command failed");
            stderr_line(&error.render(json));
            return error.kind.exit_code();
        }
    };
    match stdio::stdout_failure() {
        Some(message) => {
            stderr_line(&format!("error: cannot write the output: {message}"));
            ExitCode::FAILURE
        }
        None => code,
    }
}

/// Resolves the configuration the same way for every command (see [`root::resolve_config`]).
pub fn resolve_config(cli: &Cli) -> CliResult<Resolved> {
    Ok(root::resolve_config(cli.db.as_deref())?)
}

/// Opens the store for a command (see [`root::open_store`]).
pub async fn open_store(
    resolved: &Resolved,
    options: &StoreOptions,
    require_migrated: bool,
) -> CliResult<Arc<dyn Store>> {
    Ok(root::open_store(resolved, options, require_migrated).await?)
}

/// `Ops` on the configured store, as `--as` names or the store knows (see [`root::connect`]).
async fn connect(cli: &Cli, options: &StoreOptions) -> CliResult<Ops> {
    let resolved = resolve_config(cli)?;
    Ok(root::connect(&resolved, options, cli.as_user.as_deref()).await?)
}

/// Commands that exist to write, which `--read-only` refuses before opening anything.
fn only_writes(command: &Command) -> Option<&'static str> {
    match command {
        Command::Db(DbCommand::Migrate) => Some("db migrate"),
        Command::Db(DbCommand::Down) => Some("db down"),
        Command::Demo(_) => Some("demo"),
        Command::Worker(_) => Some("worker"),
        Command::Bench(_) => Some("bench"),
        Command::Serve(_) => Some("serve"),
        _ => None,
    }
}

/// Whether this command runs for an SSH session (`ospdeck serve`'s exec): then files are not the
/// user's to name, and input comes only from stdin.
pub(crate) fn in_session() -> bool {
    std::env::var_os(root::SESSION_USER_ENV).is_some()
}

/// Refuses a file of the server's as the input of a command run for an SSH session.
pub(crate) fn session_reads(source: &str) -> CliResult {
    if source != "-" && in_session() {
        return Err(CliError::usage(format!(
            "{source}: in an SSH session input comes from stdin (`-`), not from the server's files"
        )));
    }
    Ok(())
}

/// What a command run for an SSH session (`ospdeck serve`'s exec) may not do: name another store
/// or user, or start something that outlives the request or needs this machine's terminal.
fn refused_in_session(cli: &Cli) -> Option<String> {
    if cli.db.is_some() {
        return Some("--db: a session uses the server's store".into());
    }
    if cli.as_user.is_some() {
        return Some("--as: in a session the key names the user".into());
    }
    let Some(command) = cli.command.as_ref() else {
        return Some(
            "the console opens with `ssh -t HOST` (and the monitor with `ssh -t HOST monitor`)"
                .into(),
        );
    };
    let name = match command {
        Command::Monitor => {
            return Some("the monitor opens with `ssh -t HOST monitor`".into());
        }
        Command::Template(templates::TemplateCommand::Publish { .. }) => {
            return Some(
                "`template publish` reads a directory of the server's; publish from your machine"
                    .into(),
            );
        }
        Command::Man(_) => "man",
        // The server's paths and store are not a session's business.
        Command::Doctor => "doctor",
        Command::Demo(_) => "demo",
        Command::Db(_) => "db",
        Command::Worker(_) => "worker",
        Command::Serve(_) => "serve",
        Command::Bench(_) => "bench",
        Command::Gc(_) => "gc",
        _ => return None,
    };
    Some(format!(
        "`{name}` is not run for an SSH session; run it on the server"
    ))
}

async fn dispatch(cli: Cli) -> CliResult<ExitCode> {
    if in_session()
        && let Some(why) = refused_in_session(&cli)
    {
        return Err(CliError::usage(why));
    }
    if cli.read_only {
        if let Some(name) = cli.command.as_ref().and_then(only_writes) {
            return Err(CliError::usage(format!(
                "`{name}` writes to the store, and --read-only writes nothing"
            )));
        }
    }
    let options = StoreOptions {
        read_only: cli.read_only,
        ..StoreOptions::default()
    };
    match &cli.command {
        None => console::console(&cli, cli.read_only).await,
        Some(Command::Monitor) => console::console(&cli, true).await,
        Some(Command::Demo(args)) => console::demo(&cli, args).await,
        Some(Command::Doctor) => doctor(&cli).await,
        Some(Command::Db(cmd)) => db(&cli, cmd).await,
        Some(Command::Project(cmd)) => {
            let ops = connect(&cli, &options).await?;
            match cmd {
                ProjectCommand::Create { key, name } => {
                    let project = ops.create_project(key, name.as_deref()).await?;
                    output::emit(cli.json, &project, || {
                        format!("created project {}", project.key)
                    });
                }
                ProjectCommand::List => {
                    let projects = ops.list_projects().await?;
                    output::emit(cli.json, &projects, || {
                        output::table(
                            &["KEY", "NAME", "STATUS", "CREATED"],
                            projects.iter().map(|p| {
                                vec![
                                    p.key.clone(),
                                    p.name.clone(),
                                    p.status.clone(),
                                    output::time(&p.created_at),
                                ]
                            }),
                        )
                    });
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Workflow(cmd)) => {
            queue::workflow(&connect(&cli, &options).await?, cli.json, cmd).await
        }
        Some(Command::Run(cmd)) => queue::run(&connect(&cli, &options).await?, cli.json, cmd).await,
        Some(Command::Service(cmd)) => {
            services::service(&connect(&cli, &options).await?, cli.json, cmd).await
        }
        Some(Command::Manifest(cmd)) => {
            services::manifest(&connect(&cli, &options).await?, cli.json, cmd).await
        }
        Some(Command::Deploy { service }) => {
            services::deploy(&cli, &connect(&cli, &options).await?, service).await
        }
        Some(Command::Workers) => {
            services::workers(&connect(&cli, &options).await?, cli.json).await
        }
        Some(Command::Member(cmd)) => {
            access::member(&connect(&cli, &options).await?, cli.json, cmd).await
        }
        Some(Command::User(cmd)) => {
            user_keys::user(&connect(&cli, &options).await?, cli.json, cmd).await
        }
        Some(Command::Whoami) => access::whoami(&connect(&cli, &options).await?, cli.json).await,
        Some(Command::Audit {
            project,
            entity,
            limit,
        }) => {
            access::audit(
                &connect(&cli, &options).await?,
                cli.json,
                project.as_deref(),
                entity.as_deref(),
                *limit,
            )
            .await
        }
        Some(Command::Gc(args)) => templates::gc(&cli, &options, args).await,
        Some(Command::Template(cmd)) => {
            templates::template(&cli, &connect(&cli, &options).await?, cmd).await
        }
        Some(Command::Tool(cmd)) => {
            tools::tool(&connect(&cli, &options).await?, cli.json, cmd).await
        }
        Some(Command::Advisory(cmd)) => {
            tools::advisory(&connect(&cli, &options).await?, cli.json, cmd).await
        }
        Some(Command::Worker(args)) => {
            let options = StoreOptions {
                max_connections: args.concurrency.saturating_add(4),
                ..options
            };
            let ops = connect(&cli, &options).await?;
            let deployer = services::deployer_settings(&cli)?;
            worker::run_cli(ops, args, deployer).await
        }
        Some(Command::Serve(args)) => serve::serve(&cli, args).await,
        Some(Command::Bench(args)) => queue::bench(&cli, args).await,
        Some(Command::Completions { shell }) => completions::completions(*shell).await,
        Some(Command::Man(args)) => man::man(cli.json, args),
    }
}

#[derive(Serialize)]
struct Doctor {
    store: String,
    source: UrlSource,
    config_file: String,
    config_file_exists: bool,
    data_dir: String,
    cache_dir: String,
    log_dir: String,
    reachable: bool,
    migrated: bool,
    problem: Option<String>,
}

async fn doctor(cli: &Cli) -> CliResult<ExitCode> {
    let resolved = resolve_config(cli)?;
    let mut report = Doctor {
        store: store::redact_url(&resolved.url),
        source: resolved.source,
        config_file: resolved.paths.config_file.display().to_string(),
        config_file_exists: resolved.paths.config_file.exists(),
        data_dir: resolved.paths.data_dir.display().to_string(),
        cache_dir: resolved.paths.cache_dir.display().to_string(),
        log_dir: resolved.paths.log_dir.display().to_string(),
        reachable: false,
        migrated: false,
        problem: None,
    };
    // Doctor only reads: only the embedded default, made on first use, is opened to write.
    let read_only = cli.read_only || resolved.source != UrlSource::EmbeddedDefault;
    match open_store(
        &resolved,
        &StoreOptions {
            max_connections: 1,
            read_only,
            ..Default::default()
        },
        false,
    )
    .await
    {
        Err(e) => report.problem = Some(e.message),
        Ok(store) => {
            report.reachable = true;
            match store.migration_status().await {
                Ok(states) => {
                    report.migrated = states.iter().all(|m| m.applied);
                    if !report.migrated {
                        report.problem = Some(format!(
                            "pending migrations: {}",
                            root::Remedy::for_resolved(&resolved).migrate
                        ));
                    }
                }
                Err(e) => report.problem = Some(e.to_string()),
            }
        }
    }
    let healthy = report.problem.is_none();
    output::emit(cli.json, &report, || {
        let yes_no = |b: bool| if b { "yes" } else { "NO" };
        format!(
            "store       {} (from {})\nconfig file {}{}\ndata dir    {}\ncache dir   {}\nlog dir     {}\nreachable   {}\nmigrated    {}{}",
            report.store,
            report.source,
            report.config_file,
            if report.config_file_exists {
                ""
            } else {
                " (not present)"
            },
            report.data_dir,
            report.cache_dir,
            report.log_dir,
            yes_no(report.reachable),
            yes_no(report.migrated),
            report
                .problem
                .as_ref()
                .map(|p| format!("\nproblem     {p}"))
                .unwrap_or_default(),
        )
    });
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn db(cli: &Cli, cmd: &DbCommand) -> CliResult<ExitCode> {
    let resolved = resolve_config(cli)?;
    // Only a migration makes a store; a status or a revert of a file that is not there is refused.
    let when_missing = match cmd {
        DbCommand::Migrate if resolved.source == UrlSource::EmbeddedDefault => {
            WhenMissing::CreateWithDirs
        }
        DbCommand::Migrate => WhenMissing::Create,
        DbCommand::Status | DbCommand::Down => WhenMissing::Refuse,
    };
    with_store_file(&resolved.url, cli.read_only, when_missing, async {
        let store = store::open(
            &resolved.url,
            &StoreOptions {
                max_connections: 1,
                // A status only reads, and must not convert a file it was pointed at by mistake.
                read_only: cli.read_only || matches!(cmd, DbCommand::Status),
                ..Default::default()
            },
        )
        .await?;
        db_command(cli, store.as_ref(), cmd).await
    })
    .await
}

async fn db_command(cli: &Cli, store: &dyn Store, cmd: &DbCommand) -> CliResult<ExitCode> {
    match cmd {
        DbCommand::Migrate => {
            let applied = store.migrate().await?;
            // Under --json the migrations it applied, as `db status` shows them.
            let states: Vec<_> = if cli.json {
                store
                    .migration_status()
                    .await?
                    .into_iter()
                    .filter(|m| applied.contains(&m.version))
                    .collect()
            } else {
                Vec::new()
            };
            output::emit(cli.json, &states, || match applied.len() {
                0 => format!("{}: already up to date", store.location()),
                n => format!("{}: applied {n} migration(s) {applied:?}", store.location()),
            });
        }
        DbCommand::Status => {
            let states = store.migration_status().await?;
            output::emit(cli.json, &states, || {
                output::table(
                    &["VERSION", "DESCRIPTION", "APPLIED"],
                    states.iter().map(|m| {
                        vec![
                            m.version.to_string(),
                            m.description.clone(),
                            if m.applied { "yes" } else { "no" }.into(),
                        ]
                    }),
                )
            });
        }
        DbCommand::Down => {
            let reverted = store.migrate_down().await?;
            output::emit(cli.json, &reverted, || match &reverted {
                Some(m) => format!("reverted migration {} ({})", m.version, m.description),
                None => "nothing to revert".to_owned(),
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
