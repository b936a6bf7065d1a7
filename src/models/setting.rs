//! One model hyper-parameter set from the command line (`--model-param MODEL.FIELD=VALUE`):
//! a field of a model's configuration ([`ModelConfig`], what every run stores) replaced in the
//! plan's configuration of that model, for every run of it, baseline included.
//!
//! The field is found in the configuration's serialised form (the names `run.json` and
//! `results.jsonl` show; a nested field with dots, `misa.bert.finetune`), the value is read as
//! JSON (`0.1`, `true`, `"bert"`; a bare word is a string) and the configuration is read back and
//! validated, so an unknown field, a value of the wrong type or an invalid value is a typed
//! [`ModelSettingError`] before anything trains. A changed configuration changes the runs' keys:
//! runs at another value in the same folder are other runs, never resumed as these.

use super::{ModelConfig, ModelKind, Validate};
use crate::error::ParamError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// Why a `--model-param` setting was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ModelSettingError {
    /// Not `MODEL.FIELD=VALUE`.
    #[error("--model-param {0:?}: expected MODEL.FIELD=VALUE (e.g. magbert.beta_shift=0.1)")]
    Syntax(String),
    /// `MODEL` is not a model of this build.
    #[error("--model-param {spec:?}: unknown model {model:?} (one of {known})")]
    UnknownModel {
        spec: String,
        model: String,
        known: String,
    },
    /// The configuration has no such field.
    #[error("--model-param {spec}: {model} has no field {field:?} (its fields: {known})")]
    UnknownField {
        spec: String,
        model: &'static str,
        field: String,
        known: String,
    },
    /// The value does not have the field's type.
    #[error("--model-param {spec}: {reason}")]
    BadValue { spec: String, reason: String },
    /// The configuration with the value fails its checks.
    #[error("--model-param {spec}: {source}")]
    Invalid {
        spec: String,
        #[source]
        source: ParamError,
    },
    /// Two settings of the same field.
    #[error("--model-param: {0} is set twice")]
    Twice(String),
    /// The plan does not train the model the setting names.
    #[error("--model-param {spec}: {model} is not among the models this command trains")]
    NotInPlan { spec: String, model: &'static str },
}

/// `MODEL.FIELD[.SUBFIELD…]=VALUE` (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSetting {
    pub model: ModelKind,
    /// The field's path in the serialised configuration.
    pub path: Vec<String>,
    pub value: Value,
}

impl FromStr for ModelSetting {
    type Err = ModelSettingError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let syntax = || ModelSettingError::Syntax(spec.to_string());
        let (lhs, rhs) = spec.split_once('=').ok_or_else(syntax)?;
        let (model, path) = lhs.trim().split_once('.').ok_or_else(syntax)?;
        let path: Vec<String> = path.split('.').map(|p| p.trim().to_string()).collect();
        let rhs = rhs.trim();
        if path.iter().any(String::is_empty) || rhs.is_empty() {
            return Err(syntax());
        }
        // parsed as `--models` parses a model (ignoring case)
        let model = <ModelKind as clap::ValueEnum>::from_str(model.trim(), true).map_err(|_| {
            ModelSettingError::UnknownModel {
                spec: spec.to_string(),
                model: model.trim().to_string(),
                known: ModelKind::ALL
                    .iter()
                    .map(|k| k.cli_name())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        })?;
        // a JSON literal, else the bare word as a string (`--model-param misa.text_encoder=bert`)
        let value = serde_json::from_str(rhs).unwrap_or_else(|_| Value::String(rhs.to_string()));
        Ok(Self { model, path, value })
    }
}

impl fmt::Display for ModelSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = match &self.value {
            // a string that would not read back as itself is quoted
            Value::String(s) if serde_json::from_str::<Value>(s).is_err() => s.clone(),
            v => v.to_string(),
        };
        write!(
            f,
            "{}.{}={}",
            self.model.cli_name(),
            self.path.join("."),
            value
        )
    }
}

impl ModelSetting {
    /// `cfg` with the field replaced, read back and validated; `Ok(None)` when `cfg` is another
    /// model.
    pub fn apply(&self, cfg: &ModelConfig) -> Result<Option<ModelConfig>, ModelSettingError> {
        if cfg.kind() != self.model {
            return Ok(None);
        }
        let spec = self.to_string();
        let bad = |reason: String| ModelSettingError::BadValue {
            spec: spec.clone(),
            reason,
        };
        let mut root = serde_json::to_value(cfg).map_err(|e| bad(e.to_string()))?;
        let unknown = |field: String, known: String| ModelSettingError::UnknownField {
            spec: spec.clone(),
            model: cfg.kind().name(),
            field,
            known,
        };
        let mut node = &mut root;
        for (depth, field) in self.path.iter().enumerate() {
            let Value::Object(map) = node else {
                return Err(bad(format!(
                    "{} is not a group of fields",
                    self.path[..depth].join(".")
                )));
            };
            // the tag says which model this is: not a hyper-parameter
            if depth == 0 && field == "model" {
                let known = map.keys().filter(|k| *k != "model").cloned();
                return Err(unknown(field.clone(), known.collect::<Vec<_>>().join(", ")));
            }
            // a field left out of the serialised form at its default (MISA's `bert` group) is
            // added; reading the configuration back says whether it exists
            let key = stored_key(map, field);
            node = map
                .entry(key)
                .or_insert_with(|| Value::Object(Default::default()));
        }
        *node = self.value.clone();
        let out: ModelConfig = serde_json::from_value(root).map_err(|e| {
            let msg = e.to_string();
            match msg.strip_prefix("unknown field ") {
                // serde names the field and every field it knows
                Some(rest) => {
                    let known = rest.split_once("expected ").map_or("", |(_, k)| k);
                    let known = known.trim_start_matches("one of ").replace('`', "");
                    unknown(self.path.join("."), known)
                }
                None => bad(msg),
            }
        })?;
        out.validate()
            .map_err(|source| ModelSettingError::Invalid { spec, source })?;
        Ok(Some(out))
    }
}

/// `field` under TFN's and LMF's stored spelling: `vision_*` as `video_*` (MMSA's names, which
/// their run keys hash; serde reads both, but the serialised form shows only the stored one);
/// every other name as it is.
fn video_spelling(field: &str) -> String {
    match field.strip_prefix("vision_") {
        Some(rest) => format!("video_{rest}"),
        None => field.to_string(),
    }
}

/// The key under which `map` stores `field`: `field` itself, or its [`video_spelling`] where only
/// that is stored (writing the other spelling beside it would be a duplicate field).
fn stored_key(map: &serde_json::Map<String, Value>, field: &str) -> String {
    if !map.contains_key(field) {
        let video = video_spelling(field);
        if map.contains_key(&video) {
            return video;
        }
    }
    field.to_string()
}

/// Whether two settings' paths name the same field (`vision_*` and `video_*` are one field).
fn same_field(a: &[String], b: &[String]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| video_spelling(x) == video_spelling(y))
}

/// Applies `settings` to the plan's `models` in order. Errors on a setting of a model the plan
/// does not train, on the same field set twice, and on any refused setting.
pub fn apply_all(
    models: &mut [ModelConfig],
    settings: &[ModelSetting],
) -> Result<(), ModelSettingError> {
    for (i, s) in settings.iter().enumerate() {
        if settings[..i]
            .iter()
            .any(|t| t.model == s.model && same_field(&t.path, &s.path))
        {
            return Err(ModelSettingError::Twice(format!(
                "{}.{}",
                s.model.cli_name(),
                s.path.join(".")
            )));
        }
        let mut found = false;
        for m in models.iter_mut() {
            if let Some(new) = s.apply(m)? {
                *m = new;
                found = true;
            }
        }
        if !found {
            return Err(ModelSettingError::NotInPlan {
                spec: s.to_string(),
                model: s.model.name(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn magbert() -> ModelConfig {
        ModelKind::Magbert.default_config()
    }

    fn field(cfg: &ModelConfig, path: &[&str]) -> Value {
        let mut v = serde_json::to_value(cfg).unwrap();
        for p in path {
            v = v[*p].clone();
        }
        v
    }

    #[test]
    fn a_setting_replaces_only_its_field() {
        let s: ModelSetting = "magbert.beta_shift=0.1".parse().unwrap();
        let before = magbert();
        let after = s.apply(&before).unwrap().expect("a MAGBERT setting");
        assert_eq!(field(&after, &["beta_shift"]), serde_json::json!(0.1));
        let (mut a, mut b) = (
            serde_json::to_value(&before).unwrap(),
            serde_json::to_value(&after).unwrap(),
        );
        a.as_object_mut().unwrap().remove("beta_shift");
        b.as_object_mut().unwrap().remove("beta_shift");
        assert_eq!(a, b, "every other field keeps its value");
    }

    #[test]
    fn a_setting_of_another_model_leaves_the_config_alone() {
        let s: ModelSetting = "magbert.beta_shift=0.1".parse().unwrap();
        assert_eq!(s.apply(&ModelKind::Tfn.default_config()).unwrap(), None);
    }

    #[test]
    fn nested_fields_and_bare_words_are_set() {
        let cfg = ModelKind::Misa.default_config();
        let s: ModelSetting = "misa.bert.finetune=false".parse().unwrap();
        let out = s.apply(&cfg).unwrap().unwrap();
        assert_eq!(field(&out, &["bert", "finetune"]), Value::Bool(false));
        let s: ModelSetting = "misa.text_encoder=bert".parse().unwrap();
        let out = s.apply(&cfg).unwrap().unwrap();
        assert_eq!(field(&out, &["text_encoder"]), Value::String("bert".into()));
    }

    #[test]
    fn refusals_are_typed() {
        for spec in ["magbert", "magbert=1", "magbert.=1", "magbert.beta_shift="] {
            assert!(
                matches!(
                    spec.parse::<ModelSetting>(),
                    Err(ModelSettingError::Syntax(_))
                ),
                "{spec}"
            );
        }
        assert!(matches!(
            "bogus.x=1".parse::<ModelSetting>(),
            Err(ModelSettingError::UnknownModel { .. })
        ));
        let apply = |spec: &str| spec.parse::<ModelSetting>().unwrap().apply(&magbert());
        match apply("magbert.beta_shfit=0.1") {
            Err(ModelSettingError::UnknownField { known, .. }) => {
                assert!(
                    known.contains("beta_shift"),
                    "the error lists the fields: {known}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            apply("magbert.model=tfn"),
            Err(ModelSettingError::UnknownField { .. })
        ));
        assert!(matches!(
            apply("magbert.beta_shift=yes"),
            Err(ModelSettingError::BadValue { .. })
        ));
        assert!(matches!(
            apply("magbert.beta_shift.x=1"),
            Err(ModelSettingError::BadValue { .. })
        ));
        assert!(matches!(
            apply("magbert.beta_shift=-1"),
            Err(ModelSettingError::Invalid { .. })
        ));
        assert!(matches!(
            apply("magbert.mag_dropout=1.5"),
            Err(ModelSettingError::Invalid { .. })
        ));
    }

    #[test]
    fn apply_all_refuses_twice_and_models_not_in_the_plan() {
        let mut models = vec![magbert(), ModelKind::Tfn.default_config()];
        let s = |spec: &str| spec.parse::<ModelSetting>().unwrap();
        assert!(matches!(
            apply_all(
                &mut models,
                &[s("magbert.beta_shift=0.1"), s("magbert.beta_shift=1")]
            ),
            Err(ModelSettingError::Twice(_))
        ));
        assert!(matches!(
            apply_all(&mut models, &[s("mim.alpha=0.2")]),
            Err(ModelSettingError::NotInPlan { .. })
        ));
        apply_all(&mut models, &[s("magbert.beta_shift=0.1")]).unwrap();
        assert_eq!(field(&models[0], &["beta_shift"]), serde_json::json!(0.1));
        assert_eq!(models[1], ModelKind::Tfn.default_config());
    }

    #[test]
    fn vision_fields_are_set_under_their_stored_video_names() {
        let tfn = ModelKind::Tfn.default_config();
        let s = |spec: &str| spec.parse::<ModelSetting>().unwrap();
        for (spec, stored, value) in [
            (
                "tfn.vision_hidden=16",
                "video_hidden",
                serde_json::json!(16),
            ),
            ("tfn.video_hidden=16", "video_hidden", serde_json::json!(16)),
            (
                "tfn.vision_dropout=0.1",
                "video_dropout",
                serde_json::json!(0.1),
            ),
        ] {
            let out = s(spec).apply(&tfn).unwrap().unwrap();
            assert_eq!(field(&out, &[stored]), value, "{spec}");
        }
        let lmf = ModelKind::Lmf.default_config();
        let out = s("lmf.vision_hidden=8").apply(&lmf).unwrap().unwrap();
        assert_eq!(field(&out, &["video_hidden"]), serde_json::json!(8));
        let mut models = vec![tfn];
        assert!(matches!(
            apply_all(
                &mut models,
                &[s("tfn.vision_hidden=16"), s("tfn.video_hidden=8")]
            ),
            Err(ModelSettingError::Twice(_))
        ));
    }

    proptest! {
        /// Display parses back to the same setting.
        #[test]
        fn display_round_trips(
            k in 0..ModelKind::ALL.len(),
            path in proptest::collection::vec("[a-z_][a-z0-9_]{0,8}", 1..3),
            value in prop_oneof![
                any::<bool>().prop_map(Value::Bool),
                (-1e6f64..1e6).prop_map(|x| serde_json::json!(x)),
                any::<u32>().prop_map(|x| serde_json::json!(x)),
                "[a-z][a-z_]{0,8}".prop_map(Value::String),
            ],
        ) {
            let s = ModelSetting { model: ModelKind::ALL[k], path, value };
            prop_assert_eq!(s.to_string().parse::<ModelSetting>().unwrap(), s);
        }

        /// Any positive β_shift set on MAG-BERT reads back exactly.
        #[test]
        fn a_set_number_reads_back_exactly(x in 1e-6f64..1e3) {
            let s: ModelSetting = format!("magbert.beta_shift={x}").parse().unwrap();
            let out = s.apply(&magbert()).unwrap().unwrap();
            let ModelConfig::Magbert(c) = out else { panic!("MAGBERT") };
            prop_assert_eq!(c.beta_shift, x);
        }

        /// No string panics the parser.
        #[test]
        fn parsing_never_panics(s in ".{0,40}") {
            let _ = s.parse::<ModelSetting>();
        }
    }
}
