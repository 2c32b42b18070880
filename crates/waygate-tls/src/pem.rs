//! PEM files into rustls types. Each error names the file and what is wrong with it; the
//! caller adds the configuration key the path came from.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// A PEM file that could not be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct PemError {
    pub path: PathBuf,
    pub reason: String,
}

fn at(path: &Path) -> impl Fn(String) -> PemError + '_ {
    move |reason| PemError {
        path: path.to_path_buf(),
        reason,
    }
}

/// The certificates of a PEM file, in file order (a chain: leaf first).
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let err = at(path);
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("not PEM certificates ({e})")))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE block found; expected PEM certificates".into()));
    }
    Ok(certs)
}

/// Adds every CA certificate of a PEM bundle to `roots`.
pub fn add_roots(roots: &mut rustls::RootCertStore, path: &Path) -> Result<(), PemError> {
    for c in certificates(path)? {
        roots
            .add(c)
            .map_err(|e| at(path)(format!("not a usable CA certificate ({e})")))?;
    }
    Ok(())
}

/// A CA bundle on its own.
pub fn roots(path: &Path) -> Result<rustls::RootCertStore, PemError> {
    let mut roots = rustls::RootCertStore::empty();
    add_roots(&mut roots, path)?;
    Ok(roots)
}

/// Why a certificate and key pair could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PairError {
    #[error("{0}")]
    Cert(PemError),
    #[error("{0}")]
    Key(PemError),
    /// Both files are fine, but the key is not the certificate's.
    #[error("the key does not belong to the certificate ({0})")]
    Mismatch(String),
}

/// A certificate chain and its private key (PKCS#8, PKCS#1 or SEC1), checked to belong
/// together.
pub fn certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, PairError> {
    let chain = certificates(cert).map_err(PairError::Cert)?;
    let err = |reason| PairError::Key(at(key)(reason));
    let pem = std::fs::read(key).map_err(|e| err(e.to_string()))?;
    let private = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| err(format!("no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}")))?;
    let signer = crate::provider()
        .key_provider
        .load_private_key(private)
        .map_err(|e| err(format!("unsupported key: {e}")))?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match().map_err(|e| PairError::Mismatch(e.to_string()))?;
    Ok(Arc::new(ck))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_files_say_which_file_and_why() {
        let dir = std::env::temp_dir().join(format!("wg-tls-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = dir.join("text.pem");
        std::fs::write(&text, "not a certificate\n").unwrap();
        let missing = dir.join("missing.pem");
        let e = certificates(&missing).unwrap_err();
        assert!(e.to_string().starts_with(&format!("{}: ", missing.display())), "{e}");
        let e = roots(&text).unwrap_err();
        assert!(e.reason.contains("no CERTIFICATE block"), "{e}");
        assert!(matches!(certified_key(&text, &text), Err(PairError::Cert(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
