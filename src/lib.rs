//! ospdeck: an operator console and control plane for manifest-driven services.
//!
//! Layers (imports point down only): `cli`, `tui` and `worker` call `ops`; `ops` combines `domain` rules
//! with a `store`; `domain` is pure.

pub mod artifacts;
pub mod bench;
pub mod cli;
pub mod config;
pub mod deploy;
pub mod domain;
pub mod ops;
pub mod store;
pub mod tui;
pub mod worker;
