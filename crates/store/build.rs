//! `sqlx::migrate!` embeds the migrations at compile time: a change to them alone must rebuild
//! this crate, or a binary would ship without the newest migration.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
