//! Why authentication failed, and the reply each failure gets, as Envoy's `jwt_authn` gives it.
//!
//! A missing credential is a 401 with `WWW-Authenticate: Bearer realm="..."` and no `error`
//! parameter (RFC 6750 §3.1); a credential that does not verify is a 401 with
//! `error="invalid_token"`; a valid token whose audience or subject is not allowed is a 403;
//! no key yet (the first JWKS fetch has not answered) is a 503. The JSON body never carries the
//! token or any claim.

use crate::decision::LocalReply;

/// One failure, named by a stable snake_case code (metrics, audit, response details).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// No credential in any configured location.
    Missing,
    /// Not three base64url parts of JSON, or a claim of the wrong type.
    Malformed,
    /// Longer than `max_token_bytes`.
    TooLarge,
    /// `alg: none`.
    AlgNone,
    /// An algorithm outside the provider's allow-list.
    AlgNotAllowed,
    /// The `kid` names a key of another type than `alg` needs (algorithm confusion).
    AlgKeyMismatch,
    /// No key with the token's `kid` (or, without `kid`, for its `alg`).
    UnknownKid,
    /// The signature does not verify.
    BadSignature,
    /// `exp` is in the past (beyond the clock skew).
    Expired,
    /// `nbf` is in the future (beyond the clock skew).
    NotYetValid,
    /// `exp` is required and absent.
    ExpMissing,
    /// `exp` is further away than the provider's maximum lifetime.
    LifetimeTooLong,
    /// `iss` is not the provider's issuer.
    IssuerMismatch,
    /// None of the token's audiences is allowed.
    AudienceNotAllowed,
    /// The subject is not allowed.
    SubjectNotAllowed,
    /// The API key matches no configured key.
    ApiKeyInvalid,
    /// The provider has no keys yet and the first fetch did not answer in time.
    KeysUnavailable,
    /// No rule of the config matches the request (fail closed).
    NoMatchingRule,
}

/// Every failure, for defining one counter each.
pub const ALL_FAILURES: [Failure; 18] = [
    Failure::Missing,
    Failure::Malformed,
    Failure::TooLarge,
    Failure::AlgNone,
    Failure::AlgNotAllowed,
    Failure::AlgKeyMismatch,
    Failure::UnknownKid,
    Failure::BadSignature,
    Failure::Expired,
    Failure::NotYetValid,
    Failure::ExpMissing,
    Failure::LifetimeTooLong,
    Failure::IssuerMismatch,
    Failure::AudienceNotAllowed,
    Failure::SubjectNotAllowed,
    Failure::ApiKeyInvalid,
    Failure::KeysUnavailable,
    Failure::NoMatchingRule,
];

impl Failure {
    /// The stable code: `token_missing`, `token_expired`, ...
    pub fn code(self) -> &'static str {
        match self {
            Failure::Missing => "token_missing",
            Failure::Malformed => "token_malformed",
            Failure::TooLarge => "token_too_large",
            Failure::AlgNone => "alg_none",
            Failure::AlgNotAllowed => "alg_not_allowed",
            Failure::AlgKeyMismatch => "alg_key_mismatch",
            Failure::UnknownKid => "unknown_kid",
            Failure::BadSignature => "bad_signature",
            Failure::Expired => "token_expired",
            Failure::NotYetValid => "token_not_yet_valid",
            Failure::ExpMissing => "exp_missing",
            Failure::LifetimeTooLong => "lifetime_too_long",
            Failure::IssuerMismatch => "issuer_mismatch",
            Failure::AudienceNotAllowed => "audience_not_allowed",
            Failure::SubjectNotAllowed => "subject_not_allowed",
            Failure::ApiKeyInvalid => "api_key_invalid",
            Failure::KeysUnavailable => "keys_unavailable",
            Failure::NoMatchingRule => "no_matching_rule",
        }
    }

    /// The HTTP status Envoy's `jwt_authn` would send.
    pub fn status(self) -> u16 {
        match self {
            Failure::AudienceNotAllowed | Failure::SubjectNotAllowed | Failure::NoMatchingRule => 403,
            Failure::KeysUnavailable => 503,
            _ => 401,
        }
    }

    /// The human message of the JSON body, Envoy's wording where it has one.
    pub fn message(self) -> &'static str {
        match self {
            Failure::Missing => "Jwt is missing",
            Failure::Malformed => "Jwt is not in the form of Header.Payload.Signature with JSON objects",
            Failure::TooLarge => "Jwt is too large",
            Failure::AlgNone => "Jwt algorithm none is not allowed",
            Failure::AlgNotAllowed => "Jwt algorithm is not allowed",
            Failure::AlgKeyMismatch => "Jwks doesn't have key to match kid or alg from Jwt",
            Failure::UnknownKid => "Jwks doesn't have key to match kid or alg from Jwt",
            Failure::BadSignature => "Jwt verification fails",
            Failure::Expired => "Jwt is expired",
            Failure::NotYetValid => "Jwt not yet valid",
            Failure::ExpMissing => "Jwt has no exp",
            Failure::LifetimeTooLong => "Jwt lifetime is longer than allowed",
            Failure::IssuerMismatch => "Jwt issuer is not configured",
            Failure::AudienceNotAllowed => "Audiences in Jwt are not allowed",
            Failure::SubjectNotAllowed => "Jwt subject is not allowed",
            Failure::ApiKeyInvalid => "API key is not valid",
            Failure::KeysUnavailable => "Jwks is not available yet",
            Failure::NoMatchingRule => "no authentication rule matches the request",
        }
    }

    /// The local reply for this failure; `realm` is already sanitized.
    pub fn reply(self, realm: &str) -> LocalReply {
        let status = self.status();
        let code = match status {
            401 => "unauthorized",
            403 => "forbidden",
            _ => "unavailable",
        };
        let reply = LocalReply::json(status, code, self.message()).with_details(format!("jwt_authn_{}", self.code()));
        match self {
            Failure::Missing => reply.with_header("www-authenticate", format!("Bearer realm=\"{realm}\"")),
            _ if status == 401 => {
                reply.with_header("www-authenticate", format!("Bearer realm=\"{realm}\", error=\"invalid_token\""))
            }
            _ => reply,
        }
    }
}

/// Keeps the visible ASCII of a realm except quote and backslash, so a Host header cannot
/// break out of the quoted string.
pub fn sanitize_realm(raw: &str) -> String {
    raw.chars().filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\').take(256).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(reply: &'a LocalReply, name: &str) -> Option<&'a str> {
        reply.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn missing_token_has_no_error_parameter() {
        let reply = Failure::Missing.reply("api.example.com");
        assert_eq!(reply.status, 401);
        assert_eq!(header(&reply, "www-authenticate"), Some("Bearer realm=\"api.example.com\""));
        assert_eq!(reply.details, "jwt_authn_token_missing");
    }

    #[test]
    fn invalid_token_is_401_with_invalid_token() {
        for failure in [Failure::BadSignature, Failure::Expired, Failure::AlgNone, Failure::ApiKeyInvalid] {
            let reply = failure.reply("r");
            assert_eq!(reply.status, 401);
            assert_eq!(header(&reply, "www-authenticate"), Some("Bearer realm=\"r\", error=\"invalid_token\""));
            let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
            assert_eq!(body["error"], "unauthorized");
        }
    }

    #[test]
    fn audience_and_subject_are_403_without_challenge() {
        for failure in [Failure::AudienceNotAllowed, Failure::SubjectNotAllowed] {
            let reply = failure.reply("r");
            assert_eq!(reply.status, 403);
            assert_eq!(header(&reply, "www-authenticate"), None);
        }
        assert_eq!(Failure::KeysUnavailable.reply("r").status, 503);
    }

    #[test]
    fn codes_are_unique_and_realm_is_sanitized() {
        let mut codes: Vec<_> = ALL_FAILURES.iter().map(|f| f.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ALL_FAILURES.len());
        assert_eq!(sanitize_realm("a\"b\\c d\r\n"), "abcd");
    }
}
