//! The Services and Manifests panes: what they hold, and the two editors (a service form and a
//! manifest JSON editor) validated as the operator types.

use ratatui::style::{Modifier, Style};
use ratatui_textarea::TextArea;
use serde_json::Value;

use crate::domain::manifest::{
    FieldChange, Manifest, ManifestHead, ManifestStatus, parse_manifest,
};
use crate::domain::service::{WorkflowSpec, check_schema_name, check_service_name};
use crate::domain::template::StoredArtifact;
use crate::ops::{ServiceOverview, VersionRow};

#[derive(Debug, Default)]
pub struct Catalog {
    pub services: Vec<ServiceOverview>,
    pub loaded: bool,
    pub selected: usize,
    /// The service the Manifests pane shows.
    pub service: Option<String>,
    pub history: Vec<ManifestHead>,
    pub version_selected: usize,
    /// The content of the version on screen.
    pub content: Option<Manifest>,
    /// A diff on screen instead of the content: (from, to, changes).
    pub diff: Option<(String, String, Vec<FieldChange>)>,
    pub versions: Vec<VersionRow>,
    pub versions_loaded: bool,
    pub version_row: usize,
    /// The files of the version on screen: (template, version, artifacts).
    pub artifacts: Option<(String, String, Vec<StoredArtifact>)>,
    /// `:template NAME` before the versions arrived: select its newest version when they do.
    pub wanted_template: Option<String>,
}

impl Catalog {
    pub fn selected_service(&self) -> Option<&ServiceOverview> {
        self.services.get(self.selected)
    }

    pub fn selected_version(&self) -> Option<&ManifestHead> {
        self.history.get(self.version_selected)
    }

    pub fn governing(&self) -> Option<&ManifestHead> {
        self.history
            .iter()
            .find(|m| matches!(m.status, ManifestStatus::Active | ManifestStatus::Locked))
    }

    pub fn set_services(&mut self, services: Vec<ServiceOverview>) {
        let keep = self.selected_service().map(|s| s.service.id);
        self.services = services;
        self.loaded = true;
        self.selected = keep
            .and_then(|id| self.services.iter().position(|s| s.service.id == id))
            .unwrap_or(self.selected)
            .min(self.services.len().saturating_sub(1));
    }

    /// New history for `schema`; the version on screen stays selected if it still exists.
    pub fn set_manifests(
        &mut self,
        schema: String,
        history: Vec<ManifestHead>,
        content: Option<Manifest>,
    ) {
        // The operator's choice outlives every refresh (a worker's heartbeat is enough to cause
        // one); the content's version (the governing one at first) only when nothing is chosen.
        let same_service = self.service.as_deref() == Some(schema.as_str());
        let keep = same_service
            .then(|| self.selected_version().map(|v| v.version.clone()))
            .flatten()
            .or_else(|| content.as_ref().map(|m| m.version.clone()));
        self.service = Some(schema);
        self.history = history;
        self.version_selected = keep
            .and_then(|v| self.history.iter().position(|m| m.version == v))
            .or_else(|| {
                self.history.iter().position(|m| {
                    matches!(m.status, ManifestStatus::Active | ManifestStatus::Locked)
                })
            })
            .unwrap_or(0);
        if content.is_some() {
            self.content = content;
        }
    }

    pub fn move_service(&mut self, delta: i64) {
        if !self.services.is_empty() {
            let last = self.services.len() as i64 - 1;
            self.selected = (self.selected as i64 + delta).clamp(0, last) as usize;
        }
    }

    pub fn selected_template_version(&self) -> Option<&VersionRow> {
        self.versions.get(self.version_row)
    }

    pub fn set_versions(&mut self, rows: Vec<VersionRow>) {
        let keep = self
            .selected_template_version()
            .map(|r| (r.version.template.clone(), r.version.version.clone()));
        self.versions = rows;
        self.versions_loaded = true;
        if let Some(name) = self.wanted_template.take() {
            if let Some(i) = self
                .versions
                .iter()
                .position(|r| r.version.template == name)
            {
                self.version_row = i;
                return;
            }
        }
        self.version_row = keep
            .and_then(|(t, v)| {
                self.versions
                    .iter()
                    .position(|r| r.version.template == t && r.version.version == v)
            })
            .unwrap_or(self.version_row)
            .min(self.versions.len().saturating_sub(1));
    }

    pub fn move_template_version(&mut self, delta: i64) {
        if !self.versions.is_empty() {
            let last = self.versions.len() as i64 - 1;
            self.version_row = (self.version_row as i64 + delta).clamp(0, last) as usize;
        }
    }

    pub fn move_version(&mut self, delta: i64) {
        if !self.history.is_empty() {
            let last = self.history.len() as i64 - 1;
            self.version_selected = (self.version_selected as i64 + delta).clamp(0, last) as usize;
        }
    }
}

/// The manifest JSON editor (ratatui-textarea), checked against the manifest rules on every key.
pub struct ManifestEditor {
    pub schema: String,
    pub textarea: TextArea<'static>,
    /// None when the text is a valid manifest for the service.
    pub problem: Option<String>,
}

impl ManifestEditor {
    pub fn new(schema: &str, content: &Value) -> Self {
        let text = serde_json::to_string_pretty(content).unwrap_or_else(|_| "{}".into());
        let mut textarea = TextArea::new(text.lines().map(str::to_owned).collect());
        textarea.set_cursor_line_style(Style::default().add_modifier(Modifier::UNDERLINED));
        let mut editor = Self {
            schema: schema.to_owned(),
            textarea,
            problem: None,
        };
        editor.validate();
        editor
    }

    pub fn text(&self) -> String {
        self.textarea.lines().join("\n")
    }

    pub fn validate(&mut self) {
        self.problem = parse_manifest(&self.text(), &self.schema)
            .err()
            .map(|e| e.0);
    }
}

pub const FORM_FIELDS: [&str; 4] = ["project", "name", "schema", "workflows"];

/// The service form: four one-line fields, checked as the operator types.
pub struct ServiceForm {
    pub fields: [TextArea<'static>; 4],
    pub focus: usize,
    pub problem: Option<String>,
}

impl ServiceForm {
    pub fn new(project: &str) -> Self {
        let field = |text: &str| {
            let mut field = TextArea::new(vec![text.to_owned()]);
            field.set_cursor_line_style(Style::default());
            field
        };
        let mut form = Self {
            fields: [field(project), field(""), field(""), field("")],
            focus: 0,
            problem: None,
        };
        form.set_focus(if project.is_empty() { 0 } else { 1 });
        form.validate();
        form
    }

    /// Moves the focus; only the focused field shows its cursor.
    pub fn set_focus(&mut self, focus: usize) {
        self.focus = focus % self.fields.len();
        for (i, field) in self.fields.iter_mut().enumerate() {
            field.set_cursor_style(if i == self.focus {
                Style::default().add_modifier(Modifier::REVERSED)
            } else {
                Style::default()
            });
        }
    }

    pub fn value(&self, i: usize) -> String {
        self.fields[i].lines().join("").trim().to_owned()
    }

    /// `processBilling:calculateCharges,sendInvoice handlePayment:pay` (space or ';' between).
    pub fn workflows(&self) -> Result<Vec<WorkflowSpec>, String> {
        self.value(3)
            .split([' ', ';'])
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<WorkflowSpec>().map_err(|e| e.0))
            .collect()
    }

    pub fn validate(&mut self) {
        self.problem = (|| {
            if self.value(0).is_empty() {
                return Some("project: which project the service belongs to".to_owned());
            }
            if let Err(e) = check_service_name(&self.value(1)) {
                return Some(e.0);
            }
            if let Err(e) = check_schema_name(&self.value(2)) {
                return Some(e.0);
            }
            self.workflows().err()
        })();
    }
}
