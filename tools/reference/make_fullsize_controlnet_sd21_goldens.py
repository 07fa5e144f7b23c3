#!/work/refvenv/bin/python
"""A ControlNet on the FULL-SIZE random SD 2.1 (768-v): the SD 2.1 counterpart of make_fullsize_controlnet_goldens.py
(SD 1.5), on make_fullsize_goldens.py's SD 2.1 checkpoint, in diffusers mode at 64x64 (8x8 latents): small images,
full-size networks, the real key layouts of v2-1_768-ema-pruned and of the community's SD 2.1 ControlNets.

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline:

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_fullsize_controlnet_sd21_goldens.py
    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_fullsize_controlnet_sd21_goldens.py gains

(`gains` writes nothing: it measures how far the ControlNet moves each case's image at zero-conv gains 1, 2, 4, 8 and
16, the table below.)

Versions (requirements-pip.txt): torch 2.4.1 (CPU), diffusers 0.30.3, transformers 4.40.2; float32 on the CPU, ONE
torch thread (THREADS; make_fullsize_sdxl_goldens' docstring: the last bits depend on it).
Measured on the shared 2-core machine (/usr/bin/time -v): about 1 min 45 s wall (the SD 2.1 models 14 s, the
ControlNet 3 to 13 s, each 4-step run 8 to 12 s; 9 runs), peak RSS 7.47 million KB (7.1 GiB: the fp32 SD 2.1
models 5.2 GB, the ControlNet 1.46 GB). The same bytes on every run (checked, two runs). `gains`: 3 min 32 s,
7.50 million KB.

Weights
-------
Both networks are pure functions of published key lists (make_fullsize_goldens.weight(i, name, shape): randn seeded
1000 + i, scaled per kind, rounded to fp16, used in fp32; i = the tensor's 0-based index in ITS OWN list):
  SD 2.1      tests/data/keys/sd21.ldm.json.gz, built exactly as make_fullsize_lora_goldens.build_pipeline("sd21")
              builds it (diffusers' single-file converters, SD 2.1's published configs: OpenCLIP ViT-H text
              encoder (1024 wide, the 23 layers diffusers keeps), linear proj_in/proj_out, attention_head_dim
              [5, 10, 20, 20], upcast_attention; mg.ZeroedAttnProcessor on UNet and VAE, CLIP's real BPE
              vocabulary padded with "!" = id 0, v-prediction); checked against the sibling goldens: the rebuilt
              StableDiffusionPipeline reproduces fullsize_sd21_cases.safetensors' diffusers_euler latent.
  ControlNet  tests/data/keys/controlnet_sd21.ldm.json.gz (make_key_lists.py controlnet_sd21; its
              CONTROLNET_SD21_CASES comment has what is known and what is assumed about the community's SD 2.1
              ControlNet files): cldm_v21.yaml's ControlNet, every key prefixed "control_model.", names and shapes
              from ControlNetModel.from_unet(SD 2.1's UNet, conditioning_embedding_out_channels (16, 32, 96, 256))
              in its state-dict order, mapped to the cldm names (input_hint_block.{0,2,...,14}, zero_convs.{0..11}.0,
              middle_block_out.0, time_embed.*, input_blocks.*, middle_block.*), proved against diffusers'
              convert_controlnet_checkpoint by make_key_lists.py. Here: weight(i, name, shape) over that list
              (names WITH the prefix, as the C++ side's random_checkpoint sees them), GAIN below, then diffusers
              0.30.3's convert_controlnet_checkpoint(ldm, config) (it strips the prefix) and
              load_state_dict(strict=True, assign=True) into ControlNetModel built on the meta device from the same
              config (SD 2.1's: use_linear_projection, upcast_attention, attention_head_dim [5, 10, 20, 20],
              cross_attention_dim 1024); every list entry used exactly once (checked: each converted tensor IS the
              list's tensor of the name make_key_lists maps it from); mg.ZeroedAttnProcessor on the ControlNet, as
              on the UNet.
GAIN = 8: after the weight rule, the 26 zero-conv tensors (control_model.zero_convs.{0..11}.0.weight/.bias and
control_model.middle_block_out.0.weight/.bias) are multiplied by 8. A power of two, so weight(i, name, shape) * 8 is
exactly representable in fp16 (checked per tensor): a reimplementation takes the fp16 checkpoint of the key list and
multiplies those 26 F16 tensors by 8, no rounding involved. Why: as for SD 1.5, the weight rule gives the zero convs
the scale of an ordinary layer (randn / sqrt(C)); at gain 1 fullsize_cn_sd21 already moves 6.3 levels, but
fullsize_cn_sd21_guess (0.7 times logspace(-1, 0, 13), on half the batch, two steps of four) only 0.98 levels: the
C++ test's own image bound (1). Measured with `gains` (mean |image - without ControlNet| in levels of 255, max in
brackets, and mean |latent diff|; final latents have std about 0.63):
    gain   fullsize_cn_sd21       fullsize_cn_sd21_guess
      1    6.32 (57)  0.069       0.98 ( 8)  0.009
      2    7.81 (76)  0.088       1.73 (14)  0.016
      4    7.95 (74)  0.091       2.80 (22)  0.025
      8    7.93 (70)  0.095       4.48 (37)  0.040
     16    7.97 (68)  0.098       6.53 (54)  0.058
fullsize_cn_sd21 levels off from gain 2 (why not examined); gain 8 is the smallest at which
the guess case moves several levels (4.5, like the SD 1.5 golden's 4.1 at its gain 4); no case saturates (at 8: +0.4
and +0.2 % of pixels at 0 or 255; the random SD 2.1 already puts 17 to 19 % there). Stored as metadata "gain" and as
each case's controlnets[0].gain.

Control image: tests/golden/data/controlnet/fullsize_control.png, the SD 1.5 golden's (make_fullsize_controlnet_
goldens.py writes it; read here, checked equal to make_controlnet_goldens.edge_map(64, 64) in all three channels,
never written). At the call's size already, so the pipeline's prepare_image only divides by 255 (checked).

Pipeline: StableDiffusionControlNetPipeline(the SD 2.1 components, controlnet, EulerDiscreteScheduler.from_config(
make_fullsize_goldens.sd_scheduler_config(True)): SD's single-file config with prediction_type "v_prediction",
"linspace" spacing, steps_offset 1), safety checker off, called as pipe(prompt, negative_prompt, image=<the PNG as
PIL>, height=64, width=64, num_inference_steps, guidance_scale, controlnet_conditioning_scale,
control_guidance_start, control_guidance_end, guess_mode, generator=torch.Generator("cpu").manual_seed(seed),
output_type="latent"); the image decoded as the siblings decode: round(clamp(vae.decode(latent / 0.18215) / 2 + 0.5)
* 255).

Writes
------
tests/golden/data/fullsize_controlnet_sd21_cases.safetensors (safetensors_io: fixed header order, sorted metadata;
the same bytes on every run, checked across runs):
  <case>.latent  float32 [1, 4, 8, 8]   the pipeline's final latent
  <case>.image   uint8 [1, 3, 64, 64]   CHW RGB
  metadata <case>.params (JSON): as make_fullsize_controlnet_goldens.py writes them: model "sd21", keys (the base
      model's key list, relative to tests/data: "keys/sd21.ldm.json.gz"), prediction "v" (a single file cannot say:
      the C++ test passes it as LoadOptions.prediction), mode "diffusers", scheduler "euler", spacing, steps, cfg,
      seed, prompt, negative, width, height, guess_mode, controlnets: [{name, file: "keys/controlnet_sd21.ldm.json.gz"
      (the KEY LIST, relative to tests/data: a test writes its random checkpoint), image:
      "controlnet/fullsize_control.png" (relative to tests/golden/data), scale, start, end, gain}], controlnet_keep
      (per step, per ControlNet: diffusers' keep = 1 - (i / steps < start or (i + 1) / steps > end)),
      mean_abs_image_diff_vs_no_controlnet (levels of 255), mean_abs_latent_diff_vs_no_controlnet,
      max_abs_image_diff_vs_no_controlnet; fullsize_cn_sd21_guess also mean_abs_{image,latent}_diff_vs_every_step
      (the same case with start 0, end 1) and mean_abs_{image,latent}_diff_vs_not_guess_mode.
  metadata also: script, git, torch, diffusers, transformers, huggingface_hub, cases (names in order), keys,
      prediction, controlnet_keys, controlnet_prefix, controlnet_tensors, controlnet_keys_sha256 (of the .json.gz),
      controlnet_config (ControlNetModel's config: from_unet(SD 2.1's UNet)), weights, gain, scheduler_config,
      sibling_check, conversion_check, notes.

Cases (64x64, Euler, 4 steps, CFG 7)
  fullsize_cn_sd21        scale 1.0, start 0, end 1
  fullsize_cn_sd21_guess  scale 0.7, guess_mode (the ControlNet on the prompt's half only, its residuals scaled by
                          logspace(-1, 0, 13) * 0.7, zero for the negative half), start 0.0, end 0.5 (acts at steps
                          0-1 of 0-3; at steps 2-3 the pipeline still runs it, at scale 0)
  Measured at GAIN 8: fullsize_cn_sd21 moves the image by 7.93 levels on average (max 70) and the latent by 0.095
  (mean |.|; latent std 0.62); fullsize_cn_sd21_guess by 4.48 (max 37) and 0.040. Against the same case at every step
  fullsize_cn_sd21_guess differs by 5.87 levels and 0.052 in the latent (26 times the C++ test's latent atol 2e-3);
  against the same case without guess mode by 4.29 levels and 0.038 in the latent.
Checks (asserted on every run): the key list on disk is make_key_lists' list (names, shapes, dtypes); the conversion
uses every list entry once and loads strictly; the sibling's diffusers_euler latent reproduced (< 1e-4); the
ControlNet pipeline at controlnet_conditioning_scale 0.0 gives the base pipeline's latent bit for bit; each case's
image differs from the same run without ControlNet by more than MIN_MEAN_DIFF levels on average, with under
MAX_SAT_RISE more saturated pixels; fullsize_cn_sd21_guess's latent differs from the same case at every step and
from the same case without guess mode by more than MIN_LATENT_DIFF_WINDOW on average; the control image is the
edge map and the control input is the PNG / 255; all latents pairwise different and finite.
"""
import gzip
import hashlib
import json
import os
import sys
import tempfile
import time

import numpy as np
import PIL.Image
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_fullsize_lora_goldens as flg  # noqa: E402  (first: its imports stub `clip` before k_diffusion; SD 2.1)
import make_controlnet_goldens as cg  # noqa: E402  (edge_map, keep_table)
import make_fullsize_goldens as fg  # noqa: E402  (the weight rule)
import make_key_lists as mk  # noqa: E402  (the ControlNet key list and its config)
import make_model_goldens as mg  # noqa: E402  (git_hash, ZeroedAttnProcessor)
import make_sdxl_goldens as sx  # noqa: E402  (versions, assert_all_differ)
import make_sdxl_key_lists as kl  # noqa: E402  (meta-device builder)
import safetensors_io  # noqa: E402

import diffusers  # noqa: E402
from diffusers import ControlNetModel, EulerDiscreteScheduler, StableDiffusionControlNetPipeline  # noqa: E402
from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint  # noqa: E402

ROOT = flg.ROOT
OUT = os.path.join(ROOT, "tests", "golden", "data")
DATA = os.path.join(ROOT, "tests", "data")
GOLDEN = os.path.join(OUT, "fullsize_controlnet_sd21_cases.safetensors")
IMAGE = os.path.join(OUT, "controlnet", "fullsize_control.png")  # the SD 1.5 golden's; read only
SCRIPT = "tools/reference/make_fullsize_controlnet_sd21_goldens.py"
MODEL = "sd21"
BASE_KEYS = "keys/sd21.ldm.json.gz"  # relative to tests/data
CN_NAME, CN_UNET, CN_COND, CN_PREFIX, CN_DTYPE = mk.CONTROLNET_SD21_CASES[0]
CN_KEYS = f"keys/{CN_NAME}.ldm.json.gz"
THREADS = 1
SIZE, CFG, STEPS = 64, 7.0, 4
# Multiplies the ControlNet's zero convs (zero_convs.*, middle_block_out.*: weights and biases) after the weight
# rule. A power of two, so the product of an fp16 value is again an fp16 value, exactly (checked): the C++ side may
# multiply the F16 tensors of its random checkpoint by it. 1.0 would leave the weight rule's values as they are.
GAIN = 8.0
MEASURED_GAINS = (1.0, 2.0, 4.0, 8.0, 16.0)  # the `gains` subcommand
MIN_MEAN_DIFF = 2.0  # levels of 255
MAX_SAT_RISE = 0.05  # fraction of pixels newly at 0 or 255
# The windowed case against the same case at every step, and against the same case without guess mode: 10 times the
# C++ test's latent atol.
MIN_LATENT_DIFF_WINDOW = 0.02

# name, scale, start, end, guess_mode, seed, prompt, negative
CASES = [
    ("fullsize_cn_sd21", 1.0, 0.0, 1.0, False, 721, "a house with a red door and a round window", "blurry"),
    ("fullsize_cn_sd21_guess", 0.7, 0.0, 0.5, True, 722, "a lighthouse on a rocky coast at night", ""),
]


def is_zero_conv(name):
    bare = name[len(CN_PREFIX):] if name.startswith(CN_PREFIX) else name
    return bare.startswith("zero_convs.") or bare.startswith("middle_block_out.")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def read_list(rel):
    with gzip.open(os.path.join(DATA, rel), "rt") as f:
        return json.load(f)["tensors"]


def build_controlnet(notes, gain):
    """ControlNetModel from the key list (see the docstring), zero convs times `gain`. Returns (model, config,
    conversion note)."""
    t0 = time.time()
    tensors = read_list(CN_KEYS)
    want, _, config = mk.controlnet_ldm_list(CN_UNET, CN_COND, CN_PREFIX)
    assert [[n, s, d] for n, s, d in tensors] == [[n, s, CN_DTYPE] for n, s in want.items()], \
        f"{CN_KEYS} is not make_key_lists' list: run make_key_lists.py controlnet_sd21"
    ldm = {}
    for i, (name, shape, _) in enumerate(tensors):
        w = fg.weight(i, name, shape)
        if gain != 1.0 and is_zero_conv(name):
            w = w * gain
            assert torch.equal(w.half().float(), w), name  # exact in fp16: no rounding, no overflow
        ldm[name] = w
    conv = convert_controlnet_checkpoint(ldm, dict(config))
    # Every list entry used once, each where make_key_lists maps it (the converter hands the same tensor objects on).
    levels, lpb = len(CN_UNET["block_out_channels"]), CN_UNET["layers_per_block"]
    hint = 2 * (len(CN_COND) - 1)
    for k, v in conv.items():
        assert v is ldm[CN_PREFIX + mk.ldm_controlnet_name(k, levels, lpb, hint)], k
    assert len(conv) == len(ldm) and len({id(v) for v in conv.values()}) == len(ldm)
    cn = kl.build_diffusers(ControlNetModel, config)
    cn.load_state_dict(conv, strict=True, assign=True)
    left = [n for n, t in list(cn.named_parameters()) + list(cn.named_buffers()) if t.is_meta]
    assert not left, left[:5]
    cn.set_attn_processor(mg.ZeroedAttnProcessor())
    # SD 2.1's settings, copied from the UNet's config.
    assert cn.config.use_linear_projection and cn.config.upcast_attention
    assert list(cn.config.attention_head_dim) == [5, 10, 20, 20] and cn.config.cross_attention_dim == 1024
    note = (f"{CN_KEYS}: {len(tensors)} tensors (prefix {CN_PREFIX!r}); diffusers' "
            f"convert_controlnet_checkpoint gives {len(conv)} ControlNetModel tensors, each the list's tensor of the "
            f"name make_key_lists maps it from, every entry used once; load_state_dict strict")
    notes.append(note)
    print(f"ControlNet: {note}; built in {time.time() - t0:.0f} s, peak RSS {flg.peak_rss_gb():.1f} GB", flush=True)
    zc = [v for n, v in ldm.items() if is_zero_conv(n) and n.endswith("weight")]
    assert sum(is_zero_conv(n) for n in ldm) == 26  # zero_convs.0-11 and middle_block_out: weight and bias
    print(f"  zero conv weights (times gain {gain}): mean |w| "
          f"{torch.cat([z.reshape(-1) for z in zc]).abs().mean().item():.4f}", flush=True)
    return cn.eval(), config, note


def control_image():
    """The SD 1.5 golden's control PNG, checked to be the 64x64 edge map in all three channels."""
    arr = np.stack([cg.edge_map(SIZE, SIZE)] * 3, axis=-1)
    img = PIL.Image.open(IMAGE)
    assert img.mode == "RGB" and np.array_equal(np.asarray(img), arr), IMAGE
    return img.convert("RGB"), arr


def case_dict(case):
    name, scale, start, end, guess, seed, prompt, negative = case
    return dict(name=name, steps=STEPS, nets=[("fullsize", "fullsize_control", scale, start, end)])


def controlnet_pipeline(pipe, cn, sched_cfg):
    cpipe = StableDiffusionControlNetPipeline(
        vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=pipe.unet, controlnet=cn,
        scheduler=EulerDiscreteScheduler.from_config(sched_cfg), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    cpipe.set_progress_bar_config(disable=True)
    return cpipe


def run_controlnet(pipe, cn, sched_cfg, image, case, scale=None, start=None, end=None, guess=None):
    name, c_scale, c_start, c_end, c_guess, seed, prompt, negative = case
    cpipe = controlnet_pipeline(pipe, cn, sched_cfg)
    with torch.no_grad():
        lat = cpipe(prompt, negative_prompt=negative, image=image, height=SIZE, width=SIZE,
                    num_inference_steps=STEPS, guidance_scale=CFG,
                    controlnet_conditioning_scale=c_scale if scale is None else scale,
                    control_guidance_start=c_start if start is None else start,
                    control_guidance_end=c_end if end is None else end,
                    guess_mode=c_guess if guess is None else guess,
                    generator=torch.Generator("cpu").manual_seed(seed), output_type="latent").images
        dec = pipe.vae.decode(lat / pipe.vae.config.scaling_factor).sample
        img = ((dec / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    assert torch.isfinite(lat).all(), name
    return cpipe, lat.contiguous(), img.contiguous()


def saturated(img):
    return ((img == 0) | (img == 255)).float().mean().item()


def measure_gains(pipe, sched_cfg, image):
    """`gains`: each case's mean |image - without ControlNet| at MEASURED_GAINS (the zero convs rescaled in place
    from the gain-1 values: exact, powers of two). Writes nothing."""
    cn, _, _ = build_controlnet([], 1.0)
    zero = {n: p.detach().clone() for n, p in cn.named_parameters()
            if n.startswith("controlnet_down_blocks.") or n.startswith("controlnet_mid_block.")}
    assert len(zero) == 26, len(zero)
    refs = {c[0]: flg.run(pipe, MODEL, sched_cfg, STEPS, c[5], c[6], c[7]) for c in CASES}
    rows = []
    for g in MEASURED_GAINS:
        with torch.no_grad():
            for n, p in cn.named_parameters():
                if n in zero:
                    p.copy_(zero[n] * g)
        row = [g]
        for case in CASES:
            ref_lat, ref_img = refs[case[0]]
            _, lat, img = run_controlnet(pipe, cn, sched_cfg, image, case)
            diff = (img.float() - ref_img.float()).abs()
            row.append((diff.mean().item(), int(diff.max().item()), (lat - ref_lat).abs().mean().item(),
                        saturated(img) - saturated(ref_img)))
            print(f"gain {g:g} {case[0]}: mean |image diff| {row[-1][0]:.2f} levels (max {row[-1][1]}), mean "
                  f"|latent diff| {row[-1][2]:.3f}, saturated {row[-1][3]:+.2%}; peak RSS {flg.peak_rss_gb():.1f} "
                  f"GB", flush=True)
        rows.append(row)
    print("gain  " + "  ".join(f"{c[0]}: mean (max) levels, latent" for c in CASES))
    for row in rows:
        print(f"{row[0]:4g}  " + "  ".join(f"{m:6.2f} ({mx:3d}), {ld:.3f}" for m, mx, ld, _ in row[1:]))


def main():
    torch.set_num_threads(THREADS)
    diffusers.utils.logging.disable_progress_bar()
    start = time.time()
    gains_only = sys.argv[1:] == ["gains"]
    assert sys.argv[1:] in ([], ["gains"]), "usage: make_fullsize_controlnet_sd21_goldens.py [gains]"
    notes = []
    flg.fsx.check_prompts([dict(name=c[0], prompt=c[6], negative=c[7]) for c in CASES],
                          flg.tokenizers(tempfile.mkdtemp())[0].get_vocab())
    image, arr = control_image()
    pipe, sched_cfg = flg.build_pipeline(MODEL, tempfile.mkdtemp())
    assert sched_cfg["prediction_type"] == "v_prediction"
    print(f"pipeline built in {time.time() - start:.0f} s; peak RSS {flg.peak_rss_gb():.1f} GB", flush=True)
    sibling_err = flg.check_sibling(pipe, MODEL, sched_cfg)
    if gains_only:
        measure_gains(pipe, sched_cfg, image)
        print(f"{time.time() - start:.0f} s in all; peak RSS {flg.peak_rss_gb():.1f} GB", flush=True)
        return
    cn, cn_config, conv_note = build_controlnet(notes, GAIN)

    # The control input: the PNG / 255 (no resize at the call's size).
    probe = controlnet_pipeline(pipe, cn, sched_cfg)
    control = probe.prepare_image(image, width=SIZE, height=SIZE, batch_size=1, num_images_per_prompt=1,
                                  device=torch.device("cpu"), dtype=torch.float32, do_classifier_free_guidance=False)
    assert torch.equal(control, torch.from_numpy(arr).float().div(255).permute(2, 0, 1)[None])
    del probe

    tensors, meta, latents = {}, {}, {}
    for i, case in enumerate(CASES):
        name, scale, c_start, c_end, guess, seed, prompt, negative = case
        t0 = time.time()
        ref_lat, ref_img = flg.run(pipe, MODEL, sched_cfg, STEPS, seed, prompt, negative)
        t_ref = time.time() - t0
        if i == 0:  # scale 0 adds exactly nothing: the ControlNet pipeline is then the base pipeline, bit for bit
            _, lat0, _ = run_controlnet(pipe, cn, sched_cfg, image, case, scale=0.0)
            assert torch.equal(lat0, ref_lat), name
            notes.append(f"{name} at controlnet_conditioning_scale 0.0: the base pipeline's latent bit for bit")
        t1 = time.time()
        cpipe, lat, img = run_controlnet(pipe, cn, sched_cfg, image, case)
        t_cn = time.time() - t1
        diff = (img.float() - ref_img.float()).abs()
        lat_diff = (lat - ref_lat).abs().mean().item()
        sat, sat0 = saturated(img), saturated(ref_img)
        print(f"{name}: scale {scale} start {c_start} end {c_end} guess {guess}: mean |image - no-ControlNet image| "
              f"{diff.mean().item():.2f} levels (max {diff.max().item():.0f}), mean |latent diff| {lat_diff:.3f}, "
              f"image mean {img.float().mean().item():.1f} std {img.float().std().item():.1f}, saturated {sat:.1%} "
              f"(without {sat0:.1%}), latent std {lat.std().item():.3f} (without {ref_lat.std().item():.3f}); base "
              f"run {t_ref:.0f} s, ControlNet run {t_cn:.0f} s; peak RSS {flg.peak_rss_gb():.1f} GB", flush=True)
        assert diff.mean().item() > MIN_MEAN_DIFF and sat - sat0 < MAX_SAT_RISE, (name, diff.mean().item(), sat, sat0)
        extra = {}
        if c_start > 0 or c_end < 1:  # the window matters: the same case with the ControlNet at every step
            _, full_lat, full_img = run_controlnet(pipe, cn, sched_cfg, image, case, start=0.0, end=1.0)
            extra["mean_abs_image_diff_vs_every_step"] = round((img.float() - full_img.float()).abs().mean().item(), 3)
            extra["mean_abs_latent_diff_vs_every_step"] = round((lat - full_lat).abs().mean().item(), 4)
            print(f"  the same at every step: mean |image diff| {extra['mean_abs_image_diff_vs_every_step']:.2f} "
                  f"levels, mean |latent diff| {extra['mean_abs_latent_diff_vs_every_step']:.4f}", flush=True)
            assert extra["mean_abs_latent_diff_vs_every_step"] > MIN_LATENT_DIFF_WINDOW, name
        if guess:  # guess mode matters: the same case without it
            _, ng_lat, ng_img = run_controlnet(pipe, cn, sched_cfg, image, case, guess=False)
            ng_diff = (img.float() - ng_img.float()).abs().mean().item()
            extra["mean_abs_image_diff_vs_not_guess_mode"] = round(ng_diff, 3)
            extra["mean_abs_latent_diff_vs_not_guess_mode"] = round((lat - ng_lat).abs().mean().item(), 4)
            print(f"  the same without guess mode: mean |image diff| "
                  f"{extra['mean_abs_image_diff_vs_not_guess_mode']:.2f} levels, mean |latent diff| "
                  f"{extra['mean_abs_latent_diff_vs_not_guess_mode']:.4f}", flush=True)
            assert extra["mean_abs_latent_diff_vs_not_guess_mode"] > MIN_LATENT_DIFF_WINDOW, name
        tensors[f"{name}.latent"] = lat
        tensors[f"{name}.image"] = img
        latents[name] = lat
        meta[f"{name}.params"] = json.dumps(dict(
            model=MODEL, keys=BASE_KEYS, prediction="v", mode="diffusers", scheduler="euler",
            spacing=cpipe.scheduler.config.timestep_spacing, steps=STEPS, cfg=CFG, seed=seed, prompt=prompt,
            negative=negative, width=SIZE, height=SIZE, guess_mode=guess,
            controlnets=[dict(name=CN_NAME, file=CN_KEYS, image="controlnet/fullsize_control.png",
                              scale=scale, start=c_start, end=c_end, gain=GAIN)],
            controlnet_keep=cg.keep_table(case_dict(case)),
            mean_abs_image_diff_vs_no_controlnet=round(diff.mean().item(), 3),
            max_abs_image_diff_vs_no_controlnet=int(diff.max().item()),
            mean_abs_latent_diff_vs_no_controlnet=round(lat_diff, 4), **extra))
    sx.assert_all_differ(latents)
    del pipe, cn

    meta.update(sx.versions(SCRIPT))
    meta.update({
        "git": mg.git_hash(), "cases": json.dumps([c[0] for c in CASES]), "keys": BASE_KEYS, "prediction": "v",
        "controlnet_keys": CN_KEYS, "controlnet_prefix": CN_PREFIX,
        "controlnet_tensors": str(len(read_list(CN_KEYS))),
        "controlnet_keys_sha256": sha256(os.path.join(DATA, CN_KEYS)),
        "controlnet_config": json.dumps({k: v for k, v in cn_config.items() if not k.startswith("_")}, sort_keys=True),
        "weights": "make_fullsize_goldens.weight(i, name, shape) over each key list (the base model: sd21.ldm.json.gz; "
                   "the ControlNet: controlnet_sd21.ldm.json.gz, names with the control_model. prefix), i the index in "
                   "that list, fp16-rounded, used in fp32",
        "gain": json.dumps(dict(value=GAIN, applies_to="control_model.zero_convs.*, control_model.middle_block_out.* "
                                                       "(weights and biases: 26 tensors)",
                                rule="w = weight(i, name, shape) * gain: exact in fp16 (a power of two), so the "
                                     "fp16 checkpoint's tensors times gain")),
        "scheduler_config": json.dumps(sched_cfg),
        "sibling_check": json.dumps(dict(file=flg.SIBLINGS[MODEL], case="diffusers_euler",
                                         max_abs_latent_diff=sibling_err)),
        "conversion_check": conv_note,
        "notes": json.dumps(list(dict.fromkeys(notes))),
    })
    for k, v in tensors.items():
        if v.is_floating_point():
            assert v.dtype == torch.float32 and torch.isfinite(v).all(), k
    safetensors_io.save_file({k: v.detach().clone().contiguous() for k, v in sorted(tensors.items())}, GOLDEN,
                             dict(sorted(meta.items())))
    print(f"wrote {os.path.relpath(GOLDEN, ROOT)}: {len(tensors)} tensors, {os.path.getsize(GOLDEN)} bytes",
          flush=True)
    for n in dict.fromkeys(notes):
        print("  note: " + n)
    print(f"{time.time() - start:.0f} s in all; peak RSS {flg.peak_rss_gb():.1f} GB", flush=True)


if __name__ == "__main__":
    main()
