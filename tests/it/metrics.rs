//! MMSA-convention metrics on hand-made cases (label 0, exact ties, constant predictions).
use approx::assert_abs_diff_eq;
use ndarray::arr1;
use neural_synergy::metrics::{binary_accuracy, pearson, regression_metrics};
use neural_synergy::EstimatorError;

#[test]
fn acc7_rounds_half_to_even_after_clipping() {
    // ties at ±0.5, ±1.5, ±2.5 go to the even neighbour; values beyond ±3 are clipped first
    let pred = arr1(&[0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.7, -4.0]);
    let label = arr1(&[0.0, 2.0, 2.0, 0.0, -2.0, -2.0, 3.0, -3.0]);
    let m = regression_metrics(&pred.view(), &label.view()).unwrap();
    assert_abs_diff_eq!(m.acc7, 1.0);
    // 0.5 rounds to 0, not 1; 2.5 rounds to 2, not 3
    let m = regression_metrics(&arr1(&[0.5, 2.5]).view(), &arr1(&[1.0, 3.0]).view()).unwrap();
    assert_abs_diff_eq!(m.acc7, 0.0);
}

#[test]
fn hand_computed_case_with_a_zero_label() {
    let pred = arr1(&[0.5, 1.5, 2.5, -0.5]);
    let label = arr1(&[0.0, 2.0, 2.4, -1.0]);
    let m = regression_metrics(&pred.view(), &label.view()).unwrap();
    assert_abs_diff_eq!(m.acc7, 0.75);
    assert_abs_diff_eq!(m.acc2_has0, 1.0);
    assert_abs_diff_eq!(m.acc2_non0, 1.0);
    assert_abs_diff_eq!(m.mae, 0.4, epsilon = 1e-15);
}

#[test]
fn zero_label_counts_as_positive_in_has0_and_is_dropped_in_non0() {
    let pred = arr1(&[0.0, -0.2]);
    let label = arr1(&[0.0, 0.3]);
    let m = regression_metrics(&pred.view(), &label.view()).unwrap();
    assert_abs_diff_eq!(m.acc2_has0, 0.5);
    assert_abs_diff_eq!(m.acc2_non0, 0.0);
    assert_abs_diff_eq!(m.f1_non0, 0.0);
}

#[test]
fn weighted_f1_matches_the_support_weighted_mean() {
    let pred = arr1(&[1.0, -1.0, 1.0, 1.0, -1.0]);
    let label = arr1(&[1.0, 1.0, -1.0, 1.0, -1.0]);
    let m = regression_metrics(&pred.view(), &label.view()).unwrap();
    assert_abs_diff_eq!(m.acc2_has0, 0.6);
    // F1(pos) = 2/3 with support 3, F1(neg) = 1/2 with support 2
    assert_abs_diff_eq!(
        m.f1_has0,
        (2.0 / 3.0 * 3.0 + 0.5 * 2.0) / 5.0,
        epsilon = 1e-15
    );
    assert_abs_diff_eq!(m.f1_non0, m.f1_has0, epsilon = 1e-15);
}

#[test]
fn constant_predictions_give_an_undefined_correlation_not_nan() {
    let pred = arr1(&[0.3, 0.3, 0.3]);
    let label = arr1(&[-1.0, 0.5, 2.0]);
    let m = regression_metrics(&pred.view(), &label.view()).unwrap();
    assert_eq!(m.corr, None);
    assert_eq!(
        serde_json::to_value(m).unwrap()["corr"],
        serde_json::Value::Null
    );
}

#[test]
fn pearson_of_an_affine_image_is_plus_or_minus_one() {
    let a = arr1(&[1.0, 2.0, 4.0, 7.0]);
    assert_abs_diff_eq!(
        pearson(&a.view(), &(&a * 3.0 + 1.0).view()).unwrap(),
        1.0,
        epsilon = 1e-15
    );
    assert_abs_diff_eq!(
        pearson(&a.view(), &(&a * -0.5).view()).unwrap(),
        -1.0,
        epsilon = 1e-15
    );
}

#[test]
fn all_zero_labels_make_acc2_non0_an_error() {
    let r = regression_metrics(&arr1(&[0.1, -0.2]).view(), &arr1(&[0.0, 0.0]).view());
    assert!(matches!(r, Err(EstimatorError::TooFewSamples { .. })));
}

#[test]
fn mismatched_lengths_and_nan_are_errors() {
    let r = regression_metrics(&arr1(&[0.1, -0.2]).view(), &arr1(&[0.0]).view());
    assert!(matches!(r, Err(EstimatorError::LengthMismatch { .. })));
    let r = regression_metrics(&arr1(&[f64::NAN]).view(), &arr1(&[0.0]).view());
    assert!(matches!(r, Err(EstimatorError::NonFinite { .. })));
}

#[test]
fn urfunny_binary_accuracy_thresholds_scores() {
    let acc = binary_accuracy(
        &arr1(&[0.2, 0.7, 0.5]).view(),
        &arr1(&[0.0, 1.0, 0.0]).view(),
        0.5,
    )
    .unwrap();
    assert_abs_diff_eq!(acc, 2.0 / 3.0);
    assert!(binary_accuracy(&arr1(&[0.2]).view(), &arr1(&[2.0]).view(), 0.5).is_err());
}
