//! SSH keys that name users, and SSH sessions' audit rows, on both stores; on PostgreSQL also what
//! the database itself lets members and the gateway role do with them.

mod common;

conformance!(
    a_key_names_one_user_with_audit_rows,
    an_import_reports_every_line_and_keeps_each_key_apart,
    only_the_administrator_manages_keys_but_anyone_may_ask_whose_a_key_is,
    session_events_are_audit_rows_with_the_sessions_actor,
);

/// Keys generated once with ssh-keygen; fingerprints as `ssh-keygen -lf` printed them.
const ALICE: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL2MQjD10hI0GxMX2VVmCTPLBcKPR5vBSjCkCjiqieIT alice@laptop";
const ALICE_FP: &str = "SHA256:kRCaadOjxOBXYtjHo3n4GXgFqUOY6rsBMJqOWWiVF0s";
const BOB: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILCXkRXfVpWjkWlIRRBnjeJGgTD+gKeb97z4yrMxeo54 bob laptop two";
const BOB_FP: &str = "SHA256:JQbBDYzcKpVCWBFZcp9GZQfrrFoeTigGLsHUckvo0xI";
const BOB_P256: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBJpZLNWdlmigAWtaK5qyD4hXdDttqQoe1kQx2regmtH/9YYaBWleqUxGK+Ajdb6IaPlvyG57hpXGvL0fqP0zOAA= bob@ci";
const BOB_P256_FP: &str = "SHA256:i5XtSzPTUAP1ND8ZeCz4k7Te9Fkf49iC25iwXu9CtT0";
const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDBmHPL3MCFh+fU4lE3rVNAvgBIMLx8d9nLur+791GBOfShYCYVpq69NC50e9XgJ1jJCq1tO/lpyHoTP9xQiwPVZGN4X/qkJQYNkSvx6qn7Wv4rxNZVWMUDkBpTjEJs/SZs1ToEirPAqTPBbPRNRLvT/gd34TYM9ZTkayIQKqA1JrUwt0qXPxXxzjUndp9W82YK4/MgPRTCQCQvv1oHuCjz2qqeEb3gPCxntAziv5F1yqKcoOAB0cazrEenii9Hc5YYRhmVGqow48eIyvBcsnDBIAdsndOhicFM1JtfLvB0FBY+OomFYiAaoaYfOlztetw3iQQ8zDMqJwZwAJlXi/C5 rsa";

mod cases {
    use ospdeck::domain::permission::Identity;
    use ospdeck::domain::user_key::{SessionAction, SessionEvent};
    use ospdeck::ops::{Ops, OpsError, Outcome};
    use ospdeck::store::StoreError;

    use super::common::{Harness, TestResult};
    use super::*;

    async fn key_audit(h: &Harness) -> Result<Vec<(String, String, String)>, OpsError> {
        Ok(h.ops
            .audit_trail(None, Some("user_key"), None)
            .await?
            .into_iter()
            .rev()
            .map(|r| (r.actor, r.action, r.entity_id))
            .collect())
    }

    pub async fn a_key_names_one_user_with_audit_rows(h: Harness) -> TestResult {
        let added = h.ops.add_user_key("alice", ALICE).await?;
        assert_eq!(added.outcome, Outcome::Added);
        let k = &added.value;
        assert_eq!(
            (
                k.fingerprint.as_str(),
                k.user.as_str(),
                k.algorithm.as_str()
            ),
            (ALICE_FP, "alice", "ssh-ed25519")
        );
        assert_eq!(
            (k.comment.as_str(), k.added_by.as_str()),
            ("alice@laptop", "tester")
        );
        assert_eq!(k.openssh_line(), ALICE);

        // The same key for the same user: already, nothing written.
        let again = h.ops.add_user_key("alice", ALICE).await?;
        assert_eq!(again.outcome, Outcome::AlreadyAdded);
        assert_eq!(again.value, added.value);
        // For another user: a conflict naming the holder, nothing written.
        match h.ops.add_user_key("bob", ALICE).await {
            Err(OpsError::Store(StoreError::Conflict(m))) => {
                assert!(m.contains("already names user alice"), "{m}")
            }
            other => panic!("a key of alice given to bob: {other:?}"),
        }
        h.ops.add_user_key("bob", BOB).await?;
        h.ops.add_user_key("bob", BOB_P256).await?;

        let all: Vec<(String, String)> = h
            .ops
            .list_user_keys(None)
            .await?
            .into_iter()
            .map(|k| (k.user, k.fingerprint))
            .collect();
        assert_eq!(
            all,
            vec![
                ("alice".into(), ALICE_FP.into()),
                ("bob".into(), BOB_FP.into()),
                ("bob".into(), BOB_P256_FP.into()),
            ]
        );
        let bobs = h.ops.list_user_keys(Some("bob")).await?;
        assert_eq!(bobs.len(), 2);
        assert!(h.ops.list_user_keys(Some("carol")).await?.is_empty());

        assert_eq!(
            h.ops.user_for_key(ALICE_FP).await?.as_deref(),
            Some("alice")
        );
        assert_eq!(
            h.ops.user_for_key(BOB_P256_FP).await?.as_deref(),
            Some("bob")
        );

        let removed = h.ops.remove_user_key(BOB_FP).await?;
        assert_eq!(
            (removed.user.as_str(), removed.comment.as_str()),
            ("bob", "bob laptop two")
        );
        assert!(matches!(
            h.ops.remove_user_key(BOB_FP).await,
            Err(OpsError::Store(StoreError::NotFound(_)))
        ));
        assert_eq!(h.ops.user_for_key(BOB_FP).await?, None);
        // The key is free again: now it may name someone else.
        assert_eq!(
            h.ops.add_user_key("carol", BOB).await?.outcome,
            Outcome::Added
        );

        // Bad input is refused before the store, in one line.
        for (user, line) in [
            ("alice", RSA),
            ("alice", "ssh-ed25519 AAAA"),
            ("alice", "garbage"),
            ("", ALICE),
            ("a\nb", ALICE),
        ] {
            match h.ops.add_user_key(user, line).await {
                Err(OpsError::Invalid(e)) => assert!(!e.0.contains('\n'), "{e}"),
                other => panic!("{user:?} {line:?}: {other:?}"),
            }
        }
        assert!(matches!(
            h.ops.remove_user_key("not-a-fingerprint").await,
            Err(OpsError::Invalid(_))
        ));
        assert!(matches!(
            h.ops.user_for_key("SHA256:short").await,
            Err(OpsError::Invalid(_))
        ));

        // One audit row per change, none for "already" or a refusal.
        assert_eq!(
            key_audit(&h).await?,
            vec![
                ("tester".into(), "add_key".into(), ALICE_FP.into()),
                ("tester".into(), "add_key".into(), BOB_FP.into()),
                ("tester".into(), "add_key".into(), BOB_P256_FP.into()),
                ("tester".into(), "remove_key".into(), BOB_FP.into()),
                ("tester".into(), "add_key".into(), BOB_FP.into()),
            ]
        );
        let trail = h.ops.audit_trail(None, Some("user_key"), Some(2)).await?;
        let removal = &trail[1];
        assert_eq!(
            removal.before.as_ref().map(|b| b["user"].clone()),
            Some("bob".into())
        );
        assert_eq!(removal.after, None);
        assert_eq!(h.count("user_keys").await, 3);
        Ok(())
    }

    pub async fn an_import_reports_every_line_and_keeps_each_key_apart(h: Harness) -> TestResult {
        h.ops.add_user_key("alice", ALICE).await?;
        h.ops.add_user_key("bob", BOB).await?;
        let text = format!(
            "# bob's keys\n\n{BOB}\n{RSA}\nfrom=\"10.0.0.0/8\",no-pty {BOB_P256}\n{ALICE}\nnot a key\n{BOB_P256}\n"
        );
        let report = h.ops.import_user_keys("bob", &text).await?;
        let lines = |keys: &[ospdeck::ops::ImportedKey]| -> Vec<(usize, String)> {
            keys.iter()
                .map(|k| (k.line, k.key.fingerprint.clone()))
                .collect()
        };
        assert_eq!(lines(&report.added), vec![(5, BOB_P256_FP.to_owned())]);
        assert_eq!(
            report.added[0].ignored_options.as_deref(),
            Some("from=\"10.0.0.0/8\",no-pty")
        );
        assert_eq!(
            lines(&report.already),
            vec![(3, BOB_FP.to_owned()), (8, BOB_P256_FP.to_owned())]
        );
        let skipped: Vec<usize> = report.skipped.iter().map(|s| s.line).collect();
        assert_eq!(skipped, vec![4, 6, 7]);
        assert!(
            report.skipped[0].reason.contains("ssh-rsa is not accepted"),
            "{:?}",
            report.skipped
        );
        assert!(
            report.skipped[1]
                .reason
                .contains("already names user alice"),
            "{:?}",
            report.skipped
        );
        assert!(
            report.skipped[2]
                .reason
                .contains("not an OpenSSH public key"),
            "{:?}",
            report.skipped
        );
        // Each key its own transaction: what was added stays; alice keeps hers.
        assert_eq!(
            h.ops.user_for_key(BOB_P256_FP).await?.as_deref(),
            Some("bob")
        );
        assert_eq!(
            h.ops.user_for_key(ALICE_FP).await?.as_deref(),
            Some("alice")
        );
        let audited = h.ops.audit_trail(None, Some("user_key"), None).await?;
        assert_eq!(audited.len(), 3, "two adds before, one by the import");

        assert!(matches!(
            h.ops.import_user_keys("bob", "# only a comment\n\n").await,
            Err(OpsError::Invalid(_))
        ));
        assert!(matches!(
            h.ops.import_user_keys("", BOB).await,
            Err(OpsError::Invalid(_))
        ));
        Ok(())
    }

    pub async fn only_the_administrator_manages_keys_but_anyone_may_ask_whose_a_key_is(
        h: Harness,
    ) -> TestResult {
        h.ops.add_user_key("alice", ALICE).await?;
        let member = Ops::new(h.store.clone(), Identity::member("alice"));
        let refused = |r: Result<(), OpsError>| match r {
            Err(OpsError::Forbidden(m)) => assert!(m.contains("administrator"), "{m}"),
            other => panic!("not refused: {other:?}"),
        };
        refused(member.add_user_key("alice", BOB).await.map(|_| ()));
        refused(member.import_user_keys("alice", BOB).await.map(|_| ()));
        refused(member.list_user_keys(None).await.map(|_| ()));
        refused(member.list_user_keys(Some("alice")).await.map(|_| ()));
        refused(member.remove_user_key(ALICE_FP).await.map(|_| ()));
        assert_eq!(h.count("user_keys").await, 1);
        // The SSH server asks before anyone is signed in.
        assert_eq!(
            member.user_for_key(ALICE_FP).await?.as_deref(),
            Some("alice")
        );
        assert_eq!(member.user_for_key(BOB_FP).await?, None);
        Ok(())
    }

    pub async fn session_events_are_audit_rows_with_the_sessions_actor(h: Harness) -> TestResult {
        h.ops.add_user_key("alice", ALICE).await?;
        let session = Ops::new(h.store.clone(), Identity::member("alice"));
        let login = session
            .record_session_event(&SessionEvent {
                action: SessionAction::Login,
                address: "203.0.113.7:50122".into(),
                detail: serde_json::json!({ "fingerprint": ALICE_FP }),
            })
            .await?;
        session
            .record_session_event(&SessionEvent {
                action: SessionAction::Logout,
                address: "203.0.113.7:50122".into(),
                detail: serde_json::Value::Null,
            })
            .await?;
        // A refusal, before anyone is known: the store's own actor.
        let refusal = h
            .store
            .record_session_event(
                None,
                SessionAction::Refused,
                "[2001:db8::1]:40000",
                &serde_json::json!({ "reason": "unknown key" }),
            )
            .await?;
        assert!(refusal > login);
        let rows = h.ops.audit_trail(None, Some("ssh_session"), None).await?;
        let seen: Vec<(&str, &str, &str)> = rows
            .iter()
            .rev()
            .map(|r| (r.actor.as_str(), r.action.as_str(), r.entity_id.as_str()))
            .collect();
        assert_eq!(
            &seen[..2],
            &[
                ("alice", "ssh.login", "203.0.113.7:50122"),
                ("alice", "ssh.logout", "203.0.113.7:50122"),
            ]
        );
        assert_eq!(
            (seen[2].1, seen[2].2),
            ("ssh.refused", "[2001:db8::1]:40000")
        );
        assert!(!seen[2].0.is_empty() && seen[2].0 != "alice", "{seen:?}");
        assert_eq!(rows[2].id, login);
        assert_eq!(
            rows[2].after.as_ref().map(|a| a["fingerprint"].clone()),
            Some(ALICE_FP.into())
        );
        assert_eq!(rows[1].after, None);
        assert_eq!(rows.iter().filter(|r| r.project_id.is_some()).count(), 0);

        // Bad events are refused before the store.
        for event in [
            SessionEvent {
                action: SessionAction::Login,
                address: String::new(),
                detail: serde_json::Value::Null,
            },
            SessionEvent {
                action: SessionAction::Login,
                address: "x".into(),
                detail: serde_json::json!("not an object"),
            },
        ] {
            assert!(matches!(
                session.record_session_event(&event).await,
                Err(OpsError::Invalid(_))
            ));
        }
        assert_eq!(
            h.ops
                .audit_trail(None, Some("ssh_session"), None)
                .await?
                .len(),
            3
        );
        Ok(())
    }
}

/// What the database itself allows, with ospdeck's own checks out of the way.
mod postgres_only {
    use ospdeck::domain::permission::Role;
    use sqlx::{Connection, Executor};

    use super::common::{Harness, TestResult};
    use super::*;

    /// Drops the login role at the end of the test, also when it fails.
    struct DropRole {
        url: String,
        role: String,
    }

    impl Drop for DropRole {
        fn drop(&mut self) {
            let (url, role) = (self.url.clone(), self.role.clone());
            // On a thread of its own: the test's runtime may be the one unwinding.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                        let _ = conn
                            .execute(format!("DROP ROLE IF EXISTS \"{role}\"").as_str())
                            .await;
                    }
                });
            })
            .join();
        }
    }

    async fn error_of(conn: &mut sqlx::PgConnection, sql: &str) -> String {
        match conn.execute(sql).await {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_member_can_neither_read_keys_nor_ask_whose_a_key_is() -> TestResult {
        let Some(h) =
            Harness::postgres("a_member_can_neither_read_keys_nor_ask_whose_a_key_is").await
        else {
            return Ok(());
        };
        h.ops.create_project("acme", None).await?;
        let member = format!("{}_keys_member", h.unique_prefix());
        // An administrator's `member add` creates the member's login role.
        h.ops
            .set_member("acme", &member, Role::Owner, false)
            .await?;
        let _drop = DropRole {
            url: h.url.clone(),
            role: member.clone(),
        };
        h.ops.add_user_key(&member, ALICE).await?;
        let mut conn = sqlx::PgConnection::connect(&h.url_as(&member)).await?;
        for sql in [
            "SELECT * FROM ops.user_keys".to_owned(),
            format!("SELECT ops.user_for_key('{ALICE_FP}')"),
            "SELECT ops.record_session_event('ssh.login', 'x', NULL)".to_owned(),
            format!(
                "INSERT INTO ops.user_keys (fingerprint, user_id, algorithm, public_key, added_by)
                 VALUES ('{BOB_FP}', 'x', 'ssh-ed25519', 'AAAA', 'x')"
            ),
            format!("DELETE FROM ops.user_keys WHERE fingerprint = '{ALICE_FP}'"),
        ] {
            let e = error_of(&mut conn, &sql).await;
            assert!(e.contains("permission denied"), "{sql}: {e:?}");
        }
        conn.close().await?;
        assert_eq!(h.count("user_keys").await, 1);
        // ospdeck on the member's connection: the same refusals, one line each.
        let store = ospdeck::store::open(&h.url_as(&member), &Default::default()).await?;
        assert!(matches!(
            store.user_for_key(ALICE_FP).await,
            Err(ospdeck::store::StoreError::Forbidden(_))
        ));
        assert!(matches!(
            store.list_user_keys(None).await,
            Err(ospdeck::store::StoreError::Forbidden(_))
        ));
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_gateway_asks_whose_a_key_is_and_records_sessions_as_the_jwt_subject() -> TestResult
    {
        let Some(h) = Harness::postgres(
            "the_gateway_asks_whose_a_key_is_and_records_sessions_as_the_jwt_subject",
        )
        .await
        else {
            return Ok(());
        };
        let gateway = format!("{}_keys_gateway", h.unique_prefix());
        h.raw(&format!(
            "CREATE ROLE \"{gateway}\" LOGIN IN ROLE ospdeck_api, ospdeck_member"
        ))
        .await?;
        let _drop = DropRole {
            url: h.url.clone(),
            role: gateway.clone(),
        };
        h.ops.add_user_key("8b3f-alice-uid", ALICE).await?;
        let mut conn = sqlx::PgConnection::connect(&h.url_as(&gateway)).await?;
        let (user,): (Option<String>,) = sqlx::query_as("SELECT ops.user_for_key($1)")
            .bind(ALICE_FP)
            .fetch_one(&mut conn)
            .await?;
        assert_eq!(user.as_deref(), Some("8b3f-alice-uid"));
        let (nobody,): (Option<String>,) = sqlx::query_as("SELECT ops.user_for_key($1)")
            .bind(BOB_FP)
            .fetch_one(&mut conn)
            .await?;
        assert_eq!(nobody, None);
        // The table itself stays closed to the gateway.
        let e = error_of(&mut conn, "SELECT * FROM ops.user_keys").await;
        assert!(e.contains("permission denied"), "{e}");

        // With the subject set, the event is the subject's; an actor the gateway names itself
        // (ospdeck.actor) does not count, as it is no administrator.
        let mut tx = conn.begin().await?;
        sqlx::query(
            "SELECT set_config('request.jwt.claim.sub', '8b3f-alice-uid', true),
                    set_config('ospdeck.actor', 'mallory', true)",
        )
        .execute(&mut *tx)
        .await?;
        let (login,): (i64,) = sqlx::query_as(
            "SELECT ops.record_session_event('ssh.login', '203.0.113.7:50122', '{\"k\": 1}')",
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        // Without one, the gateway role's own.
        let (refused,): (i64,) = sqlx::query_as(
            "SELECT ops.record_session_event('ssh.refused', '198.51.100.2:2222', NULL)",
        )
        .fetch_one(&mut conn)
        .await?;
        for bad in [
            "SELECT ops.record_session_event('ssh.other', 'x', NULL)",
            "SELECT ops.record_session_event(NULL, 'x', NULL)",
            "SELECT ops.record_session_event('ssh.login', '', NULL)",
            "SELECT ops.record_session_event('ssh.login', 'x', '[1]')",
        ] {
            let e = error_of(&mut conn, bad).await;
            assert!(e.contains("session event"), "{bad}: {e}");
        }
        // ospdeck's store on the gateway connection: the same function, naming the actor as the
        // JWT subject.
        let store = ospdeck::store::open(&h.url_as(&gateway), &Default::default()).await?;
        assert_eq!(
            store.user_for_key(ALICE_FP).await?.as_deref(),
            Some("8b3f-alice-uid")
        );
        let logout = store
            .record_session_event(
                Some("8b3f-alice-uid"),
                ospdeck::domain::user_key::SessionAction::Logout,
                "203.0.113.7:50122",
                &serde_json::Value::Null,
            )
            .await?;
        conn.close().await?;

        let rows: Vec<(i64, String, String, String)> = h
            .fetch_all(
                "SELECT id, actor, action, entity_id FROM ops.audit_log
                 WHERE entity_type = 'ssh_session' ORDER BY id",
            )
            .await;
        assert_eq!(
            rows,
            vec![
                (
                    login,
                    "8b3f-alice-uid".into(),
                    "ssh.login".into(),
                    "203.0.113.7:50122".into()
                ),
                (
                    refused,
                    gateway.clone(),
                    "ssh.refused".into(),
                    "198.51.100.2:2222".into()
                ),
                (
                    logout,
                    "8b3f-alice-uid".into(),
                    "ssh.logout".into(),
                    "203.0.113.7:50122".into()
                ),
            ]
        );
        Ok(())
    }
}
