//! Tools and upgrade advisories on SQLite (times in milliseconds).

use async_trait::async_trait;
use sqlx::FromRow;

use super::{SqliteStore, audit, ts};
use crate::domain::tool::{Advisory, NewAdvisory, Severity, Tool};
use crate::shared::{conflict_as, decode};
use crate::tools::ToolStore;
use crate::{AuditEntry, StoreResult};

#[derive(FromRow)]
struct ToolRow {
    id: i64,
    name: String,
    version: String,
    image: String,
    created_at: i64,
}

#[derive(FromRow)]
struct AdvisoryRow {
    id: i64,
    tool_name: String,
    from_version: String,
    to_version: String,
    severity: String,
    title: String,
    guide_url: Option<String>,
    created_at: i64,
}

impl AdvisoryRow {
    fn into_domain(self) -> StoreResult<Advisory> {
        Ok(Advisory {
            id: self.id,
            tool_name: self.tool_name,
            from_version: self.from_version,
            to_version: self.to_version,
            severity: decode::<Severity>(&self.severity)?,
            title: self.title,
            guide_url: self.guide_url,
            created_at: ts(self.created_at),
        })
    }
}

impl From<ToolRow> for Tool {
    fn from(r: ToolRow) -> Self {
        Tool {
            id: r.id,
            name: r.name,
            version: r.version,
            image: r.image,
            created_at: ts(r.created_at),
        }
    }
}

#[async_trait]
impl ToolStore for SqliteStore {
    async fn add_tool(
        &self,
        actor: &str,
        name: &str,
        version: &str,
        image: &str,
    ) -> StoreResult<Tool> {
        let mut tx = self.write_tx().await?;
        let row: ToolRow = sqlx::query_as(
            "INSERT INTO tools (name, version, image) VALUES (?1, ?2, ?3)
             RETURNING id, name, version, image, created_at",
        )
        .bind(name)
        .bind(version)
        .bind(image)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conflict_as(e, format!("tool {name} {version} already exists")))?;
        let tool = Tool::from(row);
        audit(
            &mut tx,
            &AuditEntry {
                actor,
                action: "create",
                entity_type: "tool",
                entity_id: format!("{name}@{version}"),
                project_id: None,
                before: None,
                after: serde_json::to_value(&tool).ok(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(tool)
    }

    async fn list_tools(&self) -> StoreResult<Vec<Tool>> {
        let rows: Vec<ToolRow> = sqlx::query_as(
            "SELECT id, name, version, image, created_at FROM tools ORDER BY name, id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Tool::from).collect())
    }

    async fn add_advisory(&self, actor: &str, a: &NewAdvisory) -> StoreResult<Advisory> {
        let mut tx = self.write_tx().await?;
        let row: AdvisoryRow = sqlx::query_as(
            "INSERT INTO upgrade_advisories (tool_name, from_version, to_version, severity, title, guide_url)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             RETURNING id, tool_name, from_version, to_version, severity, title, guide_url, created_at",
        )
        .bind(&a.tool_name)
        .bind(&a.from_version)
        .bind(&a.to_version)
        .bind(a.severity.as_str())
        .bind(&a.title)
        .bind(&a.guide_url)
        .fetch_one(&mut *tx)
        .await?;
        let advisory = row.into_domain()?;
        audit(
            &mut tx,
            &AuditEntry {
                actor,
                action: "create",
                entity_type: "advisory",
                entity_id: advisory.id.to_string(),
                project_id: None,
                before: None,
                after: serde_json::to_value(&advisory).ok(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(advisory)
    }

    async fn advisories(&self, tool: Option<&str>) -> StoreResult<Vec<Advisory>> {
        let rows: Vec<AdvisoryRow> = sqlx::query_as(
            "SELECT id, tool_name, from_version, to_version, severity, title, guide_url, created_at
             FROM upgrade_advisories WHERE (?1 IS NULL OR tool_name = ?1) ORDER BY tool_name, id",
        )
        .bind(tool)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(AdvisoryRow::into_domain).collect()
    }
}
