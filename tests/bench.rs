//! `ospdeck bench queue` on both stores, small: it measures every figure it prints, loses and
//! double-claims nothing, and leaves no minimal-queue table and no backlog behind; `bench serve`,
//! small, measures every figure too. (Their speeds are the benches' own business; this checks
//! that what they report was measured.)

mod common;

conformance!(the_queue_bench_measures_every_figure_and_cleans_up);

mod cases {
    use serde_json::Value;

    use super::common::{Harness, TestResult, ospdeck_command};

    pub async fn the_queue_bench_measures_every_figure_and_cleans_up(h: Harness) -> TestResult {
        let home = tempfile::tempdir()?;
        let out = ospdeck_command(
            home.path(),
            &[
                "--db",
                &h.url,
                "--json",
                "bench",
                "queue",
                "--runs",
                "300",
                "--workers",
                "1,3",
                "--batch",
                "16",
                "--e2e-runs",
                "20",
                "--latency-samples",
                "5",
                "--backlog",
                "500",
                "--log-lines",
                "3000",
                "--repeat",
                "2",
                "--no-peer",
            ],
        )
        .output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout)?;
        let number = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
        assert_eq!(report["double_claims"], 0, "{report}");
        assert_eq!(report["lost_runs"], 0, "{report}");
        assert_eq!(report["repeat"], 2);
        let claims = report["claim_complete"]
            .as_array()
            .ok_or("no claim figures")?;
        assert_eq!(claims.len(), 2);
        for c in claims {
            for field in ["runs_per_sec", "raw_runs_per_sec", "minimal_runs_per_sec"] {
                assert!(number(&c[field]) > 0.0, "{field} in {c}");
            }
        }
        let backlog = &report["backlog"];
        assert_eq!(
            (backlog["backlog"].as_u64(), backlog["workers"].as_u64()),
            (Some(500), Some(3))
        );
        assert!(number(&backlog["percent_of_unloaded"]) > 0.0, "{backlog}");
        for field in [
            "enqueue_runs_per_sec",
            "worker_e2e_runs_per_sec",
            "spawn_per_sec",
            "insert_to_start_p50_ms",
        ] {
            assert!(number(&report[field]) > 0.0, "{field} in {report}");
        }
        let logs = &report["log_ingestion"];
        assert_eq!(
            (logs["stored"].as_i64(), logs["in_order"].as_i64()),
            (Some(3000), Some(3000))
        );
        assert!(number(&logs["worker_peak_rss_mb"]) > 0.0, "{logs}");
        assert!(report["peer"].is_null());
        assert!(report["peer_missing"].is_string());

        // Nothing left behind: the minimal queue's table is gone, the backlog was canceled.
        let minimal_tables = match h.kind() {
            ospdeck::store::StoreKind::Sqlite => {
                h.scalar(
                    "SELECT count(*) FROM sqlite_master WHERE name LIKE 'ospdeck_bench_minimal_%'",
                )
                .await
            }
            ospdeck::store::StoreKind::Postgres => {
                h.scalar(
                    "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'ospdeck_bench_minimal_%'",
                )
                .await
            }
        };
        assert_eq!(minimal_tables, 0);
        let runs = h.table("runs");
        assert_eq!(
            h.scalar(&format!(
                "SELECT count(*) FROM {runs} WHERE status IN ('queued', 'claimed', 'running')"
            ))
            .await,
            0,
            "the bench left work in the queue"
        );
        Ok(())
    }
}

/// `ospdeck bench serve`, small: a real server in a child process, real SSH consoles; every
/// figure it reports was measured, and the server outlived its clients.
#[test]
fn the_serve_bench_measures_every_figure() -> common::TestResult {
    let home = tempfile::tempdir()?;
    let out = common::ospdeck_command(
        home.path(),
        &[
            "--json",
            "bench",
            "serve",
            "--idle",
            "4",
            "--active",
            "2",
            "--idle-secs",
            "2",
            "--active-secs",
            "2",
        ],
    )
    .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["sessions"], 6, "{report}");
    for figure in [
        "handshake_p50_ms",
        "first_frame_p50_ms",
        "first_frame_p99_ms",
        "server_rss_base_mb",
        "server_rss_idle_mb",
        "server_rss_active_mb",
        "server_rss_after_mb",
    ] {
        let value = report[figure].as_f64().unwrap_or(f64::NAN);
        assert!(value > 0.0, "{figure} not measured: {report}");
    }
    for figure in [
        "idle_cpu_percent",
        "active_cpu_percent",
        "server_cpu_after_percent",
        "idle_bytes_per_session_minute",
    ] {
        let value = report[figure].as_f64().unwrap_or(f64::NAN);
        assert!(value >= 0.0, "{figure} not measured: {report}");
    }
    // A console on the Runs pane while a run changes every 100 ms is sent its changes.
    assert!(
        report["active_bytes_per_session_second"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0,
        "{report}"
    );
    assert!(
        report["run_changes"].as_u64().unwrap_or(0) >= 10,
        "{report}"
    );
    assert_eq!(report["server_alive_after"], true, "{report}");
    Ok(())
}
