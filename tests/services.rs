//! Services, governed manifests and worker deployment: the same cases on SQLite and PostgreSQL.

mod common;

conformance!(
    a_service_is_created_whole,
    a_failure_at_any_step_leaves_no_trace,
    manifests_follow_their_lifecycle,
    manifest_rules_hold_for_raw_sql,
    bad_service_input_is_refused_and_nothing_is_written,
    a_failing_deploy_is_retried_then_succeeds,
    a_deploy_that_always_fails_rolls_back_and_keeps_every_output,
    deployer_none_waits_for_a_worker_heartbeat,
    upgrades_across_breaking_advisories_need_acknowledgement,
    a_worker_runs_the_queued_deploy_through_the_deployer,
);

mod cases {
    use std::path::Path;

    use ospdeck::deploy::{DeployerConfig, DeployerKind};
    use ospdeck::domain::deployment::{DeployStep, DeploymentStatus, Liveness};
    use ospdeck::domain::manifest::{Bump, ChangeKind, ManifestStatus};
    use ospdeck::domain::run::RunStatus;
    use ospdeck::domain::service::WorkflowSpec;
    use ospdeck::ops::{CreateService, ManifestProposal, OpsError, RunQuery};
    use ospdeck::store::StoreKind;
    use serde_json::json;

    use super::common::{Harness, TestResult};

    const SCHEMA: &str = "telecom_billing";

    fn specs() -> Vec<WorkflowSpec> {
        [
            "processBilling:calculateCharges,sendInvoice",
            "handlePayment:processPayment,updateAccount",
        ]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
    }

    fn request(schema: &str) -> CreateService<'_> {
        CreateService {
            project: "telecom",
            name: Some("Telecom Billing"),
            schema: Some(schema),
            workflows: specs(),
            manifest: None,
        }
    }

    async fn setup(h: &Harness) -> Result<(), OpsError> {
        h.ops.create_project("telecom", Some("Telecom")).await?;
        Ok(())
    }

    async fn schema_exists(h: &Harness, schema: &str) -> bool {
        h.kind() == StoreKind::Postgres
            && h.scalar(&format!(
                "SELECT count(*) FROM pg_namespace WHERE nspname = '{schema}'"
            ))
            .await
                == 1
    }

    /// Everything a service leaves behind, counted.
    async fn traces(h: &Harness, schema: &str) -> Vec<(&'static str, i64)> {
        vec![
            ("services", h.count_meta("services").await),
            ("manifests", h.count_meta("service_manifests").await),
            ("registry", h.count_meta("worker_registry").await),
            (
                "workflows",
                h.scalar(&format!(
                    "SELECT count(*) FROM {} WHERE name LIKE '{schema}.%' OR name = 'deploy-service'",
                    h.table("workflows")
                ))
                .await,
            ),
            ("runs", h.count("runs").await),
            (
                "audit",
                h.scalar(&format!(
                    "SELECT count(*) FROM {} WHERE entity_type = 'service'",
                    h.table("audit_log")
                ))
                .await,
            ),
            ("schema", i64::from(schema_exists(h, schema).await)),
        ]
    }

    fn nothing(traces: &[(&'static str, i64)]) -> bool {
        traces.iter().all(|(_, n)| *n == 0)
    }

    trait MetaCount {
        async fn count_meta(&self, table: &str) -> i64;
    }

    impl MetaCount for Harness {
        async fn count_meta(&self, table: &str) -> i64 {
            self.scalar(&format!("SELECT count(*) FROM {}", self.meta(table)))
                .await
        }
    }

    pub async fn a_service_is_created_whole(h: Harness) -> TestResult {
        setup(&h).await?;
        let created = h.ops.create_service(&request(SCHEMA)).await?;
        assert_eq!(created.service.schema, SCHEMA);
        assert_eq!(created.manifest.version, "1.0.0");
        assert_eq!(created.manifest.status, ManifestStatus::Active);
        assert_eq!(
            created.manifest.locked_fields,
            vec!["service_id", "schema_name"]
        );
        let content = &created.manifest.content;
        assert_eq!(content["service_schema"], SCHEMA);
        assert_eq!(
            content["workflows"][1]["task_queue"],
            "telecom_billing-tasks"
        );
        assert_eq!(content["workflows"][0]["activities"][0], "calculateCharges");

        let t = traces(&h, SCHEMA).await;
        let expect_schema = i64::from(h.kind() == StoreKind::Postgres);
        assert_eq!(
            t,
            vec![
                ("services", 1),
                ("manifests", 1),
                ("registry", 1),
                ("workflows", 3),
                ("runs", 1),
                ("audit", 1),
                ("schema", expect_schema),
            ]
        );
        let deploy = h.ops.run(created.deploy_run_id).await?;
        assert_eq!(
            (
                deploy.status,
                deploy.workflow.as_str(),
                deploy.queue.as_str()
            ),
            (RunStatus::Queued, "deploy-service", "ospdeck-deploy")
        );
        assert_eq!(deploy.payload["service"], SCHEMA);

        let list = h.ops.list_services().await?;
        assert_eq!(list.len(), 1);
        assert_eq!(
            list[0].deployment.as_ref().map(|d| d.status),
            Some(DeploymentStatus::Pending)
        );
        assert_eq!(list[0].worker, Liveness::Missing);
        let detail = h.ops.service_detail(SCHEMA).await?;
        assert!(
            detail
                .recent_runs
                .iter()
                .any(|r| r.id == created.deploy_run_id)
        );
        Ok(())
    }

    /// A trigger that fails every insert into `table`, as raw SQL on this backend.
    fn failing_trigger(h: &Harness, table: &str) -> (String, String) {
        match h.kind() {
            StoreKind::Postgres => (
                format!(
                    "CREATE OR REPLACE FUNCTION public.injected_failure() RETURNS trigger LANGUAGE plpgsql AS
                     $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$;
                     CREATE TRIGGER injected BEFORE INSERT ON {table}
                         FOR EACH ROW EXECUTE FUNCTION public.injected_failure()"
                ),
                format!("DROP TRIGGER injected ON {table}"),
            ),
            StoreKind::Sqlite => (
                format!(
                    "CREATE TRIGGER injected BEFORE INSERT ON {table}
                     BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
                ),
                "DROP TRIGGER injected".to_owned(),
            ),
        }
    }

    pub async fn a_failure_at_any_step_leaves_no_trace(h: Harness) -> TestResult {
        setup(&h).await?;
        // The steps in the order the store takes them; a failure in step k+1 tests "after step k".
        let steps = [
            h.meta("services"),
            h.meta("service_manifests"),
            h.table("workflows"),
            h.meta("worker_registry"),
            h.table("runs"),
            h.table("audit_log"),
        ];
        for table in &steps {
            let (install, remove) = failing_trigger(&h, table);
            h.raw(&install).await?;
            let result = h.ops.create_service(&request(SCHEMA)).await;
            h.raw(&remove).await?;
            let err = result
                .err()
                .ok_or(format!("created despite a failure in {table}"))?;
            assert!(
                err.to_string().contains("injected failure"),
                "{table}: {err}"
            );
            let t = traces(&h, SCHEMA).await;
            assert!(nothing(&t), "after a failure in {table}: {t:?}");
        }
        if h.kind() == StoreKind::Postgres {
            // The schema step: a schema of that name already exists, so CREATE SCHEMA fails.
            h.raw(&format!("CREATE SCHEMA {SCHEMA}")).await?;
            let err = h.ops.create_service(&request(SCHEMA)).await.err();
            assert!(
                err.as_ref()
                    .is_some_and(|e| e.to_string().contains("already exists")),
                "{err:?}"
            );
            h.raw(&format!("DROP SCHEMA {SCHEMA}")).await?;
            let t = traces(&h, SCHEMA).await;
            assert!(nothing(&t), "after the schema step failed: {t:?}");
        }
        // And with nothing injected, it all lands.
        h.ops.create_service(&request(SCHEMA)).await?;
        assert_eq!(h.count_meta("services").await, 1);
        Ok(())
    }

    fn content_with(
        h_content: &serde_json::Value,
        edit: impl Fn(&mut serde_json::Value),
    ) -> String {
        let mut v = h_content.clone();
        edit(&mut v);
        v.to_string()
    }

    pub async fn manifests_follow_their_lifecycle(h: Harness) -> TestResult {
        setup(&h).await?;
        let created = h.ops.create_service(&request(SCHEMA)).await?;
        let v1 = created.manifest.content.clone();

        let text = content_with(&v1, |v| {
            v["service_name"] = json!("Telecom Billing 2");
            v["workflows"][0]["activities"] = json!(["calculateCharges", "sendInvoice", "audit"]);
            if let Some(w) = v["workflows"].as_array_mut() {
                w.push(json!({"name": "refund", "task_queue": "telecom_billing-tasks"}));
            }
        });
        let draft = h
            .ops
            .propose_manifest(&ManifestProposal {
                bump: Some(Bump::Minor),
                ..ManifestProposal::new(SCHEMA, &text)
            })
            .await?;
        assert_eq!(
            (draft.version.as_str(), draft.status),
            ("1.1.0", ManifestStatus::Draft)
        );
        // Same version again: refused.
        let again = h
            .ops
            .propose_manifest(&ManifestProposal {
                version: Some("1.1.0"),
                ..ManifestProposal::new(SCHEMA, &text)
            })
            .await;
        assert!(again.is_err());
        let patch = h
            .ops
            .propose_manifest(&ManifestProposal::new(SCHEMA, &text))
            .await?;
        assert_eq!(patch.version, "1.1.1");

        let diff = h.ops.manifest_diff(SCHEMA, "1.0.0", "1.1.0").await?;
        let paths: Vec<(&str, ChangeKind)> =
            diff.iter().map(|c| (c.path.as_str(), c.kind)).collect();
        assert_eq!(
            paths,
            vec![
                ("/service_name", ChangeKind::Changed),
                ("/workflows/0/activities/2", ChangeKind::Added),
                ("/workflows/2", ChangeKind::Added),
            ]
        );

        // A locked field cannot change, and the refusal names it.
        let renamed = content_with(&v1, |v| v["service_id"] = json!("something_else"));
        let err = h
            .ops
            .propose_manifest(&ManifestProposal::new(SCHEMA, &renamed))
            .await
            .err();
        assert!(
            err.as_ref()
                .is_some_and(|e| e.to_string().contains("`service_id`")),
            "{err:?}"
        );

        // Locked: nothing can be activated.
        h.ops.lock_manifest(SCHEMA).await?;
        let refused = h.ops.activate_manifest(SCHEMA, "1.1.0").await.err();
        assert!(matches!(refused, Some(OpsError::Refused(_))), "{refused:?}");
        h.ops.unlock_manifest(SCHEMA).await?;
        // Unlocking an unlocked service is done already: it succeeds and writes nothing.
        let again = h.ops.unlock_manifest_applied(SCHEMA).await?;
        assert_eq!(again.outcome, ospdeck::ops::Outcome::AlreadyUnlocked);
        assert_eq!(again.value.status, ManifestStatus::Active);

        let active = h.ops.activate_manifest(SCHEMA, "1.1.0").await?;
        assert_eq!(active.status, ManifestStatus::Active);
        let history = h.ops.manifest_history(SCHEMA).await?;
        let states: Vec<(&str, ManifestStatus)> = history
            .iter()
            .map(|m| (m.version.as_str(), m.status))
            .collect();
        assert_eq!(
            states,
            vec![
                ("1.0.0", ManifestStatus::Superseded),
                ("1.1.0", ManifestStatus::Active),
                ("1.1.1", ManifestStatus::Draft),
            ]
        );
        // The workflows followed: a new one, and the changed activities in the command.
        let workflows = h.ops.list_workflows(Some("telecom")).await?;
        let refund = workflows
            .iter()
            .find(|w| w.name == "telecom_billing.refund")
            .ok_or("refund workflow missing")?;
        assert_eq!(refund.queue, "telecom_billing-tasks");
        assert!(
            workflows
                .iter()
                .any(|w| w.name == "telecom_billing.processBilling" && w.command.contains("audit"))
        );
        // Superseded is final; only drafts activate.
        assert!(matches!(
            h.ops.activate_manifest(SCHEMA, "1.0.0").await,
            Err(OpsError::Refused(_))
        ));
        assert!(matches!(
            h.ops.activate_manifest(SCHEMA, "7.0.0").await,
            Err(OpsError::NotFound(_))
        ));
        // Every change is audited with before and after.
        let audited = h
            .scalar(&format!(
                "SELECT count(*) FROM {} WHERE entity_type = 'manifest' AND after IS NOT NULL",
                h.table("audit_log")
            ))
            .await;
        assert_eq!(audited, 5, "2 proposals, lock, unlock, activate");
        Ok(())
    }

    pub async fn manifest_rules_hold_for_raw_sql(h: Harness) -> TestResult {
        setup(&h).await?;
        let created = h.ops.create_service(&request(SCHEMA)).await?;
        let sid = created.service.id;
        let manifests = h.meta("service_manifests");
        let content = |v: &serde_json::Value| v.to_string().replace('\'', "''");
        let active_id = created.manifest.id;

        let refused = |r: Result<u64, String>, what: &str| {
            assert!(r.is_err(), "{what} was allowed");
        };
        let mut changed = created.manifest.content.clone();
        changed["service_name"] = json!("edited in place");
        refused(
            h.raw(&format!(
                "UPDATE {manifests} SET manifest_content = '{}' WHERE id = {active_id}",
                content(&changed)
            ))
            .await,
            "editing an active manifest",
        );
        refused(
            h.raw(&format!("DELETE FROM {manifests} WHERE id = {active_id}"))
                .await,
            "deleting an active manifest",
        );
        refused(
            h.raw(&format!(
                "UPDATE {manifests} SET status = 'draft' WHERE id = {active_id}"
            ))
            .await,
            "active -> draft",
        );
        let by = match h.kind() {
            StoreKind::Postgres => "",
            StoreKind::Sqlite => ", created_by",
        };
        let by_value = match h.kind() {
            StoreKind::Postgres => "",
            StoreKind::Sqlite => ", 'raw'",
        };
        let insert = |version: &str, status: &str, c: &serde_json::Value| {
            format!(
                "INSERT INTO {manifests} (service_id, service_name, version, manifest_content, status{by})
                 VALUES ({sid}, 'x', '{version}', '{}', '{status}'{by_value})",
                content(c)
            )
        };
        refused(
            h.raw(&insert("2.0.0", "active", &created.manifest.content))
                .await,
            "a second active version",
        );
        let mut moved = created.manifest.content.clone();
        moved["schema_name"] = json!("elsewhere");
        refused(
            h.raw(&insert("2.0.0", "draft", &moved)).await,
            "a draft changing a locked field",
        );
        refused(
            h.raw(&insert("not-semver", "draft", &created.manifest.content))
                .await,
            "a bad version",
        );
        // A legal draft through raw SQL, then the freeze: locked service, raw activation refused.
        h.raw(&insert("1.0.1", "draft", &created.manifest.content))
            .await?;
        h.ops.lock_manifest(SCHEMA).await?;
        refused(
            h.raw(&format!(
                "UPDATE {manifests} SET status = 'active' WHERE service_id = {sid} AND version = '1.0.1'"
            ))
            .await,
            "activating while locked",
        );
        h.ops.unlock_manifest(SCHEMA).await?;
        // A draft's content may change; then it may be deleted.
        h.raw(&format!(
            "UPDATE {manifests} SET manifest_content = '{}' WHERE service_id = {sid} AND version = '1.0.1'",
            content(&changed)
        ))
        .await?;
        h.raw(&format!(
            "DELETE FROM {manifests} WHERE service_id = {sid} AND version = '1.0.1'"
        ))
        .await?;
        if h.kind() == StoreKind::Postgres {
            // Seed 000's function, under the same rules: a draft works, a second active does not.
            let id = h
                .scalar(&format!(
                    "SELECT manifest_id FROM osp_metadata.insert_service_manifest({sid}, 'x', '1.2.0',
                        '{}'::jsonb, 'draft')",
                    content(&created.manifest.content)
                ))
                .await;
            assert!(id > 0);
            refused(
                h.raw(&format!(
                    "SELECT osp_metadata.insert_service_manifest({sid}, 'x', '1.3.0', '{}'::jsonb)",
                    content(&created.manifest.content)
                ))
                .await,
                "insert_service_manifest with a second active",
            );
        }
        Ok(())
    }

    pub async fn bad_service_input_is_refused_and_nothing_is_written(h: Harness) -> TestResult {
        setup(&h).await?;
        let before = traces(&h, SCHEMA).await;
        let too_long = "a".repeat(64);
        for bad in [
            "Telecom",
            "x\"; DROP SCHEMA ops; --",
            "bad name",
            "café",
            "pg_toast_x",
            "public",
            "ops",
            "osp_metadata",
            too_long.as_str(),
            "",
        ] {
            let r = h.ops.create_service(&request(bad)).await;
            assert!(matches!(r, Err(OpsError::Invalid(_))), "{bad:?}: {r:?}");
        }
        assert!(matches!(
            h.ops
                .create_service(&CreateService {
                    project: "nope",
                    ..request(SCHEMA)
                })
                .await,
            Err(OpsError::NotFound(_))
        ));
        for text in [
            "{not json",
            r#"{"service_id":"telecom_billing","service_name":"T","schema_name":"telecom_billing","service_schema":"telecom_billing","colour":"red"}"#,
            r#"{"service_id":"telecom_billing","service_name":"T","schema_name":"telecom_billing","service_schema":"other"}"#,
        ] {
            let r = h
                .ops
                .create_service(&CreateService {
                    manifest: Some(text),
                    ..request(SCHEMA)
                })
                .await;
            assert!(matches!(r, Err(OpsError::Invalid(_))), "{text}: {r:?}");
        }
        assert_eq!(
            traces(&h, SCHEMA).await,
            before,
            "a refused request wrote something"
        );

        h.ops.create_service(&request(SCHEMA)).await?;
        let after_one = traces(&h, SCHEMA).await;
        let dup = h.ops.create_service(&request(SCHEMA)).await.err();
        assert!(
            dup.as_ref()
                .is_some_and(|e| e.to_string().contains("already exists")),
            "{dup:?}"
        );
        let oversized = format!(
            r#"{{"service_id":"telecom_billing","service_name":"T","schema_name":"telecom_billing","service_schema":"telecom_billing","metadata":{{"x":"{}"}}}}"#,
            "y".repeat(1 << 20)
        );
        assert!(matches!(
            h.ops
                .propose_manifest(&ManifestProposal::new(SCHEMA, &oversized))
                .await,
            Err(OpsError::Invalid(_))
        ));
        assert!(matches!(
            h.ops
                .propose_manifest(&ManifestProposal {
                    version: Some("1.2"),
                    ..ManifestProposal::new(SCHEMA, "{}")
                })
                .await,
            Err(OpsError::Invalid(_))
        ));
        assert!(matches!(
            h.ops.activate_manifest(SCHEMA, "3.0.0").await,
            Err(OpsError::NotFound(_))
        ));
        assert!(matches!(
            h.ops.activate_manifest(SCHEMA, "three").await,
            Err(OpsError::Invalid(_))
        ));
        assert_eq!(traces(&h, SCHEMA).await, after_one);
        assert_eq!(h.count_meta("service_manifests").await, 1);
        Ok(())
    }

    /// A deployer whose deploy step fails until `fails` attempts have been made (counted in a file).
    fn flaky(dir: &Path, fails: u32) -> DeployerConfig {
        let counter = dir.join("count");
        DeployerConfig {
            kind: DeployerKind::Command,
            create: Some("echo created osp-worker-{schema}".into()),
            deploy: Some(format!(
                "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; \
                 echo \"deploy try $n of $SERVICE_SCHEMA from $MANIFEST_PATH\"; \
                 test -s \"$MANIFEST_PATH\" || exit 9; \
                 if [ $n -le {fails} ]; then echo \"boom $n\" >&2; exit 4; fi",
                c = counter.display()
            )),
            rollback: Some("echo rolled back {schema}".into()),
            attempts: 3,
            backoff_secs: 0.0,
            timeout_secs: 30,
            manifest_dir: None,
        }
    }

    pub async fn a_failing_deploy_is_retried_then_succeeds(h: Harness) -> TestResult {
        setup(&h).await?;
        h.ops.create_service(&request(SCHEMA)).await?;
        let dir = tempfile::tempdir()?;
        let report = h
            .ops
            .deploy_service(SCHEMA, &flaky(dir.path(), 2), dir.path())
            .await?;
        assert!(report.deployed(), "{}", report.summary);
        assert_eq!(report.deployment.status, DeploymentStatus::Deployed);
        assert_eq!(report.deployment.attempts, 3);
        assert!(report.deployment.deployed_at.is_some());
        let steps: Vec<(i32, DeployStep, Option<i32>)> = h
            .ops
            .deploy_steps(SCHEMA)
            .await?
            .iter()
            .map(|s| (s.attempt, s.step, s.exit_code))
            .collect();
        assert_eq!(
            steps,
            vec![
                (1, DeployStep::Create, Some(0)),
                (1, DeployStep::Deploy, Some(4)),
                (2, DeployStep::Deploy, Some(4)),
                (3, DeployStep::Deploy, Some(0)),
            ]
        );
        // The manifest was written where the deploy step read it.
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("telecom_billing.json"))?)?;
        assert_eq!(written["schema_name"], SCHEMA);
        Ok(())
    }

    pub async fn a_deploy_that_always_fails_rolls_back_and_keeps_every_output(
        h: Harness,
    ) -> TestResult {
        setup(&h).await?;
        h.ops.create_service(&request(SCHEMA)).await?;
        let dir = tempfile::tempdir()?;
        let report = h
            .ops
            .deploy_service(SCHEMA, &flaky(dir.path(), 99), dir.path())
            .await?;
        assert!(!report.deployed());
        assert_eq!(report.deployment.status, DeploymentStatus::Failed);
        assert!(
            report.summary.contains("rollback ran"),
            "{}",
            report.summary
        );
        let steps = h.ops.deploy_steps(SCHEMA).await?;
        let deploys: Vec<&str> = steps
            .iter()
            .filter(|s| s.step == DeployStep::Deploy)
            .map(|s| s.output.as_str())
            .collect();
        assert_eq!(deploys.len(), 3);
        for (i, out) in deploys.iter().enumerate() {
            assert!(out.contains(&format!("deploy try {}", i + 1)), "{out}");
            assert!(
                out.contains(&format!("boom {}", i + 1)),
                "stderr kept: {out}"
            );
        }
        let rollback = steps.last().ok_or("no steps")?;
        assert_eq!(rollback.step, DeployStep::Rollback);
        assert!(rollback.output.contains("rolled back telecom_billing"));
        Ok(())
    }

    pub async fn deployer_none_waits_for_a_worker_heartbeat(h: Harness) -> TestResult {
        setup(&h).await?;
        h.ops.create_service(&request(SCHEMA)).await?;
        let dir = tempfile::tempdir()?;
        let report = h
            .ops
            .deploy_service(SCHEMA, &DeployerConfig::default(), dir.path())
            .await?;
        assert_eq!(report.deployment.status, DeploymentStatus::Pending);
        assert!(report.steps.is_empty());
        let workers = h.ops.workers().await?;
        assert_eq!(workers[0].liveness, Liveness::Missing);

        let beat = h
            .ops
            .service_worker_heartbeat(SCHEMA, "billing-worker-1")
            .await?;
        assert_eq!(beat.status, DeploymentStatus::Deployed);
        assert_eq!(beat.worker_id.as_deref(), Some("billing-worker-1"));
        let workers = h.ops.workers().await?;
        assert_eq!(workers[0].liveness, Liveness::Alive);
        assert!(matches!(
            h.ops.service_worker_heartbeat("no_such_service", "w").await,
            Err(OpsError::NotFound(_))
        ));
        // A run of the service's own workflow is found by the service's name.
        h.ops
            .enqueue_run(&ospdeck::ops::EnqueueRequest {
                project: "telecom",
                workflow: "telecom_billing.processBilling",
                ..Default::default()
            })
            .await?;
        let runs = h
            .ops
            .list_runs(&RunQuery {
                text: Some(SCHEMA),
                ..Default::default()
            })
            .await?;
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].queue, "telecom_billing-tasks");
        Ok(())
    }

    pub async fn upgrades_across_breaking_advisories_need_acknowledgement(
        h: Harness,
    ) -> TestResult {
        use ospdeck::domain::tool::{NewAdvisory, Severity};
        use ospdeck::domain::workflow::WorkflowType;
        use ospdeck::ops::WorkflowRequest;
        setup(&h).await?;
        h.ops.add_tool("odoo", "17.0", "odoo:17.0").await?;
        assert!(h.ops.add_tool("odoo", "17.0", "odoo:17.0").await.is_err());
        assert!(matches!(
            h.ops.add_tool("odoo", "18.0", "has spaces").await,
            Err(OpsError::Invalid(_))
        ));
        assert_eq!(h.ops.list_tools().await?.len(), 1);
        h.ops
            .add_advisory(&NewAdvisory::new(
                "odoo",
                "16.0",
                "17.0",
                Severity::Breaking,
                "ORM API changes",
                Some("https://example.com/17"),
            )?)
            .await?;
        h.ops
            .add_advisory(&NewAdvisory::new(
                "odoo",
                "15.0",
                "16.0",
                Severity::Warning,
                "asset bundles",
                None,
            )?)
            .await?;
        h.ops
            .create_workflow(&WorkflowRequest::new(
                "telecom",
                "upgrade",
                WorkflowType::Upgrade,
                "true",
            ))
            .await?;
        let upgrade = |payload: &'static str, acknowledge: bool| ospdeck::ops::EnqueueRequest {
            project: "telecom",
            workflow: "upgrade",
            payload: Some(payload),
            acknowledge,
            ..Default::default()
        };
        let across = r#"{"tool":"odoo","from_version":"15.0","to_version":"17.0"}"#;
        let before = h.count("runs").await;
        let refused = h.ops.enqueue_run(&upgrade(across, false)).await.err();
        assert!(
            matches!(&refused, Some(OpsError::Refused(m)) if m.contains("ORM API changes") && m.contains("--acknowledge")),
            "{refused:?}"
        );
        assert_eq!(
            h.count("runs").await,
            before,
            "a refused upgrade was queued"
        );
        h.ops.enqueue_run(&upgrade(across, true)).await?;
        let shown = h
            .ops
            .advisories_for_upgrade(&serde_json::from_str(across)?)
            .await?;
        assert_eq!(shown.len(), 2);
        // Only a warning on the way: queued without acknowledgement.
        h.ops
            .enqueue_run(&upgrade(
                r#"{"tool":"odoo","from_version":"15.0","to_version":"16.0"}"#,
                false,
            ))
            .await?;
        assert_eq!(h.count("runs").await, before + 2);
        Ok(())
    }

    pub async fn a_worker_runs_the_queued_deploy_through_the_deployer(h: Harness) -> TestResult {
        use ospdeck::worker::{WorkerConfig, run_worker};
        setup(&h).await?;
        let created = h.ops.create_service(&request(SCHEMA)).await?;
        let dir = tempfile::tempdir()?;
        let config = WorkerConfig {
            drain: true,
            deployer: flaky(dir.path(), 1),
            manifest_dir: dir.path().to_owned(),
            ..WorkerConfig::in_process("deployer-1".into(), vec![ospdeck::ops::DEPLOY_QUEUE.into()])
        };
        let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stats = run_worker(h.ops.clone(), config, stop_rx).await?;
        assert_eq!((stats.claimed, stats.succeeded), (1, 1));
        let run = h.ops.run(created.deploy_run_id).await?;
        assert_eq!(run.status, RunStatus::Succeeded);
        let logs = h.ops.run_logs(run.id, 0, None, 100).await?;
        let text: Vec<&str> = logs.iter().map(|l| l.message.as_str()).collect();
        assert!(text.contains(&"attempt 1 deploy: exit 4"), "{text:?}");
        assert!(
            text.iter()
                .any(|l| l.contains("deployed manifest 1.0.0 on attempt 2")),
            "{text:?}"
        );
        let workers = h.ops.workers().await?;
        assert_eq!(workers[0].deployment.status, DeploymentStatus::Deployed);
        Ok(())
    }
}
