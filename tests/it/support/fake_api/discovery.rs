//! Discovery documents: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/{group}` and
//! `/apis/{group}/{version}`, plus the aggregated (apidiscovery.k8s.io/v2) form of `/api` and
//! `/apis` that `Discovery::run_aggregated` asks for. Built-in groups are always served; a
//! CRD or aggregated group only once a kind of it was inserted.

use serde_json::{Value, json};

use super::status::Reply;
use super::{ResourceType, State};

/// The Accept parameter that asks for aggregated discovery.
const AGGREGATED: &str = "as=APIGroupDiscoveryList";

pub(super) fn wants_aggregated(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains(AGGREGATED))
}

fn verbs(rt: &ResourceType) -> Vec<&'static str> {
    if rt.read_only() {
        vec!["get", "list"]
    } else {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

pub(super) fn version() -> Reply {
    Reply::ok(json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.0",
        "gitCommit": "60a317eadfcb839692a68eab88b2096f4d708f4f",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T13:07:15Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    }))
}

impl State {
    /// Served groups in apiserver order: the built-in ones, then the others as registered.
    fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = Vec::new();
        for rt in self.types.iter().filter(|t| !t.group.is_empty()) {
            if !groups.contains(&rt.group) {
                groups.push(rt.group.clone());
            }
        }
        groups
    }

    fn versions(&self, group: &str) -> Vec<String> {
        let mut versions: Vec<String> = Vec::new();
        for rt in self.types.iter().filter(|t| t.group == group) {
            if !versions.contains(&rt.version) {
                versions.push(rt.version.clone());
            }
        }
        versions
    }

    fn types_in(&self, group: &str, version: &str) -> Vec<&ResourceType> {
        self.types
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .collect()
    }

    fn group_json(&self, group: &str) -> Value {
        let versions: Vec<Value> = self
            .versions(group)
            .iter()
            .map(|v| json!({ "groupVersion": format!("{group}/{v}"), "version": v }))
            .collect();
        json!({
            "name": group,
            "versions": versions,
            "preferredVersion": versions[0],
        })
    }

    pub(super) fn core_versions(&self, accept: Option<&str>) -> Reply {
        if wants_aggregated(accept) {
            return self.aggregated(&[String::new()]);
        }
        Reply::ok(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": self.address }],
        }))
    }

    pub(super) fn group_list(&self, accept: Option<&str>) -> Reply {
        let groups = self.groups();
        if wants_aggregated(accept) {
            return self.aggregated(&groups);
        }
        let groups: Vec<Value> = groups.iter().map(|g| self.group_json(g)).collect();
        Reply::ok(json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups }))
    }

    /// `/apis/{group}`, or None when the group is not served.
    pub(super) fn group(&self, group: &str) -> Option<Reply> {
        if !self.groups().iter().any(|g| g == group) {
            return None;
        }
        let mut body = self.group_json(group);
        body["kind"] = json!("APIGroup");
        body["apiVersion"] = json!("v1");
        Some(Reply::ok(body))
    }

    /// `/api/v1` or `/apis/{group}/{version}`, or None when not served.
    pub(super) fn resource_list(&self, group: &str, version: &str) -> Option<Reply> {
        let types = self.types_in(group, version);
        if types.is_empty() {
            return None;
        }
        let mut resources = Vec::new();
        for rt in types {
            resources.push(json!({
                "name": rt.plural,
                "singularName": rt.kind.to_lowercase(),
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": verbs(rt),
            }));
            if !rt.read_only() {
                resources.push(json!({
                    "name": format!("{}/status", rt.plural),
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": ["get", "patch", "update"],
                }));
            }
        }
        let group_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        Some(Reply::ok(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        })))
    }

    fn aggregated(&self, groups: &[String]) -> Reply {
        let items: Vec<Value> = groups
            .iter()
            .map(|group| {
                let versions: Vec<Value> = self
                    .versions(group)
                    .iter()
                    .map(|version| {
                        let resources: Vec<Value> = self
                            .types_in(group, version)
                            .into_iter()
                            .map(|rt| {
                                let kind = json!({ "group": group, "version": version, "kind": rt.kind });
                                let subresources = if rt.read_only() {
                                    json!([])
                                } else {
                                    json!([{ "subresource": "status", "responseKind": kind, "verbs": ["get", "patch", "update"] }])
                                };
                                json!({
                                    "resource": rt.plural,
                                    "responseKind": kind,
                                    "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
                                    "singularResource": rt.kind.to_lowercase(),
                                    "verbs": verbs(rt),
                                    "subresources": subresources,
                                })
                            })
                            .collect();
                        json!({ "version": version, "resources": resources, "freshness": "Current" })
                    })
                    .collect();
                json!({ "metadata": { "name": group }, "versions": versions })
            })
            .collect();
        let mut reply = Reply::ok(json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        }));
        reply.content_type = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
        reply
    }
}
