//! The loader: every database call of the console, off the render loop. Reads run in the loader
//! itself, latest first (a burst of list changes loads the last one only); actions (deploys,
//! bulk cancels, catalog changes) run one after another in a task of their own that reports back,
//! so a slow deployer never stops the live view.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::app::{self, Data, Effect, Gone, LogRequest, LogWindow, RunsQuery};
use crate::deploy::DeployerConfig;
use crate::ops::{Backoff, CreateService, ManifestProposal, Ops, OpsError, RunQuery};

/// What the loader needs beyond the store: how a deploy from the console deploys.
#[derive(Debug, Clone, Default)]
pub struct LoaderSettings {
    pub deployer: DeployerConfig,
    pub manifest_dir: PathBuf,
    /// A change feed shared by many consoles (`ospdeck serve`: one watcher for every session);
    /// without one, the console watches the store itself.
    pub changes: Option<watch::Receiver<u64>>,
}

/// Whether the store changed: from a shared feed, from a watcher of this console's own, or (when
/// the watcher could not start) every `FALLBACK_POLL`.
enum ChangeSource {
    Shared(watch::Receiver<u64>),
    Own(Box<dyn crate::store::ChangeWatcher>),
    Poll,
}

impl ChangeSource {
    async fn open(ops: &Ops, shared: Option<watch::Receiver<u64>>) -> Result<Self, OpsError> {
        Ok(match shared {
            Some(feed) => Self::Shared(feed),
            None => Self::Own(ops.change_watcher().await?),
        })
    }

    async fn changed(&mut self) -> bool {
        match self {
            Self::Shared(feed) => {
                if feed.changed().await.is_err() {
                    // The feed's owner is gone (the server is stopping): poll until the end.
                    *self = Self::Poll;
                }
                true
            }
            Self::Own(watcher) => match watcher.changed(Duration::from_secs(60)).await {
                Ok(changed) => changed,
                Err(e) => {
                    tracing::warn!(error = %e, "change watcher failed");
                    tokio::time::sleep(FALLBACK_POLL).await;
                    true
                }
            },
            Self::Poll => {
                tokio::time::sleep(FALLBACK_POLL).await;
                true
            }
        }
    }
}

/// Bumps `changes` whenever the store may have changed: the one watcher behind a shared feed
/// (`LoaderSettings::changes`). A watcher that cannot open yet is tried again.
pub(crate) async fn feed_changes(ops: Ops, changes: watch::Sender<u64>) {
    let mut source = loop {
        match ChangeSource::open(&ops, None).await {
            Ok(source) => break source,
            Err(e) => {
                tracing::warn!(error = %e, "no change watcher yet; trying again");
                tokio::time::sleep(FALLBACK_POLL).await;
            }
        }
    };
    loop {
        if source.changed().await {
            changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// Fewest milliseconds between two refreshes caused by changes: a busy queue changes thousands of
/// times a second, and nobody reads faster than this.
const REFRESH_GAP: Duration = Duration::from_millis(250);
/// Without a change watcher (it failed), poll this often.
const FALLBACK_POLL: Duration = Duration::from_secs(5);
/// Lease of a run claimed by hand from the console; an operator who walks away loses it to the
/// rescuer after this.
const CONSOLE_LEASE: Duration = Duration::from_secs(600);
/// Audit rows the `:audit` overlay shows.
const AUDIT_ROWS: i64 = 200;
/// Matching line ids one log search lists; the rest are counted.
const LOG_MATCHES: i64 = crate::ops::MAX_LOG_MATCHES;
/// On PostgreSQL worker heartbeats arrive without a change notification (they would wake every
/// console every few seconds): presence, and the Overview while it shows, are reloaded this often
/// instead.
const PRESENCE_EVERY: Duration = Duration::from_secs(5);
/// On a quiet store nothing triggers the counts; the sparkline still moves each minute.
const ACTIVITY_AT_LEAST_EVERY: Duration = Duration::from_secs(60);

/// Sends data to the app and keeps track of whether the store answers: refreshes that meet an
/// outage become one `Unreachable` (not an error line per query), the first answer after it
/// `Reachable`, and while it lasts the loader retries on a backoff of its own.
struct Reporter {
    tx: mpsc::UnboundedSender<Data>,
    down: bool,
    backoff: Backoff,
}

impl Reporter {
    fn send(&self, data: Data) {
        let _ = self.tx.send(data);
    }

    /// Data from the store: it answers.
    fn loaded(&mut self, data: Data) {
        if self.down {
            self.down = false;
            self.backoff.reset();
            self.send(Data::Reachable);
        }
        self.send(data);
    }

    /// A refresh failed while loading `what`.
    fn failed(&mut self, what: &str, error: OpsError) {
        if !error.is_transient() {
            self.send(Data::Failed(format!("{what}: {error}")));
        } else if !self.down {
            self.down = true;
            tracing::warn!(error = %error, what, "store unreachable from the console");
            self.send(Data::Unreachable {
                since: chrono::Utc::now(),
                error: error.to_string(),
            });
        }
    }

    /// How long to wait before trying again, while the store is away.
    fn retry_in(&mut self) -> Option<Duration> {
        self.down.then(|| self.backoff.next_delay())
    }
}

/// The loader: carries out effects and reloads what is on screen when the store changes.
pub(super) async fn load(
    ops: Ops,
    settings: LoaderSettings,
    mut effects: mpsc::UnboundedReceiver<Effect>,
    tx: mpsc::UnboundedSender<Data>,
) {
    let (changed_tx, mut changed_rx) = mpsc::channel::<()>(1);
    let watcher_ops = ops.clone();
    let watcher_tx = tx.clone();
    let action_refresh = changed_tx.clone();
    let shared = settings.changes.clone();
    let _watcher = AbortOnDrop(tokio::spawn(async move {
        let mut source = match ChangeSource::open(&watcher_ops, shared).await {
            Ok(source) => source,
            Err(e) => {
                let _ = watcher_tx.send(Data::Failed(format!(
                    "live updates unavailable ({e}); refreshing every {}s",
                    FALLBACK_POLL.as_secs()
                )));
                ChangeSource::Poll
            }
        };
        loop {
            if source.changed().await {
                // A full channel already holds a pending refresh: nothing is lost by dropping this.
                let _ = changed_tx.try_send(());
                tokio::time::sleep(REFRESH_GAP).await;
            }
        }
    }));

    let mut out = Reporter {
        tx: tx.clone(),
        down: false,
        backoff: Backoff::new(),
    };
    let worker = console_worker_id(ops.actor());
    let (action_tx, action_rx) = mpsc::unbounded_channel::<Effect>();
    let _actions = AbortOnDrop(tokio::spawn(run_actions(
        ops.clone(),
        settings,
        worker,
        action_rx,
        tx,
        action_refresh,
    )));
    let mut screen = OnScreen::default();
    // On SQLite a heartbeat is a write like any other, which the change watcher sees and which
    // refreshes the screen; polling for it as well would only repeat the queries (50 consoles
    // over SSH spent most of their idle CPU there). The minute's sparkline still needs a tick.
    let presence_every = match ops.store_kind() {
        crate::store::StoreKind::Sqlite => ACTIVITY_AT_LEAST_EVERY,
        crate::store::StoreKind::Postgres => PRESENCE_EVERY,
    };
    let mut presence = tokio::time::interval(presence_every);
    presence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let retry = out.retry_in();
        let refresh = tokio::select! {
            effect = effects.recv() => match effect {
                None => break,
                Some(first) => {
                    let mut batch = vec![first];
                    while let Ok(more) = effects.try_recv() {
                        batch.push(more);
                    }
                    for effect in latest_wins(batch) {
                        if effect.writes() {
                            let _ = action_tx.send(effect);
                        } else {
                            read(&ops, effect, &mut screen, &mut out).await;
                        }
                    }
                    false
                }
            },
            // While the store is away, the next try.
            _ = sleep_for(retry) => true,
            Some(()) = changed_rx.recv() => true,
            _ = presence.tick() => {
                refresh_presence(&ops, &mut screen, &mut out).await;
                false
            }
        };
        if refresh {
            refresh_screen(&ops, &mut screen, &mut out).await;
        }
    }
}

/// A task that ends with its owner: when the runtime aborts the loader (the console quits, an SSH
/// session drops), the change watcher and a running action go with it.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Of several loads of one kind waiting together, only the last matters: the operator has
/// moved on from the others. Actions all stay, in order.
fn latest_wins(batch: Vec<Effect>) -> Vec<Effect> {
    let kind = |e: &Effect| match e {
        Effect::LoadRuns(_) => Some(0),
        Effect::OpenRun(_) | Effect::CloseRun => Some(1),
        Effect::LoadManifests { .. } => Some(2),
        Effect::LoadTemplateArtifacts { .. } => Some(3),
        Effect::OpenService(_) | Effect::CloseService => Some(4),
        // The pager takes only the answer to its last load and its last search.
        Effect::LoadLogs { .. } => Some(5),
        Effect::SearchLogs { .. } => Some(6),
        _ => None,
    };
    let mut kept: Vec<Effect> = Vec::with_capacity(batch.len());
    for (i, effect) in batch.iter().enumerate() {
        let superseded =
            kind(effect).is_some_and(|k| batch[i + 1..].iter().any(|later| kind(later) == Some(k)));
        if !superseded {
            kept.push(effect.clone());
        }
    }
    kept
}

/// What the console shows that the loader keeps fresh.
#[derive(Default)]
struct OnScreen {
    query: RunsQuery,
    activity_at: Option<Instant>,
    /// The Overview has been opened: its queues and workers are kept fresh.
    board: bool,
    /// The run whose detail is open.
    open: Option<i64>,
    manifests: Option<(String, Option<String>)>,
    /// The service whose detail is open.
    service: Option<String>,
    // Services and template versions are listed only once their pane has been opened: a console
    // that stays on Runs never pays for them on a change.
    services: bool,
    templates: bool,
}

/// Sleeps for `delay`, or forever when None (a `select!` arm that never fires).
pub(super) async fn sleep_for(delay: Option<Duration>) {
    match delay {
        Some(delay) => tokio::time::sleep(delay).await,
        None => std::future::pending().await,
    }
}

/// Reloads everything on screen (after a change, or to see whether the store is back).
async fn refresh_screen(ops: &Ops, screen: &mut OnScreen, out: &mut Reporter) {
    refresh_runs(ops, screen, out).await;
    if screen.board {
        refresh_board(ops, out).await;
    }
    refresh_open(ops, screen, out).await;
    if screen.services {
        refresh_services(ops, out).await;
    }
    refresh_manifests(ops, screen, out).await;
    refresh_service(ops, screen, out).await;
    if screen.templates {
        refresh_templates(ops, out).await;
    }
}

/// Carries out one read of the app.
async fn read(ops: &Ops, effect: Effect, screen: &mut OnScreen, out: &mut Reporter) {
    match effect {
        Effect::LoadRuns(q) => {
            screen.query = q;
            refresh_runs(ops, screen, out).await;
        }
        Effect::LoadBoard => {
            screen.board = true;
            refresh_board(ops, out).await;
        }
        Effect::OpenRun(id) => {
            screen.open = Some(id);
            refresh_open(ops, screen, out).await;
            // The pager opens on the log's last lines.
            if screen.open == Some(id) {
                load_logs(ops, id, LogRequest::Tail, out).await;
            }
        }
        Effect::LoadLogs { run_id, request } => load_logs(ops, run_id, request, out).await,
        Effect::OpenPager(run_id) => match write_log_file(ops, run_id).await {
            Ok((path, lines)) => out.loaded(Data::PagerFile {
                run_id,
                path,
                lines,
            }),
            Err(e) => out.send(Data::Failed(format!(
                "writing the log of run {run_id}: {e}"
            ))),
        },
        Effect::SearchLogs { run_id, text } => match log_search(ops, run_id, text).await {
            Ok(data) => out.loaded(data),
            Err(e) => out.failed("searching the log", e),
        },
        Effect::CloseRun => screen.open = None,
        Effect::OpenService(schema) => {
            screen.service = Some(schema);
            refresh_service(ops, screen, out).await;
        }
        Effect::CloseService => screen.service = None,
        Effect::LoadServices => {
            screen.services = true;
            refresh_services(ops, out).await;
        }
        Effect::LoadAudit => match ops.audit_trail(None, None, Some(AUDIT_ROWS)).await {
            Ok(rows) => out.loaded(Data::Audit(rows)),
            Err(e) => out.failed("loading the audit trail", e),
        },
        Effect::LoadTemplates => {
            screen.templates = true;
            refresh_templates(ops, out).await;
        }
        Effect::LoadTemplateArtifacts { template, version } => {
            match ops.version_artifacts(&template, &version).await {
                Ok(artifacts) => out.loaded(Data::TemplateArtifacts {
                    template,
                    version,
                    artifacts,
                }),
                Err(e) => out.failed("loading artifacts", e),
            }
        }
        Effect::LoadManifests { schema, version } => {
            screen.manifests = Some((schema, version));
            refresh_manifests(ops, screen, out).await;
        }
        Effect::Diff { schema, from, to } => match ops.manifest_diff(&schema, &from, &to).await {
            Ok(changes) => {
                let n = changes.len();
                out.loaded(Data::Diff { from, to, changes });
                out.send(Data::Done(format!("{n} field(s) differ")));
            }
            Err(e) => out.send(Data::Failed(e.to_string())),
        },
        // Writes go to `run_actions`; the runtime handles copying.
        _ => {}
    }
}

/// The actions, one after another in the order the operator asked for them: each reports what
/// it did and asks the loader for a refresh, which it does while the next action runs.
async fn run_actions(
    ops: Ops,
    settings: LoaderSettings,
    worker: String,
    mut actions: mpsc::UnboundedReceiver<Effect>,
    tx: mpsc::UnboundedSender<Data>,
    refresh: mpsc::Sender<()>,
) {
    while let Some(effect) = actions.recv().await {
        let data = act(&ops, &settings, &worker, effect).await;
        let _ = tx.send(data);
        // A full channel already holds a pending refresh.
        let _ = refresh.try_send(());
    }
}

/// Carries out one action: what to tell the operator.
async fn act(ops: &Ops, settings: &LoaderSettings, worker: &str, effect: Effect) -> Data {
    match effect {
        Effect::Cancel(ids) => {
            act_on(ops, &ids, "canceled", |ops, id| async move {
                ops.cancel_run(id).await.map(|outcome| match outcome {
                    crate::domain::run::CancelOutcome::Requested => {
                        format!("{id} (stop requested)")
                    }
                    _ => id.to_string(),
                })
            })
            .await
        }
        Effect::Retry(ids) => {
            act_on(ops, &ids, "retried", |ops, id| async move {
                ops.retry_run(id).await.map(|new| format!("{id} as {new}"))
            })
            .await
        }
        Effect::Claim(queue) => match ops
            .claim_runs(worker, std::slice::from_ref(&queue), 1, CONSOLE_LEASE)
            .await
        {
            Ok(claimed) => match claimed.first() {
                Some(run) => Data::Done(format!("claimed run {} as {worker}", run.id)),
                None => Data::Done(format!("nothing queued in {queue}")),
            },
            Err(e) => Data::Failed(e.to_string()),
        },
        Effect::Start(id) => match ops.start_run(worker, id).await {
            Ok(_) => Data::Done(format!("started run {id}")),
            Err(e) => Data::Failed(e.to_string()),
        },
        Effect::Complete(id, code) => {
            let error =
                (code != 0).then(|| format!("exit code {code} (completed from the console)"));
            match ops.complete_run(worker, id, code, error.as_deref()).await {
                Ok(run) => Data::Done(format!("run {id} {}", run.status)),
                Err(e) => Data::Failed(e.to_string()),
            }
        }
        other => match catalog_action(ops, settings, other).await {
            Some(Ok(text)) => Data::Done(text),
            Some(Err(e)) => Data::Failed(e.to_string()),
            None => Data::Failed("nothing to do".into()),
        },
    }
}

/// Worker presence for the status bar, and the whole Overview while it is open; on a quiet
/// store also the last hour's activity, so the chart moves with the clock.
async fn refresh_presence(ops: &Ops, screen: &mut OnScreen, out: &mut Reporter) {
    if screen.board {
        refresh_board(ops, out).await;
    } else {
        match ops.worker_presence().await {
            Ok(workers) => out.loaded(Data::Presence(workers)),
            Err(e) => out.failed("loading workers", e),
        }
    }
    // An open service detail shows its worker's last heartbeat, which no change announces.
    refresh_service(ops, screen, out).await;
    if screen
        .activity_at
        .is_some_and(|at| at.elapsed() >= ACTIVITY_AT_LEAST_EVERY)
    {
        screen.activity_at = Some(Instant::now());
        match ops.queue_overview().await {
            Ok(overview) => out.loaded(Data::Overview(overview)),
            Err(e) => out.failed("loading counts", e),
        }
    }
}

async fn refresh_board(ops: &Ops, out: &mut Reporter) {
    match ops.queue_board().await {
        Ok(board) => out.loaded(Data::Board(board)),
        Err(e) => out.failed("loading the overview", e),
    }
}

async fn refresh_services(ops: &Ops, out: &mut Reporter) {
    match ops.list_services().await {
        Ok(services) => out.loaded(Data::Services(services)),
        Err(e) => out.failed("loading services", e),
    }
}

async fn refresh_templates(ops: &Ops, out: &mut Reporter) {
    match ops.version_rows().await {
        Ok(rows) => out.loaded(Data::Templates(rows)),
        Err(e) => out.failed("loading templates", e),
    }
}

async fn refresh_service(ops: &Ops, screen: &mut OnScreen, out: &mut Reporter) {
    let Some(schema) = &screen.service else {
        return;
    };
    match ops.service_detail(schema).await {
        Ok(detail) => out.loaded(Data::Service(Box::new(detail))),
        Err(e) if e.is_transient() => out.failed(&format!("loading {schema}"), e),
        Err(e) => {
            // Said once; the detail closes rather than retry on every change.
            out.send(Data::Gone {
                what: Gone::Service(schema.clone()),
                error: e.to_string(),
            });
            screen.service = None;
        }
    }
}

async fn refresh_manifests(ops: &Ops, screen: &mut OnScreen, out: &mut Reporter) {
    let Some((schema, version)) = &screen.manifests else {
        return;
    };
    let history = match ops.manifest_history(schema).await {
        Ok(h) => h,
        Err(e) if e.is_transient() => return out.failed("loading manifests", e),
        Err(e) => {
            // Said once; the pane goes back to the services rather than retry on every change.
            out.send(Data::Gone {
                what: Gone::Service(schema.clone()),
                error: e.to_string(),
            });
            screen.manifests = None;
            return;
        }
    };
    let content = ops.manifest(schema, version.as_deref()).await.ok();
    out.loaded(Data::Manifests {
        schema: schema.clone(),
        history,
        content: content.map(Box::new),
    });
}

/// The Services and Manifests panes' actions, each one use case of `ops`.
async fn catalog_action(
    ops: &Ops,
    settings: &LoaderSettings,
    effect: Effect,
) -> Option<crate::ops::OpsResult<String>> {
    Some(match effect {
        Effect::Propose { schema, text, bump } => ops
            .propose_manifest(&ManifestProposal {
                bump: Some(bump),
                ..ManifestProposal::new(&schema, &text)
            })
            .await
            .map(|m| format!("proposed {schema} {} (draft)", m.version)),
        Effect::ReviseDraft {
            schema,
            version,
            text,
        } => ops
            .revise_draft(&schema, &version, &text)
            .await
            .map(|m| format!("saved draft {schema} {}", m.version)),
        Effect::Activate { schema, version } => ops
            .activate_manifest(&schema, &version)
            .await
            .map(|m| format!("{schema} {} is active", m.version)),
        Effect::Lock(schema) => ops
            .lock_manifest(&schema)
            .await
            .map(|m| format!("{schema} {} is locked", m.version)),
        Effect::Unlock(schema) => ops
            .unlock_manifest(&schema)
            .await
            .map(|m| format!("{schema} {} is active again", m.version)),
        Effect::Deploy(schema) => ops
            .deploy_service(&schema, &settings.deployer, &settings.manifest_dir)
            .await
            .map(|r| format!("{schema}: {}", r.summary)),
        Effect::CreateService {
            project,
            name,
            schema,
            workflows,
        } => {
            let specs = workflows.iter().filter_map(|w| w.parse().ok()).collect();
            ops.create_service(&CreateService {
                project: &project,
                name: Some(&name),
                schema: Some(&schema),
                workflows: specs,
                manifest: None,
            })
            .await
            .map(|c| {
                format!(
                    "created {} with manifest {}; deploy run {} queued",
                    c.service.schema, c.manifest.version, c.deploy_run_id
                )
            })
        }
        Effect::Promote { template, version } => ops
            .promote_version(&template, &version)
            .await
            .map(|v| format!("{template} {} is stable", v.version)),
        Effect::Deprecate { template, version } => ops
            .deprecate_version(&template, &version, None)
            .await
            .map(|v| format!("{template} {} is deprecated", v.version)),
        Effect::MakeDefault { template, version } => ops
            .set_default_version(&template, &version)
            .await
            .map(|()| format!("{template} default is {version}")),
        Effect::Label {
            template,
            label,
            version,
            percent,
        } => ops
            .set_label(&template, &label, &version, Some(percent))
            .await
            .map(|()| format!("{template} {label} → {version} ({percent}%)")),
        _ => return None,
    })
}

/// The worker id the console claims, starts and completes runs as: `console-<user>`.
pub fn console_worker_id(user: &str) -> String {
    let user: String = user
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .take(64)
        .collect();
    format!("console-{}", if user.is_empty() { "user" } else { &user })
}

async fn refresh_runs(ops: &Ops, screen: &mut OnScreen, out: &mut Reporter) {
    let q = RunQuery {
        status: screen.query.status,
        filter: Some(screen.query.text.as_str()),
        newest: screen.query.typed.then_some(app::TYPED_SCAN),
        limit: Some(app::RUN_PAGE),
        page: screen.query.page,
        ..Default::default()
    };
    match ops.list_runs(&q).await {
        Ok(runs) => out.loaded(Data::Runs(screen.query.clone(), runs)),
        Err(e) => return out.failed("loading runs", e),
    }
    // Counts and the last hour come from the counters the runs' triggers keep: a few hundred
    // rows however large the store, so every refresh reads them.
    screen.activity_at = Some(Instant::now());
    match ops.queue_overview().await {
        Ok(overview) => out.loaded(Data::Overview(overview)),
        Err(e) => out.failed("loading counts", e),
    }
}

async fn refresh_open(ops: &Ops, screen: &mut OnScreen, out: &mut Reporter) {
    let Some(id) = screen.open else {
        return;
    };
    match ops.run_detail(id).await {
        Ok(detail) => out.loaded(Data::Detail(Box::new(detail))),
        Err(e) if e.is_transient() => return out.failed(&format!("loading run {id}"), e),
        Err(e) => {
            // Said once; the detail closes rather than retry (and say it again) on every change.
            out.send(Data::Gone {
                what: Gone::Run(id),
                error: e.to_string(),
            });
            screen.open = None;
            return;
        }
    }
    // Only the count and the newest id: the pager decides whether to fetch (following) or to
    // hold still (an operator reading further up).
    let count = async {
        let total = ops.count_run_logs(id, None).await?;
        let last = ops.run_logs_before(id, i64::MAX, 1).await?;
        Ok::<_, crate::ops::OpsError>((total, last.first().map(|l| l.id)))
    };
    match count.await {
        Ok((total, last_id)) => out.loaded(Data::LogCount {
            run_id: id,
            total,
            last_id,
        }),
        Err(e) => out.failed("loading logs", e),
    }
}

async fn load_logs(ops: &Ops, run_id: i64, request: LogRequest, out: &mut Reporter) {
    match log_window(ops, run_id, request).await {
        Ok(window) => out.loaded(Data::LogWindow(Box::new(window))),
        Err(e) => out.failed("loading logs", e),
    }
}

/// The part of a run's log the pager asked for, with the line number of its first line and
/// the run's line count (both index range counts on (run_id, id)).
pub async fn log_window(
    ops: &Ops,
    run_id: i64,
    request: LogRequest,
) -> crate::ops::OpsResult<LogWindow> {
    use super::panes::runs::LOG_FETCH;
    let lines = match request {
        LogRequest::Head => ops.run_logs(run_id, 0, None, LOG_FETCH).await?,
        LogRequest::Tail => ops.run_logs_before(run_id, i64::MAX, LOG_FETCH).await?,
        LogRequest::After(id) => ops.run_logs(run_id, id, None, LOG_FETCH).await?,
        LogRequest::Before(id) => ops.run_logs_before(run_id, id, LOG_FETCH).await?,
        LogRequest::Around(id) => {
            let mut lines = ops.run_logs_before(run_id, id, LOG_FETCH / 2).await?;
            lines.extend(ops.run_logs(run_id, id - 1, None, LOG_FETCH).await?);
            lines
        }
    };
    // A count walks the index up to its bound: the ends need one, the middle two.
    let (first_rank, total) = match (request, lines.first(), lines.last()) {
        (LogRequest::Head, ..) => (0, ops.count_run_logs(run_id, None).await?),
        // Lines appended since the read are counted by the next refresh.
        (LogRequest::Tail, _, Some(last)) => {
            let through_last = ops.count_run_logs(run_id, Some(last.id + 1)).await?;
            (through_last - lines.len() as i64, through_last)
        }
        (_, Some(first), _) => (
            ops.count_run_logs(run_id, Some(first.id)).await?,
            ops.count_run_logs(run_id, None).await?,
        ),
        (_, None, _) => {
            let total = ops.count_run_logs(run_id, None).await?;
            (total, total)
        }
    };
    Ok(LogWindow {
        run_id,
        request,
        lines,
        first_rank,
        total,
    })
}

/// The whole log of a run in a temporary file, a page at a time from the store (never all in
/// memory): numbered lines with their time and level, as `run logs` prints them.
async fn write_log_file(ops: &Ops, run_id: i64) -> Result<(PathBuf, i64), String> {
    use std::io::Write;
    let file = tempfile::Builder::new()
        .prefix(&format!("ospdeck-run-{run_id}-"))
        .suffix(".log")
        .tempfile()
        .map_err(|e| e.to_string())?;
    let (file, path) = file.keep().map_err(|e| e.to_string())?;
    let mut out = std::io::BufWriter::new(file);
    let mut after = 0;
    let mut n: i64 = 0;
    let written = async {
        loop {
            let page = ops
                .run_logs(run_id, after, None, 1_000)
                .await
                .map_err(|e| e.to_string())?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for line in &page {
                n += 1;
                writeln!(
                    out,
                    "{n:>7} {} {:<5} {}",
                    line.created_at
                        .with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M:%S"),
                    line.level.as_str(),
                    line.message
                )
                .map_err(|e| e.to_string())?;
            }
        }
        out.flush().map_err(|e| e.to_string())
    };
    match written.await {
        Ok(()) => Ok((path, n)),
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

/// A log search as the loader answers it (the console's tests call it too).
pub async fn log_search(ops: &Ops, run_id: i64, text: String) -> crate::ops::OpsResult<Data> {
    let matches = ops.search_run_logs(run_id, &text, LOG_MATCHES).await?;
    Ok(Data::LogMatches {
        run_id,
        text,
        matches,
    })
}

/// Applies one action to each run, then reports what worked and the first thing that did not.
async fn act_on<F, Fut>(ops: &Ops, ids: &[i64], verb: &str, action: F) -> Data
where
    F: Fn(Ops, i64) -> Fut,
    Fut: std::future::Future<Output = crate::ops::OpsResult<String>>,
{
    let mut done = Vec::new();
    let mut failures = Vec::new();
    for &id in ids {
        match action(ops.clone(), id).await {
            Ok(text) => done.push(text),
            Err(e) => failures.push(e.to_string()),
        }
    }
    match (done.is_empty(), failures.first()) {
        (_, None) => Data::Done(format!("{verb} {}", done.join(", "))),
        (true, Some(first)) if failures.len() == 1 => Data::Failed(first.clone()),
        (true, Some(first)) => Data::Failed(format!(
            "none {verb}: {} refused, first: {first}",
            failures.len()
        )),
        (false, Some(first)) => Data::Failed(format!(
            "{verb} {}; {} failed, first: {first}",
            done.join(", "),
            failures.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn of_waiting_loads_only_the_last_of_each_kind_is_kept_and_actions_all_stay() {
        let query = |text: &str| RunsQuery {
            text: text.into(),
            ..RunsQuery::default()
        };
        let batch = vec![
            Effect::LoadRuns(query("a")),
            Effect::Cancel(vec![1]),
            Effect::OpenRun(1),
            Effect::LoadRuns(query("ab")),
            Effect::CloseRun,
            Effect::Cancel(vec![2]),
            Effect::LoadRuns(query("abc")),
            Effect::LoadServices,
        ];
        assert_eq!(
            latest_wins(batch),
            vec![
                Effect::Cancel(vec![1]),
                Effect::CloseRun,
                Effect::Cancel(vec![2]),
                Effect::LoadRuns(query("abc")),
                Effect::LoadServices,
            ]
        );
    }
}
