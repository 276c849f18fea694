//! `template …`: publish, lifecycle, resolve.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::output::{self, Unit, emit, opt, table, time};
use super::services::already;
use super::{Cli, CliError, CliResult, connect, resolve_config};
use crate::artifacts::{ArtifactStore, FsArtifactStore, S3ArtifactStore};
use crate::config::read_file_config;
use crate::domain::template::{
    BUNDLE_MANIFEST, BundleManifest, MAX_BUNDLE_MANIFEST_BYTES, VersionStatus,
};
use crate::ops::{DEFAULT_GC_GRACE, GcRequest, Ops, PublishRequest, Selector};
use crate::ops::{ResolveRequest, Resolver, ResolverConfig};
use crate::store::StoreOptions;

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Publish a bundle folder (its manifest.json lists the artifacts) as a new version
    Publish {
        /// The bundle folder, with its manifest.json
        #[arg(value_hint = clap::ValueHint::DirPath)]
        dir: PathBuf,
        /// Template name (a new name creates the template)
        #[arg(long, value_name = "NAME", add = super::completions::templates())]
        template: String,
        /// The new version (semver, e.g. 1.2.0)
        #[arg(long)]
        version: String,
        /// The project a new template joins: its members publish and govern it by role. Without
        /// it a new template is shared, and only an administrator may publish or govern it
        #[arg(long, value_name = "KEY", add = super::completions::projects())]
        project: Option<String>,
        /// draft (default) or stable
        #[arg(long, value_parser = parse_status)]
        status: Option<VersionStatus>,
        /// What changed in this version, kept with it
        #[arg(long, value_name = "TEXT")]
        changelog: Option<String>,
        /// Make it the default version (needs --status stable)
        #[arg(long)]
        set_default: bool,
        /// Point this label at it, e.g. canary (needs --status stable)
        #[arg(long)]
        label: Option<String>,
    },
    /// Templates with their default version, version count and labels
    List,
    /// Versions of a template, in semver order
    Versions {
        /// Template name
        #[arg(add = super::completions::templates())]
        template: String,
    },
    /// Draft → stable
    Promote {
        /// Template name
        #[arg(add = super::completions::templates())]
        template: String,
        /// The draft version to make stable
        version: String,
    },
    /// Stable → deprecated (still resolvable when pinned exactly)
    Deprecate {
        /// Template name
        #[arg(add = super::completions::templates())]
        template: String,
        /// The stable version to deprecate
        version: String,
        /// Why, or what to use instead, kept with the version
        #[arg(long)]
        message: Option<String>,
    },
    /// Move the default pointer (rollback is moving it back)
    Default {
        /// Template name
        #[arg(add = super::completions::templates())]
        template: String,
        /// The stable version to make the default
        version: String,
    },
    /// Point a label at a version; --percent makes it a canary for that share of units
    Label {
        /// Template name
        #[arg(add = super::completions::templates())]
        template: String,
        /// Label name: 1 to 36 of a-z, 0-9, '_', '.', '-' (not `latest`, not a version)
        label: String,
        /// The version it names
        version: String,
        /// Share of units (0 to 100) the label sends to this version (default: all)
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        percent: Option<i32>,
    },
    /// Artifacts added, removed, changed between two versions
    Diff {
        /// Template name
        #[arg(add = super::completions::templates())]
        template: String,
        /// The older version
        from: String,
        /// The newer version
        to: String,
        /// Exit 1 when the versions differ and 0 when they are the same, as `git diff --exit-code`
        #[arg(long)]
        exit_code: bool,
    },
    /// Delete a draft version
    Delete {
        /// Template name
        #[arg(add = super::completions::templates())]
        template: String,
        /// The draft version to delete
        version: String,
    },
    /// Which version a request means, and a verified local file for each artifact
    Resolve {
        /// Template name
        #[arg(add = super::completions::templates())]
        template: String,
        /// Exactly this version (default: the default version)
        #[arg(long, conflicts_with = "label")]
        version: Option<String>,
        /// The version this label names
        #[arg(long)]
        label: Option<String>,
        /// Only artifacts of this locale, and those without one (default: every artifact)
        #[arg(long)]
        locale: Option<String>,
        /// A unit key (clinic, tenant…) for canary labels: the same unit always gets the same answer
        #[arg(long)]
        unit: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Remove them; without it, only list what would be removed and how many bytes
    #[arg(long)]
    pub delete: bool,
    /// Keep whatever was written more recently than this, as a publish in flight has stored its
    /// files but not yet committed its version: 90s, 30m, 1h (the default), 2d, or seconds
    #[arg(long, value_name = "AGE")]
    pub older_than: Option<String>,
}

/// `90s`, `30m`, `1h`, `2d`, or a plain number of seconds.
fn parse_age(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let bad = || format!("invalid age {text:?}: a whole number with s, m, h or d, e.g. 1h");
    let seconds_per = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        _ => return Err(bad()),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(seconds_per))
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

/// `ospdeck gc`: the age is checked before the store is opened, so bad input touches nothing.
pub async fn gc(cli: &Cli, options: &StoreOptions, args: &GcArgs) -> CliResult<ExitCode> {
    let older_than = match &args.older_than {
        Some(text) => parse_age(text).map_err(CliError::usage)?,
        None => DEFAULT_GC_GRACE,
    };
    let (store, resolver) = artifact_settings(cli)?;
    let ops = connect(cli, options).await?;
    let report = ops
        .collect_garbage(
            store,
            &GcRequest {
                older_than,
                delete: args.delete,
                cache_dir: Some(&resolver.cache_dir),
            },
        )
        .await?;
    emit(cli.json, &report, || {
        let mut out = format!(
            "{} {} files ({} bytes) from {}; kept {} referenced objects and {} written in the \
             last {}s",
            if report.dry_run {
                "dry run: would remove"
            } else {
                "removed"
            },
            report.count,
            report.bytes,
            report.store,
            report.referenced,
            report.recent,
            report.older_than_secs
        );
        if !report.removed.is_empty() {
            out.push('\n');
            out.push_str(&table(
                &["KIND", "BYTES", "NAME"],
                report.removed.iter().map(|item| {
                    vec![
                        item.kind.as_str().to_owned(),
                        item.size_bytes.to_string(),
                        item.name.clone(),
                    ]
                }),
            ));
            if report.dry_run {
                out.push_str("\nrun `ospdeck gc --delete` to remove them");
            }
        }
        out
    });
    Ok(ExitCode::SUCCESS)
}

fn parse_status(s: &str) -> Result<VersionStatus, String> {
    s.parse().map_err(|e: crate::domain::InvalidInput| e.0)
}

/// The artifact store and resolver settings of config.toml (and OSPDECK_TEMPLATE_REMOTE).
pub fn artifact_settings(cli: &Cli) -> CliResult<(Arc<dyn ArtifactStore>, ResolverConfig)> {
    let resolved = resolve_config(cli)?;
    let config = read_file_config(&resolved.paths.config_file)
        .map_err(|e| CliError::validation(e.to_string()))?
        .map(|c| c.artifacts)
        .unwrap_or_default();
    let max = config.max_artifact_bytes;
    let store: Arc<dyn ArtifactStore> = match &config.s3 {
        Some(s3) => Arc::new(
            S3ArtifactStore::new(s3)
                .map_err(|e| CliError::validation(format!("bad [artifacts.s3] settings: {e}")))?
                .with_max_object_bytes(max),
        ),
        None => Arc::new(
            FsArtifactStore::new(
                config
                    .dir
                    .clone()
                    .unwrap_or_else(|| resolved.paths.data_dir.join("artifacts")),
            )
            .with_max_object_bytes(max),
        ),
    };
    let env_off = std::env::var("OSPDECK_TEMPLATE_REMOTE")
        .map(|v| matches!(v.trim(), "off" | "0" | "false" | "no"))
        .unwrap_or(false);
    let remote: Option<Arc<dyn ArtifactStore>> = if config.remote && !env_off {
        Some(store.clone())
    } else {
        None
    };
    Ok((
        store,
        ResolverConfig {
            remote,
            cache_dir: config
                .cache_dir
                .unwrap_or_else(|| resolved.paths.cache_dir.join("artifacts")),
            fallback_dir: config.fallback_dir,
            pointer_ttl: Duration::from_secs(config.pointer_ttl_secs),
        },
    ))
}

/// Bytes stored after each file of a bundle, in its manifest's order, starting at 0: the publish
/// progress shows bytes and throughput from it. Empty when the manifest cannot be read (the
/// publish then says why); nothing that could block (a FIFO) is opened.
fn bundle_sizes(dir: &Path) -> Vec<u64> {
    let manifest = dir.join(BUNDLE_MANIFEST);
    let readable = std::fs::metadata(&manifest)
        .is_ok_and(|m| m.is_file() && m.len() <= MAX_BUNDLE_MANIFEST_BYTES);
    let Some(bundle) = readable
        .then(|| std::fs::read(&manifest).ok())
        .flatten()
        .and_then(|bytes| serde_json::from_slice::<BundleManifest>(&bytes).ok())
    else {
        return Vec::new();
    };
    let mut total = 0;
    std::iter::once(0)
        .chain(bundle.artifacts.iter().map(|a| {
            total += std::fs::metadata(dir.join(&a.path)).map_or(0, |m| m.len());
            total
        }))
        .collect()
}

pub async fn template(cli: &Cli, ops: &Ops, cmd: &TemplateCommand) -> CliResult<ExitCode> {
    let json = cli.json;
    match cmd {
        TemplateCommand::Publish {
            dir,
            template,
            version,
            project,
            status,
            changelog,
            set_default,
            label,
        } => {
            let (store, _) = artifact_settings(cli)?;
            let sizes = bundle_sizes(dir);
            let bar = output::progress(
                !json && std::io::stderr().is_terminal(),
                &format!("publishing {template} {version}"),
                sizes.last().copied().unwrap_or(0),
                Unit::Bytes,
            );
            let v = ops
                .publish_bundle(
                    dir,
                    &PublishRequest {
                        template,
                        version,
                        project: project.as_deref(),
                        status: *status,
                        changelog: changelog.as_deref(),
                        set_default: *set_default,
                        label: label.as_deref(),
                    },
                    store,
                    // Files are stored in the manifest's order: bytes done follow files done.
                    &|done, total| {
                        if sizes.len() as u64 == total + 1 {
                            bar.set_position(sizes[done as usize]);
                        }
                    },
                )
                .await?;
            bar.finish_and_clear();
            let view = ops.version_view(&v.template, &v.version).await?;
            emit(json, &view, || {
                format!(
                    "published {} {} ({}), digest {}",
                    v.template, v.version, v.status, v.digest
                )
            });
        }
        TemplateCommand::List => {
            let list = ops.list_templates().await?;
            emit(json, &list, || {
                table(
                    &["TEMPLATE", "DEFAULT", "VERSIONS", "LABELS"],
                    list.iter().map(|t| {
                        vec![
                            t.name.clone(),
                            opt(&t.default_version),
                            t.versions.to_string(),
                            t.labels
                                .iter()
                                .map(|l| {
                                    if l.percent < 100 {
                                        format!("{}={}@{}%", l.label, l.version, l.percent)
                                    } else {
                                        format!("{}={}", l.label, l.version)
                                    }
                                })
                                .collect::<Vec<_>>()
                                .join(" "),
                        ]
                    }),
                )
            });
        }
        TemplateCommand::Versions { template } => {
            let versions = ops.version_views(template).await?;
            emit(json, &versions, || {
                table(
                    &[
                        "VERSION",
                        "STATUS",
                        "POINTERS",
                        "DIGEST",
                        "BY",
                        "CREATED",
                        "CHANGELOG",
                    ],
                    versions.iter().map(|view| {
                        let v = &view.version;
                        let mut pointers: Vec<String> = view
                            .labels
                            .iter()
                            .map(|l| {
                                if l.percent < 100 {
                                    format!("{}@{}%", l.name, l.percent)
                                } else {
                                    l.name.clone()
                                }
                            })
                            .collect();
                        if view.is_default {
                            pointers.insert(0, "default".to_owned());
                        }
                        vec![
                            v.version.clone(),
                            v.status.to_string(),
                            pointers.join(" "),
                            v.digest[..12.min(v.digest.len())].to_owned(),
                            v.created_by.clone(),
                            time(&v.created_at),
                            opt(&v.changelog),
                        ]
                    }),
                )
            });
        }
        TemplateCommand::Promote { template, version } => {
            let v = ops.promote_version_applied(template, version).await?;
            emit(json, &v, || {
                let already = already(v.outcome);
                format!("{template} {} is {already}stable", v.value.version.version)
            });
        }
        TemplateCommand::Deprecate {
            template,
            version,
            message,
        } => {
            let v = ops
                .deprecate_version(template, version, message.as_deref())
                .await?;
            let view = ops.version_view(template, &v.version).await?;
            emit(json, &view, || {
                format!("{template} {} is deprecated", v.version)
            });
        }
        TemplateCommand::Default { template, version } => {
            let v = ops.set_default_applied(template, version).await?;
            emit(json, &v, || {
                let already = already(v.outcome);
                format!("{template} default is {already}{}", v.value.version.version)
            });
        }
        TemplateCommand::Label {
            template,
            label,
            version,
            percent,
        } => {
            let v = ops
                .set_label_applied(template, label, version, *percent)
                .await?;
            emit(json, &v, || {
                let (version, share) = (&v.value.version.version, percent.unwrap_or(100));
                if v.outcome.is_already() {
                    format!("{template} {label} is already {version} ({share}%)")
                } else {
                    format!("{template} {label} → {version} ({share}%)")
                }
            });
        }
        TemplateCommand::Diff {
            template,
            from,
            to,
            exit_code,
        } => {
            let changes = ops.template_diff(template, from, to).await?;
            emit(json, &changes, || {
                if changes.is_empty() {
                    return format!("{from} and {to} have the same artifacts");
                }
                changes
                    .iter()
                    .map(|c| format!("{:<8} {}", c.change, c.path))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            return Ok(super::services::diff_status(*exit_code, changes.is_empty()));
        }
        TemplateCommand::Delete { template, version } => {
            // The answer is the version as it was: after the delete there is nothing to read.
            let deleted = ops.version_view(template, version).await?;
            ops.delete_draft(template, version).await?;
            emit(json, &deleted, || {
                format!("deleted draft {template} {}", deleted.version.version)
            });
        }
        TemplateCommand::Resolve {
            template,
            version,
            label,
            locale,
            unit,
        } => {
            let (_, config) = artifact_settings(cli)?;
            let resolver = Resolver::new(ops.clone(), config);
            let selector = match (version, label) {
                (Some(v), _) => Selector::Version(v.clone()),
                (None, Some(l)) => Selector::Label(l.clone()),
                (None, None) => Selector::Default,
            };
            let r = resolver
                .resolve(&ResolveRequest {
                    template: template.clone(),
                    selector,
                    locale: locale.clone(),
                    unit: unit.clone(),
                })
                .await?;
            emit(json, &r, || {
                let mut out = format!("{} {} (digest {})\n", r.template, r.version, r.digest);
                out.push_str(&table(
                    &["PATH", "KIND", "LOCALE", "SOURCE", "SHA256", "FILE"],
                    r.artifacts.iter().map(|a| {
                        vec![
                            a.path.clone(),
                            a.kind.clone(),
                            opt(&a.locale),
                            format!("{:?}", a.source).to_lowercase(),
                            a.sha256[..12.min(a.sha256.len())].to_owned(),
                            a.file.display().to_string(),
                        ]
                    }),
                ));
                out
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_take_a_unit_or_plain_seconds() {
        assert_eq!(parse_age("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_age("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_age("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_age("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_age("0"), Ok(Duration::ZERO));
        for bad in ["", "h", "1w", "-1h", "1.5h", "1 h", "99999999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad:?}");
        }
    }
}
