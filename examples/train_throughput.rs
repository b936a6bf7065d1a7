//! Training throughput of the Candle CPU trainer: one epoch of training steps (batch assembly,
//! forward, L1 loss, backward, gradient clipping, AdamW — and with a synergy variant Algorithm D's
//! C-network step) on the synthetic MOSI tier's training split (1,284 clips, MOSI's widths and
//! sequence length), no validation. `benches/train_compare.sh` runs it next to
//! `benches/torch_train.py` and prints the ratio table.
//!
//! `cargo run --release --example train_throughput -- [--model flstm] [--variant nll]
//!  [--batch 32] [--warmup 3] [--threads 1] [--device cpu|cuda] [--json]`; `--shapes` prints the tier's shapes and
//! length distribution only. `--real-text DATA_DIR` times the real-text MOSI tier instead, its
//! transcripts tokenised with the text encoder (`NEURAL_SYNERGY_TEXT_ENCODER` or the fetch
//! script's cache) — what the BERT models need (`--model magbert`); `--frozen-bert` freezes BERT
//! as `reproduce-paper --frozen-bert` does; `--clips N` times an epoch over the first N training
//! clips only (a shorter run for A/B timing of the slow models).
use neural_synergy::app::DeviceArg;
use neural_synergy::data::bert::{resolve_encoder_dir, tokens, TextEncoder};
use neural_synergy::data::{realtext, synthetic, DatasetName};
use neural_synergy::models::{ModelConfig, ModelKind};
use neural_synergy::synergy::SynergyConfig;
use neural_synergy::train::{time_epoch_on, RunConfig, TaskLoss, Variant};

fn main() {
    neural_synergy::restore_sigpipe();
    neural_synergy::tune_allocator();
    if let Err(e) = run() {
        eprintln!("train_throughput: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |flag: &str| -> Option<&str> {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let threads: usize = get("--threads").unwrap_or("1").parse()?;
    neural_synergy::init_threads(Some(threads));
    neural_synergy::single_threaded_blas();
    let mut ds = match get("--real-text") {
        Some(dir) => {
            let mut ds = realtext::load(std::path::Path::new(dir), DatasetName::Mosi, 0)?;
            let enc_dir = resolve_encoder_dir(None)?;
            let enc = TextEncoder::load(&enc_dir, &candle_core::Device::Cpu)?;
            tokens::attach(
                &mut ds,
                enc.tokenizer(),
                enc_dir.clone(),
                enc.checkpoint_key(),
            )?;
            ds
        }
        None => synthetic::generate_for(DatasetName::Mosi, 0),
    };
    if let Some(n) = get("--clips") {
        // the first N training clips only: a shorter epoch for A/B timing of slow models
        let n: usize = n.parse()?;
        ds.train = ds.train.head(n.min(ds.train.len()), ds.t_max, ds.dims);
    }
    if has("--shapes") {
        let mut hist = vec![0usize; ds.t_max + 1];
        for &l in &ds.train.lengths {
            hist[l.min(ds.t_max)] += 1;
        }
        println!(
            "{}",
            serde_json::json!({
                "clips": ds.train.len(),
                "dims": ds.dims,
                "t_max": ds.t_max,
                "lengths": ds.train.lengths,
            })
        );
        return Ok(());
    }
    let model: ModelKind = clap::ValueEnum::from_str(get("--model").unwrap_or("flstm"), true)
        .map_err(|e| anyhow::anyhow!("--model: {e}"))?;
    let variant: Variant = clap::ValueEnum::from_str(get("--variant").unwrap_or("nll"), true)
        .map_err(|e| anyhow::anyhow!("--variant: {e}"))?;
    let batch_size: usize = get("--batch").unwrap_or("32").parse()?;
    let warmup: usize = get("--warmup").unwrap_or("3").parse()?;
    let mut model_cfg = model.default_config();
    if has("--frozen-bert") {
        match &mut model_cfg {
            ModelConfig::Magbert(c) => c.finetune = false,
            ModelConfig::Mim(c) => c.finetune = false,
            _ => anyhow::bail!("--frozen-bert: {} has no BERT to freeze", model.name()),
        }
    }
    let cfg = RunConfig {
        model: model_cfg,
        variant,
        batch_size,
        lr: 1e-3,
        seed: 0,
        max_epochs: 1,
        patience: 1,
        loss: TaskLoss::L1,
        synergy: SynergyConfig::default(),
    };
    let device: DeviceArg = clap::ValueEnum::from_str(get("--device").unwrap_or("cpu"), true)
        .map_err(|e| anyhow::anyhow!("--device: {e}"))?;
    let device = device.device()?;
    let t = time_epoch_on(&ds, &cfg, warmup, &device)?;
    let out = serde_json::json!({
        "engine": "candle",
        "device": if device.is_cuda() { "cuda" } else { "cpu" },
        "model": model.name(),
        "variant": variant.name(),
        "batch": batch_size,
        "threads": threads,
        "steps": t.steps,
        "samples": t.samples,
        "seconds_per_epoch": t.seconds,
        "cpu_seconds_per_epoch": t.cpu_seconds,
        "samples_per_second": t.samples as f64 / t.seconds,
        "dims": ds.dims,
        "t_max": ds.t_max,
    });
    if has("--json") {
        println!("{out}");
    } else {
        println!(
            "candle {} {} {} batch {batch_size}, {threads} thread(s): {:.2} s per epoch ({} steps{}), {:.0} samples/s",
            if device.is_cuda() { "cuda" } else { "cpu" },
            model.name(),
            variant.name(),
            t.seconds,
            t.steps,
            t.cpu_seconds
                .map_or(String::new(), |c| format!("; CPU {c:.2} s")),
            t.samples as f64 / t.seconds
        );
    }
    Ok(())
}
