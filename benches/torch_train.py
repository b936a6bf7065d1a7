#!/usr/bin/env python3
"""PyTorch (eager, CPU) side of issue 11's training-speed benchmark: one training epoch of EF-LSTM
("FLSTM"), TFN or MFN, with or without the synergy regulariser's C-network, written the way thuiar/MMSA
writes these models (`models/singleTask/{EF_LSTM,TFN,MFN}.py`, `subNets/FeatureNets.py`: nn.LSTM,
nn.LSTMCell, nn.Linear, nn.BatchNorm1d, nn.Dropout, a plain Python loop over time steps for MFN) but
with exactly the architecture, sizes and training step of OUR Rust/Candle models
(src/models/{ef_lstm,tfn,mfn}.rs, src/synergy/{cnet,nets,losses,step}.rs, src/train/mod.rs's
`time_epoch`), so that the two timings compare frameworks, not models.

Run (from the repository root):

    benches/.venv-torch/bin/python benches/torch_train.py --model tfn --variant nll --threads 1 --json
    benches/.venv-torch/bin/python benches/torch_train.py --model mfn --variant smmd --batch 32 \\
        --clips 1284 --seq 50 --dims 300,74,35 --threads 1 --warmup 3 --epochs 1

Output: one JSON object (`--json`) with model, variant, batch, threads, steps, seconds_per_epoch,
samples_per_second, the torch version and the shapes used; otherwise a one-line summary.

Data (random, fixed seed `--seed`, generated once, outside the timing)
----------------------------------------------------------------------
* Shapes are those of the synthetic MOSI tier (src/data/synthetic.rs): `--clips` 1284 training clips
  (MOSI's train split), features padded to `--seq` 50 steps (`T_MAX`), widths text/audio/vision
  `--dims` 300,74,35 (`DIMS`). Features ~ N(0, 1), zero on padded steps (padding is at the end).
* Valid lengths: log-normal with MOSI's transcript median 10 and mean 12.6 words
  (sigma = sqrt(2 ln(mean/median))), rounded and clamped to 2..seq -- the distribution of
  synthetic.rs's `draw_len` (drawn here with torch's generator, so not the same values).
* Labels ~ U[-3, 3].

What one timed epoch does (as `time_epoch` in src/train/mod.rs)
---------------------------------------------------------------
* The clips are shuffled once (fixed seed) and cut into batches of `--batch`; batches of one clip are
  skipped (as ours does), so an epoch is ceil(clips/batch) steps unless the remainder is 1.
  `--warmup` untimed steps run first on the first batches (cycled), then the epoch is timed with
  time.perf_counter. With `--epochs` > 1 every further epoch uses a new shuffle and the reported
  seconds_per_epoch is the mean.
* Each step (all inside the timing): batch assembly (gather the clips' padded rows, cut them to the
  batch's longest valid length as ours does, build the mask and lengths), forward in training mode,
  L1 loss (MMSA's regression loss), backward, torch.nn.utils.clip_grad_norm_(.., 5), AdamW step
  (lr 1e-3, weight_decay 0.01, torch defaults otherwise = candle's ParamsAdamW defaults).
* `--variant smmd` (Algorithm D, src/synergy/step.rs): the C-network's L_reg = 1*L_L2 + 1*L_d + 0.1*L_k
  on the model's (Z_t, Z_a, Z_v, Z); ONE backward of L_task + 0.01*L_reg; the C-network's gradients
  are divided by beta (= its gradient of L_reg), clipped to norm 5 on their own and applied by its own
  AdamW (lr 1e-3, wd 0.01); the model's gradients are clipped to 5 and applied by the model's AdamW.
  Both loss values are read as floats each step (ours checks them for finiteness; so does this).
  - Q_i: four-layer MLP (sum(d)-d_i -> 64 -> 64 -> 64 -> d_i), LeakyReLU(0.01) between layers.
  - g_i(Z_i) = h_i(Z_i R_i), g_i(Z) = h_i(Z F_i): fixed random projections R_i (d_i x 16), F_i
    (d_f x 16) with N(0, 1/16) entries (buffers, not trained), h_i four RealNVP affine coupling
    layers on 16 features with alternating halves, each conditioner a four-layer LeakyReLU MLP of
    hidden width 64 giving (s, t), s = tanh(.), y_b = b * exp(s) + t.
  - L_L2 = sum_i mean_batch ||Q_i(Z_-i) - Z_i||^2 / (detached batch variance sum_j Var(Z_ij) + 1e-8)
    (relative L2, our default).
  - L_d = sum_i unbiased MMD^2(g_i(Z_i), g_i(Z)), Gaussian kernels averaged over the bandwidths
    sigma_med * {0.25, 0.5, 1, 2, 4}, sigma_med = sqrt(median pooled pairwise squared distance)
    computed on the detached batch in float64 (the mean of the two middle values for an even count).
  - L_k = sum over Z_t, Z_a, Z_v, Z of the streaming kurtosis mean_j (d_j^T P d_j)^2 / (p(p+2)),
    d_j = z_j - mean(z); S_t = C_t on the first batch, else 0.9 S_{t-1} + 0.1 C_t with C_t the
    covariance of the centred rows clipped to norm 10; P = (S_t + 1e-3 I)^-1 from a float64 Cholesky
    factor (torch.linalg.cholesky + cholesky_inverse), a constant for autograd.

Models (our defaults = MMSA's MOSI config_regression.json values where MMSA has the field)
------------------------------------------------------------------------------------------
* flstm (src/models/ef_lstm.rs): per-modality nn.Linear(d_m, 32) at every step, concatenated (96)
  -> nn.LSTM(96, 128, num_layers=2) on the packed valid steps -> top layer's last valid hidden state
  (Z, 128) -> Dropout(0.2) -> ReLU(Linear(128, 64)) -> Linear(64, 1). Z_m = masked time-mean of the
  projected modality m (32 each).
* tfn (src/models/tfn.rs; MMSA TFN.py + FeatureNets.py): text = nn.LSTM(300, 128) on the packed valid
  steps, last valid hidden state -> Dropout(0) -> Linear(128, 32) (Z_t); audio / vision = masked
  time-mean -> BatchNorm1d -> Dropout(0.3) -> 3 x (Linear + ReLU), widths 32 (Z_a) / 128 (Z_v);
  tensor fusion by two torch.bmm as MMSA (33*129*33 = 140481 wide) -> Dropout(0.5) ->
  ReLU(Linear(140481, 64)) (Z) -> ReLU(Linear(64, 64)) -> Linear(64, 1) -> 6*sigmoid - 3.
* mfn (src/models/mfn.rs; MMSA MFN.py): three nn.LSTMCell (hidden 256/32/256) stepped over the batch's
  longest length, window 2 (cStar = [c_{t-1}; c_t], 1088 wide), NN1 32 (dropout .2), NN2 64 (0),
  gamma1 256 (.7), gamma2 32 (.5), memory 400, output net 128 (0); per-step audio/vision (not MMSA's
  repeated time-means; ours' default `mmsa_av_mean = false`). Each clip's h_t^m and u_t are read at
  its own last valid step: Z_m = h^m (256/32/256), Z = u (400); prediction from [h_l; h_a; h_v; u].

Differences from OUR Rust models (none changes a layer width or the FLOPs of the maths)
---------------------------------------------------------------------------------------
* Initialisation: PyTorch's per-layer defaults (nn.LSTM / nn.LSTMCell: U(+-1/sqrt(hidden)) for all
  weights) instead of our seed_varmap (nn.Linear style U(+-1/sqrt(fan_in)) everywhere); random
  values differ (random numbers, dropout masks, projections are torch's, not ChaCha8's).
* Variable lengths: pack_padded_sequence(enforce_sorted=False) for nn.LSTM (the idiomatic PyTorch
  way; like our FastLstm it computes only the valid steps of each clip, and h_n is the last valid
  state). MFN steps every clip to the batch's longest length and indexes the states at each clip's
  last valid step (ours multiplies by a one-hot and sums -- same result).
* MFN is written as MMSA writes it: nn.LSTMCell per step (input projection recomputed per step) and
  separate gamma1/gamma2 first layers; ours precomputes every step's input projection in one matmul
  per modality and fuses the two gate networks' first layers. This is a deliberate part of the
  comparison ("PyTorch as MMSA writes it"), not of the model.
* EF-LSTM's two layers are one nn.LSTM(num_layers=2) (ours: two stacked single-layer LSTMs, no
  dropout between them -- identical maths).
* Dropout is nn.Dropout (ours: SeededDropout with the same p).
* Ours checks the global gradient norm for finiteness (an error); torch's clip_grad_norm_ does not.

Differences from MMSA (all inherited from our Rust models, see their module docs)
--------------------------------------------------------------------------------
* EF-LSTM: MMSA has no per-modality projections (it concatenates raw 409-d features), applies
  BatchNorm1d over the sequence positions, uses dropout 0.2 between the LSTM layers and after the
  ReLU layer, and its ReLU layer is hidden -> hidden (128); ours: projections to 32, no BatchNorm,
  one dropout before the ReLU layer, ReLU layer 64 wide, no inter-layer dropout; MMSA reads the LSTM
  state after the whole padded sequence (no packing), ours at the last valid step.
* TFN: MMSA's loader gives audio/vision as time-means over all 50 padded steps; ours over the valid
  steps only. MMSA's text LSTM runs the padded sequence; ours stops at the last valid step.
* MFN: MMSA feeds the time-mean of audio/vision at every step (need_normalized) and runs all 50
  padded steps, reading the states after the last one; ours reads per-step audio/vision and the
  states at each clip's last valid step, and runs only to the batch's longest valid length.
* All models: sequences are cut to the batch's longest valid length (MMSA: always 50 steps);
  optimiser AdamW(1e-3, wd 0.01) + clip 5 for every model (MMSA: Adam, per-model lr and batch size,
  e.g. MFN batch 128 lr 2e-3, TFN no weight decay). The C-network (smmd) is ours; MMSA has none.

Ambiguities resolved here: "random valid lengths like MOSI's" -> synthetic.rs's log-normal (median 10,
mean 12.6, clamped to 2..seq); with --epochs > 1 each extra epoch reshuffles (ours times one epoch).
"""

import argparse
import json
import math
import platform
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence

# the MMD pieces of the loss-level benchmark next to this file (same definitions)
from torch_synergy import mmd2_unbiased, sqd

# ---------------------------------------------------------------------------------------------
# data


MOSI_MEDIAN_WORDS = 10.0
MOSI_MEAN_WORDS = 12.6


class Data:
    """Padded random clips: feats[m] is clips x seq x d_m, zero on padded steps."""

    def __init__(self, clips, seq, dims, seed):
        g = torch.Generator().manual_seed(seed)
        sigma = math.sqrt(2.0 * math.log(MOSI_MEAN_WORDS / MOSI_MEDIAN_WORDS))
        ln = torch.randn(clips, generator=g, dtype=torch.float64) * sigma + math.log(MOSI_MEDIAN_WORDS)
        self.lengths = ln.exp().round().clamp(min(2, seq), seq).long()
        valid = (torch.arange(seq)[None, :] < self.lengths[:, None]).unsqueeze(2)
        self.feats = [torch.randn(clips, seq, d, generator=g) * valid for d in dims]
        self.labels = torch.rand(clips, generator=g) * 6.0 - 3.0
        self.device = torch.device("cpu")

    def to(self, device):
        """Features and labels on `device` once (lengths stay on the host for packing)."""
        self.device = torch.device(device)
        self.feats = [f.to(self.device) for f in self.feats]
        self.labels = self.labels.to(self.device)
        return self

    def batch(self, idx):
        """Inputs cut to the batch's longest valid length, lengths (host), mask (B x T), labels."""
        lengths = self.lengths[idx]
        t = int(lengths.max())
        on = idx.to(self.device)
        xs = [f[on, :t] for f in self.feats]
        mask = (torch.arange(t, device=self.device)[None, :] < lengths.to(self.device)[:, None]).float()
        return xs, lengths, mask, self.labels[on]


def masked_mean(x, mask):
    """Time-mean of B x T x d over the valid steps."""
    return (x * mask.unsqueeze(2)).sum(1) / mask.sum(1, keepdim=True)


# ---------------------------------------------------------------------------------------------
# models: forward(xs, lengths, mask) -> ([Z_t, Z_a, Z_v], Z, prediction)


class EF_LSTM(nn.Module):
    """Early fusion LSTM, our sizes (src/models/ef_lstm.rs)."""

    def __init__(self, dims, proj=32, hidden=128, num_layers=2, post=64, dropout=0.2):
        super().__init__()
        self.proj = nn.ModuleList([nn.Linear(d, proj) for d in dims])
        self.lstm = nn.LSTM(3 * proj, hidden, num_layers=num_layers, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden, post)
        self.out = nn.Linear(post, 1)
        self.rep_dims = ([proj] * 3, hidden)

    def forward(self, xs, lengths, mask):
        projected = [p(x) for p, x in zip(self.proj, xs)]
        unimodal = [masked_mean(p, mask) for p in projected]
        x = torch.cat(projected, dim=-1)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, final_states = self.lstm(packed)
        fused = final_states[0][-1]
        x = self.dropout(fused)
        x = F.relu(self.linear(x), inplace=True)
        output = self.out(x).squeeze(1)
        return unimodal, fused, output


class SubNet(nn.Module):
    """MMSA's FeatureNets.SubNet: BatchNorm1d -> Dropout -> 3 x (Linear + ReLU)."""

    def __init__(self, in_size, hidden_size, dropout):
        super().__init__()
        self.norm = nn.BatchNorm1d(in_size)
        self.drop = nn.Dropout(p=dropout)
        self.linear_1 = nn.Linear(in_size, hidden_size)
        self.linear_2 = nn.Linear(hidden_size, hidden_size)
        self.linear_3 = nn.Linear(hidden_size, hidden_size)

    def forward(self, x):
        dropped = self.drop(self.norm(x))
        y_1 = F.relu(self.linear_1(dropped))
        y_2 = F.relu(self.linear_2(y_1))
        return F.relu(self.linear_3(y_2))


class TextSubNet(nn.Module):
    """MMSA's FeatureNets.TextSubNet (one-layer LSTM, dropout forced to 0), on packed valid steps."""

    def __init__(self, in_size, hidden_size, out_size, dropout=0.0):
        super().__init__()
        self.rnn = nn.LSTM(in_size, hidden_size, num_layers=1, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.linear_1 = nn.Linear(hidden_size, out_size)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, final_states = self.rnn(packed)
        h = self.dropout(final_states[0].squeeze(0))
        return self.linear_1(h)


class TFN(nn.Module):
    """Tensor Fusion Network, MMSA's MOSI sizes (src/models/tfn.rs)."""

    def __init__(self, dims, text_hidden=128, audio_hidden=32, video_hidden=128, text_out=32,
                 post_fusion_dim=64, dropouts=(0.3, 0.3, 0.0, 0.5)):
        super().__init__()
        text_in, audio_in, video_in = dims
        self.audio_hidden, self.video_hidden = audio_hidden, video_hidden
        audio_prob, video_prob, text_prob, post_fusion_prob = dropouts
        self.audio_subnet = SubNet(audio_in, audio_hidden, audio_prob)
        self.video_subnet = SubNet(video_in, video_hidden, video_prob)
        self.text_subnet = TextSubNet(text_in, text_hidden, text_out, dropout=text_prob)
        self.post_fusion_dropout = nn.Dropout(p=post_fusion_prob)
        self.post_fusion_layer_1 = nn.Linear(
            (text_out + 1) * (video_hidden + 1) * (audio_hidden + 1), post_fusion_dim)
        self.post_fusion_layer_2 = nn.Linear(post_fusion_dim, post_fusion_dim)
        self.post_fusion_layer_3 = nn.Linear(post_fusion_dim, 1)
        self.output_range = nn.Parameter(torch.FloatTensor([6]), requires_grad=False)
        self.output_shift = nn.Parameter(torch.FloatTensor([-3]), requires_grad=False)
        self.rep_dims = ([text_out, audio_hidden, video_hidden], post_fusion_dim)
        self.fused_width = (text_out + 1) * (video_hidden + 1) * (audio_hidden + 1)

    def forward(self, xs, lengths, mask):
        text_x, audio_x, video_x = xs
        audio_h = self.audio_subnet(masked_mean(audio_x, mask))
        video_h = self.video_subnet(masked_mean(video_x, mask))
        text_h = self.text_subnet(text_x, lengths)
        batch_size = audio_h.shape[0]
        add_one = torch.ones(size=[batch_size, 1], requires_grad=False).type_as(audio_h)
        _audio_h = torch.cat((add_one, audio_h), dim=1)
        _video_h = torch.cat((add_one, video_h), dim=1)
        _text_h = torch.cat((add_one, text_h), dim=1)
        fusion_tensor = torch.bmm(_audio_h.unsqueeze(2), _video_h.unsqueeze(1))
        fusion_tensor = fusion_tensor.view(-1, (self.audio_hidden + 1) * (self.video_hidden + 1), 1)
        fusion_tensor = torch.bmm(fusion_tensor, _text_h.unsqueeze(1)).view(batch_size, -1)
        post_fusion_dropped = self.post_fusion_dropout(fusion_tensor)
        post_fusion_y_1 = F.relu(self.post_fusion_layer_1(post_fusion_dropped), inplace=True)
        post_fusion_y_2 = F.relu(self.post_fusion_layer_2(post_fusion_y_1), inplace=True)
        output = self.post_fusion_layer_3(post_fusion_y_2)
        output = torch.sigmoid(output) * self.output_range + self.output_shift
        return [text_h, audio_h, video_h], post_fusion_y_1, output.squeeze(1)


class MFN(nn.Module):
    """Memory Fusion Network as MMSA's MFN.py writes it, MOSI sizes (src/models/mfn.rs)."""

    def __init__(self, dims, hidden_dims=(256, 32, 256), memsize=400, windowsize=2,
                 nn1=(32, 0.2), nn2=(64, 0.0), gamma1=(256, 0.7), gamma2=(32, 0.5), out=(128, 0.0)):
        super().__init__()
        self.d_l, self.d_a, self.d_v = dims
        self.dh_l, self.dh_a, self.dh_v = hidden_dims
        total_h_dim = sum(hidden_dims)
        self.mem_dim = memsize
        attInShape = total_h_dim * windowsize
        gammaInShape = attInShape + self.mem_dim
        final_out = total_h_dim + self.mem_dim
        self.lstm_l = nn.LSTMCell(self.d_l, self.dh_l)
        self.lstm_a = nn.LSTMCell(self.d_a, self.dh_a)
        self.lstm_v = nn.LSTMCell(self.d_v, self.dh_v)
        self.att1_fc1 = nn.Linear(attInShape, nn1[0])
        self.att1_fc2 = nn.Linear(nn1[0], attInShape)
        self.att1_dropout = nn.Dropout(nn1[1])
        self.att2_fc1 = nn.Linear(attInShape, nn2[0])
        self.att2_fc2 = nn.Linear(nn2[0], self.mem_dim)
        self.att2_dropout = nn.Dropout(nn2[1])
        self.gamma1_fc1 = nn.Linear(gammaInShape, gamma1[0])
        self.gamma1_fc2 = nn.Linear(gamma1[0], self.mem_dim)
        self.gamma1_dropout = nn.Dropout(gamma1[1])
        self.gamma2_fc1 = nn.Linear(gammaInShape, gamma2[0])
        self.gamma2_fc2 = nn.Linear(gamma2[0], self.mem_dim)
        self.gamma2_dropout = nn.Dropout(gamma2[1])
        self.out_fc1 = nn.Linear(final_out, out[0])
        self.out_fc2 = nn.Linear(out[0], 1)
        self.out_dropout = nn.Dropout(out[1])
        self.rep_dims = (list(hidden_dims), memsize)

    def forward(self, xs, lengths, mask):
        text_x, audio_x, video_x = (x.permute(1, 0, 2) for x in xs)  # t x n x d
        t, n = text_x.shape[0], text_x.shape[1]
        h_l = text_x.new_zeros(n, self.dh_l)
        h_a = text_x.new_zeros(n, self.dh_a)
        h_v = text_x.new_zeros(n, self.dh_v)
        c_l, c_a, c_v = torch.zeros_like(h_l), torch.zeros_like(h_a), torch.zeros_like(h_v)
        mem = text_x.new_zeros(n, self.mem_dim)
        all_h_ls, all_h_as, all_h_vs, all_mems = [], [], [], []
        for i in range(t):
            prev_c_l, prev_c_a, prev_c_v = c_l, c_a, c_v
            new_h_l, new_c_l = self.lstm_l(text_x[i], (h_l, c_l))
            new_h_a, new_c_a = self.lstm_a(audio_x[i], (h_a, c_a))
            new_h_v, new_c_v = self.lstm_v(video_x[i], (h_v, c_v))
            prev_cs = torch.cat([prev_c_l, prev_c_a, prev_c_v], dim=1)
            new_cs = torch.cat([new_c_l, new_c_a, new_c_v], dim=1)
            cStar = torch.cat([prev_cs, new_cs], dim=1)
            attention = F.softmax(
                self.att1_fc2(self.att1_dropout(F.relu(self.att1_fc1(cStar)))), dim=1)
            attended = attention * cStar
            cHat = torch.tanh(self.att2_fc2(self.att2_dropout(F.relu(self.att2_fc1(attended)))))
            both = torch.cat([attended, mem], dim=1)
            gamma1 = torch.sigmoid(
                self.gamma1_fc2(self.gamma1_dropout(F.relu(self.gamma1_fc1(both)))))
            gamma2 = torch.sigmoid(
                self.gamma2_fc2(self.gamma2_dropout(F.relu(self.gamma2_fc1(both)))))
            mem = gamma1 * mem + gamma2 * cHat
            all_mems.append(mem)
            h_l, c_l = new_h_l, new_c_l
            h_a, c_a = new_h_a, new_c_a
            h_v, c_v = new_h_v, new_c_v
            all_h_ls.append(h_l)
            all_h_as.append(h_a)
            all_h_vs.append(h_v)
        # each clip's states at its own last valid step
        last, rows = (lengths - 1).to(h_l.device), torch.arange(n, device=h_l.device)
        last_h_l = torch.stack(all_h_ls)[last, rows]
        last_h_a = torch.stack(all_h_as)[last, rows]
        last_h_v = torch.stack(all_h_vs)[last, rows]
        last_mem = torch.stack(all_mems)[last, rows]
        last_hs = torch.cat([last_h_l, last_h_a, last_h_v, last_mem], dim=1)
        output = self.out_fc2(self.out_dropout(F.relu(self.out_fc1(last_hs))))
        return [last_h_l, last_h_a, last_h_v], last_mem, output.squeeze(1)


# ---------------------------------------------------------------------------------------------
# the C-network (src/synergy/{nets,cnet,losses}.rs)

LEAKY_SLOPE = 0.01
MEDIAN_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)


def mlp4(inp, hidden, out):
    """The paper's four-layer LeakyReLU MLP: in -> h -> h -> h -> out."""
    return nn.Sequential(
        nn.Linear(inp, hidden), nn.LeakyReLU(LEAKY_SLOPE),
        nn.Linear(hidden, hidden), nn.LeakyReLU(LEAKY_SLOPE),
        nn.Linear(hidden, hidden), nn.LeakyReLU(LEAKY_SLOPE),
        nn.Linear(hidden, out))


class AffineCoupling(nn.Module):
    """RealNVP coupling: (a, b) -> (a, b * exp(tanh(s(a))) + t(a)); `flip` swaps the halves."""

    def __init__(self, dim, hidden, flip):
        super().__init__()
        self.split, self.flip = dim // 2, flip
        na, nb = (dim - self.split, self.split) if flip else (self.split, dim - self.split)
        self.net = mlp4(na, hidden, 2 * nb)

    def forward(self, x):
        lo, hi = x[:, :self.split], x[:, self.split:]
        a, b = (hi, lo) if self.flip else (lo, hi)
        s, t = self.net(a).chunk(2, dim=-1)
        yb = b * torch.exp(torch.tanh(s)) + t
        return torch.cat([yb, a] if self.flip else [a, yb], dim=-1)


class InvertibleNet(nn.Sequential):
    def __init__(self, dim, hidden, n_layers):
        super().__init__(*[AffineCoupling(dim, hidden, i % 2 == 1) for i in range(n_layers)])


@torch.no_grad()
def median_sigmas(x, y):
    """sigma_med * {0.25, .., 4} of the pooled detached sample, in float64."""
    z = torch.cat([x, y]).double()
    d = sqd(z, z)
    iu = torch.triu_indices(len(z), len(z), 1)
    v = d[iu[0], iu[1]].sort().values
    c = v.numel()
    med = v[c // 2] if c % 2 else 0.5 * (v[c // 2 - 1] + v[c // 2])
    s = float(med.sqrt())
    if not (s > 0.0 and math.isfinite(s)):
        raise FloatingPointError(f"median bandwidth {s}")
    return [k * s for k in MEDIAN_SCALES]


class StreamingKurtosis:
    """L_k with an EMA covariance buffer; precision from a float64 Cholesky factor (a constant)."""

    def __init__(self, alpha=0.9, ridge=1e-3, clip=10.0):
        self.alpha, self.ridge, self.clip, self.s = alpha, ridge, clip, None

    def __call__(self, z):
        with torch.no_grad():
            zd = z.detach().double()
            n, p = zd.shape
            d = zd - zd.mean(0, keepdim=True)
            c = d * (self.clip / d.norm(dim=1, keepdim=True)).clamp(max=1.0)
            cov = c.T @ c / n
            s = cov if self.s is None else self.alpha * self.s + (1.0 - self.alpha) * cov
            chol = torch.linalg.cholesky(s + self.ridge * torch.eye(p, dtype=torch.float64, device=zd.device))
            precision = torch.cholesky_inverse(chol).to(z.dtype)
            self.s = s
        d = z - z.mean(0, keepdim=True)
        q = ((d @ precision) * d).sum(1)
        return (q * q).mean()


class CNetwork(nn.Module):
    def __init__(self, dims, fused_dim, k=16, hidden=64, coupling_layers=4, gammas=(1.0, 1.0, 0.1),
                 seed=0):
        super().__init__()
        total = sum(dims)
        self.gammas = gammas
        self.q = nn.ModuleList([mlp4(total - d, hidden, d) for d in dims])
        self.g = nn.ModuleList([InvertibleNet(k, hidden, coupling_layers) for _ in dims])
        gen = torch.Generator().manual_seed(seed)
        for i, d in enumerate(dims):
            self.register_buffer(f"r{i}", torch.randn(d, k, generator=gen) / math.sqrt(k))
            self.register_buffer(f"f{i}", torch.randn(fused_dim, k, generator=gen) / math.sqrt(k))
        self.kurt = [StreamingKurtosis() for _ in range(len(dims) + 1)]

    def forward(self, unimodal, fused):
        """L_reg = g_L2 L_L2 + g_d L_d + g_k L_k; advances the kurtosis buffers."""
        g_l2, g_d, g_k = self.gammas
        l2 = 0.0
        for i, zi in enumerate(unimodal):
            others = torch.cat([z for j, z in enumerate(unimodal) if j != i], dim=1)
            e = (self.q[i](others) - zi).pow(2).sum(1).mean()
            zd = zi.detach()
            var = (zd - zd.mean(0, keepdim=True)).pow(2).sum(1).mean()
            l2 = l2 + e / (var + 1e-8)
        ld = 0.0
        for i, zi in enumerate(unimodal):
            gi = self.g[i](zi @ getattr(self, f"r{i}"))
            gf = self.g[i](fused @ getattr(self, f"f{i}"))
            ld = ld + mmd2_unbiased(gi, gf, median_sigmas(gi, gf))
        lk = 0.0
        for buf, z in zip(self.kurt, list(unimodal) + [fused]):
            p = z.shape[1]
            lk = lk + buf(z) / (p * (p + 2.0))
        return g_l2 * l2 + g_d * ld + g_k * lk


# ---------------------------------------------------------------------------------------------
# training


def build_model(name, dims):
    if name == "flstm":
        return EF_LSTM(dims)
    if name == "tfn":
        return TFN(dims)
    if name == "mfn":
        return MFN(dims)
    raise ValueError(name)


class Trainer:
    def __init__(self, model, variant, lr=1e-3, weight_decay=0.01, grad_clip=5.0, beta=0.01,
                 seed=0):
        self.model, self.grad_clip, self.beta = model, grad_clip, beta
        self.opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        self.cnet = None
        if variant == "smmd":
            dims, fused = model.rep_dims
            self.cnet = CNetwork(dims, fused, seed=seed)
            self.c_opt = torch.optim.AdamW(self.cnet.parameters(), lr=lr, weight_decay=weight_decay)
        model.train()

    def step(self, xs, lengths, mask, y):
        self.opt.zero_grad(set_to_none=True)
        unimodal, fused, pred = self.model(xs, lengths, mask)
        loss = F.l1_loss(pred, y)
        if self.cnet is None:
            if not math.isfinite(loss.item()):
                raise FloatingPointError("non-finite task loss")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.opt.step()
            return
        self.c_opt.zero_grad(set_to_none=True)
        reg = self.cnet(unimodal, fused)
        if not (math.isfinite(loss.item()) and math.isfinite(reg.item())):
            raise FloatingPointError("non-finite loss")
        (loss + self.beta * reg).backward()
        for p in self.cnet.parameters():
            if p.grad is not None:
                p.grad.div_(self.beta)
        torch.nn.utils.clip_grad_norm_(self.cnet.parameters(), self.grad_clip)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.opt.step()
        self.c_opt.step()


def batches_of(clips, batch, seed):
    order = torch.randperm(clips, generator=torch.Generator().manual_seed(seed))
    return [c for c in order.split(batch) if len(c) >= 2]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=["flstm", "tfn", "mfn"], required=True)
    ap.add_argument("--variant", choices=["nll", "smmd"], default="nll")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--clips", type=int, default=1284, help="training clips (MOSI train: 1284)")
    ap.add_argument("--seq", type=int, default=50, help="padded length (synthetic MOSI T_MAX: 50)")
    ap.add_argument("--dims", default="300,74,35", help="text,audio,vision widths (synthetic MOSI)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    a = ap.parse_args(argv)
    dims = [int(v) for v in a.dims.split(",")]
    if len(dims) != 3 or min(dims) < 1 or a.batch < 2 or a.seq < 1 or a.clips < 2 or a.epochs < 1:
        ap.error("need three positive --dims, --batch >= 2, --seq >= 1, --clips >= 2, --epochs >= 1")

    try:
        torch.set_num_interop_threads(a.threads)
    except RuntimeError:
        pass
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    device = torch.device(a.device)
    data = Data(a.clips, a.seq, dims, a.seed).to(device)
    model = build_model(a.model, dims).to(device)
    trainer = Trainer(model, a.variant, seed=a.seed)
    if trainer.cnet is not None:
        trainer.cnet.to(device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    first = batches_of(a.clips, a.batch, a.seed)
    for w in range(a.warmup):
        trainer.step(*data.batch(first[w % len(first)]))
    sync()

    times, cpu, steps, samples = [], [], 0, 0
    for e in range(a.epochs):
        order = first if e == 0 else batches_of(a.clips, a.batch, a.seed + e)
        t0, c0 = time.perf_counter(), time.process_time()
        for idx in order:
            trainer.step(*data.batch(idx))
        sync()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        steps += len(order)
        samples += sum(len(c) for c in order)

    total = sum(times)
    out = {
        "framework": "pytorch-eager",
        "device": a.device,
        "model": a.model,
        "variant": a.variant,
        "batch": a.batch,
        "threads": a.threads,
        "epochs": a.epochs,
        "warmup": a.warmup,
        "steps": steps // a.epochs,
        "seconds_per_epoch": total / a.epochs,
        "cpu_seconds_per_epoch": sum(cpu) / a.epochs,
        "epoch_seconds": times,
        "samples_per_second": samples / total,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "shapes": {
            "clips": a.clips,
            "seq": a.seq,
            "dims": {"text": dims[0], "audio": dims[1], "vision": dims[2]},
            "mean_length": float(data.lengths.float().mean()),
            "max_length": int(data.lengths.max()),
            "rep_dims": {"unimodal": model.rep_dims[0], "fused": model.rep_dims[1]},
            "model_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "cnet_params": (sum(p.numel() for p in trainer.cnet.parameters())
                            if trainer.cnet is not None else 0),
        },
    }
    if a.json:
        print(json.dumps(out))
    else:
        print(f"{a.model}/{a.variant} torch {torch.__version__}: batch {a.batch}, {a.threads} thread(s), "
              f"{out['steps']} steps/epoch, {out['seconds_per_epoch']:.3f} s/epoch, "
              f"{out['samples_per_second']:.1f} samples/s (seq {a.seq}, dims {dims}, "
              f"{a.clips} clips)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
