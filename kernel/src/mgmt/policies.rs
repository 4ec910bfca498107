//! `/api/v1/policies`: the policies in force, and changing one live.
//!
//! - `GET /api/v1/policies`: `{"files": [{"name", "kind"}…], "policy": SET}` — the files
//!   in force and the set they make (as `/api/v1/catalog` shows a catalog's).
//! - `GET /api/v1/policies/NAME`: that file's TOML text.
//! - `PUT /api/v1/policies/NAME`: a protection or troubleshooting file's TOML text,
//!   replacing the file of that name or added to the set. 200 with the new set's
//!   document once it applies; 422 with each problem (`file`, `line`, `col`, `message`)
//!   as the host tool prints them, and nothing changed; 409 when it would change
//!   deployments or tenants; 400 for a body that is not UTF-8 or a bad name.
//!
//! Owns these routes and their documents. Checking and applying is
//! `partition::policy`'s; it must not judge a policy itself.

use alloc::format;
use alloc::string::String;

use plinth_http::Response;
use plinth_http::json::Writer;

use crate::clock;
use crate::partition::RUNTIME;
use crate::partition::policy::PolicyError;

pub const PATH: &str = "/api/v1/policies";

/// A policy file's name: what the catalog calls its files (`protection.toml`), 1 to 64
/// of `a-z 0-9 . _ -`, ending in `.toml`, not starting with a dot.
fn valid_name(name: &str) -> bool {
    (6..=64).contains(&name.len())
        && name.ends_with(".toml")
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

pub fn route(method: &str, path: &str, body: &[u8]) -> Response {
    let rest = path.strip_prefix(PATH).unwrap_or("");
    match (method, rest) {
        ("GET" | "HEAD", "") => list(),
        (_, "") => Response::method_not_allowed("GET, HEAD"),
        (_, rest) => {
            let name = rest.strip_prefix('/').unwrap_or("");
            if !valid_name(name) {
                return Response::error(
                    404,
                    "no such policy file (names are like protection.toml: a-z, 0-9, . _ -)",
                );
            }
            match method {
                "GET" | "HEAD" => text(name),
                "PUT" => put(name, body),
                _ => Response::method_not_allowed("GET, HEAD, PUT"),
            }
        }
    }
}

/// The `kind = "…"` a file declares, for the list (its first such line).
fn kind_of(text: &str) -> &str {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("kind"))
        .filter_map(|l| l.trim_start().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"'))
        .next()
        .unwrap_or("")
}

fn set_json(w: &mut Writer) {
    let guard = RUNTIME.lock();
    let mut set = String::new();
    if let Some(rt) = guard.as_ref() {
        let _ = rt.policies.write_json(&mut set);
    }
    w.key("policy");
    // The set's own writer made it: JSON already.
    w.raw(if set.is_empty() { "null" } else { &set });
}

fn list() -> Response {
    let mut w = Writer::new();
    w.begin_object().key("files").begin_array();
    {
        let guard = RUNTIME.lock();
        if let Some(source) = guard.as_ref().and_then(|rt| rt.policy_source.as_ref()) {
            for (name, text) in &source.files {
                w.begin_object()
                    .key("name")
                    .string(name)
                    .key("kind")
                    .string(kind_of(text))
                    .end_object();
            }
        }
    }
    w.end_array();
    set_json(&mut w);
    w.end_object();
    Response::json(200, w.finish())
}

fn text(name: &str) -> Response {
    let guard = RUNTIME.lock();
    let found = guard
        .as_ref()
        .and_then(|rt| rt.policy_source.as_ref())
        .and_then(|s| s.files.iter().find(|(n, _)| n == name))
        .map(|(_, t)| t.clone());
    match found {
        Some(t) => Response::text(200, "application/toml; charset=utf-8", t),
        None => Response::error(404, "no such policy file"),
    }
}

fn put(name: &str, body: &[u8]) -> Response {
    let Ok(text) = core::str::from_utf8(body) else {
        return Response::error(400, "a policy is UTF-8 TOML text");
    };
    let started = clock::now_ns();
    let outcome = {
        let mut guard = RUNTIME.lock();
        match guard.as_mut() {
            Some(rt) => rt.change_policy(name, text, started),
            None => Err(PolicyError::NoCatalog),
        }
    };
    match outcome {
        Ok(()) => {
            let applied_ns = clock::now_ns().saturating_sub(started);
            log::info!(
                "policy {name}: changed live, applied in {} us",
                applied_ns / 1000
            );
            let mut w = Writer::new();
            w.begin_object()
                .key("changed")
                .string(name)
                .key("applied_us")
                .u64(applied_ns / 1000);
            set_json(&mut w);
            w.end_object();
            Response::json(200, w.finish())
        }
        Err(PolicyError::NoCatalog) => Response::error(
            409,
            "no catalog is loaded: there is no policy set to change",
        ),
        Err(PolicyError::NotLive(why)) => Response::error(409, why),
        Err(PolicyError::Invalid(problems)) => {
            log::warn!(
                "policy {name}: change refused ({} problems)",
                problems.len()
            );
            let mut w = Writer::new();
            w.begin_object()
                .key("error")
                .string(&format!(
                    "the policy set with {name} has {} problem(s); nothing changed",
                    problems.len()
                ))
                .key("problems")
                .begin_array();
            for (file, d) in &problems {
                w.begin_object()
                    .key("file")
                    .string(file)
                    .key("line")
                    .u64(u64::from(d.line))
                    .key("col")
                    .u64(u64::from(d.col))
                    .key("message")
                    .string(&d.message)
                    .end_object();
            }
            w.end_array().end_object();
            Response::json(422, w.finish())
        }
    }
}
