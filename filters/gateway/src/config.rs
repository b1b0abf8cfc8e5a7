//! The bundle's configuration (parsed by [`palisade_core::bundle`]) and the filter each layer
//! runs.

pub use palisade_core::bundle::{parse, Filter};
use proxy_wasm::traits::RootContext;

/// A new root context of `filter`, as its separate module creates one.
pub fn root(filter: Filter) -> Box<dyn RootContext> {
    match filter {
        Filter::SecurityHeaders => palisade_security_headers::root(),
        Filter::JwtAuthn => palisade_jwt_authn::root(),
        Filter::Authz => palisade_authz::root(),
        Filter::RateLimit => palisade_rate_limit::root(),
        Filter::RequestValidation => palisade_request_validation::root(),
        Filter::FieldEncryption => palisade_field_encryption::root(),
    }
}
