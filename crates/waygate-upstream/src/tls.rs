//! TLS towards upstreams: the public (Mozilla) roots plus an operator's own CA, and a client
//! certificate for upstreams that require mutual TLS. One rustls configuration per
//! upstream, shared by the forwarded-call pool and the reqwest client (the GET stream,
//! `DELETE`, an OpenAPI document and its calls), so both trust and present the same. The
//! client certificate follows its files (renewed short-lived certificates are picked up).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// What [`client_config`] builds (named here so callers need no rustls dependency).
pub type ClientConfig = rustls::ClientConfig;

/// Where an upstream's TLS material is, and the config key each path came from (errors
/// name the key, the file and the problem).
#[derive(Debug, Default, Clone, Copy)]
pub struct TlsPaths<'a> {
    /// PEM certificates trusted in addition to the public roots.
    pub ca: Option<(&'a str, &'a Path)>,
    /// PEM certificate chain presented to the upstream (leaf first) …
    pub client_cert: Option<(&'a str, &'a Path)>,
    /// … and its private key (PKCS#8, PKCS#1 or SEC1).
    pub client_key: Option<(&'a str, &'a Path)>,
}

fn certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let at = |why: String| format!("{key} {}: {why}", path.display());
    let pem = std::fs::read(path).map_err(|e| at(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| at(format!("not PEM certificates ({e})")))?;
    if certs.is_empty() {
        return Err(at("no CERTIFICATE block found; expected PEM certificates".into()));
    }
    Ok(certs)
}

/// The client configuration for `paths`: public roots plus `ca`, and the client identity.
pub fn client_config(paths: TlsPaths<'_>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some((key, path)) = paths.ca {
        for c in certs(key, path)? {
            roots
                .add(c)
                .map_err(|e| format!("{key} {}: not a usable CA certificate ({e})", path.display()))?;
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots);
    let cfg = match (paths.client_cert, paths.client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => builder.with_client_cert_resolver(Arc::new(Identity::load(cert, key)?)),
        (Some((k, _)), None) | (None, Some((k, _))) => {
            return Err(format!(
                "{k}: a client certificate needs both client_cert and client_key"
            ))
        }
    };
    Ok(Arc::new(cfg))
}

/// Both files' modification times: what says the identity changed.
type Stamp = Option<(SystemTime, SystemTime)>;

/// The client certificate and key, read again when either file changes — short-lived
/// certificates (cert-manager, SPIFFE) are renewed on disk while the gateway runs. Checked
/// at each handshake, which pooled connections make rare; a half-written pair (one file
/// replaced, not yet the other) is refused and the previous identity kept.
#[derive(Debug)]
struct Identity {
    keys: ((String, PathBuf), (String, PathBuf)),
    current: RwLock<Arc<CertifiedKey>>,
    stamp: Mutex<Stamp>,
}

impl Identity {
    fn load(cert: (&str, &Path), key: (&str, &Path)) -> Result<Identity, String> {
        let keys = (
            (cert.0.to_string(), cert.1.to_path_buf()),
            (key.0.to_string(), key.1.to_path_buf()),
        );
        let id = Identity {
            current: RwLock::new(Self::read(&keys)?),
            stamp: Mutex::new(None),
            keys,
        };
        *id.stamp.lock().unwrap_or_else(|e| e.into_inner()) = id.stamp();
        Ok(id)
    }

    fn read(
        ((ckey, cpath), (kkey, kpath)): &((String, PathBuf), (String, PathBuf)),
    ) -> Result<Arc<CertifiedKey>, String> {
        let chain = certs(ckey, cpath)?;
        let at = |why: String| format!("{kkey} {}: {why}", kpath.display());
        let pem = std::fs::read(kpath).map_err(|e| at(e.to_string()))?;
        let private = PrivateKeyDer::from_pem_slice(&pem)
            .map_err(|e| at(format!("no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}")))?;
        let signer = rustls::crypto::ring::default_provider()
            .key_provider
            .load_private_key(private)
            .map_err(|e| at(format!("unsupported key: {e}")))?;
        let ck = CertifiedKey::new(chain, signer);
        ck.keys_match()
            .map_err(|e| format!("{kkey} does not fit {ckey}: {e}"))?;
        Ok(Arc::new(ck))
    }

    fn stamp(&self) -> Stamp {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        Some((m(&self.keys.0 .1)?, m(&self.keys.1 .1)?))
    }

    fn refresh(&self) {
        let now = self.stamp();
        let mut last = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
        if now.is_none() || now == *last {
            return;
        }
        match Self::read(&self.keys) {
            Ok(ck) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = ck;
                *last = now;
                tracing::info!(cert = %self.keys.0 .1.display(), "upstream client certificate reloaded");
            }
            Err(e) => {
                tracing::warn!(error = %e, "upstream client certificate changed but cannot be used; keeping the current one")
            }
        }
    }
}

impl ResolvesClientCert for Identity {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.refresh();
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_or_empty_files_name_the_key_and_the_file() {
        let dir = std::env::temp_dir().join(format!("wg-up-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let missing = dir.join("missing.pem");
        let e = client_config(TlsPaths {
            ca: Some(("upstreams.x.tls.ca", &missing)),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.starts_with("upstreams.x.tls.ca ") && e.contains("missing.pem"), "{e}");
        let e = client_config(TlsPaths {
            ca: Some(("upstreams.x.tls.ca", &empty)),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("no CERTIFICATE block"), "{e}");
        let e = client_config(TlsPaths {
            client_key: Some(("upstreams.x.tls.client_key", &empty)),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("needs both client_cert and client_key"), "{e}");
        assert!(client_config(TlsPaths::default()).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
