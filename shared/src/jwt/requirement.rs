//! The requirement tree of a route, evaluated as Envoy's `jwt_authn` does.
//!
//! ```json
//! {"any": [{"provider": "corp"}, {"all": [{"provider": "partner"}, {"provider": "keys"}]}]}
//! ```
//!
//! `provider` needs that provider's credential to verify; `any` needs one child (on failure
//! it reports the first failure that is not "missing", else "missing"); `all` needs every
//! child; `allow_missing` passes without a credential but not with a bad one;
//! `allow_missing_or_failed` always passes; `none` does not look. Providers are only asked
//! when needed, so `any` stops at the first success.

use super::config::RequirementConfig;
use super::failure::Failure;
use crate::config::ConfigError;

/// A compiled requirement; providers are indices into the policy's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// This provider must verify.
    Provider(usize),
    /// One child must pass.
    Any(Vec<Requirement>),
    /// Every child must pass.
    All(Vec<Requirement>),
    /// Pass without credentials; credentials present must verify.
    AllowMissing,
    /// Always pass.
    AllowMissingOrFailed,
    /// No authentication.
    None,
}

/// What one provider made of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderResult {
    /// No credential in its locations.
    Missing,
    /// Its credential verified.
    Verified,
    /// Its credential failed.
    Failed(Failure),
    /// It has no keys yet.
    NeedKeys,
}

/// The result of a requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evaluation {
    /// Passed; these providers verified, in order.
    Pass(Vec<usize>),
    /// Failed with this reason.
    Fail(Failure),
    /// Undecided until these providers have keys.
    NeedKeys(Vec<usize>),
}

impl Requirement {
    /// Compiles a requirement against the provider names.
    pub fn compile(config: &RequirementConfig, names: &[&str], field: &str) -> Result<Self, ConfigError> {
        Ok(match config {
            RequirementConfig::Provider(name) => {
                Requirement::Provider(names.iter().position(|n| n == name).ok_or_else(|| {
                    ConfigError::new(format!("{field}.provider"), format!("unknown provider {name:?}"))
                })?)
            }
            RequirementConfig::Any(children) | RequirementConfig::All(children) => {
                let kind = if matches!(config, RequirementConfig::Any(_)) { "any" } else { "all" };
                if children.is_empty() {
                    return Err(ConfigError::new(format!("{field}.{kind}"), "must not be empty"));
                }
                let compiled = children
                    .iter()
                    .enumerate()
                    .map(|(i, child)| Self::compile(child, names, &format!("{field}.{kind}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                if kind == "any" {
                    Requirement::Any(compiled)
                } else {
                    Requirement::All(compiled)
                }
            }
            RequirementConfig::AllowMissing => Requirement::AllowMissing,
            RequirementConfig::AllowMissingOrFailed => Requirement::AllowMissingOrFailed,
            RequirementConfig::None => Requirement::None,
        })
    }

    /// Whether the tree may ask provider `i` (the `allow_missing` forms ask every provider).
    pub fn asks(&self, i: usize) -> bool {
        match self {
            Requirement::Provider(p) => *p == i,
            Requirement::Any(children) | Requirement::All(children) => children.iter().any(|c| c.asks(i)),
            Requirement::AllowMissing | Requirement::AllowMissingOrFailed => true,
            Requirement::None => false,
        }
    }

    /// Evaluates the tree; `result(i)` runs (or recalls) provider `i`, and `providers` is how
    /// many there are (the `allow_missing` forms ask all of them).
    pub fn evaluate(&self, providers: usize, result: &mut dyn FnMut(usize) -> ProviderResult) -> Evaluation {
        match self {
            Requirement::Provider(i) => match result(*i) {
                ProviderResult::Missing => Evaluation::Fail(Failure::Missing),
                ProviderResult::Verified => Evaluation::Pass(vec![*i]),
                ProviderResult::Failed(failure) => Evaluation::Fail(failure),
                ProviderResult::NeedKeys => Evaluation::NeedKeys(vec![*i]),
            },
            Requirement::Any(children) => {
                let mut failure = None;
                let mut waiting = Vec::new();
                for child in children {
                    match child.evaluate(providers, result) {
                        Evaluation::Pass(verified) => return Evaluation::Pass(verified),
                        Evaluation::NeedKeys(ids) => waiting.extend(ids),
                        Evaluation::Fail(f) => match failure {
                            None => failure = Some(f),
                            Some(Failure::Missing) if f != Failure::Missing => failure = Some(f),
                            Some(_) => {}
                        },
                    }
                }
                if waiting.is_empty() {
                    Evaluation::Fail(failure.unwrap_or(Failure::Missing))
                } else {
                    Evaluation::NeedKeys(waiting)
                }
            }
            Requirement::All(children) => {
                let mut verified = Vec::new();
                let mut waiting = Vec::new();
                for child in children {
                    match child.evaluate(providers, result) {
                        Evaluation::Pass(ids) => verified.extend(ids),
                        Evaluation::NeedKeys(ids) => waiting.extend(ids),
                        Evaluation::Fail(f) => return Evaluation::Fail(f),
                    }
                }
                if waiting.is_empty() {
                    Evaluation::Pass(verified)
                } else {
                    Evaluation::NeedKeys(waiting)
                }
            }
            Requirement::AllowMissing | Requirement::AllowMissingOrFailed => {
                let tolerate_failure = matches!(self, Requirement::AllowMissingOrFailed);
                let mut verified = Vec::new();
                let mut failure = None;
                let mut waiting = Vec::new();
                for i in 0..providers {
                    match result(i) {
                        ProviderResult::Verified => verified.push(i),
                        ProviderResult::Missing => {}
                        ProviderResult::Failed(f) => failure = failure.or(Some(f)),
                        ProviderResult::NeedKeys => waiting.push(i),
                    }
                }
                match (verified.is_empty(), failure, waiting.is_empty()) {
                    (false, _, _) => Evaluation::Pass(verified),
                    (true, _, false) if !tolerate_failure => Evaluation::NeedKeys(waiting),
                    (true, Some(f), _) if !tolerate_failure => Evaluation::Fail(f),
                    _ => Evaluation::Pass(Vec::new()),
                }
            }
            Requirement::None => Evaluation::Pass(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProviderResult::{Failed, Missing, NeedKeys, Verified};

    fn eval(req: &Requirement, results: &[ProviderResult]) -> Evaluation {
        req.evaluate(results.len(), &mut |i| results[i])
    }

    fn compile(json: &str) -> Result<Requirement, ConfigError> {
        let config: RequirementConfig = serde_json::from_str(json).unwrap();
        Requirement::compile(&config, &["a", "b", "c"], "rules[0].requires")
    }

    #[test]
    fn provider_maps_each_result() {
        let req = Requirement::Provider(0);
        assert_eq!(eval(&req, &[Missing]), Evaluation::Fail(Failure::Missing));
        assert_eq!(eval(&req, &[Verified]), Evaluation::Pass(vec![0]));
        assert_eq!(eval(&req, &[Failed(Failure::Expired)]), Evaluation::Fail(Failure::Expired));
        assert_eq!(eval(&req, &[NeedKeys]), Evaluation::NeedKeys(vec![0]));
    }

    #[test]
    fn any_prefers_a_real_failure_over_missing_and_stops_at_success() {
        let req = compile(r#"{"any":[{"provider":"a"},{"provider":"b"},{"provider":"c"}]}"#).unwrap();
        assert_eq!(
            eval(&req, &[Missing, Failed(Failure::BadSignature), Missing]),
            Evaluation::Fail(Failure::BadSignature)
        );
        assert_eq!(eval(&req, &[Missing, Missing, Missing]), Evaluation::Fail(Failure::Missing));
        assert_eq!(eval(&req, &[Failed(Failure::Expired), Verified, NeedKeys]), Evaluation::Pass(vec![1]));
        assert_eq!(eval(&req, &[Failed(Failure::Expired), NeedKeys, Missing]), Evaluation::NeedKeys(vec![1]));
        let mut asked = Vec::new();
        let results = [Verified, Verified, Verified];
        req.evaluate(3, &mut |i| {
            asked.push(i);
            results[i]
        });
        assert_eq!(asked, [0]);
    }

    #[test]
    fn all_needs_every_child() {
        let req = compile(r#"{"all":[{"provider":"a"},{"any":[{"provider":"b"},{"provider":"c"}]}]}"#).unwrap();
        assert_eq!(eval(&req, &[Verified, Missing, Verified]), Evaluation::Pass(vec![0, 2]));
        assert_eq!(eval(&req, &[Verified, Missing, Missing]), Evaluation::Fail(Failure::Missing));
        assert_eq!(
            eval(&req, &[NeedKeys, Failed(Failure::UnknownKid), Missing]),
            Evaluation::Fail(Failure::UnknownKid)
        );
    }

    #[test]
    fn allow_missing_forms() {
        let missing = Requirement::AllowMissing;
        assert_eq!(eval(&missing, &[Missing, Missing]), Evaluation::Pass(vec![]));
        assert_eq!(eval(&missing, &[Failed(Failure::Expired), Missing]), Evaluation::Fail(Failure::Expired));
        assert_eq!(eval(&missing, &[Failed(Failure::IssuerMismatch), Verified]), Evaluation::Pass(vec![1]));
        assert_eq!(eval(&missing, &[NeedKeys, Missing]), Evaluation::NeedKeys(vec![0]));
        let failed = Requirement::AllowMissingOrFailed;
        assert_eq!(eval(&failed, &[Failed(Failure::Expired), NeedKeys]), Evaluation::Pass(vec![]));
        assert_eq!(eval(&failed, &[Failed(Failure::Expired), Verified]), Evaluation::Pass(vec![1]));
        assert_eq!(eval(&Requirement::None, &[Failed(Failure::Expired)]), Evaluation::Pass(vec![]));
    }

    #[test]
    fn asks_names_the_providers_a_tree_may_run() {
        let req = compile(r#"{"any":[{"provider":"a"},{"all":[{"provider":"c"}]}]}"#).unwrap();
        assert_eq!((0..3).map(|i| req.asks(i)).collect::<Vec<_>>(), [true, false, true]);
        assert!(Requirement::AllowMissing.asks(1) && Requirement::AllowMissingOrFailed.asks(2));
        assert!(!Requirement::None.asks(0));
    }

    #[test]
    fn config_errors_name_the_field() {
        assert_eq!(
            compile(r#"{"any":[{"provider":"a"},{"provider":"z"}]}"#).unwrap_err().to_string(),
            "rules[0].requires.any[1].provider: unknown provider \"z\""
        );
        assert_eq!(compile(r#"{"all":[]}"#).unwrap_err().to_string(), "rules[0].requires.all: must not be empty");
        assert_eq!(compile(r#""allow_missing""#).unwrap(), Requirement::AllowMissing);
    }
}
