//! Memberships and the audit trail on both stores.

mod common;

conformance!(members_and_the_audit_trail);

mod cases {
    use ospdeck::domain::permission::Role;
    use ospdeck::ops::OpsError;

    use super::common::{Harness, TestResult};

    pub async fn members_and_the_audit_trail(h: Harness) -> TestResult {
        h.ops.create_project("acme", None).await?;
        h.ops.create_project("other", None).await?;
        h.ops
            .set_member("acme", "alice", Role::Developer, false)
            .await?;
        let changed = h
            .ops
            .set_member("acme", "alice", Role::Admin, false)
            .await?;
        assert_eq!(
            (changed.user.as_str(), changed.role),
            ("alice", Role::Admin)
        );
        h.ops.set_member("acme", "bob", Role::Viewer, false).await?;
        h.ops
            .set_member("other", "carol", Role::Owner, false)
            .await?;
        let members: Vec<(String, Role)> = h
            .ops
            .members("acme")
            .await?
            .into_iter()
            .map(|m| (m.user, m.role))
            .collect();
        assert_eq!(
            members,
            vec![
                ("alice".into(), Role::Admin),
                ("bob".into(), Role::Viewer),
                // Whoever creates a project is its first owner.
                ("tester".into(), Role::Owner),
            ]
        );
        h.ops.remove_member("acme", "bob").await?;
        assert!(matches!(
            h.ops.remove_member("acme", "bob").await,
            Err(OpsError::NotFound(_))
        ));
        assert!(matches!(
            h.ops.set_member("acme", "", Role::Viewer, false).await,
            Err(OpsError::Invalid(_))
        ));
        assert!(matches!(
            h.ops.set_member("nope", "dave", Role::Viewer, false).await,
            Err(OpsError::NotFound(_))
        ));

        // The trail: newest first, filtered by project and entity, with before and after.
        let trail = h
            .ops
            .audit_trail(Some("acme"), Some("membership"), None)
            .await?;
        let actions: Vec<(&str, &str)> = trail
            .iter()
            .map(|r| (r.action.as_str(), r.entity_id.as_str()))
            .collect();
        assert_eq!(
            actions,
            vec![
                ("remove_member", "bob"),
                ("member", "bob"),
                ("member", "alice"),
                ("member", "alice"),
            ]
        );
        let change = &trail[2];
        assert_eq!(
            change.before.as_ref().and_then(|b| b["role"].as_str()),
            Some("developer")
        );
        assert_eq!(
            change.after.as_ref().and_then(|a| a["role"].as_str()),
            Some("admin")
        );
        assert!(trail.iter().all(|r| r.actor == h.ops.actor()));
        let everything = h.ops.audit_trail(None, None, Some(2)).await?;
        assert_eq!(everything.len(), 2);
        assert!(matches!(
            h.ops.audit_trail(None, None, Some(0)).await,
            Err(OpsError::Invalid(_))
        ));
        // Audit rows stay as written, raw SQL included.
        let audit = h.table("audit_log");
        assert!(
            h.raw(&format!("UPDATE {audit} SET actor = 'x'"))
                .await
                .is_err()
        );
        assert!(h.raw(&format!("DELETE FROM {audit}")).await.is_err());
        Ok(())
    }
}
