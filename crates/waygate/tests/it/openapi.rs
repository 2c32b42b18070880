//! OpenAPI upstreams through the real binary: the published Petstore (3.0, JSON) and Tic
//! Tac Toe (3.1, YAML) documents served as tools, called against a small REST server on
//! loopback, with a credential from `${secret:…}`, operation filters, argument validation,
//! hostile path arguments, and an upstream added at runtime through the CLI.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use crate::catalog::{eventually, modern_at, tools_at, write_config};
use crate::common::{self, Server, TempDir};

const API_KEY: &str = "pet-key-4c1e9a77d2";
const SEAL: &str = "openapi test sealing passphrase";

fn fixture(name: &str) -> String {
    format!("{}/../../tests/fixtures/openapi/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The REST server; killed when dropped.
struct Rest {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Drop for Rest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Rest {
    fn start(d: &TempDir) -> Rest {
        let log = d.0.join("requests.log");
        let mut child = Command::new("python3")
            .arg(fixture("petstore_server.py"))
            .env("PETSTORE_KEY", API_KEY)
            .env("REQUEST_LOG", &log)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("port line");
        Rest { child, port, log }
    }

    fn requests(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn call(s: &Server, key: &str, id: i64, tool: &str, args: Value) -> Value {
    modern_at(
        s,
        "/mcp",
        id,
        "tools/call",
        json!({"name": tool, "arguments": args}),
        Some(key),
    )
    .json()
}

fn text_of(r: &Value) -> String {
    r["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn published_documents_serve_as_tools_against_a_real_rest_server() {
    let d = TempDir::new("openapi");
    let rest = Rest::start(&d);
    let dir = d.0.to_str().unwrap();
    let (ok, _, err) = common::cli_env(
        &["secrets", "set", "petstore_key", "--data-dir", dir],
        &[("WAYGATE_SECRET_KEY", SEAL)],
        Some(&format!("{API_KEY}\n")),
    );
    assert!(ok, "{err}");
    let cfg = write_config(
        &d,
        &format!(
            "[[upstreams]]\nname = \"petstore\"\nopenapi = \"{pet}\"\n\
             base_url = \"http://127.0.0.1:{port}/api/v3\"\nprefix = \"never\"\n\
             headers = {{ api_key = \"${{secret:petstore_key}}\" }}\n\
             operations.exclude = [\"DELETE /store/*\", \"tag:user\"]\n\
             [[upstreams]]\nname = \"ttt\"\nopenapi = \"{ttt}\"\n\
             base_url = \"http://127.0.0.1:{port}/ttt\"\nprefix = \"always\"\n\
             operations.include = [\"tag:Gameplay\"]\n\
             [[servers]]\nname = \"pets\"\ninclude = [\"petstore\", \"ttt\"]\ntags = [\"pe*\"]\n",
            pet = fixture("petstore.json"),
            ttt = fixture("tictactoe.yaml"),
            port = rest.port
        ),
    );
    let (s, key) = Server::start_auth_env(&d.0, &["--config", &cfg], &[("WAYGATE_SECRET_KEY", SEAL)]);
    let key = key.expect("admin key");
    eventually(20, "the OpenAPI tools", || {
        let t = tools_at(&s, "/mcp", Some(&key));
        t.contains(&"addPet".to_string()) && t.contains(&"ttt__put-square".to_string())
    });
    let tools = tools_at(&s, "/mcp", Some(&key));
    assert!(tools.contains(&"deletePet".to_string()), "{tools:?}");
    assert!(
        !tools.contains(&"deleteOrder".to_string()),
        "DELETE /store/* excluded: {tools:?}"
    );
    assert!(
        !tools.iter().any(|t| t == "createUser" || t == "loginUser"),
        "tag:user excluded: {tools:?}"
    );
    // A virtual server selecting by the operations' tags.
    let pets = tools_at(&s, "/servers/pets/mcp", Some(&key));
    assert!(
        pets.contains(&"addPet".to_string()) && pets.contains(&"deletePet".to_string()),
        "{pets:?}"
    );
    assert!(
        !pets.iter().any(|t| t == "getInventory" || t.starts_with("ttt__")),
        "{pets:?}"
    );

    // The definitions a model sees.
    let list = modern_at(&s, "/mcp", 2, "tools/list", json!({}), Some(&key)).json();
    let def = |n: &str| {
        list["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == n)
            .cloned()
            .unwrap()
    };
    let get = def("getPetById");
    assert_eq!(get["annotations"]["readOnlyHint"], json!(true));
    assert_eq!(get["inputSchema"]["required"], json!(["petId"]));
    assert_eq!(get["outputSchema"]["type"], json!("object"));
    assert_eq!(def("addPet")["inputSchema"]["required"], json!(["name", "photoUrls"]));

    // Calls: a flattened JSON body, a path parameter, a query array, structured results.
    let added = call(
        &s,
        &key,
        3,
        "addPet",
        json!({"name": "rex", "photoUrls": [], "status": "available",
        "tags": [{"id": 1, "name": "good"}]}),
    );
    let pet = &added["result"]["structuredContent"];
    assert_eq!(pet["name"], json!("rex"), "{added}");
    let id = pet["id"].as_i64().unwrap();
    let got = call(&s, &key, 4, "getPetById", json!({"petId": id}));
    assert_eq!(got["result"]["structuredContent"]["name"], json!("rex"), "{got}");
    let by_tag = call(&s, &key, 5, "findPetsByTags", json!({"tags": ["good", "other"]}));
    assert!(text_of(&by_tag).contains("\"rex\""), "{by_tag}");
    assert!(rest.requests().contains("/api/v3/pet/findByTags?tags=good&tags=other"));

    // The credential from ${secret:…} reaches the API (and nowhere else).
    let inv = call(&s, &key, 6, "getInventory", json!({}));
    assert_eq!(inv["result"]["structuredContent"]["available"], json!(1), "{inv}");

    // Arguments are checked against the schema before any request is made.
    // (reported as a tool error the model can correct, as the 2025-11-25 revision says).
    let before = rest.requests().lines().count();
    let bad = call(&s, &key, 7, "getPetById", json!({"petId": "1/../../store/inventory"}));
    assert_eq!(bad["result"]["isError"], json!(true), "{bad}");
    assert!(text_of(&bad).contains("petId"), "{bad}");
    assert_eq!(rest.requests().lines().count(), before, "nothing was sent");

    let s2 = call(&s, &key, 8, "deletePet", json!({"petId": id}));
    assert!(s2["result"].get("isError").is_none(), "{s2}");
    let gone = call(&s, &key, 9, "getPetById", json!({"petId": id}));
    assert_eq!(gone["result"]["isError"], json!(true), "{gone}");
    assert!(text_of(&gone).starts_with("HTTP 404"), "{gone}");

    // 3.1 + YAML: a whole (non-object) body, path parameters given by reference.
    let put = call(
        &s,
        &key,
        10,
        "ttt__put-square",
        json!({"row": 2, "column": 3, "body": "X"}),
    );
    assert_eq!(put["result"]["structuredContent"]["board"][1][2], json!("X"), "{put}");
    let again = call(
        &s,
        &key,
        11,
        "ttt__put-square",
        json!({"row": 2, "column": 3, "body": "O"}),
    );
    assert_eq!(again["result"]["isError"], json!(true));
    assert!(text_of(&again).contains("Square is not empty"), "{again}");
    let off = call(
        &s,
        &key,
        12,
        "ttt__put-square",
        json!({"row": 4, "column": 1, "body": "X"}),
    );
    assert_eq!(off["result"]["isError"], json!(true), "{off}");
    assert!(text_of(&off).contains("/row"), "{off}");

    // Diagnostics show the upstream as an OpenAPI one, up, without the credential.
    let diag = s
        .request("GET", "/api/v1/diagnostics", &[("x-api-key", &key)], b"")
        .text();
    assert!(!diag.contains(API_KEY), "{diag}");
    let ups = s
        .request("GET", "/api/v1/upstreams", &[("x-api-key", &key)], b"")
        .json();
    let row = ups["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "petstore")
        .cloned()
        .unwrap();
    assert_eq!(row["transport"], json!("openapi"), "{row}");
    assert_eq!(row["state"], json!("up"), "{row}");
    assert_eq!(row["upstream"]["server_info"]["openapi"], json!("3.0.4"), "{row}");
}

#[test]
fn an_openapi_upstream_added_at_runtime_and_a_broken_document_reported() {
    let d = TempDir::new("openapi-rt");
    let rest = Rest::start(&d);
    let (s, key) = Server::start_auth_with(&d.0, &[]);
    let key = key.expect("admin key");
    let url = format!("http://{}", s.addr);
    let env = [("WAYGATE_API_KEY", key.as_str())];
    let base = format!("http://127.0.0.1:{}/api/v3", rest.port);
    let pet = fixture("petstore.json");
    let (ok, out, err) = common::cli_env(
        &[
            "upstreams",
            "add",
            "pets",
            "--openapi",
            &pet,
            "--base-url",
            &base,
            "--include-op",
            "GET /pet/*",
            "--include-op",
            "GET /user/*",
            "--prefix",
            "always",
            "--url",
            &url,
        ],
        &env,
        None,
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("openapi"), "{out}");
    eventually(20, "the runtime OpenAPI tools", || {
        tools_at(&s, "/mcp", Some(&key)).contains(&"pets__getPetById".to_string())
    });
    let tools = tools_at(&s, "/mcp", Some(&key));
    assert!(
        !tools.contains(&"pets__addPet".to_string()),
        "only GET /pet/*: {tools:?}"
    );
    let miss = call(&s, &key, 1, "pets__getPetById", json!({"petId": 999}));
    assert!(text_of(&miss).contains("Pet not found"), "{miss}");
    // A hostile string path argument stays one encoded path segment.
    let user = call(
        &s,
        &key,
        2,
        "pets__getUserByName",
        json!({"username": "../pet/1?x=1#f"}),
    );
    assert!(
        text_of(&user).contains("User not found: ..%2Fpet%2F1%3Fx%3D1%23f"),
        "{user}"
    );
    assert!(
        rest.requests().contains("\"/api/v3/user/..%2Fpet%2F1%3Fx%3D1%23f\""),
        "{}",
        rest.requests()
    );

    // A document that is not OpenAPI: refused with the reason, the rest keeps serving.
    let junk = d.0.join("junk.yaml");
    std::fs::write(&junk, "swagger: \"2.0\"\ninfo: {title: old}\n").unwrap();
    let (_, out, err) = common::cli_env(
        &[
            "upstreams",
            "add",
            "old",
            "--openapi",
            junk.to_str().unwrap(),
            "--base-url",
            &base,
            "--url",
            &url,
        ],
        &env,
        None,
    );
    let both = format!("{out}{err}");
    assert!(both.contains("Swagger 2.0"), "{both}");
    // A bad operation rule names the field.
    let (ok, out, err) = common::cli_env(
        &[
            "upstreams",
            "add",
            "bad",
            "--openapi",
            &pet,
            "--include-op",
            "FETCH /x",
            "--url",
            &url,
        ],
        &env,
        None,
    );
    assert!(!ok && format!("{out}{err}").contains("operations"), "{out}{err}");
    assert!(tools_at(&s, "/mcp", Some(&key)).contains(&"pets__getPetById".to_string()));
}

#[test]
fn config_validate_checks_openapi_upstreams() {
    let d = TempDir::new("openapi-validate");
    let cases = [
        ("command = \"srv\"", "upstreams[0].openapi"),
        ("operations.include = [\"GET pets\"]", "upstreams[0].operations"),
        ("base_url = \"http://169.254.169.254/latest\"", "upstreams[0].base_url"),
    ];
    for (extra, field) in cases {
        let cfg = write_config(
            &d,
            &format!("[[upstreams]]\nname = \"x\"\nopenapi = \"spec.json\"\n{extra}\n"),
        );
        let dir = d.0.to_str().unwrap();
        let (ok, out, err) = common::cli(&["config", "validate", "--config", &cfg, "--data-dir", dir]);
        assert!(!ok && format!("{out}{err}").contains(field), "{extra}: {out}{err}");
    }
}
