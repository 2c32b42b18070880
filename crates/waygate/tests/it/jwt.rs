//! OAuth 2.1 resource server of the real binary: JWTs signed with real P-256 keys, a real
//! JWKS served over loopback HTTP, RFC 9728 metadata and challenges, forged tokens (alg
//! none, wrong key, wrong audience, expired, HMAC with the public key), key rotation, and
//! roles from claims feeding the authorization policy.

use super::common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use common::{Server, TempDir};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{json, Value};

struct Key {
    kid: String,
    enc: EncodingKey,
    jwk: Value,
}

fn key(kid: &str) -> Key {
    let mut raw = [0u8; 32];
    getrandom::getrandom(&mut raw).unwrap();
    let sk = p256::SecretKey::from_slice(&raw).expect("valid scalar");
    let pem = sk.to_pkcs8_pem(LineEnding::LF).unwrap();
    let point = sk.public_key().to_encoded_point(false);
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
        "x": B64.encode(point.x().unwrap()), "y": B64.encode(point.y().unwrap()),
    });
    Key {
        kid: kid.into(),
        enc: EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        jwk,
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn sign(k: &Key, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(k.kid.clone());
    jsonwebtoken::encode(&h, claims, &k.enc).unwrap()
}

const ISS: &str = "https://issuer.test";
const AUD: &str = "https://mcp.test/mcp";

fn claims(extra: Value) -> Value {
    let mut c = json!({"iss": ISS, "aud": AUD, "sub": "user-1", "exp": now() + 600, "iat": now(),
                       "scope": "mcp openid", "email": "u1@example.com", "roles": ["reader"]});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// A JWKS endpoint on loopback serving whatever `keys` holds; counts fetches.
fn jwks_server(keys: Arc<Mutex<Vec<Value>>>, fetches: Arc<Mutex<u32>>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                line.clear();
            }
            *fetches.lock().unwrap() += 1;
            let body = json!({"keys": *keys.lock().unwrap()}).to_string();
            let mut c = conn;
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}/jwks")
}

fn unauthenticated_part(s: &Server, token: &str) -> (u16, String, String) {
    let r = s.post(
        &json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
        &[("authorization", &format!("Bearer {token}"))],
    );
    (
        r.status,
        r.header("www-authenticate").unwrap_or("").to_string(),
        r.text(),
    )
}

#[test]
fn jwt_resource_server() {
    let k1 = key("k1");
    let k2 = key("k2");
    let jwks = Arc::new(Mutex::new(vec![k1.jwk.clone()]));
    let fetches = Arc::new(Mutex::new(0));
    let url = jwks_server(jwks.clone(), fetches.clone());
    let d = TempDir::new("jwt");
    std::fs::write(
        d.0.join("waygate.toml"),
        format!(
            r#"version = 3
[auth.jwt]
issuer = "{ISS}"
audiences = ["{AUD}"]
jwks_url = "{url}"
resource = "{AUD}"
name_claim = "email"
leeway_secs = 5
jwks_min_refetch_secs = 1

[authz]
default = "deny"
[[policies]]
name = "readers"
effect = "allow"
roles = ["reader"]
tools = ["echo"]
"#
        ),
    )
    .unwrap();
    let (s, _admin) = Server::start_with_auth(&d.0);

    // RFC 9728: metadata is public and the challenge points at it.
    let meta = s.request("GET", "/.well-known/oauth-protected-resource/mcp", &[], b"");
    assert_eq!(meta.status, 200);
    let m = meta.json();
    assert_eq!(m["resource"], AUD);
    assert_eq!(m["authorization_servers"], json!([ISS]));
    let r = s.post(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}), &[]);
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate").unwrap();
    assert!(
        challenge.contains("resource_metadata=\"https://mcp.test/.well-known/oauth-protected-resource/mcp\""),
        "{challenge}"
    );

    // A good token: principal from claims, roles from the `roles` claim feed the policy.
    let good = sign(&k1, &claims(json!({})));
    let r = s.post(
        &json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
        &[("authorization", &format!("Bearer {good}"))],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let listed = r.json();
    let tools: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, vec!["echo"]);

    // Forgeries and bad claims: 401 with invalid_token, the token never echoed.
    let header_none = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = B64.encode(claims(json!({})).to_string());
    let alg_none = format!("{header_none}.{body}.");
    let wrong_key = {
        let mut c = sign(&k2, &claims(json!({})));
        // Same kid as the trusted key, different signer.
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some("k1".into());
        c = jsonwebtoken::encode(&h, &claims(json!({})), &k2.enc).unwrap_or(c);
        c
    };
    let hs_confusion = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("k1".into());
        let secret = k1.jwk.to_string();
        jsonwebtoken::encode(&h, &claims(json!({})), &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    };
    let cases = [
        ("alg none", alg_none),
        ("wrong key", wrong_key),
        ("hmac with public key", hs_confusion),
        (
            "wrong audience",
            sign(&k1, &claims(json!({"aud": "https://other.test/mcp"}))),
        ),
        ("wrong issuer", sign(&k1, &claims(json!({"iss": "https://evil.test"})))),
        ("expired", sign(&k1, &claims(json!({"exp": now() - 3600})))),
        ("not yet valid", sign(&k1, &claims(json!({"nbf": now() + 3600})))),
        ("no exp", sign(&k1, &claims(json!({"exp": null})))),
        ("garbage", "not.a.jwt".to_string()),
        ("tampered", {
            let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
            parts[1] = B64.encode(claims(json!({"roles": ["admin"]})).to_string());
            parts.join(".")
        }),
    ];
    for (what, token) in &cases {
        let (status, challenge, body) = unauthenticated_part(&s, token);
        assert_eq!(status, 401, "{what}: {body}");
        assert!(challenge.contains("invalid_token"), "{what}: {challenge}");
        assert!(!body.contains(token.as_str()), "{what}: token echoed");
    }
    let (_, _, expired_body) = unauthenticated_part(&s, &cases[5].1);
    assert!(expired_body.contains("expired"), "{expired_body}");
    let (_, _, aud_body) = unauthenticated_part(&s, &cases[3].1);
    assert!(aud_body.contains("audience"), "{aud_body}");

    // A token without the required scope: 403 insufficient_scope.
    let r = s.post(
        &json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
        &[(
            "authorization",
            &format!("Bearer {}", sign(&k1, &claims(json!({"scope": "openid"})))),
        )],
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.header("www-authenticate").unwrap().contains("insufficient_scope"));

    // Key rotation: a token signed by a new key is accepted once the JWKS publishes it,
    // without a restart (unknown kid → refetch, rate limited).
    let rotated = sign(&k2, &claims(json!({"sub": "user-2"})));
    assert_eq!(unauthenticated_part(&s, &rotated).0, 401);
    jwks.lock().unwrap().push(k2.jwk.clone());
    std::thread::sleep(Duration::from_millis(1100));
    let before = *fetches.lock().unwrap();
    let (status, _, body) = unauthenticated_part(&s, &rotated);
    assert_eq!(status, 200, "{body}");
    assert!(*fetches.lock().unwrap() > before);
    // A flood of unknown kids does not flood the issuer.
    let stranger = key("k9");
    let before = *fetches.lock().unwrap();
    for _ in 0..20 {
        assert_eq!(unauthenticated_part(&s, &sign(&stranger, &claims(json!({})))).0, 401);
    }
    assert!(*fetches.lock().unwrap() - before <= 1, "JWKS refetch is rate limited");
}
