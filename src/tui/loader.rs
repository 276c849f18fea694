//! The loader: every database call of the console, off the render loop. It carries out the
//! app's effects and reloads what is on screen when the store changes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::app::{self, Data, Effect, RunsQuery};
use crate::deploy::DeployerConfig;
use crate::ops::{Backoff, CreateService, ManifestProposal, Ops, OpsError, RunQuery};

/// What the loader needs beyond the store: how a deploy from the console deploys.
#[derive(Debug, Clone, Default)]
pub struct LoaderSettings {
    pub deployer: DeployerConfig,
    pub manifest_dir: PathBuf,
}

/// Fewest milliseconds between two refreshes caused by changes: a busy queue changes thousands of
/// times a second, and nobody reads faster than this.
const REFRESH_GAP: Duration = Duration::from_millis(250);
/// Without a change watcher (it failed), poll this often.
const FALLBACK_POLL: Duration = Duration::from_secs(5);
/// The sparkline has minute resolution; its query (every run finished in the last hour) runs at
/// most this often.
const ACTIVITY_EVERY: Duration = Duration::from_secs(10);
/// Lease of a run claimed by hand from the console; an operator who walks away loses it to the
/// rescuer after this.
const CONSOLE_LEASE: Duration = Duration::from_secs(600);
/// Audit rows the `:audit` overlay shows.
const AUDIT_ROWS: i64 = 200;
/// Log lines fetched per round trip while following.
const LOG_PAGE: i64 = 1_000;

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
    let watcher = tokio::spawn(async move {
        let mut watcher = match watcher_ops.change_watcher().await {
            Ok(w) => Some(w),
            Err(e) => {
                let _ = watcher_tx.send(Data::Failed(format!(
                    "live updates unavailable ({e}); refreshing every {}s",
                    FALLBACK_POLL.as_secs()
                )));
                None
            }
        };
        loop {
            let changed = match watcher.as_mut() {
                Some(w) => match w.changed(Duration::from_secs(60)).await {
                    Ok(changed) => changed,
                    Err(e) => {
                        tracing::warn!(error = %e, "change watcher failed");
                        tokio::time::sleep(FALLBACK_POLL).await;
                        true
                    }
                },
                None => {
                    tokio::time::sleep(FALLBACK_POLL).await;
                    true
                }
            };
            if changed {
                // A full channel already holds a pending refresh: nothing is lost by dropping this.
                let _ = changed_tx.try_send(());
                tokio::time::sleep(REFRESH_GAP).await;
            }
        }
    });

    let mut out = Reporter {
        tx,
        down: false,
        backoff: Backoff::new(),
    };
    let worker = console_worker_id(ops.actor());
    let mut screen = OnScreen::default();
    loop {
        let retry = out.retry_in();
        let refresh = tokio::select! {
            effect = effects.recv() => match effect {
                None => break,
                Some(effect) => {
                    apply(&ops, &settings, &worker, effect, &mut screen, &mut out).await;
                    false
                }
            },
            // While the store is away, the next try.
            _ = sleep_for(retry) => true,
            Some(()) = changed_rx.recv() => true,
        };
        if refresh {
            refresh_screen(&ops, &mut screen, &mut out).await;
        }
    }
    watcher.abort();
}

/// What the console shows that the loader keeps fresh.
#[derive(Default)]
struct OnScreen {
    query: RunsQuery,
    activity_at: Option<Instant>,
    /// The run whose detail is open, and the last log line id seen.
    open: Option<(i64, i64)>,
    manifests: Option<(String, Option<String>)>,
    // Services and template versions are listed only once their pane has been opened: a console
    // that stays on Runs never pays for them on a change.
    services: bool,
    templates: bool,
}

async fn sleep_for(delay: Option<Duration>) {
    match delay {
        Some(delay) => tokio::time::sleep(delay).await,
        None => std::future::pending().await,
    }
}

/// Reloads everything on screen (after a change, or to see whether the store is back).
async fn refresh_screen(ops: &Ops, screen: &mut OnScreen, out: &mut Reporter) {
    refresh_runs(ops, screen, out).await;
    refresh_open(ops, screen, out).await;
    if screen.services {
        refresh_services(ops, out).await;
    }
    refresh_manifests(ops, screen, out).await;
    if screen.templates {
        refresh_templates(ops, out).await;
    }
}

/// Carries out one effect of the app, then reloads what it may have changed.
async fn apply(
    ops: &Ops,
    settings: &LoaderSettings,
    worker: &str,
    effect: Effect,
    screen: &mut OnScreen,
    out: &mut Reporter,
) {
    match effect {
        Effect::LoadRuns(q) => {
            screen.query = q;
            refresh_runs(ops, screen, out).await;
        }
        Effect::OpenRun(id) => {
            screen.open = Some((id, 0));
            refresh_open(ops, screen, out).await;
        }
        Effect::CloseRun => screen.open = None,
        Effect::Cancel(ids) => {
            act_on(ops, &ids, "canceled", out, |ops, id| async move {
                ops.cancel_run(id).await.map(|outcome| match outcome {
                    crate::domain::run::CancelOutcome::Requested => {
                        format!("{id} (stop requested)")
                    }
                    _ => id.to_string(),
                })
            })
            .await;
            refresh_runs(ops, screen, out).await;
            refresh_open(ops, screen, out).await;
        }
        Effect::Retry(ids) => {
            act_on(ops, &ids, "retried", out, |ops, id| async move {
                ops.retry_run(id).await.map(|new| format!("{id} as {new}"))
            })
            .await;
            refresh_runs(ops, screen, out).await;
        }
        Effect::Claim(queue) => {
            let data = match ops
                .claim_runs(worker, std::slice::from_ref(&queue), 1, CONSOLE_LEASE)
                .await
            {
                Ok(claimed) => match claimed.first() {
                    Some(run) => Data::Done(format!("claimed run {} as {worker}", run.id)),
                    None => Data::Done(format!("nothing queued in {queue}")),
                },
                Err(e) => Data::Failed(e.to_string()),
            };
            out.send(data);
            refresh_runs(ops, screen, out).await;
        }
        Effect::Start(id) => {
            let data = match ops.start_run(worker, id).await {
                Ok(_) => Data::Done(format!("started run {id}")),
                Err(e) => Data::Failed(e.to_string()),
            };
            out.send(data);
            refresh_runs(ops, screen, out).await;
            refresh_open(ops, screen, out).await;
        }
        Effect::Complete(id, code) => {
            let error =
                (code != 0).then(|| format!("exit code {code} (completed from the console)"));
            let data = match ops.complete_run(worker, id, code, error.as_deref()).await {
                Ok(run) => Data::Done(format!("run {id} {}", run.status)),
                Err(e) => Data::Failed(e.to_string()),
            };
            out.send(data);
            refresh_runs(ops, screen, out).await;
            refresh_open(ops, screen, out).await;
        }
        Effect::Copy(_) => {}
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
        other => {
            catalog_action(ops, settings, other, out).await;
            if screen.templates {
                refresh_templates(ops, out).await;
            }
            if screen.services {
                refresh_services(ops, out).await;
            }
            refresh_manifests(ops, screen, out).await;
            refresh_runs(ops, screen, out).await;
        }
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

async fn refresh_manifests(ops: &Ops, screen: &OnScreen, out: &mut Reporter) {
    let Some((schema, version)) = &screen.manifests else {
        return;
    };
    let history = match ops.manifest_history(schema).await {
        Ok(h) => h,
        Err(e) => return out.failed("loading manifests", e),
    };
    let content = ops.manifest(schema, version.as_deref()).await.ok();
    out.loaded(Data::Manifests {
        schema: schema.clone(),
        history,
        content: content.map(Box::new),
    });
}

/// The Services and Manifests panes' actions, each one use case of `ops`.
async fn catalog_action(ops: &Ops, settings: &LoaderSettings, effect: Effect, out: &mut Reporter) {
    let result: Result<String, crate::ops::OpsError> = match effect {
        Effect::Diff { schema, from, to } => match ops.manifest_diff(&schema, &from, &to).await {
            Ok(changes) => {
                let n = changes.len();
                out.send(Data::Diff { from, to, changes });
                Ok(format!("{n} field(s) differ"))
            }
            Err(e) => Err(e),
        },
        Effect::Propose { schema, text } => ops
            .propose_manifest(&ManifestProposal::new(&schema, &text))
            .await
            .map(|m| format!("proposed {schema} {} (draft)", m.version)),
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
        _ => return,
    };
    out.send(match result {
        Ok(text) => Data::Done(text),
        Err(e) => Data::Failed(e.to_string()),
    });
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
        text: Some(screen.query.text.as_str()),
        limit: Some(app::RUN_PAGE),
        ..Default::default()
    };
    match ops.list_runs(&q).await {
        Ok(runs) => out.loaded(Data::Runs(runs)),
        Err(e) => return out.failed("loading runs", e),
    }
    let data = if screen
        .activity_at
        .is_none_or(|at| at.elapsed() >= ACTIVITY_EVERY)
    {
        screen.activity_at = Some(Instant::now());
        ops.queue_overview().await.map(Data::Overview)
    } else {
        ops.queue_counts().await.map(Data::Counts)
    };
    match data {
        Ok(data) => out.loaded(data),
        Err(e) => out.failed("loading counts", e),
    }
}

async fn refresh_open(ops: &Ops, screen: &mut OnScreen, out: &mut Reporter) {
    let Some((id, after)) = screen.open.as_mut() else {
        return;
    };
    match ops.run_detail(*id).await {
        Ok(detail) => out.loaded(Data::Detail(Box::new(detail))),
        Err(e) => return out.failed(&format!("loading run {id}"), e),
    }
    // Catch up on logs a page at a time; a few pages per refresh keeps one chatty run from
    // starving the rest, the next refresh continues where this one stopped.
    for _ in 0..5 {
        match ops.run_logs(*id, *after, None, LOG_PAGE).await {
            Ok(lines) => {
                let n = lines.len() as i64;
                if let Some(last) = lines.last() {
                    *after = last.id;
                }
                if !lines.is_empty() {
                    out.loaded(Data::Logs(*id, lines));
                }
                if n < LOG_PAGE {
                    break;
                }
            }
            Err(e) => {
                out.failed("loading logs", e);
                break;
            }
        }
    }
}

/// Applies one action to each run, then reports what worked and the first thing that did not.
async fn act_on<F, Fut>(ops: &Ops, ids: &[i64], verb: &str, out: &mut Reporter, action: F)
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
    let data = match (done.is_empty(), failures.first()) {
        (_, None) => Data::Done(format!("{verb} {}", done.join(", "))),
        (true, Some(first)) => Data::Failed(first.clone()),
        (false, Some(first)) => Data::Failed(format!(
            "{verb} {}; {} failed, first: {first}",
            done.join(", "),
            failures.len()
        )),
    };
    out.send(data);
}
