//! Reading a SQLite store without leaving a trace. A normal read-only connection to a WAL database
//! creates the `-wal` and `-shm` files when they are missing: on read-only media that fails, and
//! in a shared directory the files end up owned by the reader, with the database file's mode, so
//! the owner can no longer write. So while no writer is active a read-only store opens the file
//! `immutable` (no locks, no side files), and it switches to normal read-only connections once a
//! writer's `-shm` exists: a reader then only uses the files it finds.
//!
//! `immutable` promises SQLite that the file does not change, so it never looks for changes. A
//! writer that comes and goes between two looks (a CLI command closes in milliseconds, and the
//! last one out deletes its `-wal` and `-shm`) leaves only a changed file behind: the store then
//! drops the immutable connections made before the change and opens new ones.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{ConnectOptions, SqliteConnection};

/// The file format bytes (offsets 18 and 19 of the header) are 2 in WAL mode. Anything unreadable
/// counts as not WAL, and the normal read-only open reports the real problem. Readers of a
/// rollback-journal database never create files, so only WAL databases need `immutable`.
pub(super) fn is_wal_database(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 20];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok_and(|()| header[18] == 2 && header[19] == 2)
}

/// What a writer changes in the database file: a checkpoint rewrites pages (time, size), a
/// restored copy is another inode. Two writes within one tick of the file system's clock that do
/// not change the size look like one; the second shows with the next change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl FileStamp {
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            inode: meta.ino(),
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

/// How the store reads now.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReadState {
    /// Moves whenever connections made before may no longer show what the file holds.
    pub(super) generation: u64,
    /// When this generation began: an immutable connection made before it is stale.
    began: Instant,
    /// The file as the current immutable connections found it; None once reads are live.
    stamp: Option<FileStamp>,
}

impl ReadState {
    pub(super) fn is_live(&self) -> bool {
        self.stamp.is_none()
    }
}

/// Watches the file on behalf of a read-only store: opens the store `immutable` or live, renews
/// immutable connections after a writer has come and gone, and moves the pool to live
/// connections once a writer is active, so a monitor never shows a frozen snapshot.
pub(super) struct WriterFollower {
    db: PathBuf,
    shm: PathBuf,
    live: SqliteConnectOptions,
    /// The store's pool, whose connect options change when reads go live. Cleared when the store
    /// is dropped: the pool's hooks hold this follower, and the cycle must end.
    pool: Mutex<Option<SqlitePool>>,
    state: Mutex<ReadState>,
    /// One live connection, held from the moment reads go live. A WAL writer that closes last
    /// deletes its `-wal` and `-shm`; while this connection holds its shared lock the writer is
    /// not last, so the files stay and no later connection of ours has to create them. The lock
    /// also makes the switch happen once.
    pin: tokio::sync::Mutex<Option<SqliteConnection>>,
}

impl WriterFollower {
    pub(super) fn new(path: &str, live: SqliteConnectOptions) -> Self {
        let db = PathBuf::from(path);
        Self {
            shm: PathBuf::from(format!("{path}-shm")),
            state: Mutex::new(ReadState {
                generation: 0,
                began: Instant::now(),
                stamp: FileStamp::of(&db),
            }),
            db,
            live,
            pool: Mutex::new(None),
            pin: tokio::sync::Mutex::new(None),
        }
    }

    pub(super) fn attach(&self, pool: &SqlitePool) {
        *self.pool.lock().unwrap_or_else(PoisonError::into_inner) = Some(pool.clone());
    }

    pub(super) fn detach(&self) {
        self.pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    fn state(&self) -> ReadState {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Looks at the files (two stats while immutable, nothing once live) and answers how the
    /// store reads from now on.
    pub(super) async fn observe(&self) -> Result<ReadState, sqlx::Error> {
        let current = self.state();
        let Some(stamp) = current.stamp else {
            return Ok(current);
        };
        if self.shm.exists() {
            return self.go_live().await;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match FileStamp::of(&self.db) {
            Some(now) if state.stamp == Some(stamp) && now != stamp => {
                *state = ReadState {
                    generation: state.generation + 1,
                    began: Instant::now(),
                    stamp: Some(now),
                };
                tracing::debug!(db = %self.db.display(), "the file changed: new immutable reads");
            }
            _ => {}
        }
        Ok(*state)
    }

    async fn go_live(&self) -> Result<ReadState, sqlx::Error> {
        let mut pin = self.pin.lock().await;
        if self.state().is_live() {
            return Ok(self.state());
        }
        let mut conn = self.live.connect().await?;
        // The read takes the shared lock that keeps the writer's files in place.
        sqlx::query("SELECT count(*) FROM sqlite_master")
            .execute(&mut conn)
            .await?;
        *pin = Some(conn);
        if let Some(pool) = &*self.pool.lock().unwrap_or_else(PoisonError::into_inner) {
            pool.set_connect_options(self.live.clone());
            tracing::info!(db = %self.db.display(), "a writer appeared: reading the store live");
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *state = ReadState {
            generation: state.generation + 1,
            began: Instant::now(),
            stamp: None,
        };
        Ok(*state)
    }

    /// Options for the `immutable` connections of a store no writer is using.
    pub(super) fn immutable_options(&self) -> SqliteConnectOptions {
        // `query_only` marks them: once a writer has made a WAL, an immutable connection reads
        // it too, so what a connection reads does not tell how it was opened.
        self.live.clone().immutable(true).pragma("query_only", "ON")
    }

    /// The pool options for a store opened `immutable`: before a connection is handed out, the
    /// files are looked at, and a connection that may show an old snapshot is closed instead.
    pub(super) fn pool_options(self: &Arc<Self>, options: SqlitePoolOptions) -> SqlitePoolOptions {
        let on_acquire = self.clone();
        let on_connect = self.clone();
        options
            .before_acquire(move |conn, meta| {
                let follower = on_acquire.clone();
                Box::pin(async move {
                    let state = follower.observe().await?;
                    if state.is_live() {
                        Ok(!opened_immutable(conn).await?)
                    } else {
                        Ok(meta.age < state.began.elapsed())
                    }
                })
            })
            .after_connect(move |conn, _meta| {
                let follower = on_connect.clone();
                Box::pin(async move {
                    if follower.observe().await?.is_live() && opened_immutable(conn).await? {
                        // Made with the options of a moment ago: the pool connects again, live.
                        return Err(sqlx::Error::Protocol(
                            "opened immutable as a writer appeared".into(),
                        ));
                    }
                    Ok(())
                })
            })
    }

    /// A live connection, for a watcher that held an immutable one.
    pub(super) async fn live_connection(&self) -> Result<SqliteConnection, sqlx::Error> {
        self.live.connect().await
    }
}

/// See [`WriterFollower::immutable_options`].
async fn opened_immutable(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("PRAGMA query_only")
        .fetch_one(conn)
        .await
}
