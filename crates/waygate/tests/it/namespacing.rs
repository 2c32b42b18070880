//! Resource URIs and prompt names from upstreams are namespaced reversibly by the same
//! prefix policy as tool names, and `completion/complete` reaches the owning upstream under
//! the name it knows.

use serde_json::{json, Value};

use crate::catalog::{eventually, modern_at, self_upstream, write_config};
use crate::common::{Server, TempDir};

fn list(s: &Server, method: &str, key: &str, field: &str) -> Vec<String> {
    let r = modern_at(s, "/mcp", 1, method, json!({}), None).json();
    let mut v: Vec<String> = r["result"][key]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x[field].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn read(s: &Server, uri: &str) -> Value {
    modern_at(s, "/mcp", 2, "resources/read", json!({"uri": uri}), None).json()
}

#[test]
fn upstream_resources_and_prompts_are_namespaced_and_completion_maps_back() {
    let d = TempDir::new("ns");
    let cfg = write_config(
        &d,
        &format!(
            "{}{}",
            self_upstream("inner", "prefix = \"always\"")
                .replace("\"--data-dir\"", "\"--plugin\", \"everything\", \"--data-dir\""),
            self_upstream("twin", "")
        ),
    );
    let s = Server::start_in(Some(&d.0), &["--config", &cfg]);
    eventually(30, "both upstreams' resources", || {
        let r = list(&s, "resources/list", "resources", "uri");
        r.contains(&"waygate://inner/test://static-text".to_string())
            && r.contains(&"waygate://twin/demo://readme".to_string())
    });
    let resources = list(&s, "resources/list", "resources", "uri");
    // The local plugin keeps its URI; `always` namespaces; on a conflict the newcomer is namespaced.
    assert!(resources.contains(&"demo://readme".to_string()), "{resources:?}");
    assert!(
        resources.contains(&"waygate://inner/demo://readme".to_string()),
        "{resources:?}"
    );
    assert!(!resources.contains(&"test://static-text".to_string()), "{resources:?}");

    let r = read(&s, "waygate://inner/test://static-text");
    let c = &r["result"]["contents"][0];
    assert_eq!(c["uri"], json!("waygate://inner/test://static-text"), "{r}");
    assert_eq!(
        c["text"],
        json!("This is the content of the static text resource."),
        "{r}"
    );
    let twin = read(&s, "waygate://twin/demo://readme");
    assert!(twin["result"]["contents"][0]["text"].is_string(), "{twin}");
    assert!(
        read(&s, "test://static-text")["error"]["code"].is_i64(),
        "the bare URI is not the upstream's"
    );

    // Templates: namespaced, matched, and read under the plugin's own URI.
    let templates = list(&s, "resources/templates/list", "resourceTemplates", "uriTemplate");
    assert!(
        templates.contains(&"waygate://inner/test://template/{id}/data".to_string()),
        "{templates:?}"
    );
    let t = read(&s, "waygate://inner/test://template/42/data");
    assert_eq!(
        t["result"]["contents"][0]["uri"],
        json!("waygate://inner/test://template/42/data"),
        "{t}"
    );
    assert!(
        t["result"]["contents"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("Data for ID: 42"),
        "{t}"
    );

    // Prompts carry the prefix; completion reaches the upstream under its own names.
    let prompts = list(&s, "prompts/list", "prompts", "name");
    assert!(
        prompts.contains(&"inner__test_prompt_with_arguments".to_string()),
        "{prompts:?}"
    );
    assert!(
        prompts.contains(&"greet".to_string()) && prompts.contains(&"twin__greet".to_string()),
        "{prompts:?}"
    );
    let complete = |reference: Value, arg: &str| {
        modern_at(
            &s,
            "/mcp",
            3,
            "completion/complete",
            json!({"ref": reference, "argument": {"name": arg, "value": ""}}),
            None,
        )
        .json()
    };
    let p = complete(
        json!({"type": "ref/prompt", "name": "inner__test_prompt_with_arguments"}),
        "arg1",
    );
    assert_eq!(
        p["result"]["completion"]["values"],
        json!(["alpha", "beta", "gamma", "delta"]),
        "{p}"
    );
    let r = complete(
        json!({"type": "ref/resource", "uri": "waygate://inner/test://template/{id}/data"}),
        "id",
    );
    assert_eq!(r["result"]["completion"]["values"], json!(["1", "2", "3", "42"]), "{r}");
    // The bare template is not the upstream's any more: it completes to nothing.
    let bare = complete(
        json!({"type": "ref/resource", "uri": "test://template/{id}/data"}),
        "id",
    );
    assert_eq!(bare["result"]["completion"]["values"], json!([]), "{bare}");
    let unknown = complete(
        json!({"type": "ref/prompt", "name": "test_prompt_with_arguments"}),
        "arg1",
    );
    assert_eq!(unknown["error"]["code"], json!(-32602), "{unknown}");
}
