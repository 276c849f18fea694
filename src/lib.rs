//! ospdeck: an operator console and control plane for manifest-driven services.
//!
//! This crate holds the front ends (`cli`, with its `bench` subcommand; `tui`; `worker`) and the
//! composition root (`root`, over `config`), which opens the application for every front end and
//! knows none of them (tests/layers.rs checks that no module beside `cli` names `cli`). The layers
//! below are crates of their own, so that an import can only point down: `ospdeck-ops` (use
//! cases) over `ospdeck-store`, `ospdeck-artifacts` and `ospdeck-deploy`, all over the pure
//! `ospdeck-domain`. They are re-exported here under their layer names.

pub mod cli;
pub mod config;
pub mod root;
pub mod serve;
pub mod stdio;
pub mod tui;
pub mod worker;

pub use ospdeck_artifacts as artifacts;
pub use ospdeck_deploy as deploy;
pub use ospdeck_domain as domain;
pub use ospdeck_ops as ops;
pub use ospdeck_store as store;
