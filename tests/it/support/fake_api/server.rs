//! Routing and reads of the fake API server: records every request, applies injected
//! failures and RBAC denials, serves discovery, get and list (selectors, pages, continue
//! tokens); writes are in `write.rs`.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::request::{Request, Route, Target, parse_body, route};
use super::selector::{FieldSelector, LabelSelector};
use super::serve::Fake;
use super::status::{self, Reply};
use super::write::APPLY_PATCH;
use super::{RecordedPatch, RecordedRequest, ResourceType, State, discovery};

impl Fake for State {
    fn answer(&mut self, method: Method, uri: &Uri, headers: HeaderMap, body: Bytes) -> Response {
        let request = Request::new(method, uri, &headers, body);
        self.serve(&request).into_response()
    }
}

/// Opaque continue tokens: hex of `{"rv": snapshot, "start": [namespace, name]}`; rv -1
/// continues at the latest revision (the inconsistent token of a 410).
fn encode_continue(rv: i64, start: &(String, String)) -> String {
    let json = json!({ "v": "meta.k8s.io/v1", "rv": rv, "start": [start.0, start.1] }).to_string();
    json.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(token: &str) -> Result<(i64, (String, String)), String> {
    let invalid = || format!("continue key is not valid: cannot decode {token:?}");
    if !token.len().is_multiple_of(2) || !token.is_ascii() {
        return Err(invalid());
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let rv = value["rv"].as_i64().ok_or_else(invalid)?;
    let (Some(ns), Some(name)) = (value["start"][0].as_str(), value["start"][1].as_str()) else {
        return Err("continue key is not valid: encoded start key empty (version meta.k8s.io/v1)".into());
    };
    Ok((rv, (ns.to_string(), name.to_string())))
}

impl State {
    fn serve(&mut self, request: &Request) -> Reply {
        let route = route(&request.path, self);
        let mut record = RecordedRequest {
            method: request.method.to_string(),
            path: request.path.clone(),
            query: request.query.clone(),
            verb: "get".into(),
            group: String::new(),
            resource: String::new(),
            subresource: None,
            namespace: None,
            name: None,
            content_type: request.content_type.clone(),
            status: 0,
        };
        if let Route::Object(target) = &route {
            record.verb = target.verb(request).into();
            record.group = target.group.clone();
            record.resource = target.plural.clone();
            record.subresource = target.subresource.clone();
            record.namespace = target.namespace.clone();
            record.name = target.name.clone();
        }
        if request.method == Method::PATCH {
            self.record_patch(request);
        }
        let index = self.requests.len();
        self.requests.push(record);
        let reply = self.dispatch(request, route);
        self.requests[index].status = reply.code;
        reply
    }

    fn record_patch(&mut self, request: &Request) {
        let content_type = request.content_type.clone().unwrap_or_default();
        let body = parse_body(&request.body, content_type == APPLY_PATCH)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&request.body).into_owned()));
        self.patches.push(RecordedPatch {
            path: request.path.clone(),
            content_type,
            field_manager: request.param("fieldManager").map(str::to_string),
            force: request.param("force") == Some("true"),
            dry_run: request.param("dryRun").is_some(),
            body,
        });
    }

    fn take_injection(&mut self, path: &str) -> Option<u16> {
        let injection = self
            .injections
            .iter_mut()
            .find(|i| i.remaining > 0 && path.starts_with(&i.prefix))?;
        injection.remaining -= 1;
        Some(injection.status)
    }

    fn dispatch(&mut self, request: &Request, route: Route) -> Reply {
        if let Some(code) = self.take_injection(&request.path) {
            return status::injected(code, self.retry_after_secs);
        }
        let accept = request.accept.as_deref();
        match route {
            Route::Version => discovery::version(),
            Route::CoreVersions => self.core_versions(accept),
            Route::Groups => self.group_list(accept),
            Route::Group(group) => self.group(&group).unwrap_or_else(status::path_not_found),
            Route::Resources(group, version) => self
                .resource_list(&group, &version)
                .unwrap_or_else(status::path_not_found),
            Route::Object(target) => self.resource(request, &target),
            Route::Unknown => status::path_not_found(),
        }
    }

    fn resource(&mut self, request: &Request, target: &Target) -> Reply {
        let Some(rt) = self.find_type(&target.group, &target.version, &target.plural).cloned() else {
            return status::path_not_found();
        };
        let misplaced = if rt.namespaced {
            target.namespace.is_none() && target.name.is_some()
        } else {
            target.namespace.is_some()
        };
        let bad_subresource = target
            .subresource
            .as_deref()
            .is_some_and(|sub| sub != "status" || rt.read_only());
        if misplaced || bad_subresource {
            return status::path_not_found();
        }
        let verb = target.verb(request);
        let resource = match &target.subresource {
            Some(sub) => format!("{}/{sub}", rt.plural),
            None => rt.plural.clone(),
        };
        if self.denied.contains(&(verb.to_string(), rt.group.clone(), resource)) {
            return status::forbidden(
                &rt,
                target.subresource.as_deref(),
                verb,
                target.namespace.as_deref(),
                target.name.as_deref(),
                &self.user,
            );
        }
        if rt.read_only() && !matches!(verb, "get" | "list") {
            return status::method_not_allowed();
        }
        match verb {
            "get" => self.get(&rt, target),
            "list" => self.list(&rt, target.namespace.as_deref(), request),
            "create" if target.name.is_none() => self.create(&rt, target, request),
            "update" => self.update(&rt, target, request),
            "patch" => self.patch(&rt, target, request),
            "delete" => self.delete(&rt, target, request),
            // watch, deletecollection, POST to an object path
            _ => status::method_not_allowed(),
        }
    }

    pub(super) fn stored(&self, rt: &ResourceType, key: &(String, String)) -> Option<&Value> {
        self.objects
            .get(&(rt.group.clone(), rt.plural.clone()))
            .and_then(|objects| objects.get(key))
    }

    fn get(&self, rt: &ResourceType, target: &Target) -> Reply {
        match self.stored(rt, &target.key()) {
            Some(obj) => Reply::ok(obj.clone()),
            None => status::not_found(rt, target.name.as_deref().unwrap_or("")),
        }
    }

    fn list(&self, rt: &ResourceType, namespace: Option<&str>, request: &Request) -> Reply {
        let labels = match LabelSelector::parse(request.param("labelSelector").unwrap_or("")) {
            Ok(selector) => selector,
            Err(e) => return status::bad_request(e),
        };
        let fields = request.param("fieldSelector").unwrap_or("");
        let fields = match FieldSelector::parse(fields, &rt.group, &rt.plural) {
            Ok(selector) => selector,
            Err(e) => return status::bad_request(e),
        };
        let limit = match request.param("limit").map(str::parse::<usize>) {
            None | Some(Ok(0)) => None,
            Some(Ok(n)) => Some(n),
            Some(Err(e)) => return status::bad_request(format!("invalid limit: {e}")),
        };
        let resource_version = request.param("resourceVersion").unwrap_or("");
        match request.param("resourceVersionMatch").unwrap_or("") {
            "" => {}
            _ if resource_version.is_empty() => {
                return status::invalid(
                    "ListOptions.meta.k8s.io",
                    "",
                    "resourceVersionMatch",
                    "FieldValueForbidden",
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                );
            }
            "NotOlderThan" | "Exact" => {}
            other => {
                return status::invalid(
                    "ListOptions.meta.k8s.io",
                    "",
                    "resourceVersionMatch",
                    "FieldValueNotSupported",
                    &format!("\"{other}\": supported values: \"Exact\", \"NotOlderThan\""),
                );
            }
        }
        let (snapshot, start) = match request.param("continue").filter(|c| !c.is_empty()) {
            None => (self.revision, None),
            Some(token) => {
                if !matches!(resource_version, "" | "0") {
                    return status::bad_request("specifying resource version is not allowed when using continue");
                }
                let (rv, start) = match decode_continue(token) {
                    Ok(decoded) => decoded,
                    Err(e) => return status::bad_request(format!("invalid continue token: {e}")),
                };
                if rv >= 0 && rv as u64 <= self.compacted {
                    return status::continue_expired(Some(encode_continue(-1, &start)));
                }
                let snapshot = if rv < 0 { self.revision } else { rv as u64 };
                (snapshot, Some(start))
            }
        };
        let empty = BTreeMap::new();
        let objects = self
            .objects
            .get(&(rt.group.clone(), rt.plural.clone()))
            .unwrap_or(&empty);
        let matching: Vec<(&(String, String), &Value)> = objects
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|want| ns == want))
            .filter(|(key, _)| start.as_ref().is_none_or(|start| *key > start))
            .filter(|(_, obj)| labels.matches(obj["metadata"]["labels"].as_object()) && fields.matches(obj))
            .collect();
        let page = match (limit, self.page_size_cap) {
            (Some(limit), Some(cap)) => limit.min(cap.max(1)),
            (Some(limit), None) => limit,
            (None, _) => matching.len(),
        };
        let taken = page.min(matching.len());
        let mut metadata = json!({ "resourceVersion": snapshot.to_string() });
        if taken < matching.len() {
            metadata["continue"] = json!(encode_continue(snapshot as i64, matching[taken - 1].0));
            // apiserver counts the rest only when no selector filters it.
            if labels.is_empty() && fields.is_empty() {
                metadata["remainingItemCount"] = json!(matching.len() - taken);
            }
        }
        if self.endless_continue {
            metadata["continue"] = json!(encode_continue(snapshot as i64, &(String::new(), String::new())));
        }
        let items: Vec<Value> = matching[..taken].iter().map(|(_, obj)| (*obj).clone()).collect();
        Reply::ok(json!({
            "apiVersion": rt.api_version(),
            "kind": format!("{}List", rt.kind),
            "metadata": metadata,
            "items": items,
        }))
    }
}
