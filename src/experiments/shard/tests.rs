//! The partition's facts of `--shard K/N` and the results-file names (unit tests; the sharded
//! run merged by `reproduce-paper report` is in `tests/it/shard.rs`).
use super::{is_results_file, Shard};
use crate::data::Tier;
use crate::experiments::{run_key, Profile};
use crate::models::ModelKind;
use crate::synergy::SynergyConfig;
use crate::train::{RunConfig, TaskLoss, Variant};
use proptest::prelude::*;

/// A plan-like list of runs: models × variants × seeds × grid points.
fn runs(models: &[ModelKind], seeds: &[u64], grid: &[(usize, f64)]) -> Vec<RunConfig> {
    let mut out = Vec::new();
    for m in models {
        for &variant in &Variant::ALL {
            for &seed in seeds {
                for &(batch_size, lr) in grid {
                    out.push(RunConfig {
                        model: m.default_config(),
                        variant,
                        batch_size,
                        lr,
                        seed,
                        max_epochs: 3,
                        patience: 2,
                        loss: TaskLoss::L1,
                        synergy: SynergyConfig::default(),
                    });
                }
            }
        }
    }
    out
}

fn keys(c: &[RunConfig]) -> Vec<String> {
    c.iter()
        .map(|c| run_key(Tier::Synthetic, Profile::Paper, "d", c))
        .collect()
}

fn plan_strategy() -> impl Strategy<Value = (Vec<RunConfig>, usize)> {
    (
        proptest::sample::subsequence(ModelKind::ALL.to_vec(), 1..=ModelKind::ALL.len()),
        proptest::collection::btree_set(0u64..50, 1..4),
        proptest::sample::subsequence(vec![(32usize, 1e-3), (64, 1e-3), (32, 5e-4)], 1..=3),
        1usize..9,
    )
        .prop_map(|(m, s, g, n)| (runs(&m, &s.into_iter().collect::<Vec<_>>(), &g), n))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn shards_partition_the_runs_every_run_in_exactly_one((configs, n) in plan_strategy()) {
        let k = keys(&configs);
        let mut count = vec![0usize; configs.len()];
        for i in 0..n {
            let mine = Shard::new(i, n).unwrap().select(&configs, &k);
            prop_assert!(mine.windows(2).all(|w| w[0] < w[1]), "plan order within a shard");
            for j in mine {
                count[j] += 1;
            }
        }
        prop_assert!(count.iter().all(|&c| c == 1), "{count:?}");
    }

    #[test]
    fn shards_hold_equal_shares_of_every_model_within_one((configs, n) in plan_strategy()) {
        let k = keys(&configs);
        for m in ModelKind::ALL {
            let per: Vec<usize> = (0..n)
                .map(|i| {
                    Shard::new(i, n)
                        .unwrap()
                        .select(&configs, &k)
                        .into_iter()
                        .filter(|&j| configs[j].model.kind() == *m)
                        .count()
                })
                .collect();
            let (lo, hi) = (per.iter().min().unwrap(), per.iter().max().unwrap());
            prop_assert!(hi - lo <= 1, "{m:?}: {per:?}");
        }
    }

    #[test]
    fn shard_membership_is_invariant_under_reordering_the_plan(
        (configs, n) in plan_strategy(),
        perm_seed in any::<u64>(),
    ) {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let k = keys(&configs);
        let mut order: Vec<usize> = (0..configs.len()).collect();
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(perm_seed));
        let shuffled: Vec<RunConfig> = order.iter().map(|&i| configs[i].clone()).collect();
        let sk = keys(&shuffled);
        for i in 0..n {
            let s = Shard::new(i, n).unwrap();
            let mut a: Vec<&String> = s.select(&configs, &k).into_iter().map(|j| &k[j]).collect();
            let mut b: Vec<&String> = s.select(&shuffled, &sk).into_iter().map(|j| &sk[j]).collect();
            a.sort();
            b.sort();
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn shard_display_parse_round_trip(n in 1usize..1000, k in 0usize..1000) {
        let k = k % n;
        let s = Shard::new(k, n).unwrap();
        prop_assert_eq!(s.to_string().parse::<Shard>().unwrap(), s);
        prop_assert!(is_results_file(&s.file_name()));
    }

    #[test]
    fn shard_parse_rejects_k_not_below_n(n in 0usize..100, extra in 0usize..100) {
        let text = format!("{}/{}", n + extra, n);
        prop_assert!(text.parse::<Shard>().is_err());
    }
}

#[test]
fn shard_syntax_errors_and_results_file_names() {
    for bad in ["", "3", "1/", "/3", "a/3", "1/b", "-1/3", "1/3/4", "1.0/3"] {
        assert!(bad.parse::<Shard>().is_err(), "{bad:?} parsed");
    }
    assert_eq!(
        " 2 / 5 ".parse::<Shard>().unwrap(),
        Shard::new(2, 5).unwrap()
    );
    assert!(is_results_file("results.jsonl"));
    for not in [
        "results.shard-3-of-3.jsonl",
        "results.shard-0-of-0.jsonl",
        "results.shard-x-of-3.jsonl",
        "results.jsonl.tmp",
        "run.json",
    ] {
        assert!(!is_results_file(not), "{not}");
    }
}
