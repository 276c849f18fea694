//! Where things live and which store to use. One precedence for the database URL:
//! `--db` > `OSPDECK_DATABASE_URL` > `DATABASE_URL` > `config.toml` > the embedded SQLite file.

use std::fmt;
use std::path::{Path, PathBuf};

use directories::ProjectDirs;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UrlSource {
    Flag,
    OspdeckDatabaseUrl,
    DatabaseUrl,
    ConfigFile,
    EmbeddedDefault,
}

impl fmt::Display for UrlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flag => "--db flag",
            Self::OspdeckDatabaseUrl => "OSPDECK_DATABASE_URL",
            Self::DatabaseUrl => "DATABASE_URL",
            Self::ConfigFile => "config file",
            Self::EmbeddedDefault => "embedded default",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Paths {
    pub config_file: PathBuf,
    pub data_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub log_dir: PathBuf,
}

impl Paths {
    pub fn platform() -> Result<Self, ConfigError> {
        let dirs = ProjectDirs::from("dev", "ospdeck", "ospdeck").ok_or_else(|| {
            ConfigError("cannot find a home directory for config and data (is HOME set?)".into())
        })?;
        Ok(Self {
            config_file: dirs.config_dir().join("config.toml"),
            data_dir: dirs.data_dir().to_path_buf(),
            cache_dir: dirs.cache_dir().to_path_buf(),
            log_dir: dirs
                .state_dir()
                .unwrap_or(dirs.data_local_dir())
                .join("logs"),
        })
    }

    /// The console's `:` history. Beside the log directory, in the state directory: it is
    /// state a session leaves for the next, not configuration or data.
    pub fn command_history(&self) -> PathBuf {
        self.log_dir.with_file_name("command_history")
    }

    pub fn embedded_database(&self) -> PathBuf {
        self.data_dir.join("ospdeck.db")
    }
}

/// The config file. Unknown keys are refused so a typo does not silently fall back to defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    /// The console's keys: action name → one key or a list (`cancel = "d"`, `quit = ["q", "ctrl-c"]`).
    #[serde(default)]
    pub keys: std::collections::BTreeMap<String, KeyList>,
    /// How service workers are deployed (default: kind = "none").
    #[serde(default)]
    pub deployer: crate::deploy::DeployerConfig,
    /// Where template bundle files live and how they are resolved.
    #[serde(default)]
    pub artifacts: ArtifactsConfig,
    /// The console's mouse: clicks and the wheel (default on; `--no-mouse` turns it off too).
    pub mouse: Option<bool>,
    /// `ospdeck serve`: the console over SSH.
    #[serde(default)]
    pub serve: ServeConfig,
}

/// `[serve]` in config.toml; the flags of `ospdeck serve` win.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Where to listen (default 127.0.0.1:2222).
    pub listen: Option<String>,
    /// The host key (default: <data dir>/ssh_host_ed25519_key, made on first start).
    pub host_key: Option<PathBuf>,
    /// Concurrent sessions at most (default 32).
    pub max_sessions: Option<usize>,
    /// Concurrent sessions of one user at most (default 8).
    pub max_sessions_per_user: Option<usize>,
    /// Seconds without input before a session is closed (default 3600, at most a day; 0 never
    /// closes one).
    pub idle_timeout_secs: Option<u64>,
    /// Seconds a connection has to authenticate (default 30).
    pub login_grace_secs: Option<u64>,
    /// Failed authentications per address per minute before it is turned away (default 20).
    pub auth_failures_per_minute: Option<usize>,
}

/// `[artifacts]` in config.toml.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactsConfig {
    /// The artifact store (default: <data dir>/artifacts).
    pub dir: Option<PathBuf>,
    /// The local content cache (default: <cache dir>/artifacts).
    pub cache_dir: Option<PathBuf>,
    /// Bundles laid out as <dir>/<template>/<version>/<path>, served when nothing else can.
    pub fallback_dir: Option<PathBuf>,
    /// Resolve from the artifact store at all (OSPDECK_TEMPLATE_REMOTE=off switches it off too).
    #[serde(default = "yes")]
    pub remote: bool,
    #[serde(default = "default_ttl")]
    pub pointer_ttl_secs: u64,
    /// The largest file a bundle may hold (bytes); a publish refuses a bigger one.
    #[serde(default = "default_max_artifact_bytes")]
    pub max_artifact_bytes: u64,
    /// S3-compatible object storage instead of `dir` (e.g. Supabase Storage's S3 endpoint).
    pub s3: Option<crate::artifacts::S3Config>,
}

fn yes() -> bool {
    true
}

fn default_ttl() -> u64 {
    60
}

fn default_max_artifact_bytes() -> u64 {
    crate::domain::template::DEFAULT_MAX_ARTIFACT_BYTES
}

impl Default for ArtifactsConfig {
    fn default() -> Self {
        Self {
            dir: None,
            cache_dir: None,
            fallback_dir: None,
            remote: true,
            pointer_ttl_secs: default_ttl(),
            max_artifact_bytes: default_max_artifact_bytes(),
            s3: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum KeyList {
    One(String),
    Many(Vec<String>),
}

impl KeyList {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            KeyList::One(k) => vec![k.clone()],
            KeyList::Many(ks) => ks.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A config file that holds secrets (a database password, object-store keys) but that other users
/// can read deserves a warning.
pub fn secrets_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    if mode & 0o077 == 0 {
        return None;
    }
    let config = read_file_config(path).ok()??;
    let password = config
        .database_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .is_some_and(|u| u.password().is_some());
    if password || config.artifacts.s3.is_some() {
        Some(format!(
            "{} holds secrets and other users can read it (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        ))
    } else {
        None
    }
}

pub fn read_file_config(path: &Path) -> Result<Option<FileConfig>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map(Some).map_err(|e| {
            ConfigError(format!(
                "bad config file {}: {}",
                path.display(),
                e.message()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError(format!(
            "cannot read config file {}: {e}",
            path.display()
        ))),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub url: String,
    pub source: UrlSource,
    pub paths: Paths,
}

/// Applies the precedence. `env` is passed in so the rule is tested without touching the process.
pub fn resolve(
    flag: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
    paths: Paths,
) -> Result<Resolved, ConfigError> {
    let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let (url, source) = if let Some(url) = flag {
        (url.to_owned(), UrlSource::Flag)
    } else if let Some(url) = non_empty(env("OSPDECK_DATABASE_URL")) {
        (url, UrlSource::OspdeckDatabaseUrl)
    } else if let Some(url) = non_empty(env("DATABASE_URL")) {
        (url, UrlSource::DatabaseUrl)
    } else if let Some(url) = read_file_config(&paths.config_file)?.and_then(|c| c.database_url) {
        (url, UrlSource::ConfigFile)
    } else {
        (
            format!("sqlite://{}", paths.embedded_database().display()),
            UrlSource::EmbeddedDefault,
        )
    };
    if url.trim().is_empty() {
        return Err(ConfigError(format!("empty database URL from {source}")));
    }
    Ok(Resolved { url, source, paths })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(dir: &Path) -> Paths {
        Paths {
            config_file: dir.join("config.toml"),
            data_dir: dir.join("data"),
            cache_dir: dir.join("cache"),
            log_dir: dir.join("logs"),
        }
    }

    #[test]
    fn precedence_is_flag_env_env_file_default() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let p = paths(dir.path());
        let env = |o: Option<&'static str>, d: Option<&'static str>| {
            move |k: &str| match k {
                "OSPDECK_DATABASE_URL" => o.map(String::from),
                "DATABASE_URL" => d.map(String::from),
                _ => None,
            }
        };
        let r = resolve(None, env(None, None), p.clone())?;
        assert_eq!(r.source, UrlSource::EmbeddedDefault);
        assert!(r.url.ends_with("data/ospdeck.db"));

        std::fs::write(&p.config_file, "database_url = \"sqlite:///tmp/file.db\"\n")?;
        assert_eq!(
            resolve(None, env(None, None), p.clone())?.source,
            UrlSource::ConfigFile
        );
        let r = resolve(None, env(None, Some("postgres://d")), p.clone())?;
        assert_eq!(
            (r.source, r.url.as_str()),
            (UrlSource::DatabaseUrl, "postgres://d")
        );
        let r = resolve(
            None,
            env(Some("postgres://o"), Some("postgres://d")),
            p.clone(),
        )?;
        assert_eq!(
            (r.source, r.url.as_str()),
            (UrlSource::OspdeckDatabaseUrl, "postgres://o")
        );
        let r = resolve(Some("/x.db"), env(Some("postgres://o"), None), p.clone())?;
        assert_eq!((r.source, r.url.as_str()), (UrlSource::Flag, "/x.db"));
        // An empty variable does not count as set.
        assert_eq!(
            resolve(None, env(Some(" "), None), p)?.source,
            UrlSource::ConfigFile
        );
        Ok(())
    }

    #[test]
    fn a_bad_config_file_is_one_clear_error() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let p = paths(dir.path());
        std::fs::write(&p.config_file, "databse_url = \"x\"\n")?;
        let err = resolve(None, |_| None, p)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("bad config file") && err.contains("databse_url"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn the_railway_preset_is_a_valid_config() {
        let text = include_str!("../assets/deployer-railway.toml");
        let config: FileConfig = toml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.deployer.kind, crate::deploy::DeployerKind::Command);
        assert_eq!(config.deployer.check(), Ok(()));
        assert!(
            config
                .deployer
                .rollback
                .is_some_and(|r| r.contains("osp-worker-{schema}"))
        );
    }

    #[test]
    fn secrets_readable_by_others_draw_a_warning() -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "database_url = \"postgres://ops:s3cret@db/ops\"\n")?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        let warning = secrets_warning(&path).ok_or("no warning")?;
        assert!(warning.contains("chmod 600"));
        assert!(!warning.contains("s3cret"), "the warning shows the secret");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        assert_eq!(secrets_warning(&path), None);
        std::fs::write(&path, "database_url = \"postgres://ops@db/ops\"\n")?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        assert_eq!(secrets_warning(&path), None, "no secret, no warning");
        Ok(())
    }
}
