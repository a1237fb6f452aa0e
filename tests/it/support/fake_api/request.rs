//! Requests as the fake API server reads them: the parts of the HTTP request it looks at,
//! kube-apiserver resource paths (`/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}/
//! {subresource}`) and the verb a request maps to.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri, header};
use serde_json::Value;

use super::State;

/// The parts of an HTTP request the server looks at.
pub(super) struct Request {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) query: String,
    pub(super) params: Vec<(String, String)>,
    /// Without parameters such as `; charset=utf-8`.
    pub(super) content_type: Option<String>,
    pub(super) accept: Option<String>,
    pub(super) user_agent: Option<String>,
    pub(super) body: Bytes,
}

impl Request {
    pub(super) fn new(method: Method, uri: &Uri, headers: &HeaderMap, body: Bytes) -> Self {
        let query = uri.query().unwrap_or("").to_string();
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        Request {
            method,
            path: uri.path().to_string(),
            params: url::form_urlencoded::parse(query.as_bytes()).into_owned().collect(),
            query,
            content_type: header(header::CONTENT_TYPE).map(|ct| ct.split(';').next().unwrap_or("").trim().to_string()),
            accept: header(header::ACCEPT),
            user_agent: header(header::USER_AGENT),
            body,
        }
    }

    pub(super) fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// A resource path: `/api/v1/namespaces/{ns}/pods/{name}/status` and the like.
#[derive(Clone, Debug, Default)]
pub(super) struct Target {
    pub(super) group: String,
    pub(super) version: String,
    pub(super) plural: String,
    pub(super) namespace: Option<String>,
    pub(super) name: Option<String>,
    pub(super) subresource: Option<String>,
}

impl Target {
    pub(super) fn key(&self) -> (String, String) {
        (
            self.namespace.clone().unwrap_or_default(),
            self.name.clone().unwrap_or_default(),
        )
    }

    pub(super) fn verb(&self, request: &Request) -> &'static str {
        let watch = matches!(request.param("watch"), Some("true" | "1"));
        match (&request.method, self.name.is_some()) {
            (&Method::GET, true) => "get",
            (&Method::GET, false) if watch => "watch",
            (&Method::GET, false) => "list",
            (&Method::POST, _) => "create",
            (&Method::PUT, _) => "update",
            (&Method::PATCH, _) => "patch",
            (&Method::DELETE, true) => "delete",
            (&Method::DELETE, false) => "deletecollection",
            _ => "unknown",
        }
    }
}

pub(super) enum Route {
    Version,
    CoreVersions,
    Groups,
    Group(String),
    Resources(String, String),
    Object(Target),
    Unknown,
}

pub(super) fn route(path: &str, state: &State) -> Route {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["version"] => return Route::Version,
        ["api"] => return Route::CoreVersions,
        ["api", version] => return Route::Resources(String::new(), version.to_string()),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis"] => return Route::Groups,
        ["apis", group] => return Route::Group(group.to_string()),
        ["apis", group, version] => return Route::Resources(group.to_string(), version.to_string()),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Route::Unknown,
    };
    let mut target = Target {
        group: group.into(),
        version: version.into(),
        ..Target::default()
    };
    // `namespaces/{ns}/{plural}` unless `{plural}` is a namespace subresource.
    let rest = match rest {
        ["namespaces", ns, plural, more @ ..] if state.find_type(group, version, plural).is_some() => {
            target.namespace = Some(ns.to_string());
            target.plural = plural.to_string();
            more
        }
        [plural, more @ ..] => {
            target.plural = plural.to_string();
            more
        }
        [] => return Route::Unknown,
    };
    match rest {
        [] => {}
        [name] => target.name = Some(name.to_string()),
        [name, sub] => {
            target.name = Some(name.to_string());
            target.subresource = Some(sub.to_string());
        }
        _ => return Route::Unknown,
    }
    Route::Object(target)
}

/// Parses a request body: JSON, or for apply YAML (of which JSON is a subset).
pub(super) fn parse_body(body: &[u8], yaml: bool) -> Result<Value, String> {
    match serde_json::from_slice(body) {
        Ok(value) => Ok(value),
        Err(_) if yaml => {
            let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
            serde_saphyr::from_str(text).map_err(|e| format!("error decoding YAML: {e}"))
        }
        Err(e) => Err(format!("error decoding patch: {e}")),
    }
}
