//! What the fuzz targets check. The properties live in this library rather than in the target
//! files so that `cargo test` in this crate can replay the in-tree corpus through exactly the
//! same checks without libFuzzer or the sanitizer build (a quick way to see a seed's verdict).
//!
//! Every target accepts any bytes. A property that does not hold is a panic, which libFuzzer
//! reports as a crash and saves as an artifact.

pub mod grammar;

use std::cmp::Ordering;
use std::path::{Component, Path};

use ospdeck_domain::json::{MAX_JSON_DEPTH, check_json_depth, json_depth, parse_bounded};
use ospdeck_domain::manifest::{
    Bump, MAX_MANIFEST_BYTES, ManifestContent, ManifestStatus, bump, check_locked_fields, diff,
    parse_manifest, parse_version,
};
use ospdeck_domain::project::NewProject;
use ospdeck_domain::run::{
    LogLevel, MAX_LOG_LINE_BYTES, MAX_PAYLOAD_BYTES, NewLogLine, RunStatus, parse_payload,
    parse_run_id,
};
use ospdeck_domain::service::{
    WorkflowSpec, check_code_name, check_schema_name, check_service_name,
};
use ospdeck_domain::template::{
    BundleManifest, KINDS, LOCALES, MAX_VERSION_PART, ROLES, StoredArtifact, VersionStatus,
    bundle_digest, canary_bucket, check_bundle_manifest, check_label, check_relative_path,
    check_template_name, check_template_version,
};
use ospdeck_domain::tool::{Severity, check_tool_name, check_tool_version, compare_versions};
use ospdeck_domain::workflow::{WorkflowType, check_queue_name, check_workflow_name};
use ospdeck_domain::{InvalidInput, manifest::DEFAULT_LOCKED_FIELDS};
use semver::Version;
use serde_json::Value;

use grammar::{ALNUM, ALPHA, DIGITS, LOWER, matches};

/// Errors reach the operator as one line after `error: `.
fn assert_one_line(e: &InvalidInput) {
    assert!(!e.0.is_empty(), "empty error message");
    assert!(
        !e.0.contains(['\n', '\r']),
        "error message spans lines: {:?}",
        e.0
    );
}

/// Manifest text, checked against the schema it names (so that inputs get past the schema rule)
/// and against a fixed one.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let named = serde_json::from_str::<Value>(text).ok().and_then(|v| {
        v.get("schema_name")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    for schema in named.as_deref().into_iter().chain(["telecom_billing"]) {
        match parse_manifest(text, schema) {
            Ok(content) => accepted_manifest(&content, schema),
            Err(e) => assert_one_line(&e),
        }
    }
}

fn accepted_manifest(content: &ManifestContent, schema: &str) {
    let value = content.to_value();
    assert!(!value.is_null(), "an accepted manifest does not serialise");
    assert!(json_depth(&value) <= MAX_JSON_DEPTH, "too deep: {value}");
    // PostgreSQL's jsonb cannot hold a NUL, so an accepted manifest must not have one.
    assert!(!grammar::contains_nul(&value), "NUL accepted: {value}");
    let stored = serde_json::to_string(content).expect("an accepted manifest serialises");
    assert!(stored.len() <= MAX_MANIFEST_BYTES);
    // What is stored is parsed again on every read and every propose: it must come back the same.
    match parse_manifest(&stored, schema) {
        Ok(again) => assert_eq!(&again, content, "stored form parses differently: {stored}"),
        Err(e) => panic!("the stored form of an accepted manifest is refused: {e}: {stored}"),
    }
    for w in &content.workflows {
        assert!(grammar::is_code_name(&w.name), "workflow {:?}", w.name);
        assert!(
            grammar::is_queue_name(&w.task_queue),
            "queue {:?}",
            w.task_queue
        );
        for a in &w.activities {
            assert!(grammar::is_code_name(a), "activity {a:?}");
        }
    }
    assert!(diff(&value, &value).is_empty());
    let locked: Vec<String> = DEFAULT_LOCKED_FIELDS
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert_eq!(check_locked_fields(&value, &value, &locked), Ok(()));
}

/// Payload text: what is accepted is within the limits and decodes again; what is refused breaks
/// one of the limits.
pub fn payload(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    match parse_payload(text) {
        Ok(value) => {
            let stored = value.to_string();
            assert!(stored.len() <= MAX_PAYLOAD_BYTES, "{} bytes", stored.len());
            assert!(json_depth(&value) <= MAX_JSON_DEPTH);
            assert!(!grammar::contains_nul(&value), "NUL accepted: {stored}");
            // A stored payload that cannot be decoded is the poison run of issue 11.
            assert_eq!(parse_payload(&stored).as_ref(), Ok(&value), "{stored}");
            assert_eq!(parse_bounded("payload", &stored).as_ref(), Ok(&value));
        }
        Err(e) => {
            assert_one_line(&e);
            if let Ok(value) = serde_json::from_str::<Value>(text) {
                let within_limits = text.len() <= MAX_PAYLOAD_BYTES
                    && value.to_string().len() <= MAX_PAYLOAD_BYTES
                    && grammar::depth(&value) <= MAX_JSON_DEPTH
                    && !grammar::contains_nul(&value);
                assert!(
                    !within_limits,
                    "refused a payload within every limit ({e}): {text:?}"
                );
            }
        }
    }
    bounded_json(text);
}

/// `json.rs` on its own: the iterative depth agrees with a plain recursive count, and the bound
/// is exactly `MAX_JSON_DEPTH`.
fn bounded_json(text: &str) {
    let parsed = serde_json::from_str::<Value>(text);
    match (parse_bounded("fuzz", text), parsed) {
        (Ok(bounded), Ok(plain)) => {
            assert_eq!(bounded, plain);
            assert!(grammar::depth(&plain) <= MAX_JSON_DEPTH);
        }
        (Ok(bounded), Err(e)) => {
            panic!("parse_bounded accepted what serde_json refuses ({e}): {bounded}")
        }
        (Err(e), Ok(plain)) => {
            assert_one_line(&e);
            let depth = grammar::depth(&plain);
            assert!(depth > MAX_JSON_DEPTH, "refused at depth {depth}: {e}");
            assert_eq!(json_depth(&plain), depth);
            assert!(check_json_depth("fuzz", &plain).is_err());
        }
        (Err(e), Err(_)) => assert_one_line(&e),
    }
}

/// A bundle's manifest.json, read the way `ops::templates::read_bundle` reads it.
pub fn bundle_manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(manifest) = serde_json::from_str::<BundleManifest>(text) else {
        return;
    };
    match check_bundle_manifest(&manifest) {
        Err(e) => assert_one_line(&e),
        Ok(()) => {
            assert!(!manifest.artifacts.is_empty());
            let mut paths = std::collections::HashSet::new();
            for a in &manifest.artifacts {
                assert!(KINDS.contains(&a.kind.as_str()), "kind {:?}", a.kind);
                assert!(a.locale.as_deref().is_none_or(|l| LOCALES.contains(&l)));
                assert!(a.role.as_deref().is_none_or(|r| ROLES.contains(&r)));
                assert!(!a.content_type.trim().is_empty());
                assert!(paths.insert(a.path.as_str()), "{:?} twice", a.path);
                stays_inside_the_bundle(&a.path);
            }
            let again: BundleManifest =
                serde_json::from_str(&serde_json::to_string(&manifest).expect("serialises"))
                    .expect("its own JSON parses");
            assert_eq!(again, manifest);
            // The version digest names the content, not the order it was listed in.
            let stored: Vec<StoredArtifact> = manifest
                .artifacts
                .iter()
                .map(|a| StoredArtifact {
                    kind: a.kind.clone(),
                    locale: a.locale.clone(),
                    role: a.role.clone(),
                    path: a.path.clone(),
                    content_type: a.content_type.clone(),
                    sha256: "0".repeat(64),
                    size_bytes: 0,
                })
                .collect();
            let mut reversed = stored.clone();
            reversed.reverse();
            assert_eq!(bundle_digest(&stored), bundle_digest(&reversed));
        }
    }
}

/// An accepted artifact path, joined to the bundle folder, names something inside it.
fn stays_inside_the_bundle(path: &str) {
    let root = Path::new("/bundle");
    let joined = root.join(path);
    assert!(joined.starts_with(root), "{path:?} leaves the bundle");
    assert!(
        joined
            .components()
            .skip(2)
            .all(|c| matches!(c, Component::Normal(_))),
        "{path:?} has a non-plain component"
    );
    assert!(!path.contains(['\0', '\\']), "{path:?}");
}

/// The first byte picks a validator, the rest is its input.
pub fn validators(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(input) = std::str::from_utf8(rest) else {
        return;
    };
    match which % 16 {
        0 => schema_name(input),
        1 => {
            let ok = matches(input, LOWER, &format!("{LOWER}{DIGITS}_-"), 1..=63);
            agree("template name", input, check_template_name(input), ok);
        }
        2 => label(input),
        3 => {
            agree(
                "queue name",
                input,
                check_queue_name(input),
                grammar::is_queue_name(input),
            );
        }
        4 => {
            let ok = matches(input, ALPHA, &format!("{ALNUM}_.-"), 1..=63);
            agree("workflow name", input, check_workflow_name(input), ok);
        }
        5 => {
            let ok = grammar::is_code_name(input);
            agree(
                "code name",
                input,
                check_code_name("activity name", input),
                ok,
            );
        }
        6 => {
            let ok = matches(input, LOWER, &format!("{LOWER}{DIGITS}_.-"), 1..=63);
            agree("tool name", input, check_tool_name(input), ok);
        }
        7 => {
            let ok = matches(
                input,
                &format!("{ALNUM}.+_-"),
                &format!("{ALNUM}.+_-"),
                1..=64,
            );
            agree("tool version", input, check_tool_version(input), ok);
        }
        8 => {
            let ok = matches(input, LOWER, &format!("{LOWER}{DIGITS}_-"), 1..=63);
            agree(
                "project key",
                input,
                NewProject::new(input, None).map(drop),
                ok,
            );
        }
        9 => version(input),
        10 => version_order(input),
        11 => run_id(input),
        12 => workflow_spec(input),
        13 => relative_path(input),
        14 => names_of_states(input),
        _ => free_text(input),
    }
}

/// The validator's verdict must be the documented grammar's verdict.
fn agree(what: &str, input: &str, verdict: Result<(), InvalidInput>, grammar_ok: bool) {
    match verdict {
        Ok(()) => assert!(grammar_ok, "{what} {input:?} accepted against the grammar"),
        Err(e) => {
            assert_one_line(&e);
            assert!(
                !grammar_ok,
                "{what} {input:?} refused ({e}) though the grammar allows it"
            );
        }
    }
}

fn schema_name(input: &str) {
    let ok = matches(input, LOWER, &format!("{LOWER}{DIGITS}_"), 2..=63)
        && !input.starts_with("pg_")
        && !ospdeck_domain::service::RESERVED_SCHEMAS.contains(&input);
    agree("schema", input, check_schema_name(input), ok);
}

fn label(input: &str) {
    let ok = matches(
        input,
        &format!("{LOWER}{DIGITS}_.-"),
        &format!("{LOWER}{DIGITS}_.-"),
        1..=36,
    ) && input != "latest"
        && Version::parse(input.trim_start_matches('v')).is_err();
    agree("label", input, check_label(input), ok);
}

fn version(input: &str) {
    let Ok(v) = parse_version(input) else {
        return;
    };
    // Versions are stored as text and parsed back.
    assert_eq!(parse_version(&v.to_string()).as_ref(), Ok(&v), "{input:?}");
    for (kind, part) in [
        (Bump::Patch, v.patch),
        (Bump::Minor, v.minor),
        (Bump::Major, v.major),
    ] {
        match bump(&v, kind) {
            Ok(next) => {
                assert!(next > v, "bump {kind:?} of {v} answered {next}");
                assert!(next.pre.is_empty() && next.build.is_empty());
            }
            Err(e) => {
                assert_one_line(&e);
                assert_eq!(part, u64::MAX, "bump {kind:?} of {v} refused: {e}");
            }
        }
    }
    let plain = v.pre.is_empty()
        && v.build.is_empty()
        && [v.major, v.minor, v.patch]
            .iter()
            .all(|p| *p <= MAX_VERSION_PART);
    match check_template_version(&v) {
        Ok(()) => assert!(plain, "template version {v} accepted"),
        Err(e) => {
            assert_one_line(&e);
            assert!(!plain, "template version {v} refused: {e}");
        }
    }
}

/// `compare_versions` must be a total order, or an advisory applies to an upgrade by accident of
/// which side was compared first.
fn version_order(input: &str) {
    let mut parts = input.split(' ');
    let (a, b, c) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    for x in [a, b, c] {
        assert_eq!(compare_versions(x, x), Ordering::Equal, "{x:?}");
    }
    for (x, y) in [(a, b), (b, c), (a, c)] {
        assert_eq!(
            compare_versions(x, y),
            compare_versions(y, x).reverse(),
            "{x:?} vs {y:?}"
        );
    }
    let le = |x, y| compare_versions(x, y) != Ordering::Greater;
    for (x, y, z) in [
        (a, b, c),
        (a, c, b),
        (b, a, c),
        (b, c, a),
        (c, a, b),
        (c, b, a),
    ] {
        if le(x, y) && le(y, z) {
            assert!(le(x, z), "{x:?} <= {y:?} <= {z:?} but {x:?} > {z:?}");
        }
    }
}

fn run_id(input: &str) {
    let trimmed = input.trim();
    let digits = trimmed.strip_prefix('+').unwrap_or(trimmed);
    // Positive decimal integers up to i64::MAX, by their digits rather than by `parse`.
    let significant = digits.trim_start_matches('0');
    let in_range =
        significant.len() < 19 || (significant.len() == 19 && significant <= "9223372036854775807");
    let ok = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !significant.is_empty()
        && in_range;
    match parse_run_id(input) {
        Ok(id) => {
            assert!(ok && id > 0, "run id {input:?} accepted as {id}");
            assert_eq!(id.to_string(), significant);
        }
        Err(e) => {
            assert_one_line(&e);
            assert!(!ok, "run id {input:?} refused");
        }
    }
}

fn workflow_spec(input: &str) {
    match input.parse::<WorkflowSpec>() {
        Ok(spec) => {
            assert!(grammar::is_code_name(&spec.name), "{:?}", spec.name);
            for a in &spec.activities {
                assert!(grammar::is_code_name(a), "{a:?}");
            }
            let again: WorkflowSpec = format!("{}:{}", spec.name, spec.activities.join(","))
                .parse()
                .expect("its own form parses");
            assert_eq!(again, spec);
        }
        Err(e) => assert_one_line(&e),
    }
}

fn relative_path(input: &str) {
    match check_relative_path(input) {
        Ok(()) => {
            assert!(!input.is_empty() && input.len() <= 1024);
            stays_inside_the_bundle(input);
        }
        Err(e) => assert_one_line(&e),
    }
}

/// Every named state parses only from its own name.
fn names_of_states(input: &str) {
    fn round_trip<T: std::str::FromStr<Err = InvalidInput>>(
        input: &str,
        name: impl Fn(T) -> &'static str,
    ) {
        match input.parse::<T>() {
            Ok(t) => assert_eq!(name(t), input),
            Err(e) => assert_one_line(&e),
        }
    }
    round_trip::<RunStatus>(input, RunStatus::as_str);
    round_trip::<ManifestStatus>(input, ManifestStatus::as_str);
    round_trip::<VersionStatus>(input, VersionStatus::as_str);
    round_trip::<WorkflowType>(input, WorkflowType::as_str);
    round_trip::<Severity>(input, Severity::as_str);
    round_trip::<LogLevel>(input, LogLevel::as_str);
    match input.parse::<Bump>() {
        Ok(_) => assert!(["patch", "minor", "major"].contains(&input)),
        Err(e) => assert_one_line(&e),
    }
}

/// Names and lines that are free text with bounds: service names, log lines, canary units.
fn free_text(input: &str) {
    let trimmed = input.trim();
    let ok = !trimmed.is_empty()
        && trimmed.chars().count() <= 200
        && !input.chars().any(char::is_control);
    agree("service name", input, check_service_name(input), ok);

    let line = NewLogLine::new(LogLevel::Info, input, Value::Null);
    assert!(!line.message.contains('\0'));
    let without_nul: String = input.chars().filter(|c| *c != '\0').collect();
    if without_nul.len() <= MAX_LOG_LINE_BYTES {
        assert_eq!(line.message, without_nul);
    } else {
        let kept = line
            .message
            .strip_suffix(" …[truncated]")
            .expect("a cut line says so");
        assert!(kept.len() <= MAX_LOG_LINE_BYTES && without_nul.starts_with(kept));
    }

    let (template, unit) = input.split_once(' ').unwrap_or((input, ""));
    assert!(canary_bucket(template, "canary", unit) < 100);
}

#[cfg(test)]
mod corpus {
    /// Replays every seed of fuzz/corpus/<target>/ through its target's checks, naming each seed
    /// that fails, without libFuzzer.
    #[test]
    fn every_seed_holds() {
        type Check = fn(&[u8]);
        let targets: [(&str, Check); 4] = [
            ("manifest", super::manifest),
            ("payload", super::payload),
            ("bundle_manifest", super::bundle_manifest),
            ("validators", super::validators),
        ];
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        let mut failed = Vec::new();
        let mut replayed = 0;
        for (target, check) in targets {
            let mut seeds: Vec<_> = std::fs::read_dir(root.join(target))
                .expect("corpus directory")
                .map(|e| e.expect("corpus entry").path())
                .collect();
            seeds.sort();
            assert!(seeds.len() >= 20, "{target}: only {} seeds", seeds.len());
            for seed in seeds {
                let data = std::fs::read(&seed).expect("seed");
                replayed += 1;
                if std::panic::catch_unwind(|| check(&data)).is_err() {
                    failed.push(format!(
                        "{target}/{}",
                        seed.file_name()
                            .map(|n| n.to_string_lossy())
                            .unwrap_or_default()
                    ));
                }
            }
        }
        assert!(
            failed.is_empty(),
            "{} of {replayed} seeds fail: {failed:#?}",
            failed.len()
        );
    }
}
