//! Tools and upgrade advisories (seed 004): readable by everyone, written with an audit event.
//! Written once for both backends.

use async_trait::async_trait;

use crate::StoreResult;
use crate::audit::AuditEntry;
use crate::domain::tool::{Advisory, NewAdvisory, Severity, Tool};
use crate::shared::{conflict_as, decode};
use crate::sql::{Backend, Time, row, stmt};

#[async_trait]
pub trait ToolStore: Send + Sync {
    async fn add_tool(
        &self,
        actor: &str,
        name: &str,
        version: &str,
        image: &str,
    ) -> StoreResult<Tool>;
    async fn list_tools(&self) -> StoreResult<Vec<Tool>>;
    async fn add_advisory(&self, actor: &str, advisory: &NewAdvisory) -> StoreResult<Advisory>;
    async fn advisories(&self, tool: Option<&str>) -> StoreResult<Vec<Advisory>>;
}

row! {
    struct ToolRow {
        id: i64,
        name: String,
        version: String,
        image: String,
        created_at: Time,
    }
}

impl From<ToolRow> for Tool {
    fn from(r: ToolRow) -> Self {
        Tool {
            id: r.id,
            name: r.name,
            version: r.version,
            image: r.image,
            created_at: r.created_at.into(),
        }
    }
}

row! {
    struct AdvisoryRow {
        id: i64,
        tool_name: String,
        from_version: String,
        to_version: String,
        severity: String,
        title: String,
        guide_url: Option<String>,
        created_at: Time,
    }
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
            created_at: self.created_at.into(),
        })
    }
}

const ADVISORY_COLUMNS: &str =
    "id, tool_name, from_version, to_version, severity, title, guide_url, created_at";

#[async_trait]
impl<B: Backend> ToolStore for B {
    async fn add_tool(
        &self,
        actor: &str,
        name: &str,
        version: &str,
        image: &str,
    ) -> StoreResult<Tool> {
        let mut tx = self.db().begin().await?;
        let row: ToolRow = tx
            .fetch_one(
                stmt(
                    "INSERT INTO tools (name, version, image) VALUES ($1, $2, $3)
                     RETURNING id, name, version, image, created_at",
                )
                .bind(name)
                .bind(version)
                .bind(image),
            )
            .await
            .map_err(|e| conflict_as(e, format!("tool {name} {version} already exists")))?;
        let tool = Tool::from(row);
        AuditEntry::created(actor, "tool", &format!("{name}@{version}"), None, &tool)
            .record(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(tool)
    }

    async fn list_tools(&self) -> StoreResult<Vec<Tool>> {
        let rows: Vec<ToolRow> = self
            .db()
            .fetch_all(stmt(
                "SELECT id, name, version, image, created_at FROM tools ORDER BY name, id",
            ))
            .await?;
        Ok(rows.into_iter().map(Tool::from).collect())
    }

    async fn add_advisory(&self, actor: &str, a: &NewAdvisory) -> StoreResult<Advisory> {
        let mut tx = self.db().begin().await?;
        let row: AdvisoryRow = tx
            .fetch_one(
                stmt(format!(
                    "INSERT INTO upgrade_advisories (tool_name, from_version, to_version, severity, title, guide_url)
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING {ADVISORY_COLUMNS}"
                ))
                .bind(&a.tool_name)
                .bind(&a.from_version)
                .bind(&a.to_version)
                .bind(a.severity.as_str())
                .bind(&a.title)
                .bind(a.guide_url.as_deref()),
            )
            .await?;
        let advisory = row.into_domain()?;
        AuditEntry::created(actor, "advisory", &advisory.id.to_string(), None, &advisory)
            .record(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(advisory)
    }

    async fn advisories(&self, tool: Option<&str>) -> StoreResult<Vec<Advisory>> {
        let rows: Vec<AdvisoryRow> = self
            .db()
            .fetch_all(
                stmt(format!(
                    "SELECT {ADVISORY_COLUMNS} FROM upgrade_advisories
                     WHERE (CAST($1 AS TEXT) IS NULL OR tool_name = $1) ORDER BY tool_name, id"
                ))
                .bind(tool),
            )
            .await?;
        rows.into_iter().map(AdvisoryRow::into_domain).collect()
    }
}
