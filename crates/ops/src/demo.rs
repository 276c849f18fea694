//! A demo workspace, so a newcomer sees a live console at once: a project with workflows of every
//! type and runs in every state (with logs and artifacts), then a trickle of new runs.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;

use super::{EnqueueRequest, ManifestProposal, Ops, OpsError, OpsResult, WorkflowRequest};
use crate::domain::run::{Completion, LogLevel, NewArtifact, NewLogLine, RunStatus};
use crate::domain::template::VersionStatus;
use crate::domain::workflow::WorkflowType;
use ospdeck_artifacts::ArtifactStore;

pub const DEMO_PROJECT: &str = "demo";
pub const DEMO_QUEUE: &str = "demo";
const SEED_WORKER: &str = "demo-seed";

/// (name, type, command). Commands are POSIX sh; `test` fails when the payload asks it to.
const WORKFLOWS: &[(&str, WorkflowType, &str)] = &[
    (
        "build",
        WorkflowType::Build,
        "echo 'compiling 214 crates'; sleep 1; echo 'build ok'",
    ),
    (
        "test",
        WorkflowType::Test,
        "echo 'running 12 tests'; sleep 2; case \"$OSPDECK_PAYLOAD\" in *'\"fail\":true'*) echo 'test billing::rounding failed' >&2; exit 1;; esac; echo '12 passed'",
    ),
    (
        "deploy",
        WorkflowType::Deploy,
        "echo \"deploying run $OSPDECK_RUN_ID\"; sleep 3; echo 'rollout complete'",
    ),
    (
        "backup",
        WorkflowType::Backup,
        "echo 'dumping telecom_billing'; sleep 1; echo 'backup written (42 MiB)'",
    ),
    (
        "upgrade",
        WorkflowType::Upgrade,
        "echo 'upgrading to 17.0'; sleep 4; echo 'upgraded'",
    ),
];

/// How each seeded run ends up. Queued ones come last so the claims before them take the others.
const PLAN: &[(&str, RunStatus, bool)] = &[
    ("build", RunStatus::Succeeded, false),
    ("test", RunStatus::Succeeded, false),
    ("deploy", RunStatus::Succeeded, false),
    ("backup", RunStatus::Succeeded, false),
    ("build", RunStatus::Succeeded, false),
    ("test", RunStatus::Failed, true),
    ("upgrade", RunStatus::Failed, false),
    ("deploy", RunStatus::Canceled, false),
    ("backup", RunStatus::Canceled, false),
    ("test", RunStatus::Succeeded, false),
    ("upgrade", RunStatus::Running, false),
    ("deploy", RunStatus::Claimed, false),
    ("build", RunStatus::Queued, false),
    ("test", RunStatus::Queued, true),
    ("deploy", RunStatus::Queued, false),
];

#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    pub project: &'static str,
    pub workflows: usize,
    pub services: usize,
    pub runs: usize,
}

/// The demo bundle of assets/bundles/section7, built into the binary.
const SECTION7: &[(&str, &str)] = &[
    (
        "manifest.json",
        include_str!("../../../assets/bundles/section7/manifest.json"),
    ),
    (
        "fr/master.md",
        include_str!("../../../assets/bundles/section7/fr/master.md"),
    ),
    (
        "en/master.md",
        include_str!("../../../assets/bundles/section7/en/master.md"),
    ),
    (
        "config.json",
        include_str!("../../../assets/bundles/section7/config.json"),
    ),
    (
        "examples/fr-golden.md",
        include_str!("../../../assets/bundles/section7/examples/fr-golden.md"),
    ),
    (
        "examples/en-golden.md",
        include_str!("../../../assets/bundles/section7/examples/en-golden.md"),
    ),
];

/// section7 in three versions: 1.0.0 stable and default, 1.1.0 stable on a 20% canary, 1.2.0 draft.
async fn seed_templates(ops: &Ops, store: Arc<dyn ArtifactStore>) -> OpsResult<()> {
    let dir = tempfile::tempdir()
        .map_err(|e| OpsError::Refused(format!("cannot write the demo bundle: {e}")))?;
    let write = |extra: &str| -> std::io::Result<()> {
        for (path, text) in SECTION7 {
            let file = dir.path().join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let body = if path.ends_with(".md") {
                format!("{text}{extra}")
            } else {
                (*text).to_owned()
            };
            std::fs::write(file, body)?;
        }
        Ok(())
    };
    let plan: [(&str, &str, VersionStatus, bool); 3] = [
        ("1.0.0", "", VersionStatus::Stable, true),
        (
            "1.1.0",
            "\nRevised wording.\n",
            VersionStatus::Stable,
            false,
        ),
        (
            "1.2.0",
            "\nDraft: new citation rules.\n",
            VersionStatus::Draft,
            false,
        ),
    ];
    for (version, extra, status, default) in plan {
        write(extra).map_err(|e| OpsError::Refused(format!("demo bundle: {e}")))?;
        ops.publish_bundle(
            dir.path(),
            &super::PublishRequest {
                template: "section7",
                project: Some(DEMO_PROJECT),
                version,
                status: Some(status),
                changelog: Some("demo"),
                set_default: default,
                label: default.then_some("stable"),
            },
            store.clone(),
            &|_, _| {},
        )
        .await?;
    }
    ops.set_label("section7", "canary", "1.1.0", Some(20)).await
}

/// Seeds the demo project unless it exists (then answers None). `progress(done, total)`.
pub async fn seed_demo(
    ops: &Ops,
    artifacts: Arc<dyn ArtifactStore>,
    progress: &dyn Fn(u64, u64),
) -> OpsResult<Option<DemoSummary>> {
    match ops.project(DEMO_PROJECT).await {
        Ok(_) => return Ok(None),
        Err(OpsError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let total = (WORKFLOWS.len() + PLAN.len()) as u64;
    ops.create_project(DEMO_PROJECT, Some("Demo workspace"))
        .await?;
    for (i, (name, kind, command)) in WORKFLOWS.iter().enumerate() {
        ops.create_workflow(&WorkflowRequest {
            queue: Some(DEMO_QUEUE),
            timeout_secs: Some(600),
            ..WorkflowRequest::new(DEMO_PROJECT, name, *kind, command)
        })
        .await?;
        progress(i as u64 + 1, total);
    }
    for (i, (workflow, status, fail)) in PLAN.iter().enumerate() {
        seed_run(ops, workflow, *status, *fail).await?;
        progress((WORKFLOWS.len() + i) as u64 + 1, total);
    }
    // A retry of the failed test run, pointing at it.
    let failed = ops
        .list_runs(&super::RunQuery {
            status: Some(RunStatus::Failed),
            project: Some(DEMO_PROJECT),
            limit: Some(1),
            ..Default::default()
        })
        .await?;
    let mut runs = PLAN.len();
    if let Some(run) = failed.first() {
        ops.retry_run(run.id).await?;
        runs += 1;
    }
    seed_services(ops).await?;
    runs += DEMO_SERVICES.len();
    seed_failed_service_run(ops).await?;
    runs += 1;
    seed_templates(ops, artifacts).await?;
    Ok(Some(DemoSummary {
        project: DEMO_PROJECT,
        workflows: WORKFLOWS.len(),
        services: DEMO_SERVICES.len(),
        runs,
    }))
}

/// (schema, name, workflows): one with a draft waiting, one locked, one on its second version.
const DEMO_SERVICES: &[(&str, &str, &[&str])] = &[
    (
        "telecom_billing",
        "Telecom Billing",
        &[
            "processBilling:calculateCharges,sendInvoice",
            "handlePayment:processPayment,updateAccount",
        ],
    ),
    (
        "payments_gateway",
        "Payments Gateway",
        &["authorize:checkFraud,capture"],
    ),
    ("crm_sync", "CRM Sync", &["syncContacts:fetch,upsert"]),
];

async fn seed_services(ops: &Ops) -> OpsResult<()> {
    for (schema, name, workflows) in DEMO_SERVICES {
        ops.create_service(&super::CreateService {
            project: DEMO_PROJECT,
            name: Some(name),
            schema: Some(schema),
            workflows: workflows.iter().filter_map(|w| w.parse().ok()).collect(),
            manifest: None,
        })
        .await?;
    }
    propose_described(ops, "telecom_billing", "adds invoice auditing").await?;
    ops.lock_manifest("payments_gateway").await?;
    let v = propose_described(ops, "crm_sync", "nightly contact sync").await?;
    ops.activate_manifest("crm_sync", &v.version).await?;
    Ok(())
}

/// A failed run of a service's workflow with a long log whose one error line is far from its
/// end: what an operator triages (filter, open, search the log, go to the service, retry).
async fn seed_failed_service_run(ops: &Ops) -> OpsResult<()> {
    let payload = json!({ "cycle": "2026-11", "zone": 7, "requested_by": "demo" }).to_string();
    // The highest priority, so the claim below takes this run whatever else waits.
    ops.enqueue_run(&EnqueueRequest {
        project: DEMO_PROJECT,
        workflow: "telecom_billing.processBilling",
        payload: Some(&payload),
        priority: Some(1_000),
        ..Default::default()
    })
    .await?;
    let Some(claimed) = ops
        .claim_runs(SEED_WORKER, &[], 1, Duration::from_secs(120))
        .await?
        .into_iter()
        .next()
    else {
        return Err(OpsError::Refused("the demo run was not claimable".into()));
    };
    let hold = claimed.hold();
    ops.start_runs(SEED_WORKER, &[hold]).await?;
    let mut lines = vec![NewLogLine::new(
        LogLevel::Info,
        "billing cycle 2026-11: 400 accounts",
        json!({}),
    )];
    for account in 1..=400 {
        lines.push(if account == 37 {
            NewLogLine::new(
                LogLevel::Error,
                "account 37: rate table missing for zone 7, not charged",
                json!({ "account": account }),
            )
        } else {
            NewLogLine::new(
                LogLevel::Info,
                &format!("account {account}: charged"),
                json!({ "account": account }),
            )
        });
    }
    lines.push(NewLogLine::new(
        LogLevel::Error,
        "1 account could not be charged; exit 3",
        json!({}),
    ));
    ops.append_logs(claimed.id, &lines).await?;
    ops.complete_runs(
        SEED_WORKER,
        &[Completion {
            hold,
            exit_code: Some(3),
            error: Some("1 account could not be charged (exit code 3)".into()),
            canceled: false,
        }],
    )
    .await?;
    Ok(())
}

/// A minor version of the governing manifest with a description added, as a draft.
async fn propose_described(
    ops: &Ops,
    schema: &str,
    description: &str,
) -> OpsResult<crate::domain::manifest::Manifest> {
    let mut content = ops.manifest(schema, None).await?.content;
    content["description"] = json!(description);
    ops.propose_manifest(&ManifestProposal {
        bump: Some(crate::domain::manifest::Bump::Minor),
        ..ManifestProposal::new(schema, &content.to_string())
    })
    .await
}

async fn seed_run(ops: &Ops, workflow: &str, status: RunStatus, fail: bool) -> OpsResult<()> {
    let payload = json!({ "fail": fail, "requested_by": "demo" }).to_string();
    let id = ops
        .enqueue_run(&EnqueueRequest {
            project: DEMO_PROJECT,
            workflow,
            payload: Some(&payload),
            ..Default::default()
        })
        .await?;
    match status {
        RunStatus::Queued => return Ok(()),
        RunStatus::Canceled if workflow == "backup" => {
            ops.cancel_run(id).await?;
            return Ok(());
        }
        _ => {}
    }
    let lease = Duration::from_secs(120);
    let Some(claimed) = ops
        .claim_runs(SEED_WORKER, &[DEMO_QUEUE.to_owned()], 1, lease)
        .await?
        .into_iter()
        .next()
    else {
        return Err(OpsError::Refused("the demo run was not claimable".into()));
    };
    let hold = claimed.hold();
    if status == RunStatus::Claimed {
        return Ok(());
    }
    ops.start_runs(SEED_WORKER, &[hold]).await?;
    let mut lines = vec![
        NewLogLine::new(LogLevel::Info, &format!("starting {workflow}"), json!({})),
        NewLogLine::new(LogLevel::Info, "step 1/2 done", json!({ "step": 1 })),
    ];
    if fail || status == RunStatus::Failed {
        lines.push(NewLogLine::new(
            LogLevel::Error,
            "assertion failed: left == right",
            json!({}),
        ));
    }
    ops.append_logs(claimed.id, &lines).await?;
    match status {
        RunStatus::Running => return Ok(()),
        RunStatus::Canceled => {
            ops.cancel_run(claimed.id).await?;
            ops.complete_runs(
                SEED_WORKER,
                &[Completion {
                    hold,
                    exit_code: None,
                    error: Some("canceled on request".into()),
                    canceled: true,
                }],
            )
            .await?;
            return Ok(());
        }
        _ => {}
    }
    if status == RunStatus::Succeeded {
        let body = format!("{workflow} output of run {}", claimed.id);
        ops.add_artifact(&NewArtifact {
            run_id: claimed.id,
            key: format!("{workflow}/report.txt"),
            url: Some(format!("file:///var/lib/demo/{}/report.txt", claimed.id)),
            sha256: Some(sha256_hex(body.as_bytes())),
            size_bytes: Some(body.len() as i64),
            content_type: Some("text/plain".into()),
            expires_at: None,
        })
        .await?;
    }
    let failed = status == RunStatus::Failed;
    ops.complete_runs(
        SEED_WORKER,
        &[Completion {
            hold,
            exit_code: Some(i32::from(failed)),
            error: failed.then(|| "exit code 1".to_owned()),
            canceled: false,
        }],
    )
    .await?;
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Queues a demo run every few seconds until `stop`; one in four test runs is set to fail.
pub async fn keep_feeding(ops: Ops, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3));
    let mut n: usize = 0;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        // One service worker that keeps its heartbeat, so the registry shows one alive.
        if n % 3 == 0
            && let Err(e) = ops
                .service_worker_heartbeat("telecom_billing", "demo-billing-worker")
                .await
        {
            tracing::warn!(error = %e, "demo heartbeat failed");
        }
        let (workflow, ..) = WORKFLOWS[n % WORKFLOWS.len()];
        let payload =
            json!({ "fail": workflow == "test" && n % 4 == 1, "requested_by": "demo" }).to_string();
        let req = EnqueueRequest {
            project: DEMO_PROJECT,
            workflow,
            payload: Some(&payload),
            ..Default::default()
        };
        if let Err(e) = ops.enqueue_run(&req).await {
            tracing::warn!(error = %e, "demo could not queue a run");
        }
        n += 1;
    }
}
