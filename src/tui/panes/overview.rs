//! The Overview pane: is anything stuck, and why. Per queue its depth, how long the oldest run
//! has waited, held runs against the slots of the live workers serving it, and the last hour's
//! outcomes; every worker with its heartbeat age; finished and failed runs per minute over the
//! last hour with deploys marked on the time axis.

use chrono::{DateTime, Utc};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Borders, Cell, Chart, Dataset, GraphType, Paragraph, Row, StatefulWidget, Table,
    TableState, Widget, Wrap,
};

use super::columns::{Col, Fitted, widest};
use super::listing::{ListRow, Listing, SortKey};
use super::runs::{RunsQuery, count_label};
use super::{Ctx, Cursor, Goto, KeyCtx, Reply, movement};
use crate::domain::age::{age, age_changes_at};
use crate::domain::deployment::{Liveness, liveness_changes_at};
use crate::domain::filter::{Field, FieldValue};
use crate::domain::worker::{QueueHealth, QueueStat, WorkerPresence};
use crate::ops::{ACTIVITY_MINUTES, QueueBoard};
use crate::tui::keymap::Action;

#[derive(Debug, Default)]
pub struct OverviewPane {
    pub board: QueueBoard,
    /// Set once the first board arrived; until then the pane says it is loading.
    pub loaded: bool,
    /// The selected queue.
    pub cursor: Cursor,
    /// The workers as listed: `/` filters them, `o` sorts them.
    pub workers: Listing<WorkerPresence>,
}

impl ListRow for WorkerPresence {
    const FIELDS: &'static [Field] = &[
        Field::text("worker"),
        Field::text("host"),
        Field::text("queue"),
        Field::text("service"),
        Field::text("version"),
        Field::number("held"),
        Field::age("beat"),
        Field::age("up"),
    ];
    const COLUMNS: &'static [&'static str] = &["worker", "beat", "held", "host", "up"];
    type Key = String;

    fn key(&self) -> String {
        self.worker_id.clone()
    }

    fn field(&self, name: &str) -> FieldValue<'_> {
        match name {
            "worker" => FieldValue::Text(&self.worker_id),
            "host" => FieldValue::Text(&self.host),
            "queue" if self.queues.is_empty() => FieldValue::Text("(every queue)"),
            "queue" => FieldValue::Texts(self.queues.iter().map(String::as_str).collect()),
            "service" => self
                .service
                .as_deref()
                .map_or(FieldValue::None, FieldValue::Text),
            "version" => FieldValue::Text(&self.version),
            "held" => FieldValue::Number(i64::from(self.runs_held)),
            "beat" => FieldValue::Time(self.heartbeat_at),
            "up" => FieldValue::Time(self.started_at),
            _ => FieldValue::None,
        }
    }

    fn words(&self) -> Vec<&str> {
        let mut words = vec![self.worker_id.as_str(), self.host.as_str()];
        words.extend(self.queues.iter().map(String::as_str));
        words.extend(self.service.as_deref());
        words
    }

    fn sort_key(&self, column: &str) -> SortKey<'_> {
        match column {
            // Oldest heartbeat first: the worker that stopped beating is the one to look at.
            "beat" => SortKey::Time(Some(self.heartbeat_at)),
            "held" => SortKey::Number(-i64::from(self.runs_held)),
            "host" => SortKey::Text(&self.host),
            "up" => SortKey::Time(Some(self.started_at)),
            _ => SortKey::Text(&self.worker_id),
        }
    }
}

/// The chart's least height: its borders, two axis rows and four rows of data.
const MIN_CHART_ROWS: u16 = 8;

impl OverviewPane {
    pub fn set_board(&mut self, board: QueueBoard, now: DateTime<Utc>) {
        let keep = self.selected_queue().map(|q| q.queue.clone());
        self.set_workers(board.workers.clone(), now);
        self.board = board;
        self.loaded = true;
        let rows = self.board.queues.len().max(1);
        self.cursor
            .follow(&self.board.queues, keep, |q| q.queue.clone(), rows);
    }

    /// Presence alone (the Overview is not on screen, or between boards).
    pub fn set_workers(&mut self, workers: Vec<WorkerPresence>, now: DateTime<Utc>) {
        let rows = workers.len().max(1);
        self.board.workers = workers.clone();
        self.workers.set_items(workers, now, rows);
    }

    pub fn selected_queue(&self) -> Option<&QueueStat> {
        self.board.queues.get(self.cursor.selected)
    }

    /// Up and down choose a queue; Enter shows its runs.
    pub fn on_action(&mut self, action: Action, _ctx: &KeyCtx) -> Reply {
        // The queue table is as tall as its rows: a page is the whole list.
        let len = self.board.queues.len();
        if let Some(delta) = movement(action, len.max(1)) {
            self.cursor.move_by(delta, len, len.max(1));
            return Reply::default();
        }
        match (action, self.selected_queue()) {
            (Action::Open, Some(q)) => Reply::goto(Goto::Runs(RunsQuery {
                text: format!("queue:{}", q.queue),
                ..RunsQuery::default()
            })),
            (Action::Sort | Action::SortReverse, _) => {
                let on = self
                    .workers
                    .cycle_sort(action == Action::SortReverse, self.workers.len().max(1));
                Reply::info(format!("workers sorted by {on}"))
            }
            _ => Reply::default(),
        }
    }

    /// Workers that beat within the stale limit at `now`.
    pub fn live_workers(&self, now: DateTime<Utc>) -> usize {
        self.board.live_workers(now)
    }

    /// Queues with work waiting and no live worker serving them.
    pub fn stalled(&self, now: DateTime<Utc>) -> Vec<&str> {
        self.board
            .queues
            .iter()
            .filter(|q| q.health(&self.board.workers, now) == QueueHealth::Stalled)
            .map(|q| q.queue.as_str())
            .collect()
    }

    /// The next moment something this pane shows changes by the clock alone: an age ticks over,
    /// a worker turns stale or missing (and with it a queue's state), a scheduled run falls due.
    pub fn next_visible_change(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let queues = self.board.queues.iter().filter_map(|q| {
            q.oldest_due
                .map(|t| if t > now { t } else { age_changes_at(now, t) })
        });
        let workers = self.board.workers.iter().flat_map(|w| {
            [
                Some(age_changes_at(now, w.heartbeat_at)),
                Some(age_changes_at(now, w.started_at)),
                liveness_changes_at(now, Some(w.heartbeat_at)),
            ]
            .into_iter()
            .flatten()
        });
        queues.chain(workers).min()
    }

    pub fn render(&self, ctx: &Ctx, frame: &mut ratatui::Frame, area: Rect) {
        let buf = frame.buffer_mut();
        if !self.loaded {
            Paragraph::new("loading…")
                .block(Block::default().borders(Borders::ALL).title(" Overview "))
                .render(area, buf);
            return;
        }
        // Each table as tall as its rows (borders and header: 3 more), the chart at least 8 rows
        // and whatever is left; when space is short, queues first: they answer "is anything
        // stuck".
        let room = area.height.saturating_sub(MIN_CHART_ROWS);
        let want_queues = self.board.queues.len().max(1) as u16 + 3;
        let want_workers = self.board.workers.len().max(1) as u16 + 3;
        let (queue_rows, worker_rows) = if want_queues + want_workers <= room {
            (want_queues, want_workers)
        } else {
            let queues = want_queues.min(room.saturating_sub(want_workers.min(4)));
            (queues, room.saturating_sub(queues))
        };
        let [queues, workers, activity] = Layout::vertical([
            Constraint::Length(queue_rows),
            Constraint::Length(worker_rows),
            Constraint::Min(MIN_CHART_ROWS),
        ])
        .areas(area);
        self.render_queues(ctx, queues, buf);
        self.render_workers(ctx, workers, buf);
        self.render_activity(ctx, activity, buf);
    }

    fn render_queues(&self, ctx: &Ctx, area: Rect, buf: &mut Buffer) {
        let stalled = self.stalled(ctx.now);
        let title = match stalled.as_slice() {
            [] => format!(" Queues ({}) ", self.board.queues.len()),
            [one] => format!(" Queues · {one} stalled: work waits, no live worker serves it "),
            many => format!(
                " Queues · {} stalled: work waits, no live worker serves them ",
                many.len()
            ),
        };
        let title_style = if stalled.is_empty() {
            Style::default()
        } else {
            ctx.theme.fg(Color::Red).add_modifier(Modifier::BOLD)
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .title(Span::styled(title, title_style));
        if self.board.queues.is_empty() {
            Paragraph::new("No run is queued or held, and none finished in the last hour.")
                .style(ctx.theme.dim())
                .block(block)
                .render(area, buf);
            return;
        }
        let queues = &self.board.queues;
        let cols = [
            Col::new(
                "QUEUE",
                widest(queues.iter().map(|q| q.queue.as_str())),
                8,
                0,
            ),
            Col::new("STATE", 9, 7, 0),
            Col::new("QUEUED", 6, 6, 0),
            Col::new("OLDEST", 6, 5, 0),
            Col::new("HELD/SLOTS", 10, 7, 0),
            Col::new("CLAIMED", 7, 7, 2),
            Col::new("DONE 1h", 7, 6, 0),
            Col::new("FAILED", 6, 6, 0),
            Col::new("FAIL%", 5, 5, 1),
        ];
        let fitted = Fitted::new(&cols, area.width.saturating_sub(2));
        let header = fitted.header();
        let widths = fitted.constraints();
        let rows = queues.iter().map(|q| {
            let health = q.health(&self.board.workers, ctx.now);
            let oldest = match q.oldest_due {
                Some(t) if t <= ctx.now => age(ctx.now, t),
                Some(_) => "later".to_owned(),
                None => "-".to_owned(),
            };
            fitted.row([
                Cell::from(q.queue.as_str()),
                Cell::from(Span::styled(health.as_str(), health_style(ctx, health))),
                // Shortened past five digits: the column is six wide, and a cut-off count would
                // show a million queued runs as 100000.
                Cell::from(count_label(q.queued)),
                Cell::from(oldest),
                Cell::from(format!(
                    "{}/{}",
                    q.claimed + q.running,
                    q.capacity(&self.board.workers, ctx.now)
                )),
                Cell::from(count_label(q.claimed)),
                Cell::from(count_label(q.succeeded_last_hour + q.failed_last_hour)),
                Cell::from(Span::styled(
                    count_label(q.failed_last_hour),
                    if q.failed_last_hour > 0 {
                        ctx.theme.fg(Color::Red)
                    } else {
                        Style::default()
                    },
                )),
                Cell::from(
                    q.failure_percent()
                        .map(|p| format!("{p}%"))
                        .unwrap_or_else(|| "-".into()),
                ),
            ])
        });
        let mut state = TableState::default()
            .with_offset(self.cursor.offset)
            .with_selected(Some(self.cursor.selected));
        StatefulWidget::render(
            Table::new(rows, widths)
                .header(header)
                .block(block)
                .row_highlight_style(ctx.theme.selected()),
            area,
            buf,
            &mut state,
        );
    }

    fn render_workers(&self, ctx: &Ctx, area: Rect, buf: &mut Buffer) {
        let workers = &self.board.workers;
        let title = if self.workers.filter_text().is_empty() {
            format!(
                " Workers ({} alive of {}) ",
                self.live_workers(ctx.now),
                workers.len()
            )
        } else {
            format!(" Workers ({}) ", self.workers.count_label())
        };
        let block = Block::default().borders(Borders::ALL).title(title);
        if workers.is_empty() {
            Paragraph::new(
                "No worker has beaten in the last hour. Start one with `ospdeck worker` \
                 (every queue) or `ospdeck worker --queue NAME`.",
            )
            .wrap(Wrap { trim: true })
            .style(ctx.theme.dim())
            .block(block)
            .render(area, buf);
            return;
        }
        let all = self.workers.items();
        let worker_width = |w: &WorkerPresence| {
            w.worker_id.chars().count() + w.service.as_ref().map_or(0, |s| s.chars().count() + 3)
        };
        let queues_width = |w: &WorkerPresence| {
            w.queues
                .iter()
                .map(|q| q.chars().count() + 1)
                .sum::<usize>()
                .max(1)
        };
        let cols = [
            Col::new(
                "WORKER",
                all.iter().map(worker_width).max().unwrap_or(6),
                12,
                0,
            ),
            Col::new("HEARTBEAT", 12, 10, 0),
            Col::new("HELD/SLOTS", 10, 5, 0),
            Col::new(
                "QUEUES",
                all.iter().map(queues_width).max().unwrap_or(1),
                8,
                0,
            ),
            Col::new("UP", 4, 3, 1),
            Col::new("HOST", widest(all.iter().map(|w| w.host.as_str())), 8, 3),
            Col::new("PID", 8, 5, 4),
            Col::new(
                "VERSION",
                widest(all.iter().map(|w| w.version.as_str())),
                5,
                2,
            ),
        ];
        let fitted = Fitted::new(&cols, area.width.saturating_sub(2));
        let header = fitted.header();
        let widths = fitted.constraints();
        let rows = self.workers.shown().map(|w| worker_row(ctx, w, &fitted));
        Widget::render(
            Table::new(rows, widths).header(header).block(block),
            area,
            buf,
        );
    }

    fn render_activity(&self, ctx: &Ctx, area: Rect, buf: &mut Buffer) {
        let minutes = ACTIVITY_MINUTES as usize;
        let mut finished = vec![0i64; minutes];
        let mut failed = vec![0i64; minutes];
        for m in &self.board.activity {
            if let Some(i) = usize::try_from(m.minutes_ago).ok().filter(|i| *i < minutes) {
                finished[i] = m.succeeded + m.failed;
                failed[i] = m.failed;
            }
        }
        let points = |counts: &[i64]| -> Vec<(f64, f64)> {
            counts
                .iter()
                .enumerate()
                .map(|(ago, n)| (-(ago as f64), *n as f64))
                .rev()
                .collect()
        };
        let finished_points = points(&finished);
        // Only minutes with failures: a dot on every empty minute's zero would read as failures.
        let failed_points: Vec<(f64, f64)> = points(&failed)
            .into_iter()
            .filter(|(_, n)| *n > 0.0)
            .collect();
        let top = finished.iter().copied().max().unwrap_or(0).max(1);
        let deploy_points: Vec<(f64, f64)> = self
            .board
            .deploys
            .iter()
            .map(|t| {
                (
                    -((ctx.now - *t).num_seconds().max(0) as f64 / 60.0),
                    top as f64,
                )
            })
            .filter(|(x, _)| *x >= -(minutes as f64))
            .collect();
        let total: i64 = finished.iter().sum();
        let total_failed: i64 = failed.iter().sum();
        // The legend is the title: a legend box inside the chart would hide the newest minutes.
        let title = Line::from(vec![
            Span::raw(" Last hour, per minute: "),
            Span::styled(format!("⣿ {total} finished"), ctx.theme.fg(Color::Green)),
            Span::raw(" · "),
            Span::styled(format!("• {total_failed} failed"), ctx.theme.fg(Color::Red)),
            Span::raw(" · "),
            Span::styled(
                format!("█ {} deploy(s) ", deploy_points.len()),
                ctx.theme.fg(Color::Cyan),
            ),
        ]);
        let mut datasets = vec![
            Dataset::default()
                .name("finished/min")
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(ctx.theme.fg(Color::Green))
                .data(&finished_points),
            Dataset::default()
                .name("failed/min")
                .marker(Marker::Dot)
                .graph_type(GraphType::Scatter)
                .style(ctx.theme.fg(Color::Red))
                .data(&failed_points),
        ];
        if !deploy_points.is_empty() {
            datasets.push(
                Dataset::default()
                    .name("deploy")
                    .marker(Marker::Block)
                    .graph_type(GraphType::Scatter)
                    .style(ctx.theme.fg(Color::Cyan))
                    .data(&deploy_points),
            );
        }
        let axis_style = ctx.theme.dim();
        Chart::new(datasets)
            .block(Block::default().borders(Borders::ALL).title(title))
            .legend_position(None)
            .x_axis(
                Axis::default()
                    .style(axis_style)
                    .bounds([-(minutes as f64 - 1.0), 0.0])
                    .labels([
                        Line::from(format!("-{}m", minutes - 1)),
                        Line::from(format!("-{}m", minutes / 2)),
                        Line::from("now"),
                    ]),
            )
            .y_axis(
                Axis::default()
                    .style(axis_style)
                    .bounds([0.0, top as f64])
                    .labels([Line::from("0"), Line::from(top.to_string())]),
            )
            .render(area, buf);
    }
}

fn worker_row<'a>(ctx: &Ctx, w: &'a WorkerPresence, fitted: &Fitted) -> Row<'a> {
    let state = w.liveness(ctx.now);
    let label = state.as_str();
    let style = ctx.theme.liveness(state);
    // What a worker that stopped beating holds now, and whether it is still up, nobody knows.
    let alive = state == Liveness::Alive;
    let cells = [
        Cell::from(match &w.service {
            Some(s) => format!("{} ({s})", w.worker_id),
            None => w.worker_id.clone(),
        }),
        Cell::from(Span::styled(
            format!("{label} {}", age(ctx.now, w.heartbeat_at)),
            style,
        )),
        Cell::from(if alive {
            format!("{}/{}", w.runs_held, w.concurrency)
        } else {
            format!("?/{}", w.concurrency)
        }),
        Cell::from(if w.queues.is_empty() {
            "*".to_owned()
        } else {
            w.queues.join(",")
        }),
        Cell::from(if alive {
            age(ctx.now, w.started_at)
        } else {
            "-".to_owned()
        }),
        Cell::from(w.host.as_str()),
        Cell::from(w.pid.to_string()),
        Cell::from(w.version.as_str()),
    ];
    fitted.row(cells)
}

fn health_style(ctx: &Ctx, health: QueueHealth) -> Style {
    match health {
        QueueHealth::Idle => ctx.theme.dim(),
        QueueHealth::Flowing => ctx.theme.fg(Color::Green),
        QueueHealth::Saturated => ctx.theme.fg(Color::Yellow),
        QueueHealth::Stalled => ctx.theme.fg(Color::Red).add_modifier(Modifier::BOLD),
    }
}
