//! The front's logs (their own test binary: tracing caches per call site
//! which subscribers want an event, so a test that installs one must not
//! share a process with tests that do not).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bkv_http::{Answer, Front, Handler, Limits, Request};

fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(raw).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// A writer the test reads back: every log line the front wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn requests_are_logged_as_json_without_secrets_or_queries() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let dispatch = tracing::Dispatch::new(subscriber);
    let front = Front::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = front.local_addr();
    let stop = front.shutdown_handle();
    let handler: Handler =
        Arc::new(|_r: Request| Box::pin(async move { Answer::text(201, "made\n") }));
    let limits = Limits {
        max_body: 10,
        ..Limits::default()
    };
    let t = std::thread::spawn(move || {
        tracing::dispatcher::with_default(&dispatch, || front.run(limits, handler).unwrap())
    });
    let ok = exchange(
        addr,
        b"POST /a/b?secret=q HTTP/1.1\r\nAuthorization: Bearer hunter2\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody",
    );
    assert!(ok.starts_with("HTTP/1.1 201"), "{ok}");
    let big = exchange(addr, b"POST /big HTTP/1.1\r\nContent-Length: 11\r\n\r\n");
    assert!(big.starts_with("HTTP/1.1 413"), "{big}");
    stop.shutdown();
    t.join().unwrap();
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |level: &str, path: &str| {
        lines
            .iter()
            .find(|l| l["level"] == level && l["fields"]["path"] == path)
    };
    let request =
        find("DEBUG", "/a/b").unwrap_or_else(|| panic!("the answered request is logged: {text}"));
    assert_eq!(request["fields"]["method"], "POST");
    assert_eq!(request["fields"]["status"], 201);
    assert!(request["fields"]["micros"].is_u64());
    let refused =
        find("WARN", "/big").unwrap_or_else(|| panic!("the refused request is logged: {text}"));
    assert_eq!(refused["fields"]["status"], 413);
    let said = |message: &str| {
        lines
            .iter()
            .any(|l| l["level"] == "INFO" && l["fields"]["message"] == message)
    };
    assert!(said("serving HTTP"), "{text}");
    assert!(said("HTTP front stopped"), "{text}");
    assert!(
        !text.contains("hunter2") && !text.contains("secret=q") && !text.contains("body\""),
        "{text}"
    );
}
