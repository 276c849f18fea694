//! Test harness: a fresh, migrated store per test on either backend, plus raw SQL beside it.
#![allow(dead_code)]

pub mod fleet;
pub mod tmux;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use ospdeck::domain::permission::Identity;
use ospdeck::ops::Ops;
use ospdeck::store::postgres::PgStore;
use ospdeck::store::{self, Store, StoreKind, StoreOptions};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, Executor};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type TestResult = Result<(), BoxError>;

pub const PG_URL_VAR: &str = "OSPDECK_TEST_PG_URL";
const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub struct Harness {
    pub store: Arc<dyn Store>,
    pub ops: Ops,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Who created a test database: `OSPDECK_TEST_TAG` (CI sets one per run, and drops that run's
/// databases and roles when it ends), else one per machine. The server may be shared by other
/// machines and other CI runs: only databases of this tag are ever dropped here.
fn test_tag() -> String {
    let tag = std::env::var("OSPDECK_TEST_TAG").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        let hash = host.trim().bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        format!("h{:08x}", hash as u32)
    });
    tag.chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        .take(24)
        .collect()
}

/// Test databases are named `ospdeck_t_<tag>_<pid>_<n>`. Those of this tag whose test process
/// has ended are dropped here, so repeated `cargo test` runs do not pile databases up.
async fn drop_databases_of_finished_runs(admin: &mut sqlx::PgConnection) {
    let prefix = format!("ospdeck_t_{}_", test_tag());
    let pattern = format!("{}%", prefix.replace('_', "\\_"));
    let finished = |name: &str| {
        let pid = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split('_').next())
            .and_then(|p| p.parse::<u32>().ok());
        pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
    };
    let names: Vec<(String,)> =
        sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE $1")
            .bind(&pattern)
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    for (name,) in names {
        if finished(&name) {
            // Another process may be dropping it at the same moment: errors do not matter.
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS \"{name}\"").as_str())
                .await;
        }
    }
    // Members' login roles are named after their test database (roles are cluster-wide).
    let roles: Vec<(String,)> =
        sqlx::query_as("SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1")
            .bind(&pattern)
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    for (name,) in roles {
        if finished(&name) {
            let _ = admin
                .execute(format!("DROP ROLE IF EXISTS \"{name}\"").as_str())
                .await;
        }
    }
}

/// The database every PostgreSQL case of this test process is copied from: migrated once, on the
/// first case's demand, then cloned with `CREATE DATABASE … TEMPLATE` (a file copy, far cheaper
/// than running every migration again). Named `ospdeck_t_<tag>_<pid>_tpl`, so that it is dropped
/// with this process's other databases: at exit here, else by the next run of this tag or by CI.
static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

/// The template's name and the admin URL to drop it with, for the exit handler.
static TEMPLATE_AT_EXIT: std::sync::Mutex<Option<(String, String)>> = std::sync::Mutex::new(None);

fn database_url(admin_url: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin_url).expect("PG URL");
    url.set_path(name);
    url.to_string()
}

/// Creates and migrates this process's template through the store's own migrate, then closes
/// every connection to it: PostgreSQL copies a database only while nobody is connected to it.
/// Cluster-wide objects the migrations create (the roles ospdeck_member, ospdeck_api) exist from
/// then on; a copy holds the grants to them as a migrated database does.
async fn make_template(admin_url: String) -> String {
    let name = format!("ospdeck_t_{}_{}_tpl", test_tag(), std::process::id());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect to make the template");
    // A leftover of an earlier process that had this pid.
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
        .await
        .expect("drop a stale template");
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create the template");
    *TEMPLATE_AT_EXIT.lock().expect("template lock") = Some((admin_url.clone(), name.clone()));
    // SAFETY: registers a function that takes no arguments and does not unwind.
    unsafe { libc::atexit(drop_template_at_exit) };
    let store = PgStore::open(
        &database_url(&admin_url, &name),
        &StoreOptions {
            read_only: false,
            max_connections: 1,
            ..Default::default()
        },
    )
    .await
    .expect("open the template");
    store.migrate().await.expect("migrate the template");
    store.close().await;
    // Nobody connects to it any more; autovacuum would, and make a copy fail while it is there.
    // (Best effort: a non-superuser owner may be refused; copies retry instead.)
    let _ = admin
        .execute(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false").as_str())
        .await;
    let _ = admin.close().await;
    name
}

/// `CREATE DATABASE name TEMPLATE template`, retried while PostgreSQL reports the template in use
/// ("source database … is being accessed by other users", SQLSTATE 55006): a closed connection's
/// server process may take a moment to go, and autovacuum may visit.
async fn create_from_template(admin: &mut sqlx::PgConnection, name: &str, template: &str) {
    let sql = format!("CREATE DATABASE {name} TEMPLATE {template}");
    let mut attempts = 0;
    loop {
        match admin.execute(sql.as_str()).await {
            Ok(_) => return,
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("55006") && attempts < 200 =>
            {
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("create test db {name} from template {template}: {e}"),
        }
    }
}

/// At process exit, drops the template (its copies stay, as every test database does, until the
/// next run of this tag). On its own thread and runtime, as the tests' runtimes are gone by then;
/// bounded, so that an unreachable server cannot hold the process.
extern "C" fn drop_template_at_exit() {
    let Some((admin_url, name)) = TEMPLATE_AT_EXIT.lock().ok().and_then(|mut t| t.take()) else {
        return;
    };
    let (done, wait) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = admin
                        .execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
                        .await;
                    let _ = admin.close().await;
                }
            });
        }
        let _ = done.send(());
    });
    if spawned.is_ok() {
        let _ = wait.recv_timeout(std::time::Duration::from_secs(10));
    }
}

impl Harness {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        Self::open(url, Some(dir)).await
    }

    /// A new database on the test server, or None (with a note) when no server is reachable and
    /// OSPDECK_REQUIRE_PG is not set. With OSPDECK_REQUIRE_PG=1 an unreachable server fails the test.
    pub async fn postgres(test: &str) -> Option<Self> {
        let admin_url = std::env::var(PG_URL_VAR).unwrap_or_else(|_| DEFAULT_PG_URL.to_owned());
        let required = std::env::var("OSPDECK_REQUIRE_PG").is_ok_and(|v| v == "1");
        let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
            Ok(conn) => conn,
            Err(e) if required => panic!(
                "PostgreSQL required (OSPDECK_REQUIRE_PG=1) but unreachable at {admin_url}: {e}"
            ),
            Err(e) => {
                println!(
                    "SKIPPED {test} on PostgreSQL: no server at {admin_url} ({e}); set {PG_URL_VAR}"
                );
                return None;
            }
        };
        drop_databases_of_finished_runs(&mut admin).await;
        let template = TEMPLATE
            .get_or_init(|| make_template(admin_url.clone()))
            .await;
        let name = format!(
            "ospdeck_t_{}_{}_{}",
            test_tag(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        admin
            .execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
            .await
            .expect("drop test db");
        create_from_template(&mut admin, &name, template).await;
        let _ = admin.close().await;
        Some(Self::open(database_url(&admin_url, &name), None).await)
    }

    async fn open(url: String, dir: Option<tempfile::TempDir>) -> Self {
        let store = store::open(
            &url,
            &StoreOptions {
                read_only: false,
                max_connections: 20,
                ..Default::default()
            },
        )
        .await
        .expect("open store");
        store.migrate().await.expect("migrate");
        let ops = Ops::new(store.clone(), Identity::administrator("tester"));
        Self {
            store,
            ops,
            url,
            _dir: dir,
        }
    }

    pub fn kind(&self) -> StoreKind {
        self.store.kind()
    }

    /// A prefix for names that must be unique on the whole server (PostgreSQL roles): the test
    /// database's name, or `u` on SQLite.
    pub fn unique_prefix(&self) -> String {
        match self.kind() {
            StoreKind::Postgres => url::Url::parse(&self.url)
                .map(|u| u.path().trim_start_matches('/').to_owned())
                .unwrap_or_default(),
            StoreKind::Sqlite => "u".to_owned(),
        }
    }

    /// The same database, connected as another PostgreSQL login role (trust authentication).
    pub fn url_as(&self, role: &str) -> String {
        let mut url = url::Url::parse(&self.url).expect("PG URL");
        let _ = url.set_username(role);
        let _ = url.set_password(None);
        url.to_string()
    }

    /// A table name as raw SQL must spell it on this backend.
    pub fn table(&self, name: &str) -> String {
        match self.kind() {
            StoreKind::Postgres => format!("ops.{name}"),
            StoreKind::Sqlite => name.to_owned(),
        }
    }

    /// Runs raw SQL on a connection of its own, as psql or sqlite3 would; answers the error text.
    pub async fn raw(&self, sql: &str) -> Result<u64, String> {
        match self.kind() {
            StoreKind::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url)
                    .await
                    .map_err(|e| e.to_string())?;
                conn.execute(sql)
                    .await
                    .map(|r| r.rows_affected())
                    .map_err(|e| e.to_string())
            }
            StoreKind::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .map_err(|e| e.to_string())?;
                conn.execute(sql)
                    .await
                    .map(|r| r.rows_affected())
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Removes the database's bound on payload nesting for this test database only, as a row
    /// written before the bound existed (or by a tool around it) would not have met it.
    pub async fn lift_json_depth_bound(&self) {
        let sql = match self.kind() {
            StoreKind::Postgres => "DROP TRIGGER IF EXISTS runs_payload_depth ON ops.runs",
            StoreKind::Sqlite => "DROP TRIGGER IF EXISTS runs_payload_depth",
        };
        self.raw(sql).await.expect("lift the payload depth bound");
    }

    /// A table of schema osp_metadata (services, manifests, registry) as raw SQL spells it.
    pub fn meta(&self, name: &str) -> String {
        match self.kind() {
            StoreKind::Postgres => format!("osp_metadata.{name}"),
            StoreKind::Sqlite => name.to_owned(),
        }
    }

    pub async fn count(&self, table: &str) -> i64 {
        self.scalar(&format!("SELECT count(*) FROM {}", self.table(table)))
            .await
    }

    /// The first column of the first row of a raw query that answers an integer.
    pub async fn scalar(&self, sql: &str) -> i64 {
        let rows: Vec<(i64,)> = self.fetch_all(sql).await;
        rows.first().map_or(0, |r| r.0)
    }

    /// The first column of the first row of a raw query that answers text.
    pub async fn scalar_text(&self, sql: &str) -> String {
        let rows: Vec<(String,)> = self.fetch_all(sql).await;
        rows.into_iter().next().map(|r| r.0).unwrap_or_default()
    }

    /// The legal transitions as the database's own table lists them.
    pub async fn db_transitions(&self) -> Vec<(String, String)> {
        self.fetch_all(&format!(
            "SELECT from_status, to_status FROM {} ORDER BY 1, 2",
            self.table("run_transitions")
        ))
        .await
    }

    /// Raw rows on a connection of its own, whichever backend this is.
    pub async fn fetch_all<T>(&self, sql: &str) -> Vec<T>
    where
        T: Send + Unpin + for<'r> sqlx::FromRow<'r, PgRow> + for<'r> sqlx::FromRow<'r, SqliteRow>,
    {
        match self.kind() {
            StoreKind::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("connect");
                sqlx::query_as(sql)
                    .fetch_all(&mut conn)
                    .await
                    .expect("query")
            }
            StoreKind::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("connect");
                sqlx::query_as(sql)
                    .fetch_all(&mut conn)
                    .await
                    .expect("query")
            }
        }
    }
}

/// The names in a directory, sorted.
pub fn dir_entries(dir: &std::path::Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    Ok(names)
}

/// Root, to whom file permissions do not apply.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A read-write connection that has read from a SQLite file in WAL mode: while it is open, the
/// file's `-wal` and `-shm` exist, as beside any writer at work.
pub async fn open_sqlite_writer(
    db: &std::path::Path,
) -> Result<sqlx::SqliteConnection, sqlx::Error> {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await?;
    sqlx::query("SELECT count(*) FROM sqlite_master")
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

/// Closes a SQLite file the way its last user does: SQLite checkpoints the WAL and deletes the
/// `-wal` and `-shm` files. (Whether an ospdeck process that just ended did so depends on whether
/// its connections finished closing before it exited.)
pub async fn close_sqlite_cleanly(db: &std::path::Path) -> Result<(), sqlx::Error> {
    open_sqlite_writer(db).await?.close().await
}

/// Generates one test per backend for each case: `cases::NAME(harness)`.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> $crate::common::TestResult {
                    super::cases::$name($crate::common::Harness::sqlite().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> $crate::common::TestResult {
                    match $crate::common::Harness::postgres(stringify!($name)).await {
                        Some(h) => super::cases::$name(h).await,
                        None => Ok(()),
                    }
                }
            )*
        }
    };
}

/// The real binary with its home at `home`, and nothing of the environment the tests run in
/// that would choose a store, a colour or a completion for it (XDG dirs, database URLs,
/// NO_COLOR, COMPLETE).
pub fn ospdeck_command<S: AsRef<std::ffi::OsStr>>(
    home: &std::path::Path,
    args: &[S],
) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ospdeck"));
    command.args(args).env("HOME", home);
    for var in [
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_STATE_HOME",
        "XDG_CACHE_HOME",
        "OSPDECK_DATABASE_URL",
        "DATABASE_URL",
        "NO_COLOR",
        "COMPLETE",
    ] {
        command.env_remove(var);
    }
    command
}
