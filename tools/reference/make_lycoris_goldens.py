#!/work/refvenv/bin/python
"""LyCORIS fixtures and goldens: small random LoHa, LoKr, LoCon-with-lora_mid, full-diff and DoRA files in the
kohya/LyCORIS layout, for the tiny SD 1.x and SDXL models, merged the way AUTOMATIC1111's built-in Lora extension
(v1.10) merges them, and what the pipelines make with the merged weights.

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline, after
make_pipeline_goldens.py and make_sdxl_goldens.py (it reads their model folders and changes nothing in them):

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_lycoris_goldens.py

It takes under a minute on an idle two-core machine. Every value is drawn from torch.Generators with fixed seeds,
and every file goes through safetensors_io.py (header in a fixed order), so every run writes the same bytes.
Versions used (requirements-pip.txt): torch 2.4.1 (CPU), diffusers 0.30.3, transformers 4.40.2. All computation
is float32 on the CPU. The pipelines, the module naming, the case layout and the helpers (build_sd1, build_sdxl,
run, ldm_name, kohya_key, select) are make_lora_goldens.py's, imported from it (see its docstring for the
models: sd1 32x32 images, 16x16 latents; sdxl 64x64 images, 32x32 latents; EulerDiscreteScheduler).

Why not diffusers: diffusers 0.30.3 cannot load any of these formats (LoHa, LoKr, lora_mid, diff, dora_scale),
so the reference is AUTOMATIC1111's merge arithmetic, restated below and written anew in this script (merge()
and LyMod.delta(); no AUTOMATIC1111 code is copied), applied to a fresh copy of the pipeline's weights, after
which the unchanged diffusers pipeline runs.

Semantics (AUTOMATIC1111 stable-diffusion-webui v1.10, extensions-builtin/Lora/: network.py, network_lora.py,
network_hada.py, network_lokr.py, network_full.py, lyco_helpers.py, networks.py)
------------------------------------------------------------------------------------------------------------
A module on a weight W ([out, in] Linear, [out, in, kh, kw] Conv2d) has an unscaled delta D in W's shape (below),
dim (the rank A1111 takes from the file, or unknown) and alpha (the file's 0-dim ".alpha", or none).
scale = alpha / dim when both are known, else 1 (NetworkModule.calc_scale). The multiplier m is the network's te
multiplier for text-encoder modules and its unet multiplier for the rest. networks.network_apply_weights then
does W <- W + updown for each network in prompt order, each computed from the weight as the previous networks
left it (it matters for DoRA only), where (NetworkModule.finalize_updown):
    updown = (D * scale) * m                               no dora_scale
    updown = (M * (dora_scale / ||M||_col) - W) * m,       with dora_scale, M = W + D * scale
and bias <- bias + diff_b * m for full-diff modules that have diff_b (ex_bias: multiplier, no scale).
  DoRA order: scale goes INSIDE the decomposition and the multiplier outside. That is A1111 PR #16151
  ("Possible fix of wrong scale in weight decomposition", KohakuBlueleaf, merged into dev 2024-07-05, so in
  v1.10.0 of 2024-07-27): "correct formula: org_weight + scale * (wd(W + alpha/dim * BA) - org_weight)" where
  its "scale" is the multiplier; v1.9 (PR #15160) had applied alpha/dim and the multiplier both after wd().
  ||M||_col is the norm of each INPUT column: M.transpose(0, 1).reshape(in, -1).norm(dim=1), shaped [1, in] /
  [1, in, 1, 1] (LyCORIS's default layout, wd_on_output=False, dora_scale [1, in] / [1, in, 1, 1]); no epsilon.
D per kind (cp(t, a, b)[p, q, k, l] = sum_{i,j} t[i, j, k, l] a[i, p] b[j, q]: lyco_helpers.make_weight_cp):
  lora      lora_up [out, r] / [out, r, 1, 1], lora_down [r, in] / [r, in, kh, kw]:
            D = up.flatten(1) @ down.flatten(1) reshaped to W; dim = r.
  lora_mid  lora_up [out, r, 1, 1], lora_down [r, in, 1, 1], lora_mid [r, r, kh, kw] (LyCORIS LoCon with
            use_tucker on kh x kw != 1x1 convs): D[i, j, k, l] = sum_{n,m} mid[n, m, k, l] up[i, n] down[m, j];
            dim = r (lora_down.shape[0]).
  loha      hada_w1_a [out, r], hada_w1_b [r, in * kh * kw] (a 2-D tensor also for convs: LyCORIS LohaModule
            without tucker builds w_shape (out, in * kh * kw)), same for w2:
            D = (w1_a @ w1_b) * (w2_a @ w2_b) (elementwise) reshaped to W; dim = hada_w1_b.shape[0].
  loha_cp   with hada_t1 / hada_t2 [r, r, kh, kw] (LyCORIS use_tucker, kh x kw != 1x1): hada_w1_a [r, out],
            hada_w1_b [r, in], same for w2: D = cp(t1, w1_a, w1_b) * cp(t2, w2_a, w2_b); dim = hada_w1_b.shape[0].
  lokr      w1 = lokr_w1 [a, c], or lokr_w1_a [a, r] @ lokr_w1_b [r, c]; w2 = lokr_w2 [b, d], or lokr_w2_a [b, r]
            @ lokr_w2_b [r, d] (for a conv without tucker lokr_w2_b is [r, d * kh * kw]), or (lokr_cp)
            cp(lokr_t2 [r, r, kh, kw], lokr_w2_a [r, b], lokr_w2_b [r, d]). If w2 is 4-D, w1 gets two trailing
            unit dims. D = torch.kron(w1, w2) reshaped to W (out = a * b, in = c * d).
            dim = lokr_w2_b.shape[0] if present, else lokr_w1_b.shape[0] if present, else unknown (scale 1 whatever
            alpha says: network_lokr.py sets dim from w1_b, then overwrites it from w2_b when that exists).
  full      diff [W's shape], diff_b [out] where W's layer has a bias: D = diff; no dim, scale 1 (LyCORIS writes
            no alpha for it).
  dora      lora + dora_scale (LyCORIS weight_decompose): the lora delta, then the decomposition above.

1. Files: tests/golden/data/lora/
--------------------------------
Keys are kohya / LyCORIS (lycoris.kohya) names: <prefix><module path with "." -> "_">.<tensor>, prefix lora_unet_,
lora_te_ (SD 1.x), lora_te1_ / lora_te2_ (SDXL); SD 1.x UNet in diffusers naming, SDXL UNet in LDM/sgm naming
(make_lora_goldens.ldm_name). <key>.alpha is a 0-dim tensor in the file dtype (LyCORIS's registered buffer) on
every module except full ones. Metadata: ss_network_module "lycoris.kohya", ss_network_dim, ss_network_alpha,
ss_network_args (JSON: algo, conv_dim, conv_alpha, use_tucker, ...), ss_base_model_version, ss_output_name.
Values: one torch.Generator per file (seeded with the file's seed), modules in named_modules() order (unet, then
text encoders), tensors drawn in the order listed per kind, each rounded to the file dtype at once. Sizes are
chosen so that each delta element has a standard deviation of about GAIN / sqrt(in * kh * kw) before scale
(LoHa: each factor product sqrt(GAIN) * (in * kh * kw)^(-1/4)), as make_lora_goldens' LoRA files; GAIN per
file in FILES (set so that each case moves its image by 3 to 12 levels of 255 on average).
  (For each file the script prints every kind of key with one example and its shape.)
  sd1_loha        F16, LoHa rank 4, alpha 2 (scale 0.5): to_q, to_k, to_v, to_out.0 of attn1 and attn2 in the
                  first transformer of each attention stack (down_blocks.0/1, mid, up_blocks.1/2 attentions.0),
                  the resnet 3x3 convs of SD1_LOHA_CONVS (hada_w1_b [4, in * 9]), text encoder layer 0
                  self_attn q/k/v/out_proj and layer 1 mlp fc1/fc2.
  sd1_loha_cp     F32, LoHa with use_tucker, rank 4, alpha 1 (scale 0.25): every resnet conv1/conv2 of
                  down_blocks.0/1, mid_block and up_blocks.2.resnets.0, down_blocks.0.downsamplers.0.conv (stride 2)
                  and up_blocks.0.upsamplers.0.conv with hada_t1/hada_t2 [4, 4, 3, 3]; plain LoHa (tucker does
                  not apply) on down_blocks.1.resnets.0.conv_shortcut (1x1: hada_w1_b [4, 16]) and on
                  attn1.to_v / attn2.to_v of down_blocks.0.attentions.0.
  sd1_lokr        F16, LoKr rank 2, alpha 1, factor -1 (LyCORIS factorization: 16 = 4 x 4, 32 = 4 x 8,
                  64 = 8 x 8, 128 = 8 x 16): on attn1/attn2 to_q, to_k, to_v, to_out.0 and ff.net.0.proj of
                  down_blocks.0/1.attentions.0 and mid_block; text encoder layers 0 and 1 self_attn q/k/v/out_proj
                  and mlp fc1 / fc2 with decompose_both. LyCORIS's rules pick per module: w2 decomposed when
                  rank < max(b, d) / 2 (dim 2, scale 0.5), else lokr_w2 full; w1 decomposed (decompose_both, text
                  encoder) when rank < max(a, c) / 2. Modules with both w1 and w2 full (every 16x16 Linear) store
                  alpha 2 (LyCORIS sets alpha = lora_dim there) and merge with scale 1.
  sd1_lokr_cp     BF16, LoKr with use_tucker, rank 2, alpha 1, factor 4: lokr_w1 [4, 4] full; lokr_t2 [2, 2, 3, 3],
                  lokr_w2_a [2, b], lokr_w2_b [2, d] on 3x3 convs whose w2 is large enough (scale 0.5), lokr_w2
                  [4, 4, 3, 3] full on the 16x16 3x3 convs (both full: alpha 2 stored, scale 1), and
                  down_blocks.1.resnets.0.conv_shortcut (1x1, no tucker: lokr_w2_a [8, 2], lokr_w2_b [2, 4]).
  sd1_locon_mid   F16, LyCORIS LoCon with use_tucker: lora_down [4, in, 1, 1], lora_mid [4, 4, 3, 3], lora_up
                  [out, 4, 1, 1] on the 3x3 convs of SD1_MID_CONVS (conv_dim 4, conv_alpha 2: scale 0.5, including
                  down_blocks.0.downsamplers.0.conv, stride 2); plain lora on down_blocks.1.resnets.0.conv_shortcut
                  (1x1, conv rank) and on four attention Linears (rank 4, alpha 4: scale 1).
  sd1_full        F32, LyCORIS full (diff, plus diff_b where the layer has a bias), no alpha: SD1_FULL_MODULES,
                  five layers (a bias-free Linear, a Linear with bias, a 3x3 conv, a 1x1 conv, a text encoder
                  Linear).
  sd1_dora        F16, LoRA + dora_scale (LyCORIS dora_wd, wd_on_output False): rank 4, alpha 2 on the attention
                  Linears of down_blocks.0.attentions.0, mid_block and up_blocks.2.attentions.1, proj_in (1x1)
                  of down_blocks.0.attentions.0, resnet 3x3 convs down_blocks.0.resnets.0.conv1 and
                  up_blocks.1.resnets.1.conv2 (lora_down [4, in, 3, 3]), text encoder layer 0 self_attn;
                  dora_scale = (input-column norms of the base weight) * exp(DORA_SPREAD * randn), [1, in] /
                  [1, in, 1, 1].
  sdxl_loha       F16, LoHa rank 4, alpha 2 on the tiny SDXL UNet (sgm naming): attention Linears of
                  SDXL_LOHA_ATTN, resnet convs of SDXL_LOHA_CONVS; lora_te1_ and lora_te2_ on every self_attn
                  q/k/v/out_proj and mlp fc1/fc2 of both text encoders (all four projections, as A1111 needs for
                  OpenCLIP's fused in_proj on text encoder 2).

2. Goldens: tests/golden/data/lycoris_cases.safetensors
-------------------------------------------------------
Per case (CASES): the base weights, merged with the case's files in order by merge() at its multipliers, then
pipe(prompt, negative_prompt, height, width, num_inference_steps=12, guidance_scale=7,
generator=torch.Generator("cpu").manual_seed(seed), output_type="latent") (make_lora_goldens.run), after which the
base weights are restored (checked bit for bit).
    <case>.latent   float32 [1, 4, H/2, W/2]
    <case>.image    uint8 [1, 3, H, W]   (as make_lora_goldens)
    metadata <case>.params (JSON): model, loras ([{file, unet, te}] in merge order), scheduler ("euler"), steps,
        cfg, seed, prompt, negative, width, height, mean_abs_image_diff_vs_no_lora.
Cases:
    sd1_base          sd1, no LoRA (control)          sdxl_base        sdxl, no LoRA (control)
    sd1_loha          sd1_loha 1.0                    sdxl_loha        sdxl_loha 1.0
    sd1_loha_split    sd1_loha unet 0.6, te 0.4       sd1_lokr_cp      sd1_lokr_cp 1.0
    sd1_loha_cp       sd1_loha_cp 1.0                 sd1_locon_mid    sd1_locon_mid 1.0
    sd1_lokr          sd1_lokr 1.0                    sd1_full         sd1_full 1.0
    sd1_lokr_negative sd1_lokr -0.5                   sd1_dora         sd1_dora 1.0
    sd1_stacked       sd1_loha 0.7, then sd1_dora 0.5 (the DoRA modules decompose the LoHa-merged weight)
Fused weights (FUSED: label -> (file, unet multiplier, te multiplier); FUSED_PARAMS per file):
    fused.<label>.<component>.<module>.<weight|bias>   float32, the merged parameter
    base.<model>.<component>.<module>.<weight|bias>    float32, the base model's
    metadata fused.<label>.params: {file, model, unet, te, params: [<component>.<module>.<weight|bias>, ...]}
  labels: each file stem at 1.0, sd1_loha_u06_t04, sd1_lokr_neg05.
Stacked fused weights (the files merged one after the other, as sd1_stacked):
    fused_stack.<label>.<param>, metadata fused_stack.<label>.params: {model, loras: [{file, unet, te}], params}
Metadata also: script, git, torch, diffusers, transformers, cases (names in order), scheduler_config.sd1 / .sdxl,
files.<stem> (JSON: format, dtype, modules, keys, bytes, sha256, kinds {kind: modules}, default_scale (the A1111
scale of most modules) and scales {<component>.<module>: scale} for the others).

Checks (asserted on every run)
------------------------------
- The conventions of delta(): lora_mid's D equals running lora_down (1x1), lora_mid (the layer's kernel, stride,
  padding) and lora_up (1x1) as convolutions (LyCORIS's unmerged forward); cp() and the LoKr Kronecker layout
  match element-wise sums written out; a DoRA module alone at multiplier 1 leaves every input column of W with
  norm dora_scale.
- The DoRA fused weights differ clearly from v1.9's order (check_dora_order), and the stacked ones from the sum of
  the two files merged separately (the DoRA modules see the LoHa-merged weight).
- Every module of every file changes its weight, nothing else changes; reading each file back gives the drawn
  values.
- Each case's image differs from the same run without its files by more than MIN_MEAN_DIFF levels of 255 on
  average, its latent is finite, saturation (pixels at 0 or 255) rises by under MAX_SAT_RISE; all latents
  pairwise different.
"""
import collections
import json
import math
import os
import re
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_lora_goldens as mlg  # noqa: E402  (pipelines, run, naming helpers; importing it runs nothing)
import safetensors_io  # noqa: E402
import make_model_goldens as mg  # noqa: E402  (git_hash)
import make_sdxl_goldens as sg  # noqa: E402  (assert_all_differ, check_words)

import diffusers  # noqa: E402
import transformers  # noqa: E402

ROOT, OUT, LORA_DIR = mlg.ROOT, mlg.OUT, mlg.LORA_DIR
GOLDEN = os.path.join(OUT, "lycoris_cases.safetensors")
SCRIPT = "tools/reference/make_lycoris_goldens.py"
SIZES, STEPS, CFG = mlg.SIZES, mlg.STEPS, mlg.CFG
MIN_MEAN_DIFF = 2.0  # levels of 255
MAX_SAT_RISE = 0.05  # fraction of pixels
DORA_SPREAD = 0.25

ATTN_LINEAR_RE = re.compile(r"attentions\.0\.transformer_blocks\.\d+\.attn[12]\.(to_q|to_k|to_v|to_out\.0)$")
TE_ATTN_RE = re.compile(r"^text_model\.encoder\.layers\.\d+\.self_attn\.(q|k|v|out)_proj$")

SD1_LOHA_CONVS = ("down_blocks.0.resnets.0.conv1", "down_blocks.0.resnets.1.conv2", "down_blocks.1.resnets.0.conv1",
                  "mid_block.resnets.0.conv1", "up_blocks.1.resnets.2.conv2", "up_blocks.2.resnets.0.conv1")
SD1_MID_CONVS = ("down_blocks.0.resnets.0.conv1", "down_blocks.0.resnets.0.conv2", "down_blocks.0.downsamplers.0.conv",
                 "down_blocks.1.resnets.1.conv1", "mid_block.resnets.1.conv2", "up_blocks.1.resnets.0.conv1",
                 "up_blocks.2.resnets.2.conv2")
SD1_MID_LINEARS = ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
                   "down_blocks.1.attentions.1.transformer_blocks.0.attn2.to_v",
                   "mid_block.attentions.0.transformer_blocks.0.ff.net.2",
                   "up_blocks.2.attentions.0.transformer_blocks.0.attn1.to_out.0")
SD1_FULL_MODULES = (("unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"),
                    ("unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0"),
                    ("unet", "down_blocks.0.attentions.0.proj_in"),
                    ("unet", "down_blocks.0.resnets.0.conv2"),
                    ("text_encoder", "text_model.encoder.layers.0.mlp.fc2"))
SD1_DORA_ATTN = ("down_blocks.0.attentions.0.", "mid_block.attentions.0.", "up_blocks.2.attentions.1.")
SD1_DORA_CONVS = ("down_blocks.0.attentions.0.proj_in", "down_blocks.0.resnets.0.conv1", "up_blocks.1.resnets.1.conv2")
SDXL_LOHA_ATTN = ("down_blocks.1.attentions.0.", "down_blocks.2.attentions.0.", "mid_block.attentions.0.",
                  "up_blocks.0.attentions.0.", "up_blocks.1.attentions.2.")
SDXL_LOHA_CONVS = ("down_blocks.0.resnets.0.conv1", "down_blocks.1.resnets.0.conv1", "down_blocks.1.resnets.0.conv2",
                   "mid_block.resnets.0.conv1", "up_blocks.0.resnets.1.conv2", "up_blocks.1.resnets.0.conv1",
                   "up_blocks.2.resnets.1.conv2")

# Each file: model, algo (ss_network_args), dtype, seed, GAIN, rank, alpha, conv rank/alpha, extra args.
FILES = {
    "sd1_loha": dict(model="sd1", algo="loha", dtype=torch.float16, seed=1201, gain=1.6, rank=4, alpha=2.0),
    "sd1_loha_cp": dict(model="sd1", algo="loha", dtype=torch.float32, seed=1202, gain=2.0, rank=4, alpha=1.0,
                        tucker=True),
    "sd1_lokr": dict(model="sd1", algo="lokr", dtype=torch.float16, seed=1203, gain=1.0, rank=2, alpha=1.0,
                     factor=-1),
    "sd1_lokr_cp": dict(model="sd1", algo="lokr", dtype=torch.bfloat16, seed=1204, gain=1.6, rank=2, alpha=1.0,
                        factor=4, tucker=True),
    "sd1_locon_mid": dict(model="sd1", algo="locon", dtype=torch.float16, seed=1205, gain=2.4, rank=4, alpha=4.0,
                          conv_rank=4, conv_alpha=2.0, tucker=True),
    "sd1_full": dict(model="sd1", algo="full", dtype=torch.float32, seed=1206, gain=1.6, rank=None, alpha=None),
    "sd1_dora": dict(model="sd1", algo="lora", dtype=torch.float16, seed=1207, gain=1.0, rank=4, alpha=2.0,
                     dora=True),
    "sdxl_loha": dict(model="sdxl", algo="loha", dtype=torch.float16, seed=1208, gain=0.12, rank=4, alpha=2.0),
}

# Representative parameters stored fused (component.module.param).
FUSED_PARAMS = {
    "sd1_loha": ["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
                 "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                 "unet.down_blocks.0.resnets.0.conv1.weight",
                 "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.weight",
                 "text_encoder.text_model.encoder.layers.1.mlp.fc1.weight"],
    "sd1_loha_cp": ["unet.down_blocks.0.resnets.0.conv1.weight",
                    "unet.down_blocks.0.downsamplers.0.conv.weight",
                    "unet.down_blocks.1.resnets.0.conv1.weight",
                    "unet.down_blocks.1.resnets.0.conv_shortcut.weight",
                    "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_v.weight"],
    "sd1_lokr": ["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
                 "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                 "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight",
                 "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.weight",
                 "text_encoder.text_model.encoder.layers.0.mlp.fc1.weight"],
    "sd1_lokr_cp": ["unet.down_blocks.0.resnets.0.conv1.weight",
                    "unet.down_blocks.1.resnets.0.conv1.weight",
                    "unet.down_blocks.1.resnets.0.conv_shortcut.weight",
                    "unet.up_blocks.2.resnets.1.conv1.weight"],
    "sd1_locon_mid": ["unet.down_blocks.0.resnets.0.conv1.weight",
                      "unet.down_blocks.0.downsamplers.0.conv.weight",
                      "unet.down_blocks.1.resnets.0.conv_shortcut.weight",
                      "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"],
    "sd1_full": ["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
                 "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0.weight",
                 "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0.bias",
                 "unet.down_blocks.0.resnets.0.conv2.weight",
                 "unet.down_blocks.0.resnets.0.conv2.bias",
                 "text_encoder.text_model.encoder.layers.0.mlp.fc2.bias"],
    "sd1_dora": ["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
                 "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                 "unet.down_blocks.0.attentions.0.proj_in.weight",
                 "unet.down_blocks.0.resnets.0.conv1.weight",
                 "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.weight"],
    "sdxl_loha": ["unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight",
                  "unet.down_blocks.1.resnets.0.conv1.weight",
                  "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.weight",
                  "text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.weight",
                  "text_encoder_2.text_model.encoder.layers.1.mlp.fc1.weight"],
}
FUSED = {stem: (stem, 1.0, 1.0) for stem in FILES}
FUSED["sd1_loha_u06_t04"] = ("sd1_loha", 0.6, 0.4)
FUSED["sd1_lokr_neg05"] = ("sd1_lokr", -0.5, -0.5)
FUSED_STACK = {
    "sd1_stacked": dict(loras=[("sd1_loha", 0.7, 0.7), ("sd1_dora", 0.5, 0.5)],
                        params=["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
                                "unet.down_blocks.0.resnets.0.conv1.weight",
                                "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.weight"]),
}

# Cases: name, model, [(file, unet multiplier, text encoder multiplier)], seed, prompt, negative.
CASES = [
    ("sd1_base", "sd1", [], 401, "a red circle on a blue background", ""),
    ("sd1_loha", "sd1", [("sd1_loha", 1.0, 1.0)], 402, "a small green triangle on the left", ""),
    ("sd1_loha_split", "sd1", [("sd1_loha", 0.6, 0.4)], 403, "a large red square on the right", "blue"),
    ("sd1_loha_cp", "sd1", [("sd1_loha_cp", 1.0, 1.0)], 404, "photo of a cat on the left", "dog"),
    ("sd1_lokr", "sd1", [("sd1_lokr", 1.0, 1.0)], 405, "a blue circle on the top, masterpiece", ""),
    ("sd1_lokr_negative", "sd1", [("sd1_lokr", -0.5, -0.5)], 406, "a green square on the bottom", "red"),
    ("sd1_lokr_cp", "sd1", [("sd1_lokr_cp", 1.0, 1.0)], 407, "a small blue triangle on the centre", ""),
    ("sd1_locon_mid", "sd1", [("sd1_locon_mid", 1.0, 1.0)], 408, "photo of a dog on a green background", ""),
    ("sd1_full", "sd1", [("sd1_full", 1.0, 1.0)], 409, "a large green circle on the right", "small"),
    ("sd1_dora", "sd1", [("sd1_dora", 1.0, 1.0)], 410, "a red triangle on the top", "blue square"),
    ("sd1_stacked", "sd1", [("sd1_loha", 0.7, 0.7), ("sd1_dora", 0.5, 0.5)], 411,
     "a blue square on the left, masterpiece", ""),
    ("sdxl_base", "sdxl", [], 412, "a red triangle on a green background", "a blue circle"),
    ("sdxl_loha", "sdxl", [("sdxl_loha", 1.0, 1.0)], 413, "a large blue square on the bottom", "photo of a dog"),
]


# ---------------------------------------------------------------------------------------------------------
# The A1111 arithmetic

def cp(t, a, b):
    """lyco_helpers.make_weight_cp: out[p, q, k, l] = sum_{i,j} t[i, j, k, l] a[i, p] b[j, q]."""
    return torch.einsum("ijkl,ip,jq->pqkl", t, a, b)


def kron_delta(w1, w2, shape):
    if w2.dim() == 4:
        w1 = w1[:, :, None, None]
    return torch.kron(w1, w2.contiguous()).reshape(shape)


class LyMod:
    """One module of a file: component, module name, kind, the stored tensors (suffix -> float32 tensor holding
    the file dtype's values), alpha (None: no alpha key), W's shape."""

    def __init__(self, comp, name, module, kind, tensors, alpha):
        self.comp, self.name, self.kind, self.t, self.alpha = comp, name, kind, tensors, alpha
        self.shape = tuple(module.weight.shape)
        self.has_bias = module.bias is not None
        self.stride = getattr(module, "stride", None)
        self.padding = getattr(module, "padding", None)

    @property
    def dim(self):
        t = self.t
        if "lora_down.weight" in t:
            return t["lora_down.weight"].shape[0]
        if "hada_w1_b" in t:
            return t["hada_w1_b"].shape[0]
        dim = None
        if "lokr_w1_b" in t:
            dim = t["lokr_w1_b"].shape[0]
        if "lokr_w2_b" in t:
            dim = t["lokr_w2_b"].shape[0]
        return dim

    @property
    def scale(self):
        return self.alpha / self.dim if self.alpha is not None and self.dim is not None else 1.0

    def delta(self):
        """The unscaled D in W's shape (see the docstring)."""
        t, shape = self.t, self.shape
        if "lora_mid.weight" in t:
            up, down = t["lora_up.weight"].flatten(1), t["lora_down.weight"].flatten(1)
            return torch.einsum("nmkl,in,mj->ijkl", t["lora_mid.weight"], up, down)
        if "lora_down.weight" in t:
            return (t["lora_up.weight"].flatten(1) @ t["lora_down.weight"].flatten(1)).reshape(shape)
        if "hada_t1" in t:
            return cp(t["hada_t1"], t["hada_w1_a"], t["hada_w1_b"]) * cp(t["hada_t2"], t["hada_w2_a"], t["hada_w2_b"])
        if "hada_w1_a" in t:
            return ((t["hada_w1_a"] @ t["hada_w1_b"]) * (t["hada_w2_a"] @ t["hada_w2_b"])).reshape(shape)
        if "lokr_w1" in t or "lokr_w1_a" in t:
            w1 = t["lokr_w1"] if "lokr_w1" in t else t["lokr_w1_a"] @ t["lokr_w1_b"]
            if "lokr_w2" in t:
                w2 = t["lokr_w2"]
            elif "lokr_t2" in t:
                w2 = cp(t["lokr_t2"], t["lokr_w2_a"], t["lokr_w2_b"])
            else:
                w2 = t["lokr_w2_a"] @ t["lokr_w2_b"]
            return kron_delta(w1, w2, shape)
        if "diff" in t:
            return t["diff"].reshape(shape)
        raise ValueError(self.name)


def merge(mods, weights, mult_unet, mult_te):
    """Merges one file's modules into `weights` ({comp: state dict of float32 tensors}, changed in place) at the
    multipliers, as A1111's network_apply_weights / finalize_updown (see the docstring)."""
    for mod in mods:
        sd = weights[mod.comp]
        m = mult_te if mod.comp.startswith("text_encoder") else mult_unet
        w = sd[mod.name + ".weight"]
        updown = mod.delta() * mod.scale
        if "dora_scale" in mod.t:
            merged = w + updown
            n_in = merged.shape[1]
            norm = merged.transpose(0, 1).reshape(n_in, -1).norm(dim=1)
            norm = norm.reshape(1, n_in, *[1] * (merged.dim() - 2))
            updown = merged * (mod.t["dora_scale"] / norm) - w
        updown = updown * m
        sd[mod.name + ".weight"] = w + updown
        if "diff_b" in mod.t:
            b = sd[mod.name + ".bias"]
            sd[mod.name + ".bias"] = b + mod.t["diff_b"] * m


def merged_weights(base, files, mods):
    weights = {c: dict(sd) for c, sd in base.items()}
    for stem, u, t in files:
        merge(mods[stem], weights, u, t)
    return weights


# ---------------------------------------------------------------------------------------------------------
# Drawing the files

def factorization(dim, factor):
    """LyCORIS's factorization(dim, factor): (m, n), m <= n, m * n = dim; factor > 0 dividing dim: (factor,
    dim / factor) sorted; else m the largest divisor <= sqrt(dim) (and <= factor when factor > 0)."""
    if factor > 0 and dim % factor == 0:
        return tuple(sorted((factor, dim // factor)))
    limit = dim if factor < 0 else factor
    m = max(d for d in range(1, math.isqrt(dim) + 1) if dim % d == 0 and d <= limit)
    return m, dim // m


class Drawer:
    def __init__(self, spec):
        self.gen = torch.Generator().manual_seed(spec["seed"])
        self.dtype, self.gain = spec["dtype"], spec["gain"]

    def randn(self, shape, std):
        return (torch.randn(shape, generator=self.gen) * std).to(self.dtype).float()


def fan_in(w):
    return w.shape[1] * (w.shape[2] * w.shape[3] if w.dim() == 4 else 1)


def draw_lora(d, module, rank, mid=False):
    w = module.weight
    out_c, in_c = w.shape[:2]
    t = {}
    if mid:
        t["lora_down.weight"] = d.randn((rank, in_c, 1, 1), 1 / in_c ** 0.5)
        t["lora_mid.weight"] = d.randn((rank, rank, *w.shape[2:]), 1 / (rank * w.shape[2] * w.shape[3]) ** 0.5)
        t["lora_up.weight"] = d.randn((out_c, rank, 1, 1), d.gain / rank ** 0.5)
    else:
        t["lora_down.weight"] = d.randn((rank, *w.shape[1:]), 1 / fan_in(w) ** 0.5)
        t["lora_up.weight"] = d.randn((out_c, rank) + ((1, 1) if w.dim() == 4 else ()), d.gain / rank ** 0.5)
    return t


def draw_loha(d, module, rank, tucker):
    w = module.weight
    out_c, in_c = w.shape[:2]
    s = d.gain ** 0.5 * fan_in(w) ** -0.25  # std of each factor product
    t = {}
    for i in (1, 2):
        if tucker:
            t[f"hada_t{i}"] = d.randn((rank, rank, *w.shape[2:]), 1 / rank)
            t[f"hada_w{i}_a"] = d.randn((rank, out_c), s)
            t[f"hada_w{i}_b"] = d.randn((rank, in_c), 1.0)
        else:
            t[f"hada_w{i}_a"] = d.randn((out_c, rank), s / rank ** 0.5)
            t[f"hada_w{i}_b"] = d.randn((rank, fan_in(w)), 1.0)
    return t


def draw_lokr(d, module, rank, factor, tucker, decompose_both):
    """LyCORIS LokrModule's shapes: out = a * b, in = c * d (factorization), w1 [a, c], w2 [b, d(, kh, kw)]."""
    w = module.weight
    out_c, in_c = w.shape[:2]
    conv = w.dim() == 4
    ksize = tuple(w.shape[2:]) if conv else ()
    a, b = factorization(out_c, factor)
    c, dd = factorization(in_c, factor)
    use_tucker = tucker and conv and ksize != (1, 1)
    f = d.gain / fan_in(w) ** 0.5
    t = {}
    if decompose_both and rank < max(a, c) / 2:
        t["lokr_w1_a"] = d.randn((a, rank), 1 / rank ** 0.5)
        t["lokr_w1_b"] = d.randn((rank, c), 1.0)
    else:
        t["lokr_w1"] = d.randn((a, c), 1.0)
    if rank < max(b, dd) / 2:
        if use_tucker:
            t["lokr_t2"] = d.randn((rank, rank, *ksize), 1 / rank)
            t["lokr_w2_a"] = d.randn((rank, b), f)
            t["lokr_w2_b"] = d.randn((rank, dd), 1.0)
        else:
            kk = ksize[0] * ksize[1] if conv else 1
            t["lokr_w2_a"] = d.randn((b, rank), f / rank ** 0.5)
            t["lokr_w2_b"] = d.randn((rank, dd * kk), 1.0)
    else:
        t["lokr_w2"] = d.randn((b, dd, *ksize), f)
    return t


def draw_full(d, module):
    w = module.weight
    t = {"diff": d.randn(tuple(w.shape), d.gain / fan_in(w) ** 0.5)}
    if module.bias is not None:
        t["diff_b"] = d.randn(tuple(module.bias.shape), d.gain * 0.1)
    return t


def dora_scale(d, module):
    w = module.weight.detach().float()
    n_in = w.shape[1]
    norm = w.transpose(0, 1).reshape(n_in, -1).norm(dim=1)
    s = norm * torch.exp(torch.randn(n_in, generator=d.gen) * DORA_SPREAD)
    return s.reshape(1, n_in, *[1] * (w.dim() - 2)).to(d.dtype).float()


def make_mods(stem, pipe):
    spec = FILES[stem]
    comps = mlg.components(pipe)
    unet = comps["unet"]
    d = Drawer(spec)
    rank, alpha = spec["rank"], spec["alpha"]
    mods = []
    def named(model, names):
        return [(n, m) for n, m in mlg.select(model, re.compile(".*")) if n in names]

    def te_layers(comp, layers, regex):
        return [(n, m) for n, m in mlg.select(comps[comp], regex) if int(n.split(".")[3]) in layers]

    te_all = re.compile(mlg.TE_RE.pattern)
    if stem == "sd1_loha":
        pairs = [(n, m) for n, m in mlg.select(unet, re.compile(".*"))
                 if (ATTN_LINEAR_RE.search(n) and not n.startswith("up_blocks.0")) or n in SD1_LOHA_CONVS]
        for n, m in pairs:
            mods.append(LyMod("unet", n, m, "loha", draw_loha(d, m, rank, False), alpha))
        te = te_layers("text_encoder", (0,), TE_ATTN_RE) + te_layers("text_encoder", (1,), re.compile(r"mlp\.fc[12]$"))
        for n, m in te:
            mods.append(LyMod("text_encoder", n, m, "loha", draw_loha(d, m, rank, False), alpha))
    elif stem == "sd1_loha_cp":
        keep = re.compile(r"^(down_blocks\.[01]\.resnets\.\d\.conv[12]|mid_block\.resnets\.\d\.conv[12]|"
                          r"up_blocks\.2\.resnets\.0\.conv[12]|down_blocks\.0\.downsamplers\.0\.conv|"
                          r"up_blocks\.0\.upsamplers\.0\.conv|down_blocks\.1\.resnets\.0\.conv_shortcut|"
                          r"down_blocks\.0\.attentions\.0\.transformer_blocks\.0\.attn[12]\.to_v)$")
        for n, m in mlg.select(unet, keep):
            tucker = isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)
            mods.append(LyMod("unet", n, m, "loha_cp" if tucker else "loha", draw_loha(d, m, rank, tucker), alpha))
    elif stem == "sd1_lokr":
        keep = re.compile(r"^(down_blocks\.[01]|mid_block)\.attentions\.0\.transformer_blocks\.0\."
                          r"(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ff\.net\.0\.proj)$")
        for n, m in mlg.select(unet, keep):
            mods.append(lokr_mod("unet", n, m, d, spec, decompose_both=False))
        for n, m in te_layers("text_encoder", (0, 1), te_all):
            mods.append(lokr_mod("text_encoder", n, m, d, spec, decompose_both=True))
    elif stem == "sd1_lokr_cp":
        keep = re.compile(r"^(down_blocks\.[01]\.resnets\.0\.conv[12]|mid_block\.resnets\.0\.conv1|"
                          r"up_blocks\.[12]\.resnets\.1\.conv[12]|down_blocks\.1\.resnets\.0\.conv_shortcut)$")
        for n, m in mlg.select(unet, keep):
            mods.append(lokr_mod("unet", n, m, d, spec, decompose_both=False))
    elif stem == "sd1_locon_mid":
        for n, m in mlg.select(unet, re.compile(".*")):
            if n in SD1_MID_CONVS:
                mods.append(LyMod("unet", n, m, "lora_mid", draw_lora(d, m, spec["conv_rank"], mid=True),
                                  spec["conv_alpha"]))
            elif n == "down_blocks.1.resnets.0.conv_shortcut":
                mods.append(LyMod("unet", n, m, "lora", draw_lora(d, m, spec["conv_rank"]), spec["conv_alpha"]))
            elif n in SD1_MID_LINEARS:
                mods.append(LyMod("unet", n, m, "lora", draw_lora(d, m, rank), alpha))
    elif stem == "sd1_full":
        for comp in ("unet", "text_encoder"):
            names = [n for c, n in SD1_FULL_MODULES if c == comp]
            for n, m in named(comps[comp], names):
                mods.append(LyMod(comp, n, m, "full", draw_full(d, m), None))
    elif stem == "sd1_dora":
        attn = re.compile(r"transformer_blocks\.0\.attn[12]\.(to_q|to_k|to_v|to_out\.0)$")
        for n, m in mlg.select(unet, re.compile(".*")):
            if (attn.search(n) and n.startswith(SD1_DORA_ATTN)) or n in SD1_DORA_CONVS:
                t = draw_lora(d, m, rank)
                t["dora_scale"] = dora_scale(d, m)
                mods.append(LyMod("unet", n, m, "dora", t, alpha))
        for n, m in te_layers("text_encoder", (0,), TE_ATTN_RE):
            t = draw_lora(d, m, rank)
            t["dora_scale"] = dora_scale(d, m)
            mods.append(LyMod("text_encoder", n, m, "dora", t, alpha))
    elif stem == "sdxl_loha":
        attn = re.compile(r"transformer_blocks\.\d+\.attn[12]\.(to_q|to_k|to_v|to_out\.0)$")
        for n, m in mlg.select(unet, re.compile(".*")):
            if (attn.search(n) and n.startswith(SDXL_LOHA_ATTN)) or n in SDXL_LOHA_CONVS:
                mods.append(LyMod("unet", n, m, "loha", draw_loha(d, m, rank, False), alpha))
        for comp in ("text_encoder", "text_encoder_2"):
            for n, m in mlg.select(comps[comp], te_all):
                mods.append(LyMod(comp, n, m, "loha", draw_loha(d, m, rank, False), alpha))
    else:
        raise ValueError(stem)
    return mods


def lokr_mod(comp, n, m, d, spec, decompose_both):
    rank = spec["rank"]
    t = draw_lokr(d, m, rank, spec["factor"], spec.get("tucker", False), decompose_both)
    full_both = "lokr_w1" in t and "lokr_w2" in t
    kind = "lokr_cp" if "lokr_t2" in t else "lokr"
    # LyCORIS: with both w1 and w2 full it sets alpha = lora_dim (and A1111 then has no dim: scale 1).
    return LyMod(comp, n, m, kind, t, float(rank) if full_both else spec["alpha"])


def file_key(mod, pipe, model):
    return mlg.kohya_key(mod, pipe.unet, model, ldm=(model == "sdxl"))


def write_file(stem, mods, pipe):
    spec = FILES[stem]
    model, dtype = spec["model"], spec["dtype"]
    sd = {}
    for mod in mods:
        key = file_key(mod, pipe, model)
        for suffix, v in mod.t.items():
            assert f"{key}.{suffix}" not in sd, key
            sd[f"{key}.{suffix}"] = v.to(dtype).contiguous()
        if mod.alpha is not None:
            sd[f"{key}.alpha"] = torch.tensor(mod.alpha, dtype=dtype)
    args = {"algo": spec["algo"]}
    if spec["rank"] is not None:
        args.update(conv_dim=str(spec.get("conv_rank", spec["rank"])),
                    conv_alpha=str(spec.get("conv_alpha", spec["alpha"])))
    if spec.get("tucker"):
        args["use_tucker"] = "True"
    if "factor" in spec:
        args["factor"] = str(spec["factor"])
    if spec.get("dora"):
        args["dora_wd"] = "True"
    if stem == "sd1_lokr":
        args["decompose_both"] = "True"  # (LyCORIS applies it where the shapes allow; here: text encoder only)
    meta = {"ss_network_module": "lycoris.kohya",
            "ss_network_dim": str(spec["rank"]) if spec["rank"] is not None else "None",
            "ss_network_alpha": str(spec["alpha"]) if spec["alpha"] is not None else "None",
            "ss_network_args": json.dumps(args, sort_keys=True),
            "ss_base_model_version": "sd_v1" if model == "sd1" else "sdxl_base_v1-0",
            "ss_output_name": stem}
    path = os.path.join(LORA_DIR, f"{stem}.safetensors")
    safetensors_io.save_file(sd, path, dict(sorted(meta.items())))
    # Read back: every tensor as drawn.
    back = read_back(path)
    assert set(back) == set(sd), stem
    for k, v in sd.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), (stem, k)
    return path, sd


def read_back(path):
    """name -> torch tensor in the stored dtype (safetensors_io.load_file widens BF16 to float32 and cannot take a
    0-dim BF16 tensor, which a BF16 LyCORIS file's alphas are)."""
    with open(path, "rb") as f:
        buf = f.read()
    header, start = safetensors_io._read_header(buf)
    dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = bytearray(buf[start + begin:start + end])
        out[name] = torch.frombuffer(raw, dtype=dtypes[info["dtype"]]).reshape(info["shape"]).clone()
    return out


# ---------------------------------------------------------------------------------------------------------
# Self-checks of the conventions

def check_conventions(all_mods, base):
    g = torch.Generator().manual_seed(7)
    F = torch.nn.functional
    done = collections.Counter()
    for stem, mods in all_mods.items():
        for mod in mods:
            t = mod.t
            D = mod.delta()
            assert D.shape == mod.shape and torch.isfinite(D).all(), (stem, mod.name)
            if mod.kind == "lora_mid" and done["lora_mid"] < 3:
                x = torch.randn((1, mod.shape[1], 9, 9), generator=g)
                y = F.conv2d(x, t["lora_down.weight"])
                y = F.conv2d(y, t["lora_mid.weight"], stride=mod.stride, padding=mod.padding)
                y = F.conv2d(y, t["lora_up.weight"])
                ref = F.conv2d(x, D, stride=mod.stride, padding=mod.padding)
                assert (y - ref).abs().max() <= 1e-5 * ref.abs().max(), (stem, mod.name)
                done["lora_mid"] += 1
            if mod.kind == "loha_cp" and done["loha_cp"] < 2:
                ref = torch.zeros(mod.shape)
                for w in (1, 2):
                    tt, a, b = t[f"hada_t{w}"], t[f"hada_w{w}_a"], t[f"hada_w{w}_b"]
                    f = torch.zeros(mod.shape)
                    for i in range(tt.shape[0]):
                        for j in range(tt.shape[1]):
                            f += tt[i, j][None, None] * (a[i][:, None] * b[j][None, :])[:, :, None, None]
                    ref = f if w == 1 else ref * f
                assert (D - ref).abs().max() <= 1e-5 * ref.abs().max(), (stem, mod.name)
                done["loha_cp"] += 1
            if mod.kind.startswith("lokr") and done[mod.kind] < 3:
                w1 = t["lokr_w1"] if "lokr_w1" in t else t["lokr_w1_a"] @ t["lokr_w1_b"]
                if "lokr_w2" in t:
                    w2 = t["lokr_w2"]
                elif "lokr_t2" in t:
                    w2 = torch.einsum("ijkl,ip,jq->pqkl", t["lokr_t2"], t["lokr_w2_a"], t["lokr_w2_b"])
                else:
                    w2 = t["lokr_w2_a"] @ t["lokr_w2_b"]
                b, dd = mod.shape[0] // w1.shape[0], mod.shape[1] // w1.shape[1]
                w2 = w2.reshape(b, dd, *mod.shape[2:])  # LyCORIS: w2_b [r, d * kh * kw] is [r, d, kh, kw]
                for i in range(w1.shape[0]):
                    for j in range(w1.shape[1]):
                        blk = D[i * b:(i + 1) * b, j * dd:(j + 1) * dd]
                        assert torch.allclose(blk, w1[i, j] * w2, rtol=1e-5, atol=1e-7), (stem, mod.name)
                done[mod.kind] += 1
            if mod.kind == "dora":
                w = {mod.comp: {mod.name + ".weight": base[mod.comp][mod.name + ".weight"]}}
                merge([mod], w, 1.0, 1.0)
                merged = w[mod.comp][mod.name + ".weight"]
                n_in = merged.shape[1]
                norms = merged.transpose(0, 1).reshape(n_in, -1).norm(dim=1)
                want = t["dora_scale"].reshape(-1)
                assert ((norms - want).abs() <= 1e-5 * want).all(), (stem, mod.name)
                done["dora"] += 1
    print("conventions checked:", dict(sorted(done.items())))


def check_dora_order(mods, base, tensors):
    """The DoRA goldens tell A1111 v1.10's order (alpha / dim inside the decomposition, multiplier outside) from
    v1.9's (both outside: W + m * scale * (wd(W + D) - W)): the stored fused weights differ from v1.9's clearly."""
    for mod in mods:
        key = f"{mod.comp}.{mod.name}.weight"
        if f"fused.sd1_dora.{key}" not in tensors:
            continue
        w = base[mod.comp][mod.name + ".weight"]
        merged = w + mod.delta()
        n_in = merged.shape[1]
        norm = merged.transpose(0, 1).reshape(n_in, -1).norm(dim=1).reshape(1, n_in, *[1] * (w.dim() - 2))
        v19 = w + (merged * (mod.t["dora_scale"] / norm) - w) * mod.scale * 1.0
        got = tensors[f"fused.sd1_dora.{key}"]
        rel = (got - v19).abs().mean().item() / (got - w).abs().mean().item()
        print(f"fused.sd1_dora.{key}: mean |v1.10 - v1.9 merge| / mean |v1.10 delta| = {rel:.3f}")
        assert rel > 0.05, key


# ---------------------------------------------------------------------------------------------------------

def apply_weights(pipe, weights):
    for comp, model in mlg.components(pipe).items():
        model.load_state_dict(weights[comp])


def check_changes(stem, mods, base, weights):
    """Every module's weight changed, and nothing else."""
    touched = set()
    for mod in mods:
        touched.add((mod.comp, mod.name + ".weight"))
        if "diff_b" in mod.t:
            touched.add((mod.comp, mod.name + ".bias"))
    for comp, sd in base.items():
        for k, v in sd.items():
            if (comp, k) in touched:
                assert not torch.equal(weights[comp][k], v), (stem, comp, k)
                assert torch.isfinite(weights[comp][k]).all(), (stem, comp, k)
            else:
                assert weights[comp][k] is v, (stem, comp, k)


def main():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    diffusers.utils.logging.disable_progress_bar()
    sg.check_words([dict(name=c[0], prompt=c[4], negative=c[5]) for c in CASES])
    os.makedirs(LORA_DIR, exist_ok=True)
    pipes = {"sd1": mlg.build_sd1(), "sdxl": mlg.build_sdxl()}
    bases = {m: mlg.snapshot(p) for m, (p, _) in pipes.items()}

    # 1. Files.
    mods, infos = {}, {}
    for stem, spec in FILES.items():
        model = spec["model"]
        pipe = pipes[model][0]
        mods[stem] = make_mods(stem, pipe)
        path, sd = write_file(stem, mods[stem], pipe)
        key_mod = {file_key(m, pipe, model): m for m in mods[stem]}
        mlg.assert_base(pipe, bases[model])
        scales = collections.Counter(m.scale for m in mods[stem])
        default = max(scales, key=lambda s: (scales[s], -s))
        info = dict(format=f"lycoris_{spec['algo']}", dtype=str(spec["dtype"]).replace("torch.", ""),
                    modules=len(mods[stem]), keys=len(sd), bytes=os.path.getsize(path), sha256=mlg.sha256(path),
                    kinds=dict(sorted(collections.Counter(m.kind for m in mods[stem]).items())),
                    default_scale=default,
                    scales={f"{m.comp}.{m.name}": m.scale for m in mods[stem] if m.scale != default})
        infos[stem] = info
        print(f"{os.path.relpath(path, ROOT)}: {len(mods[stem])} modules {info['kinds']}, {len(sd)} tensors, "
              f"{info['bytes']} bytes, scales {dict(sorted(scales.items()))}")
        kinds = {}
        for k in sorted(sd):  # one example per (prefix, module kind, tensor, rank of the tensor)
            mod = key_mod[k.split(".", 1)[0]]
            kinds.setdefault((k.split("_")[1], mod.kind, len(mod.shape), k.split(".", 1)[1], sd[k].dim()), k)
        for _, example in sorted(kinds.items()):
            print(f"    {example}  {list(sd[example].shape)} {str(sd[example].dtype).replace('torch.', '')}")

    check_conventions(mods, bases["sd1"])

    # 2. Fused parameters.
    tensors = {}
    meta = {"script": SCRIPT, "git": mg.git_hash(), "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
            "scheduler_config.sd1": json.dumps(pipes["sd1"][1]), "scheduler_config.sdxl": json.dumps(pipes["sdxl"][1])}
    for stem, info in infos.items():
        meta[f"files.{stem}"] = json.dumps(info)
    for label, (stem, uw, tw) in FUSED.items():
        model = FILES[stem]["model"]
        base = bases[model]
        weights = merged_weights(base, [(stem, uw, tw)], mods)
        check_changes(label, mods[stem], base, weights)
        for p in FUSED_PARAMS[stem]:
            comp, name = p.split(".", 1)
            tensors[f"fused.{label}.{p}"] = weights[comp][name].clone()
            tensors[f"base.{model}.{p}"] = base[comp][name].clone()
            rel = (weights[comp][name] - base[comp][name]).abs().mean().item() / base[comp][name].abs().mean().item()
            print(f"fused.{label}.{p} {list(base[comp][name].shape)}: mean |delta| / mean |W| = {rel:.3f}")
        meta[f"fused.{label}.params"] = json.dumps(dict(file=f"{stem}.safetensors", model=model, unet=uw, te=tw,
                                                        params=FUSED_PARAMS[stem]))
    check_dora_order(mods["sd1_dora"], bases["sd1"], tensors)
    for label, spec in FUSED_STACK.items():
        model = FILES[spec["loras"][0][0]]["model"]
        base = bases[model]
        weights = merged_weights(base, spec["loras"], mods)
        for p in spec["params"]:
            comp, name = p.split(".", 1)
            # The DoRA file decomposes the weight the first file left: not the sum of the two separate merges.
            one = merged_weights(base, spec["loras"][:1], mods)[comp][name]
            two = merged_weights(base, spec["loras"][1:], mods)[comp][name]
            sep = (one - base[comp][name]) + (two - base[comp][name]) + base[comp][name]
            assert not torch.allclose(weights[comp][name], sep, rtol=1e-4, atol=1e-6), (label, p)
            tensors[f"fused_stack.{label}.{p}"] = weights[comp][name].clone()
            tensors[f"base.{model}.{p}"] = base[comp][name].clone()
        meta[f"fused_stack.{label}.params"] = json.dumps(dict(
            model=model, loras=[dict(file=f"{s}.safetensors", unet=u, te=t) for s, u, t in spec["loras"]],
            params=spec["params"]))

    # 3. Cases.
    latents, failed = {}, []
    for name, model, loras, seed, prompt, negative in CASES:
        pipe = pipes[model][0]
        base = bases[model]
        weights = merged_weights(base, loras, mods)
        apply_weights(pipe, weights)
        lat, img = mlg.run(pipe, model, seed, prompt, negative)
        apply_weights(pipe, base)
        mlg.assert_base(pipe, base)
        ref_lat, ref_img = mlg.run(pipe, model, seed, prompt, negative)  # the same run without the files
        assert torch.isfinite(lat).all(), name
        diff, sat, sat0 = mlg.record_case(name, model, loras, seed, prompt, negative, lat, img, ref_img, tensors, meta,
                                          latents)
        if not loras:
            assert torch.equal(lat, ref_lat)
        elif not (diff > MIN_MEAN_DIFF and sat - sat0 < MAX_SAT_RISE):
            failed.append((name, diff, sat, sat0))
    assert not failed, f"cases too close to their runs without the files, or saturated: {failed}"
    sg.assert_all_differ(latents)
    meta["cases"] = json.dumps([c[0] for c in CASES])

    mlg.save_goldens(tensors, meta, GOLDEN)


if __name__ == "__main__":
    main()
