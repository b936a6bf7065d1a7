//! Unit tests of the board's internals: the projected cost of a run that has not been made.

use super::measure::run_cost;
use super::Source;
use crate::data::{DatasetName, Task, Tier};
use crate::experiments::{Profile, Selected};
use crate::models::ModelKind;
use crate::train::{RunResult, Variant};

/// A finished run of `model` that trained `epochs` epochs in `wall_s` seconds (on `device`).
fn run(model: ModelKind, epochs: usize, wall_s: f64, device: Option<&str>) -> Selected {
    Selected {
        model,
        variant: Variant::Nll,
        seed: 0,
        result: RunResult::finished_for_tests(model, epochs, wall_s, device),
    }
}

fn source(name: &str, dataset: DatasetName, tier: Tier, selected: Vec<Selected>) -> Source {
    Source {
        name: name.into(),
        tier,
        dataset,
        profile: Profile::Quick,
        test_labels: Vec::new(),
        selected,
        task: Task::Regression,
        pid_codes: None,
    }
}

#[test]
fn run_cost_is_seconds_per_epoch_times_clip_ratio_times_the_quick_cap() {
    // MAGBERT measured on MOSI only: 100 s/epoch and 300 s/epoch → mean 200 s/epoch
    let sources = [source(
        "bert-mosi",
        DatasetName::Mosi,
        Tier::RealText,
        vec![
            run(ModelKind::Magbert, 10, 1000.0, None),
            run(ModelKind::Magbert, 4, 1200.0, None),
        ],
    )];
    let c = run_cost(ModelKind::Magbert, "mosei", Tier::RealText, &sources).unwrap();
    let scale = DatasetName::Mosei.train_clips() as f64 / DatasetName::Mosi.train_clips() as f64;
    assert_eq!((c.runs, c.folder.as_str()), (2, "bert-mosi"));
    assert!((c.epoch_s - 200.0).abs() < 1e-9);
    assert!((c.scale - scale).abs() < 1e-12);
    assert_eq!(c.epoch_cap, Profile::Quick.epochs().0);
    assert!((c.hours_per_run - 200.0 * scale * c.epoch_cap as f64 / 3600.0).abs() < 1e-9);
    // on its own corpus the scale is 1
    let same = run_cost(ModelKind::Magbert, "mosi", Tier::RealText, &sources).unwrap();
    assert_eq!(same.scale, 1.0);
}

#[test]
fn run_cost_prefers_the_same_corpus_and_tier_and_ignores_gpu_and_unfinished_runs() {
    let many_mosi: Vec<Selected> = (0..5)
        .map(|_| run(ModelKind::Tfn, 10, 50.0, None))
        .collect();
    let sources = [
        source("a-mosi", DatasetName::Mosi, Tier::Synthetic, many_mosi),
        source(
            "b-mosei-synthetic",
            DatasetName::Mosei,
            Tier::Synthetic,
            vec![run(ModelKind::Tfn, 10, 3000.0, None)],
        ),
        source(
            "c-mosei-real",
            DatasetName::Mosei,
            Tier::RealText,
            vec![
                run(ModelKind::Tfn, 10, 2000.0, None),
                // a GPU run and a run that trained no epoch do not count
                run(ModelKind::Tfn, 10, 1.0, Some("cuda:0")),
                run(ModelKind::Tfn, 0, 5.0, None),
            ],
        ),
    ];
    let real = run_cost(ModelKind::Tfn, "mosei", Tier::RealText, &sources).unwrap();
    assert_eq!((real.folder.as_str(), real.runs), ("c-mosei-real", 1));
    assert_eq!((real.epoch_s, real.scale), (200.0, 1.0));
    // no folder of the tier: the same corpus on another tier before another corpus with more runs
    let synth = run_cost(ModelKind::Tfn, "mosei", Tier::Synthetic, &sources[..2]).unwrap();
    assert_eq!(synth.folder, "b-mosei-synthetic");
    let other = run_cost(ModelKind::Tfn, "urfunny", Tier::Synthetic, &sources).unwrap();
    assert_eq!((other.folder.as_str(), other.runs), ("a-mosi", 5));
    // another corpus: its folder of the same tier before one of another tier with as many runs
    let real_mosi: Vec<Selected> = (0..5)
        .map(|_| run(ModelKind::Tfn, 10, 70.0, None))
        .collect();
    let both = [
        source("a-mosi-real", DatasetName::Mosi, Tier::RealText, real_mosi),
        sources[0].clone(),
    ];
    let synth = run_cost(ModelKind::Tfn, "urfunny", Tier::Synthetic, &both).unwrap();
    assert_eq!((synth.folder.as_str(), synth.epoch_s), ("a-mosi", 5.0));
    // a model no folder ran, and a corpus name that is not one
    assert!(run_cost(ModelKind::Mfn, "mosei", Tier::RealText, &sources).is_none());
    assert!(run_cost(ModelKind::Tfn, "iemocap", Tier::RealText, &sources).is_none());
}
