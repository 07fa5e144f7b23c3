#!/work/refvenv/bin/python
"""LoRA fixtures and goldens: small random LoRA files in the formats found in the wild (kohya-ss / AUTOMATIC1111,
kohya LoCon, diffusers/PEFT), for the tiny SD 1.x and SDXL models, and what diffusers' pipelines make with them.

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline, after
make_pipeline_goldens.py and make_sdxl_goldens.py (it reads their model folders and changes nothing in them):

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_lora_goldens.py

It takes about 20 s on an idle two-core machine. Every value is drawn from torch.Generators with fixed seeds,
and every file goes through safetensors_io.py (header in a fixed order), so every run writes the same bytes.
Versions used (requirements-pip.txt): torch 2.4.1 (CPU), diffusers 0.30.3, transformers 4.40.2, peft 0.12.0,
accelerate 0.33.0, huggingface_hub 0.36.2. All computation is float32 on the CPU.

The models
----------
sd1:  tests/golden/data/pipeline_sd1/ (make_pipeline_goldens.py), built as make_pipeline_diffusers_goldens.py
      builds it: export.load_diffusers (fp16 weights computed in fp32), mg.ZeroedAttnProcessor on the UNet and
      VAE, StableDiffusionPipeline without safety checker. 32x32 images, 16x16 latents. UNet widths (16, 32, 32),
      layers_per_block 2, down (CrossAttn, CrossAttn, Down), up (Up, CrossAttn, CrossAttn), proj_in/proj_out
      1x1 convs (use_linear_projection false), cross_attention_dim 32; CLIP text encoder hidden 32, mlp 64,
      3 layers.
sdxl: tests/golden/data/pipeline_sdxl/ (make_sdxl_goldens.py), loaded as that script loads it:
      StableDiffusionXLPipeline.from_pretrained(folder, torch_dtype=float32, add_watermarker=False), diffusers'
      default attention processor. 64x64 images, 32x32 latents. UNet widths (8, 16, 32), layers_per_block 2,
      down (Down, CrossAttn, CrossAttn), up (CrossAttn, CrossAttn, Up), transformer depth (1, 1, 2), linear
      proj_in/proj_out; text_encoder hidden 32 (2 layers), text_encoder_2 hidden 48 (2 layers).
Both pipelines run with EulerDiscreteScheduler.from_config(the folder's scheduler config).

1. LoRA files: tests/golden/data/lora/
--------------------------------------
Module names below are diffusers' (unet.*) and transformers' (text_encoder*.*). A LoRA module on a weight W
[out, in] (Linear) or [out, in, kh, kw] (Conv2d) holds down [r, in] / [r, in, kh, kw] and up [out, r] /
[out, r, 1, 1], and changes W by  multiplier * scale * up @ down  (for convs: up[:, :, 0, 0] @ down.flatten(1),
reshaped to [out, in, kh, kw]; the down conv keeps W's kernel, stride and padding). Values: down =
randn * 1 / sqrt(in * kh * kw), up = randn * GAIN / sqrt(r) (GAIN per file below), each rounded to the
file's dtype at once; one torch.Generator per file, seeded with the file's seed, drawn in the order modules are
listed (named_modules() order: unet, then text encoders; down then up per module).

kohya files (sd-scripts' LoRANetwork.save_weights layout): per module <key>.lora_down.weight, <key>.lora_up.weight
and usually <key>.alpha, a 0-dim tensor (the register_buffer("alpha", torch.tensor(alpha)) kohya writes, cast to
the save dtype like every tensor). scale = alpha / r; with no alpha key, scale = 1 (alpha = r: what kohya,
AUTOMATIC1111 and ComfyUI do). <key> is the module path with "." replaced by "_" and a prefix: lora_unet_,
lora_te_ (SD 1.x text encoder), lora_te1_ / lora_te2_ (SDXL text_encoder / text_encoder_2). Metadata: a few
sd-scripts ss_* keys (ss_network_module, ss_network_dim, ss_network_alpha, ss_base_model_version,
ss_network_args for LoCon).

  sd1_kohya.safetensors      150 modules. F16, rank 4, alpha 2 (scale 0.5) except ALPHA_OVERRIDES["sd1_kohya"]
                             (alpha 8 or 1, or no alpha key). UNet in diffusers naming, every attention layer:
                             attnN.to_q, to_k, to_v, to_out.0, ff.net.0.proj, ff.net.2 (Linear), proj_in, proj_out
                             (1x1 convs: down [4, in, 1, 1], up [out, 4, 1, 1]); text encoder
                             self_attn.{q,k,v,out}_proj, mlp.fc1, mlp.fc2 of every layer. GAIN 1.0.
                             e.g. lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight,
                             lora_unet_down_blocks_0_attentions_1_proj_in.alpha,
                             lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight,
                             lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight
  sd1_locon.safetensors      69 modules. F32, kohya LoCon (sd-scripts with conv_dim): on every UNet resnet
                             conv1 / conv2 (3x3: rank 8, alpha 4, down [8, in, 3, 3], up [out, 8, 1, 1]), conv_shortcut
                             (1x1) and time_emb_proj (Linear) (rank 4, alpha 4), downsamplers.0.conv (3x3
                             stride 2) and upsamplers.0.conv (3x3) (rank 8, alpha 4), plus LOCON_ATTENTION (four
                             attention layers, rank 4, alpha 4). GAIN 1.0.
                             e.g. lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight [8, 16, 3, 3],
                             lora_unet_down_blocks_1_resnets_0_conv_shortcut,
                             lora_unet_up_blocks_0_resnets_0_time_emb_proj,
                             lora_unet_down_blocks_0_downsamplers_0_conv, lora_unet_up_blocks_1_upsamplers_0_conv
  sd1_te_only.safetensors    18 modules. F16, rank 4, alpha 4: the text encoder modules of sd1_kohya only
                             (other values). GAIN 1.5.
  sd1_kohya_ldm.safetensors  214 modules. F16, rank 4, alpha 2, the UNet in original LDM (CompVis) naming: every
                             attention layer and every resnet (conv1, conv2, time_emb_proj, conv_shortcut), both
                             downsamplers and up_blocks.1.upsamplers; text encoder as sd1_kohya (other values).
                             LDM names (layers_per_block 2, so 3 LDM blocks per level):
                               down_blocks.i.{resnets,attentions}.j   input_blocks.{3i+j+1}.{0,1}
                               down_blocks.i.downsamplers.0.conv      input_blocks.{3(i+1)}.0.op
                               mid_block.resnets.0 / attentions.0 / resnets.1   middle_block.0 / .1 / .2
                               up_blocks.i.{resnets,attentions}.j     output_blocks.{3i+j}.{0,1}
                               up_blocks.i.upsamplers.0.conv          output_blocks.{3i+2}.{2 if the block has
                                                                      attentions else 1}.conv
                               resnet conv1 / conv2 / time_emb_proj / conv_shortcut:  in_layers.2 / out_layers.3
                                                                      / emb_layers.1 / skip_connection
                             e.g. lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q,
                             lora_unet_input_blocks_1_1_proj_in, lora_unet_middle_block_1_proj_out,
                             lora_unet_output_blocks_3_1_transformer_blocks_0_ff_net_2,
                             lora_unet_input_blocks_4_0_in_layers_2, lora_unet_input_blocks_4_0_out_layers_3,
                             lora_unet_input_blocks_4_0_emb_layers_1, lora_unet_input_blocks_4_0_skip_connection,
                             lora_unet_input_blocks_3_0_op, lora_unet_output_blocks_5_2_conv.
                             Not included: up_blocks.0.upsamplers.0.conv (LDM output_blocks.2.1.conv, the
                             upsampler of a block without attentions): diffusers 0.30.3's
                             _maybe_map_sgm_blocks_to_diffusers maps index 1 of an output block to "attentions"
                             whatever the block is, so diffusers cannot load it (see MAPPING NOTES). GAIN 1.0.
  sdxl_kohya.safetensors     282 modules. F16, rank 4, alpha 2 except ALPHA_OVERRIDES["sdxl_kohya"], as
                             sd-scripts writes SDXL LoRAs (sdxl_original_unet naming = sgm/LDM, the table above;
                             text encoders in transformers naming): every attention layer (proj_in,
                             proj_out are Linear in SDXL), every resnet (in_layers_2, out_layers_3, emb_layers_1,
                             skip_connection), every up/downsampler (input_blocks_3_0_op, input_blocks_6_0_op,
                             output_blocks_2_2_conv, output_blocks_5_2_conv), lora_te1_* on every text_encoder
                             attention / mlp Linear, lora_te2_* the same on text_encoder_2. GAIN 0.12 (the tiny
                             SDXL model reacts far more than the SD 1.x one: GAIN 0.25 already moved its image by
                             24 levels on average).
                             e.g. lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q,
                             lora_unet_input_blocks_7_1_transformer_blocks_1_attn2_to_k,
                             lora_unet_middle_block_1_transformer_blocks_0_ff_net_0_proj,
                             lora_unet_output_blocks_0_1_proj_out, lora_unet_input_blocks_1_0_in_layers_2,
                             lora_te1_text_model_encoder_layers_0_self_attn_q_proj,
                             lora_te2_text_model_encoder_layers_1_mlp_fc1
  bad_shape.safetensors      18 modules. F16, kohya like sd1_kohya (own values, alpha 2) on the attention layers of
                             down_blocks.1.attentions.0 and text encoder layer 0 only, with the lora_up of
                             BAD_SHAPE_MODULE (lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k)
                             one row short: [31, 4] where to_k's output is 32. For error tests; diffusers refuses it
                             (a size-mismatch RuntimeError from load_state_dict; the script checks that it fails).

diffusers/PEFT files (LoraConfig(r=4, lora_alpha=4, init_lora_weights=False) added with add_adapter to copies of
the models, every lora_A / lora_B then re-drawn as above; get_peft_model_state_dict; written with
<Pipeline>.save_lora_weights, whose safetensors metadata is {"format": "pt"}; F32; no alpha: scale 1):
  sd1_peft.safetensors       150 modules. PEFT naming (get_peft_model_state_dict's keys, unconverted): unet
                             target_modules to_q, to_k, to_v, to_out.0, proj_in, proj_out, ff.net.0.proj, ff.net.2;
                             text_encoder q_proj, k_proj, v_proj, out_proj, fc1, fc2. GAIN 1.0.
                             e.g. unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight,
                             unet.down_blocks.0.attentions.0.proj_in.lora_B.weight [32, 4, 1, 1],
                             text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight,
                             text_encoder.text_model.encoder.layers.0.mlp.fc1.lora_B.weight
  sdxl_peft.safetensors      156 modules. What diffusers' SDXL LoRA training scripts (train_dreambooth_lora_sdxl.py)
                             save: convert_state_dict_to_diffusers(get_peft_model_state_dict(model)) per component, so
                             the keys are diffusers' "lora.down/up" and "lora_linear_layer.down/up" names, and
                             PEFT's lora_A / lora_B where that function has no mapping (the mlp). unet
                             target_modules to_q, to_k, to_v, to_out.0; text_encoder q/k/v/out_proj;
                             text_encoder_2 q/k/v/out_proj, fc1, fc2. GAIN 0.12.
                             e.g. unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora.down.weight,
                             unet.up_blocks.0.attentions.0.transformer_blocks.1.attn2.to_out.0.lora.up.weight,
                             text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.down.weight,
                             text_encoder_2.text_model.encoder.layers.1.self_attn.out_proj.lora_linear_layer.up.weight,
                             text_encoder_2.text_model.encoder.layers.0.mlp.fc1.lora_A.weight

2. Goldens: tests/golden/data/lora_cases.safetensors
---------------------------------------------------
Per case (CASES): the pipeline with the case's LoRAs loaded by
pipe.load_lora_weights(LORA_DIR, weight_name=file, adapter_name=name) and weighted by
pipe.set_adapters([names], adapter_weights=[w, ...]) (w a float, or {"unet": a, "text_encoder": b} for separate
multipliers: diffusers 0.30.3 takes such a dict per adapter; for SDXL a float applies to unet, text_encoder and
text_encoder_2), then pipe(prompt, negative_prompt, height, width, num_inference_steps, guidance_scale,
generator=torch.Generator("cpu").manual_seed(seed), output_type="latent"); afterwards unload_lora_weights(), and
the script checks that every weight is back to the base model's bits before the next case.
    <case>.latent   float32 [1, 4, H/f, W/f]  the pipeline's final latent (f = 2: both tiny VAEs
                                              downsample by 2)
    <case>.image    uint8 [1, 3, H, W]        (CHW, RGB, both models) decoded as the existing scripts do:
                                              vae.decode(latent / scaling_factor), round(clamp(x / 2 + 0.5, 0, 1)
                                              * 255) (make_sdxl_goldens.decode_as_pipeline for sdxl, then
                                              permuted from HWC)
    metadata <case>.params (JSON): model ("sd1" | "sdxl"), loras ([{file, unet, te}], te = the multiplier of
        every text encoder), scheduler ("euler"), steps, cfg, seed, prompt, negative, width, height, and
        mean_abs_image_diff_vs_no_lora (mean |image - the same run without LoRAs|, in levels of 255).
Cases (12 steps, cfg 7, Euler; prompts and seeds in CASES):
    sd1_base        sd1, no LoRA (control)          sdxl_base       sdxl, no LoRA (control)
    sd1_kohya       sd1_kohya 1.0                   sdxl_kohya      sdxl_kohya 1.0
    sd1_locon       sd1_locon 1.0                   sdxl_peft       sdxl_peft 0.9
    sd1_peft        sd1_peft 1.0                    sd1_stacked     sd1_kohya 0.8 + sd1_locon 0.5
    sd1_te_only     sd1_te_only 1.0                 sd1_split       sd1_kohya unet 0.7, text encoder 0.3
    sd1_kohya_ldm   sd1_kohya_ldm 1.0               sd1_negative    sd1_kohya -0.6
Fused weights, per LoRA file and per FUSED entry: the file loaded alone, set_adapters at the multipliers, then
pipe.fuse_lora(components=[every component], lora_scale=1.0, adapter_names=[name]):
    fused.<label>.<component>.<param>  float32  the fused weight (W + multiplier * scale * up @ down)
    base.<model>.<component>.<param>   float32  the same weight of the base model (model sd1 or sdxl: the names
                                                overlap, the values do not)
  <label> is the file stem, or FUSED's label for other multipliers (sd1_kohya_u07_t03: unet 0.7, text
  encoder 0.3). Metadata fused.<label>.params (JSON): {file, model, unet, te, params: [<component>.<param>...]}.
Metadata also: script, git, torch, diffusers, transformers, peft, huggingface_hub, cases (the case names in order),
scheduler_config.sd1 / scheduler_config.sdxl, and files.<stem> (JSON per LoRA file: format, dtype, modules, keys,
bytes, sha256, default_scale (alpha / rank of most modules) and alpha_scales: {<component>.<module>: scale} for
the modules whose scale differs from it).

Checks (asserted on every run)
------------------------------
- For every file and every FUSED entry, every LoRA'd weight fused by diffusers equals the independent
  W + multiplier * scale * up @ down (to 1e-5 relative), with kohya semantics for alpha (missing -> 1), and no
  other weight changed. Every module of the file became a PEFT layer (nothing silently dropped).
- sd1_kohya_ldm: its fused weights are bit-identical to those of the same LoRA written in diffusers naming.
- Each case's image differs from the same run (same seed and prompt) without its LoRAs by more than 2 levels of
  255 on average; no NaN; all latents pairwise different.
- bad_shape.safetensors is refused by load_lora_weights.

MAPPING NOTES (diffusers 0.30.3 behaviour found by this script; printed on every run)
- SD 1.x kohya files with LDM UNet names load only with pipe.load_lora_weights(..., unet_config=pipe.unet.config)
  (StableDiffusionXLPipeline passes it itself); without it StableDiffusionPipeline takes input_blocks.N as
  down_blocks.N and PEFT refuses the file ("Target modules {...} not found in the base model").
- Missing alpha: diffusers gives such a module the file's most common alpha (get_peft_kwargs), not alpha = rank;
  a text-encoder self_attn module whose alpha differs from the most common one gets the most common one too
  (its alpha_pattern key loses the module name). fix_alphas() corrects PEFT's lora_alpha / scaling of those
  layers right after load_lora_weights (set_adapters recomputes scaling from lora_alpha), so the goldens follow
  kohya / AUTOMATIC1111 / ComfyUI semantics; the script prints each layer it corrects.
"""
import collections
import copy
import hashlib
import json
import os
import re
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
import safetensors_io  # noqa: E402
import make_model_goldens as mg  # noqa: E402
import make_sdxl_goldens as sg  # noqa: E402  (decode_as_pipeline, assert_all_differ, check_words)
import export  # noqa: E402  (tools/train: load_diffusers)

import diffusers  # noqa: E402
import huggingface_hub  # noqa: E402
import peft  # noqa: E402
import transformers  # noqa: E402
from diffusers import (EulerDiscreteScheduler, StableDiffusionPipeline,  # noqa: E402
                       StableDiffusionXLPipeline)
from diffusers.utils import convert_state_dict_to_diffusers  # noqa: E402
from peft import LoraConfig  # noqa: E402
from peft.tuners.tuners_utils import BaseTunerLayer  # noqa: E402
from peft.utils import get_peft_model_state_dict  # noqa: E402
from transformers import CLIPTokenizer  # noqa: E402

OUT = os.path.join(ROOT, "tests", "golden", "data")
SD1_FOLDER = os.path.join(OUT, "pipeline_sd1")
SDXL_FOLDER = os.path.join(OUT, "pipeline_sdxl")
LORA_DIR = os.path.join(OUT, "lora")
GOLDEN = os.path.join(OUT, "lora_cases.safetensors")
SCRIPT = "tools/reference/make_lora_goldens.py"

SIZES = {"sd1": (32, 32), "sdxl": (64, 64)}  # width, height
STEPS, CFG = 12, 7.0
MIN_MEAN_DIFF = 2.0  # levels of 255: each LoRA must change its case's image at least this much on average

ATTN_RE = re.compile(r"attentions\.\d+\.(proj_in|proj_out|transformer_blocks\.\d+\."
                     r"(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ff\.net\.0\.proj|ff\.net\.2))$")
RESNET_RE = re.compile(r"resnets\.\d+\.(conv1|conv2|conv_shortcut|time_emb_proj)$")
SAMPLER_RE = re.compile(r"(downsamplers|upsamplers)\.0\.conv$")
UNET_ALL_RE = re.compile(f"({ATTN_RE.pattern})|({RESNET_RE.pattern})|({SAMPLER_RE.pattern})")
TE_RE = re.compile(r"^text_model\.encoder\.layers\.\d+\.(self_attn\.(q|k|v|out)_proj|mlp\.fc[12])$")

# Per-module alphas different from the file's default 2 (scale 0.5). None: no alpha key (scale 1).
ALPHA_OVERRIDES = {
    "sd1_kohya": {
        ("unet", "down_blocks.0.attentions.0.proj_in"): None,
        ("unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k"): 8.0,
        ("unet", "down_blocks.1.attentions.1.transformer_blocks.0.attn2.to_v"): None,
        ("unet", "mid_block.attentions.0.proj_out"): 1.0,
        ("unet", "up_blocks.2.attentions.1.transformer_blocks.0.ff.net.2"): 8.0,
        ("text_encoder", "text_model.encoder.layers.0.self_attn.q_proj"): 1.0,
        ("text_encoder", "text_model.encoder.layers.1.self_attn.out_proj"): None,
        ("text_encoder", "text_model.encoder.layers.2.mlp.fc2"): 8.0,
    },
    "sdxl_kohya": {
        ("unet", "down_blocks.2.attentions.0.transformer_blocks.1.attn1.to_v"): None,
        ("text_encoder_2", "text_model.encoder.layers.0.self_attn.k_proj"): 8.0,
    },
}
LOCON_ATTENTION = ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
                   "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k",
                   "mid_block.attentions.0.transformer_blocks.0.attn1.to_out.0",
                   "up_blocks.2.attentions.2.transformer_blocks.0.ff.net.0.proj")
BAD_SHAPE_MODULE = ("unet", "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k")

# Each file: model, format, dtype (of the stored tensors), seed, GAIN.
FILES = {
    "sd1_kohya": dict(model="sd1", format="kohya", dtype=torch.float16, seed=1101, gain=1.0),
    "sd1_locon": dict(model="sd1", format="kohya", dtype=torch.float32, seed=1102, gain=1.0),
    "sd1_peft": dict(model="sd1", format="peft", dtype=torch.float32, seed=1103, gain=1.0),
    "sd1_te_only": dict(model="sd1", format="kohya", dtype=torch.float16, seed=1104, gain=1.5),
    "sd1_kohya_ldm": dict(model="sd1", format="kohya_ldm", dtype=torch.float16, seed=1105, gain=1.0),
    "sdxl_kohya": dict(model="sdxl", format="kohya_ldm", dtype=torch.float16, seed=1106, gain=0.12),
    "sdxl_peft": dict(model="sdxl", format="peft_diffusers", dtype=torch.float32, seed=1107, gain=0.12),
}

# Representative weights stored fused (component.module; ".weight" is appended).
FUSED_PARAMS = {
    "sd1_kohya": ["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
                  "unet.down_blocks.0.attentions.0.proj_in",
                  "unet.mid_block.attentions.0.proj_out",
                  "text_encoder.text_model.encoder.layers.0.self_attn.q_proj",
                  "text_encoder.text_model.encoder.layers.0.mlp.fc1"],
    "sd1_locon": ["unet.down_blocks.0.resnets.0.conv1",
                  "unet.down_blocks.1.resnets.0.conv_shortcut",
                  "unet.up_blocks.1.resnets.2.time_emb_proj",
                  "unet.down_blocks.0.downsamplers.0.conv",
                  "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"],
    "sd1_peft": ["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
                 "unet.down_blocks.0.attentions.0.proj_in",
                 "text_encoder.text_model.encoder.layers.0.self_attn.q_proj",
                 "text_encoder.text_model.encoder.layers.0.mlp.fc1"],
    "sd1_te_only": ["text_encoder.text_model.encoder.layers.0.self_attn.q_proj",
                    "text_encoder.text_model.encoder.layers.1.self_attn.out_proj",
                    "text_encoder.text_model.encoder.layers.2.mlp.fc1"],
    "sd1_kohya_ldm": ["unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
                      "unet.mid_block.attentions.0.proj_in",
                      "unet.up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k",
                      "unet.down_blocks.1.resnets.0.conv1",
                      "text_encoder.text_model.encoder.layers.0.self_attn.q_proj"],
    "sdxl_kohya": ["unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
                   "unet.down_blocks.1.resnets.0.conv1",
                   "text_encoder.text_model.encoder.layers.0.self_attn.q_proj",
                   "text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj",
                   "text_encoder_2.text_model.encoder.layers.1.mlp.fc1"],
    "sdxl_peft": ["unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
                  "unet.up_blocks.0.attentions.0.transformer_blocks.1.attn2.to_out.0",
                  "text_encoder.text_model.encoder.layers.0.self_attn.q_proj",
                  "text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj",
                  "text_encoder_2.text_model.encoder.layers.1.mlp.fc1"],
}
# Fused entries: label -> (file, unet multiplier, text encoder multiplier).
FUSED = {stem: (stem, 1.0, 1.0) for stem in FILES}
FUSED["sd1_kohya_u07_t03"] = ("sd1_kohya", 0.7, 0.3)

# Cases: name, model, [(file, unet multiplier, text encoder multiplier)], seed, prompt, negative.
CASES = [
    ("sd1_base", "sd1", [], 301, "a red circle on a blue background", ""),
    ("sd1_kohya", "sd1", [("sd1_kohya", 1.0, 1.0)], 302, "a small green triangle on the left", ""),
    ("sd1_locon", "sd1", [("sd1_locon", 1.0, 1.0)], 303, "a large blue square, masterpiece", "red"),
    ("sd1_peft", "sd1", [("sd1_peft", 1.0, 1.0)], 304, "photo of a cat on the right", "dog"),
    ("sd1_te_only", "sd1", [("sd1_te_only", 1.0, 1.0)], 305, "a green circle on the top", ""),
    ("sd1_kohya_ldm", "sd1", [("sd1_kohya_ldm", 1.0, 1.0)], 306, "a red triangle on the bottom", "blue"),
    ("sd1_stacked", "sd1", [("sd1_kohya", 0.8, 0.8), ("sd1_locon", 0.5, 0.5)], 307,
     "a blue circle on the centre", ""),
    ("sd1_split", "sd1", [("sd1_kohya", 0.7, 0.3)], 308, "a small red square on the right", "green"),
    ("sd1_negative", "sd1", [("sd1_kohya", -0.6, -0.6)], 309, "photo of a dog, masterpiece", ""),
    ("sdxl_base", "sdxl", [], 310, "a green triangle on a red background", "a blue square"),
    ("sdxl_kohya", "sdxl", [("sdxl_kohya", 1.0, 1.0)], 311, "a large red circle on the left", "photo of a cat"),
    ("sdxl_peft", "sdxl", [("sdxl_peft", 0.9, 0.9)], 312, "a small blue triangle on the top", "a green circle"),
]


def record_case(name, model, loras, seed, prompt, negative, lat, img, ref_img, tensors, meta, latents):
    """A case of this script or make_lycoris_goldens.py: prints how far its image is from the same run without its
    files and stores its latent, image and params ("loras": [(stem, unet, te)]). Returns (mean |image diff| in
    levels, saturated fraction, saturated fraction without the files)."""
    diff = (img.float() - ref_img.float()).abs().mean().item()
    sat = ((img == 0) | (img == 255)).float().mean().item()
    sat0 = ((ref_img == 0) | (ref_img == 255)).float().mean().item()
    print(f"{name:18s} {model:4s} {[(s, u, t) for s, u, t in loras]}: mean |image - no-LoRA image| {diff:.2f} "
          f"(max {(img.float() - ref_img.float()).abs().max().item():.0f}), image mean "
          f"{img.float().mean().item():.1f}, saturated {sat:.1%} (no LoRA {sat0:.1%}), latent std "
          f"{lat.std().item():.3f}")
    w, h = SIZES[model]
    tensors[f"{name}.latent"] = lat
    tensors[f"{name}.image"] = img
    meta[f"{name}.params"] = json.dumps(dict(
        model=model, loras=[dict(file=f"{s}.safetensors", unet=u, te=t) for s, u, t in loras],
        scheduler="euler", steps=STEPS, cfg=CFG, seed=seed, prompt=prompt, negative=negative, width=w, height=h,
        mean_abs_image_diff_vs_no_lora=round(diff, 3)))
    latents[name] = lat
    return diff, sat, sat0


def save_goldens(tensors, meta, path):
    """Writes a goldens file (this script's, make_lycoris_goldens.py's, make_ti_goldens.py's): every float tensor
    float32 and finite, the metadata sorted."""
    for k, v in tensors.items():
        if v.is_floating_point():
            assert v.dtype == torch.float32 and torch.isfinite(v).all(), k
    safetensors_io.save_file({k: v.detach().clone().contiguous() for k, v in tensors.items()}, path,
                             dict(sorted(meta.items())))
    print(f"wrote {os.path.relpath(path, ROOT)}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ---------------------------------------------------------------------------------------------------------
# Pipelines

def build_sd1():
    """As make_pipeline_diffusers_goldens.py: our folder reader, zeroed-buffer attention, Euler from the folder's
    (PNDM) scheduler config."""
    vae, unet, te = export.load_diffusers(SD1_FOLDER)
    unet.set_attn_processor(mg.ZeroedAttnProcessor())
    vae.set_attn_processor(mg.ZeroedAttnProcessor())
    tok = CLIPTokenizer.from_pretrained(os.path.join(SD1_FOLDER, "tokenizer"))
    with open(os.path.join(SD1_FOLDER, "scheduler", "scheduler_config.json")) as f:
        sched_cfg = json.load(f)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet,
                                   scheduler=EulerDiscreteScheduler.from_config(sched_cfg), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe, sched_cfg


def build_sdxl():
    """As make_sdxl_goldens.load_fp32: the fp16 folder computed in fp32, diffusers' default attention."""
    pipe = StableDiffusionXLPipeline.from_pretrained(SDXL_FOLDER, torch_dtype=torch.float32, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    sched_cfg = dict(pipe.scheduler.config)
    pipe.scheduler = EulerDiscreteScheduler.from_config(sched_cfg)
    return pipe, sched_cfg


def components(pipe):
    names = ["unet", "text_encoder"] + (["text_encoder_2"] if isinstance(pipe, StableDiffusionXLPipeline) else [])
    return {n: getattr(pipe, n) for n in names}


def snapshot(pipe):
    return {c: {k: v.detach().clone() for k, v in m.state_dict().items()} for c, m in components(pipe).items()}


def assert_base(pipe, base):
    for c, m in components(pipe).items():
        sd = m.state_dict()
        assert sd.keys() == base[c].keys(), (c, sorted(set(sd) ^ set(base[c]))[:5])
        for k, v in base[c].items():
            assert torch.equal(sd[k], v), f"{c}.{k} is not the base model's after unloading"
        assert not any(isinstance(x, BaseTunerLayer) for x in m.modules()), c


def weight_of(pipe, comp, name):
    m = components(pipe)[comp].get_submodule(name)
    return (m.base_layer if hasattr(m, "base_layer") else m).weight


# ---------------------------------------------------------------------------------------------------------
# LoRA modules and file layouts

class Mod:
    """One LoRA'd module: component, module name, rank, alpha (None: no alpha key), down and up (float32 tensors
    holding the file dtype's values)."""

    def __init__(self, comp, name, module, rank, alpha, gen, gain, dtype):
        self.comp, self.name, self.rank, self.alpha = comp, name, rank, alpha
        w = module.weight
        if isinstance(module, torch.nn.Conv2d):
            out_c, in_c, kh, kw = w.shape
            down_shape, up_shape = (rank, in_c, kh, kw), (out_c, rank, 1, 1)
        else:
            assert isinstance(module, torch.nn.Linear), (comp, name, type(module))
            out_c, in_c = w.shape
            kh = kw = 1
            down_shape, up_shape = (rank, in_c), (out_c, rank)
        self.down = (torch.randn(down_shape, generator=gen) / (in_c * kh * kw) ** 0.5).to(dtype).float()
        self.up = (torch.randn(up_shape, generator=gen) * (gain / rank ** 0.5)).to(dtype).float()
        self.shape = tuple(w.shape)

    @property
    def scale(self):
        return (self.alpha if self.alpha is not None else self.rank) / self.rank

    def delta(self):
        """up @ down in W's shape (no scale)."""
        d = self.up.flatten(1) @ self.down.flatten(1)
        return d.reshape(self.shape)


def select(model, regex):
    return [(n, m) for n, m in model.named_modules() if regex.search(n) and isinstance(m, (torch.nn.Linear,
                                                                                           torch.nn.Conv2d))]


def ldm_name(name, unet):
    """diffusers UNet module name -> original LDM / sgm name (see the docstring's table)."""
    cfg = unet.config
    per = cfg.layers_per_block + 1
    p = name.split(".")
    resnet = {"conv1": "in_layers.2", "conv2": "out_layers.3", "time_emb_proj": "emb_layers.1",
              "conv_shortcut": "skip_connection"}

    def inner(kind, rest):
        if kind == "resnets":
            assert len(rest) == 1, name
            return f"0.{resnet[rest[0]]}"
        return "1." + ".".join(rest)

    if p[0] == "down_blocks":
        i, kind, j, rest = int(p[1]), p[2], int(p[3]), p[4:]
        if kind == "downsamplers":
            assert rest == ["conv"], name
            return f"input_blocks.{per * (i + 1)}.0.op"
        return f"input_blocks.{per * i + j + 1}.{inner(kind, rest)}"
    if p[0] == "mid_block":
        kind, j, rest = p[1], int(p[2]), p[3:]
        idx = {("resnets", 0): 0, ("attentions", 0): 1, ("resnets", 1): 2}[(kind, j)]
        return f"middle_block.{idx}." + (".".join(rest) if kind == "attentions" else resnet[rest[0]])
    if p[0] == "up_blocks":
        i, kind, j, rest = int(p[1]), p[2], int(p[3]), p[4:]
        if kind == "upsamplers":
            assert rest == ["conv"], name
            has_attn = "CrossAttn" in cfg.up_block_types[i]
            return f"output_blocks.{per * i + per - 1}.{2 if has_attn else 1}.conv"
        return f"output_blocks.{per * i + j}.{inner(kind, rest)}"
    raise ValueError(name)


def kohya_key(mod, unet, model, ldm):
    if mod.comp == "unet":
        return "lora_unet_" + (ldm_name(mod.name, unet) if ldm else mod.name).replace(".", "_")
    prefix = {("sd1", "text_encoder"): "lora_te_", ("sdxl", "text_encoder"): "lora_te1_",
              ("sdxl", "text_encoder_2"): "lora_te2_"}[(model, mod.comp)]
    return prefix + mod.name.replace(".", "_")


def kohya_state(mods, unet, model, ldm, dtype):
    sd = {}
    for mod in mods:
        key = kohya_key(mod, unet, model, ldm)
        assert key + ".lora_down.weight" not in sd, key
        sd[key + ".lora_down.weight"] = mod.down.to(dtype)
        sd[key + ".lora_up.weight"] = mod.up.to(dtype)
        if mod.alpha is not None:
            sd[key + ".alpha"] = torch.tensor(mod.alpha, dtype=dtype)  # 0-dim, as kohya's register_buffer
    return sd


def kohya_metadata(stem, mods, model, extra=None):
    linear = [m for m in mods if len(m.shape) == 2 or m.shape[2:] == (1, 1)]  # network_dim (not conv_dim) layers
    rank = collections.Counter(m.rank for m in linear).most_common()[0][0]
    alphas = collections.Counter(m.alpha for m in linear if m.alpha is not None).most_common()
    meta = {"ss_network_module": "networks.lora", "ss_network_dim": str(rank),
            "ss_network_alpha": str(alphas[0][0]) if alphas else "None",
            "ss_base_model_version": "sd_v1" if model == "sd1" else "sdxl_base_v1-0",
            "ss_output_name": stem}
    meta.update(extra or {})
    return meta


def make_kohya(stem, pipe, spec):
    """Module list of a kohya file (see the docstring)."""
    comps = components(pipe)
    unet = comps["unet"]
    gen = torch.Generator().manual_seed(spec["seed"])
    gain, dtype = spec["gain"], spec["dtype"]
    mods = []
    te_names = [c for c in comps if c.startswith("text_encoder")]

    def add(comp, pairs, rank_of, alpha_of):
        for name, m in pairs:
            mods.append(Mod(comp, name, m, rank_of(name, m), alpha_of(comp, name, m), gen, gain, dtype))

    overrides = ALPHA_OVERRIDES.get(stem, {})

    def alpha_default(a):
        return lambda comp, name, m: overrides.get((comp, name), a)

    r4 = lambda name, m: 4  # noqa: E731
    if stem == "sd1_kohya":
        add("unet", select(unet, ATTN_RE), r4, alpha_default(2.0))
        add("text_encoder", select(comps["text_encoder"], TE_RE), r4, alpha_default(2.0))
    elif stem == "bad_shape":
        add("unet", [(n, m) for n, m in select(unet, ATTN_RE) if n.startswith("down_blocks.1.attentions.0.")], r4,
            alpha_default(2.0))
        add("text_encoder", [(n, m) for n, m in select(comps["text_encoder"], TE_RE) if ".layers.0." in n], r4,
            alpha_default(2.0))
    elif stem == "sd1_locon":
        def conv3(m):
            return isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)
        pairs = [(n, m) for n, m in select(unet, re.compile(".*"))
                 if RESNET_RE.search(n) or SAMPLER_RE.search(n) or n in LOCON_ATTENTION]
        add("unet", pairs, lambda name, m: 8 if conv3(m) else 4, lambda comp, name, m: 4.0)
    elif stem == "sd1_te_only":
        add("text_encoder", select(comps["text_encoder"], TE_RE), r4, lambda comp, name, m: 4.0)
    elif stem == "sd1_kohya_ldm":
        pairs = [(n, m) for n, m in select(unet, UNET_ALL_RE) if n != "up_blocks.0.upsamplers.0.conv"]
        add("unet", pairs, r4, alpha_default(2.0))
        add("text_encoder", select(comps["text_encoder"], TE_RE), r4, alpha_default(2.0))
    elif stem == "sdxl_kohya":
        add("unet", select(unet, UNET_ALL_RE), r4, alpha_default(2.0))
        for c in te_names:
            add(c, select(comps[c], TE_RE), r4, alpha_default(2.0))
    else:
        raise ValueError(stem)
    return mods


def write_kohya(stem, pipe, spec, model):
    mods = make_kohya(stem, pipe, spec)
    ldm = spec["format"] == "kohya_ldm"
    unet = pipe.unet
    sd = kohya_state(mods, unet, model, ldm, spec["dtype"])
    extra = {}
    if stem == "sd1_locon":
        extra["ss_network_args"] = json.dumps({"conv_dim": "8", "conv_alpha": "4"})
    meta = kohya_metadata(stem, mods, model, extra)
    path = os.path.join(LORA_DIR, f"{stem}.safetensors")
    safetensors_io.save_file(sd, path, dict(sorted(meta.items())))
    return mods, sd


def make_peft(stem, pipe, spec):
    """Adds PEFT adapters to copies of the models, re-draws them, and writes them with save_lora_weights."""
    comps = components(pipe)
    gen = torch.Generator().manual_seed(spec["seed"])
    if stem == "sd1_peft":
        targets = {"unet": ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"],
                   "text_encoder": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]}
    else:
        targets = {"unet": ["to_q", "to_k", "to_v", "to_out.0"],
                   "text_encoder": ["q_proj", "k_proj", "v_proj", "out_proj"],
                   "text_encoder_2": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]}
    mods, layers = [], {}
    for comp, target in targets.items():
        model = copy.deepcopy(comps[comp])
        model.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=target))
        with torch.no_grad():
            for name, m in model.named_modules():
                if isinstance(m, BaseTunerLayer):
                    base = m.get_base_layer()
                    mod = Mod(comp, name, base, 4, None, gen, spec["gain"], spec["dtype"])
                    m.lora_A["default"].weight.copy_(mod.down)
                    m.lora_B["default"].weight.copy_(mod.up)
                    mods.append(mod)
        sd = get_peft_model_state_dict(model, save_embedding_layers=False)
        if spec["format"] == "peft_diffusers":
            sd = convert_state_dict_to_diffusers(sd)
        layers[comp] = {k: v.detach().clone().contiguous() for k, v in sd.items()}
    save = lambda weights, filename: safetensors_io.save_file(weights, filename, {"format": "pt"})  # noqa: E731
    kwargs = dict(unet_lora_layers=layers["unet"], text_encoder_lora_layers=layers["text_encoder"])
    if "text_encoder_2" in layers:
        kwargs["text_encoder_2_lora_layers"] = layers["text_encoder_2"]
    type(pipe).save_lora_weights(LORA_DIR, weight_name=f"{stem}.safetensors", save_function=save,
                                 safe_serialization=True, **kwargs)
    return mods


# ---------------------------------------------------------------------------------------------------------
# Loading into diffusers, kohya alpha semantics, fusing

def peft_layers(pipe, adapter):
    out = {}
    for comp, model in components(pipe).items():
        for name, m in model.named_modules():
            if isinstance(m, BaseTunerLayer) and adapter in m.lora_A:
                out[(comp, name)] = m
    return out


def load(pipe, stem, adapter, mods, notes):
    kwargs = {}
    if stem == "sd1_kohya_ldm":
        kwargs["unet_config"] = pipe.unet.config  # the SD 1.x loader maps LDM names only when given this
    pipe.load_lora_weights(LORA_DIR, weight_name=f"{stem}.safetensors", adapter_name=adapter, **kwargs)
    fix_alphas(pipe, adapter, mods, notes, stem)


def fix_alphas(pipe, adapter, mods, notes, stem):
    """Checks that every module of the file became a PEFT layer of the right rank, and sets each layer's
    lora_alpha / scaling to kohya's semantics where diffusers chose another (see MAPPING NOTES)."""
    layers = peft_layers(pipe, adapter)
    want = {(m.comp, m.name): m for m in mods}
    assert set(layers) == set(want), (stem, sorted(set(layers) ^ set(want))[:6])
    for key, layer in layers.items():
        mod = want[key]
        assert layer.r[adapter] == mod.rank, (stem, key, layer.r[adapter], mod.rank)
        alpha = mod.alpha if mod.alpha is not None else float(mod.rank)
        if layer.lora_alpha[adapter] != alpha:
            notes.append(f"{stem}: diffusers gave {key[0]}.{key[1]} alpha {layer.lora_alpha[adapter]} "
                         f"(file: {'no alpha key' if mod.alpha is None else mod.alpha}); set to {alpha}")
            layer.lora_alpha[adapter] = alpha
            layer.scaling[adapter] = alpha / layer.r[adapter]
        assert layer.scaling[adapter] == alpha / mod.rank, (stem, key, layer.scaling[adapter])


def set_weights(pipe, adapters, loras):
    weights = [{c: (u if c == "unet" else t) for c in pipe.get_list_adapters() if a in pipe.get_list_adapters()[c]}
               for a, (_, u, t) in zip(adapters, loras)]
    pipe.set_adapters(adapters, adapter_weights=weights)


def fused_weights(pipe, stem, mods, unet_w, te_w, base, notes):
    """Loads one file, fuses it at the multipliers, checks every weight, returns {comp.module: fused weight}."""
    load(pipe, stem, "fuse", mods, notes)
    set_weights(pipe, ["fuse"], [(stem, unet_w, te_w)])
    comps = list(pipe.get_list_adapters())
    pipe.fuse_lora(components=comps, lora_scale=1.0, adapter_names=["fuse"])
    out = {}
    lora_names = {(m.comp, m.name + ".weight") for m in mods}
    for mod in mods:
        w = weight_of(pipe, mod.comp, mod.name).detach().clone()
        mult = unet_w if mod.comp == "unet" else te_w
        ref = base[mod.comp][mod.name + ".weight"] + mult * mod.scale * mod.delta()
        err = (w - ref).abs().max().item()
        assert err <= 1e-5 * ref.abs().max().item(), (stem, mod.comp, mod.name, err)
        assert not torch.equal(w, base[mod.comp][mod.name + ".weight"]), (stem, mod.name)
        out[f"{mod.comp}.{mod.name}"] = w
    # No other weight changed.
    for comp, model in components(pipe).items():
        for k, v in model.state_dict().items():
            if "lora_" in k:
                continue
            plain = k.replace(".base_layer.", ".")
            if (comp, plain) in lora_names:
                continue
            assert torch.equal(v, base[comp][plain]), (stem, comp, k)
    pipe.unfuse_lora(components=comps)
    pipe.unload_lora_weights()
    restore(pipe, base)
    return out


def restore(pipe, base):
    for comp, model in components(pipe).items():
        model.load_state_dict(base[comp])
    assert_base(pipe, base)


# ---------------------------------------------------------------------------------------------------------
# Pipeline runs

def run(pipe, model, seed, prompt, negative):
    w, h = SIZES[model]
    with torch.no_grad():
        lat = pipe(prompt, negative_prompt=negative, height=h, width=w, num_inference_steps=STEPS,
                   guidance_scale=CFG, generator=torch.Generator("cpu").manual_seed(seed),
                   output_type="latent").images
    if model == "sd1":
        vae = pipe.vae
        with torch.no_grad():
            img = vae.decode(lat / vae.config.scaling_factor).sample
        img8 = ((img / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    else:
        img8 = sg.decode_as_pipeline(pipe, lat).permute(2, 0, 1)[None]
    assert torch.isfinite(lat).all()
    return lat.contiguous(), img8.contiguous()


def main():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    diffusers.utils.logging.disable_progress_bar()
    sg.check_words([dict(name=c[0], prompt=c[4], negative=c[5]) for c in CASES])
    os.makedirs(LORA_DIR, exist_ok=True)
    pipes = {"sd1": build_sd1(), "sdxl": build_sdxl()}
    bases = {m: snapshot(p) for m, (p, _) in pipes.items()}
    notes = []

    # 1. LoRA files.
    mods, infos = {}, {}
    for stem, spec in FILES.items():
        model = spec["model"]
        pipe = pipes[model][0]
        if spec["format"].startswith("peft"):
            mods[stem] = make_peft(stem, pipe, spec)
        else:
            mods[stem], _ = write_kohya(stem, pipe, spec, model)
        assert_base(pipe, bases[model])
    # bad_shape: sd1_kohya's modules, one lora_up a row short.
    bad_mods = make_kohya("bad_shape", pipes["sd1"][0], dict(FILES["sd1_kohya"], seed=1108))
    bad = kohya_state(bad_mods, pipes["sd1"][0].unet, "sd1", False, torch.float16)
    bad_key = kohya_key(next(m for m in bad_mods if (m.comp, m.name) == BAD_SHAPE_MODULE), None, "sd1", False)
    bad[bad_key + ".lora_up.weight"] = bad[bad_key + ".lora_up.weight"][:-1].contiguous()
    safetensors_io.save_file(bad, os.path.join(LORA_DIR, "bad_shape.safetensors"),
                             dict(sorted(kohya_metadata("bad_shape", bad_mods, "sd1").items())))

    for stem in list(FILES) + ["bad_shape"]:
        path = os.path.join(LORA_DIR, f"{stem}.safetensors")
        header = safetensors_io.load_file(path)
        file_mods = mods.get(stem, bad_mods)
        info = dict(format=FILES.get(stem, dict(format="kohya"))["format"],
                    dtype=str(FILES.get(stem, dict(dtype=torch.float16))["dtype"]).replace("torch.", ""),
                    modules=len(file_mods), keys=len(header), bytes=os.path.getsize(path), sha256=sha256(path))
        if stem in mods:
            default = max(set(m.scale for m in file_mods), key=lambda s: sum(m.scale == s for m in file_mods))
            info["default_scale"] = default
            info["alpha_scales"] = {f"{m.comp}.{m.name}": m.scale for m in file_mods if m.scale != default}
        infos[stem] = info
        print(f"{os.path.relpath(path, ROOT)}: {len(file_mods)} modules, {len(header)} tensors, "
              f"{info['bytes']} bytes")
        kinds = {}
        for k in sorted(header):
            kind = re.sub(r"\d+", "N", k)
            kinds.setdefault(kind, k)
        for kind, example in sorted(kinds.items()):
            print(f"    {example}  {list(header[example].shape)} {header[example].dtype}")

    # bad_shape must be refused.
    pipe = pipes["sd1"][0]
    try:
        pipe.load_lora_weights(LORA_DIR, weight_name="bad_shape.safetensors", adapter_name="bad")
    except Exception as e:  # noqa: BLE001
        print(f"bad_shape.safetensors refused by diffusers: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    else:
        raise AssertionError("diffusers loaded bad_shape.safetensors")
    pipe.unload_lora_weights()
    restore(pipe, bases["sd1"])

    # sd1_kohya_ldm without unet_config: what the SD 1.x loader does with LDM names on its own.
    try:
        pipe.load_lora_weights(LORA_DIR, weight_name="sd1_kohya_ldm.safetensors", adapter_name="ldm_plain")
        got = peft_layers(pipe, "ldm_plain")
        notes.append(f"sd1_kohya_ldm without unet_config: loaded {len(got)} of {len(mods['sd1_kohya_ldm'])} modules")
    except Exception as e:  # noqa: BLE001
        notes.append(f"sd1_kohya_ldm without unet_config: refused ({type(e).__name__}: "
                     f"{re.sub(r'{.*}', '{...}', str(e).splitlines()[0])[:160]})")
    pipe.unload_lora_weights()
    restore(pipe, bases["sd1"])

    # 2. Fused weights.
    tensors = {}
    meta = {"script": SCRIPT, "git": mg.git_hash(), "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__,
            "huggingface_hub": huggingface_hub.__version__,
            "scheduler_config.sd1": json.dumps(pipes["sd1"][1]), "scheduler_config.sdxl": json.dumps(pipes["sdxl"][1])}
    for stem, info in infos.items():
        meta[f"files.{stem}"] = json.dumps(info)
    fused_all = {}
    for label, (stem, uw, tw) in FUSED.items():
        model = FILES[stem]["model"]
        pipe = pipes[model][0]
        fused = fused_weights(pipe, stem, mods[stem], uw, tw, bases[model], notes)
        fused_all[label] = fused
        params = FUSED_PARAMS[stem]
        for p in params:
            comp, name = p.split(".", 1)
            tensors[f"fused.{label}.{p}.weight"] = fused[p]
            base_w = bases[model][comp][name + ".weight"]
            tensors[f"base.{model}.{p}.weight"] = base_w.clone()
            rel = (fused[p] - base_w).abs().mean().item() / base_w.abs().mean().item()
            print(f"fused.{label}.{p}.weight {list(base_w.shape)}: mean |delta| / mean |W| = {rel:.3f}")
        meta[f"fused.{label}.params"] = json.dumps(dict(file=f"{stem}.safetensors", model=model, unet=uw, te=tw,
                                                        params=[p + ".weight" for p in params]))
    # The LDM-named file against the same LoRA in diffusers naming (in memory).
    pipe = pipes["sd1"][0]
    same = kohya_state(mods["sd1_kohya_ldm"], pipe.unet, "sd1", False, torch.float16)
    pipe.load_lora_weights(same, adapter_name="fuse")
    fix_alphas(pipe, "fuse", mods["sd1_kohya_ldm"], notes, "sd1_kohya_ldm (diffusers naming)")
    pipe.fuse_lora(components=["unet", "text_encoder"], lora_scale=1.0, adapter_names=["fuse"])
    for key, w in fused_all["sd1_kohya_ldm"].items():
        comp, name = key.split(".", 1)
        assert torch.equal(weight_of(pipe, comp, name), w), key
    print(f"sd1_kohya_ldm: all {len(fused_all['sd1_kohya_ldm'])} fused weights bit-identical to the same LoRA "
          f"in diffusers naming")
    pipe.unfuse_lora(components=["unet", "text_encoder"])
    pipe.unload_lora_weights()
    restore(pipe, bases["sd1"])

    # 3. Cases.
    latents = {}
    for name, model, loras, seed, prompt, negative in CASES:
        pipe = pipes[model][0]
        adapters = []
        for i, (stem, uw, tw) in enumerate(loras):
            adapter = f"{stem}_{i}"
            load(pipe, stem, adapter, mods[stem], notes)
            adapters.append(adapter)
        if adapters:
            set_weights(pipe, adapters, loras)
        lat, img = run(pipe, model, seed, prompt, negative)
        if adapters:
            pipe.unload_lora_weights()
        assert_base(pipe, bases[model])
        ref_lat, ref_img = run(pipe, model, seed, prompt, negative)  # the same run without the LoRAs
        diff, _, _ = record_case(name, model, loras, seed, prompt, negative, lat, img, ref_img, tensors, meta, latents)
        if adapters:
            assert diff > MIN_MEAN_DIFF, (name, diff)
        else:
            assert torch.equal(lat, ref_lat)
    sg.assert_all_differ(latents)
    meta["cases"] = json.dumps([c[0] for c in CASES])

    save_goldens(tensors, meta, GOLDEN)
    print("MAPPING NOTES:")
    for n in dict.fromkeys(notes):
        print("  " + n)


if __name__ == "__main__":
    main()
