//! ospdeck: an operator console and control plane for manifest-driven services.
//!
//! Layers (imports point down only): `cli`, `tui` and `worker` call `ops`; `ops` combines `domain` rules
//! with a `store`; `domain` is pure.

pub mod artifacts;
pub mod bench;
pub mod cli;
pub mod config;
pub mod deploy;
/// The pure layer lives in its own crate, so it cannot import anything above it.
pub use ospdeck_domain as domain;
pub mod ops;
pub mod stdio;
pub mod store;
pub mod tui;
pub mod worker;
