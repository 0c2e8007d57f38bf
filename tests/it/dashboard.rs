//! The `--web` dashboard in a real browser: headless Chromium (Debian's package) opens it,
//! starts the run from the page, sees live figures, stops it and quits, driven over the
//! Chrome DevTools Protocol by this test.

use crate::support::browser::Browser;
use crate::support::free_port;
use crate::support::{Args, BIN};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// True when the element exists, is shown, and is not disabled.
fn usable(id: &str) -> String {
    format!(
        "(() => {{ const b = document.getElementById('{id}'); return !!b && !b.hidden && !b.disabled \
         && b.getAttribute('aria-disabled') !== 'true'; }})()"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_starts_shows_and_stops_a_run() {
    let port = free_port();
    let out = tempfile::tempdir().expect("dir");
    // Goose's dashboard keeps the runs it reports in ./goose-runs: keep that out of the tree.
    let tool = Command::new(BIN)
        .current_dir(out.path())
        .args(
            Args::custom(3, 3, "2m")
                .tags("health")
                .with(&["--web", "--web-port", &port.to_string()])
                .words(),
        )
        .arg("--output")
        .arg(out.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lva-loadtest --web");
    let mut tool = crate::support::browser::Reaped(tool);
    // The address the tool prints, with the dashboard's control token.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let pipe = tool.0.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut stdout = String::new();
    let url = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the dashboard's address");
        stdout.push_str(&line);
        stdout.push('\n');
        if let Some(url) = line
            .strip_prefix("Web dashboard: ")
            .and_then(|rest| rest.split_whitespace().next())
        {
            break url.to_string();
        }
    };
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{port}/?token=")),
        "{url}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(&url).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the dashboard did not come up at {url}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut browser = Browser::open(&url).await;
    let page = &mut browser.page;

    // The page takes commands once its event stream is live.
    page.wait_for(
        "the page's live connection",
        "document.getElementById('connection').classList.contains('live')",
    )
    .await;
    page.wait_for("the Start button", &usable("ctrl-start"))
        .await;
    page.eval("document.getElementById('ctrl-start').click()")
        .await;
    page.wait_for(
        "the run to start",
        "document.getElementById('phase-badge').innerText.trim().toLowerCase() !== 'idle'",
    )
    .await;
    page.wait_for(
        "live users and requests per second",
        "(() => { const u = parseFloat(document.getElementById('kpi-users').innerText); \
         const r = parseFloat(document.getElementById('kpi-rps').innerText); return u >= 3 && r > 0; })()",
    )
    .await;
    // Stop from the page ends the run before its planned 2 minutes: interrupted.
    page.wait_for("the Stop button", &usable("ctrl-stop")).await;
    page.eval("document.getElementById('ctrl-stop').click()")
        .await;

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Ok(Some(status)) = tool.0.try_wait() {
            break status;
        }
        assert!(Instant::now() < deadline, "the tool did not end after Stop");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(2)) {
        stdout.push_str(&line);
        stdout.push('\n');
    }
    assert_eq!(status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("of 120 s (the dashboard's Stop)"),
        "{stdout}"
    );
    let metrics = crate::support::metrics_in(out.path(), &stdout);
    let health = metrics["measured"]["requests"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == "/health").cloned())
        .expect("health requests were measured");
    assert!(health["successes"].as_u64().unwrap_or(0) > 0, "{health}");
}
