//! `synergy train-demo`: a small synthetic fusion model trained with the C-network (Algorithm
//! D), its losses printed per window and plotted to a PNG.

use super::DivArg;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

pub(super) fn train_demo(
    steps: usize,
    batch: usize,
    divergence: DivArg,
    seed: u64,
    plot: &std::path::Path,
    every: usize,
    quiet: bool,
) -> Result<Value> {
    use crate::app::demo::{run_demo, DemoConfig};
    if steps == 0 || batch < 4 || every == 0 {
        bail!("--steps and --every must be >= 1 and --batch >= 4");
    }
    let mut cfg = DemoConfig {
        steps,
        batch,
        seed,
        ..DemoConfig::default()
    };
    cfg.synergy.divergence = match divergence {
        DivArg::Mmd => crate::synergy::Divergence::Mmd,
        DivArg::Kl => crate::synergy::Divergence::Kl,
    };
    let tr = run_demo(&cfg)?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    if !quiet {
        let mut rows = Vec::new();
        for s in (0..steps).step_by(every) {
            let e = (s + every).min(steps);
            let f = |v: &Vec<f64>| format!("{:.4}", mean(&v[s..e]));
            rows.push(vec![
                format!("{s}-{}", e - 1),
                f(&tr.task),
                f(&tr.l2),
                f(&tr.ld),
                f(&tr.lk),
                f(&tr.reg),
            ]);
        }
        println!(
            "train-demo: synthetic 3-modality stream, batch {batch}, seed {seed}, L_d = {:?} (means over each window)\n",
            cfg.synergy.divergence
        );
        println!(
            "{}",
            crate::report::markdown_table(
                &["steps", "L_task", "L_L2", "L_d", "L_κ", "L_reg"],
                &rows
            )
        );
    }
    let w = (steps / 30).max(1);
    crate::report::plot_panels(
        plot,
        &format!(
            "synergy train-demo ({:?}, seed {seed})",
            cfg.synergy.divergence
        ),
        &[
            ("L_task (MSE)", crate::report::smooth(&tr.task, w)),
            ("L_L2", crate::report::smooth(&tr.l2, w)),
            ("L_d", crate::report::smooth(&tr.ld, w)),
            ("L_kappa", crate::report::smooth(&tr.lk, w)),
            ("L_reg", crate::report::smooth(&tr.reg, w)),
        ],
    )
    .with_context(|| format!("writing {}", plot.display()))?;
    if !quiet {
        println!("plot: {}", plot.display());
    }
    let q = (steps / 10).max(1);
    Ok(json!({
        "plot": plot.display().to_string(),
        "reg_first": mean(&tr.reg[..q]),
        "reg_last": mean(&tr.reg[steps - q..]),
        "task_first": mean(&tr.task[..q]),
        "task_last": mean(&tr.task[steps - q..]),
        "trace": tr,
    }))
}
