//! Tools, upgrade advisories, and the check that makes a breaking upgrade a deliberate act.

use serde_json::Value;

use super::{Ops, OpsError, OpsResult};
use crate::domain::tool::{
    Advisory, NewAdvisory, Severity, Tool, check_tool_name, check_tool_version,
};

/// An upgrade run's payload names what it upgrades: `{"tool", "from_version", "to_version"}`.
pub fn upgrade_path(payload: &Value) -> Option<(&str, &str, &str)> {
    Some((
        payload.get("tool")?.as_str()?,
        payload.get("from_version")?.as_str()?,
        payload.get("to_version")?.as_str()?,
    ))
}

impl Ops {
    pub async fn add_tool(&self, name: &str, version: &str, image: &str) -> OpsResult<Tool> {
        self.require_administrator("adding a tool")?;
        check_tool_name(name)?;
        check_tool_version(version)?;
        if image.trim().is_empty() || image.len() > 500 || image.chars().any(char::is_whitespace) {
            return Err(OpsError::Invalid(crate::domain::InvalidInput::new(
                format!("invalid image {image:?}: a reference like registry/name:tag"),
            )));
        }
        Ok(self
            .store
            .add_tool(self.actor(), name, version, image)
            .await?)
    }

    pub async fn list_tools(&self) -> OpsResult<Vec<Tool>> {
        Ok(self.store.list_tools().await?)
    }

    pub async fn add_advisory(&self, advisory: &NewAdvisory) -> OpsResult<Advisory> {
        self.require_administrator("adding an upgrade advisory")?;
        Ok(self.store.add_advisory(self.actor(), advisory).await?)
    }

    pub async fn advisories(&self, tool: Option<&str>) -> OpsResult<Vec<Advisory>> {
        if let Some(t) = tool {
            check_tool_name(t)?;
        }
        Ok(self.store.advisories(tool).await?)
    }

    /// The advisories an upgrade from the payload's from_version to its to_version crosses.
    pub async fn advisories_for_upgrade(&self, payload: &Value) -> OpsResult<Vec<Advisory>> {
        let Some((tool, from, to)) = upgrade_path(payload) else {
            return Ok(Vec::new());
        };
        Ok(self
            .advisories(Some(tool))
            .await?
            .into_iter()
            .filter(|a| a.applies_to(from, to))
            .collect())
    }
}

/// Refuses an upgrade across a breaking advisory unless it was acknowledged.
pub fn require_acknowledged(advisories: &[Advisory], acknowledged: bool) -> OpsResult<()> {
    let breaking: Vec<&Advisory> = advisories
        .iter()
        .filter(|a| a.severity == Severity::Breaking)
        .collect();
    if breaking.is_empty() || acknowledged {
        return Ok(());
    }
    let list: Vec<String> = breaking.iter().map(|a| a.describe()).collect();
    Err(OpsError::Refused(format!(
        "this upgrade crosses {} breaking advisor{}: {}; read the guide, then queue it again with --acknowledge",
        breaking.len(),
        if breaking.len() == 1 { "y" } else { "ies" },
        list.join("; ")
    )))
}
