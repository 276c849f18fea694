//! The catalog side of the console without a terminal: a service's detail (drift, registry,
//! queues, deployments with their steps), writes that ask first and refuse up front what the rules
//! forbid, unsaved edits that ask before Esc drops them, and proposing manifests (continuing a
//! draft, the bump level, $EDITOR's answer). Snapshots at 80×24 and 160×48.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ospdeck::domain::deployment::{
    DeployAttempt, DeployStep, DeploymentStatus, Liveness, WorkerDeployment,
};
use ospdeck::domain::manifest::{
    Bump, Drift, Manifest, ManifestContent, ManifestHead, ManifestStatus, drift,
};
use ospdeck::domain::run::{Run, RunStatus};
use ospdeck::domain::service::Service;
use ospdeck::domain::template::{TemplateVersion, VersionStatus};
use ospdeck::domain::worker::QueueStat;
use ospdeck::domain::workflow::{Workflow, WorkflowType};
use ospdeck::ops::{ServiceDetail, ServiceOverview, VersionRow};
use ospdeck::tui::app::{App, Data, Effect, Gone, Mode, Pane};
use ospdeck::tui::keymap::Keymap;
use ospdeck::tui::view::{self, Theme};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const SCHEMA: &str = "billing_core";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 9, 30, 0)
        .single()
        .unwrap_or_default()
}

fn app() -> App {
    let keymap = Keymap::new(&BTreeMap::new(), false).unwrap_or_else(|e| panic!("{e}"));
    let mut app = App::new(
        "sqlite:///tmp/o.db".into(),
        "operator".into(),
        keymap,
        false,
    );
    app.offset = FixedOffset::east_opt(0).unwrap_or_else(|| panic!("offset"));
    app.set_clock(t0());
    app
}

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn code(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

fn press(app: &mut App, keys: &str) -> Vec<Effect> {
    keys.chars().flat_map(|c| app.on_key(key(c))).collect()
}

fn asked(app: &App) -> Option<(&Effect, &str)> {
    match &app.mode {
        Mode::Confirm(c) => Some((&c.effect, c.question.as_str())),
        _ => None,
    }
}

fn message(app: &App) -> String {
    app.message
        .as_ref()
        .map(|(_, m)| m.clone())
        .unwrap_or_default()
}

fn screen(app: &mut App, width: u16, height: u16) -> String {
    app.set_screen(width, height);
    let mut terminal =
        Terminal::new(TestBackend::new(width, height)).unwrap_or_else(|e| panic!("{e}"));
    terminal
        .draw(|f| view::render(f, app, Theme::default()))
        .unwrap_or_else(|e| panic!("{e}"));
    terminal.backend().to_string()
}

fn snap(name: &str, make: impl Fn() -> App) {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut app = make();
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), screen(&mut app, w, h));
    }
}

fn head(id: i64, version: &str, status: ManifestStatus) -> ManifestHead {
    ManifestHead {
        id,
        service_id: 7,
        version: version.into(),
        status,
        locked_fields: vec!["service_id".into(), "schema_name".into()],
        created_by: "operator".into(),
        created_at: t0() - Duration::hours(id),
    }
}

fn service() -> Service {
    Service {
        id: 7,
        project_id: 1,
        project: "telecom".into(),
        name: "Billing Core".into(),
        schema: SCHEMA.into(),
        created_by: "operator".into(),
        created_at: t0() - Duration::days(3),
    }
}

fn deployment(manifest_id: i64, beat_secs: i64) -> WorkerDeployment {
    WorkerDeployment {
        id: 1,
        service_id: 7,
        service_schema: SCHEMA.into(),
        manifest_id: Some(manifest_id),
        manifest_path: None,
        status: DeploymentStatus::Deployed,
        attempts: 2,
        logs: None,
        deployed_at: Some(t0() - Duration::hours(2)),
        last_heartbeat: Some(t0() - Duration::seconds(beat_secs)),
        worker_id: Some("billing-w1".into()),
        worker_version: Some("0.1.0".into()),
        updated_at: t0(),
    }
}

fn step(attempt: i32, kind: DeployStep, exit: i32, output: &str, mins_ago: i64) -> DeployAttempt {
    DeployAttempt {
        attempt,
        step: kind,
        exit_code: Some(exit),
        output: output.into(),
        started_at: t0() - Duration::minutes(mins_ago),
        finished_at: t0() - Duration::minutes(mins_ago) + Duration::milliseconds(2_400),
    }
}

fn run(id: i64, workflow: &str, status: RunStatus, mins_ago: i64) -> Run {
    Run {
        id,
        project_id: 1,
        project: "telecom".into(),
        workflow_id: 1,
        workflow: workflow.into(),
        queue: format!("{SCHEMA}-tasks"),
        status,
        priority: 0,
        payload: serde_json::json!({}),
        payload_error: None,
        attempt: 1,
        max_attempts: 3,
        worker_id: None,
        lease_expires_at: None,
        run_after: t0(),
        cancel_requested: false,
        exit_code: None,
        error: None,
        retry_of: None,
        created_at: t0() - Duration::minutes(mins_ago),
        claimed_at: None,
        started_at: None,
        finished_at: None,
    }
}

/// `billing_core`: 1.1.0 active, 1.2.0 a draft; its worker deployed 1.0.0 (drift) and beats.
fn detail(deployed_manifest: i64) -> ServiceDetail {
    let history = vec![
        head(10, "1.0.0", ManifestStatus::Superseded),
        head(11, "1.1.0", ManifestStatus::Active),
        head(12, "1.2.0", ManifestStatus::Draft),
    ];
    let workflow = |name: &str| Workflow {
        id: 1,
        project_id: 1,
        project: "telecom".into(),
        name: format!("{SCHEMA}.{name}"),
        workflow_type: WorkflowType::Service,
        queue: format!("{SCHEMA}-tasks"),
        command: "true".into(),
        timeout_secs: 60,
        created_by: "operator".into(),
        created_at: t0(),
    };
    ServiceDetail {
        overview: ServiceOverview {
            service: service(),
            manifest: Some(history[1].clone()),
            deployment: Some(deployment(deployed_manifest, 4)),
            worker: Liveness::Alive,
        },
        recent_runs: vec![
            run(812, "billing_core.processBilling", RunStatus::Failed, 5),
            run(811, "deploy-service", RunStatus::Succeeded, 125),
        ],
        drift: drift(Some(deployed_manifest), &history),
        history,
        workflows: vec![workflow("processBilling"), workflow("nightly")],
        queues: vec![QueueStat {
            queue: format!("{SCHEMA}-tasks"),
            queued: 3,
            claimed: 1,
            running: 1,
            oldest_due: Some(t0() - Duration::minutes(7)),
            succeeded_last_hour: 57,
            failed_last_hour: 3,
        }],
        deployments: vec![
            vec![
                step(
                    1,
                    DeployStep::Deploy,
                    1,
                    "pushing image\nerror: registry timeout",
                    130,
                ),
                step(
                    2,
                    DeployStep::Deploy,
                    0,
                    "pushing image\nlayer 1/3\nlayer 2/3\nlayer 3/3\nrollout complete",
                    128,
                ),
            ],
            vec![step(
                1,
                DeployStep::Deploy,
                0,
                "old deploy\nrollout complete",
                3_000,
            )],
        ],
    }
}

fn overview(manifest: ManifestStatus) -> ServiceOverview {
    ServiceOverview {
        service: service(),
        manifest: Some(head(11, "1.1.0", manifest)),
        deployment: Some(deployment(10, 4)),
        worker: Liveness::Alive,
    }
}

/// The Services pane with billing_core listed.
fn services() -> App {
    let mut app = app();
    app.on_data(Data::Services(vec![overview(ManifestStatus::Active)]), t0());
    press(&mut app, "1");
    app
}

/// billing_core's detail, open and loaded (the worker runs 1.0.0: drift).
fn opened() -> App {
    let mut app = services();
    assert_eq!(
        app.on_key(code(KeyCode::Enter)),
        vec![Effect::OpenService(SCHEMA.into())]
    );
    app.on_data(Data::Service(Box::new(detail(10))), t0());
    app
}

// ---------------------------------------------------------------------------------------------
// The service detail
// ---------------------------------------------------------------------------------------------

#[test]
fn enter_opens_the_detail_m_goes_on_to_manifests_and_esc_back_to_the_list() {
    let mut app = opened();
    assert_eq!(app.pane, Pane::Services);
    let view = app
        .services
        .detail
        .as_ref()
        .unwrap_or_else(|| panic!("no detail"));
    assert!(view.detail.as_ref().is_some_and(|d| d.drift.is_drifted()));
    // Esc closes the detail (and the loader stops refreshing it); the list stays.
    assert_eq!(app.on_key(code(KeyCode::Esc)), vec![Effect::CloseService]);
    assert!(app.services.detail.is_none());
    assert_eq!(app.pane, Pane::Services);
    // From the detail, `m` shows the service's manifests.
    let mut app = opened();
    assert_eq!(
        press(&mut app, "m"),
        vec![Effect::LoadManifests {
            schema: SCHEMA.into(),
            version: None
        }]
    );
    assert_eq!(app.pane, Pane::Manifests);
}

#[test]
fn a_detail_for_another_service_or_a_gone_service_is_dropped() {
    let mut app = opened();
    let mut other = detail(11);
    other.overview.service.schema = "other".into();
    app.on_data(Data::Service(Box::new(other)), t0());
    assert!(
        app.services
            .detail
            .as_ref()
            .and_then(|v| v.detail.as_ref())
            .is_some_and(|d| d.overview.service.schema == SCHEMA)
    );
    app.on_data(
        Data::Gone {
            what: Gone::Service(SCHEMA.into()),
            error: "unknown service".into(),
        },
        t0(),
    );
    assert!(app.services.detail.is_none());
}

#[test]
fn another_pane_can_open_a_service_by_schema() {
    let mut app = app();
    press(&mut app, "4");
    assert_eq!(
        app.services.open_service(SCHEMA),
        vec![Effect::OpenService(SCHEMA.into())]
    );
    assert!(app.services.detail.is_some());
    // `:service NAME` is the same Goto a run's detail answers, carried out by the app.
    let mut app = services();
    press(&mut app, "4:service billing_core");
    assert_eq!(
        app.on_key(code(KeyCode::Enter)),
        vec![Effect::OpenService(SCHEMA.into())]
    );
    assert_eq!(app.pane, Pane::Services);
    assert_eq!(
        app.services.detail.as_ref().map(|v| v.schema.as_str()),
        Some(SCHEMA)
    );
    press(&mut app, ":manifests billing_core");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(app.pane, Pane::Manifests);
}

#[test]
fn deploy_from_the_detail_says_which_manifest_goes_out_and_what_runs_now() {
    let mut app = opened();
    assert!(press(&mut app, "d").is_empty());
    let (effect, question) = asked(&app).unwrap_or_else(|| panic!("no question"));
    assert_eq!(effect, &Effect::Deploy(SCHEMA.into()));
    assert_eq!(
        question,
        "Deploy the worker of billing_core with manifest 1.1.0 (the worker runs 1.0.0)? \
         The deployer runs now."
    );
    assert_eq!(press(&mut app, "y"), vec![Effect::Deploy(SCHEMA.into())]);
}

#[test]
fn the_detail_scrolls_and_enter_shows_every_line_of_output() {
    let mut app = opened();
    let short = screen(&mut app, 160, 48);
    assert!(short.contains("… 1 earlier line(s)"), "{short}");
    assert!(
        !short.contains("old deploy"),
        "older deployments show their last line"
    );
    app.on_key(code(KeyCode::Enter));
    let full = screen(&mut app, 160, 48);
    assert!(!full.contains("earlier line(s)"), "{full}");
    assert!(full.contains("old deploy"), "{full}");
    press(&mut app, "jjj");
    assert_eq!(app.services.detail.as_ref().map(|v| v.scroll), Some(3));
    press(&mut app, "g");
    assert_eq!(app.services.detail.as_ref().map(|v| v.scroll), Some(0));
}

#[test]
fn the_heartbeat_in_the_detail_turns_stale_with_the_clock() {
    let mut app = opened();
    let at = app
        .next_visible_change()
        .unwrap_or_else(|| panic!("nothing changes"));
    assert_eq!(at, t0() + Duration::seconds(1), "the beat's age ticks");
    app.set_clock(t0() + Duration::seconds(40));
    let text = screen(&mut app, 160, 48);
    assert!(text.contains("stale (beat 44s ago)"), "{text}");
}

#[test]
fn snapshot_service_detail() {
    snap("service_detail_drift", opened);
    snap("service_detail_in_step", || {
        let mut app = opened();
        app.on_data(Data::Service(Box::new(detail(11))), t0());
        app
    });
    snap("service_detail_loading", || {
        let mut app = services();
        app.on_key(code(KeyCode::Enter));
        app
    });
    snap("confirm_deploy_from_detail", || {
        let mut app = opened();
        press(&mut app, "d");
        app
    });
    snap("help_service_detail", || {
        let mut app = opened();
        press(&mut app, "?");
        app
    });
}

#[test]
fn drift_is_in_step_when_the_worker_runs_the_governing_version() {
    let d = detail(11);
    assert_eq!(
        d.drift,
        Drift::InStep {
            version: "1.1.0".into()
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Manifests: refusals up front, drafts continued, bump levels, unsaved edits, $EDITOR
// ---------------------------------------------------------------------------------------------

fn content(name: &str) -> serde_json::Value {
    let wf = "processBilling:calculateCharges"
        .parse()
        .map(|w| vec![w])
        .unwrap_or_default();
    ManifestContent::initial(name, SCHEMA, &wf).to_value()
}

fn manifest(id: i64, version: &str, status: ManifestStatus, name: &str) -> Manifest {
    Manifest {
        id,
        service_id: 7,
        service_name: name.into(),
        version: version.into(),
        status,
        content: content(name),
        locked_fields: vec!["service_id".into(), "schema_name".into()],
        created_by: "operator".into(),
        created_at: t0(),
        updated_at: t0(),
    }
}

/// billing_core's versions on screen: 1.0.0 superseded, 1.1.0 `governing` (active or locked),
/// 1.2.0 a draft; the governing content loaded.
fn manifests(governing: ManifestStatus) -> App {
    let mut app = services();
    press(&mut app, "m");
    app.on_data(
        Data::Manifests {
            schema: SCHEMA.into(),
            history: vec![
                head(10, "1.0.0", ManifestStatus::Superseded),
                head(11, "1.1.0", governing),
                head(12, "1.2.0", ManifestStatus::Draft),
            ],
            content: Some(Box::new(manifest(11, "1.1.0", governing, "Billing Core"))),
        },
        t0(),
    );
    assert_eq!(app.pane, Pane::Manifests);
    app
}

#[test]
fn activating_on_a_locked_service_is_refused_not_asked() {
    let mut app = manifests(ManifestStatus::Locked);
    press(&mut app, "j");
    assert!(press(&mut app, "A").is_empty());
    assert_eq!(app.mode, Mode::Normal);
    assert!(
        message(&app).starts_with("billing_core is locked"),
        "{}",
        message(&app)
    );
    // Locking a locked service is refused too; unlocking asks.
    press(&mut app, "L");
    assert_eq!(app.mode, Mode::Normal);
    assert!(message(&app).contains("already locked"));
    press(&mut app, "U");
    assert_eq!(
        asked(&app).map(|a| a.0),
        Some(&Effect::Unlock(SCHEMA.into()))
    );
}

#[test]
fn activating_a_draft_says_what_is_superseded() {
    let mut app = manifests(ManifestStatus::Active);
    press(&mut app, "k");
    press(&mut app, "A");
    assert!(message(&app).contains("only a draft"), "superseded 1.0.0");
    press(&mut app, "jj");
    press(&mut app, "A");
    assert_eq!(
        asked(&app),
        Some((
            &Effect::Activate {
                schema: SCHEMA.into(),
                version: "1.2.0".into()
            },
            "Activate billing_core 1.2.0? 1.1.0 active becomes superseded. The service's workflows follow it."
        ))
    );
    // Unlocking an unlocked service is refused up front.
    press(&mut app, "n");
    press(&mut app, "U");
    assert_eq!(app.mode, Mode::Normal);
    assert!(message(&app).contains("not locked"));
}

#[test]
fn propose_on_a_draft_continues_that_draft() {
    let mut app = manifests(ManifestStatus::Active);
    press(&mut app, "j");
    // The draft's content is not loaded yet: it is, and the editor opens when it arrives.
    assert_eq!(
        press(&mut app, "p"),
        vec![Effect::LoadManifests {
            schema: SCHEMA.into(),
            version: Some("1.2.0".into())
        }]
    );
    assert!(app.manifests.editor.is_none());
    app.on_data(
        Data::Manifests {
            schema: SCHEMA.into(),
            history: vec![
                head(10, "1.0.0", ManifestStatus::Superseded),
                head(11, "1.1.0", ManifestStatus::Active),
                head(12, "1.2.0", ManifestStatus::Draft),
            ],
            content: Some(Box::new(manifest(
                12,
                "1.2.0",
                ManifestStatus::Draft,
                "Billing Core Draft",
            ))),
        },
        t0(),
    );
    assert_eq!(app.mode, Mode::Editing);
    let editor = app
        .manifests
        .editor
        .as_ref()
        .unwrap_or_else(|| panic!("no editor"));
    assert_eq!(editor.base, "draft 1.2.0");
    assert!(editor.text().contains("Billing Core Draft"));
    assert_eq!(editor.target(), "draft 1.2.0 (in place)");
    // Saving changes that draft (after a question) …
    app.on_key(ctrl('s'));
    assert_eq!(
        app.manifests.editor.as_ref().map(|e| e.propose_question()),
        Some("Save your edits to draft billing_core 1.2.0?".into())
    );
    press(&mut app, "n");
    // … unless Ctrl-B chose a new version instead; it comes round to the draft again.
    app.on_key(ctrl('b'));
    assert_eq!(
        app.manifests.editor.as_ref().map(|e| e.target()),
        Some("1.2.1 (patch bump)".into())
    );
    for _ in 0..2 {
        app.on_key(ctrl('b'));
    }
    assert_eq!(
        app.manifests.editor.as_ref().map(|e| e.target()),
        Some("2.0.0 (major bump)".into())
    );
    app.on_key(ctrl('b'));
    app.on_key(ctrl('s'));
    match press(&mut app, "y").as_slice() {
        [
            Effect::ReviseDraft {
                schema,
                version,
                text,
            },
        ] => {
            assert_eq!((schema.as_str(), version.as_str()), (SCHEMA, "1.2.0"));
            assert!(text.contains("Billing Core Draft"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_bump_level_is_chosen_in_the_editor_and_saving_asks_first() {
    let mut app = manifests(ManifestStatus::Active);
    press(&mut app, "p");
    assert_eq!(
        app.manifests.editor.as_ref().map(|e| e.base.as_str()),
        Some("active 1.1.0")
    );
    app.on_key(ctrl('b'));
    assert_eq!(
        app.manifests
            .editor
            .as_ref()
            .map(|e| (e.bump, e.next.clone())),
        Some((Bump::Minor, Some("1.3.0".into())))
    );
    app.on_key(ctrl('b'));
    assert_eq!(
        app.manifests.editor.as_ref().and_then(|e| e.next.clone()),
        Some("2.0.0".into())
    );
    assert!(app.on_key(ctrl('s')).is_empty(), "saving asks first");
    // Any key but y goes back to the text.
    assert!(press(&mut app, "n").is_empty());
    assert_eq!(app.mode, Mode::Editing);
    assert!(app.manifests.editor.is_some());
    app.on_key(ctrl('s'));
    match press(&mut app, "y").as_slice() {
        [Effect::Propose { schema, bump, .. }] => {
            assert_eq!((schema.as_str(), *bump), (SCHEMA, Bump::Major));
        }
        other => panic!("{other:?}"),
    }
    assert!(app.manifests.editor.is_none());
}

#[test]
fn esc_asks_before_dropping_edits_and_not_when_nothing_changed() {
    let mut app = manifests(ManifestStatus::Active);
    press(&mut app, "p");
    assert!(app.on_key(code(KeyCode::Esc)).is_empty());
    assert!(app.manifests.editor.is_none(), "nothing typed: Esc closes");
    press(&mut app, "p");
    press(&mut app, " ");
    app.on_key(code(KeyCode::Esc));
    assert!(app.manifests.editor.is_some(), "edited: Esc asks");
    assert_eq!(app.mode, Mode::Editing);
    press(&mut app, "x");
    assert!(
        app.manifests
            .editor
            .as_ref()
            .is_some_and(|e| e.asking.is_none() && e.edited()),
        "another key keeps the edits"
    );
    app.on_key(code(KeyCode::Esc));
    press(&mut app, "y");
    assert!(app.manifests.editor.is_none());
    assert!(message(&app).contains("discarded"));
}

#[test]
fn the_service_form_asks_before_creating_and_before_dropping_edits() {
    let mut app = services();
    press(&mut app, "n");
    app.on_key(code(KeyCode::Esc));
    assert!(app.services.form.is_none(), "untouched: Esc closes");
    press(&mut app, "nBilling");
    app.on_key(code(KeyCode::Esc));
    assert!(
        app.services
            .form
            .as_ref()
            .is_some_and(|f| f.asking.is_some())
    );
    press(&mut app, "y");
    assert!(app.services.form.is_none());
}

#[test]
fn e_edits_in_editor_and_its_answer_is_proposed_after_a_question() {
    let mut app = manifests(ManifestStatus::Active);
    let effects = press(&mut app, "E");
    let [Effect::EditExternally { schema, text, bump }] = effects.as_slice() else {
        panic!("{effects:?}");
    };
    assert_eq!((schema.as_str(), *bump), (SCHEMA, Bump::Patch));
    let sent = text.clone();
    // Saved unchanged: nothing to propose.
    app.on_data(
        Data::Edited {
            schema: SCHEMA.into(),
            text: Ok(sent.clone()),
            bump: Bump::Patch,
        },
        t0(),
    );
    assert_eq!(app.mode, Mode::Normal);
    assert!(message(&app).contains("not changed"));
    // Changed and valid: asked, then proposed.
    press(&mut app, "E");
    let edited = sent.replace("Billing Core", "Billing Core II");
    app.on_data(
        Data::Edited {
            schema: SCHEMA.into(),
            text: Ok(edited.clone()),
            bump: Bump::Patch,
        },
        t0(),
    );
    assert_eq!(
        asked(&app).map(|a| a.1),
        Some("Propose billing_core 1.2.1 (a patch bump) as a new draft?")
    );
    assert_eq!(
        press(&mut app, "y"),
        vec![Effect::Propose {
            schema: SCHEMA.into(),
            text: edited.trim_end().to_owned(),
            bump: Bump::Patch
        }]
    );
    // Changed and invalid (a locked field): the console's editor opens on the text, with the
    // field named.
    press(&mut app, "E");
    let moved = sent.replace(
        "\"schema_name\": \"billing_core\"",
        "\"schema_name\": \"elsewhere\"",
    );
    app.on_data(
        Data::Edited {
            schema: SCHEMA.into(),
            text: Ok(moved),
            bump: Bump::Patch,
        },
        t0(),
    );
    assert_eq!(app.mode, Mode::Editing);
    assert_eq!(
        app.manifests.editor.as_ref().and_then(|e| e.problem.clone()),
        Some(
            "field `schema_name` is locked: it is \"billing_core\" for this service, the draft says \"elsewhere\""
                .into()
        )
    );
    // The editor failed to run: said, nothing else.
    app.on_key(code(KeyCode::Esc));
    press(&mut app, "y");
    press(&mut app, "E");
    app.on_data(
        Data::Edited {
            schema: SCHEMA.into(),
            text: Err("cannot run nano: not found".into()),
            bump: Bump::Patch,
        },
        t0(),
    );
    assert!(message(&app).contains("cannot run nano"));
}

#[test]
fn snapshot_manifest_questions() {
    snap("manifest_editor_propose_question", || {
        let mut app = manifests(ManifestStatus::Active);
        press(&mut app, "p");
        app.on_key(ctrl('b'));
        app.on_key(ctrl('s'));
        app
    });
    snap("manifest_editor_discard_question", || {
        let mut app = manifests(ManifestStatus::Active);
        press(&mut app, "p ");
        app.on_key(code(KeyCode::Esc));
        app
    });
    snap("manifest_locked_refusal", || {
        let mut app = manifests(ManifestStatus::Locked);
        press(&mut app, "jA");
        app
    });
    snap("service_form_create_question", || {
        let mut app = services();
        press(&mut app, "nBilling");
        app.on_key(code(KeyCode::Tab));
        press(&mut app, "billing");
        app.on_key(code(KeyCode::Tab));
        press(&mut app, "run:a");
        app.on_key(code(KeyCode::Enter));
        app
    });
}

// ---------------------------------------------------------------------------------------------
// Templates: refusals by the rules, label moves that say where the label goes
// ---------------------------------------------------------------------------------------------

fn version_row(version: &str, status: VersionStatus, default: bool, labels: &[&str]) -> VersionRow {
    VersionRow {
        version: TemplateVersion {
            id: 1,
            template: "tpl".into(),
            version: version.into(),
            status,
            digest: "d".repeat(64),
            changelog: None,
            deprecation: None,
            created_by: "operator".into(),
            created_at: t0(),
        },
        is_default: default,
        labels: labels.iter().map(|l| l.to_string()).collect(),
    }
}

/// tpl: 1.4.0 draft, 1.3.0 stable, 1.2.0 stable default with canary at 10%, 1.1.0 deprecated.
fn templates() -> App {
    let mut app = app();
    press(&mut app, "3");
    app.on_data(
        Data::Templates(vec![
            version_row("1.4.0", VersionStatus::Draft, false, &[]),
            version_row("1.3.0", VersionStatus::Stable, false, &[]),
            version_row(
                "1.2.0",
                VersionStatus::Stable,
                true,
                &["stable", "canary@10%"],
            ),
            version_row("1.1.0", VersionStatus::Deprecated, false, &[]),
        ]),
        t0(),
    );
    app
}

#[test]
fn template_moves_the_rules_forbid_are_refused_not_asked() {
    let mut app = templates();
    // 1.4.0 draft: deprecate, make default and label are refused.
    for (k, rule) in [
        ("X", "only a stable version can be deprecated"),
        ("*", "the default must be stable"),
        ("t", "labels name stable versions"),
    ] {
        press(&mut app, k);
        assert_eq!(app.mode, Mode::Normal, "{k}");
        assert_eq!(message(&app), format!("tpl 1.4.0 is draft; {rule}"));
    }
    // 1.3.0 stable: promoting it is refused.
    press(&mut app, "jP");
    assert_eq!(
        message(&app),
        "tpl 1.3.0 is stable; only a draft can be promoted"
    );
    // 1.2.0 the default: deprecating it is refused until the default moves.
    press(&mut app, "jX");
    assert_eq!(app.mode, Mode::Normal);
    assert!(message(&app).contains("is the default"));
    // 1.1.0 deprecated: it cannot become the default.
    press(&mut app, "j*");
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(
        message(&app),
        "tpl 1.1.0 is deprecated; the default must be stable"
    );
    // 1.3.0: make default asks, naming the current default.
    press(&mut app, "kk*");
    assert_eq!(
        asked(&app).map(|a| a.1),
        Some("Make tpl 1.3.0 the default (now 1.2.0)?")
    );
}

#[test]
fn moving_a_label_asks_with_where_it_stands_and_where_it_goes() {
    let mut app = templates();
    press(&mut app, "jt");
    press(&mut app, "canary 25");
    assert!(app.on_key(code(KeyCode::Enter)).is_empty());
    let label = Effect::Label {
        template: "tpl".into(),
        label: "canary".into(),
        version: "1.3.0".into(),
        percent: 25,
    };
    assert_eq!(
        asked(&app),
        Some((
            &label,
            "Move canary of tpl from 1.2.0 (10%) to 1.3.0 (25%)?"
        ))
    );
    assert!(press(&mut app, "n").is_empty(), "no moves nothing");
    press(&mut app, "t");
    press(&mut app, "beta");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        asked(&app).map(|a| a.1),
        Some("Label tpl 1.3.0 as beta (100%)? A new label.")
    );
    press(&mut app, "n");
    press(&mut app, "t");
    press(&mut app, "Bad_Label");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(app.mode, Mode::Normal);
    assert!(message(&app).contains("invalid label"));
}

#[test]
fn snapshot_label_move_question() {
    snap("confirm_label_move", || {
        let mut app = templates();
        press(&mut app, "jtcanary 25");
        app.on_key(code(KeyCode::Enter));
        app
    });
}
