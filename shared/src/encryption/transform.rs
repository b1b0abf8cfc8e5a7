//! The body transforms: encrypt the configured fields of a request, decrypt (or redact) them in
//! a response. Bodies are edited in place (see the `json` module); only the selected values
//! change.

use std::ops::Range;

use crate::decision::LocalReply;
use crate::identity::{claim_strings, Identity};
use crate::route::Routes;

use super::ciphertext::{
    self, Binding, Envelope, Mode, NonceSource, OpenError, Plain, RandomUnavailable, NONCE_LEN, PREFIX,
};
use super::config::{Field, Policy, RedactionConfig, Route};
use super::json::{self, JsonError};
use super::pointer::Segment;
use super::usage::{counter_name, LedgerError, UsageLedger, UsageReport};

/// Why a request was refused; it never reaches the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not JSON, or nested too deeply (400).
    InvalidJson,
    /// Larger than `max_body_bytes` (413).
    BodyTooLarge(usize),
    /// A `required` rule found nothing (400).
    MissingField(String),
    /// A string JSON cannot decode (a lone surrogate escape) (400).
    InvalidValue(String),
    /// A value that claims to be a ciphertext (`enc:...`) and does not decrypt here (400).
    InvalidCiphertext(String),
    /// The caller's identity lacks a context claim the field binds (403).
    ContextMissing(String),
    /// The field binds its record's id, and the record has none (missing, duplicated, or not
    /// a non-empty string or a number) (400).
    RecordIdMissing(String),
    /// The primary key reached its usage hard stop (503): rotate.
    KeyExhausted {
        /// The primary key's id.
        key_id: String,
        /// Encryptions counted.
        used: u64,
    },
    /// Randomness or the usage counter was unavailable (503).
    Unavailable,
    /// The body has a content coding (gzip, br, ...): its fields cannot be read (415).
    EncodedBody,
}

impl Refusal {
    /// Every code [`Refusal::code`] can return, for defining counters up front.
    pub const CODES: [&'static str; 10] = [
        "invalid_json",
        "body_too_large",
        "missing_field",
        "invalid_field",
        "invalid_ciphertext",
        "encryption_context_missing",
        "record_id_missing",
        "key_exhausted",
        "encryption_unavailable",
        "unsupported_content_encoding",
    ];

    /// Stable snake_case code, used in the reply, metrics and audit lines.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::InvalidJson => "invalid_json",
            Refusal::BodyTooLarge(_) => "body_too_large",
            Refusal::MissingField(_) => "missing_field",
            Refusal::InvalidValue(_) => "invalid_field",
            Refusal::InvalidCiphertext(_) => "invalid_ciphertext",
            Refusal::ContextMissing(_) => "encryption_context_missing",
            Refusal::RecordIdMissing(_) => "record_id_missing",
            Refusal::KeyExhausted { .. } => "key_exhausted",
            Refusal::Unavailable => "encryption_unavailable",
            Refusal::EncodedBody => "unsupported_content_encoding",
        }
    }

    /// The HTTP status sent.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BodyTooLarge(_) => 413,
            Refusal::ContextMissing(_) => 403,
            Refusal::EncodedBody => 415,
            Refusal::KeyExhausted { .. } | Refusal::Unavailable => 503,
            _ => 400,
        }
    }

    /// The logical field concerned, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            Refusal::MissingField(f)
            | Refusal::InvalidValue(f)
            | Refusal::InvalidCiphertext(f)
            | Refusal::ContextMissing(f)
            | Refusal::RecordIdMissing(f) => Some(f),
            _ => None,
        }
    }

    /// The local reply. Messages name configured fields only, never body content.
    pub fn reply(&self) -> LocalReply {
        let message = match self {
            Refusal::InvalidJson => "request body must be JSON (nested at most 128 deep)".to_string(),
            Refusal::BodyTooLarge(max) => format!("request body exceeds {max} bytes"),
            Refusal::MissingField(f) => format!("field {f} is required"),
            Refusal::InvalidValue(f) => format!("field {f} cannot be encrypted"),
            Refusal::InvalidCiphertext(f) => format!("field {f} holds a ciphertext that does not decrypt"),
            Refusal::ContextMissing(f) => format!("field {f} needs identity claims the caller lacks"),
            Refusal::RecordIdMissing(f) => {
                format!("field {f} is bound to its record, whose id is missing or not one non-empty string or number")
            }
            Refusal::KeyExhausted { .. } => "encryption key usage limit reached".to_string(),
            Refusal::Unavailable => "encryption is unavailable".to_string(),
            Refusal::EncodedBody => "request body must not have a content coding (gzip, br, ...)".to_string(),
        };
        LocalReply::json(self.status(), self.code(), &message).with_details(format!("palisade_fe_{}", self.code()))
    }
}

/// A request whose fields were encrypted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encrypted {
    /// The new body; `None` when nothing changed.
    pub body: Option<Vec<u8>>,
    /// Values encrypted from plaintext.
    pub encrypted: u64,
    /// Ciphertexts re-encrypted under the primary key.
    pub rewrapped: u64,
    /// Valid ciphertexts passed on unchanged.
    pub kept: u64,
    /// The primary key's usage after this request, when it encrypted with AES-GCM.
    pub usage: Option<UsageReport>,
}

/// Every [`Failure::reason`], for defining counters up front.
pub const FAILURE_REASONS: [&str; 7] = [
    "malformed",
    "unknown_key",
    "retired_key",
    "authentication_failed",
    "context_missing",
    "record_id_missing",
    "not_encrypted",
];

/// A value that failed to decrypt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Logical field.
    pub field: String,
    /// `malformed`, `unknown_key`, `retired_key`, `authentication_failed`, `context_missing`,
    /// `record_id_missing`, `not_encrypted`.
    pub reason: &'static str,
}

/// Why a response body was passed on untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// Not JSON: no field can be found; ciphertexts stay ciphertexts.
    NotJson,
    /// Larger than `max_body_bytes`.
    TooLarge,
    /// Sent with a content coding (gzip, br, ...) although the request asked for none.
    Encoded,
}

impl Skipped {
    /// Stable snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            Skipped::NotJson => "response_not_json",
            Skipped::TooLarge => "response_too_large",
            Skipped::Encoded => "response_encoded",
        }
    }
}

/// A response after decryption.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decrypted {
    /// The new body; `None` when nothing changed.
    pub body: Option<Vec<u8>>,
    /// Values decrypted.
    pub decrypted: u64,
    /// Values hidden from a caller who is not a reader.
    pub redacted: u64,
    /// Values that failed, replaced by the field's `undecryptable`.
    pub failures: Vec<Failure>,
    /// Set when the body was passed on untouched.
    pub skipped: Option<Skipped>,
}

/// What to do with one value found in a request.
enum Action {
    Keep,
    Seal { plain: Plain, rewrap: bool },
}

/// One value found in a request, with its record id when the rule binds one.
struct Planned {
    span: Range<usize>,
    field: usize,
    record: Option<String>,
    action: Action,
}

impl Policy {
    /// Whether selecting a route reads [`RequestView::route_name`](crate::http::RequestView);
    /// the filter reads the `xds.route_name` property only then (nothing else reads a
    /// connection property but audit lines).
    pub fn needs_route_name(&self) -> bool {
        self.routes.uses_route_name()
    }

    /// The index of the first route matching the request, kept for the response phase.
    pub fn select(&self, request: &crate::http::RequestView) -> Option<usize> {
        self.routes.select(request).map(|route| route.index)
    }

    /// Whether the route encrypts request bodies.
    pub fn encrypts(&self, route: usize) -> bool {
        self.route(route).is_some_and(|r| !r.encrypt.is_empty())
    }

    /// Whether the route decrypts response bodies.
    pub fn decrypts(&self, route: usize) -> bool {
        self.route(route).is_some_and(|r| !r.decrypt.is_empty())
    }

    /// The id of the key that encrypts.
    pub fn primary_key_id(&self) -> &str {
        self.keyring.primary().map_or("", |key| key.id())
    }

    /// The largest body buffered.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    fn route(&self, index: usize) -> Option<&Route> {
        route_at(&self.routes, index)
    }

    /// Encrypts the route's request fields. A refused request must not be forwarded.
    pub fn encrypt_request(
        &self,
        route: usize,
        body: &[u8],
        identity: Option<&Identity>,
        rng: &mut dyn NonceSource,
        ledger: &mut dyn UsageLedger,
    ) -> Result<Encrypted, Refusal> {
        let Some(route) = self.route(route) else { return Ok(Encrypted::default()) };
        if body.len() > self.max_body_bytes {
            return Err(Refusal::BodyTooLarge(self.max_body_bytes));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return match route.encrypt.iter().find(|rule| rule.required) {
                Some(rule) => Err(Refusal::MissingField(self.field(rule.field)?.name.clone())),
                None => Ok(Encrypted::default()),
            };
        }
        let reach: Vec<&[Segment]> = route.encrypt_reach.iter().map(Vec::as_slice).collect();
        let root = json::parse_for(body, &reach).map_err(|_: JsonError| Refusal::InvalidJson)?;
        let primary = self.keyring.primary().ok_or(Refusal::Unavailable)?;
        let mut contexts = ContextCache::new(self.fields.len());
        let mut plan: Vec<Planned> = Vec::new();
        let mut outcome = Encrypted::default();
        for rule in &route.encrypt {
            let field = self.field(rule.field)?;
            let found = rule.pointer.find_in_records(&root, rule.record.as_ref());
            if rule.required && found.missing {
                return Err(Refusal::MissingField(field.name.clone()));
            }
            for (i, span) in found.values.into_iter().enumerate() {
                let raw = body_text(body, &span);
                let context = contexts
                    .get(rule.field, field, identity)
                    .ok_or_else(|| Refusal::ContextMissing(field.name.clone()))?;
                let record = match &rule.record {
                    None => None,
                    Some(_) => Some(
                        record_id(body, found.records.get(i))
                            .ok_or_else(|| Refusal::RecordIdMissing(field.name.clone()))?,
                    ),
                };
                let binding = Binding { field: &field.name, context, record: record.as_deref() };
                let action = if is_ciphertext_text(raw) {
                    let (key_id, mode, plain) =
                        self.open_text(raw, binding).map_err(|_| Refusal::InvalidCiphertext(field.name.clone()))?;
                    if self.rewrap && (key_id != primary.id() || mode != field.mode) {
                        Action::Seal { plain, rewrap: true }
                    } else {
                        outcome.kept += 1;
                        Action::Keep
                    }
                } else {
                    let plain = Plain::from_json_text(raw).ok_or_else(|| Refusal::InvalidValue(field.name.clone()))?;
                    Action::Seal { plain, rewrap: false }
                };
                plan.push(Planned { span, field: rule.field, record, action });
            }
        }
        let gcm_seals = plan
            .iter()
            .filter(|planned| {
                matches!(planned.action, Action::Seal { .. })
                    && self.fields.get(planned.field).is_some_and(|f| f.mode == Mode::Randomized)
            })
            .count() as u64;
        if gcm_seals > 0 {
            let counter = counter_name(primary.id(), primary.fingerprint());
            let before = ledger.reserve(&counter, gcm_seals, self.usage.hard_stop()).map_err(|err| match err {
                LedgerError::Exhausted { used } => Refusal::KeyExhausted { key_id: primary.id().to_string(), used },
                LedgerError::Unavailable => Refusal::Unavailable,
            })?;
            outcome.usage = Some(self.usage.assess(counter, before, gcm_seals));
        }
        let mut nonces = DrawnNonces::draw(rng, gcm_seals).map_err(|_| Refusal::Unavailable)?;
        let mut edits = Vec::with_capacity(plan.len());
        for Planned { span, field: field_index, record, action } in plan {
            let Action::Seal { plain, rewrap } = action else { continue };
            let field = self.field(field_index)?;
            let context = contexts.get(field_index, field, identity).unwrap_or_default();
            let binding = Binding { field: &field.name, context, record: record.as_deref() };
            let text = ciphertext::seal(primary, field.mode, binding, &plain, &mut nonces)
                .map_err(|_| Refusal::Unavailable)?;
            edits.push((span, json_string(&text)));
            if rewrap {
                outcome.rewrapped += 1;
            } else {
                outcome.encrypted += 1;
            }
        }
        if !edits.is_empty() {
            edits.sort_by_key(|(span, _)| span.start);
            outcome.body = Some(json::splice(body, &edits));
        }
        Ok(outcome)
    }

    /// Decrypts the route's response fields for `identity`, or redacts them. Never fails: a
    /// value that does not decrypt becomes the field's `undecryptable` replacement.
    pub fn decrypt_response(&self, route: usize, body: &[u8], identity: Option<&Identity>) -> Decrypted {
        let mut outcome = Decrypted::default();
        let Some(route) = self.route(route) else { return outcome };
        if body.len() > self.max_body_bytes {
            outcome.skipped = Some(Skipped::TooLarge);
            return outcome;
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return outcome;
        }
        let reach: Vec<&[Segment]> = route.decrypt_reach.iter().map(Vec::as_slice).collect();
        let Ok(root) = json::parse_for(body, &reach) else {
            outcome.skipped = Some(Skipped::NotJson);
            return outcome;
        };
        let mut contexts = ContextCache::new(self.fields.len());
        let mut edits = Vec::new();
        for rule in &route.decrypt {
            // Unreachable (indexes are resolved at compile time); skipping leaves ciphertexts.
            let Ok(field) = self.field(rule.field) else { continue };
            let readable = is_reader(field, identity);
            let found = rule.pointer.find_in_records(&root, rule.record.as_ref());
            for (i, span) in found.values.into_iter().enumerate() {
                let raw = body_text(body, &span);
                if raw == "null" {
                    continue;
                }
                let result = if !is_ciphertext_text(raw) {
                    Err("not_encrypted")
                } else if !readable {
                    // A malformed value is redacted as a failure, so `ciphertext` never passes
                    // on something that is not one.
                    match json::decode_string(raw).as_deref().map(Envelope::parse) {
                        Some(Ok(_)) => Ok(None),
                        _ => Err(OpenError::Malformed.code()),
                    }
                } else {
                    let record = rule.record.as_ref().map(|_| record_id(body, found.records.get(i)));
                    match (contexts.get(rule.field, field, identity), record) {
                        (None, _) => Err("context_missing"),
                        (Some(_), Some(None)) => Err("record_id_missing"),
                        (Some(context), record) => self
                            .open_text(
                                raw,
                                Binding { field: &field.name, context, record: record.flatten().as_deref() },
                            )
                            .map(|(_, _, plain)| Some(plain))
                            .map_err(OpenError::code),
                    }
                };
                match result {
                    Ok(Some(plain)) => {
                        outcome.decrypted += 1;
                        edits.push((span, plain.to_json_text()));
                    }
                    Ok(None) => {
                        outcome.redacted += 1;
                        if let Some(text) = redaction(&field.unreadable) {
                            edits.push((span, text));
                        }
                    }
                    Err(reason) => {
                        outcome.failures.push(Failure { field: field.name.clone(), reason });
                        edits.push((span, redaction(&field.undecryptable).unwrap_or_else(|| "null".into())));
                    }
                }
            }
        }
        if !edits.is_empty() {
            edits.sort_by_key(|(span, _)| span.start);
            outcome.body = Some(json::splice(body, &edits));
        }
        outcome
    }

    /// Opens a JSON string literal holding a ciphertext.
    fn open_text(&self, raw: &str, binding: Binding<'_>) -> Result<(String, Mode, Plain), OpenError> {
        let text = json::decode_string(raw).ok_or(OpenError::Malformed)?;
        let envelope = Envelope::parse(&text)?;
        let key = self.keyring.for_decrypt(envelope.key_id)?;
        let plain = ciphertext::open(key, &envelope, binding)?;
        Ok((key.id().to_string(), envelope.mode, plain))
    }

    /// The field a rule names; the compiler resolved every index, so the error is
    /// unreachable, and it fails closed.
    fn field(&self, index: usize) -> Result<&Field, Refusal> {
        self.fields.get(index).ok_or(Refusal::Unavailable)
    }
}

fn route_at(routes: &Routes<Route>, index: usize) -> Option<&Route> {
    routes.values().nth(index)
}

fn body_text<'a>(body: &'a [u8], span: &Range<usize>) -> &'a str {
    // Spans come from a parse that checked UTF-8, and start and end on ASCII delimiters.
    body.get(span.clone()).and_then(|bytes| std::str::from_utf8(bytes).ok()).unwrap_or_default()
}

/// A record id as bound: a string's decoded content (non-empty) or a number's JSON text.
/// `7` and `"7"` bind alike: upstreams often change an id's JSON type, never its value.
fn record_id(body: &[u8], span: Option<&Option<Range<usize>>>) -> Option<String> {
    let raw = body_text(body, span?.as_ref()?);
    match raw.bytes().next()? {
        b'"' => json::decode_string(raw).map(|id| id.into_owned()).filter(|id| !id.is_empty()),
        b'-' | b'0'..=b'9' => Some(raw.to_string()),
        _ => None,
    }
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

fn redaction(config: &RedactionConfig) -> Option<String> {
    match config {
        RedactionConfig::Null => Some("null".into()),
        RedactionConfig::Marker(marker) => Some(json_string(marker)),
        RedactionConfig::Ciphertext => None,
    }
}

/// Whether the caller satisfies one of the field's reader conditions.
fn is_reader(field: &Field, identity: Option<&Identity>) -> bool {
    let Some(identity) = identity else { return false };
    field.readers.iter().any(|reader| {
        identity
            .claim(&reader.claim)
            .is_some_and(|value| claim_strings(value, reader.split_spaces).iter().any(|v| reader.any_of.contains(v)))
    })
}

/// A field's context values; `None` when the identity lacks one.
type ContextValues = Option<Vec<(String, String)>>;

/// Each field's context values for this caller, computed once per body.
struct ContextCache {
    values: Vec<Option<ContextValues>>,
}

impl ContextCache {
    fn new(fields: usize) -> Self {
        Self { values: vec![None; fields] }
    }

    /// The field's context values; `None` when the identity lacks one of them.
    fn get(&mut self, index: usize, field: &Field, identity: Option<&Identity>) -> Option<&[(String, String)]> {
        let slot = self.values.get_mut(index)?;
        slot.get_or_insert_with(|| context_values(field, identity)).as_deref()
    }
}

fn context_values(field: &Field, identity: Option<&Identity>) -> Option<Vec<(String, String)>> {
    if field.context.is_empty() {
        return Some(Vec::new());
    }
    let identity = identity?;
    field
        .context
        .iter()
        .map(|(name, claim)| match claim_strings(identity.claim(claim)?, false).as_slice() {
            [one] => Some((name.clone(), one.clone())),
            _ => None,
        })
        .collect()
}

/// Whether a value's JSON text is a string that starts like a ciphertext.
fn is_ciphertext_text(raw: &str) -> bool {
    raw.strip_prefix('"').is_some_and(|text| text.starts_with(PREFIX))
}

/// A request's nonces, drawn from the random source in one call: in Envoy each call crosses
/// into the host, which costs more than the bytes.
struct DrawnNonces {
    bytes: Vec<u8>,
    used: usize,
}

impl DrawnNonces {
    fn draw(rng: &mut dyn NonceSource, count: u64) -> Result<Self, RandomUnavailable> {
        let len = usize::try_from(count).map_err(|_| RandomUnavailable)?.saturating_mul(NONCE_LEN);
        let mut bytes = vec![0u8; len];
        if len > 0 {
            rng.fill(&mut bytes)?;
        }
        Ok(Self { bytes, used: 0 })
    }
}

impl NonceSource for DrawnNonces {
    /// Hands out the next unused bytes; never the same ones twice.
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomUnavailable> {
        let next = self.bytes.get(self.used..self.used + dest.len()).ok_or(RandomUnavailable)?;
        dest.copy_from_slice(next);
        self.used += dest.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::encryption::testing::{config_json, test_env, CountingNonces, Xorshift};
    use crate::encryption::usage::MemoryLedger;
    use crate::http::RequestView;

    fn policy() -> Policy {
        Policy::from_json(config_json().as_bytes(), &test_env).unwrap()
    }

    /// The test config with changes applied to its JSON.
    fn policy_with(change: impl FnOnce(&mut Value)) -> Policy {
        let mut config: Value = serde_json::from_str(&config_json()).unwrap();
        change(&mut config);
        Policy::from_json(config.to_string().as_bytes(), &test_env).unwrap()
    }

    #[test]
    fn the_route_name_is_read_only_when_a_route_matches_on_it() {
        assert!(!policy().needs_route_name());
        let named = policy_with(|config| config["routes"][0]["match"] = json!({"route_name": "users"}));
        assert!(named.needs_route_name());
    }

    fn caller(roles: &[&str], tenant: Option<&str>) -> Identity {
        let mut claims = json!({"roles": roles, "scope": "read"});
        if let Some(tenant) = tenant {
            claims["tenant_id"] = tenant.into();
        }
        Identity { provider: "corp".into(), claims: claims.as_object().unwrap().clone(), ..Identity::default() }
    }

    fn route(policy: &Policy, method: &str) -> usize {
        let request = RequestView { method: method.into(), path: "/users".into(), ..RequestView::default() };
        policy.select(&request).unwrap()
    }

    fn encrypt(policy: &Policy, body: &str, identity: &Identity) -> Result<Encrypted, Refusal> {
        let post = route(policy, "POST");
        policy.encrypt_request(
            post,
            body.as_bytes(),
            Some(identity),
            &mut CountingNonces(0),
            &mut MemoryLedger::default(),
        )
    }

    fn encrypted_body(policy: &Policy, body: &str, identity: &Identity) -> Value {
        serde_json::from_slice(&encrypt(policy, body, identity).unwrap().body.unwrap()).unwrap()
    }

    fn decrypt(policy: &Policy, method: &str, body: &Value, identity: Option<&Identity>) -> (Value, Decrypted) {
        let bytes = body.to_string().into_bytes();
        let outcome = policy.decrypt_response(route(policy, method), &bytes, identity);
        let out = outcome.body.clone().unwrap_or(bytes);
        (serde_json::from_slice(&out).unwrap(), outcome)
    }

    const USER: &str = r#"{"id": 7, "email": "alice@example.com", "name": {"first": "Alice", "n": 12345678901234567890123}, "ids": [{"ssn": 123456789}, {"kind": "none"}, {"ssn": null}]}"#;

    #[test]
    fn round_trip_keeps_types_and_shows_only_readers() {
        let policy = policy();
        let alice = caller(&["pii-reader"], Some("acme"));
        let outcome = encrypt(&policy, USER, &alice).unwrap();
        assert_eq!((outcome.encrypted, outcome.rewrapped, outcome.kept), (4, 0, 0));
        let upstream = String::from_utf8(outcome.body.clone().unwrap()).unwrap();
        for secret in ["alice@example.com", "Alice", "12345678901234567890123", "123456789"] {
            assert!(!upstream.contains(secret), "{secret} reached the upstream: {upstream}");
        }
        // Only the values changed: the rest of the body is byte-identical.
        assert!(upstream.starts_with(r#"{"id": 7, "email": "enc:d1:k2:"#), "{upstream}");
        assert!(upstream.contains(r#"{"kind": "none"}"#));
        let stored: Value = serde_json::from_str(&upstream).unwrap();
        let listing = json!({"users": [stored.clone(), stored]});

        let original: Value = serde_json::from_str(USER).unwrap();
        let (shown, stats) = decrypt(&policy, "GET", &listing, Some(&alice));
        assert_eq!(shown["users"][0]["email"], original["email"]);
        assert_eq!(shown["users"][1]["name"], original["name"]);
        // user.ssn has no readers: its ciphertexts stay as stored.
        assert_eq!(shown["users"][0]["ids"], stored["ids"]);
        assert_eq!((stats.decrypted, stats.redacted, stats.failures.len()), (4, 4, 0));
        let (hidden, stats) = decrypt(&policy, "GET", &listing, Some(&caller(&["support"], Some("acme"))));
        assert_eq!(hidden["users"][1]["email"], Value::Null);
        assert_eq!(hidden["users"][1]["name"], "[redacted]");
        assert_eq!(hidden["users"][1]["ids"][0]["ssn"], stored["ids"][0]["ssn"]);
        assert_eq!(hidden["users"][1]["ids"][2]["ssn"], stored["ids"][2]["ssn"]);
        assert_eq!((stats.decrypted, stats.redacted), (0, 8));
        let (anonymous, _) = decrypt(&policy, "GET", &listing, None);
        assert_eq!(anonymous, hidden);
        // A reader through a space-separated scope sees the name only.
        let scoped = Identity {
            claims: json!({"scope": "read names", "tenant_id": "acme"}).as_object().unwrap().clone(),
            ..alice.clone()
        };
        let (partial, _) = decrypt(&policy, "GET", &listing, Some(&scoped));
        assert_eq!(partial["users"][0]["name"], original["name"]);
        assert_eq!(partial["users"][0]["email"], Value::Null);
    }

    #[test]
    fn a_request_draws_its_nonces_in_one_call_and_uses_each_once() {
        struct Recording(Vec<usize>, u8);
        impl NonceSource for Recording {
            fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomUnavailable> {
                self.0.push(dest.len());
                for byte in dest.iter_mut() {
                    self.1 = self.1.wrapping_add(1);
                    *byte = self.1;
                }
                Ok(())
            }
        }
        let policy = policy();
        let mut random = Recording(Vec::new(), 0);
        let outcome = policy
            .encrypt_request(
                route(&policy, "POST"),
                USER.as_bytes(),
                Some(&caller(&[], Some("acme"))),
                &mut random,
                &mut MemoryLedger::default(),
            )
            .unwrap();
        // name and the two ssn values are AES-GCM; the email is AES-SIV and needs none.
        assert_eq!(random.0, [3 * NONCE_LEN]);
        let stored: Value = serde_json::from_slice(&outcome.body.unwrap()).unwrap();
        let nonces: Vec<Vec<u8>> = [&stored["name"], &stored["ids"][0]["ssn"], &stored["ids"][2]["ssn"]]
            .iter()
            .map(|value| {
                let envelope = Envelope::parse(value.as_str().unwrap()).unwrap();
                envelope.payload[..NONCE_LEN].to_vec()
            })
            .collect();
        let expected: Vec<Vec<u8>> = (0..3u8).map(|i| (1..=12).map(|b| i * 12 + b).collect()).collect();
        assert_eq!(nonces, expected);
        // A body with nothing to seal at random draws nothing.
        let mut idle = Recording(Vec::new(), 0);
        let only_email = br#"{"email": "a"}"#;
        let alice = caller(&[], Some("acme"));
        policy
            .encrypt_request(route(&policy, "POST"), only_email, Some(&alice), &mut idle, &mut MemoryLedger::default())
            .unwrap();
        assert!(idle.0.is_empty());
    }

    #[test]
    fn ssn_ciphertexts_decrypt_for_nobody_but_stay_intact() {
        // user.ssn has no readers: it is stored encrypted and returned as ciphertext.
        let policy = policy();
        let alice = caller(&["pii-reader"], Some("acme"));
        let stored = encrypted_body(&policy, USER, &alice);
        assert!(stored["ids"][0]["ssn"].as_str().unwrap().starts_with("enc:v1:k2:"));
        assert!(stored["ids"][2]["ssn"].as_str().unwrap().starts_with("enc:v1:k2:"), "null is encrypted too");
        let (shown, _) = decrypt(&policy, "GET", &json!({"users": [stored.clone()]}), Some(&alice));
        assert_eq!(shown["users"][0]["ids"], stored["ids"]);
    }

    #[test]
    fn refusals_have_their_status_and_never_pass_plaintext() {
        let policy = policy();
        let alice = caller(&[], Some("acme"));
        let cases: &[(&str, Refusal, u16)] = &[
            ("{\"name\": \"x\"}", Refusal::MissingField("user.email".into()), 400),
            ("", Refusal::MissingField("user.email".into()), 400),
            ("{\"email\": \"a\"", Refusal::InvalidJson, 400),
            ("{\"email\": \"a\"} {}", Refusal::InvalidJson, 400),
            ("[1]", Refusal::MissingField("user.email".into()), 400),
            ("{\"email\": \"\\udc00\"}", Refusal::InvalidValue("user.email".into()), 400),
            ("{\"email\": \"enc:v1:k2:AAAA\"}", Refusal::InvalidCiphertext("user.email".into()), 400),
            ("{\"email\": \"enc: looks like one\"}", Refusal::InvalidCiphertext("user.email".into()), 400),
        ];
        for (body, expected, status) in cases {
            let refusal = encrypt(&policy, body, &alice).unwrap_err();
            assert_eq!(&refusal, expected, "{body}");
            assert_eq!(refusal.status(), *status);
            let reply = refusal.reply();
            assert_eq!(reply.status, *status);
            let json: Value = serde_json::from_slice(&reply.body).unwrap();
            assert_eq!(json["error"], refusal.code());
            assert!(Refusal::CODES.contains(&refusal.code()));
        }
        // Refused by the glue before the body, on the request's `content-encoding`.
        let coded = Refusal::EncodedBody;
        assert_eq!((coded.status(), coded.code()), (415, "unsupported_content_encoding"));
        assert!(Refusal::CODES.contains(&coded.code()));
        let deep = format!("{{\"email\":\"a\",\"x\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert_eq!(encrypt(&policy, &deep, &alice).unwrap_err(), Refusal::InvalidJson);
        let small = policy_with(|c| c["max_body_bytes"] = 20.into());
        let big = encrypt(&small, "{\"email\": \"aaaaaaaaaaaa\"}", &alice).unwrap_err();
        assert_eq!((big.code(), big.status()), ("body_too_large", 413));
        // The email binds the tenant claim: without it the request is refused.
        let no_tenant = encrypt(&policy, USER, &caller(&[], None)).unwrap_err();
        assert_eq!((no_tenant.code(), no_tenant.status()), ("encryption_context_missing", 403));
        // Optional fields may be absent; a body without configured fields passes unchanged.
        let outcome = encrypt(&policy, "{\"email\": \"a\"}", &alice).unwrap();
        assert_eq!(outcome.encrypted, 1);
        let none = policy_with(|c| c["routes"][0]["encrypt"][0]["required"] = false.into());
        assert_eq!(encrypt(&none, "{\"other\": 1}", &alice).unwrap(), Encrypted::default());
        assert_eq!(encrypt(&none, " ", &alice).unwrap(), Encrypted::default());
    }

    /// The test config with every rule bound to the user's `id` (`3/id` from an ssn in `ids`).
    fn record_bound() -> Policy {
        policy_with(|c| {
            for route in c["routes"].as_array_mut().unwrap() {
                for list in ["encrypt", "decrypt"] {
                    for rule in route.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
                        let up = if rule["path"].as_str().unwrap().ends_with("/ssn") { "3/id" } else { "1/id" };
                        rule["record"] = up.into();
                    }
                }
            }
        })
    }

    #[test]
    fn record_binding_stops_values_copied_between_records() {
        let policy = record_bound();
        let alice = caller(&["pii-reader"], Some("acme"));
        let seven = encrypted_body(&policy, USER, &alice);
        let eight = encrypted_body(&policy, &USER.replace("\"id\": 7", "\"id\": \"8\""), &alice);
        assert_eq!(eight["id"], "8");
        // Deterministic, yet equal emails of two records differ: the record id is bound.
        assert_ne!(seven["email"], eight["email"]);
        let original: Value = serde_json::from_str(USER).unwrap();
        let (shown, stats) = decrypt(&policy, "GET", &json!({"users": [seven.clone(), eight.clone()]}), Some(&alice));
        assert_eq!((stats.decrypted, stats.failures.len()), (4, 0));
        assert_eq!(shown["users"][1]["email"], original["email"]);
        assert_eq!(shown["users"][1]["ids"][0]["ssn"], eight["ids"][0]["ssn"], "user.ssn has no readers");
        // 7's ciphertexts copied into 8's record: every one fails, counted, marked, nothing shown.
        let mut forged = eight.clone();
        for member in ["email", "name", "ids"] {
            forged[member] = seven[member].clone();
        }
        let (shown, stats) = decrypt(&policy, "GET", &json!({"users": [seven.clone(), forged.clone()]}), Some(&alice));
        assert_eq!(shown["users"][0]["email"], original["email"]);
        assert_eq!(shown["users"][1]["email"], "[undecryptable]");
        assert_eq!(shown["users"][1]["name"], Value::Null);
        let reasons: Vec<_> = stats.failures.iter().map(|f| (f.field.as_str(), f.reason)).collect();
        assert_eq!(reasons, [("user.email", "authentication_failed"), ("user.name", "authentication_failed")]);
        // The id's JSON type may change upstream (7 and "7" bind alike), not its value.
        let retyped = json!({"users": [{"id": "7", "email": seven["email"]}, {"id": 7.0, "email": seven["email"]}]});
        let (shown, stats) = decrypt(&policy, "GET", &retyped, Some(&alice));
        assert_eq!(shown["users"][0]["email"], original["email"]);
        assert_eq!(stats.failures, [Failure { field: "user.email".into(), reason: "authentication_failed" }]);
        // A request carrying 7's ciphertext in 8's record is refused, not passed on.
        let refusal = encrypt(&policy, &forged.to_string(), &alice).unwrap_err();
        assert_eq!(refusal, Refusal::InvalidCiphertext("user.email".into()));
        // Unbound ciphertexts (sealed before the binding was configured) do not open either.
        let unbound = encrypted_body(&self::policy(), USER, &alice);
        let (_, stats) = decrypt(&policy, "POST", &unbound, Some(&alice));
        assert_eq!(stats.failures.len(), 2);
    }

    #[test]
    fn record_binding_needs_the_record_id() {
        let policy = record_bound();
        let alice = caller(&["pii-reader"], Some("acme"));
        let missing = Refusal::RecordIdMissing("user.email".into());
        for body in [
            r#"{"email": "e"}"#,
            r#"{"id": null, "email": "e"}"#,
            r#"{"id": true, "email": "e"}"#,
            r#"{"id": "", "email": "e"}"#,
            r#"{"id": {"v": 7}, "email": "e"}"#,
            r#"{"id": [7], "email": "e"}"#,
            r#"{"id": 7, "id": 8, "email": "e"}"#,
        ] {
            assert_eq!(encrypt(&policy, body, &alice).as_ref().unwrap_err(), &missing, "{body}");
        }
        assert_eq!((missing.status(), missing.code(), missing.field()), (400, "record_id_missing", Some("user.email")));
        assert!(Refusal::CODES.contains(&missing.code()));
        let message: Value = serde_json::from_slice(&missing.reply().body).unwrap();
        assert!(message["message"].as_str().unwrap().starts_with("field user.email is bound to its record"));
        // Only values present need an id; a nested value finds its record's id further up.
        let outcome = encrypt(&policy, r#"{"id": "u-1", "email": "e", "ids": [{"ssn": 1}]}"#, &alice).unwrap();
        assert_eq!(outcome.encrypted, 2);
        // A response whose record lost its id: readers get the marker, counted; others the redaction.
        let stored = encrypted_body(&policy, USER, &alice);
        let mut orphan = stored.clone();
        orphan.as_object_mut().unwrap().remove("id");
        let (shown, stats) = decrypt(&policy, "POST", &orphan, Some(&alice));
        assert_eq!(shown["email"], "[undecryptable]");
        assert_eq!(stats.failures[0], Failure { field: "user.email".into(), reason: "record_id_missing" });
        assert!(FAILURE_REASONS.contains(&"record_id_missing"));
        let (shown, stats) = decrypt(&policy, "POST", &orphan, Some(&caller(&["support"], Some("acme"))));
        assert_eq!((shown["email"].clone(), stats.redacted, stats.failures.len()), (Value::Null, 2, 0));
    }

    #[test]
    fn duplicate_members_are_all_encrypted() {
        let outcome = encrypt(&policy(), r#"{"email":"a@x.io","email":"b@x.io"}"#, &caller(&[], Some("t"))).unwrap();
        let body = String::from_utf8(outcome.body.unwrap()).unwrap();
        assert!(!body.contains("x.io"), "{body}");
        assert_eq!(outcome.encrypted, 2);
    }

    #[test]
    fn ciphertexts_do_not_move_between_fields_or_tenants() {
        let policy = policy();
        let acme = caller(&["pii-reader"], Some("acme"));
        let stored = encrypted_body(&policy, r#"{"email":"a@acme.io","name":"Ann"}"#, &acme);
        // Another tenant's reader gets the failure marker, counted and reasoned.
        let (shown, stats) = decrypt(&policy, "POST", &stored, Some(&caller(&["pii-reader"], Some("evil"))));
        assert_eq!(shown["email"], "[undecryptable]");
        assert_eq!(stats.failures, [Failure { field: "user.email".into(), reason: "authentication_failed" }]);
        assert_eq!(shown["name"], "Ann", "user.name binds no tenant");
        // A reader without a tenant claim.
        let (_, stats) = decrypt(&policy, "POST", &stored, Some(&caller(&["pii-reader"], None)));
        assert_eq!(stats.failures[0].reason, "context_missing");
        // The name's ciphertext copied into the email field (and back) fails.
        let swapped = json!({"email": stored["name"], "name": stored["email"]});
        let (shown, stats) = decrypt(&policy, "POST", &swapped, Some(&acme));
        assert_eq!(shown, json!({"email": "[undecryptable]", "name": null}));
        assert_eq!(stats.failures.len(), 2);
        // A request carrying a swapped ciphertext is refused, not re-encrypted.
        let refusal = encrypt(&policy, &swapped.to_string(), &acme).unwrap_err();
        assert_eq!(refusal, Refusal::InvalidCiphertext("user.email".into()));
        // Plaintext where a ciphertext belongs is never shown, even to readers.
        let (shown, stats) = decrypt(&policy, "POST", &json!({"email": "leak@x.io", "name": 5}), Some(&acme));
        assert_eq!(shown, json!({"email": "[undecryptable]", "name": null}));
        assert_eq!(stats.failures[0].reason, "not_encrypted");
        let (_, stats) = decrypt(&policy, "POST", &json!({"email": "enc:v1:k9:AAAA"}), Some(&acme));
        assert_eq!(stats.failures[0].reason, "malformed");
        for reason in ["malformed", "authentication_failed", "context_missing", "not_encrypted"] {
            assert!(FAILURE_REASONS.contains(&reason));
        }
        let (shown, _) = decrypt(&policy, "POST", &json!({"email": "enc:not-one", "name": null}), None);
        assert_eq!(shown, json!({"email": "[undecryptable]", "name": null}));
    }

    #[test]
    fn rotation_keeps_old_ciphertexts_until_min_version_passes_them() {
        let acme = caller(&["pii-reader"], Some("acme"));
        let old = policy_with(|c| c["keys"]["primary"] = "k1".into());
        let stored = encrypted_body(&old, USER, &acme);
        assert!(stored["email"].as_str().unwrap().starts_with("enc:d1:k1:"));
        let original: Value = serde_json::from_str(USER).unwrap();
        // k2 is primary now; k1 still decrypts.
        let (shown, _) = decrypt(&policy(), "POST", &stored, Some(&acme));
        assert_eq!(shown["email"], original["email"]);
        // A request echoing k1 ciphertexts: kept as they are, or rewrapped under k2.
        let kept = encrypt(&policy(), &stored.to_string(), &acme).unwrap();
        assert_eq!((kept.kept, kept.rewrapped, kept.body), (4, 0, None));
        let rewrapping = policy_with(|c| c["rewrap"] = true.into());
        let rewrapped = encrypt(&rewrapping, &stored.to_string(), &acme).unwrap();
        assert_eq!((rewrapped.kept, rewrapped.rewrapped), (0, 4));
        let fresh: Value = serde_json::from_slice(&rewrapped.body.unwrap()).unwrap();
        assert!(fresh["email"].as_str().unwrap().starts_with("enc:d1:k2:"));
        assert_eq!(fresh["email"], encrypted_body(&policy(), USER, &acme)["email"], "deterministic under k2");
        // Retire k1: its ciphertexts fail, the rewrapped ones still decrypt.
        let retired = policy_with(|c| c["keys"]["min_version"] = 2.into());
        let (shown, stats) = decrypt(&retired, "POST", &stored, Some(&acme));
        assert_eq!(shown["email"], "[undecryptable]");
        assert_eq!(stats.failures[0].reason, "retired_key");
        let (shown, _) = decrypt(&retired, "POST", &fresh, Some(&acme));
        assert_eq!(shown["email"], original["email"]);
        // Dropping k1 from the keyring: unknown key.
        let dropped = policy_with(|c| {
            c["keys"]["data_keys"].as_array_mut().unwrap().remove(0);
        });
        let (_, stats) = decrypt(&dropped, "POST", &stored, Some(&acme));
        assert_eq!(stats.failures[0].reason, "unknown_key");
        // A different key under the same id is caught by authentication.
        let impostor = policy_with(|c| {
            c["keys"]["primary"] = "k1".into();
            c["keys"]["data_keys"][0]["env"] = "K3".into();
        });
        let (_, stats) = decrypt(&impostor, "POST", &stored, Some(&acme));
        assert_eq!(stats.failures[0].reason, "authentication_failed");
    }

    #[test]
    fn deterministic_mode_is_equal_for_equal_inputs_and_context_only() {
        let policy = policy();
        let email = |tenant: &str, value: &str| {
            encrypted_body(&policy, &json!({"email": value}).to_string(), &caller(&[], Some(tenant)))["email"].clone()
        };
        assert_eq!(email("acme", "a@x.io"), email("acme", "a@x.io"));
        assert_eq!(email("acme", "a@x.io"), email("acme", "a\u{40}x.io"));
        assert_ne!(email("acme", "a@x.io"), email("acme", "b@x.io"));
        assert_ne!(email("acme", "a@x.io"), email("other", "a@x.io"));
        // Randomized fields differ every time.
        let name = |rng: u8| {
            let post = route(&policy, "POST");
            let out = policy
                .encrypt_request(
                    post,
                    br#"{"email":"e","name":"n"}"#,
                    Some(&caller(&[], Some("t"))),
                    &mut CountingNonces(rng),
                    &mut MemoryLedger::default(),
                )
                .unwrap();
            serde_json::from_slice::<Value>(&out.body.unwrap()).unwrap()["name"].clone()
        };
        assert_ne!(name(0), name(1));
    }

    #[test]
    fn usage_is_counted_warned_and_stopped() {
        let policy = policy_with(|c| c["usage"] = json!({"warn_after": 2, "hard_stop": 5}));
        let post = route(&policy, "POST");
        let alice = caller(&[], Some("acme"));
        let mut ledger = MemoryLedger::default();
        let mut run = |body: &str| {
            policy.encrypt_request(post, body.as_bytes(), Some(&alice), &mut CountingNonces(0), &mut ledger)
        };
        // The email is deterministic (not counted); name and two ssn values are AES-GCM.
        let first = run(r#"{"email":"e","name":"n"}"#).unwrap().usage.unwrap();
        assert_eq!((first.used, first.warning, first.log), (1, false, false));
        assert!(first.counter.starts_with("palisade.field_encryption.usage.k2."));
        let second = run(r#"{"email":"e","ids":[{"ssn":1},{"ssn":2}]}"#).unwrap().usage.unwrap();
        assert_eq!((second.used, second.warning, second.log), (3, true, true));
        assert_eq!(run(r#"{"email":"e"}"#).unwrap().usage, None);
        let third = run(r#"{"email":"e","name":"n"}"#).unwrap().usage.unwrap();
        assert_eq!((third.used, third.warning, third.log), (4, true, false));
        let stop = run(r#"{"email":"e","ids":[{"ssn":1},{"ssn":2}]}"#).unwrap_err();
        assert_eq!(stop, Refusal::KeyExhausted { key_id: "k2".into(), used: 4 });
        assert_eq!((stop.status(), stop.code()), (503, "key_exhausted"));
        assert_eq!(run(r#"{"email":"e","name":"n"}"#).unwrap().usage.unwrap().used, 5);
    }

    #[test]
    fn unavailable_randomness_or_ledger_fails_closed() {
        struct NoRandom;
        impl NonceSource for NoRandom {
            fn fill(&mut self, _: &mut [u8]) -> Result<(), ciphertext::RandomUnavailable> {
                Err(ciphertext::RandomUnavailable)
            }
        }
        struct Broken;
        impl UsageLedger for Broken {
            fn reserve(&mut self, _: &str, _: u64, _: u64) -> Result<u64, LedgerError> {
                Err(LedgerError::Unavailable)
            }
        }
        let policy = policy();
        let post = route(&policy, "POST");
        let body = br#"{"email":"e","name":"n"}"#;
        let alice = caller(&[], Some("t"));
        let err = policy.encrypt_request(post, body, Some(&alice), &mut NoRandom, &mut MemoryLedger::default());
        assert_eq!(err, Err(Refusal::Unavailable));
        let err = policy.encrypt_request(post, body, Some(&alice), &mut CountingNonces(0), &mut Broken);
        assert_eq!(err.map_err(|e| e.status()), Err(503));
    }

    #[test]
    fn responses_that_cannot_be_read_pass_untouched() {
        let policy = policy_with(|c| c["max_body_bytes"] = 64.into());
        let get = route(&policy, "GET");
        let reader = caller(&["pii-reader"], Some("acme"));
        let outcome = policy.decrypt_response(get, b"<html>", Some(&reader));
        assert_eq!((outcome.body, outcome.skipped), (None, Some(Skipped::NotJson)));
        let outcome = policy.decrypt_response(get, &[b' '; 65], Some(&reader));
        assert_eq!(outcome.skipped, Some(Skipped::TooLarge));
        assert_eq!(policy.decrypt_response(get, b"", Some(&reader)), Decrypted::default());
        assert_eq!(policy.decrypt_response(get, b"{\"users\":[]}", Some(&reader)), Decrypted::default());
    }

    /// Native timings for the report; no assertion on time.
    /// `cargo test --release -p palisade-core --features encryption report_transform -- --ignored --nocapture`
    #[test]
    #[ignore = "timing report"]
    fn report_transform_timings() {
        // 3 fields (one AES-SIV, two AES-GCM) in a 4 KiB body of 60 other members.
        let mut body =
            String::from(r#"{"id":7,"email":"alice@example.com","name":"Alice Example","ids":[{"ssn":"123-45-6789"}]"#);
        let mut i = 0;
        while body.len() < 4096 - 100 {
            body.push_str(&format!(r#","attr_{i:03}":"value number {i:03} of the profile""#));
            i += 1;
        }
        body.push_str(&format!(r#","pad":"{}"}}"#, "x".repeat(4096 - body.len() - 10)));
        assert_eq!(body.len(), 4096);
        for (name, policy) in [("unbound", policy()), ("record-bound", record_bound())] {
            let post = route(&policy, "POST");
            let alice = caller(&["pii-reader"], Some("acme"));
            let (mut rng, mut ledger) = (Xorshift(7), MemoryLedger::default());
            let sealed = policy.encrypt_request(post, body.as_bytes(), Some(&alice), &mut rng, &mut ledger).unwrap();
            assert_eq!(sealed.encrypted, 3);
            let sealed = sealed.body.unwrap();
            let rounds = 2000u32;
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                let out = policy.encrypt_request(post, body.as_bytes(), Some(&alice), &mut rng, &mut ledger);
                std::hint::black_box(out.ok());
            }
            let encrypt = start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                std::hint::black_box(policy.decrypt_response(post, &sealed, Some(&alice)));
            }
            let decrypt = start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                std::hint::black_box(json::parse(body.as_bytes()).ok());
            }
            let parse = start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
            println!(
                "{name}: encrypt 3 fields of 4 KiB: {encrypt:.1} us; decrypt them: {decrypt:.1} us; parse alone: {parse:.1} us"
            );
        }
    }

    // ---- Property test: generated documents and pointers (deterministic generator) ----

    fn gen_value(rng: &mut Xorshift, depth: u32) -> Value {
        let pick = if depth >= 4 { rng.below(5) } else { rng.below(7) };
        match pick {
            0 => Value::Null,
            1 => Value::Bool(rng.below(2) == 1),
            2 => json!(rng.next() as i64 / (1 + rng.below(1000) as i64)),
            3 => json!((rng.next() % 100000) as f64 / 7.0),
            4 => {
                let alphabet = ["a", "é", "\"", "\\", "/", "\n", "😀", "enc", " ", "\u{1}", "~"];
                Value::String((0..rng.below(12)).map(|_| alphabet[rng.below(alphabet.len() as u64) as usize]).collect())
            }
            5 => Value::Array((0..rng.below(4)).map(|_| gen_value(rng, depth + 1)).collect()),
            _ => Value::Object((0..rng.below(4)).map(|i| (format!("k{i}"), gen_value(rng, depth + 1))).collect()),
        }
    }

    /// An object of 1 to 4 members `f0`, `f1`, ... holding generated values.
    fn gen_document(rng: &mut Xorshift) -> Value {
        Value::Object((0..1 + rng.below(4)).map(|i| (format!("f{i}"), gen_value(rng, 0))).collect())
    }

    /// A pointer to some value of `doc`, with array indexes sometimes replaced by `*`.
    fn gen_pointer(rng: &mut Xorshift, doc: &Value) -> Option<String> {
        let mut pointer = String::new();
        let mut at = doc;
        loop {
            let stop = !pointer.is_empty() && rng.below(3) == 0;
            match at {
                Value::Object(map) if !map.is_empty() && !stop => {
                    let (k, v) = map.iter().nth(rng.below(map.len() as u64) as usize)?;
                    pointer.push('/');
                    pointer.push_str(&k.replace('~', "~0").replace('/', "~1"));
                    at = v;
                }
                Value::Array(items) if !items.is_empty() && !stop => {
                    let i = rng.below(items.len() as u64) as usize;
                    let segment = if rng.below(2) == 0 { "/*".to_string() } else { format!("/{i}") };
                    pointer.push_str(&segment);
                    at = &items[i];
                }
                _ => return if pointer.is_empty() { None } else { Some(pointer) },
            }
        }
    }

    #[test]
    fn property_round_trip_on_generated_documents_and_pointers() {
        let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
        let mut checked = 0;
        for round in 0..400 {
            let doc = gen_document(&mut rng);
            let Some(pointer) = gen_pointer(&mut rng, &doc) else { continue };
            let mode = if round % 2 == 0 { "randomized" } else { "deterministic" };
            let config = json!({
                "keys": {"primary": "k1", "data_keys": [{"id": "k1", "version": 1, "env": "K1"}]},
                "fields": {"f": {"mode": mode, "readers": [{"claim": "roles", "any_of": ["r"]}]}},
                "routes": [{"encrypt": [{"path": pointer, "field": "f", "required": !pointer.contains("/*")}],
                            "decrypt": [{"path": pointer, "field": "f"}]}]
            });
            let policy = Policy::from_json(config.to_string().as_bytes(), &test_env).unwrap();
            // Pretty-printed input: whitespace outside the values must survive too.
            let body = serde_json::to_string_pretty(&doc).unwrap();
            // Compare through one parser (serde_json's default float parsing is not exact).
            let doc: Value = serde_json::from_str(&body).unwrap();
            let reader = caller(&["r"], None);
            let outcome = policy
                .encrypt_request(0, body.as_bytes(), Some(&reader), &mut rng, &mut MemoryLedger::default())
                .unwrap_or_else(|e| panic!("{pointer} in {body}: {e:?}"));
            let sealed = outcome.body.expect("something was encrypted");
            let sealed_doc: Value = serde_json::from_slice(&sealed).unwrap();
            let found =
                crate::encryption::pointer::Pointer::parse(&pointer, "p").unwrap().find(&json::parse(&sealed).unwrap());
            assert_eq!(found.values.len() as u64, outcome.encrypted);
            for span in &found.values {
                assert!(sealed[span.clone()].starts_with(b"\"enc:"), "{pointer}");
            }
            // The reader gets the original document back, with types.
            let opened = policy.decrypt_response(0, &sealed, Some(&reader));
            assert!(opened.failures.is_empty());
            let restored: Value = serde_json::from_slice(&opened.body.unwrap()).unwrap();
            assert_eq!(restored, doc, "{pointer}");
            // Others get nulls in exactly those places, and nothing else changes.
            let hidden = policy.decrypt_response(0, &sealed, Some(&caller(&["x"], None)));
            let hidden: Value = serde_json::from_slice(&hidden.body.unwrap()).unwrap();
            let mut expected = doc.clone();
            let segments: Vec<String> =
                pointer.split('/').skip(1).map(|s| s.replace("~1", "/").replace("~0", "~")).collect();
            null_all(&mut expected, &segments);
            assert_eq!(hidden, expected, "{pointer}");
            assert_ne!(sealed_doc, doc);
            checked += 1;
        }
        assert!(checked > 300, "only {checked} documents checked");
    }

    #[test]
    fn a_body_parsed_for_its_pointers_walks_like_the_whole_tree() {
        use crate::encryption::pointer::{Pointer, RecordId};
        let mut rng = Xorshift(0x2545_f491_4f6c_dd1d);
        let mut checked = 0;
        for _ in 0..600 {
            let doc = gen_document(&mut rng);
            let body = serde_json::to_string(&doc).unwrap();
            let full = json::parse(body.as_bytes()).unwrap();
            let pointers: Vec<Pointer> = (0..1 + rng.below(3))
                .filter_map(|_| gen_pointer(&mut rng, &doc))
                .map(|text| Pointer::parse(&text, "p").unwrap())
                .collect();
            // A record id one level up, named as one of the document's own members.
            let records: Vec<Option<RecordId>> = pointers
                .iter()
                .map(|p| RecordId::parse(&format!("1/f{}", rng.below(3)), p, "r").ok().filter(|_| rng.below(2) == 0))
                .collect();
            let reach: Vec<Vec<Segment>> =
                pointers.iter().zip(&records).flat_map(|(pointer, record)| pointer.reach(record.as_ref())).collect();
            let reach: Vec<&[Segment]> = reach.iter().map(Vec::as_slice).collect();
            let pruned = json::parse_for(body.as_bytes(), &reach).unwrap();
            for (pointer, record) in pointers.iter().zip(&records) {
                assert_eq!(
                    pointer.find_in_records(&pruned, record.as_ref()),
                    pointer.find_in_records(&full, record.as_ref()),
                    "{} in {body}",
                    pointer.as_str()
                );
                checked += 1;
            }
        }
        assert!(checked > 600, "only {checked} pointers checked");
    }

    /// Sets every value the pointer segments select to null.
    fn null_all(value: &mut Value, segments: &[String]) {
        let Some((first, rest)) = segments.split_first() else {
            *value = Value::Null;
            return;
        };
        match value {
            Value::Object(map) if first == "*" => map.values_mut().for_each(|v| null_all(v, rest)),
            Value::Array(items) if first == "*" => items.iter_mut().for_each(|v| null_all(v, rest)),
            Value::Object(map) => map.get_mut(first).into_iter().for_each(|v| null_all(v, rest)),
            Value::Array(items) => {
                items.get_mut(first.parse::<usize>().unwrap()).into_iter().for_each(|v| null_all(v, rest))
            }
            _ => {}
        }
    }
}
