//! The auditor's HTTP handlers (SPEC.md §18.2): a sequence of requests
//! (method, path and query, `Authorization` header, body) answered by
//! `bkv_auditor::http::route` over a fresh auditor, as the HTTP front
//! calls it. Publishing requests may carry the right bearer token, so the
//! fuzzer reaches the write paths too.
//!
//! The oracle: no panic; every answer has a status from the documented set
//! and a JSON body when it says `application/json`; without the token no
//! `POST` succeeds; and an auditor reopened from its directory answers
//! `GET /info` and `GET /namespaces` as before.

use arbitrary::{Arbitrary, Unstructured};
use bkv_auditor::http::route;
use bkv_auditor::Auditor;
use std::sync::Mutex;

const TOKEN: &str = "fuzz-token-0123456789";

#[derive(Arbitrary, Debug)]
enum Method {
    Get,
    Post,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Auth {
    None,
    Token,
    Header(String),
}

#[derive(Arbitrary, Debug)]
struct HttpRequest {
    method: Method,
    url: String,
    auth: Auth,
    body: Vec<u8>,
}

/// Statuses the auditor answers with (500, a storage failure, never
/// happens on a working temporary directory).
const STATUSES: &[u16] = &[200, 201, 400, 401, 404, 405, 409, 413, 422];

/// The target.
pub fn fuzz(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(requests) = Vec::<HttpRequest>::arbitrary(&mut u) else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let auditor = Mutex::new(Auditor::open(dir.path()).expect("a fresh auditor opens"));
    for r in requests.iter().take(8) {
        let method = match &r.method {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Other(m) => m.as_str(),
        };
        let authorization = match &r.auth {
            Auth::None => None,
            Auth::Token => Some(format!("Bearer {TOKEN}")),
            Auth::Header(h) => Some(h.clone()),
        };
        let answer = route(
            &auditor,
            TOKEN,
            method,
            &r.url,
            authorization.as_deref(),
            &r.body,
        );
        assert!(
            STATUSES.contains(&answer.status),
            "status {} for {method} {:?}",
            answer.status,
            r.url
        );
        if answer.content_type.contains("json") {
            assert!(
                serde_json::from_slice::<serde_json::Value>(&answer.body).is_ok(),
                "a JSON answer that is not JSON"
            );
        }
        if method == "POST" && !matches!(r.auth, Auth::Token) {
            let authorized = authorization.as_deref().is_some_and(|a| a.contains(TOKEN));
            assert!(
                authorized || answer.status == 401,
                "a POST without the token was not refused"
            );
        }
    }
    let before = |a: &Mutex<Auditor>| {
        ["/info", "/namespaces"].map(|url| route(a, TOKEN, "GET", url, None, &[]))
    };
    let answers = before(&auditor);
    drop(auditor);
    let reopened = Mutex::new(Auditor::open(dir.path()).expect("the auditor reopens"));
    assert_eq!(
        before(&reopened),
        answers,
        "the auditor's state did not survive reopening"
    );
}
