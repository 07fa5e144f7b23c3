#!/work/refvenv/bin/python
"""A ControlNet on the FULL-SIZE random SDXL base 1.0: the SDXL counterpart of make_fullsize_controlnet_sd21_goldens.py
(SD 2.1) and make_fullsize_controlnet_goldens.py (SD 1.5), on make_fullsize_sdxl_goldens.py's SDXL base checkpoint,
in diffusers mode at 64x64 (8x8 latents): small images, full-size networks, the real key layouts of sd_xl_base_1.0 and
of the diffusers-format SDXL ControlNets.

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline, with a fixed
malloc mmap threshold (so freed tensors go back to the system: the script frees the text encoders before it builds
the ControlNet, and without it the peak would pass 17 GB; it changes no number):

    MALLOC_MMAP_THRESHOLD_=131072 HF_HUB_OFFLINE=1 nice /work/refvenv/bin/python \
        tools/reference/make_fullsize_controlnet_sdxl_goldens.py

Versions (requirements-pip.txt): torch 2.4.1 (CPU), diffusers 0.30.3, transformers 4.40.2; float32 on the CPU, ONE
torch thread (THREADS; make_fullsize_sdxl_goldens' docstring: the last bits depend on it); diffusers' default
attention processor (scaled_dot_product_attention) on UNet, ControlNet and VAE, as the SDXL siblings.
Measured on the shared 2-core machine (/usr/bin/time -v, while C++ builds ran beside it): 5 min 0 s to 5 min 28 s
wall (6 min 54 s in session 22, with a C++ test beside it; the SDXL models 84 to 101 s, the ControlNet 22 to 24 s, each 4-step run 19 to 24 s; 11 runs), peak RSS 16.06
million KB (15.3 GiB: UNet 10.3 GB + ControlNet 5.0 GB + VAE, the text encoders freed first; 13.6 GB before). The
same tensors on every run (checked, runs 1 to 3) and the same bytes (runs 2 and 3).

Weights
-------
Both networks are pure functions of published key lists (make_fullsize_goldens.weight(i, name, shape): randn seeded
1000 + i, scaled per kind, rounded to fp16, used in fp32; i = the tensor's 0-based index in ITS OWN list):
  SDXL base   tests/data/keys/sdxl_base.ldm.json.gz, built exactly as make_fullsize_lora_goldens.build_pipeline("sdxl")
              builds it (make_fullsize_sdxl_goldens.build_models("sdxl_base"): diffusers' single-file converters, the
              published configs; CLIP's real BPE vocabulary, tokenizer_2 padding with "!" = id 0;
              StableDiffusionXLPipeline with force_zeros_for_empty_prompt, no watermark); checked against the
              sibling goldens: the rebuilt pipeline reproduces fullsize_sdxl_base_cases.safetensors' diffusers_euler
              latent (stored as metadata sibling_check).
  ControlNet  tests/data/keys/controlnet_sdxl.json.gz (make_key_lists.py controlnet_sdxl; its CONTROLNET_SDXL_CASES
              comment says why diffusers' names): ControlNetModel.from_unet(SDXL base 1.0's UNet,
              conditioning_embedding_out_channels (16, 32, 96, 256)), its state dict's names, shapes and order, no
              prefix. Here: weight(i, name, shape) over that list, GAIN below, load_state_dict(strict=True,
              assign=True) into ControlNetModel built on the meta device from the list's config (make_key_lists'
              controlnet_sdxl_list; stored as metadata controlnet_config: what a diffusers folder's config.json holds;
              the C++ test writes it as config.json beside the weights). Every list entry used exactly once.
GAIN: after the weight rule, the 20 zero-conv tensors (controlnet_down_blocks.{0..8}.weight/.bias,
controlnet_mid_block.weight/.bias) are multiplied by GAIN, a power of two, so weight(i, name, shape) * GAIN is exactly
representable in fp16 (checked per tensor): a reimplementation takes the fp16 checkpoint of the key list and
multiplies those 20 F16 tensors by GAIN, no rounding involved. The script measures MEASURED_GAINS (1 and 4: time was
short) and keeps the smallest at which every case moves the image by at least PICK_LEVELS levels of 255 on average.
Measured (mean |image - without ControlNet| in levels, max in brackets, mean |latent diff|, saturated-pixel change):
    gain   fullsize_cn_sdxl                  fullsize_cn_sdxl_guess
      1    2.06 (11)  0.093  -0.17 %         1.74 (13)  0.095  -0.20 %
      4    4.06 (22)  0.188  -0.45 %         4.87 (33)  0.263  -0.41 %
PICK_LEVELS = 3, so GAIN = 4 (gain 1 moves neither case by 3 levels; 4 moves both by 4 to 5, like the SD 1.5
golden's 4.1 at its gain 4 and the SD 2.1 one's 4.5 at 8). No case saturates (fewer pixels at 0 or 255 than
without). The final latents have std about 4.1 to 4.3 (the SDXL siblings: most of the latent is the starting noise).
Stored as metadata "gain" (with the table) and as each case's controlnets[0].gain.

Control image: tests/golden/data/controlnet/fullsize_control.png, the SD 1.5 golden's (make_fullsize_controlnet_
goldens.py writes it; read here, checked equal to make_controlnet_goldens.edge_map(64, 64) in all three channels,
never written). At the call's size already, so the pipeline's prepare_image only divides by 255 (checked).

Pipeline: StableDiffusionXLControlNetPipeline(the SDXL base components, controlnet, EulerDiscreteScheduler.from_config(
make_sdxl_goldens.SCHEDULER_CONFIG: SDXL base's scheduler_config.json, "leading", steps_offset 1),
force_zeros_for_empty_prompt True, add_watermarker False), called as pipe(image=<the PNG as PIL>, height=64, width=64,
num_inference_steps, guidance_scale, controlnet_conditioning_scale, control_guidance_start, control_guidance_end,
guess_mode, generator=torch.Generator("cpu").manual_seed(seed), output_type="latent") with the prompt's embeddings
(prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds, negative_pooled_prompt_embeds) that the base pipeline's
own encode_prompt(prompt, negative_prompt=negative or None, prompt_2 / negative_prompt_2 None, CFG on) gave before the text
encoders were freed (memory: UNet 10.3 GB + ControlNet 5.0 GB + text encoders 3.3 GB would not fit). That is what the
pipeline computes from the prompts itself (checked: at controlnet_conditioning_scale 0.0 the ControlNet pipeline
gives the base pipeline's latent, run from the prompts, bit for bit). Size conditioning: the defaults (original and
target size = the call's, crop 0, 0). The image decoded as the SDXL siblings decode (make_sdxl_goldens.
decode_as_pipeline: latent / 0.13025, vae.decode, round(clamp(x / 2 + 0.5) * 255)), stored CHW.

Writes
------
tests/golden/data/fullsize_controlnet_sdxl_cases.safetensors (safetensors_io: fixed header order, sorted metadata):
  <case>.latent  float32 [1, 4, 8, 8]   the pipeline's final latent
  <case>.image   uint8 [1, 3, 64, 64]   CHW RGB
  metadata <case>.params (JSON), as make_fullsize_controlnet_sd21_goldens.py writes them: model "sdxl", keys
      "keys/sdxl_base.ldm.json.gz" (the base model's key list, relative to tests/data), prediction "epsilon", mode
      "diffusers", scheduler "euler", spacing, steps, cfg, seed, prompt, negative, width, height, guess_mode,
      controlnets: [{name, file: "keys/controlnet_sdxl.json.gz" (the KEY LIST: a test writes its random checkpoint),
      format "diffusers", image: "controlnet/fullsize_control.png" (relative to tests/golden/data), scale, start, end,
      gain}], controlnet_keep (per step, per ControlNet), mean_abs_image_diff_vs_no_controlnet (levels of 255),
      max_abs_image_diff_vs_no_controlnet, mean_abs_latent_diff_vs_no_controlnet; fullsize_cn_sdxl_guess also
      mean_abs_{image,latent}_diff_vs_every_step (the same case with start 0, end 1) and
      mean_abs_{image,latent}_diff_vs_not_guess_mode.
  metadata also: script, git, torch, diffusers, transformers, huggingface_hub, cases (names in order), keys,
      prediction, controlnet_keys, controlnet_format ("diffusers"), controlnet_tensors, controlnet_keys_sha256 (of the
      .json.gz), controlnet_config (JSON: the folder config.json's contents), weights, gain, scheduler_config,
      sibling_check, notes.

Cases (64x64, Euler, 4 steps, CFG 5)
  fullsize_cn_sdxl        scale 0.8, start 0, end 1; seed 801, negative "blurry"
  fullsize_cn_sdxl_guess  scale 0.7, guess_mode (the ControlNet on the prompt's half only, its residuals scaled by
                          logspace(-1, 0, 10) * 0.7: SDXL's 9 down residuals and the mid one; zero for the negative
                          half), start 0.0, end 0.5 (acts at steps 0-1 of 0-3; at steps 2-3 the pipeline still runs
                          it, at scale 0); seed 802, empty negative (force_zeros_for_empty_prompt: zeroed embeddings)
  Measured at GAIN 4: fullsize_cn_sdxl moves the image by 4.06 levels on average (max 22) and the latent by 0.188;
  fullsize_cn_sdxl_guess by 4.87 (max 33) and 0.263 (session 22, with the negative zeroed). Against the same case at every step fullsize_cn_sdxl_guess
  differs by 1.06 levels and 0.060 in the latent (30 times the C++ test's latent atol 2e-3); against the same case
  without guess mode by 5.66 levels and 0.358 (stored in its params).
Checks (asserted on every run): the key list on disk is make_key_lists' list (names, shapes, dtypes); strict loading,
no meta tensor left; the sibling's diffusers_euler latent reproduced (< 1e-4); scale 0.0 gives the base latent bit
for bit; each case's image differs from the same run without ControlNet by more than MIN_MEAN_DIFF levels, with under
MAX_SAT_RISE more saturated pixels; fullsize_cn_sdxl_guess's latent differs from the same case at every step and
from the same case without guess mode by more than MIN_LATENT_DIFF_WINDOW on average; the control image is the edge map and the control input is the PNG / 255; all
latents pairwise different and finite.
"""
import gc
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
import make_fullsize_lora_goldens as flg  # noqa: E402  (first: its imports stub `clip` before k_diffusion; SDXL)
import make_controlnet_goldens as cg  # noqa: E402  (edge_map, keep_table)
import make_fullsize_goldens as fg  # noqa: E402  (the weight rule)
import make_key_lists as mk  # noqa: E402  (the ControlNet key list and its config)
import make_model_goldens as mg  # noqa: E402  (git_hash)
import make_sdxl_goldens as sx  # noqa: E402  (versions, assert_all_differ, decode_as_pipeline)
import make_sdxl_key_lists as kl  # noqa: E402  (SDXL base UNet config, meta-device builder)
import safetensors_io  # noqa: E402

import diffusers  # noqa: E402
from diffusers import ControlNetModel, EulerDiscreteScheduler, StableDiffusionXLControlNetPipeline  # noqa: E402

ROOT = flg.ROOT
OUT = os.path.join(ROOT, "tests", "golden", "data")
DATA = os.path.join(ROOT, "tests", "data")
GOLDEN = os.path.join(OUT, "fullsize_controlnet_sdxl_cases.safetensors")
IMAGE = os.path.join(OUT, "controlnet", "fullsize_control.png")  # the SD 1.5 golden's; read only
SCRIPT = "tools/reference/make_fullsize_controlnet_sdxl_goldens.py"
MODEL = "sdxl"
BASE_KEYS = "keys/sdxl_base.ldm.json.gz"  # relative to tests/data
CN_NAME, CN_COND, CN_DTYPE = mk.CONTROLNET_SDXL_CASES[0]
CN_KEYS = f"keys/{CN_NAME}.json.gz"
ZERO_CONVS = ("controlnet_down_blocks.", "controlnet_mid_block.")
THREADS = 1
SIZE, CFG, STEPS = 64, 5.0, 4
MEASURED_GAINS = (1.0, 4.0)  # powers of two; GAIN: the smallest at which every case moves >= PICK_LEVELS
PICK_LEVELS = 3.0  # levels of 255, mean |image - without ControlNet|
MIN_MEAN_DIFF = 2.0  # levels of 255
MAX_SAT_RISE = 0.05  # fraction of pixels newly at 0 or 255
# The windowed guess-mode case against the same case at every step, and against the same case without guess mode:
# 10 times the C++ test's latent atol.
MIN_LATENT_DIFF_WINDOW = 0.02

# name, scale, start, end, guess_mode, seed, prompt, negative
CASES = [
    ("fullsize_cn_sdxl", 0.8, 0.0, 1.0, False, 801, "a house with a red door and a round window", "blurry"),
    ("fullsize_cn_sdxl_guess", 0.7, 0.0, 0.5, True, 802, "a lighthouse on a rocky coast at night", ""),
]


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def read_list(rel):
    with gzip.open(os.path.join(DATA, rel), "rt") as f:
        return json.load(f)["tensors"]


def build_controlnet(notes):
    """ControlNetModel from the key list at gain 1 (see the docstring). Returns (model, config, {zero-conv name:
    gain-1 tensor clone})."""
    t0 = time.time()
    tensors = read_list(CN_KEYS)
    want, config = mk.controlnet_sdxl_list(kl.SDXL_BASE_UNET, CN_COND)
    assert [[n, s, d] for n, s, d in tensors] == [[n, s, CN_DTYPE] for n, s in want.items()], \
        f"{CN_KEYS} is not make_key_lists' list: run make_key_lists.py controlnet_sdxl"
    sd = {name: fg.weight(i, name, shape) for i, (name, shape, _) in enumerate(tensors)}
    cn = kl.build_diffusers(ControlNetModel, config)
    cn.load_state_dict(sd, strict=True, assign=True)
    left = [n for n, t in list(cn.named_parameters()) + list(cn.named_buffers()) if t.is_meta]
    assert not left, left[:5]
    params = dict(cn.named_parameters())
    assert all(params[n] is sd[n] or params[n].data_ptr() == sd[n].data_ptr() for n in sd)  # each entry used once
    assert len({v.data_ptr() for v in params.values()}) == len(sd) == len(params)
    zero = {n: p.detach().clone() for n, p in params.items() if n.startswith(ZERO_CONVS)}
    assert len(zero) == 20, len(zero)  # controlnet_down_blocks.0-8 and controlnet_mid_block: weight and bias
    assert cn.config.addition_embed_type == "text_time" and list(cn.config.transformer_layers_per_block) == [1, 2, 10]
    note = (f"{CN_KEYS}: {len(tensors)} tensors in diffusers' ControlNetModel names, loaded strictly, every entry "
            f"used once")
    notes.append(note)
    print(f"ControlNet: {note}; built in {time.time() - t0:.0f} s, peak RSS {flg.peak_rss_gb():.1f} GB", flush=True)
    return cn.eval(), config, zero


def set_gain(cn, zero, gain):
    with torch.no_grad():
        for n, p in cn.named_parameters():
            if n in zero:
                w = zero[n] * gain
                assert torch.equal(w.half().float(), w), n  # exact in fp16: no rounding, no overflow
                p.copy_(w)


def control_image():
    """The SD 1.5 golden's control PNG, checked to be the 64x64 edge map in all three channels."""
    arr = np.stack([cg.edge_map(SIZE, SIZE)] * 3, axis=-1)
    img = PIL.Image.open(IMAGE)
    assert img.mode == "RGB" and np.array_equal(np.asarray(img), arr), IMAGE
    return img.convert("RGB"), arr


def case_dict(case):
    name, scale, start, end, guess, seed, prompt, negative = case
    return dict(name=name, steps=STEPS, nets=[("fullsize", "fullsize_control", scale, start, end)])


def decode(pipe, lat):
    return sx.decode_as_pipeline(pipe, lat).permute(2, 0, 1)[None].contiguous()


def run_base(pipe, sched_cfg, case):
    """The base pipeline from the prompts (text encoders still loaded): latent, image, embeddings."""
    name, scale, start, end, guess, seed, prompt, negative = case
    pipe.scheduler = EulerDiscreteScheduler.from_config(sched_cfg)
    # An empty negative is diffusers' negative_prompt=None (what easel's diffusers mode takes "" for): zeroed by
    # force_zeros_for_empty_prompt. Passing "" itself would encode the empty string instead.
    neg = negative or None
    with torch.no_grad():
        lat = pipe(prompt, negative_prompt=neg, height=SIZE, width=SIZE, num_inference_steps=STEPS,
                   guidance_scale=CFG, generator=torch.Generator("cpu").manual_seed(seed), output_type="latent").images
        emb = pipe.encode_prompt(prompt, None, torch.device("cpu"), 1, True, neg, None)
    assert torch.isfinite(lat).all(), name
    assert (neg is None) == (not emb[1].any().item() and not emb[3].any().item()), name  # zeroed iff empty
    return lat.contiguous(), decode(pipe, lat), [e.clone() for e in emb]


def run_controlnet(cpipe, sched_cfg, image, case, emb, scale=None, start=None, end=None, guess=None):
    name, c_scale, c_start, c_end, c_guess, seed, prompt, negative = case
    cpipe.scheduler = EulerDiscreteScheduler.from_config(sched_cfg)
    pe, npe, ppe, nppe = emb
    with torch.no_grad():
        lat = cpipe(prompt_embeds=pe, negative_prompt_embeds=npe, pooled_prompt_embeds=ppe,
                    negative_pooled_prompt_embeds=nppe, image=image, height=SIZE, width=SIZE,
                    num_inference_steps=STEPS, guidance_scale=CFG,
                    controlnet_conditioning_scale=c_scale if scale is None else scale,
                    control_guidance_start=c_start if start is None else start,
                    control_guidance_end=c_end if end is None else end, guess_mode=c_guess if guess is None else guess,
                    generator=torch.Generator("cpu").manual_seed(seed), output_type="latent").images
    assert torch.isfinite(lat).all(), name
    return lat.contiguous(), decode(cpipe, lat)


def saturated(img):
    return ((img == 0) | (img == 255)).float().mean().item()


def main():
    torch.set_num_threads(THREADS)
    diffusers.utils.logging.disable_progress_bar()
    start = time.time()
    assert sys.argv[1:] == [], "usage: make_fullsize_controlnet_sdxl_goldens.py"
    notes = []
    tmp = tempfile.mkdtemp()
    tok, tok_2 = flg.tokenizers(tmp)
    flg.fsx.check_prompts([dict(name=c[0], prompt=c[6], negative=c[7]) for c in CASES], tok.get_vocab())
    image, arr = control_image()
    pipe, sched_cfg = flg.build_pipeline(MODEL, tmp)
    print(f"pipeline built in {time.time() - start:.0f} s; peak RSS {flg.peak_rss_gb():.1f} GB", flush=True)
    sibling_err = flg.check_sibling(pipe, MODEL, sched_cfg)
    refs = {}
    for case in CASES:
        t0 = time.time()
        refs[case[0]] = run_base(pipe, sched_cfg, case)
        print(f"{case[0]} without ControlNet: {time.time() - t0:.0f} s", flush=True)
    vae, unet, tok, tok_2 = pipe.vae, pipe.unet, pipe.tokenizer, pipe.tokenizer_2
    del pipe
    gc.collect()  # the text encoders (3.3 GB) go
    cn, cn_config, zero = build_controlnet(notes)
    cpipe = StableDiffusionXLControlNetPipeline(
        vae=vae, text_encoder=None, text_encoder_2=None, tokenizer=tok, tokenizer_2=tok_2, unet=unet, controlnet=cn,
        scheduler=EulerDiscreteScheduler.from_config(sched_cfg), force_zeros_for_empty_prompt=True,
        add_watermarker=False)
    cpipe.set_progress_bar_config(disable=True)
    control = cpipe.prepare_image(image, width=SIZE, height=SIZE, batch_size=1, num_images_per_prompt=1,
                                  device=torch.device("cpu"), dtype=torch.float32, do_classifier_free_guidance=False)
    assert torch.equal(control, torch.from_numpy(arr).float().div(255).permute(2, 0, 1)[None])

    # Scale 0 adds exactly nothing: with the stored embeddings the ControlNet pipeline is the base pipeline run from
    # the prompts, bit for bit.
    c0 = CASES[0]
    lat0, _ = run_controlnet(cpipe, sched_cfg, image, c0, refs[c0[0]][2], scale=0.0)
    assert torch.equal(lat0, refs[c0[0]][0]), c0[0]
    notes.append(f"{c0[0]} at controlnet_conditioning_scale 0.0 (prompt embeddings precomputed): the base pipeline's "
                 f"latent from the prompts, bit for bit")

    results, table = {}, []
    for g in MEASURED_GAINS:
        set_gain(cn, zero, g)
        for case in CASES:
            name = case[0]
            ref_lat, ref_img, emb = refs[name]
            t0 = time.time()
            lat, img = run_controlnet(cpipe, sched_cfg, image, case, emb)
            diff = (img.float() - ref_img.float()).abs()
            row = (g, name, diff.mean().item(), int(diff.max().item()), (lat - ref_lat).abs().mean().item(),
                   saturated(img) - saturated(ref_img))
            table.append(row)
            results[(g, name)] = (lat, img, row)
            print(f"gain {g:g} {name}: mean |image diff| {row[2]:.2f} levels (max {row[3]}), mean |latent diff| "
                  f"{row[4]:.3f}, saturated {row[5]:+.2%}, latent std {lat.std().item():.3f} (without "
                  f"{ref_lat.std().item():.3f}), image mean {img.float().mean().item():.1f}; {time.time() - t0:.0f} "
                  f"s; peak RSS {flg.peak_rss_gb():.1f} GB", flush=True)
    ok = [g for g in MEASURED_GAINS if all(results[(g, c[0])][2][2] >= PICK_LEVELS for c in CASES)]
    gain = ok[0] if ok else MEASURED_GAINS[-1]
    print(f"GAIN {gain:g}", flush=True)

    set_gain(cn, zero, gain)
    tensors, meta, latents = {}, {}, {}
    for case in CASES:
        name, scale, c_start, c_end, guess, seed, prompt, negative = case
        lat, img, row = results[(gain, name)]
        assert row[2] > MIN_MEAN_DIFF and row[5] < MAX_SAT_RISE, row
        extra = {}
        if c_start > 0 or c_end < 1:  # the window matters: the same case with the ControlNet at every step
            full_lat, full_img = run_controlnet(cpipe, sched_cfg, image, case, refs[name][2], start=0.0, end=1.0)
            extra["mean_abs_image_diff_vs_every_step"] = round((img.float() - full_img.float()).abs().mean().item(), 3)
            extra["mean_abs_latent_diff_vs_every_step"] = round((lat - full_lat).abs().mean().item(), 4)
            print(f"  {name} at every step: mean |image diff| {extra['mean_abs_image_diff_vs_every_step']:.2f} "
                  f"levels, mean |latent diff| {extra['mean_abs_latent_diff_vs_every_step']:.4f}", flush=True)
            assert extra["mean_abs_latent_diff_vs_every_step"] > MIN_LATENT_DIFF_WINDOW, name
        if guess:  # guess mode matters: the same case without it
            ng_lat, ng_img = run_controlnet(cpipe, sched_cfg, image, case, refs[name][2], guess=False)
            extra["mean_abs_image_diff_vs_not_guess_mode"] = round((img.float() - ng_img.float()).abs().mean().item(), 3)
            extra["mean_abs_latent_diff_vs_not_guess_mode"] = round((lat - ng_lat).abs().mean().item(), 4)
            print(f"  {name} without guess mode: mean |image diff| "
                  f"{extra['mean_abs_image_diff_vs_not_guess_mode']:.2f} levels, mean |latent diff| "
                  f"{extra['mean_abs_latent_diff_vs_not_guess_mode']:.4f}", flush=True)
            assert extra["mean_abs_latent_diff_vs_not_guess_mode"] > MIN_LATENT_DIFF_WINDOW, name
        tensors[f"{name}.latent"] = lat
        tensors[f"{name}.image"] = img
        latents[name] = lat
        meta[f"{name}.params"] = json.dumps(dict(
            model=MODEL, keys=BASE_KEYS, prediction="epsilon", mode="diffusers", scheduler="euler",
            spacing=sched_cfg["timestep_spacing"], steps=STEPS, cfg=CFG, seed=seed, prompt=prompt,
            negative=negative, width=SIZE, height=SIZE, guess_mode=guess,
            controlnets=[dict(name=CN_NAME, file=CN_KEYS, format="diffusers", image="controlnet/fullsize_control.png",
                              scale=scale, start=c_start, end=c_end, gain=gain)],
            controlnet_keep=cg.keep_table(case_dict(case)),
            mean_abs_image_diff_vs_no_controlnet=round(row[2], 3), max_abs_image_diff_vs_no_controlnet=row[3],
            mean_abs_latent_diff_vs_no_controlnet=round(row[4], 4), **extra))
    sx.assert_all_differ(latents)
    del cpipe, cn, unet, vae

    meta.update(sx.versions(SCRIPT))
    meta.update({
        "git": mg.git_hash(), "cases": json.dumps([c[0] for c in CASES]), "keys": BASE_KEYS, "prediction": "epsilon",
        "controlnet_keys": CN_KEYS, "controlnet_format": "diffusers",
        "controlnet_tensors": str(len(read_list(CN_KEYS))),
        "controlnet_keys_sha256": sha256(os.path.join(DATA, CN_KEYS)),
        "controlnet_config": json.dumps(dict(cn_config, _class_name="ControlNetModel",
                                             _diffusers_version=diffusers.__version__), sort_keys=True),
        "weights": "make_fullsize_goldens.weight(i, name, shape) over each key list (the base model: "
                   "sdxl_base.ldm.json.gz; the ControlNet: controlnet_sdxl.json.gz, diffusers names), i the index in "
                   "that list, fp16-rounded, used in fp32",
        "gain": json.dumps(dict(value=gain, applies_to="controlnet_down_blocks.*, controlnet_mid_block.* (weights "
                                                      "and biases: 20 tensors)",
                                rule="w = weight(i, name, shape) * gain: exact in fp16 (a power of two), so the "
                                     "fp16 checkpoint's tensors times gain",
                                measured=[dict(gain=r[0], case=r[1], mean_abs_image_diff=round(r[2], 3),
                                               max_abs_image_diff=r[3], mean_abs_latent_diff=round(r[4], 4),
                                               saturated_rise=round(r[5], 5)) for r in table])),
        "scheduler_config": json.dumps(sched_cfg),
        "sibling_check": json.dumps(dict(file=flg.SIBLINGS[MODEL], case="diffusers_euler",
                                         max_abs_latent_diff=sibling_err)),
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
