//! The auditor over HTTP (SPEC.md §18.2), in the spirit of plexi's API.
//!
//! Reads are open; everything that changes the log needs
//! `Authorization: Bearer <token>` with the token given at start (compared
//! in constant time). Bodies are JSON, at most 1 MiB. [`route`] is the
//! whole API as a pure function of the request; [`serve`] runs it on a
//! `tiny_http` server, one request at a time.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use backup_key_vault::bundle::artifact::to_hex;
use backup_key_vault::bundle::{CounterSignature, SignatureMessage, ValidationBundle};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::export::parse_hex;
use crate::{Auditor, AuditorError};

/// Largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;

/// An HTTP answer: status, content type, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The content type.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

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
    let authorized = || {
        let expected = format!("Bearer {token}");
        authorization.is_some_and(|given| {
            given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
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

/// A running server.
pub struct Server {
    inner: tiny_http::Server,
}

impl Server {
    /// Binds `listen` (e.g. `127.0.0.1:0`).
    pub fn bind(listen: &str) -> Result<Self, String> {
        let inner = tiny_http::Server::http(listen).map_err(|e| e.to_string())?;
        Ok(Self { inner })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.server_addr().to_ip()
    }

    /// Serves requests until the process ends, one at a time.
    pub fn run(&self, auditor: &Arc<Mutex<Auditor>>, token: &str) {
        for mut request in self.inner.incoming_requests() {
            let mut body = Vec::new();
            let read = request
                .as_reader()
                .take(MAX_BODY as u64 + 1)
                .read_to_end(&mut body);
            let answer = if read.is_err() || body.len() > MAX_BODY {
                error(413, "body too large or unreadable")
            } else {
                let authorization = request
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Authorization"))
                    .map(|h| h.value.as_str().to_string());
                route(
                    auditor,
                    token,
                    request.method().as_str(),
                    request.url(),
                    authorization.as_deref(),
                    &body,
                )
            };
            let header =
                tiny_http::Header::from_bytes(&b"Content-Type"[..], answer.content_type.as_bytes());
            let mut response =
                tiny_http::Response::from_data(answer.body).with_status_code(answer.status);
            if let Ok(header) = header {
                response = response.with_header(header);
            }
            let _ = request.respond(response);
        }
    }
}

/// Binds `listen` and serves `auditor` there (blocking).
pub fn serve(auditor: Auditor, listen: &str, token: &str) -> Result<(), String> {
    let server = Server::bind(listen)?;
    server.run(&Arc::new(Mutex::new(auditor)), token);
    Ok(())
}
