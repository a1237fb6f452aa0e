//! Replies of the fake API server, and the `Status` objects kube-apiserver answers errors
//! with: reasons, codes, details and message formats as in
//! `k8s.io/apimachinery/pkg/api/errors` (`NewNotFound`, `NewForbidden`, `NewConflict`, ...).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ResourceType;

/// A reply: status code, JSON body and the few headers the fake sets.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) code: u16,
    pub(super) body: Value,
    pub(super) content_type: &'static str,
    pub(super) retry_after: Option<u64>,
}

impl Reply {
    pub(super) fn ok(body: Value) -> Reply {
        Reply::with_code(200, body)
    }

    pub(super) fn with_code(code: u16, body: Value) -> Reply {
        Reply {
            code,
            body,
            content_type: "application/json",
            retry_after: None,
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (code, self.body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A failure `Status`; `details` is left out when empty, as apiserver's `omitempty` does.
fn failure(code: u16, reason: &str, message: impl Into<String>, details: Option<Value>) -> Reply {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message.into(),
        "reason": reason,
        "code": code,
    });
    if let Some(details) = details {
        body["details"] = details;
    }
    Reply::with_code(code, body)
}

/// `details` naming an object: `{"name", "group", "kind"}` where kind is the resource plural.
fn details(rt: &ResourceType, name: Option<&str>) -> Value {
    let mut details = json!({ "kind": rt.plural });
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    if let Some(name) = name.filter(|n| !n.is_empty()) {
        details["name"] = json!(name);
    }
    details
}

/// 404 for a path no resource is served at (an unknown group, version or resource).
pub(super) fn path_not_found() -> Reply {
    failure(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

/// 404 `deployments.apps "foo" not found`.
pub(super) fn not_found(rt: &ResourceType, name: &str) -> Reply {
    let message = format!("{} \"{name}\" not found", rt.qualified());
    failure(404, "NotFound", message, Some(details(rt, Some(name))))
}

/// 403 `deployments.apps is forbidden: User "u" cannot list resource "deployments" in API
/// group "apps" at the cluster scope` (or `in the namespace "ns"`).
pub(super) fn forbidden(
    rt: &ResourceType,
    subresource: Option<&str>,
    verb: &str,
    namespace: Option<&str>,
    name: Option<&str>,
    user: &str,
) -> Reply {
    let resource = match subresource {
        Some(sub) => format!("{}/{sub}", rt.plural),
        None => rt.plural.clone(),
    };
    let subject = match name {
        Some(name) => format!("{} \"{name}\"", rt.qualified()),
        None => rt.qualified(),
    };
    let scope = match namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let message = format!(
        "{subject} is forbidden: User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{}\" {scope}",
        rt.group
    );
    failure(403, "Forbidden", message, Some(details(rt, name)))
}

/// 409 on a stale resourceVersion.
pub(super) fn conflict(rt: &ResourceType, name: &str) -> Reply {
    let message = format!(
        "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
        rt.qualified()
    );
    failure(409, "Conflict", message, Some(details(rt, Some(name))))
}

/// 409 on create of an existing name.
pub(super) fn already_exists(rt: &ResourceType, name: &str) -> Reply {
    let message = format!("{} \"{name}\" already exists", rt.qualified());
    failure(409, "AlreadyExists", message, Some(details(rt, Some(name))))
}

pub(super) fn bad_request(message: impl Into<String>) -> Reply {
    failure(400, "BadRequest", message, None)
}

/// 422 `Kind.group "name" is invalid: field: Required value: detail`, from `NewInvalid`.
pub(super) fn invalid(qualified_kind: &str, name: &str, field: &str, cause: &str, detail: &str) -> Reply {
    let (reason, label) = match cause {
        "FieldValueRequired" => (cause, "Required value"),
        "FieldValueForbidden" => (cause, "Forbidden"),
        "FieldValueNotSupported" => (cause, "Unsupported value"),
        _ => ("FieldValueInvalid", "Invalid value"),
    };
    let message = format!("{qualified_kind} \"{name}\" is invalid: {field}: {label}: {detail}");
    let (kind, group) = qualified_kind.split_once('.').unwrap_or((qualified_kind, ""));
    let mut details = json!({
        "kind": kind,
        "causes": [{ "reason": reason, "message": format!("{label}: {detail}"), "field": field }],
    });
    if !name.is_empty() {
        details["name"] = json!(name);
    }
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    failure(422, "Invalid", message, Some(details))
}

/// 422 for a JSON patch that does not apply (a failed `test`, a missing path): apiserver
/// wraps it in `NewGenericServerResponse`, whose message hides the cause.
pub(super) fn patch_not_applied() -> Reply {
    failure(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
        Some(json!({})),
    )
}

/// 415 for a body in a media type the endpoint does not take.
pub(super) fn unsupported_media_type(accepted: &[&str]) -> Reply {
    let message = format!(
        "the body of the request was in an unknown format - accepted media types include: {}",
        accepted.join(", ")
    );
    failure(415, "UnsupportedMediaType", message, None)
}

pub(super) fn method_not_allowed() -> Reply {
    failure(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        None,
    )
}

pub(super) fn internal_error(cause: &str) -> Reply {
    failure(
        500,
        "InternalError",
        format!("Internal error occurred: {cause}"),
        Some(json!({ "causes": [{ "message": cause }] })),
    )
}

/// 410 Expired for a continue token older than the last compaction; `token` is the
/// inconsistent continue token apiserver hands back.
pub(super) fn continue_expired(token: Option<String>) -> Reply {
    let message = match token {
        Some(_) => {
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."
        }
        None => {
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."
        }
    };
    let mut reply = failure(410, "Expired", message, None);
    if let Some(token) = token {
        reply.body["metadata"] = json!({ "continue": token });
    }
    reply
}

/// The reply to a request hit by `fail_next`.
pub(super) fn injected(code: u16, retry_after_secs: u64) -> Reply {
    match code {
        400 => bad_request("the server rejected our request for an unknown reason"),
        401 => failure(401, "Unauthorized", "Unauthorized", None),
        404 => path_not_found(),
        409 => failure(409, "Conflict", "the server reported a conflict", None),
        410 => continue_expired(None),
        429 => {
            let mut reply = failure(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
                Some(json!({ "retryAfterSeconds": retry_after_secs })),
            );
            reply.retry_after = Some(retry_after_secs);
            reply
        }
        500 => internal_error("injected failure"),
        503 => failure(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
            None,
        ),
        504 => failure(
            504,
            "Timeout",
            "the server was unable to return a response in the time allotted",
            None,
        ),
        code => failure(code, "", format!("injected failure with code {code}"), None),
    }
}
