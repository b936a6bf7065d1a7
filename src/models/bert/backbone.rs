//! A trainable BERT (embeddings → optional MAG → encoder → pooler) for the BERT-based fusion
//! models, with pretrained weights loaded from a checkpoint folder into the trainer's `VarMap`.
//!
//! # Structure (Hugging Face `BertModel`, post-LN)
//! * Embeddings: `E = LN(W_word[id] + W_pos[j] + W_type[segment])` (LayerNorm with the
//!   checkpoint's `layer_norm_eps`), then dropout.
//! * Each encoder layer: `x ← LN(x + Drop(W_o · MHA(x, mask)))`,
//!   `x ← LN(x + Drop(W₂ act(W₁ x)))`, with `MHA` = softmax(`QKᵀ/√d_h + M`)`V` per head and the
//!   additive mask `M = −10⁹` at padded keys (so padded keys get weight exactly 0).
//! * Pooler: `tanh(W_p h_[CLS] + b_p)`.
//!
//! Variable names are Hugging Face's (`embeddings.word_embeddings.weight`,
//! `encoder.layer.{i}.attention.self.query.weight`, …, `pooler.dense.weight`) under the prefix the
//! model chooses (`bert.`), so [`load_pretrained`] maps a checkpoint by name, with the `bert.`
//! prefix and `gamma`/`beta` LayerNorm names of older checkpoints handled as in
//! [`crate::data::bert::encoder`].
//!
//! # Why not candle-transformers' `BertEncoder`
//! Its LayerNorms call `candle_nn::ops::layer_norm`, a fused kernel applied with
//! `apply_op3_no_bwd`: **no gradient passes through it**, so a fine-tuned encoder built from it
//! would train only its last LayerNorm's successors (measured: every encoder weight's gradient is
//! absent). The layers here are the same computation written with differentiable tensor ops (and
//! they run in f64 too, which the fused kernel does not).
//!
//! # Deviations from Hugging Face's BERT in training mode
//! Dropout (`hidden_dropout`, seeded: [`SeededDropout`]) is applied after the embeddings and after
//! each sub-layer's output projection; the dropout on the attention probabilities is omitted (it
//! would draw `B·heads·L²` random numbers per layer and step on the CPU).

use crate::data::bert::encoder::checkpoint_name;
use crate::kernels::{detached, fused_ops_enabled, linear_rows, scale_shift};
use crate::models::layers::SeededDropout;
use crate::models::BuildCtx;
use candle_core::{DType, IndexOp, Module, Tensor, D};
use candle_nn::{embedding, linear, Embedding, Init, Linear, VarBuilder, VarMap};
use candle_transformers::models::bert::{Config, HiddenAct};
use std::collections::HashSet;
use std::path::Path;

/// Reads and checks a checkpoint's `config.json`.
pub fn read_config(dir: &Path) -> candle_core::Result<Config> {
    let p = dir.join("config.json");
    let bytes = std::fs::read(&p).map_err(|e| {
        candle_core::Error::Msg(format!(
            "{}: {e}; {}",
            p.display(),
            crate::data::bert::FETCH_HINT
        ))
    })?;
    let c: Config = serde_json::from_slice(&bytes).map_err(|e| {
        candle_core::Error::Msg(format!("{}: not a BERT config.json ({e})", p.display()))
    })?;
    if c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
        candle_core::bail!(
            "{}: hidden_size {} is not a multiple of num_attention_heads {}",
            p.display(),
            c.hidden_size,
            c.num_attention_heads
        );
    }
    Ok(c)
}

/// The checkpoint configuration for the BERT-based model `model` from the build context's
/// encoder folder; an error naming the model and how to fetch an encoder when there is none.
pub(crate) fn config_for(ctx: &BuildCtx, model: &str) -> candle_core::Result<Config> {
    let dir = ctx.text_encoder.as_ref().ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "{model} needs a text encoder; {}",
            crate::data::bert::FETCH_HINT
        ))
    })?;
    read_config(dir)
}

/// [`load_pretrained`] of the `bert.` variables from the build context's encoder folder (nothing
/// without one).
pub(crate) fn load_from_ctx(vm: &VarMap, ctx: &BuildCtx) -> candle_core::Result<()> {
    if let Some(dir) = &ctx.text_encoder {
        load_pretrained(vm, "bert.", dir)?;
    }
    Ok(())
}

/// Layer normalisation over the last dimension, `γ ⊙ (x − mean)/sqrt(var + ε) + β`, written with
/// differentiable tensor ops (HF names `weight`/`bias`).
#[derive(Debug)]
pub struct Ln {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl Ln {
    /// A LayerNorm of width `size` under `vb`.
    pub fn new(size: usize, eps: f64, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(size, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(size, "bias", Init::Const(0.0))?,
            eps,
        })
    }

    /// Detaches the scale and shift (same storage): no gradient reaches them.
    fn freeze(&mut self) {
        self.weight = self.weight.detach();
        self.bias = self.bias.detach();
    }

    /// Normalises `x` over its last dimension.
    ///
    /// # Shapes
    /// * `x`: `… × size`; returns the same shape
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let c = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
        let var = c.sqr()?.mean_keepdim(D::Minus1)?;
        // `⊙ γ + β` as one op: bit for bit the composed broadcasts, without candle's strided
        // reduction for the gradients of γ and β
        scale_shift(
            &c.broadcast_div(&(var + self.eps)?.sqrt()?)?,
            &self.weight,
            &self.bias,
        )
    }
}

#[derive(Debug)]
struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    attn_out: Linear,
    attn_ln: Ln,
    inter: Linear,
    out: Linear,
    out_ln: Ln,
    heads: usize,
    act: HiddenAct,
}

impl Layer {
    fn freeze(&mut self) {
        for l in [
            &mut self.q,
            &mut self.k,
            &mut self.v,
            &mut self.attn_out,
            &mut self.inter,
            &mut self.out,
        ] {
            *l = detached(l);
        }
        self.attn_ln.freeze();
        self.out_ln.freeze();
    }

    fn new(c: &Config, vb: VarBuilder) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        let a = vb.pp("attention");
        Ok(Self {
            q: linear(h, h, a.pp("self").pp("query"))?,
            k: linear(h, h, a.pp("self").pp("key"))?,
            v: linear(h, h, a.pp("self").pp("value"))?,
            attn_out: linear(h, h, a.pp("output").pp("dense"))?,
            attn_ln: Ln::new(h, c.layer_norm_eps, a.pp("output").pp("LayerNorm"))?,
            inter: linear(h, c.intermediate_size, vb.pp("intermediate").pp("dense"))?,
            out: linear(c.intermediate_size, h, vb.pp("output").pp("dense"))?,
            out_ln: Ln::new(h, c.layer_norm_eps, vb.pp("output").pp("LayerNorm"))?,
            heads: c.num_attention_heads,
            act: c.hidden_act,
        })
    }

    fn split_heads(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, l, h) = x.dims3()?;
        x.reshape((b, l, self.heads, h / self.heads))?
            .transpose(1, 2)?
            .contiguous()
    }

    fn forward(
        &self,
        x: &Tensor,
        mask_add: &Tensor,
        drop: &SeededDropout,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        let (b, l, h) = x.dims3()?;
        let dh = h / self.heads;
        let q = self.split_heads(&linear_rows(&self.q, x)?)?;
        let k = self.split_heads(&linear_rows(&self.k, x)?)?;
        let v = self.split_heads(&linear_rows(&self.v, x)?)?;
        let scores = (q.matmul(&k.t()?)? / (dh as f64).sqrt())?.broadcast_add(mask_add)?;
        let p = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let ctx = p
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, l, h))?;
        let a = drop.forward(&linear_rows(&self.attn_out, &ctx)?, train)?;
        let x = self.attn_ln.forward(&(a + x)?)?;
        let i = linear_rows(&self.inter, &x)?;
        let i = match self.act {
            HiddenAct::Gelu => i.gelu_erf()?,
            HiddenAct::GeluApproximate => i.gelu()?,
            HiddenAct::Relu => i.relu()?,
        };
        let o = drop.forward(&linear_rows(&self.out, &i)?, train)?;
        self.out_ln.forward(&(o + x)?)
    }
}

/// A trainable BERT: embeddings, encoder layers and (optionally) the pooler.
#[derive(Debug)]
pub struct BertBackbone {
    config: Config,
    word: Embedding,
    pos: Embedding,
    typ: Embedding,
    emb_ln: Ln,
    layers: Vec<Layer>,
    pooler: Option<Linear>,
    drop: SeededDropout,
    frozen: bool,
}

impl BertBackbone {
    /// Builds the variables of `config` under `vb` (HF names, see the module docs); `pooler`
    /// adds `pooler.dense`; `dropout` is the hidden dropout in training mode (seeded by `seed`).
    pub fn new(
        config: &Config,
        pooler: bool,
        dropout: f64,
        seed: u64,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let c = config;
        let e = vb.pp("embeddings");
        Ok(Self {
            word: embedding(c.vocab_size, c.hidden_size, e.pp("word_embeddings"))?,
            pos: embedding(
                c.max_position_embeddings,
                c.hidden_size,
                e.pp("position_embeddings"),
            )?,
            typ: embedding(
                c.type_vocab_size,
                c.hidden_size,
                e.pp("token_type_embeddings"),
            )?,
            emb_ln: Ln::new(c.hidden_size, c.layer_norm_eps, e.pp("LayerNorm"))?,
            layers: (0..c.num_hidden_layers)
                .map(|i| Layer::new(c, vb.pp("encoder").pp("layer").pp(i)))
                .collect::<candle_core::Result<_>>()?,
            pooler: if pooler {
                Some(linear(
                    c.hidden_size,
                    c.hidden_size,
                    vb.pp("pooler").pp("dense"),
                )?)
            } else {
                None
            },
            drop: SeededDropout::new(dropout, seed),
            frozen: false,
            config: c.clone(),
        })
    }

    /// With `frozen`, a BERT whose variables do not train (a `finetune: false` model): every
    /// weight is replaced by its detached view of the same storage (so the checkpoint loaded into
    /// the `VarMap` afterwards, and any later `Var::set`, still show through), so the linears
    /// ([`linear_rows`]) compute no weight gradient for them. Gradients still flow through the encoder to whatever feeds
    /// it (MAG-BERT's gate), but the backward computes no weight gradient, sums no per-example
    /// weight gradients over the batch and scatters nothing into the embedding tables. The values
    /// and the gradients of the trained variables are those of the unfrozen encoder (tested). A
    /// no-op without `frozen`, and under `NEURAL_SYNERGY_FUSED_OPS=0`, which keeps candle's
    /// composed path (variables, all gradients computed and dropped) for side-by-side timing.
    pub fn frozen(mut self, frozen: bool) -> Self {
        if !frozen || !fused_ops_enabled() {
            return self;
        }
        for e in [&mut self.word, &mut self.pos, &mut self.typ] {
            *e = Embedding::new(e.embeddings().detach(), e.hidden_size());
        }
        self.emb_ln.freeze();
        for l in &mut self.layers {
            l.freeze();
        }
        if let Some(p) = &mut self.pooler {
            *p = detached(p);
        }
        self.frozen = true;
        self
    }

    /// The checkpoint configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The device of the weights.
    pub fn device(&self) -> &candle_core::Device {
        self.word.embeddings().device()
    }

    /// The floating type of the weights.
    pub fn dtype(&self) -> DType {
        self.word.embeddings().dtype()
    }

    /// Hidden width.
    pub fn hidden(&self) -> usize {
        self.config.hidden_size
    }

    /// The embeddings `E = LN(W_word[ids] + W_pos[j] + W_type[segment])`, before dropout. Errors
    /// if `L` exceeds `max_position_embeddings` or an id is outside the vocabulary.
    ///
    /// # Shapes
    /// * `ids`, `segment`: `B × L` (u32)
    /// * returns: `B × L × H`
    pub(crate) fn embed(&self, ids: &Tensor, segment: &Tensor) -> candle_core::Result<Tensor> {
        let (_, l) = ids.dims2()?;
        if l > self.config.max_position_embeddings {
            candle_core::bail!(
                "{l} tokens exceed max_position_embeddings {}",
                self.config.max_position_embeddings
            );
        }
        let max_id = ids.max_all()?.to_dtype(DType::U32)?.to_scalar::<u32>()?;
        if max_id as usize >= self.config.vocab_size {
            candle_core::bail!(
                "token id {max_id} is outside the checkpoint's vocabulary ({})",
                self.config.vocab_size
            );
        }
        let pos = Tensor::arange(0u32, l as u32, ids.device())?;
        let e = self
            .word
            .forward(ids)?
            .broadcast_add(&self.pos.forward(&pos)?)?
            .add(&self.typ.forward(segment)?)?;
        self.emb_ln.forward(&e)
    }

    /// Dropout on the embeddings (training mode).
    ///
    /// # Shapes
    /// * `e`: `B × L × H`; returns the same shape
    pub(crate) fn embed_dropout(&self, e: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.drop.forward(e, train)
    }

    /// The encoder's last hidden state from embeddings `x` and the 0/1 attention `mask`.
    ///
    /// # Shapes
    /// * `x`: `B × L × H`, `mask`: `B × L`
    /// * returns: `B × L × H`
    pub fn encode(&self, x: &Tensor, mask: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        // (1 − m)·(−10⁹), shaped B × 1 × 1 × L for the heads' score matrices
        let add = ((mask.to_dtype(x.dtype())? - 1.0)? * 1e9)?
            .unsqueeze(1)?
            .unsqueeze(1)?;
        let mut h = x.clone();
        for layer in &self.layers {
            h = layer.forward(&h, &add, &self.drop, train)?;
        }
        Ok(h)
    }

    /// `tanh(W_p h_[CLS] + b_p)`; errors without a pooler.
    ///
    /// # Shapes
    /// * `hidden`: `B × L × H`
    /// * returns: `B × H`
    pub fn pool(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        let p = self
            .pooler
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("this BERT has no pooler".into()))?;
        let cls = hidden.i((.., 0, ..))?;
        if self.frozen {
            linear_rows(p, &cls)?.tanh()
        } else {
            p.forward(&cls)?.tanh()
        }
    }
}

/// Overwrites every variable of `vm` named `{prefix}…` with the tensor of the same Hugging Face
/// name in `dir/model.safetensors` (a `bert.` prefix and `gamma`/`beta` LayerNorm names in the
/// file are handled). A variable the file lacks is an error, except the pooler (`pooler.dense.*`:
/// sentence-transformers checkpoints may omit it; it then keeps its seeded initialisation). A
/// shape mismatch is an error. Returns how many variables were loaded.
pub fn load_pretrained(vm: &VarMap, prefix: &str, dir: &Path) -> candle_core::Result<usize> {
    let path = dir.join("model.safetensors");
    if !path.is_file() {
        candle_core::bail!(
            "{}: missing; {}",
            path.display(),
            crate::data::bert::FETCH_HINT
        );
    }
    let tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
    let names: HashSet<String> = tensors.keys().cloned().collect();
    let file_prefix = if names.iter().any(|n| n.starts_with("bert.embeddings.")) {
        "bert."
    } else {
        ""
    };
    let data = vm.data().lock().expect("VarMap lock");
    let mut loaded = 0;
    let mut wanted: Vec<&String> = data.keys().filter(|n| n.starts_with(prefix)).collect();
    wanted.sort();
    for name in wanted {
        let var = &data[name];
        let local = &name[prefix.len()..];
        let ck = checkpoint_name(&names, file_prefix, local);
        let Some(t) = tensors.get(&ck) else {
            if local.starts_with("pooler.") {
                continue;
            }
            candle_core::bail!("{}: no tensor {ck} (for {name})", path.display());
        };
        if t.dims() != var.dims() {
            candle_core::bail!(
                "{}: {ck} has shape {:?}, the model's {name} {:?}",
                path.display(),
                t.dims(),
                var.dims()
            );
        }
        var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
        loaded += 1;
    }
    Ok(loaded)
}
