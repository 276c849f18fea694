//! Argument fuzzing of the real binary. Walks the clap command tree, and for every subcommand runs
//! argument vectors made of its own flags with plausible or hostile values (empty, huge, garbage,
//! unicode, invalid UTF-8, negative and overflowing numbers, file references to empty, oversized,
//! binary or missing files), unknown flags and missing required arguments, against a temp SQLite
//! store. Counts panics and hangs (both must be 0) and checks that every failure is one line on
//! stderr starting with `error:` (clap's usage errors aside, which print usage by design).
//!
//! `OSPDECK_ARGV_FUZZ_SEED=N` replays a run (the seed is printed); `OSPDECK_ARGV_FUZZ_CASES=N`
//! changes how many invocations are made (default 2500).
//!
//! Left out or pinned, and why:
//! - `bench …`: benchmarks run for minutes by design, and hostile sizes only ask them for more
//!   work; they are not an operator's command.
//! - `worker` always gets `--drain` and a store of its own with nothing queued, so it exits at
//!   once instead of serving forever, and never executes a fuzzed workflow command. Its stderr is
//!   its running log, so the lines it starts with `worker …` may precede its one `error:` line.
//! - `demo` always gets `--seed-only`: the rest of it is the interactive console.
//! - `run logs --follow` is never generated: it follows a run until the run ends, by design.
//! - `--db` never names an unreachable PostgreSQL server: the store waits 10 s for a connection
//!   (its acquire timeout) before it answers.
//! - Invocations run at the same time against one SQLite file, and a writer waits for another's
//!   write lock up to SQLite's busy timeout (30 s) by design; so a hang is an invocation still
//!   running after 40 s. (At 10 s, two CI runs on a loaded machine counted one such wait each; a
//!   replay of their seeds answered every invocation at once.)
//! - The console (no subcommand) and `monitor` are included: without a terminal they refuse at
//!   once.
//! - No FIFO is offered as a file: reading an argument's file blocks until a writer comes, which
//!   is what `--payload @<(make-payload)` relies on. `/dev/zero`, a bundle whose manifest.json
//!   links to it, and a 2 MiB file of NUL bytes are offered.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::{ArgAction, CommandFactory};
use ospdeck::cli::Cli;

const DEFAULT_CASES: usize = 2500;
const TIMEOUT: Duration = Duration::from_secs(40);

/// A subcommand that runs something (a leaf of the clap tree), with its own arguments.
struct Leaf {
    path: Vec<String>,
    args: Vec<ArgSpec>,
}

struct ArgSpec {
    id: String,
    long: Option<String>,
    takes_value: bool,
    repeatable: bool,
    required: bool,
}

fn leaves() -> Vec<Leaf> {
    fn walk(cmd: &clap::Command, path: &mut Vec<String>, out: &mut Vec<Leaf>) {
        let runnable = cmd.get_subcommands().next().is_none() || !cmd.is_subcommand_required_set();
        if runnable {
            let mut args: Vec<ArgSpec> = cmd
                .get_arguments()
                .filter(|a| !a.is_global_set())
                .filter(|a| !matches!(a.get_action(), ArgAction::Help | ArgAction::Version))
                .map(|a| ArgSpec {
                    id: a.get_id().to_string(),
                    long: a.get_long().map(str::to_owned),
                    takes_value: a.get_action().takes_values(),
                    repeatable: matches!(a.get_action(), ArgAction::Append),
                    required: a.is_required_set(),
                })
                .collect();
            // Positionals in their order, then options.
            args.sort_by_key(|a| a.long.is_some());
            out.push(Leaf {
                path: path.clone(),
                args,
            });
        }
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            path.push(sub.get_name().to_owned());
            walk(sub, path, out);
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), &mut Vec::new(), &mut out);
    // Benches take minutes and `serve` runs until stopped: tests/bench.rs and tests/serve.rs
    // cover them (serve's bad flags included).
    out.retain(|l| l.path.first().is_none_or(|p| p != "bench" && p != "serve"));
    out
}

/// Files and folders the fuzzed arguments point at, and the stores, all in one temp dir.
struct World {
    dir: tempfile::TempDir,
    db: String,
    worker_db: String,
}

impl World {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn new() -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        for sub in [
            "home",
            "config",
            "data",
            "state",
            "cache",
            "cwd",
            "dir",
            "bundle-empty",
        ] {
            std::fs::create_dir_all(root.join(sub)).expect("mkdir");
        }
        let write =
            |name: &str, bytes: &[u8]| std::fs::write(root.join(name), bytes).expect("write");
        write("payload.json", br#"{"branch":"main"}"#);
        write("empty", b"");
        write("zeros", &vec![0u8; 2 << 20]);
        write(
            "too-big.json",
            format!("\"{}\"", "x".repeat(3 << 19)).as_bytes(),
        );
        write("invalid-utf8", b"{\"a\":\"\xff\xfe\"}");
        write(
            "deep.json",
            format!("{}1{}", "[".repeat(200), "]".repeat(200)).as_bytes(),
        );
        write("manifest.json", manifest_json().as_bytes());
        let bundle = root.join("bundle");
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/bundles/section7"),
            &bundle,
        );
        std::fs::create_dir_all(root.join("bundle-zeros")).expect("mkdir");
        write("bundle-zeros/manifest.json", &vec![0u8; 2 << 20]);
        std::fs::create_dir_all(root.join("bundle-devzero")).expect("mkdir");
        std::os::unix::fs::symlink("/dev/zero", root.join("bundle-devzero/manifest.json"))
            .expect("symlink");
        let world = World {
            db: root.join("fuzz.db").display().to_string(),
            worker_db: root.join("worker.db").display().to_string(),
            dir,
        };
        world.setup();
        world
    }

    /// A store with something in it, so that plausible arguments reach the use cases.
    fn setup(&self) {
        let steps = [
            format!("--db {} db migrate", self.worker_db),
            "db migrate".into(),
            "project create acme --name Acme".into(),
            "workflow create --project acme build --type build --command true".into(),
            "run enqueue --project acme --workflow build".into(),
            "run enqueue --project acme --workflow build --priority 5".into(),
            "run claim --worker w1".into(),
            "service create --project acme --name Telecom --schema telecom_billing \
             --workflow processBilling:calculateCharges,sendInvoice"
                .into(),
            format!(
                "template publish {} --template section7 --version 1.0.0 --project acme \
                 --status stable --set-default --label stable",
                self.path("bundle")
            ),
            "member add --project acme alice developer".into(),
            "tool add odoo 16.0 --image odoo:16.0".into(),
        ];
        for step in steps {
            // Paths in the temp dir have no spaces; the main store unless the step names one.
            let mut argv: Vec<OsString> = step.split_whitespace().map(OsString::from).collect();
            if !step.starts_with("--db") {
                argv.splice(0..0, ["--db".into(), OsString::from(&self.db)]);
            }
            let outcome = self.run(&argv);
            assert!(
                matches!(outcome, Outcome::Exited { code: 0, .. }),
                "setup step {step:?} failed: {outcome:?}"
            );
        }
    }

    /// Runs the binary with HOME and the XDG dirs inside the temp dir, stdin empty, killed after
    /// TIMEOUT.
    fn run(&self, argv: &[OsString]) -> Outcome {
        let root = self.dir.path();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ospdeck"))
            .args(argv)
            .current_dir(root.join("cwd"))
            .env("HOME", root.join("home"))
            .env("XDG_CONFIG_HOME", root.join("config"))
            .env("XDG_DATA_HOME", root.join("data"))
            .env("XDG_STATE_HOME", root.join("state"))
            .env("XDG_CACHE_HOME", root.join("cache"))
            .env_remove("OSPDECK_DATABASE_URL")
            .env_remove("DATABASE_URL")
            .env_remove("OSPDECK_TEMPLATE_REMOTE")
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ospdeck");
        // Drained on threads: a child blocked on a full pipe must not look like a hang.
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut bytes);
                }
                bytes
            })
        };
        let stdout = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let stderr = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break Some(status);
            }
            if started.elapsed() > TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let stdout = stdout.join().unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
        match status {
            None => Outcome::Hung,
            Some(status) => match status.code() {
                Some(code) => Outcome::Exited {
                    code,
                    stdout,
                    stderr,
                },
                None => Outcome::Signaled(stderr),
            },
        }
    }
}

#[derive(Debug)]
enum Outcome {
    Exited {
        code: i32,
        stdout: Vec<u8>,
        stderr: String,
    },
    Signaled(String),
    Hung,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

fn manifest_json() -> String {
    serde_json::json!({
        "service_id": "telecom_billing",
        "service_name": "Telecom Billing",
        "schema_name": "telecom_billing",
        "service_schema": "telecom_billing",
        "workflows": [{
            "name": "processBilling",
            "task_queue": "telecom_billing-tasks",
            "activities": ["calculateCharges", "sendInvoice", "audit"]
        }]
    })
    .to_string()
}

/// Values that make sense for an argument of this name, so that commands get past "not found".
fn plausible(id: &str, w: &World) -> Vec<String> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
    match id {
        "project" => s(&["acme", "demo"]),
        "key" => s(&["acme", "beta", "gamma-2"]),
        "name" => s(&["build", "Telecom Billing", "odoo", "nightly"]),
        "workflow_type" => s(&["build", "test", "deploy", "backup", "upgrade", "service"]),
        "command" => s(&["true", "echo hi", "exit 3"]),
        "queue" | "queues" => s(&["default", "telecom_billing-tasks"]),
        "timeout" | "lease" | "grace" => s(&["60", "2", "300"]),
        "workflow" => s(&["build", "telecom_billing.processBilling", "deploy-service"]),
        "priority" => s(&["0", "10", "-5"]),
        "payload" => vec![
            r#"{"branch":"main"}"#.into(),
            format!("@{}", w.path("payload.json")),
            "@-".into(),
            r#"{"tool":"odoo","from_version":"15.0","to_version":"17.0"}"#.into(),
        ],
        "max_attempts" | "concurrency" => s(&["1", "3"]),
        "status" => s(&[
            "queued",
            "failed",
            "succeeded",
            "running",
            "stable",
            "draft",
        ]),
        "text" | "search" => s(&["build", "1", "hello"]),
        "limit" => s(&["10", "1"]),
        "id" => s(&["1", "2", "3"]),
        "worker" => s(&["w1", "w2"]),
        "exit_code" => s(&["0", "1"]),
        "error" | "changelog" | "message" | "title" => s(&["first cut"]),
        "schema" | "service" => s(&["telecom_billing", "billing_two"]),
        "workflows" => s(&["processBilling:calculateCharges,sendInvoice", "nightly"]),
        "from_file" | "file" => vec![w.path("manifest.json"), "-".into()],
        "version" | "from" | "to" => s(&["1.0.0", "1.1.0", "2.0.0"]),
        "from_version" | "to_version" => s(&["16.0", "17.0"]),
        "bump" => s(&["patch", "minor", "major"]),
        "dir" => vec![w.path("bundle")],
        "template" => s(&["section7", "other"]),
        "label" => s(&["stable", "canary", "beta"]),
        "percent" => s(&["10", "100"]),
        "locale" => s(&["fr", "en"]),
        "unit" => s(&["clinic-42"]),
        "image" => s(&["odoo:17.0"]),
        "tool" => s(&["odoo"]),
        "severity" => s(&["info", "warning", "breaking"]),
        "guide" => s(&["https://example.com/guide"]),
        "user" => s(&["alice", "bob"]),
        "public_key" => s(&[
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL2MQjD10hI0GxMX2VVmCTPLBcKPR5vBSjCkCjiqieIT a@b",
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDB x",
        ]),
        "fingerprint" => s(&["SHA256:kRCaadOjxOBXYtjHo3n4GXgFqUOY6rsBMJqOWWiVF0s"]),
        "role" => s(&["viewer", "developer", "admin", "owner"]),
        "entity" => s(&["run", "project", "manifest"]),
        _ => s(&["x"]),
    }
}

/// Hostile values for any argument. Never NUL (argv cannot carry it).
fn hostile(rng: &mut fastrand::Rng, w: &World) -> OsString {
    const NUMBERS: &[&str] = &[
        "-1",
        "0",
        "-0",
        "+7",
        " 42",
        "1e3",
        "0x10",
        "1.5",
        "NaN",
        "2147483648",
        "-2147483649",
        "4294967296",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775809",
        "18446744073709551615",
        "18446744073709551616",
        "18446744073709551615.0.0",
        "99999999999999999999999999999999",
    ];
    const TEXT: &[&str] = &[
        "",
        " ",
        "-",
        "@-",
        "--",
        "'; DROP TABLE runs; --",
        "a%_\\",
        "../../etc/passwd",
        "/",
        ".",
        "ｔｅｌｅｃｏｍ",
        "\u{202e}evil",
        "😀",
        "a\u{0301}",
        "İ",
        "line\nbreak",
        "\u{1b}[31mred",
        "1.0.0-rc.1+build.5",
        "v1",
        "latest",
        "pg_catalog",
        "public",
        "postgres://127.0.0.1:1/x",
    ];
    match rng.u8(..8) {
        0 => OsString::from(NUMBERS[rng.usize(..NUMBERS.len())]),
        1 => OsString::from(TEXT[rng.usize(..TEXT.len())]),
        2 => file_ref(rng, w),
        3 => OsString::from(if rng.bool() {
            "a".repeat(rng.usize(200..100_000))
        } else {
            "é".repeat(rng.usize(100..30_000))
        }),
        4 => {
            // Invalid UTF-8: clap must refuse it as a usage error, not panic.
            let mut bytes = b"acme".to_vec();
            bytes.push(0xff);
            bytes.push(rng.u8(0x80..=0xbf));
            OsString::from_vec(bytes)
        }
        _ => {
            // NUL-free garbage: printable ASCII, shell and SQL metacharacters, controls, unicode.
            let len = rng.usize(1..40);
            (0..len)
                .map(|_| match rng.u8(..10) {
                    0 => rng.char('\u{1}'..='\u{1f}'),
                    1..=6 => rng.char(' '..='~'),
                    7 => ['%', '_', '\\', '\'', '"', ';', '$', '`'][rng.usize(..8)],
                    _ => rng.char('\u{a0}'..='\u{10ffff}'),
                })
                .collect::<String>()
                .into()
        }
    }
}

/// Numbers at and past the edges of the integer types the flags are parsed into.
const EXTREMES: &[&str] = &[
    "-1",
    "0",
    "2147483648",
    "-2147483649",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
];

fn is_numeric(id: &str, w: &World) -> bool {
    plausible(id, w).iter().all(|v| v.parse::<i64>().is_ok())
}

/// A file that is empty, oversized, binary, endless, a folder or missing, as a path or `@path`.
fn file_ref(rng: &mut fastrand::Rng, w: &World) -> OsString {
    let files = [
        "empty",
        "zeros",
        "too-big.json",
        "invalid-utf8",
        "deep.json",
        "dir",
        "bundle-empty",
        "bundle-zeros",
        "bundle-devzero",
        "no/such/file",
    ];
    let file = match rng.usize(..=files.len()) {
        n if n == files.len() => "/dev/zero".to_owned(),
        n => w.path(files[n]),
    };
    if rng.bool() {
        OsString::from(format!("@{file}"))
    } else {
        OsString::from(file)
    }
}

fn value(rng: &mut fastrand::Rng, id: &str, w: &World) -> OsString {
    let pool = plausible(id, w);
    match rng.u8(..10) {
        0..6 => OsString::from(&pool[rng.usize(..pool.len())]),
        // A numeric flag mostly gets numbers (text is only clap's business there), a file flag
        // mostly files.
        6..9 if is_numeric(id, w) => OsString::from(EXTREMES[rng.usize(..EXTREMES.len())]),
        6..9 if ["dir", "file", "from_file", "payload"].contains(&id) => file_ref(rng, w),
        _ => hostile(rng, w),
    }
}

/// One argument vector for `leaf`.
fn argv_for(rng: &mut fastrand::Rng, leaf: &Leaf, w: &World) -> Vec<OsString> {
    let worker = leaf.path == ["worker"];
    let mut argv: Vec<OsString> = Vec::new();
    let db = if worker { &w.worker_db } else { &w.db };
    if rng.u8(..20) == 0 {
        let bad_dbs = [
            String::new(),
            "mysql://localhost/x".into(),
            "sqlite:///no/such/dir/x.db".into(),
            "garbage.db".into(),
            w.path("zeros"),
            w.path("dir"),
        ];
        argv.push("--db".into());
        argv.push(bad_dbs[rng.usize(..bad_dbs.len())].clone().into());
    } else {
        argv.push("--db".into());
        argv.push(db.into());
    }
    if rng.u8(..10) < 3 {
        argv.push("--json".into());
    }
    if rng.u8(..10) < 2 {
        argv.push("--read-only".into());
    }
    if rng.u8(..10) == 0 {
        argv.push("--as".into());
        argv.push(value(rng, "user", w));
    }
    argv.extend(leaf.path.iter().map(OsString::from));
    let drop_required = rng.u8(..10) == 0;
    for arg in &leaf.args {
        // Streams that run until interrupted: the fuzzer's timeout would call them hangs.
        if arg.id == "follow"
            || arg.id == "watch"
            || (arg.id == "drain" && worker)
            || arg.id == "seed_only"
        {
            continue;
        }
        let include = if arg.required {
            !(drop_required && rng.bool())
        } else {
            rng.u8(..10) < 4
        };
        if !include {
            continue;
        }
        let times = if arg.repeatable { rng.usize(1..=3) } else { 1 };
        for _ in 0..times {
            if let Some(long) = &arg.long {
                argv.push(format!("--{long}").into());
            }
            if arg.takes_value {
                argv.push(value(rng, &arg.id, w));
            }
        }
    }
    if worker {
        argv.push("--drain".into());
    }
    if leaf.path == ["demo"] {
        argv.push("--seed-only".into());
    }
    if rng.u8(..10) == 0 {
        let unknown = ["--no-such-flag", "--jsonn", "-z", "--db", "--", "extra"];
        let at = rng.usize(0..=argv.len());
        argv.insert(at, unknown[rng.usize(..unknown.len())].into());
    }
    argv
}

/// clap's own errors (usage, invalid value) exit 2 and point at `--help`; under `--json` they
/// are one JSON error object of kind `usage`, like every other error.
fn is_usage_error(code: i32, stderr: &str) -> bool {
    code == 2
        && (stderr.starts_with("error: ") && stderr.contains("--help")
            || json_error_kind(stderr.trim_end()).as_deref() == Some("usage"))
}

/// The kind of a `{"error": {"kind": …, "message": …}}` line, if it is one.
fn json_error_kind(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let error = value.get("error")?;
    error.get("message")?.as_str()?;
    Some(error.get("kind")?.as_str()?.to_owned())
}

#[derive(Default)]
struct Tally {
    invocations: usize,
    succeeded: usize,
    refused: usize,
    usage: usize,
    panics: Vec<String>,
    hangs: Vec<String>,
    not_one_line: Vec<String>,
}

fn show(argv: &[OsString]) -> String {
    let shown: Vec<String> = argv
        .iter()
        .map(|a| {
            let s = a.to_string_lossy();
            if s.chars().count() > 60 {
                let head: String = s.chars().take(60).collect();
                format!("{head}…({} bytes)", s.len())
            } else {
                s.into_owned()
            }
        })
        .collect();
    format!("{shown:?}")
}

impl Tally {
    fn record(&mut self, leaf: &Leaf, argv: &[OsString], outcome: Outcome) {
        self.invocations += 1;
        match outcome {
            Outcome::Hung => self.hangs.push(show(argv)),
            Outcome::Signaled(stderr) => self
                .panics
                .push(format!("{} killed by a signal: {stderr}", show(argv))),
            Outcome::Exited { code, stderr, .. } if code == 101 || stderr.contains("panicked") => {
                self.panics
                    .push(format!("{} → {code}: {stderr}", show(argv)))
            }
            Outcome::Exited { code: 0, .. } => self.succeeded += 1,
            Outcome::Exited { code, stderr, .. } if is_usage_error(code, &stderr) => {
                self.usage += 1
            }
            Outcome::Exited {
                code,
                stderr,
                stdout,
            } => {
                self.refused += 1;
                let stdout_bytes = stdout.len();
                // The worker's stderr is its running log: it announces itself before the error
                // that stops it.
                let log_lines = if leaf.path == ["worker"] {
                    stderr
                        .lines()
                        .take_while(|l| l.starts_with("worker "))
                        .count()
                } else {
                    0
                };
                let rest: Vec<&str> = stderr.lines().skip(log_lines).collect();
                // `--json` is the flag only before a `--`.
                let json = argv
                    .iter()
                    .take_while(|a| *a != "--")
                    .any(|a| *a == "--json");
                let one_line = stderr.ends_with('\n')
                    && rest.len() == 1
                    && if json {
                        json_error_kind(rest[0]).is_some()
                    } else {
                        rest[0].starts_with("error: ")
                    };
                // `doctor` answers an unhealthy store with its report (`problem …`) on stdout.
                let report = leaf.path == ["doctor"] && stderr.is_empty() && stdout_bytes > 0;
                if !one_line && !report {
                    self.not_one_line.push(format!(
                        "{} → exit {code}, {stdout_bytes} bytes on stdout, stderr {stderr:?}",
                        show(argv)
                    ));
                }
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.invocations += other.invocations;
        self.succeeded += other.succeeded;
        self.refused += other.refused;
        self.usage += other.usage;
        self.panics.extend(other.panics);
        self.hangs.extend(other.hangs);
        self.not_one_line.extend(other.not_one_line);
    }

    /// Prints the counts and the first offenders, then asserts there are none.
    fn report_and_check(&self, what: &str, subcommands: usize) {
        println!(
            "{what}: {} invocations over {subcommands} subcommands: {} succeeded, {} refused \
             with an error, {} usage errors; {} panics, {} hangs, {} failures not one `error:` line",
            self.invocations,
            self.succeeded,
            self.refused,
            self.usage,
            self.panics.len(),
            self.hangs.len(),
            self.not_one_line.len()
        );
        for line in self
            .panics
            .iter()
            .chain(&self.hangs)
            .chain(&self.not_one_line)
            .take(20)
        {
            println!("  {line}");
        }
        assert!(self.panics.is_empty(), "{} panics", self.panics.len());
        assert!(self.hangs.is_empty(), "{} hangs", self.hangs.len());
        assert!(
            self.not_one_line.is_empty(),
            "{} failures were not one `error:` line",
            self.not_one_line.len()
        );
    }
}

/// Runs `argv` for `leaf` in `world` and records it; puts back what `db down` took away.
fn run_case(world: &World, tally: &mut Tally, leaf: &Leaf, argv: &[OsString]) {
    tally.record(leaf, argv, world.run(argv));
    // `db down` reverts the newest migration; migrate again so later cases reach the store.
    if leaf.path == ["db", "down"] {
        let migrate = ["--db", &world.db, "db", "migrate"].map(OsString::from);
        let _ = world.run(&migrate);
    }
}

fn fuzz(seed: u64, cases: usize) -> Tally {
    let world = World::new();
    let leaves = leaves();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut tally = Tally::default();
    for _ in 0..cases {
        let leaf = &leaves[rng.usize(..leaves.len())];
        let argv = argv_for(&mut rng, leaf, &world);
        run_case(&world, &mut tally, leaf, &argv);
    }
    tally
}

#[test]
fn every_subcommand_survives_hostile_arguments() {
    let seed = std::env::var("OSPDECK_ARGV_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let cases = std::env::var("OSPDECK_ARGV_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    println!("argv fuzz: seed {seed} (OSPDECK_ARGV_FUZZ_SEED={seed} to replay), {cases} cases");
    let leaves = leaves();
    assert!(
        leaves.len() >= 40,
        "only {} subcommands found in the clap tree",
        leaves.len()
    );
    // Split over the cores, each part with a world of its own (its own store and files).
    let parts = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..parts)
            .map(|i| {
                let share = cases / parts + usize::from(i < cases % parts);
                s.spawn(move || fuzz(seed.wrapping_add(i as u64), share))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("fuzz thread"))
            .collect()
    });
    let mut all = Tally::default();
    for t in tallies {
        all.merge(t);
    }
    all.report_and_check("argv fuzz", leaves.len());
    // The fuzz must reach the use cases, not only clap's refusals.
    assert!(
        all.succeeded * 10 >= all.invocations && all.refused * 10 >= all.invocations,
        "too few successes or refusals to mean anything"
    );
}

/// Every numeric flag of every subcommand, alone with plausible required arguments, at each of
/// the extremes: the edges the random cases reach only now and then.
#[test]
fn every_numeric_flag_survives_its_extremes() {
    let world = World::new();
    let leaves = leaves();
    let mut tally = Tally::default();
    let mut flags = 0;
    for leaf in &leaves {
        for numeric in leaf
            .args
            .iter()
            .filter(|a| a.takes_value && is_numeric(&a.id, &world))
        {
            flags += 1;
            for extreme in EXTREMES {
                let db = if leaf.path == ["worker"] {
                    &world.worker_db
                } else {
                    &world.db
                };
                let mut argv: Vec<OsString> = vec!["--db".into(), db.into()];
                argv.extend(leaf.path.iter().map(OsString::from));
                for arg in leaf
                    .args
                    .iter()
                    .filter(|a| a.required || a.id == numeric.id)
                {
                    if let Some(long) = &arg.long {
                        argv.push(format!("--{long}").into());
                    }
                    if arg.id == numeric.id {
                        argv.push(extreme.into());
                    } else if arg.takes_value {
                        argv.push(plausible(&arg.id, &world)[0].clone().into());
                    }
                }
                if leaf.path == ["worker"] {
                    argv.push("--drain".into());
                }
                run_case(&world, &mut tally, leaf, &argv);
            }
        }
    }
    assert!(flags >= 10, "only {flags} numeric flags found");
    tally.report_and_check("numeric extremes", leaves.len());
}

/// Found while fuzzing, not a panic: a lease of 300 000 000 000 s (9 500 years, past SQLite's date
/// range) was stored as expiring in 1970, so the claimed run was at once up for rescue.
#[test]
fn a_claim_lease_the_store_cannot_hold_is_refused_and_claims_nothing() {
    let world = World::new();
    let claim = [
        "--db",
        &world.db,
        "run",
        "claim",
        "--worker",
        "w9",
        "--lease",
        "300000000000",
    ];
    match world.run(&claim.map(OsString::from)) {
        Outcome::Exited { code, stderr, .. } => {
            assert!(is_usage_error(code, &stderr), "{code}: {stderr}");
            assert!(stderr.contains("not in 2..=86400"), "{stderr}");
        }
        other => panic!("{other:?}"),
    }
    let list = [
        "--db", &world.db, "--json", "run", "list", "--status", "claimed",
    ];
    let claimed = match world.run(&list.map(OsString::from)) {
        Outcome::Exited {
            code: 0, stdout, ..
        } => stdout,
        other => panic!("{other:?}"),
    };
    let runs: serde_json::Value = serde_json::from_slice(&claimed).expect("run list --json");
    let workers: Vec<&str> = runs
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|r| r["worker_id"].as_str())
        .collect();
    assert_eq!(workers, ["w1"], "only the setup's claim holds a run");
}

#[test]
fn the_walk_finds_every_front_end_command() {
    let paths: Vec<String> = leaves().iter().map(|l| l.path.join(" ")).collect();
    for expected in [
        "run enqueue",
        "run logs",
        "manifest propose",
        "template publish",
        "template resolve",
        "worker",
        "member add",
        "user key add",
        "user key import",
        "advisory add",
        "db down",
        "doctor",
        "monitor",
        "",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} missing from {paths:?}"
        );
    }
    assert!(!paths.iter().any(|p| p.starts_with("bench") || p == "serve"));
}
