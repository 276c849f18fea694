//! ospdeck: an operator console and control plane for manifest-driven services.
//!
//! This crate holds the front ends (`cli`, `tui`, `worker`, `bench`) and the composition root
//! (`config`). The layers below are crates of their own, so that an import can only point down:
//! `ospdeck-ops` (use cases) over `ospdeck-store`, `ospdeck-artifacts` and `ospdeck-deploy`,
//! all over the pure `ospdeck-domain`. They are re-exported here under their layer names.

pub mod bench;
pub mod cli;
pub mod config;
pub mod stdio;
pub mod tui;
pub mod worker;

pub use ospdeck_artifacts as artifacts;
pub use ospdeck_deploy as deploy;
pub use ospdeck_domain as domain;
pub use ospdeck_ops as ops;
pub use ospdeck_store as store;
