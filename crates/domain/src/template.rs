//! Versioned template bundles (seed 002): the bundle manifest, version states, labels, the bundle
//! digest and canary buckets.

use std::fmt;
use std::path::{Component, Path};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use semver::Version;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{InvalidInput, check_identifier};

pub const BUNDLE_MANIFEST: &str = "manifest.json";
/// A bundle's manifest.json lists files; anything bigger than this is not one.
pub const MAX_BUNDLE_MANIFEST_BYTES: u64 = 1 << 20;
/// The default largest artifact (`[artifacts] max_artifact_bytes`): generous, but a bound.
pub const DEFAULT_MAX_ARTIFACT_BYTES: u64 = 4 << 30;
/// The largest part of a template version: the stores order versions by their numbers, kept in
/// 32-bit integer columns.
pub const MAX_VERSION_PART: u64 = i32::MAX as u64;
pub const KINDS: &[&str] = &[
    "master_prompt",
    "json_config",
    "golden_example",
    "system_prompt",
    "schema",
    "asset",
];
pub const LOCALES: &[&str] = &["fr", "en"];
pub const ROLES: &[&str] = &["system", "manager", "user"];

/// One entry of a bundle's manifest.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleEntry {
    pub kind: String,
    #[serde(default)]
    pub locale: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    pub path: String,
    pub content_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    pub artifacts: Vec<BundleEntry>,
}

/// Checks the manifest's own rules (not the files): kinds, locales, roles, paths, duplicates.
pub fn check_bundle_manifest(m: &BundleManifest) -> Result<(), InvalidInput> {
    if m.artifacts.is_empty() {
        return Err(InvalidInput::new("the bundle lists no artifacts"));
    }
    let mut seen = std::collections::HashSet::new();
    for a in &m.artifacts {
        if !KINDS.contains(&a.kind.as_str()) {
            return Err(InvalidInput::new(format!(
                "unknown artifact kind {:?} (known: {})",
                a.kind,
                KINDS.join(", ")
            )));
        }
        if let Some(l) = &a.locale
            && !LOCALES.contains(&l.as_str())
        {
            return Err(InvalidInput::new(format!(
                "unknown locale {l:?} for {:?} (fr, en, or none)",
                a.path
            )));
        }
        if let Some(r) = &a.role
            && !ROLES.contains(&r.as_str())
        {
            return Err(InvalidInput::new(format!(
                "unknown role {r:?} for {:?}",
                a.path
            )));
        }
        check_relative_path(&a.path)?;
        if a.content_type.trim().is_empty() || a.content_type.len() > 200 {
            return Err(InvalidInput::new(format!(
                "{:?}: content type missing",
                a.path
            )));
        }
        if !seen.insert(a.path.as_str()) {
            return Err(InvalidInput::new(format!(
                "{:?} is listed twice in the bundle",
                a.path
            )));
        }
    }
    Ok(())
}

/// A path inside the bundle: relative, no `..`, no root, no empty parts.
pub fn check_relative_path(path: &str) -> Result<(), InvalidInput> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && path.len() <= 1024
        && !path.contains('\0')
        && !path.contains('\\')
        && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(InvalidInput::new(format!(
            "artifact path {path:?} must stay inside the bundle (relative, no `..`)"
        )))
    }
}

/// A template version is plain MAJOR.MINOR.PATCH, each part at most [`MAX_VERSION_PART`].
pub fn check_template_version(v: &Version) -> Result<(), InvalidInput> {
    if !v.pre.is_empty() || !v.build.is_empty() {
        return Err(InvalidInput::new(format!(
            "invalid version {v}: use plain MAJOR.MINOR.PATCH"
        )));
    }
    if [v.major, v.minor, v.patch]
        .iter()
        .any(|part| *part > MAX_VERSION_PART)
    {
        return Err(InvalidInput::new(format!(
            "invalid version {v}: each part must be at most {MAX_VERSION_PART}"
        )));
    }
    Ok(())
}

pub fn check_template_name(name: &str) -> Result<(), InvalidInput> {
    check_identifier("template name", name, 63, &['-'])
}

/// Labels are like npm dist-tags: `[a-z0-9_.-]{1,36}`, not semver-like, and `latest` is computed.
pub fn check_label(label: &str) -> Result<(), InvalidInput> {
    let ok = !label.is_empty()
        && label.len() <= 36
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
    if !ok {
        return Err(InvalidInput::new(format!(
            "invalid label {label:?}: 1 to 36 of a-z, 0-9, '_', '.', '-'"
        )));
    }
    if label == "latest" {
        return Err(InvalidInput::new(
            "`latest` is computed (the highest non-draft version) and cannot be set",
        ));
    }
    if Version::parse(label.trim_start_matches('v')).is_ok() {
        return Err(InvalidInput::new(format!(
            "label {label:?} looks like a version; labels name versions, they are not one"
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionStatus {
    Draft,
    Stable,
    Deprecated,
}

impl VersionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Stable => "stable",
            Self::Deprecated => "deprecated",
        }
    }
}

impl fmt::Display for VersionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VersionStatus {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Draft, Self::Stable, Self::Deprecated]
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| InvalidInput::new(format!("unknown status {s:?}: draft or stable")))
    }
}

/// What an operator can do to a template version; each asks for one status (and a deprecation
/// also that the version is not the default). Ops refuses with these words and the console says
/// them before it asks anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionMove {
    Promote,
    Deprecate,
    MakeDefault,
    Label,
    /// Deleting a draft nobody resolves yet.
    Delete,
}

impl VersionMove {
    /// The status a version must have for this move.
    pub fn requires(self) -> VersionStatus {
        match self {
            Self::Promote | Self::Delete => VersionStatus::Draft,
            Self::Deprecate | Self::MakeDefault | Self::Label => VersionStatus::Stable,
        }
    }

    /// Why the move needs that status.
    pub fn rule(self) -> &'static str {
        match self {
            Self::Promote => "only a draft can be promoted",
            Self::Deprecate => "only a stable version can be deprecated",
            Self::MakeDefault => "the default must be stable",
            Self::Label => "labels name stable versions",
            Self::Delete => "only drafts can be deleted",
        }
    }

    /// Why `template` `version` (in `status`, the default or not) cannot take this move, if it
    /// cannot.
    pub fn refused(
        self,
        template: &str,
        version: &str,
        status: VersionStatus,
        is_default: bool,
    ) -> Option<String> {
        if status != self.requires() {
            return Some(format!("{template} {version} is {status}; {}", self.rule()));
        }
        (self == Self::Deprecate && is_default).then(|| {
            format!(
                "{template} {version} is the default; move the default first (`template default`)"
            )
        })
    }
}

/// A file of a published version, content-addressed by its sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredArtifact {
    pub kind: String,
    pub locale: Option<String>,
    pub role: Option<String>,
    pub path: String,
    pub content_type: String,
    pub sha256: String,
    pub size_bytes: i64,
}

/// The version's identity: sha256 over its artifacts sorted by path (path, sha256, size, kind,
/// locale, role, content type, one per line).
pub fn bundle_digest(artifacts: &[StoredArtifact]) -> String {
    let mut sorted: Vec<&StoredArtifact> = artifacts.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut h = Sha256::new();
    for a in sorted {
        h.update(format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            a.path,
            a.sha256,
            a.size_bytes,
            a.kind,
            a.locale.as_deref().unwrap_or("-"),
            a.role.as_deref().unwrap_or("-"),
            a.content_type
        ));
    }
    hex(&h.finalize())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateVersion {
    pub id: i64,
    pub template: String,
    pub version: String,
    pub status: VersionStatus,
    pub digest: String,
    pub changelog: Option<String>,
    pub deprecation: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Label {
    pub label: String,
    pub version: String,
    /// Share of units (0..=100) sent to this version; 100 for a plain label.
    pub percent: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateSummary {
    pub name: String,
    pub default_version: Option<String>,
    pub versions: i64,
    pub labels: Vec<Label>,
}

/// The bucket (0..100) of a unit for a template's label. Raising a label's percentage only adds
/// buckets, so a unit that was in stays in.
pub fn canary_bucket(template: &str, label: &str, unit: &str) -> u8 {
    let digest = Sha256::digest(format!("{template}\0{label}\0{unit}").as_bytes());
    let n = u64::from_be_bytes([
        digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
    ]);
    (n % 100) as u8
}

pub fn in_canary(template: &str, label: &str, unit: &str, percent: i32) -> bool {
    i32::from(canary_bucket(template, label, unit)) < percent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_version_move_asks_for_its_status_and_a_default_is_not_deprecated() {
        use VersionMove::*;
        use VersionStatus::*;
        assert_eq!(Promote.refused("t", "1.0.0", Draft, false), None);
        assert_eq!(
            Promote.refused("t", "1.0.0", Stable, false).as_deref(),
            Some("t 1.0.0 is stable; only a draft can be promoted")
        );
        assert!(Deprecate.refused("t", "1.0.0", Draft, false).is_some());
        assert_eq!(Deprecate.refused("t", "1.0.0", Stable, false), None);
        assert!(
            Deprecate
                .refused("t", "1.0.0", Stable, true)
                .is_some_and(|e| e.contains("is the default"))
        );
        for m in [MakeDefault, Label] {
            assert!(m.refused("t", "1.0.0", Deprecated, false).is_some());
            assert_eq!(m.refused("t", "1.0.0", Stable, true), None);
        }
        assert!(Delete.refused("t", "1.0.0", Stable, false).is_some());
    }

    fn entry(path: &str) -> BundleEntry {
        BundleEntry {
            kind: "master_prompt".into(),
            locale: Some("fr".into()),
            role: None,
            path: path.into(),
            content_type: "text/markdown".into(),
        }
    }

    #[test]
    fn bad_bundles_are_named() {
        let ok = BundleManifest {
            artifacts: vec![entry("fr/master.md")],
        };
        assert_eq!(check_bundle_manifest(&ok), Ok(()));
        for bad in ["../x", "/etc/passwd", "a/../../b", "", "a\\b"] {
            let m = BundleManifest {
                artifacts: vec![entry(bad)],
            };
            assert!(check_bundle_manifest(&m).is_err(), "{bad:?}");
        }
        let dup = BundleManifest {
            artifacts: vec![entry("a.md"), entry("a.md")],
        };
        assert!(check_bundle_manifest(&dup).is_err());
        let mut kind = entry("a.md");
        kind.kind = "poem".into();
        assert!(
            check_bundle_manifest(&BundleManifest {
                artifacts: vec![kind]
            })
            .is_err()
        );
        let mut locale = entry("a.md");
        locale.locale = Some("de".into());
        assert!(
            check_bundle_manifest(&BundleManifest {
                artifacts: vec![locale]
            })
            .is_err()
        );
        assert!(check_bundle_manifest(&BundleManifest { artifacts: vec![] }).is_err());
        // A path is quoted in messages, so a newline in it cannot split the error line.
        let mut newline = entry("a\nb");
        newline.role = Some("admin".into());
        let err = check_bundle_manifest(&BundleManifest {
            artifacts: vec![newline],
        });
        assert_eq!(
            err.map_err(|e| e.0),
            Err(r#"unknown role "admin" for "a\nb""#.to_owned())
        );
    }

    #[test]
    fn template_versions_are_plain_and_fit_the_stores_columns() {
        let v = |s: &str| Version::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(check_template_version(&v("1.2.3")), Ok(()));
        assert_eq!(
            check_template_version(&v("2147483647.0.2147483647")),
            Ok(())
        );
        for bad in [
            "1.0.0-rc.1",
            "1.0.0+build",
            "2147483648.0.0",
            "0.0.18446744073709551615",
        ] {
            assert!(check_template_version(&v(bad)).is_err(), "{bad}");
        }
        let err = check_template_version(&v("0.2147483648.0")).err();
        assert!(err.is_some_and(|e| e.0.contains("at most 2147483647")));
    }

    #[test]
    fn labels_are_tags_not_versions() {
        for ok in ["stable", "canary", "beta-2", "eu.prod"] {
            assert_eq!(check_label(ok), Ok(()), "{ok}");
        }
        for bad in [
            "latest",
            "1.2.3",
            "v1.2.3",
            "Canary",
            "",
            &"x".repeat(37),
            "a b",
        ] {
            assert!(check_label(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_digest_ignores_listing_order() {
        let a = StoredArtifact {
            kind: "json_config".into(),
            locale: None,
            role: None,
            path: "a.json".into(),
            content_type: "application/json".into(),
            sha256: "0".repeat(64),
            size_bytes: 3,
        };
        let mut b = a.clone();
        b.path = "b.json".into();
        assert_eq!(
            bundle_digest(&[a.clone(), b.clone()]),
            bundle_digest(&[b.clone(), a.clone()])
        );
        let mut c = b.clone();
        c.size_bytes = 4;
        assert_ne!(bundle_digest(&[a.clone(), b]), bundle_digest(&[a, c]));
    }

    #[test]
    fn canary_shares_are_close_and_sticky() {
        let units: Vec<String> = (0..10_000).map(|i| format!("clinic-{i}")).collect();
        let share = |p: i32| {
            units
                .iter()
                .filter(|u| in_canary("section7", "canary", u, p))
                .count()
        };
        let ten = share(10);
        assert!((900..=1100).contains(&ten), "{ten}");
        let thirty = share(30);
        assert!((2700..=3300).contains(&thirty), "{thirty}");
        for u in &units {
            if in_canary("section7", "canary", u, 10) {
                assert!(in_canary("section7", "canary", u, 30), "{u} dropped out");
            }
        }
    }
}
