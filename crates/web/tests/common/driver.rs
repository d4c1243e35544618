//! A WebDriver client for a real headless Chromium (Debian's chromium +
//! chromium-driver), shared by the browser tests. Screenshots go to
//! `target/screenshots/`.

use base64::Engine;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Driver {
    child: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self
            .agent
            .delete(format!("{}/session/{}", self.base, self.session))
            .call();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn call(agent: &ureq::Agent, method: &str, url: &str, body: Option<Value>) -> Value {
    let r = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        ("POST", b) => agent.post(url).send_json(b.unwrap_or(json!({}))),
        _ => agent.delete(url).call(),
    };
    let mut r = r.unwrap_or_else(|e| panic!("WebDriver {method} {url}: {e}"));
    let text = r.body_mut().read_to_string().unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    if v["value"].get("error").is_some() {
        panic!("WebDriver {method} {url}: {}", v["value"]);
    }
    v["value"].clone()
}

impl Driver {
    pub fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let started = Instant::now();
        while agent.get(format!("{base}/status")).call().is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap().keep();
        let caps = json!({ "capabilities": { "alwaysMatch": { "browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                     "--lang=zh-CN", format!("--user-data-dir={}", profile.display())]
        }}}});
        let v = call(&agent, "POST", &format!("{base}/session"), Some(caps));
        let session = v["sessionId"].as_str().unwrap().to_string();
        Driver {
            child,
            base,
            session,
            agent,
        }
    }
    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.session)
    }
    pub fn go(&self, url: &str) {
        call(
            &self.agent,
            "POST",
            &self.url("/url"),
            Some(json!({ "url": url })),
        );
    }
    pub fn find(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            let r = self
                .agent
                .post(self.url("/element"))
                .send_json(json!({ "using": "css selector", "value": css }));
            if let Ok(mut r) = r {
                let v: Value =
                    serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
                if let Some(id) = v["value"][ELEMENT].as_str() {
                    return id.to_string();
                }
            }
            if started.elapsed() > Duration::from_secs(10) {
                let src = call(&self.agent, "GET", &self.url("/source"), None);
                panic!(
                    "element {css} not found; page is:\n{}",
                    src.as_str().unwrap_or("")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    pub fn click(&self, css: &str) {
        let e = self.find(css);
        call(
            &self.agent,
            "POST",
            &self.url(&format!("/element/{e}/click")),
            None,
        );
    }
    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        call(
            &self.agent,
            "POST",
            &self.url(&format!("/element/{e}/value")),
            Some(json!({ "text": text })),
        );
    }
    /// The element's text; htmx may swap the element out between finding it
    /// and reading it, so a stale reference is looked up again.
    pub fn text(&self, css: &str) -> String {
        for _ in 0..50 {
            let e = self.find(css);
            let r = self
                .agent
                .get(self.url(&format!("/element/{e}/text")))
                .call();
            if let Ok(mut r) = r {
                let v: Value =
                    serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
                if v["value"].get("error").is_none() {
                    return v["value"].as_str().unwrap_or("").to_string();
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{css}: element kept going stale");
    }
    pub fn wait_text(&self, css: &str, want: &str) {
        let started = Instant::now();
        while !self.text(css).contains(want) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{css} never showed {want:?}; it shows {:?}",
                self.text(css)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    /// Sets a form control's value directly (selects and date inputs, whose
    /// typing rules depend on the locale).
    pub fn set(&self, css: &str, value: &str) {
        self.find(css);
        call(
            &self.agent,
            "POST",
            &self.url("/execute/sync"),
            Some(
                json!({ "script": "const e = document.querySelector(arguments[0]); e.value = arguments[1]; if (e.type === 'checkbox') { e.checked = true; }", "args": [css, value] }),
            ),
        );
    }
    /// Skips the test when the browser is missing (fails under CI instead).
    /// Signs in as `user` (with the test password) and waits for the overview.
    pub fn login(&self, s: &super::TestServer, user: &str) {
        self.go(&s.url("/logout"));
        self.type_into("#username", user);
        self.type_into("#password", super::PASSWORD);
        self.click("#login-submit");
        self.wait_text("main h1", "总览");
    }

    pub fn skip_without_browser() -> bool {
        if browser_available() {
            return false;
        }
        assert!(
            std::env::var("CI").is_err(),
            "CI must have chromium and chromium-driver installed (.ci/run)"
        );
        eprintln!("SKIPPED: chromium / chromedriver not installed");
        true
    }
    pub fn screenshot(&self, name: &str) {
        let b64 = call(&self.agent, "GET", &self.url("/screenshot"), None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

pub fn browser_available() -> bool {
    std::path::Path::new("/usr/bin/chromium").exists()
        && Command::new("chromedriver")
            .arg("--version")
            .output()
            .is_ok()
}
