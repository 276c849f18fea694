//! Tools and upgrade advisories (seed 004): readable by everyone, written with an audit event.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::tool::{Advisory, NewAdvisory, Tool};

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
