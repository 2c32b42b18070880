//! TLS termination (rustls): PEM certificate chain and key from files, HTTP/2 and
//! HTTP/1.1 offered by ALPN, and the certificate reloaded when its files change — new
//! handshakes get the new one, established connections keep theirs and are not dropped.
//! Optionally mutual TLS: clients must present a certificate from the operator's CA
//! bundle, which is followed the same way (a rotated bundle applies to new handshakes).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio_util::sync::CancellationToken;
use waygate_tls::{pem, provider, Followed, PairError, PemError};

/// Why a certificate or key could not be used; names the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("server.tls_cert {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("server.tls_key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("server.tls_client_ca {path}: {reason}")]
    ClientCa { path: String, reason: String },
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

impl TlsError {
    fn client_ca(e: PemError) -> TlsError {
        TlsError::ClientCa {
            path: e.path.display().to_string(),
            reason: e.reason,
        }
    }
}

/// Where the PEM files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Mutual TLS: every client must present a certificate issued by one of these CAs
    /// (followed like the certificate).
    pub client_ca: Option<PathBuf>,
}

/// The certificate chain of a PEM file (leaf first), for loading and for `doctor`.
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    pem::certificates(path).map_err(|e| TlsError::Cert {
        path: e.path.display().to_string(),
        reason: e.reason,
    })
}

/// Load and check a certificate chain and its private key.
pub fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    pem::certified_key(&files.cert, &files.key).map_err(|e| match e {
        PairError::Cert(e) => TlsError::Cert {
            path: e.path.display().to_string(),
            reason: e.reason,
        },
        PairError::Key(e) => TlsError::Key {
            path: e.path.display().to_string(),
            reason: e.reason,
        },
        PairError::Mismatch(why) => TlsError::Setup(format!(
            "server.tls_key does not belong to the certificate in server.tls_cert ({why})"
        )),
    })
}

/// Accepts only clients whose certificate chains to a CA in the PEM bundle at `path`.
fn client_verifier(path: &Path) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let roots = pem::roots(path).map_err(TlsError::client_ca)?;
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| TlsError::ClientCa {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
}

/// Hands every handshake the current certificate; swapped on reload.
#[derive(Debug)]
struct Reloading {
    files: TlsFiles,
    current: Followed<CertifiedKey>,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.get())
    }
}

impl Reloading {
    /// Reload when either file changed; a broken new pair keeps the old one serving.
    fn check(&self) {
        match self.current.refresh(|| load(&self.files).map(Arc::unwrap_or_clone)) {
            Ok(true) => tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded"),
            Ok(false) => {}
            // A half-written pair (cert replaced, key not yet) fails here; try again later.
            Err(e) => {
                tracing::warn!(error = %e, "TLS certificate changed but cannot be loaded; keeping the current one")
            }
        }
    }
}

/// The client CA bundle's verifier, built again when the bundle changes. Sends no CA
/// names in its certificate request (they would change with the bundle): a client then
/// presents the certificate it has, which is checked against the current bundle.
#[derive(Debug)]
struct ClientCas(Followed<Arc<dyn ClientCertVerifier>>);

impl ClientCas {
    fn check(&self) {
        let path = &self.0.paths()[0];
        match self.0.refresh(|| client_verifier(path)) {
            Ok(true) => tracing::info!(ca = %path.display(), "TLS client CA bundle reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "TLS client CA bundle changed but cannot be used; keeping the current one")
            }
        }
    }
}

impl ClientCertVerifier for ClientCas {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0.get().verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.get().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.get().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.get().supported_verify_schemes()
    }
}

/// A TLS acceptor whose certificate (and client CA bundle) follow their files.
#[derive(Clone)]
pub struct Tls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    resolver: Arc<Reloading>,
    client_cas: Option<Arc<ClientCas>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tls({})", self.resolver.files.cert.display())
    }
}

impl Tls {
    pub fn new(files: TlsFiles) -> Result<Tls, TlsError> {
        let current = Followed::load(vec![files.cert.clone(), files.key.clone()], || {
            load(&files).map(Arc::unwrap_or_clone)
        })?;
        let resolver = Arc::new(Reloading { files, current });
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?;
        let client_cas = match &resolver.files.client_ca {
            None => None,
            Some(path) => Some(Arc::new(ClientCas(Followed::load(vec![path.clone()], || {
                client_verifier(path)
            })?))),
        };
        let builder = match &client_cas {
            None => builder.with_no_client_auth(),
            Some(cas) => builder.with_client_cert_verifier(cas.clone()),
        };
        let mut cfg = builder.with_cert_resolver(resolver.clone());
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(cfg)),
            resolver,
            client_cas,
        })
    }

    /// Look at the files every `every` until `shutdown`.
    pub async fn watch(self, every: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let (r, cas) = (self.resolver.clone(), self.client_cas.clone());
            let _ = tokio::task::spawn_blocking(move || {
                r.check();
                if let Some(cas) = cas {
                    cas.check();
                }
            })
            .await;
        }
    }
}

/// `notAfter` of a DER certificate, as seconds since the Unix epoch (for `doctor`).
pub fn not_after(der: &[u8]) -> Option<i64> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version?, serialNumber,
    //   signature, issuer, validity SEQUENCE { notBefore, notAfter }, … }, … }
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    let (tag, _, r) = tlv(rest)?;
    if tag == 0xA0 {
        rest = r; // explicit version
    }
    for _ in 0..3 {
        let (_, _, r) = tlv(rest)?; // serialNumber, signature, issuer
        rest = r;
    }
    let (_, validity, _) = tlv(rest)?;
    let (_, _, after) = tlv(validity)?;
    let (tag, time, _) = tlv(after)?;
    let s = std::str::from_utf8(time).ok()?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i64 = s.get(0..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, s.get(2..)?)
        }
        0x18 => (s.get(0..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    let n = |r: std::ops::Range<usize>| -> Option<i64> { rest.get(r)?.parse().ok() };
    let (mo, d, h, mi, se) = (n(0..2)?, n(2..4)?, n(4..6)?, n(6..8)?, n(8..10)?);
    Some(days_from_civil(year, mo, d) * 86_400 + h * 3600 + mi * 60 + se)
}

/// One DER element: (tag, contents, what follows).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)? as usize;
    let (len, hdr) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let body = b.get(hdr..hdr.checked_add(len)?)?;
    Some((tag, body, &b[hdr + len..]))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 12, 2), 20_789);
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(not_after(b""), None);
        assert_eq!(not_after(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(not_after(&[0x30, 0x03, 0x30, 0x01, 0x00]), None);
    }
}
