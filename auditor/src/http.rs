//! The auditor over HTTP (SPEC.md §18.2), in the spirit of plexi's API.
//!
//! Reads are open; everything that changes the log needs
//! `Authorization: Bearer <token>` with the token given at start (the
//! scheme case-insensitive, RFC 7235; the token compared in constant time).
//! Bodies are JSON, at most 1 MiB (413 beyond), received within 5 s (408
//! beyond). [`route`] is the whole API as a pure function of the request;
//! [`Server`] runs it on the shared production front (`bkv-http`: hyper on
//! tokio, many connections at once, header and body timeouts, graceful
//! shutdown) and adds `GET /metrics` (Prometheus text).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backup_key_vault::bundle::artifact::to_hex;
use backup_key_vault::bundle::{CounterSignature, SignatureMessage, ValidationBundle};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use bkv_http::{tokio, Front, Handler, Limits, Request, ShutdownHandle};

use crate::export::parse_hex;
use crate::{Auditor, AuditorError};

/// Largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;

pub use bkv_http::Answer;

fn json_answer(status: u16, value: serde_json::Value) -> Answer {
    Answer {
        status,
        content_type: "application/json",
        body: value.to_string().into_bytes(),
    }
}

fn error(status: u16, message: impl std::fmt::Display) -> Answer {
    json_answer(status, json!({ "error": message.to_string() }))
}

fn auditor_error(e: AuditorError) -> Answer {
    let status = match e {
        AuditorError::UnknownNamespace | AuditorError::UnknownEpoch => 404,
        AuditorError::UnknownTreeSize => 404,
        AuditorError::Storage(_) => 500,
        AuditorError::NamespaceExists
        | AuditorError::EpochRepublished(_)
        | AuditorError::DigestReused => 409,
        _ => 422,
    };
    error(status, e)
}

fn text(note: Vec<u8>) -> Answer {
    Answer {
        status: 200,
        content_type: "text/plain; charset=utf-8",
        body: note,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewNamespace {
    name: String,
    root_epoch: u64,
    root_digest: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Publication {
    epoch: u64,
    /// The artifact's exact text.
    artifact: String,
    /// Optional: hex of SHA-256 of the artifact; must then be 32 bytes and
    /// match.
    digest: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCounterSignature {
    operator_key: String,
    signature: String,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn bundle_json(bundle: &ValidationBundle) -> Answer {
    match bundle.to_bytes() {
        Ok(bytes) => json_answer(
            200,
            // plexi's `SignatureResponse`, then the bundle.
            json!({
                "version": backup_key_vault::bundle::statement::CIPHERSUITE_PROTOBUF_ED25519,
                "ciphersuite": backup_key_vault::bundle::statement::CIPHERSUITE_PROTOBUF_ED25519,
                "namespace": bundle.namespace,
                "timestamp": bundle.timestamp_ms,
                "key_id": bundle.auditor_key[31],
                "serialized_message": to_hex(&bundle.statement().to_bytes()),
                "epoch": bundle.epoch,
                "timestamp_ms": bundle.timestamp_ms,
                "digest": to_hex(&bundle.digest),
                "signature": to_hex(&bundle.auditor_signature),
                "bundle": B64.encode(bytes),
            }),
        ),
        Err(e) => error(500, e),
    }
}

fn query_u64(query: &str, name: &str) -> Option<u64> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

/// A namespace in plexi's `NamespaceInfo` shape (`name`, `log_directory`,
/// `root` as `epoch/digest`, `status`, `reports_uri`, `audits_uri`,
/// `signature_version`, `ciphersuite`, `last_verified_epoch`), plus our
/// own fields (SPEC.md §18.2).
fn namespace_json(info: &crate::NamespaceInfo) -> serde_json::Value {
    let suite = backup_key_vault::bundle::statement::CIPHERSUITE_PROTOBUF_ED25519;
    json!({
        "name": info.name,
        "log_directory": null,
        "root": format!("{}/{}", info.root_epoch, to_hex(&info.root_digest)),
        "status": if info.log_size == 0 { "Initialization" } else { "Online" },
        "reports_uri": format!("/namespaces/{}/reports", info.name),
        "audits_uri": format!("/namespaces/{}/audits", info.name),
        "signature_version": suite,
        "ciphersuite": suite,
        "root_epoch": info.root_epoch,
        "root_digest": to_hex(&info.root_digest),
        "log_size": info.log_size,
        "latest_epoch": info.latest_epoch,
        "last_verified_epoch": info.latest_epoch,
    })
}

/// Answers one request. `authorization` is the request's `Authorization`
/// header, if any; `token` the bearer token publishing requires.
pub fn route(
    auditor: &Mutex<Auditor>,
    token: &str,
    method: &str,
    url: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Answer {
    let Ok(mut auditor) = auditor.lock() else {
        return error(500, "auditor state poisoned");
    };
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // RFC 7235: the scheme is case-insensitive ("bearer" is "Bearer"),
    // followed by one or more spaces and the token.
    let authorized = || {
        authorization.is_some_and(|given| {
            let Some((scheme, credentials)) = given.trim_start().split_once(' ') else {
                return false;
            };
            let credentials = credentials.trim_start_matches(' ');
            scheme.eq_ignore_ascii_case("Bearer")
                && credentials.len() == token.len()
                && bool::from(credentials.as_bytes().ct_eq(token.as_bytes()))
        })
    };
    let writes = method == "POST";
    if writes && !authorized() {
        return error(401, "publishing needs the bearer token");
    }
    let parse_body = |body: &[u8]| -> Result<serde_json::Value, Answer> {
        serde_json::from_slice(body).map_err(|e| error(400, e))
    };
    match (method, parts.as_slice()) {
        // plexi's `Configuration` (`keys`, `logs`), plus our own fields.
        ("GET", ["info"]) => json_answer(
            200,
            json!({
                "keys": [{ "public_key": auditor.public_key_hex(), "not_before": 0 }],
                "logs": auditor.namespaces().iter().map(|n| n.name.clone()).collect::<Vec<_>>(),
                "public_key": auditor.public_key_hex(),
                "ciphersuite": backup_key_vault::bundle::statement::CIPHERSUITE_PROTOBUF_ED25519,
                "namespaces": auditor.namespaces().iter().map(|n| n.name.clone()).collect::<Vec<_>>(),
            }),
        ),
        // plexi's `Namespaces`.
        ("GET", ["namespaces"]) => json_answer(
            200,
            json!({
                "namespaces": auditor.namespaces().iter().map(namespace_json).collect::<Vec<_>>(),
            }),
        ),
        ("POST", ["namespaces"]) => {
            let req: NewNamespace = match parse_body(body)
                .and_then(|v| serde_json::from_value(v).map_err(|e| error(400, e)))
            {
                Ok(r) => r,
                Err(a) => return a,
            };
            let Some(digest) = parse_hex::<32>(&req.root_digest) else {
                return auditor_error(AuditorError::BadDigest);
            };
            match auditor.register_namespace(&req.name, req.root_epoch, digest) {
                Ok(()) => json_answer(201, json!({ "name": req.name })),
                Err(e) => auditor_error(e),
            }
        }
        ("GET", ["namespaces", ns]) => match auditor.namespace(ns) {
            Ok(info) => json_answer(200, namespace_json(&info)),
            Err(e) => auditor_error(e),
        },
        ("POST", ["namespaces", ns, "audits"]) => {
            let req: Publication = match parse_body(body)
                .and_then(|v| serde_json::from_value(v).map_err(|e| error(400, e)))
            {
                Ok(r) => r,
                Err(a) => return a,
            };
            let digest = match &req.digest {
                None => None,
                Some(hex) => match parse_hex::<32>(hex) {
                    Some(d) => Some(d),
                    None => return auditor_error(AuditorError::BadDigest),
                },
            };
            match auditor.publish(
                ns,
                req.epoch,
                req.artifact.as_bytes(),
                digest.as_ref().map(|d| d.as_slice()),
                now_ms(),
            ) {
                Ok(bundle) => bundle_json(&bundle),
                Err(e) => auditor_error(e),
            }
        }
        ("GET", ["namespaces", ns, "audits", epoch]) => {
            let Ok(epoch) = epoch.parse::<u64>() else {
                return error(400, "epoch is not a number");
            };
            // plexi's `SignatureResponse` (ciphersuite 1, protobuf +
            // Ed25519; `key_id` the key's last byte, as plexi's `KeyInfo`;
            // `serialized_message` the signed protobuf), then our fields.
            let key_id = auditor.public_key()[31];
            match auditor.entry(ns, epoch) {
                Ok(e) => json_answer(
                    200,
                    json!({
                        "version": backup_key_vault::bundle::statement::CIPHERSUITE_PROTOBUF_ED25519,
                        "ciphersuite": backup_key_vault::bundle::statement::CIPHERSUITE_PROTOBUF_ED25519,
                        "namespace": ns,
                        "timestamp": e.timestamp_ms,
                        "key_id": key_id,
                        "serialized_message": to_hex(&SignatureMessage {
                            namespace: ns,
                            timestamp_ms: e.timestamp_ms,
                            epoch: e.epoch,
                            digest: e.digest,
                        }.to_bytes()),
                        "epoch": e.epoch,
                        "timestamp_ms": e.timestamp_ms,
                        "digest": to_hex(&e.digest),
                        "signature": to_hex(&e.signature),
                        "operator_key": e.counter_signature.map(|c| to_hex(&c.operator_key)),
                        "counter_signature": e.counter_signature.map(|c| to_hex(&c.signature)),
                        "artifact": String::from_utf8_lossy(&e.artifact),
                    }),
                ),
                Err(e) => auditor_error(e),
            }
        }
        ("GET", ["namespaces", ns, "audits", epoch, "bundle"]) => {
            let Ok(epoch) = epoch.parse::<u64>() else {
                return error(400, "epoch is not a number");
            };
            match auditor.bundle(ns, epoch) {
                Ok(b) => bundle_json(&b),
                Err(e) => auditor_error(e),
            }
        }
        ("POST", ["namespaces", ns, "audits", epoch, "counter-signature"]) => {
            let Ok(epoch) = epoch.parse::<u64>() else {
                return error(400, "epoch is not a number");
            };
            let req: NewCounterSignature = match parse_body(body)
                .and_then(|v| serde_json::from_value(v).map_err(|e| error(400, e)))
            {
                Ok(r) => r,
                Err(a) => return a,
            };
            let (Some(operator_key), Some(signature)) = (
                parse_hex::<32>(&req.operator_key),
                parse_hex::<64>(&req.signature),
            ) else {
                return auditor_error(AuditorError::BadCounterSignature);
            };
            let counter = CounterSignature {
                operator_key,
                signature,
            };
            match auditor.add_counter_signature(ns, epoch, counter) {
                Ok(()) => json_answer(200, json!({ "epoch": epoch })),
                Err(e) => auditor_error(e),
            }
        }
        ("GET", ["namespaces", ns, "checkpoint"]) => match auditor.checkpoint(ns) {
            Ok(note) => text(note),
            Err(e) => auditor_error(e),
        },
        ("GET", ["namespaces", ns, "checkpoints", size]) => {
            let Ok(size) = size.parse::<u64>() else {
                return error(400, "size is not a number");
            };
            match auditor.checkpoint_at(ns, size) {
                Ok(note) => text(note),
                Err(e) => auditor_error(e),
            }
        }
        ("GET", ["namespaces", ns, "consistency"]) => {
            let (Some(old), Some(new)) = (query_u64(query, "old"), query_u64(query, "new")) else {
                return error(400, "consistency needs ?old=<size>&new=<size>");
            };
            match auditor.consistency(ns, old, new) {
                Ok(proof) => json_answer(
                    200,
                    json!({
                        "old": old,
                        "new": new,
                        "hashes": proof.hashes.iter().map(|h| to_hex(h)).collect::<Vec<_>>(),
                    }),
                ),
                Err(e) => auditor_error(e),
            }
        }
        ("GET", ["namespaces", ns, "export"]) => match auditor.export(ns) {
            Ok(export) => match serde_json::to_value(&export) {
                Ok(v) => json_answer(200, v),
                Err(e) => error(500, e),
            },
            Err(e) => auditor_error(e),
        },
        ("GET" | "POST", _) => error(404, "no such endpoint"),
        _ => error(405, "method not allowed"),
    }
}

/// The limits of the auditor's front: bodies of at most [`MAX_BODY`],
/// received within 5 s; 256 connections at once.
pub fn limits() -> Limits {
    Limits {
        header_timeout: Duration::from_secs(5),
        body_timeout: Duration::from_secs(5),
        max_body: MAX_BODY,
        max_connections: 256,
        grace: Duration::from_secs(5),
    }
}

/// What `GET /metrics` reports: requests by endpoint and status.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
}

impl Metrics {
    fn count(&self, endpoint: &'static str, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((endpoint, status)).or_insert(0) += 1;
        }
    }

    /// The Prometheus text exposition of the counters and of the log
    /// (size and latest epoch per namespace).
    pub fn render(&self, auditor: &Mutex<Auditor>) -> String {
        let mut out = String::from(
            "# HELP bkv_auditor_requests_total HTTP requests by endpoint and status.\n\
             # TYPE bkv_auditor_requests_total counter\n",
        );
        if let Ok(m) = self.requests.lock() {
            for ((endpoint, status), n) in m.iter() {
                out.push_str(&format!(
                    "bkv_auditor_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}\n"
                ));
            }
        }
        if let Ok(a) = auditor.lock() {
            out.push_str(
                "# HELP bkv_auditor_log_size Entries in a namespace's log.\n\
                 # TYPE bkv_auditor_log_size gauge\n",
            );
            let namespaces = a.namespaces();
            for n in &namespaces {
                out.push_str(&format!(
                    "bkv_auditor_log_size{{namespace=\"{}\"}} {}\n",
                    n.name.escape_default(),
                    n.log_size
                ));
            }
            out.push_str(
                "# HELP bkv_auditor_latest_epoch The latest bundle epoch published in a namespace.\n\
                 # TYPE bkv_auditor_latest_epoch gauge\n",
            );
            for n in &namespaces {
                if let Some(epoch) = n.latest_epoch {
                    out.push_str(&format!(
                        "bkv_auditor_latest_epoch{{namespace=\"{}\"}} {epoch}\n",
                        n.name.escape_default(),
                    ));
                }
            }
        }
        out
    }
}

/// The endpoint a request addresses, as a metrics label.
fn endpoint(method: &str, url: &str) -> &'static str {
    let path = url.split_once('?').map_or(url, |(p, _)| p);
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        ("GET", ["info"]) => "info",
        ("GET", ["metrics"]) => "metrics",
        ("POST", ["namespaces"]) => "register_namespace",
        ("GET", ["namespaces", _]) => "namespace",
        ("POST", ["namespaces", _, "audits"]) => "publish",
        ("GET", ["namespaces", _, "audits", _]) => "entry",
        ("GET", ["namespaces", _, "audits", _, "bundle"]) => "bundle",
        ("POST", ["namespaces", _, "audits", _, "counter-signature"]) => "counter_signature",
        ("GET", ["namespaces", _, "checkpoint"]) => "checkpoint",
        ("GET", ["namespaces", _, "checkpoints", _]) => "checkpoint_at",
        ("GET", ["namespaces", _, "consistency"]) => "consistency",
        ("GET", ["namespaces", _, "export"]) => "export",
        _ => "other",
    }
}

/// A bound server.
pub struct Server {
    front: Front,
}

impl Server {
    /// Binds `listen` (e.g. `127.0.0.1:0`).
    pub fn bind(listen: &str) -> Result<Self, String> {
        let addr: std::net::SocketAddr = listen
            .parse()
            .map_err(|e| format!("{listen}: not an address ({e}); give host:port"))?;
        Ok(Self {
            front: Front::bind(addr)?,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        Some(self.front.local_addr())
    }

    /// A handle that stops [`Server::run`] gracefully.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.front.shutdown_handle()
    }

    /// Serves requests until the shutdown handle is used: many connections
    /// at once, each request read within [`limits`]; the log's work (disk
    /// writes) runs on blocking threads, one at a time under the lock.
    pub fn run(self, auditor: &Arc<Mutex<Auditor>>, token: &str) -> Result<(), String> {
        let auditor = auditor.clone();
        let token: Arc<str> = Arc::from(token);
        let metrics = Arc::new(Metrics::default());
        let handler: Handler = Arc::new(move |request: Request| {
            let auditor = auditor.clone();
            let token = token.clone();
            let metrics = metrics.clone();
            Box::pin(async move {
                let kind = endpoint(&request.method, &request.url);
                let answer = if kind == "metrics" {
                    let (a, m) = (auditor.clone(), metrics.clone());
                    match tokio::task::spawn_blocking(move || m.render(&a)).await {
                        Ok(text) => Answer {
                            status: 200,
                            content_type: "text/plain; version=0.0.4; charset=utf-8",
                            body: text.into_bytes(),
                        },
                        Err(e) => error(500, e),
                    }
                } else {
                    let job = tokio::task::spawn_blocking(move || {
                        route(
                            &auditor,
                            &token,
                            &request.method,
                            &request.url,
                            request.authorization.as_deref(),
                            &request.body,
                        )
                    });
                    job.await.unwrap_or_else(|e| error(500, e))
                };
                metrics.count(kind, answer.status);
                answer
            })
        });
        self.front.run(limits(), handler)
    }
}

/// Binds `listen` and serves `auditor` there (blocking).
pub fn serve(auditor: Auditor, listen: &str, token: &str) -> Result<(), String> {
    let server = Server::bind(listen)?;
    server.run(&Arc::new(Mutex::new(auditor)), token)
}
