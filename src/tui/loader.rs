//! The loader: every database call of the console, off the render loop. It carries out the
//! app's effects and reloads what is on screen when the store changes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::app::{self, Data, Effect, RunsQuery};
use crate::deploy::DeployerConfig;
use crate::ops::{CreateService, Ops, RunQuery};

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

    let worker = console_worker_id(ops.actor());
    let mut query = RunsQuery::default();
    let mut activity_at: Option<Instant> = None;
    let mut open: Option<(i64, i64)> = None; // (run id, last log line id seen)
    let mut manifests_on_screen: Option<(String, Option<String>)> = None;
    // Services and template versions are listed only once their pane has been opened: a console
    // that stays on Runs never pays for them on a change.
    let mut services_wanted = false;
    let mut templates_wanted = false;
    loop {
        tokio::select! {
            effect = effects.recv() => match effect {
                None => break,
                Some(Effect::LoadRuns(q)) => {
                    query = q;
                    refresh_runs(&ops, &query, &mut activity_at, &tx).await;
                }
                Some(Effect::OpenRun(id)) => {
                    open = Some((id, 0));
                    refresh_open(&ops, &mut open, &tx).await;
                }
                Some(Effect::CloseRun) => open = None,
                Some(Effect::Cancel(ids)) => {
                    act_on(&ops, &ids, "canceled", &tx, |ops, id| async move {
                        ops.cancel_run(id).await.map(|outcome| match outcome {
                            crate::domain::run::CancelOutcome::Requested => format!("{id} (stop requested)"),
                            _ => id.to_string(),
                        })
                    })
                    .await;
                    refresh_runs(&ops, &query, &mut activity_at, &tx).await;
                    refresh_open(&ops, &mut open, &tx).await;
                }
                Some(Effect::Retry(ids)) => {
                    act_on(&ops, &ids, "retried", &tx, |ops, id| async move {
                        ops.retry_run(id).await.map(|new| format!("{id} as {new}"))
                    })
                    .await;
                    refresh_runs(&ops, &query, &mut activity_at, &tx).await;
                }
                Some(Effect::Claim(queue)) => {
                    let data = match ops.claim_runs(&worker, std::slice::from_ref(&queue), 1, CONSOLE_LEASE).await {
                        Ok(claimed) => match claimed.first() {
                            Some(run) => Data::Done(format!("claimed run {} as {worker}", run.id)),
                            None => Data::Done(format!("nothing queued in {queue}")),
                        },
                        Err(e) => Data::Failed(e.to_string()),
                    };
                    let _ = tx.send(data);
                    refresh_runs(&ops, &query, &mut activity_at, &tx).await;
                }
                Some(Effect::Start(id)) => {
                    let data = match ops.start_run(&worker, id).await {
                        Ok(_) => Data::Done(format!("started run {id}")),
                        Err(e) => Data::Failed(e.to_string()),
                    };
                    let _ = tx.send(data);
                    refresh_runs(&ops, &query, &mut activity_at, &tx).await;
                    refresh_open(&ops, &mut open, &tx).await;
                }
                Some(Effect::Complete(id, code)) => {
                    let error = (code != 0).then(|| format!("exit code {code} (completed from the console)"));
                    let data = match ops.complete_run(&worker, id, code, error.as_deref()).await {
                        Ok(run) => Data::Done(format!("run {id} {}", run.status)),
                        Err(e) => Data::Failed(e.to_string()),
                    };
                    let _ = tx.send(data);
                    refresh_runs(&ops, &query, &mut activity_at, &tx).await;
                    refresh_open(&ops, &mut open, &tx).await;
                }
                Some(Effect::Copy(_)) => {}
                Some(Effect::LoadServices) => {
                    services_wanted = true;
                    refresh_services(&ops, &tx).await;
                }
                Some(Effect::LoadAudit) => {
                    let data = match ops.audit_trail(None, None, Some(AUDIT_ROWS)).await {
                        Ok(rows) => Data::Audit(rows),
                        Err(e) => Data::Failed(format!("loading the audit trail: {e}")),
                    };
                    let _ = tx.send(data);
                }
                Some(Effect::LoadTemplates) => {
                    templates_wanted = true;
                    refresh_templates(&ops, &tx).await;
                }
                Some(Effect::LoadTemplateArtifacts { template, version }) => {
                    let data = match ops.version_artifacts(&template, &version).await {
                        Ok(artifacts) => Data::TemplateArtifacts { template, version, artifacts },
                        Err(e) => Data::Failed(e.to_string()),
                    };
                    let _ = tx.send(data);
                }
                Some(Effect::LoadManifests { schema, version }) => {
                    manifests_on_screen = Some((schema, version));
                    refresh_manifests(&ops, &manifests_on_screen, &tx).await;
                }
                Some(other) => {
                    catalog_action(&ops, &settings, other, &tx).await;
                    if templates_wanted {
                        refresh_templates(&ops, &tx).await;
                    }
                    if services_wanted {
                        refresh_services(&ops, &tx).await;
                    }
                    refresh_manifests(&ops, &manifests_on_screen, &tx).await;
                    refresh_runs(&ops, &query, &mut activity_at, &tx).await;
                }
            },
            Some(()) = changed_rx.recv() => {
                refresh_runs(&ops, &query, &mut activity_at, &tx).await;
                refresh_open(&ops, &mut open, &tx).await;
                if services_wanted {
                    refresh_services(&ops, &tx).await;
                }
                refresh_manifests(&ops, &manifests_on_screen, &tx).await;
                if templates_wanted {
                    refresh_templates(&ops, &tx).await;
                }
            }
        }
    }
    watcher.abort();
}

async fn refresh_services(ops: &Ops, tx: &mpsc::UnboundedSender<Data>) {
    let data = match ops.list_services().await {
        Ok(services) => Data::Services(services),
        Err(e) => Data::Failed(format!("loading services: {e}")),
    };
    let _ = tx.send(data);
}

async fn refresh_templates(ops: &Ops, tx: &mpsc::UnboundedSender<Data>) {
    let data = match ops.version_rows().await {
        Ok(rows) => Data::Templates(rows),
        Err(e) => Data::Failed(format!("loading templates: {e}")),
    };
    let _ = tx.send(data);
}

async fn refresh_manifests(
    ops: &Ops,
    on_screen: &Option<(String, Option<String>)>,
    tx: &mpsc::UnboundedSender<Data>,
) {
    let Some((schema, version)) = on_screen else {
        return;
    };
    let history = match ops.manifest_history(schema).await {
        Ok(h) => h,
        Err(e) => {
            let _ = tx.send(Data::Failed(e.to_string()));
            return;
        }
    };
    let content = ops.manifest(schema, version.as_deref()).await.ok();
    let _ = tx.send(Data::Manifests {
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
    tx: &mpsc::UnboundedSender<Data>,
) {
    let result: Result<String, crate::ops::OpsError> = match effect {
        Effect::Diff { schema, from, to } => match ops.manifest_diff(&schema, &from, &to).await {
            Ok(changes) => {
                let n = changes.len();
                let _ = tx.send(Data::Diff { from, to, changes });
                Ok(format!("{n} field(s) differ"))
            }
            Err(e) => Err(e),
        },
        Effect::Propose { schema, text } => ops
            .propose_manifest(&schema, &text, None, None)
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
    let _ = tx.send(match result {
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

async fn refresh_runs(
    ops: &Ops,
    query: &RunsQuery,
    activity_at: &mut Option<Instant>,
    tx: &mpsc::UnboundedSender<Data>,
) {
    let q = RunQuery {
        status: query.status,
        text: Some(query.text.as_str()),
        limit: Some(app::RUN_PAGE),
        ..Default::default()
    };
    let data = match ops.list_runs(&q).await {
        Ok(runs) => Data::Runs(runs),
        Err(e) => Data::Failed(format!("loading runs: {e}")),
    };
    let _ = tx.send(data);
    let data = if activity_at.is_none_or(|at| at.elapsed() >= ACTIVITY_EVERY) {
        *activity_at = Some(Instant::now());
        ops.queue_overview().await.map(Data::Overview)
    } else {
        ops.queue_counts().await.map(Data::Counts)
    };
    let data = data.unwrap_or_else(|e| Data::Failed(format!("loading counts: {e}")));
    let _ = tx.send(data);
}

async fn refresh_open(ops: &Ops, open: &mut Option<(i64, i64)>, tx: &mpsc::UnboundedSender<Data>) {
    let Some((id, after)) = open.as_mut() else {
        return;
    };
    match ops.run_detail(*id).await {
        Ok(detail) => {
            let _ = tx.send(Data::Detail(Box::new(detail)));
        }
        Err(e) => {
            let _ = tx.send(Data::Failed(e.to_string()));
            return;
        }
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
                    let _ = tx.send(Data::Logs(*id, lines));
                }
                if n < LOG_PAGE {
                    break;
                }
            }
            Err(e) => {
                let _ = tx.send(Data::Failed(format!("loading logs: {e}")));
                break;
            }
        }
    }
}

/// Applies one action to each run, then reports what worked and the first thing that did not.
async fn act_on<F, Fut>(
    ops: &Ops,
    ids: &[i64],
    verb: &str,
    tx: &mpsc::UnboundedSender<Data>,
    action: F,
) where
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
    let _ = tx.send(data);
}
