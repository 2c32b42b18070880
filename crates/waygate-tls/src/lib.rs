//! TLS material from files, shared by the listener (`waygate-transport`) and the upstream
//! client (`waygate-upstream`): PEM certificates, keys and CA bundles read into rustls
//! types with errors naming the file, and values that follow their files on disk, so a
//! certificate renewed by cert-manager or a rotated CA bundle is used without a restart.

pub mod follow;
pub mod pem;

pub use follow::Followed;
pub use pem::{PairError, PemError};

/// The crypto provider every Waygate TLS configuration uses.
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
