//! Checks every HTTP request passes before MCP sees it: DNS-rebinding protection
//! (Host/Origin), media types, and the body size limit.

use std::net::IpAddr;

use http::{header, HeaderMap};

/// Host/Origin policy for one listener.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    /// The listener is on a loopback address: only loopback Host/Origin values pass.
    pub loopback_only: bool,
    /// Extra accepted host names (with or without port), e.g. `mcp.example.com`.
    pub allowed_hosts: Vec<String>,
    /// Extra accepted origins, e.g. `https://app.example.com`; `*` accepts any.
    pub allowed_origins: Vec<String>,
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn is_loopback_name(host: &str) -> bool {
    let h = strip_port(host).to_ascii_lowercase();
    h == "localhost" || h.ends_with(".localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl OriginPolicy {
    /// Whether a listener on `addr` may start with this policy: off loopback, the operator
    /// must name the hosts clients use (or say `["*"]` to accept any, knowingly).
    pub fn check_listener(&self, addr: std::net::SocketAddr) -> Result<(), String> {
        if addr.ip().is_loopback() || !self.allowed_hosts.is_empty() {
            return Ok(());
        }
        Err(format!(
            "http.allowed_hosts is empty, but the listener {addr} is not loopback: set it to the host names \
             clients use (e.g. allowed_hosts = [\"mcp.example.com\"]), or to [\"*\"] to accept any Host \
             header without DNS-rebinding protection"
        ))
    }

    /// Loopback names always pass (a rebinding attack needs a name the attacker controls);
    /// anything else only when listed, or when the operator listed `*`.
    fn host_ok(&self, host: &str) -> bool {
        let bare = strip_port(host);
        self.allowed_hosts
            .iter()
            .any(|a| a == "*" || a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(bare))
            || is_loopback_name(host)
    }

    /// `Err(reason)` when the request must be refused with 403.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), String> {
        self.check_request(headers, None)
    }

    /// Like [`OriginPolicy::check`]; `authority` is the request URI's (HTTP/2 `:authority`),
    /// which stands for `Host` when that header is absent.
    pub fn check_request(&self, headers: &HeaderMap, authority: Option<&str>) -> Result<(), String> {
        let host = match headers.get(header::HOST) {
            Some(h) => Some(h.to_str().map_err(|_| "Host header is not valid ASCII".to_string())?),
            None => authority,
        };
        if let Some(host) = host {
            if !self.host_ok(host) {
                return Err(format!(
                    "Host {host:?} is not allowed (DNS-rebinding protection); add it to http.allowed_hosts"
                ));
            }
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin
                .to_str()
                .map_err(|_| "Origin header is not valid ASCII".to_string())?;
            if self
                .allowed_origins
                .iter()
                .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
            {
                return Ok(());
            }
            let host = origin.split_once("://").map(|(_, h)| h).unwrap_or("");
            // Same-origin requests (the Origin names the Host that already passed) and
            // origins on listed hosts pass; `*` in allowed_hosts says nothing about origins.
            let ok = is_loopback_name(host)
                || self
                    .allowed_hosts
                    .iter()
                    .any(|a| a != "*" && (a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(strip_port(host))))
                || (!self.loopback_only
                    && headers.get(header::HOST).and_then(|h| h.to_str().ok()).or(authority) == Some(host));
            if !ok || origin == "null" {
                return Err(format!(
                    "Origin {origin:?} is not allowed (DNS-rebinding protection); add it to http.allowed_origins"
                ));
            }
        }
        Ok(())
    }
}

/// `Content-Type` of a POST must be JSON.
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether an `Accept` header admits `mime` (absent header admits everything).
pub fn accepts(headers: &HeaderMap, mime: &str) -> bool {
    let Some(a) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let (ty, _) = mime.split_once('/').unwrap_or((mime, ""));
    a.split(',').any(|part| {
        let m = part.split(';').next().unwrap_or("").trim();
        m.eq_ignore_ascii_case(mime) || m == "*/*" || m.eq_ignore_ascii_case(&format!("{ty}/*"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn loopback_policy() {
        let p = OriginPolicy {
            loopback_only: true,
            allowed_hosts: vec![],
            allowed_origins: vec![],
        };
        assert!(p.check(&h(&[("host", "127.0.0.1:8080")])).is_ok());
        assert!(p
            .check(&h(&[("host", "[::1]:8080"), ("origin", "http://localhost:3000")]))
            .is_ok());
        assert!(p.check(&h(&[("host", "evil.example.com")])).is_err());
        assert!(p
            .check(&h(&[("host", "localhost"), ("origin", "http://evil.example.com")]))
            .is_err());
    }

    #[test]
    fn every_listener_checks_the_host() {
        let public = OriginPolicy {
            loopback_only: false,
            allowed_hosts: vec!["mcp.example.com".into()],
            allowed_origins: vec![],
        };
        assert!(public.check(&h(&[("host", "mcp.example.com:443")])).is_ok());
        assert!(public.check(&h(&[("host", "localhost:8080")])).is_ok());
        assert!(public.check(&h(&[("host", "rebound.attacker.example")])).is_err());
        assert!(public
            .check(&h(&[
                ("host", "mcp.example.com"),
                ("origin", "https://mcp.example.com")
            ]))
            .is_ok());
        assert!(public
            .check(&h(&[("host", "mcp.example.com"), ("origin", "https://evil.example")]))
            .is_err());
        let any = OriginPolicy {
            loopback_only: false,
            allowed_hosts: vec!["*".into()],
            allowed_origins: vec![],
        };
        assert!(any.check(&h(&[("host", "whatever.example")])).is_ok());
        assert!(any
            .check(&h(&[("host", "a.example"), ("origin", "https://b.example")]))
            .is_err());
        let addr = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        let none = OriginPolicy {
            loopback_only: false,
            allowed_hosts: vec![],
            allowed_origins: vec![],
        };
        let e = none.check_listener(addr("0.0.0.0:8080")).unwrap_err();
        assert!(e.contains("http.allowed_hosts"), "{e}");
        assert!(none.check_listener(addr("127.0.0.1:8080")).is_ok());
        assert!(any.check_listener(addr("0.0.0.0:8080")).is_ok());
    }

    #[test]
    fn accept_rules() {
        assert!(accepts(
            &h(&[("accept", "application/json, text/event-stream")]),
            "text/event-stream"
        ));
        assert!(accepts(&h(&[("accept", "*/*")]), "application/json"));
        assert!(!accepts(&h(&[("accept", "text/html")]), "application/json"));
        assert!(accepts(&HeaderMap::new(), "application/json"));
    }
}
