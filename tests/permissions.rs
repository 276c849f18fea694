//! Who may do what. Every role × every action of issue 6's matrix, on both stores through ops'
//! own check; and on PostgreSQL the same matrix again with ops' check out of the way, each member
//! connected as its own login role, so that grants, row-level security and triggers alone decide.
//! A refused action must leave every table as it was; an allowed one must change something.

mod common;

conformance!(every_role_and_action_through_ops);

mod cases {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::Duration;

    use ospdeck::artifacts::FsArtifactStore;
    use ospdeck::deploy::DeployerConfig;
    use ospdeck::domain::permission::{Identity, Role};
    use ospdeck::domain::run::NewArtifact;
    use ospdeck::domain::service::WorkflowSpec;
    use ospdeck::domain::template::VersionStatus;
    use ospdeck::domain::tool::{NewAdvisory, Severity};
    use ospdeck::domain::workflow::WorkflowType;
    use ospdeck::ops::{
        CreateService, DEPLOY_WORKFLOW, EnqueueRequest, Ops, OpsError, PublishRequest,
    };
    use ospdeck::ops::{ManifestProposal, WorkflowRequest};
    use ospdeck::store::{Store, StoreError};

    use super::common::{BoxError, Harness, TestResult};

    const LEASE: Duration = Duration::from_secs(60);

    /// Everything a member can try, one per use case that changes something (plus reading).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Act {
        Read,
        CreateWorkflow,
        EnqueueRun,
        EnqueueDeploy,
        RetryRun,
        ClaimRun,
        StartRun,
        CompleteRun,
        CancelRun,
        AddArtifact,
        CreateService,
        ProposeManifest,
        ActivateManifest,
        LockManifest,
        UnlockManifest,
        DeployService,
        ServiceHeartbeat,
        PublishDraft,
        PublishStableAsDefault,
        PromoteTemplate,
        DeprecateTemplate,
        SetDefault,
        SetLabel,
        DeleteDraft,
        AddMember,
        RemoveMember,
        AddTool,
        AddAdvisory,
    }

    impl Act {
        pub const ALL: [Act; 28] = [
            Act::Read,
            Act::CreateWorkflow,
            Act::EnqueueRun,
            Act::EnqueueDeploy,
            Act::RetryRun,
            Act::ClaimRun,
            Act::StartRun,
            Act::CompleteRun,
            Act::CancelRun,
            Act::AddArtifact,
            Act::CreateService,
            Act::ProposeManifest,
            Act::ActivateManifest,
            Act::LockManifest,
            Act::UnlockManifest,
            Act::DeployService,
            Act::ServiceHeartbeat,
            Act::PublishDraft,
            Act::PublishStableAsDefault,
            Act::PromoteTemplate,
            Act::DeprecateTemplate,
            Act::SetDefault,
            Act::SetLabel,
            Act::DeleteDraft,
            Act::AddMember,
            Act::RemoveMember,
            Act::AddTool,
            Act::AddAdvisory,
        ];

        /// The least role that may, written out from issue 6 (not computed from the domain's
        /// table, which its own unit test checks): None is the store's administrator only.
        pub fn least_role(self) -> Option<Role> {
            use Act::*;
            match self {
                Read => Some(Role::Viewer),
                CreateWorkflow | EnqueueRun | RetryRun | ClaimRun | StartRun | CompleteRun
                | AddArtifact | ServiceHeartbeat | ProposeManifest | PublishDraft | DeleteDraft => {
                    Some(Role::Developer)
                }
                EnqueueDeploy
                | CancelRun
                | CreateService
                | ActivateManifest
                | DeployService
                | PublishStableAsDefault
                | PromoteTemplate
                | DeprecateTemplate
                | SetDefault
                | SetLabel => Some(Role::Admin),
                LockManifest | UnlockManifest | AddMember | RemoveMember => Some(Role::Owner),
                AddTool | AddAdvisory => None,
            }
        }

        pub fn allowed_for(self, role: Role) -> bool {
            self.least_role().is_some_and(|least| role >= least)
        }
    }

    /// Names for one (action, role) attempt: a project of its own, so attempts never meet.
    pub struct Ctx {
        pub project: String,
        schema: String,
        template: String,
        queue: String,
        worker: String,
        pub user: String,
        other: String,
        run: i64,
        dir: PathBuf,
        artifacts: Arc<FsArtifactStore>,
    }

    impl Ctx {
        pub fn new(h: &Harness, act: Act, role: Role, dir: &Path) -> Self {
            let i = Act::ALL.iter().position(|a| *a == act).unwrap_or(0);
            let tag = format!("a{i}{}", &role.as_str()[..1]);
            Self {
                project: format!("p-{tag}"),
                schema: format!("s_{tag}"),
                template: format!("t-{tag}"),
                queue: format!("q-{tag}"),
                worker: format!("w-{tag}"),
                user: format!("{}_{role}", h.unique_prefix()),
                other: format!("other-{tag}"),
                run: 0,
                dir: dir.join(&tag),
                artifacts: Arc::new(FsArtifactStore::new(dir.join("artifacts"))),
            }
        }
    }

    fn bundle(dir: &Path, salt: &str) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("prompt.md"), format!("hello {salt}"))?;
        std::fs::write(
            dir.join("manifest.json"),
            r#"{"artifacts": [{"kind": "master_prompt", "locale": "en", "role": "system",
                               "path": "prompt.md", "content_type": "text/markdown"}]}"#,
        )?;
        Ok(dir.to_owned())
    }

    async fn publish(
        ops: &Ops,
        ctx: &Ctx,
        version: &str,
        status: VersionStatus,
        default: bool,
    ) -> Result<(), OpsError> {
        let dir = bundle(&ctx.dir.join(version), version)
            .map_err(|e| OpsError::Refused(e.to_string()))?;
        ops.publish_bundle(
            &dir,
            &PublishRequest {
                template: &ctx.template,
                project: Some(&ctx.project),
                version,
                status: Some(status),
                set_default: default,
                ..Default::default()
            },
            ctx.artifacts.clone(),
            &|_, _| {},
        )
        .await
        .map(|_| ())
    }

    async fn create_service(ops: &Ops, ctx: &Ctx) -> Result<(), OpsError> {
        let workflows: Vec<WorkflowSpec> = ["work:step"]
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        ops.create_service(&CreateService {
            project: &ctx.project,
            name: Some("Service"),
            schema: Some(&ctx.schema),
            workflows,
            manifest: None,
        })
        .await
        .map(|_| ())
    }

    async fn enqueue(ops: &Ops, ctx: &Ctx) -> Result<i64, OpsError> {
        ops.enqueue_run(&EnqueueRequest {
            project: &ctx.project,
            workflow: "build",
            ..Default::default()
        })
        .await
    }

    /// What the administrator sets up before the member tries `act`.
    pub async fn prepare(admin: &Ops, act: Act, role: Role, ctx: &mut Ctx) -> TestResult {
        admin.create_project(&ctx.project, None).await?;
        // On PostgreSQL the administrator's `member add` also creates the member's login role.
        admin
            .set_member(&ctx.project, &ctx.user, role, false)
            .await?;
        admin
            .create_workflow(&WorkflowRequest {
                queue: Some(&ctx.queue),
                ..WorkflowRequest::new(&ctx.project, "build", WorkflowType::Build, "true")
            })
            .await?;
        use Act::*;
        match act {
            RetryRun => {
                ctx.run = enqueue(admin, ctx).await?;
                admin.cancel_run(ctx.run).await?;
            }
            CancelRun | AddArtifact | ClaimRun => ctx.run = enqueue(admin, ctx).await?,
            // Held by the worker that will try: see `take_hold`.
            StartRun | CompleteRun => ctx.run = enqueue(admin, ctx).await?,
            EnqueueDeploy | ProposeManifest | LockManifest | DeployService | ServiceHeartbeat => {
                create_service(admin, ctx).await?
            }
            ActivateManifest => {
                create_service(admin, ctx).await?;
                let text = admin.manifest(&ctx.schema, None).await?.content.to_string();
                admin
                    .propose_manifest(&ManifestProposal {
                        version: Some("1.0.1"),
                        ..ManifestProposal::new(&ctx.schema, &text)
                    })
                    .await?;
            }
            UnlockManifest => {
                create_service(admin, ctx).await?;
                admin.lock_manifest(&ctx.schema).await?;
            }
            PromoteTemplate | DeleteDraft => {
                publish(admin, ctx, "1.0.0", VersionStatus::Draft, false).await?
            }
            DeprecateTemplate | SetDefault => {
                publish(admin, ctx, "1.0.0", VersionStatus::Stable, true).await?;
                publish(admin, ctx, "1.1.0", VersionStatus::Stable, false).await?;
            }
            SetLabel => publish(admin, ctx, "1.0.0", VersionStatus::Stable, false).await?,
            RemoveMember => {
                admin
                    .set_member(&ctx.project, &ctx.other, Role::Viewer, true)
                    .await?;
            }
            Read
            | CreateWorkflow
            | EnqueueRun
            | CreateService
            | PublishDraft
            | PublishStableAsDefault
            | AddMember
            | AddTool
            | AddAdvisory => {}
        }
        Ok(())
    }

    /// A run is started and completed by the identity that claimed it (on PostgreSQL the
    /// database fences runs by who claimed them): the member's own worker claims where the
    /// member may claim, the administrator's where it may not.
    pub async fn take_hold(
        admin: &Ops,
        member: &Ops,
        act: Act,
        role: Role,
        ctx: &Ctx,
    ) -> TestResult {
        if !matches!(act, Act::StartRun | Act::CompleteRun) {
            return Ok(());
        }
        let holder = if Act::ClaimRun.allowed_for(role) {
            member
        } else {
            admin
        };
        holder
            .claim_runs(&ctx.worker, std::slice::from_ref(&ctx.queue), 1, LEASE)
            .await?;
        if act == Act::CompleteRun {
            holder.start_run(&ctx.worker, ctx.run).await?;
        }
        Ok(())
    }

    /// The member tries. An action that quietly did nothing (a claim that claimed nothing) is an
    /// error too: the fingerprint check below tells refusals from no-ops either way.
    pub async fn attempt(ops: &Ops, act: Act, ctx: &Ctx) -> Result<(), BoxError> {
        use Act::*;
        match act {
            Read => {
                let members = ops.members(&ctx.project).await?;
                let runs = ops.list_workflows(Some(&ctx.project)).await?;
                if members.len() < 2 || runs.is_empty() {
                    return Err("saw nothing of the project".into());
                }
            }
            CreateWorkflow => {
                ops.create_workflow(&WorkflowRequest::new(
                    &ctx.project,
                    "made",
                    WorkflowType::Test,
                    "true",
                ))
                .await?;
            }
            EnqueueRun => {
                enqueue(ops, ctx).await?;
            }
            EnqueueDeploy => {
                let payload = format!(r#"{{"service": "{}"}}"#, ctx.schema);
                ops.enqueue_run(&EnqueueRequest {
                    project: &ctx.project,
                    workflow: DEPLOY_WORKFLOW,
                    payload: Some(&payload),
                    ..Default::default()
                })
                .await?;
            }
            RetryRun => {
                ops.retry_run(ctx.run).await?;
            }
            ClaimRun => {
                let claimed = ops
                    .claim_runs(&ctx.worker, std::slice::from_ref(&ctx.queue), 1, LEASE)
                    .await?;
                if claimed.is_empty() {
                    return Err("claimed nothing".into());
                }
            }
            StartRun => {
                ops.start_run(&ctx.worker, ctx.run).await?;
            }
            CompleteRun => {
                ops.complete_run(&ctx.worker, ctx.run, 0, None).await?;
            }
            CancelRun => {
                ops.cancel_run(ctx.run).await?;
            }
            AddArtifact => {
                ops.add_artifact(&NewArtifact {
                    run_id: ctx.run,
                    key: "report.txt".into(),
                    url: Some("file:///tmp/report.txt".into()),
                    sha256: None,
                    size_bytes: Some(1),
                    content_type: None,
                    expires_at: None,
                })
                .await?;
            }
            CreateService => create_service(ops, ctx).await?,
            ProposeManifest => {
                let text = ops.manifest(&ctx.schema, None).await?.content.to_string();
                ops.propose_manifest(&ManifestProposal::new(&ctx.schema, &text))
                    .await?;
            }
            ActivateManifest => {
                ops.activate_manifest(&ctx.schema, "1.0.1").await?;
            }
            LockManifest => {
                ops.lock_manifest(&ctx.schema).await?;
            }
            UnlockManifest => {
                ops.unlock_manifest(&ctx.schema).await?;
            }
            DeployService => {
                ops.deploy_service(&ctx.schema, &DeployerConfig::default(), &ctx.dir)
                    .await?;
            }
            ServiceHeartbeat => {
                ops.service_worker_heartbeat(&ctx.schema, &ctx.worker)
                    .await?;
            }
            PublishDraft => publish(ops, ctx, "2.0.0", VersionStatus::Draft, false).await?,
            PublishStableAsDefault => {
                publish(ops, ctx, "2.0.0", VersionStatus::Stable, true).await?
            }
            PromoteTemplate => {
                ops.promote_version(&ctx.template, "1.0.0").await?;
            }
            DeprecateTemplate => {
                ops.deprecate_version(&ctx.template, "1.1.0", Some("old"))
                    .await?;
            }
            SetDefault => ops.set_default_version(&ctx.template, "1.1.0").await?,
            SetLabel => {
                ops.set_label(&ctx.template, "beta", "1.0.0", Some(50))
                    .await?
            }
            DeleteDraft => ops.delete_draft(&ctx.template, "1.0.0").await?,
            AddMember => {
                ops.set_member(&ctx.project, &ctx.other, Role::Viewer, true)
                    .await?;
            }
            RemoveMember => ops.remove_member(&ctx.project, &ctx.other).await?,
            AddTool => {
                let name = format!("tool-{}", ctx.project);
                ops.add_tool(&name, "1.0.0", "registry/tool:1").await?;
            }
            AddAdvisory => {
                ops.add_advisory(&NewAdvisory {
                    tool_name: format!("tool-{}", ctx.project),
                    from_version: "1.0.0".into(),
                    to_version: "2.0.0".into(),
                    severity: Severity::Info,
                    title: "read this".into(),
                    guide_url: None,
                })
                .await?;
            }
        }
        Ok(())
    }

    /// Row counts (and heartbeats) of every table an action can touch, read as the administrator
    /// in one query.
    pub async fn fingerprint(h: &Harness) -> String {
        let mut counts: Vec<String> = [
            "audit_log",
            "run_events",
            "runs",
            "run_artifacts",
            "workflows",
            "templates",
            "template_versions",
            "template_labels",
            "project_memberships",
            "tools",
            "upgrade_advisories",
        ]
        .iter()
        .map(|t| format!("(SELECT count(*) FROM {})", h.table(t)))
        .collect();
        for t in ["services", "service_manifests"] {
            counts.push(format!("(SELECT count(*) FROM {})", h.meta(t)));
        }
        counts.push(format!(
            "(SELECT count(*) FROM {} WHERE last_heartbeat IS NOT NULL)",
            h.meta("worker_registry")
        ));
        let sql = format!("SELECT {}", counts.join(" || ',' || "));
        h.scalar_text(&sql).await
    }

    /// Runs every role × action with `member_ops(role, user)` as the actor; answers how many
    /// pairs were tried. `refusal_ok` says whether an error is the refusal expected.
    pub async fn run_matrix<F, Fut>(
        h: &Harness,
        member_ops: F,
        refusal_ok: fn(&BoxError) -> bool,
    ) -> Result<usize, BoxError>
    where
        F: Fn(Role, String) -> Fut,
        Fut: std::future::Future<Output = Result<Ops, BoxError>>,
    {
        let dir = tempfile::tempdir()?;
        let mut pairs = 0;
        for role in Role::ALL {
            let mut ops_of_role: Option<Ops> = None;
            for act in Act::ALL {
                let mut ctx = Ctx::new(h, act, role, dir.path());
                prepare(&h.ops, act, role, &mut ctx).await?;
                let ops = match &ops_of_role {
                    Some(ops) => ops.clone(),
                    None => {
                        let ops = member_ops(role, ctx.user.clone()).await?;
                        ops_of_role = Some(ops.clone());
                        ops
                    }
                };
                take_hold(&h.ops, &ops, act, role, &ctx).await?;
                let before = fingerprint(h).await;
                let outcome = attempt(&ops, act, &ctx).await;
                let after = fingerprint(h).await;
                let expected = act.allowed_for(role);
                match outcome {
                    Ok(()) => {
                        assert!(expected, "{role} could {act:?} but must not");
                        if act != Act::Read {
                            assert_ne!(
                                before, after,
                                "{role} {act:?} succeeded but changed nothing"
                            );
                        }
                    }
                    Err(e) => {
                        assert!(!expected, "{role} could not {act:?}: {e}");
                        assert!(refusal_ok(&e), "{role} {act:?} refused the wrong way: {e}");
                        assert_eq!(
                            before, after,
                            "{role} {act:?} was refused but wrote something"
                        );
                    }
                }
                pairs += 1;
            }
        }
        Ok(pairs)
    }

    pub async fn every_role_and_action_through_ops(h: Harness) -> TestResult {
        let store: Arc<dyn Store> = h.store.clone();
        let pairs = run_matrix(
            &h,
            |_, user| {
                let store = store.clone();
                async move { Ok(Ops::new(store, Identity::member(user))) }
            },
            |e| {
                matches!(e.downcast_ref::<OpsError>(), Some(OpsError::Forbidden(m)) if m.starts_with("permission denied: "))
            },
        )
        .await?;
        assert_eq!(pairs, 4 * Act::ALL.len());
        println!("{pairs} role x action pairs through ops on {:?}", h.kind());
        Ok(())
    }

    /// Refused by the database: a permission error, or (row-level security hides rows from an
    /// UPDATE) the row is not there or no longer held.
    pub fn database_refusal(e: &BoxError) -> bool {
        match e.downcast_ref::<OpsError>() {
            Some(OpsError::Store(StoreError::Forbidden(_))) => true,
            Some(OpsError::NotFound(_) | OpsError::Refused(_)) => true,
            Some(OpsError::Store(StoreError::NotFound(_))) => true,
            Some(OpsError::Store(StoreError::Database(m))) => m.contains("no rows returned"),
            _ => e.to_string() == "claimed nothing",
        }
    }
}

/// PostgreSQL only: the database enforces the matrix by itself.
mod database {
    use std::sync::Arc;

    use ospdeck::domain::permission::{Identity, Permission, Role};
    use ospdeck::ops::Ops;
    use ospdeck::store::{self, Store, StoreOptions};
    use sqlx::{Connection, Executor};

    use ospdeck::domain::workflow::{Workflow, WorkflowType};
    use ospdeck::ops::WorkflowRequest;

    use super::cases::{database_refusal, run_matrix};
    use super::common::{BoxError, Harness, TestResult};

    async fn open_as(h: &Harness, role: &str) -> Result<Arc<dyn Store>, store::StoreError> {
        store::open(
            &h.url_as(role),
            &StoreOptions {
                read_only: false,
                max_connections: 2,
                ..Default::default()
            },
        )
        .await
    }

    /// Workflow `build` in project acme, and the raw INSERT of one of its runs psql would send.
    async fn build_workflow_in_acme(h: &Harness) -> Result<(Workflow, String), BoxError> {
        let wf = h
            .ops
            .create_workflow(&WorkflowRequest::new(
                "acme",
                "build",
                WorkflowType::Build,
                "true",
            ))
            .await?;
        let insert = format!(
            "INSERT INTO ops.runs (project_id, workflow_id, queue) VALUES ({}, {}, 'default')",
            wf.project_id, wf.id
        );
        Ok((wf, insert))
    }

    /// ops' check is skipped (the identity claims to be an administrator) while the connection
    /// is the member's own login role: what is refused, the database refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_role_and_action_enforced_by_the_database() -> TestResult {
        let Some(h) = Harness::postgres("every_role_and_action_enforced_by_the_database").await
        else {
            return Ok(());
        };
        let h = &h;
        let pairs = run_matrix(
            h,
            |role, user| async move {
                let store = open_as(h, &user).await?;
                // The database knows who this is, and that it is no administrator.
                let me = store.identity(None).await?;
                assert_eq!(me, Identity::member(user.clone()), "{role}");
                Ok(Ops::new(store, Identity::administrator(user)))
            },
            database_refusal,
        )
        .await?;
        println!("{pairs} role x action pairs enforced by PostgreSQL alone");
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn psql_as_viewer_cannot_write_and_developer_can() -> TestResult {
        let Some(h) = Harness::postgres("psql_as_viewer_cannot_write_and_developer_can").await
        else {
            return Ok(());
        };
        let prefix = h.unique_prefix();
        let (viewer, developer, stranger) = (
            format!("{prefix}_viewer"),
            format!("{prefix}_developer"),
            format!("{prefix}_stranger"),
        );
        h.ops.create_project("acme", None).await?;
        h.ops.create_project("secret", None).await?;
        h.ops
            .set_member("acme", &viewer, Role::Viewer, false)
            .await?;
        h.ops
            .set_member("acme", &developer, Role::Developer, false)
            .await?;
        h.ops
            .set_member("secret", &stranger, Role::Owner, false)
            .await?;
        let (wf, insert) = build_workflow_in_acme(&h).await?;

        let mut as_viewer = sqlx::PgConnection::connect(&h.url_as(&viewer)).await?;
        let refused = as_viewer.execute(insert.as_str()).await;
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("row-level security"), "{message}");
        // A viewer reads its project, and nothing of another.
        let (projects,): (i64,) = sqlx::query_as("SELECT count(*) FROM ops.projects")
            .fetch_one(&mut as_viewer)
            .await?;
        assert_eq!(projects, 1);
        for sql in [
            "UPDATE ops.audit_log SET actor = 'x'",
            "DELETE FROM ops.audit_log",
            "DELETE FROM ops.runs",
            "INSERT INTO ops.tools (name, version, image) VALUES ('x', '1', 'x')",
            "UPDATE ops.project_memberships SET role = 'owner'",
        ] {
            let r = as_viewer.execute(sql).await;
            assert!(
                r.as_ref().map(|d| d.rows_affected() == 0).unwrap_or(true),
                "{sql} changed rows"
            );
        }

        let mut as_developer = sqlx::PgConnection::connect(&h.url_as(&developer)).await?;
        as_developer.execute(insert.as_str()).await?;
        // Audit rows stay as written even for a member who may write some.
        as_developer
            .execute(
                format!(
                    "INSERT INTO ops.audit_log (actor, action, entity_type, entity_id, project_id)
                     VALUES ('{viewer}', 'forged', 'run', '1', {})",
                    wf.project_id
                )
                .as_str(),
            )
            .await?;
        let (actor,): (String,) =
            sqlx::query_as("SELECT actor FROM ops.audit_log WHERE action = 'forged'")
                .fetch_one(&mut as_developer)
                .await?;
        assert_eq!(
            actor, developer,
            "the audit row carries who really wrote it"
        );
        assert!(
            as_developer
                .execute("UPDATE ops.audit_log SET actor = 'x'")
                .await
                .is_err()
        );
        assert!(
            as_developer
                .execute("DELETE FROM ops.audit_log")
                .await
                .is_err()
        );
        // A JWT claim set by a plain member is ignored: no becoming someone else.
        as_developer
            .execute(format!("SET request.jwt.claims = '{{\"sub\": \"{stranger}\"}}'").as_str())
            .await?;
        let (me,): (String,) = sqlx::query_as("SELECT ops.current_user_id()")
            .fetch_one(&mut as_developer)
            .await?;
        assert_eq!(me, developer);

        let runs = h.count("runs").await;
        assert_eq!(runs, 1, "only the developer's insert landed");
        Ok(())
    }

    /// A gateway role (PostgREST/Supabase's authenticator) in ospdeck_api: the JWT subject is
    /// the identity, and the subject's membership decides.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_gateway_session_acts_as_its_jwt_subject() -> TestResult {
        let Some(h) = Harness::postgres("a_gateway_session_acts_as_its_jwt_subject").await else {
            return Ok(());
        };
        let gateway = format!("{}_gateway", h.unique_prefix());
        h.raw(&format!(
            "CREATE ROLE \"{gateway}\" LOGIN IN ROLE ospdeck_api, ospdeck_member"
        ))
        .await?;
        h.ops.create_project("acme", None).await?;
        h.ops
            .set_member("acme", "8b3f-dev-uid", Role::Developer, true)
            .await?;
        h.ops
            .set_member("acme", "77aa-viewer-uid", Role::Viewer, true)
            .await?;
        let (_, insert) = build_workflow_in_acme(&h).await?;
        let mut conn = sqlx::PgConnection::connect(&h.url_as(&gateway)).await?;
        for (sub, may) in [
            ("8b3f-dev-uid", true),
            ("77aa-viewer-uid", false),
            ("", false),
        ] {
            let mut tx = conn.begin().await?;
            sqlx::query("SELECT set_config('request.jwt.claims', $1, true)")
                .bind(if sub.is_empty() {
                    String::new()
                } else {
                    format!(r#"{{"sub": "{sub}", "role": "authenticated"}}"#)
                })
                .execute(&mut *tx)
                .await?;
            let (me,): (String,) = sqlx::query_as("SELECT ops.current_user_id()")
                .fetch_one(&mut *tx)
                .await?;
            assert_eq!(
                me,
                if sub.is_empty() {
                    gateway.as_str()
                } else {
                    sub
                }
            );
            let outcome = tx.execute(insert.as_str()).await;
            assert_eq!(outcome.is_ok(), may, "subject {sub:?}: {outcome:?}");
            if may {
                tx.commit().await?;
            }
        }
        assert_eq!(h.count("runs").await, 1);
        // ospdeck itself, connected as the gateway with no claim, is that role and no admin.
        let store = open_as(&h, &gateway).await?;
        assert_eq!(
            store.identity(None).await?,
            Identity::member(gateway.clone())
        );
        assert!(
            store.identity(Some("someone")).await.is_err(),
            "--as is refused on PostgreSQL"
        );
        Ok(())
    }

    /// The database's matrix is the domain's: same permissions, same least roles.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_database_matrix_is_the_domains() -> TestResult {
        let Some(h) = Harness::postgres("the_database_matrix_is_the_domains").await else {
            return Ok(());
        };
        let mut conn = sqlx::PgConnection::connect(&h.url).await?;
        let mut rows: Vec<(String, String)> =
            sqlx::query_as("SELECT permission, least_role FROM ops.permissions ORDER BY 1")
                .fetch_all(&mut conn)
                .await?;
        let mut domain: Vec<(String, String)> = Permission::ALL
            .iter()
            .map(|p| (p.as_str().to_owned(), p.least_role().as_str().to_owned()))
            .collect();
        domain.sort();
        rows.sort();
        assert_eq!(rows, domain);
        for role in Role::ALL {
            let (rank,): (i32,) = sqlx::query_as("SELECT ops.role_rank($1)")
                .bind(role.as_str())
                .fetch_one(&mut conn)
                .await?;
            assert_eq!(rank, role as i32 + 1, "{role}");
        }
        Ok(())
    }
}
