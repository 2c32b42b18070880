//! TLS towards upstreams: the public (Mozilla) roots plus an operator's own CA, and a client
//! certificate for upstreams that require mutual TLS. One rustls configuration per
//! upstream, shared by the forwarded-call pool and the reqwest client (the GET stream,
//! `DELETE`, an OpenAPI document and its calls), so both trust and present the same. The
//! client certificate and the CA bundle follow their files (a renewed short-lived
//! certificate or a rotated bundle is used from the next handshake on).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};
use waygate_tls::{pem, provider, Followed, PairError};

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

/// The client configuration for `paths`: public roots plus `ca`, and the client identity.
pub fn client_config(paths: TlsPaths<'_>) -> Result<Arc<rustls::ClientConfig>, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = match paths.ca {
        None => builder.with_root_certificates(public_roots()),
        Some((key, path)) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Trust::load(key, path)?)),
    };
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

fn public_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    roots
}

/// The public roots plus the operator's CA bundle, verified by rustls's WebPKI verifier,
/// built again when the bundle changes on disk (checked at each handshake, which pooled
/// connections make rare). A bundle that cannot be read keeps the previous one.
#[derive(Debug)]
struct Trust {
    key: String,
    current: Followed<Arc<WebPkiServerVerifier>>,
}

impl Trust {
    fn load(key: &str, path: &Path) -> Result<Trust, String> {
        let current = Followed::load(vec![path.to_path_buf()], || Self::verifier(key, path))?;
        Ok(Trust {
            key: key.to_string(),
            current,
        })
    }

    fn verifier(key: &str, path: &Path) -> Result<Arc<WebPkiServerVerifier>, String> {
        let mut roots = public_roots();
        pem::add_roots(&mut roots, path).map_err(|e| format!("{key} {e}"))?;
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| format!("{key} {}: {e}", path.display()))
    }

    fn refresh(&self) {
        let path = &self.current.paths()[0];
        match self.current.refresh(|| Self::verifier(&self.key, path)) {
            Ok(true) => tracing::info!(ca = %path.display(), "upstream CA bundle reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "upstream CA bundle changed but cannot be used; keeping the current one")
            }
        }
    }
}

impl ServerCertVerifier for Trust {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.refresh();
        self.current
            .get()
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current.get().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current.get().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current.get().supported_verify_schemes()
    }
}

/// The client certificate and key, read again when either file changes — short-lived
/// certificates (cert-manager, SPIFFE) are renewed on disk while the gateway runs. Checked
/// at each handshake; a half-written pair (one file replaced, not yet the other) is
/// refused and the previous identity kept.
#[derive(Debug)]
struct Identity {
    keys: (String, String),
    current: Followed<CertifiedKey>,
}

impl Identity {
    fn load(cert: (&str, &Path), key: (&str, &Path)) -> Result<Identity, String> {
        let keys = (cert.0.to_string(), key.0.to_string());
        let current = Followed::load(vec![cert.1.to_path_buf(), key.1.to_path_buf()], || {
            Self::read(&keys, cert.1, key.1)
        })?;
        Ok(Identity { keys, current })
    }

    fn read((ckey, kkey): &(String, String), cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
        match pem::certified_key(cert, key) {
            Ok(ck) => Ok(Arc::unwrap_or_clone(ck)),
            Err(PairError::Cert(e)) => Err(format!("{ckey} {e}")),
            Err(PairError::Key(e)) => Err(format!("{kkey} {e}")),
            Err(PairError::Mismatch(why)) => Err(format!("{kkey} does not fit {ckey}: {why}")),
        }
    }

    fn refresh(&self) {
        let (cert, key) = (&self.current.paths()[0], &self.current.paths()[1]);
        match self.current.refresh(|| Self::read(&self.keys, cert, key)) {
            Ok(true) => tracing::info!(cert = %cert.display(), "upstream client certificate reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "upstream client certificate changed but cannot be used; keeping the current one")
            }
        }
    }
}

impl ResolvesClientCert for Identity {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.refresh();
        Some(self.current.get())
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
