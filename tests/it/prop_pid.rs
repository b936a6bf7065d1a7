//! The BROJA partial information decomposition: the classic gates, the decomposition's
//! identities and symmetries on random data, agreement with an independent Python solver
//! (fixtures/pid), k-means discretisation, the permutation null, and the `synergy pid` CLI.

use crate::common::*;
use ndarray::{arr1, Array1, Array2};
use ndarray_npy::write_npy;
use neural_synergy::estimators::pid::{permuted, QCell};
use neural_synergy::estimators::{
    pid_discrete, pid_discrete_with, synergy_null, KMeans, KMeansParams, Pid, PidError, PidOptions,
};
use proptest::prelude::*;
use rand::Rng;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const TOL: f64 = 1e-9;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

fn assert_pid(p: &Pid, r: f64, u1: f64, u2: f64, s: f64, tol: f64) {
    let want = [r, u1, u2, s];
    let got = [p.redundancy, p.unique_x1, p.unique_x2, p.synergy];
    for (g, w) in got.iter().zip(want) {
        assert!(
            close(*g, w, tol),
            "got {p:?}, want R {r} U1 {u1} U2 {u2} S {s}"
        );
    }
}

/// Every combination of the given input values, each repeated `reps` times.
fn table(rows: &[(usize, usize, usize)], reps: usize) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let mut v = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        for &(a, b, c) in rows {
            v.0.push(a);
            v.1.push(b);
            v.2.push(c);
        }
    }
    v
}

fn gate(f: impl Fn(usize, usize) -> usize) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let rows: Vec<_> = (0..2)
        .flat_map(|a| (0..2).map(move |b| (a, b)))
        .map(|(a, b)| (a, b, f(a, b)))
        .collect();
    table(&rows, 3)
}

#[test]
fn xor_is_one_bit_of_pure_synergy() {
    let (x1, x2, y) = gate(|a, b| a ^ b);
    let p = pid_discrete(&x1, &x2, &y).unwrap();
    assert_pid(&p, 0.0, 0.0, 0.0, 1.0, TOL);
    assert!(close(p.mutual_information, 1.0, 1e-12));
}

#[test]
fn and_has_redundancy_i_y_x1_and_half_a_bit_of_synergy() {
    let (x1, x2, y) = gate(|a, b| a & b);
    let p = pid_discrete(&x1, &x2, &y).unwrap();
    // I(Y; X1) = h(1/4) − 1/2 = 1.5 − 0.75 log2 3
    let r = 1.5 - 0.75 * 3f64.log2();
    assert!(close(r, 0.311_278_124_459_132_9, 1e-15));
    assert_pid(&p, r, 0.0, 0.0, 0.5, TOL);
    assert!(close(
        p.mutual_information,
        0.75f64.mul_add(-(0.75f64.log2()), 0.5),
        1e-12
    ));
}

#[test]
fn copy_of_two_independent_bits_is_one_unique_bit_each() {
    let (x1, x2, y) = gate(|a, b| 2 * a + b);
    let p = pid_discrete(&x1, &x2, &y).unwrap();
    assert_pid(&p, 0.0, 1.0, 1.0, 0.0, TOL);
    assert!(close(p.mutual_information, 2.0, 1e-12));
}

#[test]
fn redundant_copy_is_one_bit_of_redundancy() {
    let (x1, x2, y) = table(&[(0, 0, 0), (1, 1, 1)], 5);
    let p = pid_discrete(&x1, &x2, &y).unwrap();
    assert_pid(&p, 1.0, 0.0, 0.0, 0.0, TOL);
}

#[test]
fn a_constant_input_contributes_nothing_and_a_constant_target_gives_zeros() {
    let (x1, _, y) = gate(|a, b| a ^ b);
    let x2 = vec![7; x1.len()];
    let p = pid_discrete(&x1, &x2, &y).unwrap();
    // I(Y; X1) = 0 for XOR with X2 hidden: nothing at all
    assert_pid(&p, 0.0, 0.0, 0.0, 0.0, 1e-12);
    let (x1, x2, _) = gate(|a, b| a & b);
    let y = x1.clone();
    let c = vec![3; x1.len()];
    let p = pid_discrete(&x1, &c, &y).unwrap();
    assert_pid(&p, 0.0, 1.0, 0.0, 0.0, 1e-12);
    let p = pid_discrete(&x1, &x2, &c).unwrap();
    assert_pid(&p, 0.0, 0.0, 0.0, 0.0, 0.0);
    assert_eq!(p.mutual_information, 0.0);
}

#[test]
fn labels_are_only_names_large_and_sparse_codes_are_fine() {
    let (x1, x2, y) = gate(|a, b| a & b);
    let big = |v: &[usize], m: usize| v.iter().map(|&a| a * m + 12_345).collect::<Vec<_>>();
    let a = pid_discrete(&x1, &x2, &y).unwrap();
    let b = pid_discrete(&big(&x1, 1 << 40), &big(&x2, 977), &big(&y, usize::MAX / 4)).unwrap();
    assert_pid(&b, a.redundancy, a.unique_x1, a.unique_x2, a.synergy, 1e-12);
}

#[test]
fn empty_input_and_length_mismatch_are_typed_errors() {
    let e = pid_discrete(&[], &[], &[]).unwrap_err();
    assert_eq!(e, PidError::Empty { what: "x1" });
    let e = pid_discrete(&[1, 2], &[1, 2, 3], &[0, 0]).unwrap_err();
    assert!(
        matches!(e, PidError::LengthMismatch { nx: 2, ny: 3, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("length mismatch"));
    let e = pid_discrete(&[1, 2], &[1, 2], &[0]).unwrap_err();
    assert!(matches!(e, PidError::LengthMismatch { y: "y", .. }), "{e}");
    let e = synergy_null(&[1, 2], &[1, 2], &[0, 1], 0, 1).unwrap_err();
    assert!(matches!(
        e,
        PidError::InvalidParameter { name: "draws", .. }
    ));
}

/// Plug-in `I(Y; X1, X2)` (bits) of a distribution given as cells.
fn mi_of_cells(cells: &[QCell]) -> f64 {
    let mut pxy: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    let mut py: BTreeMap<usize, f64> = BTreeMap::new();
    let mut pxx: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for c in cells {
        *pxx.entry((c.x1, c.x2)).or_default() += c.q;
        *py.entry(c.y).or_default() += c.q;
        *pxy.entry((c.x1, c.y)).or_default() += c.q;
    }
    cells
        .iter()
        .filter(|c| c.q > 0.0)
        .map(|c| c.q * (c.q / (pxx[&(c.x1, c.x2)] * py[&c.y])).log2())
        .sum()
}

fn random_codes(n: usize, k: [usize; 3], seed: u64) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let mut r = rng(seed);
    let x1: Vec<usize> = (0..n).map(|_| r.random_range(0..k[0])).collect();
    let x2: Vec<usize> = (0..n).map(|_| r.random_range(0..k[1])).collect();
    let y = (0..n)
        .map(|i| {
            if r.random::<f64>() < 0.3 {
                r.random_range(0..k[2])
            } else {
                (x1[i] + 2 * x2[i] + (x1[i] * x2[i]) % 3) % k[2]
            }
        })
        .collect();
    (x1, x2, y)
}

#[test]
fn the_optimum_lies_in_the_polytope_and_attains_the_reported_information() {
    let (x1, x2, y) = random_codes(3000, [6, 5, 7], 11);
    let sol = pid_discrete_with(&x1, &x2, &y, &PidOptions::default()).unwrap();
    assert!(sol.newton_steps > 0 && sol.gap_bits <= 1e-10, "{sol:?}");
    let n = x1.len() as f64;
    let mut p1: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    let mut p2: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for i in 0..x1.len() {
        *p1.entry((x1[i], y[i])).or_default() += 1.0 / n;
        *p2.entry((x2[i], y[i])).or_default() += 1.0 / n;
    }
    let mut q1: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    let mut q2: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for c in &sol.q_star {
        assert!(c.q > 0.0);
        *q1.entry((c.x1, c.y)).or_default() += c.q;
        *q2.entry((c.x2, c.y)).or_default() += c.q;
    }
    assert_eq!(p1.len(), q1.len());
    for (k, v) in &p1 {
        assert!(close(q1[k], *v, 1e-12), "q(x1, y) {k:?}");
    }
    for (k, v) in &p2 {
        assert!(close(q2[k], *v, 1e-12), "q(x2, y) {k:?}");
    }
    assert!(close(mi_of_cells(&sol.q_star), sol.mi_q, 1e-10));
    // and it is the minimum: I_q ≤ I_p, and no better than the dual bound allows
    assert!(sol.mi_q <= sol.pid.mutual_information + 1e-12);
    assert!(close(
        sol.mi_q,
        sol.pid.mutual_information - sol.pid.synergy,
        1e-12
    ));
}

#[derive(Debug, serde::Deserialize)]
struct Case {
    name: String,
    x1: Vec<usize>,
    x2: Vec<usize>,
    y: Vec<usize>,
    redundancy: f64,
    unique_x1: f64,
    unique_x2: f64,
    synergy: f64,
    mutual_information: f64,
}

#[test]
fn matches_an_independent_python_broja_solver_on_the_fixture() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/pid/broja_expected.json"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases: Vec<Case> = serde_json::from_value(v["cases"].clone()).unwrap();
    assert!(cases.len() >= 14, "gates and random cases");
    for c in &cases {
        let p = pid_discrete(&c.x1, &c.x2, &c.y).unwrap();
        let (want, got) = (
            [
                c.redundancy,
                c.unique_x1,
                c.unique_x2,
                c.synergy,
                c.mutual_information,
            ],
            [
                p.redundancy,
                p.unique_x1,
                p.unique_x2,
                p.synergy,
                p.mutual_information,
            ],
        );
        for (g, w) in got.iter().zip(want) {
            assert!(close(*g, w, 1e-5), "{}: got {p:?}, fixture {c:?}", c.name);
        }
    }
}

fn codes_strategy() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, Vec<usize>)> {
    (1usize..5, 1usize..5, 1usize..5, 1usize..150, any::<u64>())
        .prop_map(|(a, b, c, n, seed)| random_codes(n, [a, b, c], seed))
}

fn relabel(v: &[usize], perm_seed: u64) -> Vec<usize> {
    // a random injective renaming of the used labels
    let mut r = rng(perm_seed);
    let mut names: BTreeMap<usize, usize> = BTreeMap::new();
    for &a in v {
        let len = names.len();
        names
            .entry(a)
            .or_insert_with(|| 1000 * r.random_range(1..1000usize) + len);
    }
    v.iter().map(|a| names[a]).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn decomposition_adds_up_to_the_mutual_informations_and_is_nonnegative((x1, x2, y) in codes_strategy()) {
        let sol = pid_discrete_with(&x1, &x2, &y, &PidOptions::default()).unwrap();
        let p = sol.pid;
        let tol = 1e-12;
        prop_assert!(close(p.redundancy + p.unique_x1 + p.unique_x2 + p.synergy, p.mutual_information, tol), "{p:?}");
        prop_assert!(close(p.redundancy + p.unique_x1, sol.mi_x1, tol), "{p:?}");
        prop_assert!(close(p.redundancy + p.unique_x2, sol.mi_x2, tol), "{p:?}");
        for v in [p.redundancy, p.unique_x1, p.unique_x2, p.synergy] {
            prop_assert!(v >= -tol, "{p:?}");
        }
        prop_assert!(sol.gap_bits <= 1e-10);
        // the clamp only removes round-off
        prop_assert!(close(sol.mi_q, p.mutual_information - p.synergy, 1e-9), "{sol:?}");
    }

    #[test]
    fn relabelling_any_alphabet_leaves_the_pid_unchanged((x1, x2, y) in codes_strategy(), s1 in any::<u64>(), s2 in any::<u64>(), s3 in any::<u64>()) {
        let a = pid_discrete(&x1, &x2, &y).unwrap();
        let b = pid_discrete(&relabel(&x1, s1), &relabel(&x2, s2), &relabel(&y, s3)).unwrap();
        for (u, v) in [(a.redundancy, b.redundancy), (a.unique_x1, b.unique_x1), (a.unique_x2, b.unique_x2), (a.synergy, b.synergy), (a.mutual_information, b.mutual_information)] {
            prop_assert!(close(u, v, 1e-8), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn swapping_x1_and_x2_swaps_the_unique_parts_and_keeps_redundancy_and_synergy((x1, x2, y) in codes_strategy()) {
        let a = pid_discrete(&x1, &x2, &y).unwrap();
        let b = pid_discrete(&x2, &x1, &y).unwrap();
        for (u, v) in [(a.redundancy, b.redundancy), (a.unique_x1, b.unique_x2), (a.unique_x2, b.unique_x1), (a.synergy, b.synergy)] {
            prop_assert!(close(u, v, 1e-8), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn a_target_determined_by_x1_alone_has_no_synergy((x1, x2, _) in codes_strategy(), m in 1usize..4) {
        let y: Vec<usize> = x1.iter().map(|a| a % m).collect();
        let p = pid_discrete(&x1, &x2, &y).unwrap();
        prop_assert!(p.synergy.abs() <= 1e-9 && p.unique_x2.abs() <= 1e-9, "{p:?}");
    }
}

/// `k` well-separated Gaussian blobs (unit spread, centres `sep` apart per coordinate) in `d`
/// dimensions: the rows and their blob.
fn blobs(n: usize, k: usize, d: usize, sep: f64, seed: u64) -> (Array2<f64>, Vec<usize>) {
    let mut x = randn(n, d, seed);
    let centres = randn(k, d, seed ^ 0xb10b) * sep;
    let truth: Vec<usize> = (0..n).map(|i| i % k).collect();
    for (i, &t) in truth.iter().enumerate() {
        let mut r = x.row_mut(i);
        r += &centres.row(t);
    }
    (x, truth)
}

/// Codes equal to the truth up to a bijection of names.
fn same_partition(a: &[usize], b: &[usize]) -> bool {
    let mut f: BTreeMap<usize, usize> = BTreeMap::new();
    let mut g: BTreeMap<usize, usize> = BTreeMap::new();
    a.iter()
        .zip(b)
        .all(|(&u, &v)| *f.entry(u).or_insert(v) == v && *g.entry(v).or_insert(u) == u)
}

#[test]
fn kmeans_recovers_well_separated_blobs_up_to_relabelling() {
    for (d, seed) in [(2, 1), (3, 2), (5, 3)] {
        let (x, truth) = blobs(400, 4, d, 20.0, seed);
        let km = KMeans::fit(&x.view(), 4, 7).unwrap();
        assert!(km.projection.is_none());
        let codes = km.predict(&x.view()).unwrap();
        assert!(same_partition(&codes, &truth), "d = {d}");
        // a test split drawn from the same blobs lands in the same clusters
        let (xt, tt) = blobs(200, 4, d, 20.0, seed);
        let xt = xt + randn(200, d, seed + 100) * 0.1;
        let ct = km.predict(&xt.view()).unwrap();
        let map: BTreeMap<usize, usize> =
            truth.iter().copied().zip(codes.iter().copied()).collect();
        assert!(tt.iter().zip(&ct).all(|(t, c)| map[t] == *c));
    }
}

#[test]
fn kmeans_projects_wide_features_to_ten_principal_components_and_still_recovers_blobs() {
    let (x, truth) = blobs(300, 3, 40, 6.0, 5);
    let km = KMeans::fit(&x.view(), 3, 1).unwrap();
    let v = km.projection.as_ref().expect("40 > 10 columns: PCA");
    assert_eq!(v.dim(), (40, 10));
    // orthonormal axes
    let g = v.t().dot(v);
    assert!((g - Array2::<f64>::eye(10)).iter().all(|e| e.abs() < 1e-10));
    assert_eq!(km.centroids.dim(), (3, 10));
    assert!(same_partition(&km.predict(&x.view()).unwrap(), &truth));
}

#[test]
fn kmeans_is_deterministic_for_a_seed_and_refuses_bad_input() {
    let (x, _) = blobs(150, 3, 4, 1.0, 9);
    let p = KMeansParams {
        seed: 42,
        ..KMeansParams::new(5)
    };
    let a = KMeans::fit_with(&x.view(), &p).unwrap();
    let b = KMeans::fit_with(&x.view(), &p).unwrap();
    assert_eq!(a, b);
    assert!(KMeans::fit(&x.view(), 0, 1).is_err());
    assert!(matches!(
        KMeans::fit(&x.view(), 151, 1),
        Err(PidError::InvalidParameter { name: "k", .. })
    ));
    let mut bad = x.clone();
    bad[[3, 1]] = f64::NAN;
    let e = KMeans::fit(&bad.view(), 3, 1).unwrap_err();
    assert!(e.to_string().contains("non-finite"), "{e}");
    let e = a.predict(&randn(5, 3, 1).view()).unwrap_err();
    assert!(e.to_string().contains("dimension mismatch"), "{e}");
    let e = KMeans::fit(&Array2::<f64>::zeros((0, 3)).view(), 1, 1).unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
}

#[test]
fn null_draws_are_the_synergies_of_marginal_preserving_permutations() {
    let (x1, x2, y) = random_codes(300, [3, 3, 4], 21);
    let s = synergy_null(&x1, &x2, &y, 40, 9).unwrap();
    assert_eq!(s.synergy.len(), 40);
    assert_eq!(s.observed, pid_discrete(&x1, &x2, &y).unwrap());
    let mut ys = y.clone();
    ys.sort_unstable();
    for (d, &sd) in s.synergy.iter().enumerate() {
        let yp = permuted(&y, 9, d as u64);
        let mut sorted = yp.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, ys, "a permutation keeps the marginal of Y");
        assert_eq!(pid_discrete(&x1, &x2, &yp).unwrap().synergy, sd);
    }
    // the summary statistics are the stated functions of the draws
    let mean = s.synergy.iter().sum::<f64>() / 40.0;
    assert_eq!(s.mean, mean);
    let mut sorted = s.synergy.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(s.p95, sorted[37]); // ⌈0.95·40⌉ = 38th smallest
    let above = s
        .synergy
        .iter()
        .filter(|&&v| v >= s.observed.synergy)
        .count();
    assert_eq!(s.p_value, (1 + above) as f64 / 41.0);
}

#[test]
fn the_null_does_not_depend_on_threads_labels_or_input_order() {
    let (x1, x2, y) = random_codes(200, [4, 3, 3], 5);
    let a = synergy_null(&x1, &x2, &y, 24, 77).unwrap();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| synergy_null(&x1, &x2, &y, 24, 77).unwrap());
    assert_eq!(a, one);
    let b = synergy_null(&x2, &x1, &relabel(&y, 3), 24, 77).unwrap();
    for (u, v) in a.synergy.iter().zip(&b.synergy) {
        assert!(close(*u, *v, 1e-8));
    }
    let c = synergy_null(&x1, &x2, &y, 24, 78).unwrap();
    assert_ne!(a.synergy, c.synergy, "another seed, other permutations");
}

#[test]
fn a_constant_target_has_a_null_of_zeros_and_xor_synergy_exceeds_every_draw() {
    let (x1, x2, _) = random_codes(100, [3, 3, 2], 1);
    let s = synergy_null(&x1, &x2, &vec![4; 100], 20, 1).unwrap();
    assert!(s.synergy.iter().all(|&v| v == 0.0));
    assert_eq!((s.mean, s.p95, s.p_value), (0.0, 0.0, 1.0));
    // XOR on 2000 balanced samples: 1 bit observed; a permuted Y carries O(1/n) bits about
    // (X1, X2)
    let rows = [(0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0)];
    let (x1, x2, y) = table(&rows, 500);
    let s = synergy_null(&x1, &x2, &y, 100, 3).unwrap();
    assert!(close(s.observed.synergy, 1.0, TOL));
    assert!(
        s.synergy.iter().all(|&v| (0.0..0.05).contains(&v)),
        "{:?}",
        s.synergy
    );
    assert_eq!(s.p_value, 1.0 / 101.0);
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn cli_json(args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let (code, out, err) = synergy(&a);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out.lines().count(), 1, "one JSON object on one line: {out}");
    serde_json::from_str(&out).unwrap()
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(|s| s.as_str()).collect()
}

/// The CLI's values equal the library's: bit for bit when the labels keep their order (the
/// solver then sees the same problem), within the solver's tolerance otherwise.
fn assert_same_pid_within(v: &Value, p: &Pid, tol: f64) {
    let got = [
        v["redundancy"].as_f64().unwrap(),
        v["unique_x1"].as_f64().unwrap(),
        v["unique_x2"].as_f64().unwrap(),
        v["synergy"].as_f64().unwrap(),
        v["mutual_information"].as_f64().unwrap(),
    ];
    let want = [
        p.redundancy,
        p.unique_x1,
        p.unique_x2,
        p.synergy,
        p.mutual_information,
    ];
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol, "CLI {v} vs library {p:?}");
    }
}

fn assert_same_pid(v: &Value, p: &Pid) {
    assert_same_pid_within(v, p, 0.0);
}

#[test]
fn pid_cli_prints_the_library_values_for_every_integer_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let f = |name: &str| -> PathBuf { dir.path().join(name) };
    let (x1, x2, y) = random_codes(500, [4, 3, 5], 31);
    let p = pid_discrete(&x1, &x2, &y).unwrap();
    write_npy(
        f("x1.npy"),
        &Array1::from_iter(x1.iter().map(|&v| v as i64 - 2)),
    )
    .unwrap();
    write_npy(f("x2.npy"), &Array1::from_iter(x2.iter().map(|&v| v as u8))).unwrap();
    write_npy(
        f("y.npy"),
        &Array1::from_iter(y.iter().map(|&v| v as i32 * 10)),
    )
    .unwrap();
    let v = cli_json(&[
        "pid",
        "--x1",
        s(&f("x1.npy")),
        "--x2",
        s(&f("x2.npy")),
        "--y",
        s(&f("y.npy")),
    ]);
    assert_eq!(
        keys(&v),
        [
            "estimator",
            "mutual_information",
            "n",
            "redundancy",
            "synergy",
            "unique_x1",
            "unique_x2",
            "units"
        ]
    );
    assert_eq!(
        (
            v["estimator"].as_str(),
            v["units"].as_str(),
            v["n"].as_u64()
        ),
        (Some("pid"), Some("bits"), Some(500))
    );
    assert_same_pid(&v, &p);
    // float arrays holding integers (f64, f32, n × 1), u16, i16, u64 and bool give the same
    write_npy(
        f("x1f.npy"),
        &Array1::from_iter(x1.iter().map(|&v| v as f64))
            .into_shape_with_order((500, 1))
            .unwrap(),
    )
    .unwrap();
    write_npy(
        f("x2f.npy"),
        &Array1::from_iter(x2.iter().map(|&v| v as f32 - 1.0)),
    )
    .unwrap();
    write_npy(
        f("y16.npy"),
        &Array1::from_iter(y.iter().map(|&v| v as u16)),
    )
    .unwrap();
    let v = cli_json(&[
        "pid",
        "--x1",
        s(&f("x1f.npy")),
        "--x2",
        s(&f("x2f.npy")),
        "--y",
        s(&f("y16.npy")),
    ]);
    assert_same_pid(&v, &p);
    write_npy(
        f("x1i16.npy"),
        &Array1::from_iter(x1.iter().map(|&v| -(v as i16))),
    )
    .unwrap();
    write_npy(
        f("x2u64.npy"),
        &Array1::from_iter(x2.iter().map(|&v| v as u64 + (1 << 60))),
    )
    .unwrap();
    let v = cli_json(&[
        "pid",
        "--x1",
        s(&f("x1i16.npy")),
        "--x2",
        s(&f("x2u64.npy")),
        "--y",
        s(&f("y.npy")),
    ]);
    // negated codes reverse the order of x1's labels: the same decomposition up to rounding
    assert_same_pid_within(&v, &p, 1e-9);
    let b: Vec<bool> = y.iter().map(|&v| v % 2 == 1).collect();
    write_npy(f("yb.npy"), &Array1::from(b.clone())).unwrap();
    let yb: Vec<usize> = b.iter().map(|&v| v as usize).collect();
    let v = cli_json(&[
        "pid",
        "--x1",
        s(&f("x1.npy")),
        "--x2",
        s(&f("x2.npy")),
        "--y",
        s(&f("yb.npy")),
    ]);
    assert_same_pid(&v, &pid_discrete(&x1, &x2, &yb).unwrap());
    // human output: one `key: value` line per field
    let (code, out, _) = synergy(&[
        "pid",
        "--x1",
        s(&f("x1.npy")),
        "--x2",
        s(&f("x2.npy")),
        "--y",
        s(&f("y.npy")),
    ]);
    assert_eq!(code, 0);
    assert!(
        out.lines().any(|l| l == format!("synergy: {}", p.synergy)),
        "{out}"
    );
}

#[test]
fn pid_cli_null_and_clusters_equal_the_library_with_the_same_seed() {
    let dir = tempfile::tempdir().unwrap();
    let f = |name: &str| -> PathBuf { dir.path().join(name) };
    let (x1, x2, y) = random_codes(300, [3, 3, 3], 2);
    write_npy(
        f("x1.npy"),
        &Array1::from_iter(x1.iter().map(|&v| v as i64)),
    )
    .unwrap();
    write_npy(
        f("x2.npy"),
        &Array1::from_iter(x2.iter().map(|&v| v as i64)),
    )
    .unwrap();
    write_npy(f("y.npy"), &Array1::from_iter(y.iter().map(|&v| v as i64))).unwrap();
    let v = cli_json(&[
        "pid",
        "--x1",
        s(&f("x1.npy")),
        "--x2",
        s(&f("x2.npy")),
        "--y",
        s(&f("y.npy")),
        "--null",
        "30",
        "--seed",
        "5",
    ]);
    let nul = synergy_null(&x1, &x2, &y, 30, 5).unwrap();
    assert_same_pid(&v, &nul.observed);
    assert_eq!(v["null_draws"].as_u64(), Some(30));
    assert_eq!(v["null_mean"].as_f64().unwrap(), nul.mean);
    assert_eq!(v["null_p95"].as_f64().unwrap(), nul.p95);
    assert_eq!(v["p_value"].as_f64().unwrap(), nul.p_value);
    // continuous features: k-means codes of each input on the given rows
    let (a, _) = blobs(240, 3, 6, 8.0, 1);
    let (b, _) = blobs(240, 4, 2, 8.0, 2);
    write_npy(f("a.npy"), &a).unwrap();
    write_npy(f("b.npy"), &b.mapv(|v| v as f32)).unwrap();
    let yc: Vec<usize> = (0..240).map(|i| (i % 3 + i % 4) % 3).collect();
    write_npy(
        f("yc.npy"),
        &Array1::from_iter(yc.iter().map(|&v| v as i64)),
    )
    .unwrap();
    let v = cli_json(&[
        "pid",
        "--x1",
        s(&f("a.npy")),
        "--x2",
        s(&f("b.npy")),
        "--y",
        s(&f("yc.npy")),
        "--clusters",
        "4",
        "--seed",
        "2",
    ]);
    let ca = KMeans::fit(&a.view(), 4, 2)
        .unwrap()
        .predict(&a.view())
        .unwrap();
    let bf = b.mapv(|v| v as f32 as f64);
    let cb = KMeans::fit(&bf.view(), 4, 2)
        .unwrap()
        .predict(&bf.view())
        .unwrap();
    assert_same_pid(&v, &pid_discrete(&ca, &cb, &yc).unwrap());
    assert_eq!(v["clusters"].as_u64(), Some(4));
}

#[test]
fn pid_cli_bad_input_exits_non_zero_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = |name: &str| -> PathBuf { dir.path().join(name) };
    write_npy(f("c.npy"), &arr1(&[0i64, 1, 1, 0])).unwrap();
    write_npy(f("c3.npy"), &arr1(&[0i64, 1, 1])).unwrap();
    write_npy(f("nan.npy"), &arr1(&[0.0, f64::NAN, 1.0, 0.0])).unwrap();
    write_npy(f("half.npy"), &arr1(&[0.0, 0.5, 1.0, 0.0])).unwrap();
    write_npy(f("empty.npy"), &Array1::<i64>::zeros(0)).unwrap();
    write_npy(f("mat.npy"), &Array2::<f64>::zeros((4, 2))).unwrap();
    write_npy(f("matnan.npy"), &Array2::<f64>::from_elem((4, 2), f64::NAN)).unwrap();
    let (c, c3) = (f("c.npy"), f("c3.npy"));
    let (nan, half, empty) = (f("nan.npy"), f("half.npy"), f("empty.npy"));
    let (mat, matnan) = (f("mat.npy"), f("matnan.npy"));
    let (c, c3, nan, half, empty, mat, matnan) = (
        s(&c),
        s(&c3),
        s(&nan),
        s(&half),
        s(&empty),
        s(&mat),
        s(&matnan),
    );
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--x1", c, "--x2", c3, "--y", c], "length mismatch"),
        (vec!["--x1", c, "--x2", c, "--y", nan], "non-finite"),
        (vec!["--x1", half, "--x2", c, "--y", c], "non-integral"),
        (vec!["--x1", c, "--x2", empty, "--y", c], "empty"),
        (vec!["--x1", mat, "--x2", c, "--y", c], "--clusters"),
        (
            vec!["--x1", matnan, "--x2", c, "--y", c, "--clusters", "2"],
            "non-finite",
        ),
        (
            vec!["--x1", mat, "--x2", c, "--y", c, "--clusters", "9"],
            "needs 1 <= k <= n",
        ),
        (
            vec!["--x1", c, "--x2", c, "--y", c, "--null", "0"],
            "--null",
        ),
        (
            vec!["--x1", "/nonexistent/x.npy", "--x2", c, "--y", c],
            "/nonexistent/x.npy",
        ),
    ];
    for (args, needle) in cases {
        let mut a = vec!["pid"];
        a.extend(args.iter());
        let (code, out, err) = synergy(&a);
        assert_ne!(code, 0, "{a:?} should fail");
        assert!(out.is_empty(), "nothing on stdout: {out}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.contains(needle), "{a:?}: '{err}' lacks '{needle}'");
    }
}
