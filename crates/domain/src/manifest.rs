//! Governed manifests: versioned descriptions of a service, their state machine, the rules for
//! content (validated, locked fields), semver bumps, and a field-level diff.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use semver::Version;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::InvalidInput;
use super::service::{WorkflowSpec, check_code_name};
use super::workflow::check_queue_name;

pub const MAX_MANIFEST_BYTES: usize = 1 << 20;
pub const DEFAULT_LOCKED_FIELDS: &[&str] = &["service_id", "schema_name"];
pub const FIRST_VERSION: &str = "1.0.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ManifestStatus {
    Draft,
    Active,
    Locked,
    Superseded,
}

use ManifestStatus::*;

/// The legal moves; the database's trigger holds the same list.
pub const MANIFEST_TRANSITIONS: &[(ManifestStatus, ManifestStatus)] = &[
    (Draft, Active),
    (Active, Locked),
    (Locked, Active),
    (Active, Superseded),
    (Locked, Superseded),
];

impl ManifestStatus {
    pub const ALL: [ManifestStatus; 4] = [Draft, Active, Locked, Superseded];

    pub fn as_str(self) -> &'static str {
        match self {
            Draft => "draft",
            Active => "active",
            Locked => "locked",
            Superseded => "superseded",
        }
    }

    pub fn can_become(self, to: ManifestStatus) -> bool {
        MANIFEST_TRANSITIONS.contains(&(self, to))
    }

    /// Only a draft's content may change; every other version is history.
    pub fn content_can_change(self) -> bool {
        self == Draft
    }
}

impl fmt::Display for ManifestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ManifestStatus {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| InvalidInput::new(format!("unknown manifest status {s:?}")))
    }
}

/// The content of a manifest, as seed 001's worker reads it. Unknown fields are refused so that a
/// typo does not silently vanish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestContent {
    pub service_id: String,
    pub service_name: String,
    pub schema_name: String,
    pub service_schema: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activities_path: Option<String>,
    #[serde(default)]
    pub workflows: Vec<ManifestWorkflow>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Free-form, for whatever else a team wants to keep with the service.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub metadata: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestWorkflow {
    pub name: String,
    pub task_queue: String,
    #[serde(default)]
    pub activities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflows_path: Option<String>,
    /// The shell command a worker runs for this workflow (default: prints its activities).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

impl ManifestWorkflow {
    pub fn command_or_default(&self) -> String {
        self.command.clone().unwrap_or_else(|| {
            let mut cmd = format!("echo 'workflow {}'", self.name);
            for a in &self.activities {
                cmd.push_str(&format!("; echo 'activity {a}'"));
            }
            cmd
        })
    }
}

/// The task queue a service's workers serve.
pub fn task_queue(schema: &str) -> String {
    format!("{schema}-tasks")
}

impl ManifestContent {
    /// Version 1.0.0 of a new service.
    pub fn initial(name: &str, schema: &str, workflows: &[WorkflowSpec]) -> Self {
        Self {
            service_id: schema.to_owned(),
            service_name: name.to_owned(),
            schema_name: schema.to_owned(),
            service_schema: schema.to_owned(),
            description: None,
            activities_path: None,
            workflows: workflows
                .iter()
                .map(|w| ManifestWorkflow {
                    name: w.name.clone(),
                    task_queue: task_queue(schema),
                    activities: w.activities.clone(),
                    workflows_path: None,
                    command: None,
                })
                .collect(),
            env: BTreeMap::new(),
            metadata: Value::Null,
        }
    }

    /// Checks the rules serde cannot: names, queues, and that the content belongs to `schema`.
    pub fn validate(&self, schema: &str) -> Result<(), InvalidInput> {
        // The schema is the service's identity: say which field differs and both values, so the
        // operator sees what to put back rather than a pair of names to compare.
        for (field, value) in [
            ("schema_name", &self.schema_name),
            ("service_schema", &self.service_schema),
        ] {
            if value != schema {
                return Err(locked_field_error(
                    field,
                    &Value::from(schema),
                    Some(&Value::from(value.as_str())),
                ));
            }
        }
        if self.service_id.trim().is_empty() {
            return Err(InvalidInput::new("manifest service_id is empty"));
        }
        super::service::check_service_name(&self.service_name)?;
        let mut seen = std::collections::HashSet::new();
        for w in &self.workflows {
            check_code_name("workflow name", &w.name)?;
            if !seen.insert(w.name.as_str()) {
                return Err(InvalidInput::new(format!(
                    "workflow {:?} appears twice in the manifest",
                    w.name
                )));
            }
            check_queue_name(&w.task_queue)?;
            for a in &w.activities {
                check_code_name("activity name", a)?;
            }
        }
        if !self.metadata.is_null() && !self.metadata.is_object() {
            return Err(InvalidInput::new("manifest metadata must be a JSON object"));
        }
        Ok(())
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Parses and validates manifest text for `schema`; answers the content as stored (normalised JSON).
pub fn parse_manifest(text: &str, schema: &str) -> Result<ManifestContent, InvalidInput> {
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(InvalidInput::new(format!(
            "manifest is {} bytes; the limit is {MAX_MANIFEST_BYTES} (1 MiB)",
            text.len()
        )));
    }
    let content: ManifestContent = serde_json::from_str(text)
        .map_err(|e| InvalidInput::new(format!("invalid manifest: {e}")))?;
    let value = content.to_value();
    crate::json::check_json_depth("manifest", &value)?;
    // PostgreSQL's jsonb cannot hold a NUL: refused here, the same on both stores.
    if crate::json::contains_nul(&value) {
        return Err(InvalidInput::new("manifest may not contain NUL characters"));
    }
    content.validate(schema)?;
    let size = serde_json::to_vec(&content).map(|v| v.len()).unwrap_or(0);
    if size > MAX_MANIFEST_BYTES {
        return Err(InvalidInput::new(format!(
            "manifest is {size} bytes; the limit is {MAX_MANIFEST_BYTES} (1 MiB)"
        )));
    }
    Ok(content)
}

/// Refuses a change to any locked field, naming the first one that changed.
pub fn check_locked_fields(
    current: &Value,
    proposed: &Value,
    locked: &[String],
) -> Result<(), InvalidInput> {
    for field in locked {
        let before = current.get(field);
        let after = proposed.get(field);
        if before != after {
            return Err(locked_field_error(
                field,
                before.unwrap_or(&Value::Null),
                after,
            ));
        }
    }
    Ok(())
}

/// `field `schema_name` is locked: it is "billing" for this service, the draft says "other"`.
fn locked_field_error(field: &str, current: &Value, proposed: Option<&Value>) -> InvalidInput {
    let current = if current.is_null() {
        "absent".to_owned()
    } else {
        current.to_string()
    };
    InvalidInput::new(format!(
        "field `{field}` is locked: it is {current} for this service, the draft {}",
        match proposed {
            Some(v) => format!("says {v}"),
            None => "leaves it out".to_owned(),
        }
    ))
}

/// Why `version` of `schema`, now `status`, cannot be activated, if it cannot: only a draft
/// becomes active, and a locked version freezes its service. `activate_manifest` refuses with
/// these words and the console says them before it asks anything.
pub fn activation_refused(
    schema: &str,
    version: &str,
    status: ManifestStatus,
    history: &[ManifestHead],
) -> Option<String> {
    if !status.can_become(Active) {
        return Some(format!(
            "{schema} {version} is {status}; only a draft can be activated (propose a new version)"
        ));
    }
    history
        .iter()
        .any(|m| m.status == Locked)
        .then(|| format!("{schema} is locked: unlock it before activating a version"))
}

/// Why the governing version of `schema` cannot move to `to` (Locked or Active), if it cannot.
pub fn lock_refused(schema: &str, history: &[ManifestHead], to: ManifestStatus) -> Option<String> {
    let governing = history.iter().find(|m| matches!(m.status, Active | Locked));
    match governing {
        None => Some(format!("{schema} has no active manifest")),
        Some(m) if m.status.can_become(to) && m.status != to => None,
        Some(m) => Some(match to {
            Locked => format!("{schema} {} is already locked", m.version),
            _ => format!("{schema} is not locked"),
        }),
    }
}

/// Which manifest the deployed worker runs against the one that governs the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Drift {
    /// The worker runs the governing version.
    InStep { version: String },
    /// The worker runs another version than the governing one: a deploy is due.
    Drifted { deployed: String, governing: String },
    /// No worker is known to run a manifest: never deployed, or the deployment is pending,
    /// under way or failed.
    NotDeployed,
    /// Nothing governs the service (every version is a draft or superseded).
    NoGoverning,
}

impl Drift {
    pub fn is_drifted(&self) -> bool {
        matches!(self, Drift::Drifted { .. })
    }
}

/// Compares the manifest a deployed worker runs (`deployed_manifest`, a manifest id; None when
/// no deployment is done) with the governing version of `history`.
pub fn drift(deployed_manifest: Option<i64>, history: &[ManifestHead]) -> Drift {
    let Some(governing) = history.iter().find(|m| matches!(m.status, Active | Locked)) else {
        return Drift::NoGoverning;
    };
    match deployed_manifest {
        None => Drift::NotDeployed,
        Some(id) if id == governing.id => Drift::InStep {
            version: governing.version.clone(),
        },
        Some(id) => Drift::Drifted {
            deployed: history
                .iter()
                .find(|m| m.id == id)
                .map(|m| m.version.clone())
                .unwrap_or_else(|| format!("manifest #{id}")),
            governing: governing.version.clone(),
        },
    }
}

pub fn check_locked_field_names(fields: &[String]) -> Result<(), InvalidInput> {
    for f in fields {
        check_code_name("locked field", f)?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bump {
    Patch,
    Minor,
    Major,
}

impl Bump {
    pub fn as_str(self) -> &'static str {
        match self {
            Bump::Patch => "patch",
            Bump::Minor => "minor",
            Bump::Major => "major",
        }
    }
}

impl FromStr for Bump {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "patch" => Ok(Bump::Patch),
            "minor" => Ok(Bump::Minor),
            "major" => Ok(Bump::Major),
            _ => Err(InvalidInput::new(format!(
                "unknown bump {s:?}: patch, minor or major"
            ))),
        }
    }
}

pub fn parse_version(text: &str) -> Result<Version, InvalidInput> {
    Version::parse(text.trim()).map_err(|e| {
        InvalidInput::new(format!(
            "invalid version {text:?}: {e} (use semver, e.g. 1.2.0)"
        ))
    })
}

/// The next version after the highest existing one; an error, never a wrap to 0, when the part
/// to bump is already the largest number a version holds.
pub fn bump(highest: &Version, bump: Bump) -> Result<Version, InvalidInput> {
    let (major, minor, patch) = (highest.major, highest.minor, highest.patch);
    let next = match bump {
        Bump::Patch => patch.checked_add(1).map(|p| Version::new(major, minor, p)),
        Bump::Minor => minor.checked_add(1).map(|m| Version::new(major, m, 0)),
        Bump::Major => major.checked_add(1).map(|m| Version::new(m, 0, 0)),
    };
    next.ok_or_else(|| {
        InvalidInput::new(format!(
            "cannot bump the {} part of {highest}: it is already {}, the largest a version holds; \
             give the next version with --version",
            bump.as_str(),
            u64::MAX
        ))
    })
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manifest {
    pub id: i64,
    pub service_id: i64,
    pub service_name: String,
    pub version: String,
    pub status: ManifestStatus,
    pub content: Value,
    pub locked_fields: Vec<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Manifest {
    /// Semver order, never text order ("1.10.0" > "1.9.0").
    pub fn semver(&self) -> Option<Version> {
        Version::parse(&self.version).ok()
    }
}

/// A manifest version without its content, for lists.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManifestHead {
    pub id: i64,
    pub service_id: i64,
    pub version: String,
    pub status: ManifestStatus,
    pub locked_fields: Vec<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

/// One field that differs, addressed by a JSON pointer (`/workflows/0/activities/1`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub path: String,
    pub kind: ChangeKind,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Field-level difference of two JSON documents: objects by key, arrays by index, leaves by value.
pub fn diff(before: &Value, after: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    diff_into(&mut String::new(), before, after, &mut out);
    out
}

fn diff_into(path: &mut String, before: &Value, after: &Value, out: &mut Vec<FieldChange>) {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let len = path.len();
                path.push('/');
                path.push_str(&key.replace('~', "~0").replace('/', "~1"));
                child(path, a.get(key), b.get(key), out);
                path.truncate(len);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                child(path, a.get(i), b.get(i), out);
                path.truncate(len);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(FieldChange {
            path: path_or_root(path),
            kind: ChangeKind::Changed,
            before: Some(a.clone()),
            after: Some(b.clone()),
        }),
    }
}

fn child(path: &mut String, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<FieldChange>) {
    match (a, b) {
        (Some(a), Some(b)) => diff_into(path, a, b, out),
        (None, Some(b)) => out.push(FieldChange {
            path: path_or_root(path),
            kind: ChangeKind::Added,
            before: None,
            after: Some(b.clone()),
        }),
        (Some(a), None) => out.push(FieldChange {
            path: path_or_root(path),
            kind: ChangeKind::Removed,
            before: Some(a.clone()),
            after: None,
        }),
        (None, None) => {}
    }
}

fn path_or_root(path: &str) -> String {
    if path.is_empty() {
        "/".into()
    } else {
        path.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_status_pair_is_legal_exactly_when_listed() {
        let mut legal = 0;
        for from in ManifestStatus::ALL {
            for to in ManifestStatus::ALL {
                let listed = MANIFEST_TRANSITIONS.contains(&(from, to));
                assert_eq!(from.can_become(to), listed, "{from} -> {to}");
                legal += usize::from(listed);
            }
        }
        assert_eq!(legal, 5);
        assert!(!Superseded.can_become(Active));
        assert!(!Draft.can_become(Locked));
    }

    fn initial() -> ManifestContent {
        let wf: WorkflowSpec = "processBilling:calculateCharges,sendInvoice"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        ManifestContent::initial("Telecom Billing", "telecom_billing", &[wf])
    }

    #[test]
    fn the_initial_manifest_has_the_seed_shape() {
        let v = initial().to_value();
        assert_eq!(v["service_schema"], "telecom_billing");
        assert_eq!(v["workflows"][0]["task_queue"], "telecom_billing-tasks");
        assert_eq!(v["workflows"][0]["activities"][1], "sendInvoice");
        assert_eq!(
            parse_manifest(&v.to_string(), "telecom_billing").map(|c| c.to_value()),
            Ok(v)
        );
    }

    #[test]
    fn bad_manifests_are_refused_with_the_reason() {
        let ok = initial().to_value();
        let mut unknown = ok.clone();
        unknown["colour"] = json!("blue");
        let err = parse_manifest(&unknown.to_string(), "telecom_billing").err();
        assert!(err.is_some_and(|e| e.0.contains("unknown field `colour`")));
        assert!(parse_manifest("{not json", "telecom_billing").is_err());
        assert!(
            parse_manifest(&ok.to_string(), "other_schema")
                .err()
                .is_some_and(|e| e.0
                    == "field `schema_name` is locked: it is \"other_schema\" for this service, \
                        the draft says \"telecom_billing\"")
        );
        let mut dup = ok.clone();
        dup["workflows"] = json!([
            {"name": "a", "task_queue": "q"}, {"name": "a", "task_queue": "q"}
        ]);
        assert!(parse_manifest(&dup.to_string(), "telecom_billing").is_err());
        for nul in [json!({"x": "a\u{0}b"}), json!({"k\u{0}": 1})] {
            let mut with_nul = ok.clone();
            with_nul["metadata"] = nul;
            let err = parse_manifest(&with_nul.to_string(), "telecom_billing").err();
            assert!(err.is_some_and(|e| e.0.contains("NUL")), "{with_nul}");
        }
        let big = format!("{{\"metadata\": \"{}\"}}", "x".repeat(MAX_MANIFEST_BYTES));
        assert!(
            parse_manifest(&big, "telecom_billing")
                .err()
                .is_some_and(|e| e.0.contains("limit"))
        );
    }

    #[test]
    fn locked_fields_cannot_change() {
        let a = initial().to_value();
        let mut b = a.clone();
        b["service_name"] = json!("Renamed");
        let locked: Vec<String> = DEFAULT_LOCKED_FIELDS
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(check_locked_fields(&a, &b, &locked), Ok(()));
        b["schema_name"] = json!("other");
        let err = check_locked_fields(&a, &b, &locked).err();
        assert_eq!(
            err.map(|e| e.0).as_deref(),
            Some(
                "field `schema_name` is locked: it is \"telecom_billing\" for this service, \
                 the draft says \"other\""
            )
        );
    }

    fn head(id: i64, version: &str, status: ManifestStatus) -> ManifestHead {
        ManifestHead {
            id,
            service_id: 1,
            version: version.into(),
            status,
            locked_fields: Vec::new(),
            created_by: "t".into(),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn activation_and_locks_are_refused_by_the_state_machine() {
        let open = [head(1, "1.0.0", Active), head(2, "1.1.0", Draft)];
        assert_eq!(activation_refused("s", "1.1.0", Draft, &open), None);
        assert!(
            activation_refused("s", "1.0.0", Active, &open)
                .is_some_and(|e| e.contains("only a draft"))
        );
        let locked = [head(1, "1.0.0", Locked), head(2, "1.1.0", Draft)];
        assert!(
            activation_refused("s", "1.1.0", Draft, &locked)
                .is_some_and(|e| e.starts_with("s is locked"))
        );
        assert_eq!(lock_refused("s", &open, Locked), None);
        assert!(lock_refused("s", &open, Active).is_some_and(|e| e.contains("not locked")));
        assert_eq!(lock_refused("s", &locked, Active), None);
        assert!(lock_refused("s", &locked, Locked).is_some_and(|e| e.contains("already")));
        assert!(lock_refused("s", &[head(2, "1.1.0", Draft)], Locked).is_some());
    }

    #[test]
    fn drift_compares_the_deployed_manifest_with_the_governing_one() {
        let history = [
            head(1, "1.0.0", Superseded),
            head(2, "1.1.0", Active),
            head(3, "1.2.0", Draft),
        ];
        assert_eq!(
            drift(Some(2), &history),
            Drift::InStep {
                version: "1.1.0".into()
            }
        );
        assert_eq!(
            drift(Some(1), &history),
            Drift::Drifted {
                deployed: "1.0.0".into(),
                governing: "1.1.0".into()
            }
        );
        assert!(drift(Some(1), &history).is_drifted());
        assert_eq!(drift(None, &history), Drift::NotDeployed);
        assert_eq!(drift(Some(3), &history[2..]), Drift::NoGoverning);
    }

    #[test]
    fn bumps_follow_semver() -> Result<(), InvalidInput> {
        let v = parse_version("1.9.3")?;
        assert_eq!(bump(&v, Bump::Patch)?.to_string(), "1.9.4");
        assert_eq!(bump(&v, Bump::Minor)?.to_string(), "1.10.0");
        assert_eq!(bump(&v, Bump::Major)?.to_string(), "2.0.0");
        assert!(parse_version("1.2").is_err());
        assert!(parse_version("v1.2.3").is_err());
        assert!(parse_version("1.10.0")? > parse_version("1.9.0")?);
        Ok(())
    }

    #[test]
    fn bumps_past_the_largest_part_are_errors_not_wraps() -> Result<(), InvalidInput> {
        let max = u64::MAX;
        let top = parse_version(&format!("{max}.{max}.{max}"))?;
        for (b, part) in [
            (Bump::Major, "major"),
            (Bump::Minor, "minor"),
            (Bump::Patch, "patch"),
        ] {
            let Some(err) = bump(&top, b).err() else {
                panic!("a {part} bump of {top} wrapped");
            };
            assert!(
                err.0.contains(&format!("cannot bump the {part} part")),
                "{err}"
            );
        }
        // The case: a major bump of the largest major no longer becomes 0.0.0.
        assert!(bump(&parse_version(&format!("{max}.0.0"))?, Bump::Major).is_err());
        // Only the bumped part has to have room; the parts it resets do not.
        assert_eq!(
            bump(&parse_version(&format!("1.{max}.{max}"))?, Bump::Major)?.to_string(),
            "2.0.0"
        );
        assert_eq!(
            bump(&parse_version(&format!("1.2.{max}"))?, Bump::Minor)?.to_string(),
            "1.3.0"
        );
        Ok(())
    }

    #[test]
    fn diff_names_every_changed_field() {
        let a = json!({"a": 1, "w": [{"n": "x", "acts": ["p", "q"]}], "gone": true, "s/l": 1});
        let b =
            json!({"a": 2, "w": [{"n": "x", "acts": ["p"]}, {"n": "y"}], "new": null, "s/l": 1});
        let d = diff(&a, &b);
        let paths: Vec<(&str, ChangeKind)> = d.iter().map(|c| (c.path.as_str(), c.kind)).collect();
        assert_eq!(
            paths,
            vec![
                ("/a", ChangeKind::Changed),
                ("/gone", ChangeKind::Removed),
                ("/new", ChangeKind::Added),
                ("/w/0/acts/1", ChangeKind::Removed),
                ("/w/1", ChangeKind::Added),
            ]
        );
        assert!(diff(&a, &a).is_empty());
        assert_eq!(diff(&json!(1), &json!("1"))[0].path, "/");
    }
}
