//! Patch bodies applied to stored objects: JSON merge patch (RFC 7386), strategic merge patch
//! for the lists of built-in kinds that have a merge key, and JSON patch (RFC 6902).

use serde_json::{Map, Value, json};

/// RFC 7386: objects merge recursively, `null` removes a key, anything else replaces.
pub(super) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let map = target.as_object_mut().expect("made an object above");
    for (key, value) in fields {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// The `patchMergeKey` of the lists built-in kinds merge instead of replacing (from the
/// `patchStrategy:"merge"` tags of k8s.io/api); every other list is replaced.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => Some("name"),
        "volumeMounts" | "volumeDevices" => Some("mountPath"),
        "ports" => Some("containerPort"),
        "conditions" => Some("type"),
        _ => None,
    }
}

/// Removes `$patch` and other directives from a value inserted as a whole.
fn strip_directives(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// Strategic merge patch of a built-in object: as a merge patch, except that lists with a
/// merge key merge element-wise by that key (`$patch: delete` removes an element), and a map
/// with `$patch: replace` / `$patch: delete` replaces / removes the map.
pub(super) fn strategic_merge(target: &mut Value, patch: &Value) -> Result<(), String> {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match fields.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = strip_directives(patch);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some(other) => return Err(format!("Unknown patch type: {other} in map: {patch}")),
        None => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let map = target.as_object_mut().expect("made an object above");
    for (key, value) in fields {
        if key.starts_with("$setElementOrder/") || key == "$retainKeys" {
            continue;
        }
        if let Some(list) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Value::Array(gone)) = (map.get_mut(list), value) {
                items.retain(|item| !gone.contains(item));
            }
            continue;
        }
        match (value, merge_key(key)) {
            (Value::Null, _) => {
                map.remove(key);
            }
            (Value::Array(items), Some(merge_key)) => {
                merge_list(map.entry(key.clone()).or_insert(json!([])), items, merge_key)?;
            }
            (Value::Object(_), _) => {
                let entry = map.entry(key.clone()).or_insert(Value::Null);
                strategic_merge(entry, value)?;
                if entry.is_null() {
                    map.remove(key);
                }
            }
            (value, _) => {
                map.insert(key.clone(), strip_directives(value));
            }
        }
    }
    Ok(())
}

fn merge_list(target: &mut Value, items: &[Value], key: &str) -> Result<(), String> {
    let replace = items
        .iter()
        .any(|item| item.get("$patch").and_then(Value::as_str) == Some("replace") && item.get(key).is_none());
    if replace || !target.is_array() {
        let kept = items
            .iter()
            .filter(|item| item.get("$patch").is_none() || item.get(key).is_some());
        *target = Value::Array(kept.map(strip_directives).collect());
        return Ok(());
    }
    let list = target.as_array_mut().expect("checked above");
    for item in items {
        let Some(wanted) = item.get(key) else {
            return Err(format!("map: {item} does not contain declared merge key: {key}"));
        };
        let position = list.iter().position(|existing| existing.get(key) == Some(wanted));
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(i) = position {
                list.remove(i);
            }
            continue;
        }
        match position {
            Some(i) => strategic_merge(&mut list[i], item)?,
            None => list.push(strip_directives(item)),
        }
    }
    Ok(())
}

/// Why a JSON patch failed: a body that is not a patch (400), or an operation that does not
/// apply (422).
#[derive(Debug, PartialEq)]
pub(super) enum JsonPatchError {
    Malformed(String),
    NotApplied(String),
}

fn pointer(path: &str) -> Result<Vec<String>, JsonPatchError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| JsonPatchError::NotApplied(format!("JSON pointer must start with '/': {path}")))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn missing(path: &str) -> JsonPatchError {
    JsonPatchError::NotApplied(format!("doc is missing path: \"{path}\": missing value"))
}

fn child<'a>(doc: &'a mut Value, token: &str, path: &str) -> Result<&'a mut Value, JsonPatchError> {
    match doc {
        Value::Object(map) => map.get_mut(token).ok_or_else(|| missing(path)),
        Value::Array(items) => {
            let i: usize = token.parse().map_err(|_| missing(path))?;
            items.get_mut(i).ok_or_else(|| missing(path))
        }
        _ => Err(missing(path)),
    }
}

/// The container of the last token of `path`, and that token.
fn parent<'a>(doc: &'a mut Value, path: &str) -> Result<(&'a mut Value, String), JsonPatchError> {
    let mut tokens = pointer(path)?;
    let last = tokens.pop().ok_or_else(|| missing(path))?;
    let mut node = doc;
    for token in &tokens {
        node = child(node, token, path)?;
    }
    Ok((node, last))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), JsonPatchError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (node, last) = parent(doc, path)?;
    match node {
        Value::Object(map) => {
            map.insert(last, value);
        }
        Value::Array(items) if last == "-" => items.push(value),
        Value::Array(items) => {
            let i: usize = last.parse().map_err(|_| missing(path))?;
            if i > items.len() {
                return Err(JsonPatchError::NotApplied(format!("index out of bounds: {path}")));
            }
            items.insert(i, value);
        }
        _ => return Err(missing(path)),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, JsonPatchError> {
    let (node, last) = parent(doc, path)?;
    match node {
        Value::Object(map) => map.remove(&last).ok_or_else(|| missing(path)),
        Value::Array(items) => {
            let i: usize = last.parse().map_err(|_| missing(path))?;
            if i < items.len() {
                Ok(items.remove(i))
            } else {
                Err(missing(path))
            }
        }
        _ => Err(missing(path)),
    }
}

fn get<'a>(doc: &'a mut Value, path: &str) -> Result<&'a mut Value, JsonPatchError> {
    let mut node = doc;
    for token in pointer(path)? {
        node = child(node, &token, path)?;
    }
    Ok(node)
}

/// RFC 6902 on a copy of `doc`; `doc` changes only when every operation applies.
pub(super) fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), JsonPatchError> {
    let Value::Array(ops) = patch else {
        return Err(JsonPatchError::Malformed(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
            if patch.is_object() { "object" } else { "value" }
        )));
    };
    let mut work = doc.clone();
    for op in ops {
        let path = op["path"].as_str().unwrap_or("");
        let from = op["from"].as_str().unwrap_or("");
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| JsonPatchError::NotApplied("missing value".into()))
        };
        match op["op"].as_str().unwrap_or("") {
            "add" => add(&mut work, path, value()?)?,
            "remove" => {
                remove(&mut work, path)?;
            }
            "replace" => *get(&mut work, path)? = value()?,
            "move" => {
                let moved = remove(&mut work, from)?;
                add(&mut work, path, moved)?;
            }
            "copy" => {
                let copied = get(&mut work, from)?.clone();
                add(&mut work, path, copied)?;
            }
            "test" => {
                if *get(&mut work, path)? != value()? {
                    return Err(JsonPatchError::NotApplied(format!(
                        "testing value {path} failed: test failed"
                    )));
                }
            }
            other => return Err(JsonPatchError::NotApplied(format!("Unexpected kind: {other}"))),
        }
    }
    *doc = work;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_rfc7386_examples() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    }

    #[test]
    fn strategic_merge_by_container_name() {
        let mut doc = json!({"spec": {"containers": [
            {"name": "app", "image": "app:1", "resources": {"requests": {"cpu": "1"}}},
            {"name": "sidecar", "image": "proxy:1"},
        ], "tolerations": [{"key": "a"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [
                {"name": "app", "resources": {"requests": {"cpu": "250m"}}},
                {"name": "sidecar", "$patch": "delete"},
                {"name": "new", "image": "new:1"},
            ],
            "tolerations": [{"key": "b"}],
        }});
        strategic_merge(&mut doc, &patch).unwrap();
        assert_eq!(
            doc,
            json!({"spec": {"containers": [
                {"name": "app", "image": "app:1", "resources": {"requests": {"cpu": "250m"}}},
                {"name": "new", "image": "new:1"},
            ], "tolerations": [{"key": "b"}]}})
        );
    }

    #[test]
    fn json_patch_operations() {
        let mut doc = json!({"spec": {"replicas": 1, "list": ["a"]}});
        let patch = json!([
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/spec/list/-", "value": "b"},
            {"op": "add", "path": "/metadata", "value": {"labels": {"a~b/c": "x"}}},
            {"op": "copy", "from": "/metadata/labels/a~0b~1c", "path": "/spec/copied"},
            {"op": "remove", "path": "/spec/list/0"},
        ]);
        json_patch(&mut doc, &patch).unwrap();
        assert_eq!(
            doc,
            json!({"spec": {"replicas": 3, "list": ["b"], "copied": "x"}, "metadata": {"labels": {"a~b/c": "x"}}})
        );
        let before = doc.clone();
        let failing = json!([{"op": "replace", "path": "/spec/replicas", "value": 9}, {"op": "test", "path": "/spec/replicas", "value": 1}]);
        assert!(matches!(
            json_patch(&mut doc, &failing),
            Err(JsonPatchError::NotApplied(_))
        ));
        assert_eq!(doc, before, "a failed patch leaves the object alone");
        assert!(matches!(
            json_patch(&mut doc, &json!({})),
            Err(JsonPatchError::Malformed(_))
        ));
    }
}
