//! The store conformance suite: every case runs on SQLite and on PostgreSQL with the same
//! expectations.

mod common;

conformance!(
    transitions_table_matches_the_domain,
    a_run_goes_queued_claimed_running_succeeded_with_events,
    claims_follow_priority_queue_and_run_after,
    batch_claims_take_at_most_the_limit,
    a_rescued_run_cannot_be_finished_by_the_worker_that_lost_it,
    a_claim_that_starts_at_once_records_both_moves_and_stays_fenced,
    rescue_fails_runs_without_attempts_left_and_honours_cancel,
    cancel_stops_queued_at_once_and_asks_running_to_stop,
    retry_makes_a_new_run_pointing_at_the_old,
    release_gives_runs_back_without_spending_an_attempt,
    logs_are_searchable_and_artifacts_recorded,
    raw_sql_cannot_make_an_illegal_transition,
    history_is_append_only_even_for_raw_sql,
    bad_input_is_refused_and_nothing_is_written,
    mutations_leave_audit_rows,
    eight_claimers_take_every_run_exactly_once,
    a_read_only_store_refuses_writes,
    the_waker_wakes_when_a_run_is_queued,
    migrations_go_down_and_up_again,
    counts_are_exact_and_activity_is_per_minute,
    text_filter_matches_names_and_ids_and_escapes_wildcards,
    the_change_watcher_sees_state_changes_and_logs,
    workers_register_beat_and_leave,
    queue_stats_count_each_queue_now_and_over_the_hour,
    pages_reach_every_run_by_keyset,
    structured_filters_select_by_every_field,
    bulk_cancel_by_filter_is_one_audited_transaction_per_batch,
    bulk_retry_queues_one_new_run_per_finished_run,
    cancel_by_ids_is_idempotent,
    a_member_cancels_and_retries_in_bulk_where_its_role_allows,
);

mod cases {
    use std::collections::HashSet;
    use std::time::Duration;

    use ospdeck::domain::run::{
        CancelOutcome, ClaimedRun, Completion, Hold, LEGAL_TRANSITIONS, LogLevel, NewArtifact,
        NewLogLine, NewRun, RunOptions, RunStatus,
    };
    use ospdeck::domain::workflow::{DEFAULT_QUEUE, WorkflowType};
    use ospdeck::ops::WorkflowRequest;
    use ospdeck::ops::{EnqueueRequest, Ops, OpsError, RunQuery};
    use ospdeck::store::{self, StoreError, StoreOptions};

    use super::common::{Harness, TestResult};

    const LEASE: Duration = Duration::from_secs(60);

    async fn setup(h: &Harness) -> Result<(), OpsError> {
        h.ops.create_project("acme", Some("Acme")).await?;
        h.ops
            .create_workflow(&WorkflowRequest::new(
                "acme",
                "build",
                WorkflowType::Build,
                "true",
            ))
            .await?;
        h.ops
            .create_workflow(&WorkflowRequest {
                queue: Some("billing-tasks"),
                ..WorkflowRequest::new("acme", "billing", WorkflowType::Service, "true")
            })
            .await?;
        Ok(())
    }

    async fn enqueue(ops: &Ops, workflow: &str, priority: i64) -> Result<i64, OpsError> {
        ops.enqueue_run(&EnqueueRequest {
            project: "acme",
            workflow,
            priority: Some(priority),
            ..Default::default()
        })
        .await
    }

    fn done(hold: Hold, exit_code: i32) -> Completion {
        Completion {
            hold,
            exit_code: Some(exit_code),
            error: None,
            canceled: false,
        }
    }

    pub async fn transitions_table_matches_the_domain(h: Harness) -> TestResult {
        let mut expected: Vec<(String, String)> = LEGAL_TRANSITIONS
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        expected.sort();
        assert_eq!(h.db_transitions().await, expected);
        Ok(())
    }

    pub async fn a_run_goes_queued_claimed_running_succeeded_with_events(h: Harness) -> TestResult {
        setup(&h).await?;
        let id = h
            .ops
            .enqueue_run(&EnqueueRequest {
                project: "acme",
                workflow: "build",
                priority: Some(7),
                payload: Some(r#"{"branch":"main","n":[1,2]}"#),
                max_attempts: Some(2),
                run_after: None,
                acknowledge: false,
            })
            .await?;
        let run = h.ops.run(id).await?;
        assert_eq!(
            (run.status, run.priority, run.attempt, run.max_attempts),
            (RunStatus::Queued, 7, 0, 2)
        );
        assert_eq!(run.payload["branch"], "main");
        assert_eq!(
            (
                run.project.as_str(),
                run.workflow.as_str(),
                run.queue.as_str()
            ),
            ("acme", "build", "default")
        );

        let claimed = h
            .ops
            .claim_next_run("w1", &[], LEASE)
            .await?
            .ok_or("nothing claimed")?;
        assert_eq!(
            (claimed.id, claimed.status, claimed.attempt),
            (id, RunStatus::Claimed, 1)
        );
        assert_eq!(claimed.worker_id.as_deref(), Some("w1"));
        assert!(claimed.claimed_at.is_some() && claimed.lease_expires_at.is_some());
        assert!(
            h.ops.claim_next_run("w2", &[], LEASE).await?.is_none(),
            "claimed twice"
        );

        // Only the holder may start or finish it.
        assert!(matches!(
            h.ops.start_run("w2", id).await,
            Err(OpsError::Refused(_))
        ));
        let running = h.ops.start_run("w1", id).await?;
        assert_eq!(running.status, RunStatus::Running);
        assert!(matches!(
            h.ops.complete_run("w2", id, 0, None).await,
            Err(OpsError::Refused(_))
        ));
        let finished = h.ops.complete_run("w1", id, 0, None).await?;
        assert_eq!(
            (finished.status, finished.exit_code),
            (RunStatus::Succeeded, Some(0))
        );
        assert!(finished.finished_at.is_some() && finished.lease_expires_at.is_none());
        assert!(matches!(
            h.ops.complete_run("w1", id, 0, None).await,
            Err(OpsError::Refused(_))
        ));

        let events = h.ops.run_detail(id).await?.events;
        let moves: Vec<(Option<RunStatus>, Option<RunStatus>, String)> = events
            .iter()
            .map(|e| (e.from_status, e.to_status, e.actor.clone()))
            .collect();
        use RunStatus::*;
        assert_eq!(
            moves,
            vec![
                (None, Some(Queued), "tester".to_owned()),
                (Some(Queued), Some(Claimed), "w1".to_owned()),
                (Some(Claimed), Some(Running), "w1".to_owned()),
                (Some(Running), Some(Succeeded), "w1".to_owned()),
            ]
        );

        // A non-zero exit fails the run.
        let id2 = enqueue(&h.ops, "build", 0).await?;
        h.ops.claim_next_run("w1", &[], LEASE).await?;
        h.ops.start_run("w1", id2).await?;
        let failed = h.ops.complete_run("w1", id2, 3, Some("boom")).await?;
        assert_eq!(
            (failed.status, failed.exit_code, failed.error.as_deref()),
            (Failed, Some(3), Some("boom"))
        );
        Ok(())
    }

    pub async fn claims_follow_priority_queue_and_run_after(h: Harness) -> TestResult {
        setup(&h).await?;
        let low = enqueue(&h.ops, "build", -5).await?;
        let high = enqueue(&h.ops, "build", 10).await?;
        let mid_a = enqueue(&h.ops, "build", 0).await?;
        let mid_b = enqueue(&h.ops, "build", 0).await?;
        let billing = enqueue(&h.ops, "billing", 1000).await?;
        let build = h.ops.workflow("acme", "build").await?;
        let later = NewRun::new(
            build.project_id,
            build.id,
            &RunOptions {
                priority: Some(1000),
                run_after: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
                ..Default::default()
            },
        )?;
        let delayed = h.ops.enqueue_runs(&[later]).await?[0];

        let queue = vec!["default".to_owned()];
        let mut order = Vec::new();
        while let Some(run) = h.ops.claim_next_run("w", &queue, LEASE).await? {
            order.push(run.id);
        }
        assert_eq!(
            order,
            vec![high, mid_a, mid_b, low],
            "priority desc, then id; other queues and future runs untouched"
        );
        assert_eq!(h.ops.run(billing).await?.status, RunStatus::Queued);
        assert_eq!(h.ops.run(delayed).await?.status, RunStatus::Queued);
        let other = h
            .ops
            .claim_next_run("w", &["billing-tasks".to_owned()], LEASE)
            .await?
            .ok_or("billing")?;
        assert_eq!(other.id, billing);
        assert!(
            h.ops.claim_next_run("w", &[], LEASE).await?.is_none(),
            "a delayed run was claimed early"
        );
        Ok(())
    }

    pub async fn batch_claims_take_at_most_the_limit(h: Harness) -> TestResult {
        setup(&h).await?;
        for _ in 0..5 {
            enqueue(&h.ops, "build", 0).await?;
        }
        let first = h.ops.claim_runs("w", &[], 3, LEASE).await?;
        assert_eq!(first.len(), 3);
        assert!(first.windows(2).all(|w| w[0].id < w[1].id));
        assert_eq!(h.ops.claim_runs("w", &[], 3, LEASE).await?.len(), 2);
        assert!(h.ops.claim_runs("w", &[], 3, LEASE).await?.is_empty());
        Ok(())
    }

    pub async fn a_rescued_run_cannot_be_finished_by_the_worker_that_lost_it(
        h: Harness,
    ) -> TestResult {
        setup(&h).await?;
        let id = enqueue(&h.ops, "build", 0).await?;
        let a = h
            .ops
            .claim_runs("worker-a", &[], 1, Duration::from_secs(1))
            .await?;
        let hold_a = Hold {
            run_id: id,
            attempt: a[0].attempt,
        };
        assert_eq!(h.ops.start_runs("worker-a", &[hold_a]).await?, vec![id]);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let rescued = h.ops.rescue_expired().await?;
        assert_eq!((rescued.requeued, rescued.failed), (1, 0));
        let run = h.ops.run(id).await?;
        assert_eq!(
            (run.status, run.worker_id.as_deref()),
            (RunStatus::Queued, None)
        );
        assert!(
            run.error
                .as_deref()
                .is_some_and(|e| e.contains("lease expired"))
        );

        let b = h.ops.claim_runs("worker-b", &[], 1, LEASE).await?;
        assert_eq!((b[0].id, b[0].attempt), (id, 2));
        let hold_b = Hold {
            run_id: id,
            attempt: 2,
        };
        h.ops.start_runs("worker-b", &[hold_b]).await?;
        only_the_new_holder_finishes(&h, hold_a, hold_b).await?;
        assert_eq!(h.ops.run(id).await?.status, RunStatus::Succeeded);
        Ok(())
    }

    /// After a rescue, `worker-a` (holding `old`) wakes up: every write it tries is fenced off,
    /// and even under `worker-b`'s id the old attempt is refused; `worker-b` finishes the run.
    async fn only_the_new_holder_finishes(h: &Harness, old: Hold, new: Hold) -> TestResult {
        assert!(h.ops.heartbeat("worker-a", &[old], LEASE).await?.is_empty());
        assert!(
            h.ops
                .complete_runs("worker-a", &[done(old, 0)])
                .await?
                .is_empty(),
            "the worker that lost the run finished it"
        );
        assert!(
            h.ops
                .complete_runs("worker-b", &[done(old, 0)])
                .await?
                .is_empty(),
            "an old attempt finished the run"
        );
        assert_eq!(
            h.ops.complete_runs("worker-b", &[done(new, 0)]).await?,
            vec![new.run_id]
        );
        Ok(())
    }

    /// The fast path: one write takes a run from queued to running, the history still shows both
    /// moves, and a rescue fences the worker that lost it exactly as after a two-step claim.
    pub async fn a_claim_that_starts_at_once_records_both_moves_and_stays_fenced(
        h: Harness,
    ) -> TestResult {
        setup(&h).await?;
        let id = enqueue(&h.ops, "build", 0).await?;
        let a = h
            .ops
            .claim_and_start_runs("worker-a", &[], 1, Duration::from_secs(1))
            .await?;
        assert_eq!((a.len(), a[0].id, a[0].attempt), (1, id, 1));
        let run = h.ops.run(id).await?;
        assert_eq!(
            (run.status, run.worker_id.as_deref(), run.attempt),
            (RunStatus::Running, Some("worker-a"), 1)
        );
        assert!(run.claimed_at.is_some() && run.started_at.is_some());
        let moves: Vec<_> = h
            .ops
            .run_detail(id)
            .await?
            .events
            .iter()
            .map(|e| (e.from_status, e.to_status, e.attempt, e.actor.clone()))
            .collect();
        assert_eq!(
            moves[1..],
            [
                (
                    Some(RunStatus::Queued),
                    Some(RunStatus::Claimed),
                    1,
                    "worker-a".to_owned()
                ),
                (
                    Some(RunStatus::Claimed),
                    Some(RunStatus::Running),
                    1,
                    "worker-a".to_owned()
                ),
            ],
            "{moves:?}"
        );
        let running = |counts: &[ospdeck::domain::run::StatusCount]| {
            counts
                .iter()
                .find(|c| c.status == RunStatus::Running)
                .map_or(0, |c| c.count)
        };
        assert_eq!(running(&h.ops.queue_overview().await?.counts), 1);

        // The lease runs out; another worker takes the run the same way.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(h.ops.rescue_expired().await?.requeued, 1);
        let b = h
            .ops
            .claim_and_start_runs("worker-b", &[], 1, LEASE)
            .await?;
        assert_eq!((b[0].id, b[0].attempt), (id, 2));
        only_the_new_holder_finishes(&h, a[0].hold(), b[0].hold()).await?;
        let run = h.ops.run(id).await?;
        assert_eq!(
            (run.status, run.worker_id.as_deref(), run.attempt),
            (RunStatus::Succeeded, Some("worker-b"), 2)
        );
        assert_eq!(running(&h.ops.queue_overview().await?.counts), 0);
        Ok(())
    }

    pub async fn rescue_fails_runs_without_attempts_left_and_honours_cancel(
        h: Harness,
    ) -> TestResult {
        setup(&h).await?;
        let build = h.ops.workflow("acme", "build").await?;
        let once = NewRun::new(
            build.project_id,
            build.id,
            &RunOptions {
                max_attempts: Some(1),
                ..Default::default()
            },
        )?;
        let ids = h.ops.enqueue_runs(&[once.clone(), once]).await?;
        let claimed = h
            .ops
            .claim_runs("w", &[], 2, Duration::from_secs(1))
            .await?;
        let holds: Vec<Hold> = claimed.iter().map(ClaimedRun::hold).collect();
        h.ops.start_runs("w", &holds).await?;
        assert_eq!(h.ops.cancel_run(ids[1]).await?, CancelOutcome::Requested);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let rescued = h.ops.rescue_expired().await?;
        assert_eq!(
            (rescued.requeued, rescued.failed, rescued.canceled),
            (0, 1, 1)
        );
        let (a, b) = (h.ops.run(ids[0]).await?, h.ops.run(ids[1]).await?);
        assert_eq!(
            (a.status, b.status),
            (RunStatus::Failed, RunStatus::Canceled)
        );
        assert!(a.finished_at.is_some() && b.finished_at.is_some());
        assert_eq!(
            h.ops.rescue_expired().await?.requeued + h.ops.rescue_expired().await?.failed,
            0
        );
        Ok(())
    }

    pub async fn cancel_stops_queued_at_once_and_asks_running_to_stop(h: Harness) -> TestResult {
        setup(&h).await?;
        let queued = enqueue(&h.ops, "build", 0).await?;
        assert_eq!(h.ops.cancel_run(queued).await?, CancelOutcome::Canceled);
        assert_eq!(h.ops.run(queued).await?.status, RunStatus::Canceled);
        let again = h.ops.cancel_run(queued).await;
        assert!(matches!(again, Err(OpsError::Refused(_))), "{again:?}");

        let claimed = enqueue(&h.ops, "build", 0).await?;
        h.ops.claim_next_run("w", &[], LEASE).await?;
        assert_eq!(h.ops.cancel_run(claimed).await?, CancelOutcome::Canceled);
        assert!(
            h.ops
                .start_runs(
                    "w",
                    &[Hold {
                        run_id: claimed,
                        attempt: 1
                    }]
                )
                .await?
                .is_empty()
        );

        let running = enqueue(&h.ops, "build", 0).await?;
        h.ops.claim_next_run("w", &[], LEASE).await?;
        h.ops.start_run("w", running).await?;
        assert_eq!(h.ops.cancel_run(running).await?, CancelOutcome::Requested);
        let hold = Hold {
            run_id: running,
            attempt: 1,
        };
        let acks = h.ops.heartbeat("w", &[hold], LEASE).await?;
        assert!(acks.len() == 1 && acks[0].cancel_requested);
        let stop = Completion {
            hold,
            exit_code: None,
            error: Some("canceled on request".into()),
            canceled: true,
        };
        assert_eq!(h.ops.complete_runs("w", &[stop]).await?, vec![running]);
        assert_eq!(h.ops.run(running).await?.status, RunStatus::Canceled);
        let kinds: Vec<String> = h
            .ops
            .run_detail(running)
            .await?
            .events
            .into_iter()
            .map(|e| e.event_type)
            .collect();
        assert!(kinds.contains(&"cancel_requested".to_owned()), "{kinds:?}");
        assert!(matches!(
            h.ops.cancel_run(999_999).await,
            Err(OpsError::NotFound(_))
        ));
        Ok(())
    }

    pub async fn retry_makes_a_new_run_pointing_at_the_old(h: Harness) -> TestResult {
        setup(&h).await?;
        let id = h
            .ops
            .enqueue_run(&EnqueueRequest {
                project: "acme",
                workflow: "build",
                payload: Some(r#"{"x":1}"#),
                priority: Some(3),
                ..Default::default()
            })
            .await?;
        assert!(
            matches!(h.ops.retry_run(id).await, Err(OpsError::Refused(_))),
            "a queued run was retried"
        );
        h.ops.claim_next_run("w", &[], LEASE).await?;
        h.ops.start_run("w", id).await?;
        h.ops.complete_run("w", id, 1, None).await?;
        let retry = h.ops.retry_run(id).await?;
        let (old, new) = (h.ops.run(id).await?, h.ops.run(retry).await?);
        assert_eq!(old.status, RunStatus::Failed, "history rewritten");
        assert_eq!(
            (new.status, new.retry_of, new.attempt),
            (RunStatus::Queued, Some(id), 0)
        );
        assert_eq!(
            (new.payload, new.priority, new.workflow_id),
            (old.payload, old.priority, old.workflow_id)
        );
        Ok(())
    }

    pub async fn release_gives_runs_back_without_spending_an_attempt(h: Harness) -> TestResult {
        setup(&h).await?;
        let id = enqueue(&h.ops, "build", 0).await?;
        h.ops.claim_next_run("w", &[], LEASE).await?;
        h.ops.start_run("w", id).await?;
        let hold = Hold {
            run_id: id,
            attempt: 1,
        };
        assert!(h.ops.release_runs("other", &[hold]).await?.is_empty());
        assert_eq!(h.ops.release_runs("w", &[hold]).await?, vec![id]);
        let run = h.ops.run(id).await?;
        assert_eq!(
            (run.status, run.attempt, run.worker_id),
            (RunStatus::Queued, 0, None)
        );
        assert!(
            h.ops.complete_runs("w", &[done(hold, 0)]).await?.is_empty(),
            "released run finished by old holder"
        );
        Ok(())
    }

    pub async fn logs_are_searchable_and_artifacts_recorded(h: Harness) -> TestResult {
        setup(&h).await?;
        let id = enqueue(&h.ops, "build", 0).await?;
        let lines = vec![
            NewLogLine::new(
                LogLevel::Info,
                "compiling crate alpha",
                serde_json::json!({"stream": "stdout"}),
            ),
            NewLogLine::new(
                LogLevel::Error,
                "linker failed: undefined symbol beta",
                serde_json::json!({}),
            ),
            NewLogLine::new(
                LogLevel::Info,
                "alpha done \"quoted\" AND OR NOT *",
                serde_json::json!({}),
            ),
        ];
        h.ops.append_logs(id, &lines).await?;
        let all = h.ops.run_logs(id, 0, None, 100).await?;
        assert_eq!(
            all.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(),
            lines.iter().map(|l| l.message.as_str()).collect::<Vec<_>>()
        );
        assert_eq!(all[1].level, LogLevel::Error);
        let hits = h.ops.run_logs(id, 0, Some("alpha"), 100).await?;
        assert_eq!(hits.len(), 2);
        let hits = h.ops.run_logs(id, 0, Some("undefined beta"), 100).await?;
        assert_eq!(
            hits.iter().map(|l| l.id).collect::<Vec<_>>(),
            vec![all[1].id]
        );
        // Search syntax in user text is taken as words, never as an error.
        assert!(
            h.ops
                .run_logs(id, 0, Some("\"quoted\" AND OR"), 100)
                .await
                .is_ok()
        );
        assert_eq!(h.ops.run_logs(id, all[0].id, None, 100).await?.len(), 2);

        let artifact = NewArtifact {
            run_id: id,
            key: "dist/app.tar.gz".into(),
            url: Some("s3://bucket/app.tar.gz".into()),
            sha256: Some("ab".repeat(32)),
            size_bytes: Some(1234),
            content_type: Some("application/gzip".into()),
            expires_at: Some(chrono::Utc::now() + chrono::Duration::days(7)),
        };
        h.ops.add_artifact(&artifact).await?;
        assert!(matches!(
            h.ops.add_artifact(&artifact).await,
            Err(OpsError::Store(StoreError::Conflict(_)))
        ));
        let bad = NewArtifact {
            key: "x".into(),
            sha256: Some("nothex".into()),
            ..artifact.clone()
        };
        assert!(matches!(
            h.ops.add_artifact(&bad).await,
            Err(OpsError::Invalid(_))
        ));
        let stored = h.ops.run_detail(id).await?.artifacts;
        assert_eq!(stored.len(), 1);
        assert_eq!(
            (stored[0].key.as_str(), stored[0].size_bytes),
            ("dist/app.tar.gz", Some(1234))
        );
        Ok(())
    }

    pub async fn raw_sql_cannot_make_an_illegal_transition(h: Harness) -> TestResult {
        setup(&h).await?;
        let id = enqueue(&h.ops, "build", 0).await?;
        let runs = h.table("runs");
        let set = |status: &str| format!("UPDATE {runs} SET status = '{status}' WHERE id = {id}");
        for illegal in ["running", "succeeded", "failed"] {
            let err = h
                .raw(&set(illegal))
                .await
                .err()
                .ok_or(format!("queued -> {illegal} accepted"))?;
            assert!(err.contains("illegal run transition"), "{err}");
        }
        assert_eq!(h.ops.run(id).await?.status, RunStatus::Queued);
        h.raw(&set("canceled")).await?;
        for any in ["queued", "claimed", "running", "succeeded"] {
            let err = h
                .raw(&set(any))
                .await
                .err()
                .ok_or(format!("canceled -> {any} accepted"))?;
            assert!(err.contains("illegal run transition"), "{err}");
        }
        // A finished run does not change at all, whatever the column.
        assert!(
            h.raw(&format!("UPDATE {runs} SET priority = 5 WHERE id = {id}"))
                .await
                .is_err()
        );
        // A run is born queued.
        let insert = format!(
            "INSERT INTO {runs} (project_id, workflow_id, queue, status{extra}) SELECT project_id, workflow_id, queue, 'succeeded'{extra_val} FROM {runs} WHERE id = {id}",
            extra = if h.kind() == store::StoreKind::Sqlite {
                ", changed_by"
            } else {
                ""
            },
            extra_val = if h.kind() == store::StoreKind::Sqlite {
                ", 'x'"
            } else {
                ""
            },
        );
        assert!(h.raw(&insert).await.is_err(), "a run was born succeeded");
        // queued -> running is a claim that starts at once: legal only with what a claim sets.
        let id3 = enqueue(&h.ops, "build", 0).await?;
        let (now, by) = if h.kind() == store::StoreKind::Sqlite {
            ("1", ", changed_by = 'psql'")
        } else {
            ("now()", "")
        };
        for half in [
            format!("attempt = 1, worker_id = 'psql', claimed_at = {now}"),
            format!("attempt = 1, claimed_at = {now}, started_at = {now}"),
            format!("attempt = 2, worker_id = 'psql', claimed_at = {now}, started_at = {now}"),
        ] {
            let err = h
                .raw(&format!(
                    "UPDATE {runs} SET status = 'running', {half}{by} WHERE id = {id3}"
                ))
                .await
                .err()
                .ok_or(format!("queued -> running accepted with only {half}"))?;
            assert!(err.contains("illegal run transition"), "{err}");
        }
        h.raw(&format!(
            "UPDATE {runs} SET status = 'running', attempt = 1, worker_id = 'psql', \
             claimed_at = {now}, started_at = {now}{by} WHERE id = {id3}"
        ))
        .await?;
        let moves: Vec<_> = h
            .ops
            .run_detail(id3)
            .await?
            .events
            .iter()
            .map(|e| (e.from_status, e.to_status))
            .collect();
        assert_eq!(
            moves,
            [
                (None, Some(RunStatus::Queued)),
                (Some(RunStatus::Queued), Some(RunStatus::Claimed)),
                (Some(RunStatus::Claimed), Some(RunStatus::Running)),
            ]
        );
        // Legal raw moves still work, and still leave their events.
        let id2 = enqueue(&h.ops, "build", 0).await?;
        let worker = if h.kind() == store::StoreKind::Sqlite {
            ", changed_by = 'psql'"
        } else {
            ""
        };
        h.raw(&format!("UPDATE {runs} SET status = 'claimed', attempt = 1, worker_id = 'psql'{worker} WHERE id = {id2}")).await?;
        let events = h.ops.run_detail(id2).await?.events;
        assert_eq!(
            events.last().and_then(|e| e.to_status),
            Some(RunStatus::Claimed)
        );
        Ok(())
    }

    pub async fn history_is_append_only_even_for_raw_sql(h: Harness) -> TestResult {
        setup(&h).await?;
        enqueue(&h.ops, "build", 0).await?;
        let events = h.table("run_events");
        assert!(
            h.raw(&format!("UPDATE {events} SET actor = 'mallory'"))
                .await
                .is_err()
        );
        assert!(h.raw(&format!("DELETE FROM {events}")).await.is_err());
        let audit = h.table("audit_log");
        assert!(
            h.raw(&format!("UPDATE {audit} SET actor = 'mallory'"))
                .await
                .is_err()
        );
        assert!(h.raw(&format!("DELETE FROM {audit}")).await.is_err());
        assert_eq!(h.count("run_events").await, 1);
        Ok(())
    }

    pub async fn bad_input_is_refused_and_nothing_is_written(h: Harness) -> TestResult {
        setup(&h).await?;
        let before = (
            h.count("runs").await,
            h.count("run_events").await,
            h.count("audit_log").await,
        );
        let req = |project, workflow, payload, priority, max_attempts| EnqueueRequest {
            project,
            workflow,
            payload,
            priority,
            max_attempts,
            run_after: None,
            acknowledge: false,
        };
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(1024 * 1024));
        let cases: Vec<(EnqueueRequest, &str)> = vec![
            (req("nope", "build", None, None, None), "unknown project"),
            (req("acme", "nope", None, None, None), "unknown workflow"),
            (
                req("acme", "build", Some("{not json"), None, None),
                "not valid JSON",
            ),
            (req("acme", "build", Some(&big), None, None), "too large"),
            (
                req("acme", "build", None, Some(5000), None),
                "invalid priority",
            ),
            (
                req("acme", "build", None, None, Some(0)),
                "invalid max attempts",
            ),
            (
                req("x'; DROP TABLE runs; --", "build", None, None, None),
                "unknown project",
            ),
        ];
        for (request, message) in cases {
            let err = h.ops.enqueue_run(&request).await.err().ok_or(message)?;
            assert!(
                err.to_string().contains(message),
                "{err} (wanted {message})"
            );
        }
        assert!(matches!(
            h.ops.create_project("Bad Key", None).await,
            Err(OpsError::Invalid(_))
        ));
        assert!(matches!(
            h.ops.create_project("acme", None).await,
            Err(OpsError::Store(StoreError::Conflict(_)))
        ));
        assert!(matches!(
            h.ops
                .create_workflow(&WorkflowRequest::new(
                    "acme",
                    "build",
                    WorkflowType::Build,
                    "true"
                ))
                .await,
            Err(OpsError::Store(StoreError::Conflict(_)))
        ));
        assert!(matches!(
            h.ops.run(424242).await,
            Err(OpsError::NotFound(_))
        ));
        assert!(matches!(
            h.ops.claim_runs("bad worker id", &[], 1, LEASE).await,
            Err(OpsError::Invalid(_))
        ));
        let after = (
            h.count("runs").await,
            h.count("run_events").await,
            h.count("audit_log").await,
        );
        assert_eq!(before, after, "a refused request wrote something");
        assert_eq!(h.ops.list_projects().await?.len(), 1);
        Ok(())
    }

    pub async fn mutations_leave_audit_rows(h: Harness) -> TestResult {
        setup(&h).await?;
        let id = enqueue(&h.ops, "build", 0).await?;
        h.ops.cancel_run(id).await?;
        h.ops.retry_run(id).await?;
        // project + 2 workflows + cancel + retry
        assert_eq!(h.count("audit_log").await, 5);
        // The console's audit overlay shows each change's before and after as read back here.
        let trail = h.ops.audit_trail(None, Some("run"), Some(10)).await?;
        let of = |action: &str| {
            trail
                .iter()
                .find(|r| r.action == action && r.entity_id == id.to_string())
                .unwrap_or_else(|| panic!("no {action} row"))
        };
        let cancel = of("cancel");
        assert_eq!(
            cancel.before.as_ref().and_then(|b| b["status"].as_str()),
            Some("queued")
        );
        assert!(
            cancel
                .after
                .as_ref()
                .is_some_and(|a| a.get("outcome").is_some())
        );
        let retry = of("retry");
        assert_eq!(retry.before, None);
        assert!(
            retry
                .after
                .as_ref()
                .and_then(|a| a["retry_run_id"].as_i64())
                .is_some_and(|new| new > id)
        );
        Ok(())
    }

    pub async fn eight_claimers_take_every_run_exactly_once(h: Harness) -> TestResult {
        setup(&h).await?;
        let build = h.ops.workflow("acme", "build").await?;
        const RUNS: usize = 5_000;
        let run = NewRun::new(build.project_id, build.id, &RunOptions::default())?;
        let batch = vec![run; 500];
        let mut ids = HashSet::new();
        for _ in 0..RUNS / 500 {
            ids.extend(h.ops.enqueue_runs(&batch).await?);
        }
        assert_eq!(ids.len(), RUNS);
        let mut tasks = Vec::new();
        for w in 0..8 {
            let ops = h.ops.clone();
            tasks.push(tokio::spawn(async move {
                let worker = format!("claimer-{w}");
                let mut mine = Vec::new();
                loop {
                    // Mixed batch sizes so claims interleave in different shapes.
                    let claimed = ops.claim_runs(&worker, &[], 1 + (w % 4) * 7, LEASE).await?;
                    if claimed.is_empty() {
                        return Ok::<_, OpsError>(mine);
                    }
                    let holds: Vec<Hold> = claimed.iter().map(ClaimedRun::hold).collect();
                    let started = ops.start_runs(&worker, &holds).await?;
                    assert_eq!(started.len(), holds.len());
                    let finished = ops
                        .complete_runs(
                            &worker,
                            &holds.iter().map(|&h| done(h, 0)).collect::<Vec<_>>(),
                        )
                        .await?;
                    assert_eq!(finished.len(), holds.len());
                    mine.extend(holds.iter().map(|h| h.run_id));
                }
            }));
        }
        let mut seen = Vec::new();
        for task in tasks {
            seen.extend(task.await??);
        }
        let unique: HashSet<i64> = seen.iter().copied().collect();
        assert_eq!(
            seen.len(),
            RUNS,
            "double claims: {}",
            seen.len() - unique.len()
        );
        assert_eq!(unique, ids, "lost runs");
        let succeeded = h
            .ops
            .list_runs(&RunQuery {
                status: Some(RunStatus::Succeeded),
                limit: Some(10_000),
                ..Default::default()
            })
            .await?;
        assert_eq!(succeeded.len(), RUNS);
        assert!(succeeded.iter().all(|r| r.attempt == 1));
        Ok(())
    }

    pub async fn a_read_only_store_refuses_writes(h: Harness) -> TestResult {
        setup(&h).await?;
        let id = enqueue(&h.ops, "build", 0).await?;
        let ro = store::open(
            &h.url,
            &StoreOptions {
                read_only: true,
                max_connections: 2,
                ..Default::default()
            },
        )
        .await?;
        assert!(ro.is_read_only());
        let ops = Ops::new(
            ro,
            ospdeck::domain::permission::Identity::administrator("viewer"),
        );
        assert_eq!(ops.run(id).await?.status, RunStatus::Queued);
        let err = ops
            .enqueue_run(&EnqueueRequest {
                project: "acme",
                workflow: "build",
                ..Default::default()
            })
            .await;
        assert!(
            matches!(err, Err(OpsError::Store(StoreError::ReadOnly(_)))),
            "{err:?}"
        );
        assert!(ops.claim_runs("w", &[], 1, LEASE).await.is_err());
        assert!(ops.cancel_run(id).await.is_err());
        assert_eq!(h.ops.run(id).await?.status, RunStatus::Queued);
        Ok(())
    }

    pub async fn the_waker_wakes_when_a_run_is_queued(h: Harness) -> TestResult {
        setup(&h).await?;
        let mut waker = h.store.run_waker().await?;
        let queues = vec!["default".to_owned()];
        // Nothing queued: the wait lasts its timeout.
        let t = std::time::Instant::now();
        waker.wait(&queues, Duration::from_millis(300)).await?;
        assert!(t.elapsed() >= Duration::from_millis(250));
        let ops = h.ops.clone();
        let enqueuer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            enqueue(&ops, "build", 0).await
        });
        let t = std::time::Instant::now();
        waker.wait(&queues, Duration::from_secs(20)).await?;
        enqueuer.await??;
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "woke only at the timeout"
        );
        Ok(())
    }

    pub async fn counts_are_exact_and_activity_is_per_minute(h: Harness) -> TestResult {
        setup(&h).await?;
        let idle = h.ops.queue_overview().await?;
        assert_eq!(idle.counts.len(), 6);
        assert!(idle.counts.iter().all(|c| c.count == 0));
        assert!(idle.activity.is_empty());

        for _ in 0..5 {
            enqueue(&h.ops, "build", 0).await?;
        }
        enqueue(&h.ops, "billing", 0).await?;
        let claimed = h.ops.claim_runs("w1", &[], 3, LEASE).await?;
        let holds: Vec<Hold> = claimed.iter().map(ClaimedRun::hold).collect();
        h.ops.start_runs("w1", &holds).await?;
        h.ops
            .complete_runs("w1", &[done(holds[0], 0), done(holds[1], 1)])
            .await?;
        h.ops
            .claim_runs("w2", &[], 1, Duration::from_secs(1))
            .await?;
        // Every way a status moves keeps the counters exact: cancel, retry, a lease that runs out.
        let queued = h
            .ops
            .list_runs(&RunQuery {
                status: Some(RunStatus::Queued),
                ..Default::default()
            })
            .await?;
        h.ops.cancel_run(queued[0].id).await?;
        h.ops.retry_run(holds[1].run_id).await?;
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        assert_eq!(h.ops.rescue_expired().await?.requeued, 1);

        let counted = h.store.count_runs_by_status().await?;
        for c in &counted {
            let real = h
                .scalar(&format!(
                    "SELECT count(*) FROM {} WHERE status = '{}'",
                    h.table("runs"),
                    c.status
                ))
                .await;
            assert_eq!(c.count, real, "{}", c.status);
        }
        assert_eq!(counted.iter().map(|c| c.count).sum::<i64>(), 7);
        let board = h.ops.queue_board().await?;
        for q in &board.queues {
            let real = h
                .scalar(&format!(
                    "SELECT count(*) FROM {} WHERE status = 'queued' AND queue = '{}'",
                    h.table("runs"),
                    q.queue
                ))
                .await;
            assert_eq!(q.queued, real, "{}", q.queue);
        }

        let overview = h.ops.queue_overview().await?;
        let total: (i64, i64) = overview
            .activity
            .iter()
            .fold((0, 0), |(s, f), m| (s + m.succeeded, f + m.failed));
        assert_eq!(total, (1, 1));
        assert!(overview.activity.iter().all(|m| m.minutes_ago <= 1));
        Ok(())
    }

    pub async fn structured_filters_select_by_every_field(h: Harness) -> TestResult {
        setup(&h).await?;
        let build = enqueue(&h.ops, "build", 5).await?;
        let billing = enqueue(&h.ops, "billing", 0).await?;
        let failed = enqueue(&h.ops, "build", 0).await?;
        // `failed` fails on worker w-one; `billing` is claimed by w-two.
        let claimed = h
            .ops
            .claim_runs("w-one", &[DEFAULT_QUEUE.into()], 2, LEASE)
            .await?;
        let hold = claimed
            .iter()
            .find(|c| c.id == failed)
            .map(ClaimedRun::hold)
            .ok_or("run not claimed")?;
        let other = claimed
            .iter()
            .find(|c| c.id == build)
            .map(ClaimedRun::hold)
            .ok_or("run not claimed")?;
        h.ops.release_runs("w-one", &[other]).await?;
        h.ops.start_runs("w-one", &[hold]).await?;
        h.ops
            .complete_runs(
                "w-one",
                &[Completion {
                    error: Some("disk full on /var".into()),
                    ..done(hold, 2)
                }],
            )
            .await?;
        h.ops
            .claim_runs("w-two", &["billing-tasks".into()], 1, LEASE)
            .await?;
        let find = |filter: &'static str| {
            let ops = h.ops.clone();
            async move {
                let runs = ops
                    .list_runs(&RunQuery {
                        filter: Some(filter),
                        ..Default::default()
                    })
                    .await?;
                Ok::<Vec<i64>, OpsError>(runs.iter().map(|r| r.id).collect())
            }
        };
        assert_eq!(find("status:failed").await?, vec![failed]);
        assert_eq!(find("status:fail,claim").await?, vec![failed, billing]);
        assert_eq!(find("workflow:bui").await?, vec![failed, build]);
        assert_eq!(find("workflow:build status:queued").await?, vec![build]);
        assert_eq!(find("queue:billing-tasks").await?, vec![billing]);
        assert_eq!(find("worker:w-two").await?, vec![billing]);
        assert_eq!(find("error:\"disk full\"").await?, vec![failed]);
        assert_eq!(find("try:>=1 worker:w-").await?, vec![failed, billing]);
        assert_eq!(find("priority:>1").await?, vec![build]);
        assert_eq!(find("project:acme age:<1h").await?.len(), 3);
        assert_eq!(find("age:>1h").await?, Vec::<i64>::new());
        let id = format!("id:{build}");
        let runs = h
            .ops
            .list_runs(&RunQuery {
                filter: Some(&id),
                ..Default::default()
            })
            .await?;
        assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![build]);
        // Free words: every one must be somewhere in the run.
        assert_eq!(find("acme full").await?, vec![failed]);
        // A filter being typed searches only the newest runs.
        let newest = |filter: &'static str| {
            let ops = h.ops.clone();
            async move {
                let runs = ops
                    .list_runs(&RunQuery {
                        filter: Some(filter),
                        newest: Some(1),
                        ..Default::default()
                    })
                    .await?;
                Ok::<Vec<i64>, OpsError>(runs.iter().map(|r| r.id).collect())
            }
        };
        assert_eq!(newest("workflow:build").await?, vec![failed]);
        assert_eq!(newest("workflow:billing").await?, Vec::<i64>::new());
        // `%` is a character, not a wildcard, and a bad term is an error that names the fields.
        assert_eq!(find("queue:%").await?, Vec::<i64>::new());
        let err = h
            .ops
            .list_runs(&RunQuery {
                filter: Some("colour:red"),
                ..Default::default()
            })
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("unknown field `colour`: filter on status"),
            "{err}"
        );
        Ok(())
    }

    pub async fn pages_reach_every_run_by_keyset(h: Harness) -> TestResult {
        use ospdeck::domain::run::Page;
        setup(&h).await?;
        let mut ids = Vec::new();
        for _ in 0..23 {
            ids.push(enqueue(&h.ops, "build", 0).await?);
        }
        enqueue(&h.ops, "billing", 0).await?;
        let list = |page: Page| {
            let ops = h.ops.clone();
            async move {
                let runs = ops
                    .list_runs(&RunQuery {
                        project: Some("acme"),
                        workflow: Some("build"),
                        limit: Some(10),
                        page,
                        ..Default::default()
                    })
                    .await?;
                Ok::<Vec<i64>, OpsError>(runs.into_iter().map(|r| r.id).collect())
            }
        };
        let newest_first: Vec<i64> = ids.iter().rev().copied().collect();
        // Down the list page by page: every run once, newest first, the last page short.
        let mut seen: Vec<i64> = Vec::new();
        let mut page = Page::Newest;
        loop {
            let rows = list(page).await?;
            seen.extend(rows.iter().copied());
            match rows.last() {
                Some(&last) if rows.len() == 10 => page = Page::OlderThan(last),
                _ => break,
            }
        }
        assert_eq!(seen, newest_first);
        // The oldest page and back up: each answered newest first.
        assert_eq!(list(Page::Oldest).await?, newest_first[13..]);
        assert_eq!(list(Page::NewerThan(ids[9])).await?, newest_first[3..13]);
        assert_eq!(list(Page::NewerThan(ids[22])).await?, Vec::<i64>::new());
        Ok(())
    }

    pub async fn workers_register_beat_and_leave(h: Harness) -> TestResult {
        use ospdeck::domain::worker::WorkerPresence;
        let now = chrono::Utc::now();
        let presence = |id: &str, queues: &[&str]| WorkerPresence {
            worker_id: id.into(),
            host: "ops-1".into(),
            pid: 42,
            queues: queues.iter().map(|q| q.to_string()).collect(),
            concurrency: 4,
            version: "0.1.0".into(),
            service: None,
            runs_held: 0,
            started_at: now,
            heartbeat_at: now,
        };
        assert!(h.ops.worker_presence().await?.is_empty());
        h.ops
            .register_worker(&presence("w1", &["build", "billing-tasks"]))
            .await?;
        h.ops.register_worker(&presence("w2", &[])).await?;
        let listed = h.ops.worker_presence().await?;
        assert_eq!(listed.len(), 2);
        assert_eq!(
            listed[0].queues,
            ["build", "billing-tasks"],
            "kept in order"
        );
        assert!(listed[1].queues.is_empty(), "every queue");
        assert_eq!(listed[0].started_at.timestamp(), now.timestamp());

        assert!(h.ops.beat_worker("w1", 3).await?);
        let w1 = h.ops.worker_presence().await?.remove(0);
        assert_eq!(w1.runs_held, 3);
        // (SQLite keeps milliseconds: the beat is not before `now` to the millisecond.)
        assert!(w1.heartbeat_at.timestamp_millis() >= now.timestamp_millis());
        // A worker whose row is gone is told to register again.
        assert!(!h.ops.beat_worker("nobody", 0).await?);

        // Registering again replaces the row (a restarted worker with the same id).
        let mut again = presence("w1", &["build"]);
        again.concurrency = 8;
        h.ops.register_worker(&again).await?;
        let w1 = h.ops.worker_presence().await?.remove(0);
        assert_eq!((w1.concurrency, w1.queues.len()), (8, 1));

        // A row that stopped beating long ago is not listed, and the next registration removes it.
        let mut old = presence("w-old", &[]);
        old.heartbeat_at = now - chrono::Duration::days(2);
        h.ops.register_worker(&old).await?;
        assert_eq!(h.ops.worker_presence().await?.len(), 2);
        h.ops.register_worker(&presence("w3", &[])).await?;
        assert_eq!(h.count("worker_presence").await, 3);

        h.ops.deregister_worker("w2").await?;
        h.ops.deregister_worker("w2").await?;
        let ids: Vec<String> = h
            .ops
            .worker_presence()
            .await?
            .into_iter()
            .map(|w| w.worker_id)
            .collect();
        assert_eq!(ids, ["w1", "w3"]);
        Ok(())
    }

    pub async fn queue_stats_count_each_queue_now_and_over_the_hour(h: Harness) -> TestResult {
        setup(&h).await?;
        h.ops
            .create_workflow(&WorkflowRequest::new(
                "acme",
                "ship",
                WorkflowType::Deploy,
                "true",
            ))
            .await?;
        assert!(h.ops.queue_board().await?.queues.is_empty());
        for _ in 0..4 {
            enqueue(&h.ops, "build", 0).await?;
        }
        enqueue(&h.ops, "billing", 0).await?;
        let ship = enqueue(&h.ops, "ship", 0).await?;
        let before = chrono::Utc::now();
        // Of build's four: one succeeds, one fails, one runs, one waits.
        let claimed = h
            .ops
            .claim_runs("w1", &["default".to_owned()], 3, LEASE)
            .await?;
        let holds: Vec<Hold> = claimed.iter().map(ClaimedRun::hold).collect();
        h.ops.start_runs("w1", &holds).await?;
        h.ops
            .complete_runs("w1", &[done(holds[0], 0), done(holds[1], 1)])
            .await?;
        let board = h.ops.queue_board().await?;
        let queue = |name: &str| board.queues.iter().find(|q| q.queue == name).cloned();
        let default = queue("default").ok_or("no default queue")?;
        // build's waiting run plus the deploy run, both on the default queue.
        assert_eq!(
            (
                default.queued,
                default.claimed,
                default.running,
                default.succeeded_last_hour,
                default.failed_last_hour
            ),
            (2, 0, 1, 1, 1)
        );
        assert!(default.oldest_due.is_some_and(|t| t <= chrono::Utc::now()));
        let billing = queue("billing-tasks").ok_or("no billing queue")?;
        assert_eq!((billing.queued, billing.running), (1, 0));
        assert_eq!(board.queues.len(), 2);

        // A deploy run that started is a marker on the time axis.
        assert!(board.deploys.is_empty());
        let claimed = h
            .ops
            .claim_runs("w2", &["default".to_owned()], 5, LEASE)
            .await?;
        let deploy = claimed
            .iter()
            .find(|c| c.id == ship)
            .map(ClaimedRun::hold)
            .ok_or("the deploy run was not claimed")?;
        h.ops.start_runs("w2", &[deploy]).await?;
        let board = h.ops.queue_board().await?;
        assert_eq!(board.deploys.len(), 1);
        // To the minute it started.
        assert!(board.deploys[0] > before - chrono::Duration::minutes(1));
        assert!(board.deploys[0] <= chrono::Utc::now());
        h.ops.complete_runs("w2", &[done(deploy, 0)]).await?;
        assert_eq!(
            h.ops.queue_board().await?.deploys.len(),
            1,
            "finished, still shown"
        );
        Ok(())
    }

    pub async fn text_filter_matches_names_and_ids_and_escapes_wildcards(h: Harness) -> TestResult {
        setup(&h).await?;
        h.ops
            .create_workflow(&WorkflowRequest::new(
                "acme",
                "deploy_eu",
                WorkflowType::Deploy,
                "true",
            ))
            .await?;
        let build = enqueue(&h.ops, "build", 0).await?;
        let billing = enqueue(&h.ops, "billing", 0).await?;
        let deploy = enqueue(&h.ops, "deploy_eu", 0).await?;
        let find = |text: &'static str| {
            let ops = h.ops.clone();
            async move {
                let runs = ops
                    .list_runs(&RunQuery {
                        text: Some(text),
                        ..Default::default()
                    })
                    .await?;
                Ok::<Vec<i64>, OpsError>(runs.iter().map(|r| r.id).collect())
            }
        };
        assert_eq!(find("BILL").await?, vec![billing]);
        assert_eq!(find("billing-tasks").await?, vec![billing]);
        assert_eq!(find(" ").await?, vec![deploy, billing, build]);
        // `_` is a character here, not LIKE's any-one-character.
        assert_eq!(find("y_e").await?, vec![deploy]);
        assert_eq!(find("%").await?, Vec::<i64>::new());
        let by_id = build.to_string();
        let runs = h
            .ops
            .list_runs(&RunQuery {
                text: Some(&by_id),
                ..Default::default()
            })
            .await?;
        assert!(runs.iter().any(|r| r.id == build));
        Ok(())
    }

    pub async fn the_change_watcher_sees_state_changes_and_logs(h: Harness) -> TestResult {
        setup(&h).await?;
        let id = enqueue(&h.ops, "build", 0).await?;
        let mut watcher = h.ops.change_watcher().await?;
        // Prime (SQLite's first poll records where the counter stands) and check quiet is quiet.
        watcher.changed(Duration::from_millis(300)).await?;
        assert!(!watcher.changed(Duration::from_millis(400)).await?);

        let changes: [Box<dyn Fn(Ops) -> _>; 2] = [
            Box::new(move |ops: Ops| {
                tokio::spawn(async move { ops.cancel_run(id).await.map(|_| ()) })
            }),
            Box::new(move |ops: Ops| {
                tokio::spawn(async move {
                    ops.append_logs(
                        id,
                        &[NewLogLine::new(
                            LogLevel::Info,
                            "hello",
                            serde_json::json!({}),
                        )],
                    )
                    .await
                })
            }),
        ];
        for change in changes {
            let task = change(h.ops.clone());
            let t = std::time::Instant::now();
            assert!(
                watcher.changed(Duration::from_secs(10)).await?,
                "no change seen"
            );
            assert!(t.elapsed() < Duration::from_secs(5));
            task.await??;
            // Let a trailing notification of the same change arrive and fold it away.
            while watcher.changed(Duration::from_millis(300)).await? {}
        }
        Ok(())
    }

    pub async fn migrations_go_down_and_up_again(h: Harness) -> TestResult {
        let status = h.store.migration_status().await?;
        assert!(status.iter().all(|m| m.applied));
        let versions: Vec<i64> = status.iter().map(|m| m.version).collect();
        // Down goes newest first, one version per call, until nothing is left.
        for &expected in versions.iter().rev() {
            let reverted = h.store.migrate_down().await?.ok_or("nothing reverted")?;
            assert_eq!(reverted.version, expected);
        }
        assert!(h.store.migrate_down().await?.is_none());
        assert!(h.store.migration_status().await?.iter().all(|m| !m.applied));
        assert!(matches!(
            h.ops.list_projects().await,
            Err(OpsError::Store(StoreError::NotMigrated(_)))
        ));
        assert_eq!(h.store.migrate().await?, versions);
        setup(&h).await?;
        Ok(())
    }

    use ospdeck::ops::{BulkAction, BulkItem, BulkOutcome, BulkRequest, RunTarget};

    /// Runs a bulk request, collecting its answers.
    async fn bulk(
        ops: &Ops,
        action: BulkAction,
        target: RunTarget<'_>,
        dry_run: bool,
    ) -> Result<(ospdeck::ops::BulkTally, Vec<BulkItem>), OpsError> {
        let mut items = Vec::new();
        let mut sink = |batch: Vec<BulkItem>| {
            items.extend(batch);
            true
        };
        let tally = ops
            .bulk_runs(
                &BulkRequest {
                    action,
                    target,
                    dry_run,
                    fresh: true,
                },
                &mut sink,
            )
            .await?;
        Ok((tally, items))
    }

    /// `n` queued runs of acme's `workflow`, queued in one transaction.
    async fn enqueue_many(h: &Harness, workflow: &str, n: usize) -> Result<Vec<i64>, OpsError> {
        let wf = h.ops.workflow("acme", workflow).await?;
        let runs: Vec<NewRun> = (0..n)
            .map(|_| NewRun::new(wf.project_id, wf.id, &RunOptions::default()))
            .collect::<Result<_, _>>()?;
        h.ops.enqueue_runs(&runs).await
    }

    pub async fn bulk_cancel_by_filter_is_one_audited_transaction_per_batch(
        h: Harness,
    ) -> TestResult {
        setup(&h).await?;
        let ids = enqueue_many(&h, "build", 10_000).await?;
        let others = enqueue_many(&h, "billing", 3).await?;
        // Six taken: five started, two of those finished; so 3 running, 1 claimed, 2 finished.
        let claimed = h
            .ops
            .claim_runs("w", &["default".to_owned()], 6, LEASE)
            .await?;
        let holds: Vec<Hold> = claimed
            .iter()
            .take(5)
            .map(|c| Hold {
                run_id: c.id,
                attempt: c.attempt,
            })
            .collect();
        h.ops.start_runs("w", &holds).await?;
        h.ops
            .complete_runs("w", &[done(holds[0], 0), done(holds[1], 1)])
            .await?;
        let running: Vec<i64> = holds[2..].iter().map(|h| h.run_id).collect();
        let finished = [holds[0].run_id, holds[1].run_id];
        let audit_before = h.count("audit_log").await;

        let filter = "workflow:build";
        let plan = h
            .ops
            .plan_bulk(BulkAction::Cancel, RunTarget::Where(filter))
            .await?;
        assert_eq!(
            (
                plan.matched,
                plan.canceled,
                plan.requested,
                plan.not_applicable
            ),
            (10_000, 9_995, 3, 2)
        );
        let (dry, items) = bulk(&h.ops, BulkAction::Cancel, RunTarget::Where(filter), true).await?;
        assert_eq!(dry, plan, "a dry run tallies what the plan counted");
        assert_eq!(items.len(), 10_000);
        assert_eq!(h.count("audit_log").await, audit_before, "a dry run wrote");
        assert_eq!(h.ops.run(ids[9_999]).await?.status, RunStatus::Queued);

        let (tally, items) =
            bulk(&h.ops, BulkAction::Cancel, RunTarget::Where(filter), false).await?;
        assert_eq!(
            (tally.canceled, tally.requested, tally.not_applicable),
            (9_995, 3, 2)
        );
        for item in &items {
            let expected = if running.contains(&item.run.id) {
                (BulkOutcome::Requested, RunStatus::Running, true)
            } else if finished.contains(&item.run.id) {
                (BulkOutcome::Skipped, item.run.status, false)
            } else {
                (BulkOutcome::Canceled, RunStatus::Canceled, false)
            };
            assert_eq!(
                (item.outcome, item.run.status, item.run.cancel_requested),
                expected,
                "run {}",
                item.run.id
            );
        }
        for id in running {
            let run = h.ops.run(id).await?;
            assert!(run.status == RunStatus::Running && run.cancel_requested);
        }
        assert_eq!(h.ops.run(finished[0]).await?.status, RunStatus::Succeeded);
        assert_eq!(h.ops.run(finished[1]).await?.status, RunStatus::Failed);
        for id in others {
            assert_eq!(h.ops.run(id).await?.status, RunStatus::Queued);
        }
        // One audit row per batch of 1 000, each naming the filter and its runs.
        let trail = h.ops.audit_trail(None, Some("run"), Some(100)).await?;
        let rows: Vec<_> = trail.iter().filter(|r| r.action == "cancel").collect();
        assert_eq!(rows.len(), 10);
        assert_eq!(h.count("audit_log").await, audit_before + 10);
        let mut audited = 0;
        for row in rows {
            let before = row.before.as_ref().ok_or("no before")?;
            assert_eq!(before["filter"], filter);
            let n = before["count"].as_i64().ok_or("no count")?;
            assert!(n <= 1_000);
            assert_eq!(before["runs"].as_array().map(Vec::len), Some(n as usize));
            audited += n;
        }
        assert_eq!(audited, 9_998);
        Ok(())
    }

    pub async fn bulk_retry_queues_one_new_run_per_finished_run(h: Harness) -> TestResult {
        setup(&h).await?;
        let ids = enqueue_many(&h, "build", 1_500).await?;
        let queued_left = enqueue(&h.ops, "build", 0).await?;
        let (_, _) = bulk(&h.ops, BulkAction::Cancel, RunTarget::Ids(&ids), false).await?;
        let (tally, items) = bulk(
            &h.ops,
            BulkAction::Retry,
            RunTarget::Where("workflow:build"),
            false,
        )
        .await?;
        assert_eq!((tally.retried, tally.not_applicable), (1_500, 1));
        let mut retried: Vec<i64> = Vec::new();
        for item in &items {
            match item.outcome {
                BulkOutcome::Retried => {
                    assert_eq!(item.run.status, RunStatus::Queued);
                    assert!(item.run.id > queued_left);
                    retried.push(item.run.retry_of.ok_or("no retry_of")?);
                }
                BulkOutcome::Skipped => assert_eq!(item.run.id, queued_left),
                other => return Err(format!("unexpected {other:?}").into()),
            }
        }
        retried.sort_unstable();
        assert_eq!(retried, ids);
        let trail = h.ops.audit_trail(None, Some("run"), Some(100)).await?;
        let rows: Vec<_> = trail.iter().filter(|r| r.action == "retry").collect();
        assert_eq!(rows.len(), 2, "1 500 runs are two batches");
        assert!(rows.iter().all(|r| {
            r.before
                .as_ref()
                .is_some_and(|b| b["filter"] == "workflow:build")
        }));
        Ok(())
    }

    pub async fn cancel_by_ids_is_idempotent(h: Harness) -> TestResult {
        setup(&h).await?;
        let a = enqueue(&h.ops, "build", 0).await?;
        let b = enqueue(&h.ops, "build", 0).await?;
        let (_, first) = bulk(&h.ops, BulkAction::Cancel, RunTarget::Ids(&[a]), false).await?;
        assert_eq!(first[0].outcome, BulkOutcome::Canceled);
        assert_eq!(first[0].run.status, RunStatus::Canceled);
        let (_, again) = bulk(&h.ops, BulkAction::Cancel, RunTarget::Ids(&[a, b]), false).await?;
        let outcomes: Vec<(i64, BulkOutcome)> =
            again.iter().map(|i| (i.run.id, i.outcome)).collect();
        assert_eq!(
            outcomes,
            vec![
                (b, BulkOutcome::Canceled),
                (a, BulkOutcome::AlreadyCanceled)
            ]
        );
        // A run that succeeded is not canceled: skipped, with the reason.
        let c = enqueue(&h.ops, "build", 0).await?;
        let claimed = h.ops.claim_next_run("w", &[], LEASE).await?.ok_or("none")?;
        assert_eq!(claimed.id, c);
        h.ops.start_run("w", c).await?;
        h.ops.complete_run("w", c, 0, None).await?;
        let (_, done) = bulk(&h.ops, BulkAction::Cancel, RunTarget::Ids(&[c]), false).await?;
        assert_eq!(done[0].outcome, BulkOutcome::Skipped);
        assert!(
            done[0]
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("succeeded"))
        );
        // An unknown id refuses the whole request before anything changes.
        let d = enqueue(&h.ops, "build", 0).await?;
        let unknown = bulk(
            &h.ops,
            BulkAction::Cancel,
            RunTarget::Ids(&[d, 999_999]),
            false,
        )
        .await;
        assert!(matches!(unknown, Err(OpsError::NotFound(_))), "{unknown:?}");
        assert_eq!(h.ops.run(d).await?.status, RunStatus::Queued);
        Ok(())
    }

    pub async fn a_member_cancels_and_retries_in_bulk_where_its_role_allows(
        h: Harness,
    ) -> TestResult {
        use ospdeck::domain::permission::{Identity, Role};
        setup(&h).await?;
        h.ops.create_project("other", None).await?;
        h.ops
            .create_workflow(&WorkflowRequest::new(
                "other",
                "obuild",
                WorkflowType::Build,
                "true",
            ))
            .await?;
        let user = format!("{}_bulk", h.unique_prefix());
        h.ops
            .set_member(
                "acme",
                &user,
                ospdeck::domain::permission::Role::Admin,
                false,
            )
            .await?;
        h.ops
            .set_member("other", &user, Role::Developer, false)
            .await?;
        let member = match h.kind() {
            store::StoreKind::Postgres => {
                let s = store::open(
                    &h.url_as(&user),
                    &StoreOptions {
                        read_only: false,
                        max_connections: 2,
                        ..Default::default()
                    },
                )
                .await?;
                Ops::connect_as(s, None).await?
            }
            store::StoreKind::Sqlite => Ops::new(h.store.clone(), Identity::member(user.clone())),
        };
        assert!(!member.identity().administrator);
        let mine = enqueue_many(&h, "build", 3).await?;
        let theirs = h
            .ops
            .enqueue_run(&EnqueueRequest {
                project: "other",
                workflow: "obuild",
                ..Default::default()
            })
            .await?;
        let (tally, items) = bulk(
            &member,
            BulkAction::Cancel,
            RunTarget::Where("status:queued"),
            false,
        )
        .await?;
        assert_eq!((tally.canceled, tally.forbidden), (3, 1));
        assert_eq!(tally.forbidden_projects, vec!["other".to_owned()]);
        let skipped = items
            .iter()
            .find(|i| i.run.id == theirs)
            .ok_or("other's run")?;
        assert!(
            skipped
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("permission denied")),
            "{skipped:?}"
        );
        assert_eq!(h.ops.run(theirs).await?.status, RunStatus::Queued);
        for id in &mine {
            assert_eq!(h.ops.run(*id).await?.status, RunStatus::Canceled);
        }
        // Named by id, a run the member may not cancel refuses the whole request.
        let refused = bulk(
            &member,
            BulkAction::Cancel,
            RunTarget::Ids(&[theirs]),
            false,
        )
        .await;
        assert!(
            matches!(refused, Err(OpsError::Forbidden(_))),
            "{refused:?}"
        );
        let (tally, _) = bulk(
            &member,
            BulkAction::Retry,
            RunTarget::Where("status:canceled"),
            false,
        )
        .await?;
        assert_eq!(tally.retried, 3);
        let audited = h.ops.audit_trail(None, Some("run"), Some(10)).await?;
        assert!(
            audited
                .iter()
                .any(|r| r.action == "cancel" && r.actor == user),
            "{audited:?}"
        );
        Ok(())
    }
}

/// migrations/postgres/functions/live.sql holds the live definition of every function of schemas
/// ops and osp_metadata (trigger functions too), as the newest migration leaves it. This compares
/// the file with what a migrated database holds, function by function, so that neither changes
/// without the other.
mod postgres_functions {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use sqlx::Connection;

    use crate::common::{Harness, TestResult};

    /// Set to 1 to write the file from the migrated database instead of comparing.
    const WRITE_VAR: &str = "OSPDECK_WRITE_PG_FUNCTIONS";
    const MARKER: &str = "-- function: ";
    const HEADER: &str = "\
-- The live definition of every function in schemas ops and osp_metadata (trigger functions
-- included), as the newest migration under migrations/postgres leaves it: what replaying
-- 0001…NNNN by hand would otherwise tell. Not a migration (sqlx reads only the files directly
-- under migrations/postgres): a function is changed by a new migration, and this file with it.
--
-- Each definition is pg_get_functiondef's text (search_path empty, so names are qualified),
-- ordered by signature, after a `-- function: <regprocedure>` line. tests/conformance.rs
-- (postgres_functions) compares it with a migrated database and names any function that differs.
-- Regenerate it from the migrations after changing a function there:
--
--   OSPDECK_REQUIRE_PG=1 OSPDECK_WRITE_PG_FUNCTIONS=1 cargo test --test conformance postgres_functions
";

    fn file() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres/functions/live.sql")
    }

    /// Signature -> definition, from the migrated database.
    async fn live(h: &Harness) -> Result<BTreeMap<String, String>, sqlx::Error> {
        let mut conn = sqlx::PgConnection::connect(&h.url).await?;
        // Names are printed qualified unless on the search path: none is, so the text is the same
        // whatever the session's default.
        sqlx::query("SET search_path = ''")
            .execute(&mut conn)
            .await?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid)
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname IN ('ops', 'osp_metadata') AND p.prokind IN ('f', 'p')",
        )
        .fetch_all(&mut conn)
        .await?;
        let aggregates: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname IN ('ops', 'osp_metadata') AND p.prokind NOT IN ('f', 'p')",
        )
        .fetch_one(&mut conn)
        .await?;
        assert_eq!(
            aggregates, 0,
            "aggregate or window functions in ops/osp_metadata: pg_get_functiondef cannot print \
             them; extend this test"
        );
        Ok(rows
            .into_iter()
            .map(|(sig, def)| (sig, def.trim_end().to_owned()))
            .collect())
    }

    fn render(functions: &BTreeMap<String, String>) -> String {
        let mut out = HEADER.to_owned();
        for (sig, def) in functions {
            out.push_str(&format!("\n{MARKER}{sig}\n{def};\n"));
        }
        out
    }

    /// Signature -> definition, from the file's text.
    fn parse(text: &str) -> Result<BTreeMap<String, String>, String> {
        let mut functions = BTreeMap::new();
        let mut current: Option<(String, Vec<&str>)> = None;
        let mut finish = |current: Option<(String, Vec<&str>)>| -> Result<(), String> {
            if let Some((sig, lines)) = current {
                let def = lines.join("\n");
                let def = def.trim_end();
                let def = def.strip_suffix(';').unwrap_or(def).trim_end().to_owned();
                if functions.insert(sig.clone(), def).is_some() {
                    return Err(format!("{sig} appears twice"));
                }
            }
            Ok(())
        };
        for line in text.lines() {
            if let Some(sig) = line.strip_prefix(MARKER) {
                finish(current.take())?;
                current = Some((sig.trim().to_owned(), Vec::new()));
            } else if let Some((_, lines)) = current.as_mut() {
                lines.push(line);
            }
        }
        finish(current)?;
        Ok(functions)
    }

    /// The first line where two definitions part, for the failure message.
    fn first_difference(file: &str, db: &str) -> String {
        let (f, d): (Vec<&str>, Vec<&str>) = (file.lines().collect(), db.lines().collect());
        let at = f
            .iter()
            .zip(&d)
            .position(|(a, b)| a != b)
            .unwrap_or(f.len().min(d.len()));
        format!(
            "line {}: file has {:?}, database has {:?}",
            at + 1,
            f.get(at).copied().unwrap_or("<end>"),
            d.get(at).copied().unwrap_or("<end>")
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_function_file_is_what_the_migrations_leave() -> TestResult {
        let Some(h) = Harness::postgres("the_function_file_is_what_the_migrations_leave").await
        else {
            return Ok(());
        };
        let db = live(&h).await?;
        assert!(db.len() > 20, "only {} functions found", db.len());
        if std::env::var(WRITE_VAR).is_ok_and(|v| v == "1") {
            std::fs::create_dir_all(file().parent().ok_or("no parent")?)?;
            std::fs::write(file(), render(&db))?;
            println!("wrote {} functions to {}", db.len(), file().display());
            return Ok(());
        }
        let text = std::fs::read_to_string(file())
            .map_err(|e| format!("{}: {e}; regenerate it ({WRITE_VAR}=1)", file().display()))?;
        let in_file = parse(&text)?;
        let mut problems = Vec::new();
        for (sig, def) in &db {
            match in_file.get(sig) {
                None => problems.push(format!("{sig}: in the database, missing from the file")),
                Some(f) if f != def => {
                    problems.push(format!("{sig}: differs, {}", first_difference(f, def)));
                }
                Some(_) => {}
            }
        }
        for sig in in_file.keys().filter(|s| !db.contains_key(*s)) {
            problems.push(format!("{sig}: in the file, not in the migrated database"));
        }
        assert!(
            problems.is_empty(),
            "{} and the migrations disagree ({} function(s)); change both, or regenerate the file \
             with {WRITE_VAR}=1 if the migration is right:\n  {}",
            file().display(),
            problems.len(),
            problems.join("\n  ")
        );
        // The file is exactly what would be written, header included: nothing hand-edited in.
        assert_eq!(text, render(&db), "the file's text is not as generated");
        Ok(())
    }
}

/// The log pager's reads (windows, line numbers, server-side search) and the retry chain.
mod log_pager {
    crate::conformance!(
        log_windows_line_numbers_and_search_cover_every_line,
        a_run_lists_the_runs_that_retry_it,
        a_big_append_keeps_every_line_in_order_with_its_metadata,
    );

    mod cases {
        use std::time::Duration;

        use ospdeck::domain::run::{LogLevel, NewLogLine, RunStatus};
        use ospdeck::domain::workflow::WorkflowType;
        use ospdeck::ops::{EnqueueRequest, MAX_LOG_MATCHES, Ops, OpsError, WorkflowRequest};

        use crate::common::{Harness, TestResult};

        async fn setup(ops: &Ops) -> Result<i64, OpsError> {
            ops.create_project("acme", Some("Acme")).await?;
            ops.create_workflow(&WorkflowRequest::new(
                "acme",
                "build",
                WorkflowType::Build,
                "true",
            ))
            .await?;
            ops.enqueue_run(&EnqueueRequest {
                project: "acme",
                workflow: "build",
                ..Default::default()
            })
            .await
        }

        fn lines(from: usize, n: usize) -> Vec<NewLogLine> {
            (from..from + n)
                .map(|i| {
                    let text = if i % 250 == 0 {
                        format!("line {i} kaboom: disk full")
                    } else {
                        format!("line {i} compiling unit {}", i % 7)
                    };
                    NewLogLine::new(LogLevel::Info, &text, serde_json::json!({}))
                })
                .collect()
        }

        /// One append of 10 000 lines (a worker's batch is a few thousand): every line stored,
        /// in order, with its level and metadata as given, text that looks like JSON or SQL
        /// kept as text, and the lines searchable at once.
        pub async fn a_big_append_keeps_every_line_in_order_with_its_metadata(
            h: Harness,
        ) -> TestResult {
            let id = setup(&h.ops).await?;
            let odd = [
                r#"{"not": "metadata"}"#,
                "quote ' and \" and back\\slash",
                "ünïcødé ✓ 日本語",
                "",
                "'); DROP TABLE run_logs; --",
                "[1, 2, 3]",
                "null",
            ];
            let sent: Vec<NewLogLine> = (0..10_000)
                .map(|i| {
                    let (level, metadata) = match i % 3 {
                        0 => (LogLevel::Info, serde_json::json!({ "stream": "stdout" })),
                        1 => (
                            LogLevel::Error,
                            serde_json::json!({ "stream": "stderr", "n": i }),
                        ),
                        _ => (LogLevel::Warn, serde_json::Value::Null),
                    };
                    let text = if i % 1_000 == 999 {
                        odd[(i / 1_000) % odd.len()].to_owned()
                    } else {
                        format!("line {i} of the big append")
                    };
                    NewLogLine::new(level, &text, metadata)
                })
                .collect();
            h.ops.append_logs(id, &sent).await?;
            h.ops.append_logs(id, &lines(0, 3)).await?;
            let mut stored = Vec::new();
            let mut after = 0;
            loop {
                let page = h.ops.run_logs(id, after, None, 4_000).await?;
                let Some(last) = page.last() else { break };
                after = last.id;
                stored.extend(page);
            }
            assert_eq!(stored.len(), 10_003);
            assert!(stored.windows(2).all(|w| w[0].id < w[1].id));
            for (i, (got, want)) in stored.iter().zip(&sent).enumerate() {
                assert_eq!(got.message, want.message, "line {i}");
                assert_eq!(got.level, want.level, "line {i}");
                assert_eq!(got.metadata, *want.metadata, "line {i}");
            }
            assert_eq!(stored[10_000].message, "line 0 kaboom: disk full");
            assert_eq!(h.ops.count_run_logs(id, None).await?, 10_003);
            let found = h.ops.search_run_logs(id, "9998", 10).await?;
            assert_eq!(found.ids, vec![stored[9_998].id]);
            assert_eq!(found.total, 1);
            Ok(())
        }

        pub async fn log_windows_line_numbers_and_search_cover_every_line(
            h: Harness,
        ) -> TestResult {
            let id = setup(&h.ops).await?;
            let other = h
                .ops
                .enqueue_run(&EnqueueRequest {
                    project: "acme",
                    workflow: "build",
                    ..Default::default()
                })
                .await?;
            // Interleaved with another run's lines, so ids of one run are not consecutive.
            for batch in 0..5 {
                h.ops.append_logs(id, &lines(batch * 1_000, 1_000)).await?;
                h.ops.append_logs(other, &lines(0, 300)).await?;
            }
            let mut ids = Vec::new();
            let mut after = 0;
            loop {
                let page = h.ops.run_logs(id, after, None, 1_000).await?;
                let Some(last) = page.last() else { break };
                after = last.id;
                ids.extend(page.iter().map(|l| l.id));
            }
            assert_eq!(ids.len(), 5_000);
            assert_eq!(h.ops.count_run_logs(id, None).await?, 5_000);
            // A line's number is its rank among the run's lines, whatever the other run wrote.
            for k in [0, 1, 999, 1_000, 4_321, 4_999] {
                assert_eq!(h.ops.count_run_logs(id, Some(ids[k])).await?, k as i64);
            }
            let above = h.ops.run_logs_before(id, ids[1_000], 10).await?;
            assert_eq!(
                above.iter().map(|l| l.id).collect::<Vec<_>>(),
                ids[990..1_000].to_vec(),
                "the page above a window, oldest first"
            );
            assert!(above[9].message.starts_with("line 999 "));
            assert!(h.ops.run_logs_before(id, ids[0], 10).await?.is_empty());

            let found = h.ops.search_run_logs(id, "kaboom", MAX_LOG_MATCHES).await?;
            assert_eq!(found.total, 20);
            let want: Vec<i64> = (0..20).map(|k| ids[k * 250]).collect();
            assert_eq!(found.ids, want);
            // Past the cap the matches are counted, not listed.
            let capped = h.ops.search_run_logs(id, "KABOOM disk", 5).await?;
            assert_eq!((capped.ids.len(), capped.total), (5, 20));
            assert_eq!(capped.unlisted(), 15);
            assert_eq!(capped.ids, want[..5].to_vec());
            // Every word must match; none of the other run's lines do.
            assert_eq!(
                h.ops.search_run_logs(id, "kaboom unit", 100).await?.total,
                0
            );
            assert_eq!(h.ops.search_run_logs(other, "kaboom", 100).await?.total, 10);
            // Search syntax in user text is words; empty text matches nothing.
            assert!(
                h.ops
                    .search_run_logs(id, "\"kaboom\" AND OR * NEAR(", 100)
                    .await
                    .is_ok()
            );
            assert_eq!(h.ops.search_run_logs(id, "   ", 100).await?.total, 0);
            Ok(())
        }

        pub async fn a_run_lists_the_runs_that_retry_it(h: Harness) -> TestResult {
            let id = setup(&h.ops).await?;
            let lease = Duration::from_secs(60);
            assert!(h.ops.run_detail(id).await?.retried_by.is_empty());
            h.ops.claim_next_run("w", &[], lease).await?;
            h.ops.start_run("w", id).await?;
            h.ops.complete_run("w", id, 1, Some("exit code 1")).await?;
            let first = h.ops.retry_run(id).await?;
            h.ops.claim_next_run("w", &[], lease).await?;
            h.ops.start_run("w", first).await?;
            h.ops.complete_run("w", first, 0, None).await?;
            let second = h.ops.retry_run(id).await?;
            let detail = h.ops.run_detail(id).await?;
            assert_eq!(
                detail
                    .retried_by
                    .iter()
                    .map(|r| (r.id, r.status))
                    .collect::<Vec<_>>(),
                vec![(first, RunStatus::Succeeded), (second, RunStatus::Queued)]
            );
            let retry = h.ops.run_detail(first).await?;
            assert_eq!(retry.run.retry_of, Some(id));
            assert!(retry.retried_by.is_empty());
            // The first attempt of the first run, from its events: worker, times, exit code.
            let tries = ospdeck::domain::run::attempts(&detail.run, &detail.events);
            assert_eq!(tries.len(), 1);
            assert_eq!(tries[0].worker, "w");
            assert_eq!(tries[0].outcome, Some(RunStatus::Failed));
            assert!(tries[0].started_at.is_some() && tries[0].finished_at.is_some());
            assert_eq!(tries[0].exit_code, Some(1));
            assert_eq!(tries[0].error.as_deref(), Some("exit code 1"));
            Ok(())
        }
    }
}

/// A service's detail as the console shows it, the same on both stores: drift between the
/// deployed manifest and the governing one, the worker's deployments with their steps, the
/// service's workflows and queue load; and the refusals the console says before asking.
mod service_detail {
    crate::conformance!(a_service_detail_shows_drift_deployments_workflows_and_queue_load);

    mod cases {
        use ospdeck::deploy::{DeployerConfig, DeployerKind};
        use ospdeck::domain::deployment::DeployStep;
        use ospdeck::domain::manifest::{Bump, Drift};
        use ospdeck::ops::{CreateService, EnqueueRequest, ManifestProposal, OpsError};

        use crate::common::{Harness, TestResult};

        const SCHEMA: &str = "billing_core";

        pub async fn a_service_detail_shows_drift_deployments_workflows_and_queue_load(
            h: Harness,
        ) -> TestResult {
            h.ops.create_project("telecom", Some("Telecom")).await?;
            let specs = ["processBilling:calc,send", "nightly:sweep"]
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect();
            h.ops
                .create_service(&CreateService {
                    project: "telecom",
                    name: Some("Billing Core"),
                    schema: Some(SCHEMA),
                    workflows: specs,
                    manifest: None,
                })
                .await?;
            let detail = h.ops.service_detail(SCHEMA).await?;
            assert_eq!(detail.drift, Drift::NotDeployed);
            assert!(detail.deployments.is_empty());
            let mut names: Vec<&str> = detail.workflows.iter().map(|w| w.name.as_str()).collect();
            names.sort();
            assert_eq!(
                names,
                ["billing_core.nightly", "billing_core.processBilling"]
            );
            // The task queue is listed even before anything was queued on it.
            let queue = |d: &ospdeck::ops::ServiceDetail| {
                d.queues
                    .iter()
                    .find(|q| q.queue == "billing_core-tasks")
                    .map(|q| q.queued)
            };
            assert_eq!(queue(&detail), Some(0));
            h.ops
                .enqueue_run(&EnqueueRequest {
                    project: "telecom",
                    workflow: "billing_core.processBilling",
                    ..Default::default()
                })
                .await?;
            assert_eq!(queue(&h.ops.service_detail(SCHEMA).await?), Some(1));

            // Deployed: in step with 1.0.0, one deployment with its step's output.
            let dir = tempfile::tempdir()?;
            let config = DeployerConfig {
                kind: DeployerKind::Command,
                create: None,
                deploy: Some("echo rolled out $SERVICE_SCHEMA".into()),
                rollback: None,
                attempts: 1,
                backoff_secs: 0.0,
                timeout_secs: 30,
                manifest_dir: None,
            };
            h.ops.deploy_service(SCHEMA, &config, dir.path()).await?;
            let detail = h.ops.service_detail(SCHEMA).await?;
            assert_eq!(
                detail.drift,
                Drift::InStep {
                    version: "1.0.0".into()
                }
            );
            let steps: Vec<(i32, DeployStep, bool)> = detail
                .deployments
                .iter()
                .flatten()
                .map(|s| {
                    (
                        s.attempt,
                        s.step,
                        s.output.contains("rolled out billing_core"),
                    )
                })
                .collect();
            assert_eq!(steps, vec![(1, DeployStep::Deploy, true)]);

            // A locked field is named with both values.
            let current = h.ops.manifest(SCHEMA, None).await?;
            let mut moved = current.content.clone();
            moved["service_id"] = serde_json::json!("elsewhere");
            let refused = h
                .ops
                .propose_manifest(&ManifestProposal::new(SCHEMA, &moved.to_string()))
                .await
                .err()
                .map(|e| e.to_string());
            assert!(
                refused.as_deref().is_some_and(|e| e.contains(
                    "field `service_id` is locked: it is \"billing_core\" for this service, \
                     the draft says \"elsewhere\""
                )),
                "{refused:?}"
            );

            // A minor bump activated: the worker still runs 1.0.0, which is drift.
            let mut renamed = current.content.clone();
            renamed["service_name"] = serde_json::json!("Billing Core II");
            let draft = h
                .ops
                .propose_manifest(&ManifestProposal {
                    bump: Some(Bump::Minor),
                    ..ManifestProposal::new(SCHEMA, &renamed.to_string())
                })
                .await?;
            assert_eq!(draft.version, "1.1.0");
            h.ops.activate_manifest(SCHEMA, "1.1.0").await?;
            let detail = h.ops.service_detail(SCHEMA).await?;
            assert_eq!(
                detail.drift,
                Drift::Drifted {
                    deployed: "1.0.0".into(),
                    governing: "1.1.0".into()
                }
            );
            assert_eq!(detail.history.len(), 2);

            // Editing continues a draft: its content changes, its version stays, no new version.
            h.ops
                .propose_manifest(&ManifestProposal::new(SCHEMA, &renamed.to_string()))
                .await?;
            let mut again = renamed.clone();
            again["service_name"] = serde_json::json!("Billing Core III");
            let revised = h
                .ops
                .revise_draft(SCHEMA, "1.1.1", &again.to_string())
                .await?;
            assert_eq!(revised.version, "1.1.1");
            assert_eq!(revised.content["service_name"], "Billing Core III");
            assert_eq!(h.ops.manifest_history(SCHEMA).await?.len(), 3);
            let audit = h.ops.audit_trail(None, Some("manifest"), Some(5)).await?;
            let revise = audit.iter().find(|a| a.action == "revise");
            assert!(
                revise.is_some_and(|a| a.entity_id == "billing_core@1.1.1"
                    && a.before
                        .as_ref()
                        .is_some_and(|b| b["content"]["service_name"] == "Billing Core II")),
                "{audit:?}"
            );
            // Anything but a draft is history; a locked field stays locked in a draft too.
            assert!(matches!(
                h.ops
                    .revise_draft(SCHEMA, "1.1.0", &again.to_string())
                    .await,
                Err(OpsError::Refused(_))
            ));
            again["schema_name"] = serde_json::json!("elsewhere");
            assert!(
                h.ops
                    .revise_draft(SCHEMA, "1.1.1", &again.to_string())
                    .await
                    .err()
                    .is_some_and(|e| e.to_string().contains("field `schema_name` is locked"))
            );

            // Locked: activating is refused with the rule's own words.
            h.ops.lock_manifest(SCHEMA).await?;
            match h.ops.activate_manifest(SCHEMA, "1.1.1").await {
                Err(OpsError::Refused(why)) => assert_eq!(
                    why,
                    "billing_core is locked: unlock it before activating a version"
                ),
                other => panic!("{other:?}"),
            }
            Ok(())
        }
    }
}
