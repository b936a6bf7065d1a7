//! `synergy data inspect`: each feature file loaded as the loaders do, with its per-split shapes
//! and sums (the format guessed from the path unless `--format` names it).

use super::DataFormat;
use anyhow::Result;
use serde_json::{json, Value};
use std::path::PathBuf;

pub(super) fn data_inspect(paths: &[PathBuf], format: Option<DataFormat>) -> Result<Value> {
    use crate::data::{csd, inspect, mmsa, urfunny};
    let mut files = Vec::new();
    for path in paths {
        let f = format.unwrap_or_else(|| {
            if path.is_dir() && csd::is_set(path) {
                DataFormat::CsdSet
            } else if path.is_dir() {
                DataFormat::Urfunny
            } else if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csd"))
            {
                DataFormat::Csd
            } else {
                DataFormat::Mmsa
            }
        });
        let mut v = match f {
            DataFormat::Mmsa => {
                inspect::dataset(&mmsa::load(path, mmsa::TextFeatures::Text)?, "mmsa")
            }
            DataFormat::Urfunny => inspect::dataset(&urfunny::load(path)?, "urfunny"),
            DataFormat::Csd => inspect::csd(&csd::read(path)?),
            DataFormat::CsdSet => inspect::dataset(&csd::load_set(path)?, "csd-set"),
        };
        v["path"] = json!(path.display().to_string());
        files.push(v);
    }
    Ok(json!({ "files": files }))
}
