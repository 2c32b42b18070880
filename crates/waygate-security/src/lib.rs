//! Security backends with dependencies the engine should not carry: JWT access-token
//! verification against a JWKS ([`jwt`]), rate-limit buckets shared across replicas through
//! Redis ([`redis_buckets`]), and the SSRF guard for outbound connections ([`ssrf`]).

pub mod jwt;
pub mod redact;
pub mod redis_buckets;
pub mod ssrf;

pub use jwt::{JwtSettings, JwtVerifier};
pub use redact::{scrub, Secret};
pub use redis_buckets::RedisBuckets;
pub use ssrf::{Guard, SsrfError};
