//! Published OpenAPI documents (the Swagger Petstore 3.0 in JSON, the OpenAPI Initiative's
//! Tic Tac Toe 3.1 in YAML) mapped to tools: every schema compiles, and the mapping of the
//! operations a model would call is what a person would write by hand.

use serde_json::{json, Value};
use waygate_openapi::{parse_document, Api, Filter, Shape};

fn load(name: &str) -> Value {
    let path = format!("{}/../../tests/fixtures/openapi/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    parse_document(&text).unwrap()
}

fn every_schema_compiles(api: &Api) {
    for o in &api.operations {
        for key in ["inputSchema", "outputSchema"] {
            if let Some(s) = o.tool.get(key) {
                assert_eq!(s["type"], json!("object"), "{} {key}", o.name);
                jsonschema::validator_for(s).unwrap_or_else(|e| panic!("{} {key}: {e}", o.name));
            }
        }
    }
}

#[test]
fn petstore_3_0_json() {
    let api = Api::from_document(&load("petstore.json"), &Filter::default()).unwrap();
    assert_eq!(api.openapi, "3.0.4");
    assert_eq!(api.servers, vec!["https://petstore3.swagger.io/api/v3".to_string()]);
    assert_eq!(api.operations.len(), 19, "skipped: {:?}", api.skipped);
    assert!(api.skipped.is_empty());
    every_schema_compiles(&api);

    let get = api.operation("getPetById").unwrap();
    assert_eq!((get.method.as_str(), get.path.as_str()), ("GET", "/pet/{petId}"));
    assert_eq!(get.tool["inputSchema"]["properties"]["petId"]["type"], json!("integer"));
    assert_eq!(get.tool["inputSchema"]["required"], json!(["petId"]));
    assert_eq!(get.tool["annotations"]["readOnlyHint"], json!(true));
    let out = &get.tool["outputSchema"];
    assert_eq!(out["required"], json!(["name", "photoUrls"]));
    assert_eq!(out["properties"]["category"], json!({"$ref": "#/$defs/Category"}));
    assert!(out["$defs"]["Tag"].is_object());
    let pet = json!({"id": 1, "name": "rex", "photoUrls": [], "category": {"id": 1, "name": "dogs"}});
    assert!(jsonschema::validator_for(out).unwrap().is_valid(&pet));
    assert!(!jsonschema::validator_for(out).unwrap().is_valid(&json!({"id": 1})));

    // A JSON object body is flattened, its required properties required.
    let add = api.operation("addPet").unwrap();
    assert!(matches!(&add.body.as_ref().unwrap().shape, Shape::Flat(n) if n.contains(&"photoUrls".to_string())));
    assert_eq!(add.tool["inputSchema"]["required"], json!(["name", "photoUrls"]));
    assert_eq!(add.tool["title"], json!("Add a new pet to the store."));
    assert_eq!(add.tool["_meta"]["io.waygate/tags"], json!(["pet"]));

    // An array body stays one argument; a header parameter is an argument too.
    let list = api.operation("createUsersWithListInput").unwrap();
    assert_eq!(list.tool["inputSchema"]["properties"]["body"]["type"], json!("array"));
    let del = api.operation("deletePet").unwrap();
    assert_eq!(del.tool["annotations"]["destructiveHint"], json!(true));
    assert!(del.tool["inputSchema"]["properties"]["api_key"].is_object());
    // The enum of a query parameter survives, with its default.
    let by_status = api.operation("findPetsByStatus").unwrap();
    assert_eq!(
        by_status.tool["inputSchema"]["properties"]["status"]["default"],
        json!("available")
    );
    assert!(
        by_status.tool.get("outputSchema").is_none(),
        "an array result has no object schema"
    );
}

#[test]
fn tictactoe_3_1_yaml() {
    let api = Api::from_document(&load("tictactoe.yaml"), &Filter::default()).unwrap();
    assert_eq!(api.openapi, "3.1.0");
    let names: Vec<&str> = api.operations.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["get-board", "get-square", "put-square"]);
    every_schema_compiles(&api);
    // Path-level parameters given by reference reach both operations.
    let put = api.operation("put-square").unwrap();
    let s = &put.tool["inputSchema"];
    assert_eq!(s["required"], json!(["row", "column", "body"]));
    assert_eq!(s["properties"]["row"], json!({"$ref": "#/$defs/coordinate"}));
    assert_eq!(s["$defs"]["coordinate"]["maximum"], json!(3));
    assert_eq!(s["properties"]["body"], json!({"$ref": "#/$defs/mark"}));
    let v = jsonschema::validator_for(s).unwrap();
    assert!(v.is_valid(&json!({"row": 1, "column": 3, "body": "X"})));
    assert!(!v.is_valid(&json!({"row": 4, "column": 3, "body": "X"})));
    assert!(!v.is_valid(&json!({"row": 1, "column": 3, "body": "Z"})));
    let r = put
        .request(
            "http://127.0.0.1:1",
            json!({"row": 1, "column": 3, "body": "X"}).as_object().unwrap(),
        )
        .unwrap();
    assert_eq!(r.url, "http://127.0.0.1:1/board/1/3");
    assert_eq!(r.body, Some(("application/json".into(), b"\"X\"".to_vec())));
}

#[test]
fn filters_by_method_path_and_tag() {
    let doc = load("petstore.json");
    let f = Filter::parse(&["tag:pet".into(), "GET /store/*".into()], &["DELETE".into()]).unwrap();
    let api = Api::from_document(&doc, &f).unwrap();
    let mut names: Vec<&str> = api.operations.iter().map(|o| o.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "addPet",
            "findPetsByStatus",
            "findPetsByTags",
            "getInventory",
            "getOrderById",
            "getPetById",
            "updatePet",
            "updatePetWithForm",
            "uploadFile"
        ]
    );
}

#[test]
fn documents_that_are_not_openapi_3_are_refused_clearly() {
    let e = Api::from_document(&json!({"swagger": "2.0"}), &Filter::default()).unwrap_err();
    assert!(e.to_string().contains("Swagger 2.0"));
    let e = Api::from_document(&json!({"info": {}}), &Filter::default()).unwrap_err();
    assert!(e.to_string().contains("openapi"));
    assert!(parse_document("openapi: [unclosed").is_err());
}
