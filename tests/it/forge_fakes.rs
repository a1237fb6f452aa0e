//! Self-tests of the fake GitHub and GitLab APIs (`support/forge/`): plain reqwest calls as a
//! client makes them, checking the statuses, bodies, headers and repository effects the
//! providers document, so the pull-request tests that use the fakes test against the real
//! protocol. Each test names the docs page of the endpoints it checks.

mod github;
mod github_history;
mod github_limits;
mod github_schemas;
mod gitlab;

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::Value;

pub(crate) const TOKEN: &str = "s3cret-forge-token";

/// A client as the product builds one: a User-Agent (GitHub refuses requests without one).
pub(crate) fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent("rightsizer-forge-fakes/1")
        .build()
        .expect("reqwest client")
}

pub(crate) async fn json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("response body");
    let value = match serde_json::from_str(&text) {
        Ok(value) => value,
        Err(_) => Value::String(text),
    };
    (status, value)
}

pub(crate) fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A repository archive read as a client reads it: (pax global `comment`, top directories,
/// files with the top directory stripped).
pub(crate) struct Archive {
    pub comment: Option<String>,
    pub tops: Vec<String>,
    pub files: BTreeMap<String, Vec<u8>>,
}

pub(crate) fn read_archive(bytes: &[u8]) -> Archive {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut out = Archive {
        comment: None,
        tops: Vec::new(),
        files: BTreeMap::new(),
    };
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        if entry.header().entry_type() == tar::EntryType::XGlobalHeader {
            let mut text = String::new();
            entry.read_to_string(&mut text).expect("pax header");
            out.comment = text
                .split_once(" comment=")
                .map(|(_, rest)| rest.trim_end().to_string());
            continue;
        }
        let path = entry.path().expect("entry path").to_string_lossy().into_owned();
        let (top, rest) = path.split_once('/').unwrap_or((path.as_str(), ""));
        if !out.tops.iter().any(|t| t == top) {
            out.tops.push(top.to_string());
        }
        if entry.header().entry_type().is_file() {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).expect("entry bytes");
            out.files.insert(rest.to_string(), bytes);
        }
    }
    out
}

pub(crate) fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    pairs
        .iter()
        .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
        .collect()
}
