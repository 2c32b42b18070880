//! SSRF guard for every outbound connection Waygate makes on a configuration's or a tool's
//! behalf (remote upstreams, the `http_request` tool).
//!
//! Link-local addresses — where cloud metadata services live (169.254.169.254,
//! fd00:ec2::254) — and the unspecified/broadcast/multicast ranges are always refused unless
//! explicitly allowed; private ranges and loopback are configurable. The check runs on the
//! *resolved* addresses inside the HTTP client's resolver ([`Guard::client`]), so a name that
//! resolves to a forbidden address (DNS rebinding included) is refused at connect time, and
//! on literal addresses in URLs before a request is sent ([`Guard::check_url`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsrfError {
    #[error("URL {0:?} is not a valid http(s) URL")]
    BadUrl(String),
    #[error("address {ip} of {host:?} is refused: {why} (SSRF guard; see [outbound] in the configuration)")]
    Refused {
        host: String,
        ip: IpAddr,
        why: &'static str,
    },
    #[error("host {0:?} is refused: cloud metadata endpoint (SSRF guard)")]
    MetadataName(String),
}

/// What outbound connections may reach.
#[derive(Debug, Clone)]
pub struct Guard {
    pub allow_loopback: bool,
    pub allow_private: bool,
    pub allow_link_local: bool,
    /// Extra refused networks as `(address, prefix length)`.
    pub deny: Vec<(IpAddr, u8)>,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            allow_loopback: true,
            allow_private: true,
            allow_link_local: false,
            deny: vec![],
        }
    }
}

/// Names that always mean a metadata service, whatever they resolve to.
const METADATA_NAMES: [&str; 3] = ["metadata.google.internal", "metadata", "instance-data.ec2.internal"];

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let len = len.min(32);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let len = len.min(128);
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Parse `10.0.0.0/8` or `fd00::/8`.
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (a, l) = s.split_once('/').unwrap_or((s, ""));
    let ip: IpAddr = a.trim().parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = if l.is_empty() { max } else { l.trim().parse().ok()? };
    (len <= max).then_some((ip, len))
}

impl Guard {
    /// `Err(reason)` when connecting to `ip` is not allowed.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), &'static str> {
        // IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        if self.deny.iter().any(|(n, l)| in_net(ip, *n, *l)) {
            return Err("in a denied network");
        }
        match ip {
            IpAddr::V4(v4) => self.check_v4(v4),
            IpAddr::V6(v6) => self.check_v6(v6),
        }
    }

    fn check_v4(&self, ip: Ipv4Addr) -> Result<(), &'static str> {
        let o = ip.octets();
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || o[0] == 0 || o[0] >= 240 {
            return Err("unspecified, broadcast, multicast or reserved address");
        }
        if ip.is_link_local() && !self.allow_link_local {
            return Err("link-local address (cloud metadata lives here)");
        }
        if ip.is_loopback() && !self.allow_loopback {
            return Err("loopback address");
        }
        // 100.64/10 (carrier-grade NAT) counts as private.
        let cgnat = o[0] == 100 && (64..128).contains(&o[1]);
        if (ip.is_private() || cgnat) && !self.allow_private {
            return Err("private address");
        }
        Ok(())
    }

    fn check_v6(&self, ip: Ipv6Addr) -> Result<(), &'static str> {
        let seg = ip.segments();
        if ip.is_unspecified() || ip.is_multicast() {
            return Err("unspecified or multicast address");
        }
        if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) && !self.allow_link_local {
            return Err("cloud metadata address");
        }
        if (seg[0] & 0xffc0) == 0xfe80 && !self.allow_link_local {
            return Err("link-local address");
        }
        if ip.is_loopback() && !self.allow_loopback {
            return Err("loopback address");
        }
        if (seg[0] & 0xfe00) == 0xfc00 && !self.allow_private {
            return Err("private (unique local) address");
        }
        Ok(())
    }

    /// Check a URL's scheme and, for literal addresses and metadata names, its host.
    /// Names are checked again, resolved, by [`Guard::client`]'s resolver.
    pub fn check_url(&self, url: &str) -> Result<(), SsrfError> {
        let u = reqwest::Url::parse(url).map_err(|_| SsrfError::BadUrl(url.to_string()))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(SsrfError::BadUrl(url.to_string()));
        }
        match u.host() {
            Some(url::Host::Ipv4(ip)) => self.refuse(&ip.to_string(), IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.refuse(&ip.to_string(), IpAddr::V6(ip)),
            Some(url::Host::Domain(d)) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                if !self.allow_link_local && METADATA_NAMES.contains(&d.as_str()) {
                    return Err(SsrfError::MetadataName(d));
                }
                Ok(())
            }
            None => Err(SsrfError::BadUrl(url.to_string())),
        }
    }

    fn refuse(&self, host: &str, ip: IpAddr) -> Result<(), SsrfError> {
        self.check_ip(ip).map_err(|why| SsrfError::Refused {
            host: host.to_string(),
            ip,
            why,
        })
    }

    /// Resolve `host` and keep only allowed addresses; an error names the first refused one.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, SsrfError> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| SsrfError::BadUrl(host.to_string()))?
            .collect();
        let mut ok = Vec::new();
        let mut first_err = None;
        for a in addrs {
            match self.refuse(host, a.ip()) {
                Ok(()) => ok.push(a),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match (ok.is_empty(), first_err) {
            (true, Some(e)) => Err(e),
            (true, None) => Err(SsrfError::BadUrl(host.to_string())),
            _ => Ok(ok),
        }
    }

    /// An HTTP client whose every connection goes through this guard.
    /// Environment proxies are ignored: a proxy resolves names itself, out of the guard's sight.
    /// Literal-address URLs never reach a resolver, so callers also run [`Guard::check_url`].
    pub fn client(&self, builder: reqwest::ClientBuilder) -> reqwest::Result<reqwest::Client> {
        builder
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver(self.clone())))
            .build()
    }

    /// The guarded name lookup on its own, for clients built on hyper directly.
    pub fn resolver(&self) -> Arc<dyn reqwest::dns::Resolve> {
        Arc::new(GuardedResolver(self.clone()))
    }
}

struct GuardedResolver(Guard);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            if !guard.allow_link_local && METADATA_NAMES.contains(&host.to_ascii_lowercase().as_str()) {
                return Err(Box::new(SsrfError::MetadataName(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs = guard.resolve(&host, 0).await.map_err(Box::new)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> Guard {
        Guard {
            allow_loopback: false,
            allow_private: false,
            allow_link_local: false,
            deny: vec![],
        }
    }

    #[test]
    fn addresses() {
        let g = Guard::default();
        for bad in [
            "169.254.169.254",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "::",
        ] {
            assert!(
                g.check_ip(bad.parse().unwrap()).is_err(),
                "{bad} must be refused by default"
            );
        }
        for good in ["127.0.0.1", "10.1.2.3", "192.168.0.1", "8.8.8.8", "::1", "2001:db8::1"] {
            assert!(
                g.check_ip(good.parse().unwrap()).is_ok(),
                "{good} is allowed by default"
            );
        }
        let s = strict();
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.0.1",
            "100.64.0.1",
            "::1",
            "fd12::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(
                s.check_ip(bad.parse().unwrap()).is_err(),
                "{bad} must be refused when private is off"
            );
        }
        assert!(s.check_ip("93.184.216.34".parse().unwrap()).is_ok());
        let mut d = Guard::default();
        d.deny.push(parse_cidr("10.0.0.0/8").unwrap());
        assert!(d.check_ip("10.9.9.9".parse().unwrap()).is_err());
        assert!(d.check_ip("11.0.0.1".parse().unwrap()).is_ok());
        assert_eq!(parse_cidr("10.0.0.0/33"), None);
    }

    #[test]
    fn urls() {
        let g = Guard::default();
        assert!(g.check_url("http://169.254.169.254/latest/meta-data/").is_err());
        assert!(g.check_url("http://[fe80::1]:8080/").is_err());
        assert!(g
            .check_url("http://metadata.google.internal/computeMetadata/v1/")
            .is_err());
        assert!(g.check_url("file:///etc/passwd").is_err());
        assert!(g.check_url("gopher://127.0.0.1/").is_err());
        assert!(g.check_url("https://mcp.example.com/mcp").is_ok());
        // Decimal and octal spellings are normalised by the URL parser before the check.
        assert!(g.check_url("http://2852039166/").is_err());
        assert!(strict().check_url("http://0x7f.1/").is_err());
    }

    #[tokio::test]
    async fn resolver_refuses_names_that_resolve_to_forbidden_addresses() {
        let s = strict();
        let e = s.resolve("localhost", 80).await.unwrap_err();
        assert!(matches!(e, SsrfError::Refused { .. }), "{e}");
        let ok = Guard::default().resolve("localhost", 80).await.unwrap();
        assert!(ok.iter().all(|a| a.ip().is_loopback()));
        // End to end through the HTTP client: the connection is never made.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = s.client(reqwest::Client::builder()).unwrap();
        let err = client
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap_err();
        let chain = format!("{err:?}");
        assert!(chain.contains("loopback"), "{chain}");
    }
}
