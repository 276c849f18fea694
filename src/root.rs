//! The composition root: which store to use (the configuration's precedence), opening it (creating
//! and migrating the embedded default on first use, refusing an unmigrated one), and building
//! `Ops` over it. Every front end opens the application through here; nothing here knows a
//! command line, so `cli/` converts its flags into these arguments and [`RootError`] into its own
//! error.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{self, ConfigError, Resolved, UrlSource};
use crate::ops::{Ops, OpsError};
use crate::stdio::stderr_line;
use crate::store::{self, Store, StoreError, StoreOptions};

/// Why the application could not be opened. Each variant prints one line, already worded.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// No home directory, an unreadable or malformed config file, an empty database URL.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store is unreachable, missing, not migrated, or refused a query.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store opened but the caller's identity could not be established on it.
    #[error(transparent)]
    Ops(#[from] OpsError),
    /// The embedded default's data directory could not be made.
    #[error("cannot create data directory {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type RootResult<T = ()> = Result<T, RootError>;

/// Resolves the configuration the same way for every front end: `db_flag` (`--db`) first, then
/// the environment, the config file and the embedded default (see [`config::resolve`]). A config
/// file that holds secrets and others can read is worth a warning on stderr.
pub fn resolve_config(db_flag: Option<&str>) -> RootResult<Resolved> {
    let paths = config::Paths::platform()?;
    if let Some(warning) = config::secrets_warning(&paths.config_file) {
        stderr_line(&format!("warning: {warning}"));
    }
    Ok(config::resolve(db_flag, |k| std::env::var(k).ok(), paths)?)
}

/// Opens the store. The embedded default is created and migrated on first use; any other store
/// must have been migrated with `ospdeck db migrate`. Under `--read-only` nothing is created or
/// migrated, and a store refused here leaves no file behind.
pub async fn open_store(
    resolved: &Resolved,
    options: &StoreOptions,
    require_migrated: bool,
) -> RootResult<Arc<dyn Store>> {
    let embedded = resolved.source == UrlSource::EmbeddedDefault && !options.read_only;
    let when_missing = if embedded {
        WhenMissing::CreateWithDirs
    } else {
        WhenMissing::Refuse
    };
    let remedy = Remedy::for_resolved(resolved);
    guard_store_file(
        &resolved.url,
        options.read_only,
        when_missing,
        &remedy,
        async {
            if require_migrated
                && !embedded
                && !options.read_only
                && store::sqlite_path(&resolved.url).is_some()
            {
                // Opened to write, a SQLite file is switched to WAL and gains side files: judge it
                // read-only first, so a file refused here is left exactly as it was.
                let probe = StoreOptions {
                    read_only: true,
                    max_connections: 1,
                    ..Default::default()
                };
                require_migrations(store::open(&resolved.url, &probe).await?.as_ref(), &remedy)
                    .await?;
            }
            let store = store::open(&resolved.url, options).await?;
            if embedded {
                store.migrate().await?;
            } else if require_migrated {
                require_migrations(store.as_ref(), &remedy).await?;
            }
            Ok(store)
        },
    )
    .await
}

/// Opens the store (which must be migrated) and connects `Ops` to it as `as_user` (`--as`), or as
/// the identity the store knows.
///
/// A command that `ospdeck serve` runs for an SSH session has [`SESSION_USER_ENV`] set: it acts as
/// that session's user, never as an administrator (see [`session_user_ops`]).
pub async fn connect(
    resolved: &Resolved,
    options: &StoreOptions,
    as_user: Option<&str>,
) -> RootResult<Ops> {
    if let Some(user) = session_user()? {
        if as_user.is_some() {
            return Err(StoreError::Invalid(format!(
                "--as is not accepted in an SSH session: the key names the user ({user})"
            ))
            .into());
        }
        let options = StoreOptions {
            gateway_subject: Some(user.clone()),
            ..options.clone()
        };
        let store = open_store(resolved, &options, true).await?;
        return session_user_ops(store, &user).await;
    }
    let store = open_store(resolved, options, true).await?;
    Ok(Ops::connect_as(store, as_user).await?)
}

/// Set by `ospdeck serve` for the commands an SSH session runs: the user the session's key names.
pub const SESSION_USER_ENV: &str = "OSPDECK_SESSION_USER";

/// The SSH session's user this command runs for, if any. Set but empty or not text is refused:
/// falling back to the OS user would make a session's command the store's administrator.
pub fn session_user() -> RootResult<Option<String>> {
    match std::env::var_os(SESSION_USER_ENV) {
        None => Ok(None),
        Some(value) => match value.into_string() {
            Ok(user) if !user.trim().is_empty() => Ok(Some(user)),
            _ => Err(StoreError::Invalid(format!(
                "{SESSION_USER_ENV} is set but names no user; refusing to act as anyone"
            ))
            .into()),
        },
    }
}

/// `Ops` for an SSH session's `user`, who is never the store's administrator. On SQLite the
/// server is the only writer and `ops` checks the user's roles. On PostgreSQL `store` must have
/// been opened with `gateway_subject = user` as a gateway role (group `ospdeck_api`, not an
/// administrator): the database then knows the user by the JWT subject and row-level security
/// enforces the same roles again; anything else is refused here.
pub async fn session_user_ops(store: Arc<dyn Store>, user: &str) -> RootResult<Ops> {
    if store.kind() == store::StoreKind::Sqlite {
        let identity = crate::domain::permission::Identity {
            user: user.to_owned(),
            administrator: false,
        };
        return Ok(Ops::new(store, identity));
    }
    let ops = Ops::connect_as(store, None).await?;
    if ops.identity().administrator || ops.actor() != user {
        return Err(StoreError::Invalid(format!(
            "ospdeck serve must connect to PostgreSQL as a gateway role (in group ospdeck_api, \
             not a superuser, owner or BYPASSRLS role), so that row-level security holds for its \
             sessions; this role is {}{}: create one with `CREATE ROLE ospdeck_ssh LOGIN; GRANT \
             ospdeck_api, ospdeck_member TO ospdeck_ssh;` and serve with --db \
             postgres://ospdeck_ssh@HOST/DB",
            ops.actor(),
            if ops.identity().administrator {
                ", an administrator"
            } else {
                ""
            }
        ))
        .into());
    }
    Ok(ops)
}

/// Refuses a store with pending migrations, naming them and the command that applies them.
async fn require_migrations(store: &dyn Store, remedy: &Remedy) -> RootResult {
    let not_migrated = |what: String| -> RootError {
        StoreError::NotMigrated(format!(
            "{} is not migrated ({what}): {}",
            store.location(),
            remedy.migrate
        ))
        .into()
    };
    let states = match store.migration_status().await {
        Ok(states) => states,
        // A PostgreSQL database without ospdeck's schema cannot even list migrations.
        Err(StoreError::NotMigrated(_)) => return Err(not_migrated("no ospdeck schema".into())),
        Err(e) => return Err(e.into()),
    };
    let pending: Vec<i64> = states
        .into_iter()
        .filter(|m| !m.applied)
        .map(|m| m.version)
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    Err(not_migrated(format!(
        "{} pending migration(s) {:?}",
        pending.len(),
        pending
    )))
}

/// What to tell someone whose store is missing or not migrated: the exact command for the store
/// they named, the way they named it (`--db` is repeated; the environment or the config file will
/// name it again by themselves).
pub struct Remedy {
    /// "run `ospdeck … db migrate`", with why it reaches the same store.
    pub migrate: String,
    /// The store is the embedded default, which the console creates on first start.
    embedded: bool,
}

impl Remedy {
    pub fn for_resolved(resolved: &Resolved) -> Self {
        let migrate = match resolved.source {
            UrlSource::Flag => return Self::for_url(&resolved.url),
            UrlSource::OspdeckDatabaseUrl | UrlSource::DatabaseUrl => format!(
                "run `ospdeck db migrate` (with {} set as now, it migrates this store)",
                resolved.source
            ),
            UrlSource::ConfigFile => format!(
                "run `ospdeck db migrate` (database_url in {} names this store for it too)",
                resolved.paths.config_file.display()
            ),
            UrlSource::EmbeddedDefault => "run `ospdeck db migrate`".to_owned(),
        };
        Self {
            migrate,
            embedded: resolved.source == UrlSource::EmbeddedDefault,
        }
    }

    /// For a store known only by its URL: `--db URL` names it whatever else is configured.
    fn for_url(url: &str) -> Self {
        let shown = store::redact_url(url);
        let password = if shown == url {
            ""
        } else {
            " (with the real password)"
        };
        Self {
            migrate: format!(
                "run `ospdeck --db {} db migrate`{password}",
                shell_word(&shown)
            ),
            embedded: false,
        }
    }

    fn missing(&self, path: &Path, read_only: bool) -> StoreError {
        let path = path.display();
        StoreError::NotMigrated(match (read_only, self.embedded) {
            (true, true) => format!(
                "no store yet at {path} (read-only mode creates none): run `ospdeck` (creates \
                 it) or `ospdeck demo` for a demo workspace, or point --db at a store"
            ),
            (true, false) => format!(
                "no database at {path} (read-only mode creates none): {} to create it",
                self.migrate
            ),
            (false, _) => format!("no database at {path} yet: {} to create it", self.migrate),
        })
    }
}

/// `text` as one shell word: as is when it is plainly safe, else single-quoted.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._:@%+=,-".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// What a caller may do when its SQLite file does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenMissing {
    Refuse,
    Create,
    /// The embedded default: its data directory may be missing too.
    CreateWithDirs,
}

/// Runs `work`, which opens the store at `url` and does what must succeed with it. A SQLite file
/// that is missing is created only as `when_missing` allows (never when `read_only`), and what
/// was created for it is removed again if `work` fails.
pub async fn with_store_file<T, E: From<RootError>>(
    url: &str,
    read_only: bool,
    when_missing: WhenMissing,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    guard_store_file(url, read_only, when_missing, &Remedy::for_url(url), work).await
}

/// [`with_store_file`], with the remedy a refusal names.
async fn guard_store_file<T, E: From<RootError>>(
    url: &str,
    read_only: bool,
    when_missing: WhenMissing,
    remedy: &Remedy,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let new_file = NewSqliteFile::prepare(url, read_only, when_missing, remedy)?;
    let result = work.await;
    if result.is_err() {
        if let Some(new_file) = new_file {
            new_file.remove();
        }
    }
    result
}

/// A SQLite file about to be created: the database and side files that did not exist, and the
/// directories made for them (outermost first).
struct NewSqliteFile {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl NewSqliteFile {
    /// None when `url` is not a SQLite file or the file exists; an error when it is missing and
    /// may not be created.
    fn prepare(
        url: &str,
        read_only: bool,
        when_missing: WhenMissing,
        remedy: &Remedy,
    ) -> RootResult<Option<Self>> {
        let Some(path) = store::sqlite_path(url).map(Path::new) else {
            return Ok(None);
        };
        if path.exists() {
            return Ok(None);
        }
        if read_only || when_missing == WhenMissing::Refuse {
            return Err(remedy.missing(path, read_only).into());
        }
        let mut dirs = Vec::new();
        if when_missing == WhenMissing::CreateWithDirs {
            if let Some(parent) = path.parent() {
                dirs = parent
                    .ancestors()
                    .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
                    .map(Path::to_path_buf)
                    .collect();
                dirs.reverse();
                std::fs::create_dir_all(parent).map_err(|source| RootError::DataDir {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
        }
        let files = ["", "-wal", "-shm", "-journal"]
            .iter()
            .map(|suffix| {
                let mut file = path.as_os_str().to_owned();
                file.push(suffix);
                PathBuf::from(file)
            })
            .filter(|f| !f.exists())
            .collect();
        Ok(Some(Self { files, dirs }))
    }

    fn remove(self) {
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
        // Innermost first; remove_dir leaves a directory that someone else filled meanwhile.
        for dir in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(url: &str, source: UrlSource) -> Resolved {
        let dir = Path::new("/home/u");
        Resolved {
            url: url.to_owned(),
            source,
            paths: config::Paths {
                config_file: dir.join(".config/ospdeck/config.toml"),
                data_dir: dir.join("data"),
                cache_dir: dir.join("cache"),
                log_dir: dir.join("logs"),
            },
        }
    }

    #[test]
    fn the_migrate_hint_names_the_store_the_way_it_was_named() {
        let hint = |url: &str, source| Remedy::for_resolved(&resolved(url, source)).migrate;
        assert_eq!(
            hint("x.db", UrlSource::Flag),
            "run `ospdeck --db x.db db migrate`"
        );
        assert_eq!(
            hint("/tmp/my stores/it's.db", UrlSource::Flag),
            r"run `ospdeck --db '/tmp/my stores/it'\''s.db' db migrate`"
        );
        let pg = hint("postgres://bob:s3cret@db/x", UrlSource::Flag);
        assert!(!pg.contains("s3cret"), "{pg}");
        assert!(
            // Quoted: `*` would glob.
            pg.contains("--db 'postgres://bob:***@db/x' db migrate`"),
            "{pg}"
        );
        assert!(pg.ends_with("(with the real password)"), "{pg}");
        for source in [UrlSource::OspdeckDatabaseUrl, UrlSource::DatabaseUrl] {
            let env = hint("postgres://bob:s3cret@db/x", source);
            assert!(env.starts_with("run `ospdeck db migrate` (with "), "{env}");
            assert!(env.contains(&source.to_string()) && !env.contains("s3cret"));
        }
        assert!(
            hint("x.db", UrlSource::ConfigFile).contains("/home/u/.config/ospdeck/config.toml")
        );
        assert_eq!(
            hint("sqlite:///d/ospdeck.db", UrlSource::EmbeddedDefault),
            "run `ospdeck db migrate`"
        );
    }

    #[test]
    fn a_missing_store_says_how_to_make_one() {
        let path = Path::new("/d/ospdeck.db");
        let default = Remedy::for_resolved(&resolved("x", UrlSource::EmbeddedDefault));
        let text = default.missing(path, true).to_string();
        assert!(text.starts_with("no store yet at /d/ospdeck.db"), "{text}");
        assert!(text.contains("`ospdeck demo`"), "{text}");
        let named = Remedy::for_resolved(&resolved("/d/ospdeck.db", UrlSource::Flag));
        assert_eq!(
            named.missing(path, false).to_string(),
            "no database at /d/ospdeck.db yet: run `ospdeck --db /d/ospdeck.db db migrate` to \
             create it"
        );
    }
}
