//! Checked configuration values, after linfa's "hyper-parameters → checked hyper-parameters".
//!
//! Every configuration of the library — a model's hyper-parameters
//! ([`crate::models::ModelParams`]), a run's protocol ([`crate::train::RunConfig`]), the
//! C-network's settings ([`crate::synergy::SynergyConfig`]) — is a plain serialisable value that
//! implements [`Validate`]. [`Checked::new`] validates one **once** and wraps it; what builds or
//! trains from a configuration internally ([`crate::models::FusionModel::new`], the trainer, the
//! C-network's constructor) takes the `Checked` value, so no layer re-checks what another has
//! checked, and a value that failed its check cannot reach them. The public entry points that take
//! a plain value ([`crate::train::train_run`], [`crate::train::build_model`],
//! [`crate::synergy::CNetwork::new`]) check it first, with a [`ParamError`] naming the field.
//!
//! ```
//! use neural_synergy::models::tfn::TfnConfig;
//! use neural_synergy::{Checked, Validate};
//!
//! let ok = Checked::new(TfnConfig::default()).unwrap();
//! assert_eq!(ok.text_out, TfnConfig::default().text_out); // reads through to the value
//! let bad = TfnConfig { post_fusion_dropout: 1.5, ..TfnConfig::default() };
//! assert_eq!(bad.validate().unwrap_err().field, "post_fusion_dropout");
//! assert!(Checked::new(bad).is_err());
//! ```

use crate::error::ParamError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A configuration whose fields have domains: [`Validate::validate`] checks every one and the
/// error names the first field outside its domain and why.
pub trait Validate {
    /// Checks every field; the error names the field and why.
    fn validate(&self) -> Result<(), ParamError>;

    /// The value, checked ([`Checked::new`]).
    fn check(self) -> Result<Checked<Self>, ParamError>
    where
        Self: Sized,
    {
        Checked::new(self)
    }
}

/// A configuration that passed [`Validate::validate`]: the only way to make one is
/// [`Checked::new`] (or deserialising, which validates too), so a function that takes a
/// `Checked<T>` never sees a value outside its domain. It reads through to the value
/// ([`std::ops::Deref`]) and serialises as the bare value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Checked<T>(T);

impl<T: Validate> Checked<T> {
    /// Validates `value` and wraps it.
    pub fn new(value: T) -> Result<Self, ParamError> {
        value.validate()?;
        Ok(Self(value))
    }
}

impl<T> Checked<T> {
    /// A part of a checked whole, whose check covered this part (a run's model configuration,
    /// its C-network settings): wrapped without checking it again.
    pub(crate) fn part_of_checked(value: T) -> Self {
        Self(value)
    }

    /// The value, unwrapped.
    pub(crate) fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Checked<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::borrow::Borrow<T> for Checked<T> {
    fn borrow(&self) -> &T {
        &self.0
    }
}

impl<T: Serialize> Serialize for Checked<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Validate + Deserialize<'de>> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Checked::new(T::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Width {
        width: usize,
    }

    impl Validate for Width {
        fn validate(&self) -> Result<(), ParamError> {
            if self.width == 0 {
                return Err(ParamError::new("width", "must be >= 1, got 0"));
            }
            Ok(())
        }
    }

    #[test]
    fn a_value_outside_its_domain_never_becomes_checked() {
        assert_eq!(Checked::new(Width { width: 0 }).unwrap_err().field, "width");
        assert_eq!(Width { width: 3 }.check().unwrap().width, 3);
    }

    #[test]
    fn a_checked_value_serialises_bare_and_deserialising_checks_it() {
        let c = Checked::new(Width { width: 2 }).unwrap();
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(text, r#"{"width":2}"#);
        assert_eq!(serde_json::from_str::<Checked<Width>>(&text).unwrap(), c);
        let e = serde_json::from_str::<Checked<Width>>(r#"{"width":0}"#).unwrap_err();
        assert!(e.to_string().contains("width must be >= 1"), "{e}");
    }
}
