//! The console's runtime against a real store, on both backends: the render loop, the loader and
//! the action task together, driven key by key on ratatui's TestBackend.

mod common;

conformance!(
    a_slow_deploy_does_not_stop_the_live_view,
    a_missing_run_is_said_once_however_often_the_store_changes,
);

mod cases {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
    use ospdeck::deploy::{DeployerConfig, DeployerKind};
    use ospdeck::domain::workflow::WorkflowType;
    use ospdeck::ops::{CreateService, EnqueueRequest, Ops, WorkflowRequest};
    use ospdeck::tui::app::App;
    use ospdeck::tui::keymap::Keymap;
    use ospdeck::tui::{ConsoleIo, LoaderSettings, drive};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use tokio::sync::{mpsc, watch};

    use super::common::{BoxError, Harness, TestResult};

    /// A console running in the background; `keys` types, `stop` ends it and hands back its state.
    struct Console {
        input: mpsc::Sender<Event>,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<Result<App, String>>,
    }

    impl Console {
        fn start(ops: Ops, settings: LoaderSettings) -> Result<Self, BoxError> {
            let keymap = Keymap::new(&BTreeMap::new(), false)?;
            let (input, input_rx) = mpsc::channel(1024);
            let (stop, stop_rx) = watch::channel(false);
            let task = tokio::spawn(async move {
                let mut terminal =
                    Terminal::new(TestBackend::new(80, 24)).map_err(|e| e.to_string())?;
                let mut app = App::new("test".into(), "operator".into(), keymap, false);
                let io = ConsoleIo::without_clipboard(input_rx, stop_rx);
                drive(&mut terminal, &mut app, ops, settings, io).await?;
                Ok(app)
            });
            Ok(Self { input, stop, task })
        }

        fn keys(&self, text: &str) {
            for c in text.chars() {
                let code = if c == '\n' {
                    KeyCode::Enter
                } else {
                    KeyCode::Char(c)
                };
                let _ = self
                    .input
                    .try_send(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)));
            }
        }

        async fn stop(self) -> Result<App, BoxError> {
            let _ = self.stop.send(true);
            Ok(self.task.await??)
        }
    }

    async fn setup(h: &Harness) -> Result<(), BoxError> {
        h.ops.create_project("acme", Some("Acme")).await?;
        h.ops
            .create_workflow(&WorkflowRequest::new(
                "acme",
                "build",
                WorkflowType::Build,
                "true",
            ))
            .await?;
        Ok(())
    }

    async fn enqueue(ops: &Ops) -> Result<i64, BoxError> {
        Ok(ops
            .enqueue_run(&EnqueueRequest {
                project: "acme",
                workflow: "build",
                ..Default::default()
            })
            .await?)
    }

    pub async fn a_slow_deploy_does_not_stop_the_live_view(h: Harness) -> TestResult {
        setup(&h).await?;
        h.ops
            .create_service(&CreateService {
                project: "acme",
                name: Some("Billing"),
                schema: Some("billing"),
                workflows: vec!["process:charge".parse()?],
                manifest: None,
            })
            .await?;
        let manifests = tempfile::tempdir()?;
        let settings = LoaderSettings {
            deployer: DeployerConfig {
                kind: DeployerKind::Command,
                deploy: Some("sleep 4".into()),
                attempts: 1,
                ..DeployerConfig::default()
            },
            manifest_dir: manifests.path().to_owned(),
            changes: None,
        };
        let console = Console::start(h.ops.clone(), settings)?;
        console.keys("1");
        tokio::time::sleep(Duration::from_millis(500)).await;
        console.keys("dy");
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The deployer sleeps for 4 s; this run must show up long before it is done.
        let id = enqueue(&h.ops).await?;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        // Not vacuous: the deploy is under way (and so would have held an inline loader).
        let deploying = h.ops.workers().await?;
        assert_eq!(
            deploying.first().map(|w| w.deployment.status),
            Some(ospdeck::domain::deployment::DeploymentStatus::Deploying)
        );
        let app = console.stop().await?;
        assert!(
            app.runs.incoming.iter().any(|r| r.id == id),
            "the run enqueued during the deploy is not on screen: {:?}",
            app.runs.incoming.iter().map(|r| r.id).collect::<Vec<_>>()
        );
        assert!(
            !app.messages.iter().any(|m| m.text.starts_with("billing:")),
            "the deploy had already ended, so this proves nothing: {:?}",
            app.messages
        );
        Ok(())
    }

    pub async fn a_missing_run_is_said_once_however_often_the_store_changes(
        h: Harness,
    ) -> TestResult {
        setup(&h).await?;
        let console = Console::start(h.ops.clone(), LoaderSettings::default())?;
        console.keys(":run 99999\n");
        tokio::time::sleep(Duration::from_millis(500)).await;
        for _ in 0..4 {
            enqueue(&h.ops).await?;
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        let app = console.stop().await?;
        let said: Vec<&str> = app
            .messages
            .iter()
            .map(|m| m.text.as_str())
            .filter(|t| t.contains("99999"))
            .collect();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(app.runs.detail.is_none(), "still on the missing run");
        assert_eq!(app.runs.incoming.len(), 4, "the list kept refreshing");
        Ok(())
    }
}
