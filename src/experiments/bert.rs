//! The BERT-based models (MAG-BERT, MIM) in `reproduce-paper`: what they consume per tier.
//!
//! * **real-text**: the real transcripts' words are tokenised with the chosen checkpoint's
//!   tokenizer ([`crate::data::bert::tokens::attach`]); the checkpoint folder comes from
//!   `--text-encoder DIR`, else `NEURAL_SYNERGY_TEXT_ENCODER`, else the fetch script's cache
//!   ([`crate::data::bert::resolve_encoder_dir`]). Asked for explicitly (`--models magbert,mim`) without
//!   an encoder, the run stops with a one-line error saying how to fetch one; in the default
//!   "all models" plan they are left out with a note instead.
//! * **synthetic** and **full**: no words (the synthetic generators have none; the full tier's
//!   feature files carry BERT states or word vectors, not words), so the BERT models are not
//!   applicable: they are left out of the plan with that reason on stderr and their cells stay
//!   empty ("—").

use crate::data::bert::encoder::DEFAULT_MAX_LEN;
use crate::data::bert::TextEncoder;
use crate::data::Dataset;
use crate::models::misa::TextEncoderKind;
use crate::models::ModelConfig;
use std::path::Path;

/// Applies `reproduce-paper`'s text options to the plan's model configurations: `misa_bert`
/// switches MISA to its BERT text path ([`TextEncoderKind::Bert`]); `frozen` freezes BERT in
/// every BERT-based model (MIM and BERT-MISA then use the frozen-feature cache,
/// [`crate::models::bert::frozen`]). Returns notes for stderr.
pub(crate) fn text_options(
    models: &mut [ModelConfig],
    misa_bert: bool,
    frozen: bool,
) -> Vec<String> {
    let mut notes = Vec::new();
    for m in models.iter_mut() {
        match m {
            ModelConfig::Misa(c) => {
                if misa_bert {
                    c.text_encoder = TextEncoderKind::Bert;
                }
                if frozen && c.text_encoder == TextEncoderKind::Bert {
                    c.bert.finetune = false;
                }
            }
            ModelConfig::Mim(c) if frozen => c.finetune = false,
            ModelConfig::Magbert(c) if frozen => {
                c.finetune = false;
                notes.push(
                    "MAGBERT: BERT frozen but still run at every step (its gate acts inside \
                     BERT, so its outputs cannot be cached)"
                        .into(),
                );
            }
            _ => {}
        }
    }
    notes
}

/// Prepares `ds` for the plan's BERT-based models (see the module docs): tokenises it when it has
/// words and an encoder is found, otherwise removes those models from `models`. `explicit`: the
/// models were named on the command line (a missing encoder is then an error). Returns notes for
/// stderr.
pub(crate) fn prepare(
    ds: &mut Dataset,
    models: &mut Vec<ModelConfig>,
    explicit: bool,
    encoder: Option<&Path>,
) -> Result<Vec<String>, crate::data::bert::TextEncoderError> {
    let names: Vec<&str> = models
        .iter()
        .filter(|m| m.needs_tokens())
        .map(|m| m.kind().name())
        .collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let names = names.join(", ");
    let mut drop = |why: String| {
        models.retain(|m| !m.needs_tokens());
        Ok(vec![format!(
            "{names}: not applicable here ({why}); their cells stay empty"
        )])
    };
    if ds.train.words.len() != ds.train.len() {
        return drop(format!(
            "the {} tier's {} data has no words for a BERT tokenizer; use --tier real-text",
            ds.tier.name(),
            ds.name
        ));
    }
    let dir = match crate::data::bert::resolve_encoder_dir(encoder) {
        Ok(d) => d,
        Err(e) if explicit => return Err(e),
        Err(e) => return drop(e.to_string()),
    };
    let enc = TextEncoder::load_with(&dir, &candle_core::Device::Cpu, DEFAULT_MAX_LEN)?;
    crate::data::bert::tokens::attach(ds, enc.tokenizer(), dir.clone(), enc.checkpoint_key())?;
    Ok(vec![format!(
        "{names}: text encoder {} (checkpoint {})",
        dir.display(),
        enc.checkpoint_key()
    )])
}

#[cfg(test)]
mod tests {
    use super::{prepare, text_options};
    use crate::data::synthetic;
    use crate::models::misa::{MisaConfig, TextEncoderKind};
    use crate::models::{ModelConfig, ModelKind};
    use std::path::Path;

    /// `--misa-text bert --frozen-bert` turns MISA's text path to a frozen BERT and leaves the
    /// other models alone; on data without words (the synthetic tier) MISA's BERT path is not
    /// applicable, so the plan drops it and says why.
    #[test]
    fn misa_bert_is_set_by_the_text_options_and_dropped_without_words() {
        let mut models = vec![
            ModelKind::Misa.default_config(),
            ModelKind::Flstm.default_config(),
        ];
        let notes = text_options(&mut models, true, true);
        assert!(notes.is_empty(), "{notes:?}");
        // MISA's text path is now a frozen BERT, and nothing else of its configuration moved
        let ModelConfig::Misa(c) = &models[0] else {
            panic!("{models:?}")
        };
        assert!(c.text_encoder == TextEncoderKind::Bert && !c.bert.finetune);
        let mut rest = *c;
        rest.text_encoder = MisaConfig::default().text_encoder;
        rest.bert.finetune = MisaConfig::default().bert.finetune;
        assert_eq!(rest, MisaConfig::default());
        let mut ds = synthetic::generate(0);
        let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bert-tiny");
        let notes = prepare(&mut ds, &mut models, false, Some(&tiny)).unwrap();
        assert_eq!(models, vec![ModelKind::Flstm.default_config()]);
        assert!(notes[0].contains("MISA: not applicable"), "{notes:?}");
    }
}
