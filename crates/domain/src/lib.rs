//! Pure types and rules: the vocabulary of DESIGN.md, the state machines and input validation.
//! Nothing here does IO or is async, so every rule is unit-tested directly.

pub mod age;
pub mod audit;
pub mod deployment;
pub mod error;
pub mod filter;
pub mod json;
pub mod manifest;
pub mod number;
pub mod permission;
pub mod project;
pub mod run;
pub mod service;
pub mod template;
pub mod tool;
pub mod user_key;
pub mod worker;
pub mod workflow;

pub use error::{InvalidInput, one_line};
