//! The `--json` contract of docs/cli-contract.md, against the real binary: every list, show and
//! mutation prints exactly the fields the page documents for its entity (the field lists are
//! read from the page's tables, so the page cannot drift), list items and show objects share
//! them, errors are one JSON object on stderr with the exit status of their kind, idempotent
//! verbs answer "already" with exit 0, and `diff --exit-code` exits as git's does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::TestResult;

/// One entity of the page: its fields, and the keys some commands add (key → commands).
#[derive(Debug, Default)]
struct Entity {
    fields: BTreeSet<String>,
    extras: BTreeMap<String, Vec<String>>,
}

/// The page's entities by name (`### run` …), parsed from its markdown tables.
fn contract() -> BTreeMap<String, Entity> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cli-contract.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut entities: BTreeMap<String, Entity> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut table: Option<&'static str> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("### ") {
            current = Some(name.trim().to_owned());
            entities.entry(name.trim().to_owned()).or_default();
            table = None;
            continue;
        }
        if line.starts_with("## ") {
            current = None;
            continue;
        }
        let Some(entity) = current.as_ref().and_then(|c| entities.get_mut(c)) else {
            continue;
        };
        if !line.starts_with('|') {
            table = None;
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        match cells.first().copied() {
            Some("field") => table = Some("fields"),
            Some("extra key") => table = Some("extras"),
            Some(c) if c.starts_with("---") => {}
            Some(key) => match table {
                Some("fields") => {
                    entity.fields.insert(key.to_owned());
                }
                Some("extras") => {
                    let commands = cells.get(2).copied().unwrap_or_default();
                    entity.extras.insert(
                        key.to_owned(),
                        commands.split(',').map(|c| c.trim().to_owned()).collect(),
                    );
                }
                _ => {}
            },
            None => {}
        }
    }
    entities
}

/// The keys `command` prints for `entity`: its fields plus the extras documented for it.
fn documented(
    contract: &BTreeMap<String, Entity>,
    entity: &str,
    command: &str,
) -> BTreeSet<String> {
    let e = contract
        .get(entity)
        .unwrap_or_else(|| panic!("docs/cli-contract.md has no entity {entity:?}"));
    assert!(!e.fields.is_empty(), "{entity}: no field table");
    let mut keys = e.fields.clone();
    for (key, commands) in &e.extras {
        if commands.iter().any(|c| c == command) {
            keys.insert(key.clone());
        }
    }
    keys
}

/// A scratch home and SQLite store, and the contract to hold the binary to.
struct World {
    home: tempfile::TempDir,
    db: std::ffi::OsString,
    /// Race processes against each other (PostgreSQL: row locks decide; SQLite's writers take
    /// the write lock up front, so they queue by construction, and on a loaded machine four CLI
    /// processes queuing on one file can outwait the pool's 30 s).
    races: bool,
    contract: BTreeMap<String, Entity>,
}

impl World {
    /// A fresh SQLite file in the scratch home.
    fn new() -> Self {
        let home = tempfile::tempdir().expect("temp home");
        let db = home.path().join("store.db").into_os_string();
        Self::on(home, db, false)
    }

    fn on(home: tempfile::TempDir, db: std::ffi::OsString, races: bool) -> Self {
        let world = Self {
            home,
            db,
            races,
            contract: contract(),
        };
        let o = world.run(&["db", "migrate"]);
        assert!(o.status.success(), "migrate: {}", text(&o.stderr));
        world
    }

    fn command(&self, args: &[&str]) -> Command {
        // A command naming its own store keeps it (`--db` twice is a usage error).
        let db: &[&std::ffi::OsStr] = if args.contains(&"--db") {
            &[]
        } else {
            &[std::ffi::OsStr::new("--db"), &self.db]
        };
        let mut command = common::ospdeck_command(self.home.path(), db);
        command.args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run ospdeck")
    }

    /// `args --json`, which must succeed and print one JSON document.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let o = self.run(&all);
        assert!(o.status.success(), "{args:?} failed: {}", text(&o.stderr));
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", text(&o.stdout)))
    }

    /// A mutation or show: one object with exactly the documented keys. Answers the object.
    fn object(&self, entity: &str, command: &str, args: &[&str]) -> Value {
        let value = self.json(args);
        self.check(entity, command, &value, args);
        value
    }

    /// A list: an array whose items (at least one) have exactly the entity's keys.
    fn list(&self, entity: &str, command: &str, args: &[&str]) -> Vec<Value> {
        let value = self.json(args);
        let items = value
            .as_array()
            .unwrap_or_else(|| panic!("{args:?}: not an array: {value}"))
            .clone();
        assert!(!items.is_empty(), "{args:?}: empty list, nothing checked");
        for item in &items {
            self.check(entity, command, item, args);
        }
        items
    }

    fn check(&self, entity: &str, command: &str, value: &Value, args: &[&str]) {
        let object = value
            .as_object()
            .unwrap_or_else(|| panic!("{args:?}: not an object: {value}"));
        let keys: BTreeSet<String> = object.keys().cloned().collect();
        let wanted = documented(&self.contract, entity, command);
        assert_eq!(
            keys, wanted,
            "{args:?} ({entity}): printed keys vs documented ones"
        );
    }

    /// `args --json` in several processes at once (one without `races`): each succeeds, one
    /// answers `done` and the others `already`, and one audit row is written in all.
    fn race(&self, args: &[&str], done: &str, already: &str) {
        let n = if self.races { 4 } else { 1 };
        let audited = self.audit_rows();
        let mut all = args.to_vec();
        all.push("--json");
        let children: Vec<_> = (0..n)
            .map(|_| {
                self.command(&all)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn ospdeck")
            })
            .collect();
        let mut outcomes: Vec<String> = children
            .into_iter()
            .map(|child| {
                let o = child.wait_with_output().expect("wait for ospdeck");
                assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
                let v: Value = serde_json::from_slice(&o.stdout).expect("JSON answer");
                v["outcome"].as_str().unwrap_or_default().to_owned()
            })
            .collect();
        outcomes.sort();
        let mut wanted = vec![done.to_owned()];
        wanted.extend(std::iter::repeat_n(already.to_owned(), n - 1));
        wanted.sort();
        assert_eq!(outcomes, wanted, "{args:?}");
        assert_eq!(self.audit_rows(), audited + 1, "{args:?}");
    }

    /// Audit rows so far (to show an "already" answer wrote nothing).
    fn audit_rows(&self) -> usize {
        self.json(&["audit", "--limit", "10000"])
            .as_array()
            .map_or(0, Vec::len)
    }

    fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.home.path().join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        std::fs::write(&path, content).expect("write");
        path
    }
}

/// A workflow `build` in project `acme` whose runs do nothing.
const CREATE_BUILD: &[&str] = &[
    "workflow",
    "create",
    "--project",
    "acme",
    "build",
    "--type",
    "build",
    "--command",
    "true",
];

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The keys of the first object of `list` against those of `show`, minus what show adds.
fn same_base(list_item: &Value, show: &Value, show_extras: &[&str]) {
    let base = |v: &Value| -> BTreeSet<String> {
        v.as_object()
            .map(|o| {
                o.keys()
                    .filter(|k| !show_extras.contains(&k.as_str()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(base(list_item), base(show), "list item vs show object");
}

#[test]
fn the_page_documents_every_entity_with_a_field_table() {
    let contract = contract();
    for entity in [
        "project",
        "workflow",
        "run",
        "run event",
        "run artifact",
        "log line",
        "service",
        "manifest version",
        "manifest change",
        "template",
        "template version",
        "artifact change",
        "resolution",
        "member",
        "audit event",
        "tool",
        "advisory",
        "worker",
        "whoami",
        "gc report",
        "doctor",
        "migration",
    ] {
        let e = contract.get(entity);
        assert!(
            e.is_some_and(|e| !e.fields.is_empty()),
            "{entity}: no field table"
        );
    }
    // The extras table is parsed too, with its commands.
    assert!(documented(&contract, "run", "run show").contains("events"));
    assert!(!documented(&contract, "run", "run list").contains("events"));
}

#[test]
fn projects_workflows_and_runs_print_their_documented_fields() -> TestResult {
    let w = World::new();
    let migrations = w.list("migration", "db status", &["db", "status"]);
    assert!(migrations.iter().all(|m| m["applied"] == true));
    w.object("project", "project create", &["project", "create", "acme"]);
    w.list("project", "project list", &["project", "list"]);
    w.object("workflow", "workflow create", CREATE_BUILD);
    w.list(
        "workflow",
        "workflow list",
        &["workflow", "list", "--project", "acme"],
    );
    let enqueued = w.object(
        "run",
        "run enqueue",
        &[
            "run",
            "enqueue",
            "--project",
            "acme",
            "--workflow",
            "build",
            "--payload",
            r#"{"n":1}"#,
        ],
    );
    assert_eq!(enqueued["status"], "queued");
    assert_eq!(enqueued["payload"]["n"], 1);
    assert_eq!(enqueued["advisories"], serde_json::json!([]));
    let id = enqueued["id"].to_string();
    let listed = w.list("run", "run list", &["run", "list"]);
    let shown = w.object("run", "run show", &["run", "show", &id]);
    same_base(&listed[0], &shown, &["events", "artifacts", "retried_by"]);
    for event in shown["events"].as_array().ok_or("no events")? {
        w.check("run event", "run show", event, &["run", "show"]);
    }
    let claimed = w.object("run", "run claim", &["run", "claim", "--worker", "w1"]);
    assert_eq!(claimed["status"], "claimed");
    let started = w.object("run", "run start", &["run", "start", &id, "--worker", "w1"]);
    assert_eq!(started["status"], "running");
    let done = w.object(
        "run",
        "run complete",
        &["run", "complete", &id, "--worker", "w1", "--exit-code", "0"],
    );
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["exit_code"], 0);
    // Nothing queued: claim answers null, not an object of another shape.
    assert_eq!(w.json(&["run", "claim", "--worker", "w1"]), Value::Null);
    let retried = w.object("run", "run retry", &["run", "retry", &id]);
    assert_eq!(retried["outcome"], "retried");
    assert_eq!(retried["retry_of"].to_string(), id);
    let retry_id = retried["id"].to_string();
    let canceled = w.object("run", "run cancel", &["run", "cancel", &retry_id]);
    assert_eq!(canceled["outcome"], "canceled");
    let again = w.object("run", "run cancel", &["run", "cancel", &retry_id]);
    assert_eq!(again["outcome"], "already_canceled");
    let planned = w.list(
        "run",
        "run cancel",
        &["run", "cancel", "--where", "status:canceled", "--dry-run"],
    );
    assert!(planned.iter().all(|r| r["outcome"] == "already_canceled"));
    Ok(())
}

#[test]
fn services_and_manifests_print_their_documented_fields_and_verbs_are_idempotent() -> TestResult {
    services_and_manifests(&World::new())
}

#[test]
fn templates_print_their_documented_fields_and_pointer_moves_are_idempotent() -> TestResult {
    templates(&World::new())
}

/// The same answers on PostgreSQL, whose transactions and row locks decide "already" there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_answers_the_same_shapes_and_already_outcomes() -> TestResult {
    let Some(h) = common::Harness::postgres("cli_json_postgres").await else {
        return Ok(());
    };
    let url = h.url.clone();
    tokio::task::spawn_blocking(move || -> Result<(), String> {
        let w = World::on(
            tempfile::tempdir().map_err(|e| e.to_string())?,
            url.into(),
            true,
        );
        services_and_manifests(&w).map_err(|e| e.to_string())?;
        templates(&w).map_err(|e| e.to_string())
    })
    .await??;
    Ok(())
}

fn services_and_manifests(w: &World) -> TestResult {
    w.json(&["project", "create", "acme"]);
    let created = w.object(
        "service",
        "service create",
        &[
            "service",
            "create",
            "--project",
            "acme",
            "--name",
            "Telecom Billing",
            "--schema",
            "telecom_billing",
            "--workflow",
            "processBilling:calculateCharges",
        ],
    );
    assert!(created["deploy_run_id"].is_i64());
    w.check(
        "manifest version",
        "service list",
        &created["manifest"],
        &[],
    );
    let listed = w.list("service", "service list", &["service", "list"]);
    let shown = w.object(
        "service",
        "service show",
        &["service", "show", "telecom_billing"],
    );
    same_base(
        &listed[0],
        &shown,
        &[
            "recent_runs",
            "history",
            "drift",
            "workflows",
            "queues",
            "deployments",
        ],
    );
    w.list(
        "manifest version",
        "manifest history",
        &["manifest", "history", "telecom_billing"],
    );
    let current = w.object(
        "manifest version",
        "manifest show",
        &["manifest", "show", "telecom_billing"],
    );
    let mut content = current["content"].clone();
    content["workflows"][0]["activities"]
        .as_array_mut()
        .ok_or("no activities")?
        .push("sendInvoice".into());
    let file = w.write("next.json", &content.to_string());
    let file = file.to_str().ok_or("path")?;
    let proposed = w.object(
        "manifest version",
        "manifest propose",
        &[
            "manifest",
            "propose",
            "telecom_billing",
            "--file",
            file,
            "--version",
            "1.1.0",
        ],
    );
    assert_eq!(proposed["status"], "draft");
    let changes = w.list(
        "manifest change",
        "manifest diff",
        &["manifest", "diff", "telecom_billing", "1.0.0", "1.1.0"],
    );
    assert!(!changes.is_empty());

    // diff --exit-code: 1 when they differ, 0 when the same, 0 without the flag.
    let diff = |a: &str, b: &str, flag: bool| {
        let mut args = vec!["manifest", "diff", "telecom_billing", a, b];
        if flag {
            args.push("--exit-code");
        }
        w.run(&args).status.code()
    };
    assert_eq!(diff("1.0.0", "1.1.0", true), Some(1));
    assert_eq!(diff("1.0.0", "1.0.0", true), Some(0));
    assert_eq!(diff("1.0.0", "1.1.0", false), Some(0));
    assert_eq!(
        diff("1.0.0", "9.9.9", true),
        Some(3),
        "errors keep their code"
    );

    // Activate, lock, unlock: once they change it, again they answer "already" and write nothing.
    let steps: [(&[&str], &str, &str, &str); 3] = [
        (
            &["manifest", "activate", "telecom_billing", "1.1.0"],
            "manifest activate",
            "activated",
            "already_active",
        ),
        (
            &["manifest", "lock", "telecom_billing"],
            "manifest lock",
            "locked",
            "already_locked",
        ),
        (
            &["manifest", "unlock", "telecom_billing"],
            "manifest unlock",
            "unlocked",
            "already_unlocked",
        ),
    ];
    for (args, command, first, again) in steps {
        let v = w.object("manifest version", command, args);
        assert_eq!(v["outcome"], first, "{args:?}");
        assert_eq!(v["version"], "1.1.0");
        let audited = w.audit_rows();
        let v = w.object("manifest version", command, args);
        assert_eq!(v["outcome"], again, "{args:?}");
        assert_eq!(w.audit_rows(), audited, "{args:?} again wrote an audit row");
    }
    let o = w.run(&["manifest", "activate", "telecom_billing", "1.1.0"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        text(&o.stdout).trim(),
        "telecom_billing 1.1.0 is already active"
    );
    // Racing activations of one draft: one activates, the others find it done; one audit row.
    let proposed = w.json(&[
        "manifest",
        "propose",
        "telecom_billing",
        "--file",
        file,
        "--version",
        "1.2.0",
    ]);
    assert_eq!(proposed["status"], "draft");
    w.race(
        &["manifest", "activate", "telecom_billing", "1.2.0"],
        "activated",
        "already_active",
    );
    // An older version is still refused, not "already" anything.
    let o = w.run(&["manifest", "activate", "telecom_billing", "1.0.0", "--json"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o.stderr));
    Ok(())
}

fn templates(w: &World) -> TestResult {
    let manifest = r#"{"artifacts":[{"kind":"asset","locale":"en","path":"form.txt","content_type":"text/plain"}]}"#;
    w.write("b1/manifest.json", manifest);
    w.write("b1/form.txt", "one");
    w.write("b2/manifest.json", manifest);
    w.write("b2/form.txt", "two");
    let dir = |d: &str| w.home.path().join(d).display().to_string();
    let (b1, b2) = (dir("b1"), dir("b2"));
    let publish = |d: &str, version: &str, extra: &[&str]| {
        let mut args = vec![
            "template",
            "publish",
            d,
            "--template",
            "section7",
            "--version",
            version,
        ];
        args.extend_from_slice(extra);
        w.object("template version", "template publish", &args)
    };
    let v = publish(&b1, "1.0.0", &[]);
    assert_eq!(v["status"], "draft");
    assert_eq!(v["is_default"], false);
    assert_eq!(v["labels"], serde_json::json!([]));

    let steps: [(&[&str], &str, &str, &str); 3] = [
        (
            &["template", "promote", "section7", "1.0.0"],
            "template promote",
            "promoted",
            "already_stable",
        ),
        (
            &["template", "default", "section7", "1.0.0"],
            "template default",
            "default_set",
            "already_default",
        ),
        (
            &[
                "template",
                "label",
                "section7",
                "canary",
                "1.0.0",
                "--percent",
                "20",
            ],
            "template label",
            "labeled",
            "already_labeled",
        ),
    ];
    for (args, command, first, again) in steps {
        let v = w.object("template version", command, args);
        assert_eq!(v["outcome"], first, "{args:?}");
        let audited = w.audit_rows();
        let v = w.object("template version", command, args);
        assert_eq!(v["outcome"], again, "{args:?}");
        assert_eq!(w.audit_rows(), audited, "{args:?} again wrote an audit row");
        let o = w.run(args);
        assert_eq!(o.status.code(), Some(0));
        assert!(text(&o.stdout).contains("already"), "{}", text(&o.stdout));
    }
    // Another share is a change, not "already".
    let v = w.object(
        "template version",
        "template label",
        &[
            "template",
            "label",
            "section7",
            "canary",
            "1.0.0",
            "--percent",
            "30",
        ],
    );
    assert_eq!(v["outcome"], "labeled");

    publish(&b2, "1.1.0", &[]);
    publish(&b1, "1.2.0", &["--status", "stable"]);
    let versions = w.list(
        "template version",
        "template versions",
        &["template", "versions", "section7"],
    );
    let first = &versions[0];
    assert_eq!(first["version"], "1.0.0");
    assert_eq!(first["is_default"], true);
    assert_eq!(
        first["labels"],
        serde_json::json!([{ "name": "canary", "percent": 30 }])
    );
    assert_eq!(versions[1]["is_default"], false);
    w.list(
        "artifact change",
        "template diff",
        &["template", "diff", "section7", "1.0.0", "1.1.0"],
    );
    let diff = |a: &str, b: &str| {
        w.run(&["template", "diff", "section7", a, b, "--exit-code"])
            .status
            .code()
    };
    assert_eq!(diff("1.0.0", "1.1.0"), Some(1));
    assert_eq!(
        diff("1.0.0", "1.2.0"),
        Some(0),
        "same files, same artifacts"
    );
    let deprecated = w.object(
        "template version",
        "template deprecate",
        &["template", "deprecate", "section7", "1.2.0"],
    );
    assert_eq!(deprecated["status"], "deprecated");
    let deleted = w.object(
        "template version",
        "template delete",
        &["template", "delete", "section7", "1.1.0"],
    );
    assert_eq!(deleted["version"], "1.1.0");
    w.list("template", "template list", &["template", "list"]);
    w.object(
        "resolution",
        "template resolve",
        &["template", "resolve", "section7"],
    );
    // Racing default moves: one moves it, the others find it there; one audit row.
    publish(&b2, "1.3.0", &["--status", "stable"]);
    w.race(
        &["template", "default", "section7", "1.3.0"],
        "default_set",
        "already_default",
    );
    let gc = w.object("gc report", "gc", &["gc"]);
    assert_eq!(gc["dry_run"], true);
    Ok(())
}

#[test]
fn members_tools_audit_and_the_rest_print_their_documented_fields() -> TestResult {
    let w = World::new();
    w.json(&["project", "create", "acme"]);
    let added = w.object(
        "member",
        "member add",
        &["member", "add", "--project", "acme", "bob", "developer"],
    );
    assert_eq!(added["role"], "developer");
    w.list(
        "member",
        "member list",
        &["member", "list", "--project", "acme"],
    );
    let removed = w.object(
        "member",
        "member remove",
        &["member", "remove", "--project", "acme", "bob"],
    );
    assert_eq!(removed["user"], "bob");
    w.object(
        "tool",
        "tool add",
        &[
            "tool",
            "add",
            "terraform",
            "1.5.0",
            "--image",
            "hashicorp/terraform:1.5.0",
        ],
    );
    w.list("tool", "tool list", &["tool", "list"]);
    w.object(
        "advisory",
        "advisory add",
        &[
            "advisory",
            "add",
            "--tool",
            "terraform",
            "--from",
            "1.5.0",
            "--to",
            "1.6.0",
            "--severity",
            "warning",
            "--title",
            "state format changes",
        ],
    );
    w.list("advisory", "advisory list", &["advisory", "list"]);
    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL2MQjD10hI0GxMX2VVmCTPLBcKPR5vBSjCkCjiqieIT alice@laptop";
    let added = w.object(
        "user key",
        "user key add",
        &["user", "key", "add", "alice", KEY],
    );
    assert_eq!(added["outcome"], "added");
    w.list("user key", "user key list", &["user", "key", "list"]);
    let keys = w.write("keys", &format!("no-pty {KEY}\n"));
    let keys = keys.to_str().unwrap_or_default();
    let import = w.object(
        "key import",
        "user key import",
        &["user", "key", "import", "alice", keys],
    );
    let already = &import["already"][0];
    let mut item_keys: Vec<&str> = already
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    item_keys.sort_unstable();
    let fields = documented(&w.contract, "user key", "user key list");
    let mut wanted: Vec<&str> = fields
        .iter()
        .map(String::as_str)
        .chain(["line", "ignored_options"])
        .collect::<Vec<_>>();
    wanted.sort_unstable();
    assert_eq!(item_keys, wanted, "{import}");
    assert_eq!(already["ignored_options"], "no-pty");
    let removed = w.object(
        "user key",
        "user key remove",
        &[
            "user",
            "key",
            "remove",
            added["fingerprint"].as_str().unwrap_or_default(),
        ],
    );
    assert_eq!(removed["user"], "alice");
    w.list("audit event", "audit", &["audit"]);
    w.object("whoami", "whoami", &["whoami"]);
    w.object("doctor", "doctor", &["doctor"]);

    // A worker registers itself when it starts: `workers` lists it while it runs.
    let mut worker = w
        .command(&["worker", "--id", "json-w1", "--queue", "nothing-here"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(90);
    let seen = loop {
        let o = w.run(&["workers", "--json"]);
        // Exit 7 says "unavailable, try again" (the contract's retryable kind): on a loaded
        // machine the starting worker's writes on the same SQLite file can outwait this read's
        // 30 s connection timeout (seen once in CI); a script retries, and so does this poll.
        if o.status.code() == Some(7) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        assert!(o.status.success(), "workers failed: {}", text(&o.stderr));
        let list: Value = serde_json::from_slice(&o.stdout)?;
        if list.as_array().is_some_and(|a| !a.is_empty()) || Instant::now() > deadline {
            break list;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = worker.kill();
    let _ = worker.wait();
    let items = seen.as_array().ok_or("workers: not an array")?;
    assert!(!items.is_empty(), "the worker never showed up");
    for item in items {
        w.check("worker", "workers", item, &["workers"]);
    }

    // Last, as it unmigrates the store: db down answers the migration it reverted.
    w.object("migration", "db down", &["db", "down"]);
    Ok(())
}

/// Runs `args --json`, which must fail with `code` and one `{"error":{kind,message}}` on stderr.
fn assert_error(w: &World, args: &[&str], code: i32, kind: &str) {
    let mut all = args.to_vec();
    all.push("--json");
    let o = w.run(&all);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {}", text(&o.stderr));
    assert!(o.stdout.is_empty(), "{args:?} printed {}", text(&o.stdout));
    let err: Value = serde_json::from_slice(&o.stderr)
        .unwrap_or_else(|e| panic!("{args:?}: stderr is not JSON ({e}): {}", text(&o.stderr)));
    let keys: Vec<&String> = err
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["error"], "{err}");
    assert_eq!(err["error"]["kind"], kind, "{args:?}: {err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{err}"
    );
    assert_eq!(err["error"].as_object().map(|o| o.len()), Some(2), "{err}");
}

#[test]
fn each_error_kind_exits_with_its_code_and_one_json_object_on_stderr() -> TestResult {
    let w = World::new();
    w.json(&["project", "create", "acme"]);
    w.json(CREATE_BUILD);
    w.json(&["member", "add", "--project", "acme", "bob", "developer"]);
    w.json(&["run", "enqueue", "--project", "acme", "--workflow", "build"]);
    w.json(&["run", "claim", "--worker", "w1"]);

    assert_error(&w, &["project", "list", "--bogus"], 2, "usage");
    assert_error(&w, &["run", "show", "999"], 3, "not_found");
    assert_error(
        &w,
        &[
            "--as",
            "bob",
            "member",
            "add",
            "--project",
            "acme",
            "carol",
            "viewer",
        ],
        4,
        "permission_denied",
    );
    assert_error(&w, &["project", "create", "acme"], 5, "conflict");
    // An illegal transition: a claimed run cannot complete before it starts.
    assert_error(
        &w,
        &["run", "complete", "1", "--worker", "w1", "--exit-code", "0"],
        5,
        "conflict",
    );
    assert_error(&w, &["project", "create", "Bad_Key"], 6, "validation");
    assert_error(
        &w,
        &[
            "run",
            "enqueue",
            "--project",
            "acme",
            "--workflow",
            "build",
            "--payload",
            "{",
        ],
        6,
        "validation",
    );
    // Nothing listens on port 1: the store is unavailable (retryable), not "failed".
    assert_error(
        &w,
        &[
            "--db",
            "postgres://postgres@127.0.0.1:1/ospdeck",
            "project",
            "list",
        ],
        7,
        "unavailable",
    );
    Ok(())
}
