//! Writes of the fake API server: create, update, the four patch content types and delete,
//! with the server-owned fields (uid, resourceVersion, generation, managedFields), status
//! subresource split, resourceVersion preconditions and dry run of kube-apiserver.

use serde_json::{Value, json};

use super::patch::{JsonPatchError, json_patch, merge_patch, strategic_merge};
use super::request::{Request, Target, parse_body};
use super::status::{self, Reply};
use super::{ResourceType, State, now};

const JSON_PATCH: &str = "application/json-patch+json";
const MERGE_PATCH: &str = "application/merge-patch+json";
const STRATEGIC_PATCH: &str = "application/strategic-merge-patch+json";
pub(super) const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// 400 unless the object's apiVersion and kind, where given, are the endpoint's.
fn check_type(rt: &ResourceType, obj: &Value, required: bool) -> Result<(), Reply> {
    let api_version = obj["apiVersion"].as_str();
    let kind = obj["kind"].as_str();
    if required && (api_version.is_none() || kind.is_none()) {
        let missing = if kind.is_none() { "Kind" } else { "apiVersion" };
        return Err(status::bad_request(format!("Object '{missing}' is missing in '{obj}'")));
    }
    if let Some(v) = api_version.filter(|v| *v != rt.api_version()) {
        return Err(status::bad_request(format!(
            "the API version in the data ({v}) does not match the expected API version ({})",
            rt.api_version()
        )));
    }
    if let Some(k) = kind.filter(|k| *k != rt.kind) {
        return Err(status::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            rt.kind
        )));
    }
    Ok(())
}

/// Adds or refreshes the `managedFields` entry of `manager` (fieldsV1 left empty).
fn record_manager(
    obj: &mut Value,
    manager: &str,
    operation: &str,
    api_version: &str,
    sub: Option<&str>,
    refresh: bool,
) {
    if !obj["metadata"]["managedFields"].is_array() {
        obj["metadata"]["managedFields"] = json!([]);
    }
    let entries = obj["metadata"]["managedFields"]
        .as_array_mut()
        .expect("made an array above");
    let same = |e: &Value| e["manager"] == manager && e["operation"] == operation && e["subresource"].as_str() == sub;
    if let Some(entry) = entries.iter_mut().find(|e| same(e)) {
        if refresh {
            entry["time"] = json!(now());
            entry["apiVersion"] = json!(api_version);
        }
        return;
    }
    let mut entry = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now(),
        "fieldsType": "FieldsV1",
        "fieldsV1": {},
    });
    if let Some(sub) = sub {
        entry["subresource"] = json!(sub);
    }
    entries.push(entry);
}

/// Options of a write request.
struct Write<'a> {
    manager: String,
    operation: &'static str,
    dry_run: bool,
    subresource: Option<&'a str>,
}

impl State {
    fn manager(request: &Request) -> String {
        match request.param("fieldManager").filter(|m| !m.is_empty()) {
            Some(manager) => manager.to_string(),
            // apiserver falls back to the user agent up to its first '/'.
            None => request
                .user_agent
                .as_deref()
                .and_then(|ua| ua.split('/').next())
                .unwrap_or("unknown")
                .to_string(),
        }
    }

    fn dry_run(request: &Request, kind: &str) -> Result<bool, Reply> {
        match request.param("dryRun") {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(status::invalid(
                kind,
                "",
                "dryRun",
                "FieldValueNotSupported",
                &format!("\"{other}\": supported values: \"All\""),
            )),
        }
    }

    /// Stores a new object at `key`: the server sets uid, creationTimestamp, generation,
    /// resourceVersion and managedFields and drops status (set through its subresource).
    fn insert_new(&mut self, rt: &ResourceType, key: (String, String), mut obj: Value, write: &Write) -> Value {
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        if let Some(map) = obj.as_object_mut() {
            map.remove("status");
        }
        let meta = &mut obj["metadata"];
        meta["name"] = json!(key.1);
        if rt.namespaced {
            meta["namespace"] = json!(key.0);
        }
        if let Some(map) = meta.as_object_mut() {
            map.remove("managedFields");
        }
        obj["metadata"]["uid"] = json!(self.next_uid());
        obj["metadata"]["creationTimestamp"] = json!(now());
        obj["metadata"]["generation"] = json!(1);
        record_manager(&mut obj, &write.manager, write.operation, &rt.api_version(), None, true);
        if !write.dry_run {
            obj["metadata"]["resourceVersion"] = json!(self.next_revision());
            self.store(rt).insert(key, obj.clone());
        }
        obj
    }

    /// Writes `new` over `old`: keeps the fields the server owns, takes only status through
    /// the status subresource and only the rest through the main resource, and bumps
    /// resourceVersion (and generation on a spec change) unless nothing changed.
    fn commit(
        &mut self,
        rt: &ResourceType,
        key: (String, String),
        old: &Value,
        mut new: Value,
        write: &Write,
    ) -> Value {
        for field in [
            "uid",
            "creationTimestamp",
            "name",
            "namespace",
            "resourceVersion",
            "generation",
            "managedFields",
        ] {
            match old["metadata"].get(field) {
                Some(value) => new["metadata"][field] = value.clone(),
                None => {
                    if let Some(meta) = new["metadata"].as_object_mut() {
                        meta.remove(field);
                    }
                }
            }
        }
        new["apiVersion"] = old["apiVersion"].clone();
        new["kind"] = old["kind"].clone();
        let (mut base, from) = match write.subresource {
            Some(_) => (old.clone(), &new),
            None => (new.clone(), old),
        };
        match from.get("status") {
            Some(status) => base["status"] = status.clone(),
            None => {
                if let Some(map) = base.as_object_mut() {
                    map.remove("status");
                }
            }
        }
        let mut new = base;
        let changed = new != *old;
        if changed || write.operation == "Apply" {
            record_manager(
                &mut new,
                &write.manager,
                write.operation,
                &rt.api_version(),
                write.subresource,
                changed,
            );
        }
        if new == *old {
            return new;
        }
        if new.get("spec") != old.get("spec")
            && let Some(generation) = old["metadata"]["generation"].as_i64()
        {
            new["metadata"]["generation"] = json!(generation + 1);
        }
        if !write.dry_run {
            new["metadata"]["resourceVersion"] = json!(self.next_revision());
            self.store(rt).insert(key, new.clone());
        }
        new
    }

    /// The `dryRun` option and the body of a create or update: a JSON object of the right
    /// apiVersion and kind.
    fn object_body(rt: &ResourceType, request: &Request, options: &str) -> Result<(bool, Value), Reply> {
        let dry_run = Self::dry_run(request, options)?;
        let obj = match parse_body(&request.body, false) {
            Ok(obj) if obj.is_object() => obj,
            Ok(_) => return Err(status::bad_request("the body of the request was not a JSON object")),
            Err(e) => return Err(status::bad_request(e)),
        };
        check_type(rt, &obj, false)?;
        Ok((dry_run, obj))
    }

    pub(super) fn create(&mut self, rt: &ResourceType, target: &Target, request: &Request) -> Reply {
        let (dry_run, obj) = match Self::object_body(rt, request, "CreateOptions.meta.k8s.io") {
            Ok(body) => body,
            Err(reply) => return reply,
        };
        let namespace = target.namespace.clone().unwrap_or_default();
        if let Some(ns) = obj["metadata"]["namespace"]
            .as_str()
            .filter(|ns| rt.namespaced && *ns != namespace)
        {
            return status::bad_request(format!(
                "the namespace of the provided object ({ns}) does not match the namespace sent on the request ({namespace})"
            ));
        }
        let name = match (
            obj["metadata"]["name"].as_str(),
            obj["metadata"]["generateName"].as_str(),
        ) {
            (Some(name), _) if !name.is_empty() => name.to_string(),
            (_, Some(prefix)) => format!("{prefix}{:05x}", self.uids + 1),
            _ => {
                return status::invalid(
                    format!("{}.{}", rt.kind, rt.group).trim_end_matches('.'),
                    "",
                    "metadata.name",
                    "FieldValueRequired",
                    "name or generateName is required",
                );
            }
        };
        let key = (namespace, name.clone());
        if self.stored(rt, &key).is_some() {
            return status::already_exists(rt, &name);
        }
        let write = Write {
            manager: Self::manager(request),
            operation: "Update",
            dry_run,
            subresource: None,
        };
        Reply::with_code(201, self.insert_new(rt, key, obj, &write))
    }

    pub(super) fn update(&mut self, rt: &ResourceType, target: &Target, request: &Request) -> Reply {
        let (dry_run, obj) = match Self::object_body(rt, request, "UpdateOptions.meta.k8s.io") {
            Ok(body) => body,
            Err(reply) => return reply,
        };
        let name = target.name.clone().unwrap_or_default();
        if let Some(body_name) = obj["metadata"]["name"].as_str().filter(|n| *n != name) {
            return status::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            ));
        }
        let Some(old) = self.stored(rt, &target.key()).cloned() else {
            return status::not_found(rt, &name);
        };
        let wanted = obj["metadata"]["resourceVersion"].as_str().filter(|rv| !rv.is_empty());
        if wanted.is_some_and(|rv| Some(rv) != old["metadata"]["resourceVersion"].as_str()) {
            return status::conflict(rt, &name);
        }
        let write = Write {
            manager: Self::manager(request),
            operation: "Update",
            dry_run,
            subresource: target.subresource.as_deref(),
        };
        Reply::ok(self.commit(rt, target.key(), &old, obj, &write))
    }

    pub(super) fn patch(&mut self, rt: &ResourceType, target: &Target, request: &Request) -> Reply {
        let content_type = request.content_type.as_deref().unwrap_or("");
        let accepted: &[&str] = if rt.builtin {
            &[JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH]
        } else {
            &[JSON_PATCH, MERGE_PATCH, APPLY_PATCH]
        };
        if !accepted.contains(&content_type) {
            return status::unsupported_media_type(accepted);
        }
        let apply = content_type == APPLY_PATCH;
        let options = "PatchOptions.meta.k8s.io";
        if apply && request.param("fieldManager").is_none_or(str::is_empty) {
            return status::invalid(
                options,
                "",
                "fieldManager",
                "FieldValueRequired",
                "is required for apply patch",
            );
        }
        if !apply && request.param("force").is_some() {
            return status::invalid(
                options,
                "",
                "force",
                "FieldValueForbidden",
                "may not be specified for non-apply patch",
            );
        }
        let dry_run = match Self::dry_run(request, options) {
            Ok(dry_run) => dry_run,
            Err(reply) => return reply,
        };
        let body = match parse_body(&request.body, apply) {
            Ok(body) => body,
            Err(e) => return status::bad_request(e),
        };
        let name = target.name.clone().unwrap_or_default();
        let write = Write {
            manager: Self::manager(request),
            operation: if apply { "Apply" } else { "Update" },
            dry_run,
            subresource: target.subresource.as_deref(),
        };
        if apply {
            if let Err(reply) = check_type(rt, &body, true) {
                return reply;
            }
            if let Some(body_name) = body["metadata"]["name"].as_str().filter(|n| *n != name) {
                return status::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                ));
            }
        }
        let Some(old) = self.stored(rt, &target.key()).cloned() else {
            if apply && target.subresource.is_none() {
                return Reply::with_code(201, self.insert_new(rt, target.key(), body, &write));
            }
            return status::not_found(rt, &name);
        };
        let mut patched = old.clone();
        match content_type {
            JSON_PATCH => match json_patch(&mut patched, &body) {
                Ok(()) => {}
                Err(JsonPatchError::Malformed(e)) => return status::bad_request(e),
                Err(JsonPatchError::NotApplied(_)) => return status::patch_not_applied(),
            },
            MERGE_PATCH | APPLY_PATCH if !body.is_object() => {
                return status::bad_request("error decoding patch: the patch is not a JSON object");
            }
            // Server-side apply merges lists with merge keys by key, as strategic merge does.
            STRATEGIC_PATCH | APPLY_PATCH if rt.builtin => {
                if let Err(e) = strategic_merge(&mut patched, &body) {
                    return status::internal_error(&e);
                }
            }
            _ => merge_patch(&mut patched, &body),
        }
        let wanted = patched["metadata"]["resourceVersion"].as_str();
        if wanted.is_some_and(|rv| Some(rv) != old["metadata"]["resourceVersion"].as_str()) {
            return status::conflict(rt, &name);
        }
        Reply::ok(self.commit(rt, target.key(), &old, patched, &write))
    }

    pub(super) fn delete(&mut self, rt: &ResourceType, target: &Target, request: &Request) -> Reply {
        let dry_run = match Self::dry_run(request, "DeleteOptions.meta.k8s.io") {
            Ok(dry_run) => dry_run,
            Err(reply) => return reply,
        };
        let name = target.name.clone().unwrap_or_default();
        let Some(old) = self.stored(rt, &target.key()).cloned() else {
            return status::not_found(rt, &name);
        };
        if !dry_run {
            self.store(rt).remove(&target.key());
        }
        let mut details = json!({ "name": name, "kind": rt.plural, "uid": old["metadata"]["uid"] });
        if !rt.group.is_empty() {
            details["group"] = json!(rt.group);
        }
        Reply::ok(json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }))
    }
}
