#!/work/refvenv/bin/python
"""SDXL inpainting with a 9-channel UNet: goldens from diffusers 0.30.3's StableDiffusionXLInpaintPipeline on a tiny
random-weight model.

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline, after
make_sdxl_goldens.py has written tests/golden/data/pipeline_sdxl/ (this script copies that folder's components and
imports that script for its conventions: weight draws, init images and masks, decoding, the safetensors writer):

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_sdxl_inpaint9_goldens.py

It takes about 6 s on an idle two-core machine. Nothing is downloaded. torch runs on one thread, and every run
writes the same bytes (the UNet through save_pretrained, whose safetensors file carries one metadata key; the
cases file through safetensors_io.py). Versions: torch 2.4.1 (CPU), diffusers 0.30.3, transformers 4.40.2,
huggingface_hub 0.36.2. All computation is float32 on the CPU with diffusers' default attention processor
(torch's scaled_dot_product_attention). If pipeline_sdxl/ is regenerated, rerun this script.

It writes two things:

1. tests/golden/data/pipeline_sdxl_inpaint9/ (1,567,702 bytes of files, 1.495 MiB, 733 bytes more than
   pipeline_sdxl/; git stores the copied files as the same blobs as pipeline_sdxl/'s, so it adds about 1.2 MB):
   - model_index.json as StableDiffusionXLInpaintPipeline.save_pretrained writes it: _class_name
     StableDiffusionXLInpaintPipeline, force_zeros_for_empty_prompt true, requires_aesthetics_score false (SDXL
     base's values), otherwise pipeline_sdxl/'s (the same components; feature_extractor and image_encoder
     [null, null]); checked.
   - unet/: the base folder's tiny UNet2DConditionModel (make_sdxl_goldens.py's docstring) with in_channels 9
     instead of 4 (config.json differs from pipeline_sdxl/unet/config.json in that key only, checked), so only
     conv_in.weight changes shape: [8, 9, 3, 3]. Weights: built with torch.manual_seed(INPAINT9_SEED = 2026),
     then every parameter re-drawn in named_parameters() order from one torch.Generator seeded INPAINT9_SEED by
     make_sdxl_goldens.py's rule (redraw(): norms 1 + 0.1 randn / 0.1 randn, rank >= 2 randn * min(0.2,
     1.5 / sqrt(fan_in)), other biases 0.2 randn, each rounded to fp16), saved in fp16.
   - text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/, vae/, scheduler/: byte-identical copies of
     pipeline_sdxl/'s files (checked; the script also checks that StableDiffusionXLInpaintPipeline.save_pretrained
     writes exactly these bytes for them).
   The reference runs load the folder with StableDiffusionXLInpaintPipeline.from_pretrained(torch_dtype=float32)
   (checked: the UNet weights are the fp16-rounded draws bit for bit, the other components equal pipeline_sdxl/'s).

2. tests/golden/data/pipeline_sdxl_inpaint9_cases.safetensors: inpainting runs. Each call:
   pipe(prompt, prompt_2=None, negative_prompt, negative_prompt_2=None, image=PIL RGB image of <name>.init,
   mask_image=PIL "L" image of <name>.mask, height=H, width=W, strength, num_inference_steps=8, guidance_scale=5.0,
   generator=torch.Generator("cpu").manual_seed(seed), output_type="latent"); the scheduler is
   <Class>.from_config(folder's scheduler config), fresh per case. Per case <name> (tensors float32 unless said):
    <name>.init                   uint8 [1, 3, H, W]  the init image (CHW, RGB): make_sdxl_goldens.make_init_image
    <name>.mask                   uint8 [H, W]        white = repaint: 255 inside mask_rect (top, left, bottom,
                                                      right; bottom/right exclusive), a one-pixel ring of 128 just
                                                      outside it (repainted), a ring of 127 outside that (kept),
                                                      0 elsewhere (make_sdxl_goldens.make_mask)
    <name>.masked_image_latents   [1, 4, H/2, W/2]    (extra) the UNet's input channels 5..8 (see below)
    <name>.init_latents           [1, 4, H/2, W/2]    (extra; strength < 1 only) scaling_factor * posterior sample of
                                                      the init image, the latent the noise is added to
    <name>.latent                 [1, 4, H/2, W/2]    the final latent the pipeline returns (output_type="latent")
    <name>.image                  uint8 [H, W, 3]     decoded as make_sdxl_goldens.py does (latent / scaling_factor,
                                                      vae.decode, round(clamp(x / 2 + 0.5, 0, 1) * 255)); the first
                                                      case is checked against the pipeline's output_type="pil"
    <name>.time_ids               [2, 6]              add_time_ids the UNet got: row 0 negative, row 1 positive
   Metadata <name>.params (JSON), as make_sdxl_goldens.py's img2img/inpaint cases: name, pipeline ("inpaint"),
   scheduler (our name), pipeline_class, scheduler_class, prompt, prompt_2, negative, negative_2, steps, cfg, seed,
   width, height, strength, init_variant, mask_rect, requires_aesthetics_score (false), the six size keys (all
   null: defaults), all_timesteps (the scheduler's full schedule), timesteps (those that ran), time_ids; plus
   unet_in_channels (9). File metadata: script, torch, diffusers, transformers, huggingface_hub, seed (2026, the
   UNet's), scheduler_config, unet_config, folder_weights_sha256 (of the folder's four weight files).

Cases (64x64, 8 steps, guidance 5.0):
    inpaint9_euler_s100     Euler, strength 1.0, mask_rect (20, 12, 44, 40) (even edges: the 128 ring lands on
                            sampled pixels at the bottom/right edge only), init_variant 0
    inpaint9_euler_s075     Euler, strength 0.75 (runs 626 ... 1, 6 of 8), mask_rect (17, 23, 41, 51) (odd edges:
                            the 128 ring at row 16 / column 22 and the 127 ring at row 42 / column 52 are sampled),
                            init_variant 2
    inpaint9_dpmpp2m_s075   DPMSolverMultistep (dpmsolver++, order 2), strength 0.75 (runs 667 ... 112), the same
                            mask_rect, init_variant 1

What a reimplementation must match for a 9-channel UNet (diffusers 0.30.3; the script asserts each point on every
case, the whole loop by rerunning it by hand from these rules and getting the pipeline's latent bit for bit):
- Image and mask preprocessing: as the 4-channel inpainting of make_sdxl_goldens.py. init x = 2 * u8 / 255 - 1
  (float32, CHW, batch 1, at the image's own size). The mask: grayscale, / 255, binarised: mb = 1 where >= 0.5
  (128 repaints), 0 where < 0.5 (127 keeps). Latent mask m = F.interpolate(mb, (H/2, W/2)), nearest: latent pixel
  (i, j) takes image pixel (2i, 2j).
- The masked image: masked = x * (mb < 0.5), at full image resolution with the binarised mask: every pixel with
  mask >= 0.5 becomes 0 (mid grey in [-1, 1]), the others keep x. It is VAE-encoded and its posterior is
  *sampled*, not its mean: masked_image_latents = scaling_factor * (mean + exp(0.5 * logvar) * eps), eps drawn
  from the pipeline's generator (the same generator as the noise; see the draw order).
- Generator draws, in order, each a torch CPU randn of the latent shape [1, 4, H/2, W/2] (checked through the
  generator's final state and by the rerun):
    strength == 1.0:  1. the noise; 2. eps of the masked image's posterior sample; then Euler's per-step draw
                      (EulerDiscreteScheduler.step always draws one, unused with s_churn 0); DPM++ 2M draws none.
                      The init image itself is NOT encoded (no posterior draw): unlike the 4-channel path, a
                      9-channel UNet needs no image latents for blending, so the masked image's eps is draw 2.
    strength < 1.0:   1. eps of the init image's posterior sample (z0 = scaling_factor * (mean + std * eps));
                      2. the noise; 3. eps of the masked image's posterior sample; then the per-step draws.
- Initial latent: strength == 1.0: x = noise * init_noise_sigma (Euler, leading: sqrt(sigma_max^2 + 1)); the init
  image enters only through masked_image_latents. strength < 1: x = scheduler.add_noise(z0, noise, t_first) (Euler:
  z0 + sigma * noise; DPM++: alpha_t * z0 + sigma_t * noise), t_first = timesteps[N - min(int(N * s), N)], as in
  img2img. (The pipeline's default strength is 0.9999, which takes the < 1 branch.)
- The UNet input, per step: xin = scheduler.scale_model_input(cat([x, x]), t) (batch [negative, positive]), then
  cat([xin, M, L], dim=1) with M = cat([m, m]) the latent mask (1 channel, 0/1, NOT scaled by scale_model_input)
  and L = cat([masked_image_latents] * 2): channels 0..3 the scaled noisy latent, channel 4 the mask, channels
  5..8 the masked-image latent. The same M and L at every step. CFG: eps = u + 5 * (c - u); x = scheduler.step(eps,
  t, x) on the 4-channel latent; the UNet's 4 output channels are all used.
- No latent blending: for a 9-channel UNet the pipeline never mixes in the init latent (neither after each step
  nor after the last), so outside the mask the returned latent is NOT the init image's latent (checked: it differs
  there); the returned latent is the last scheduler step's output.
- time_ids: (H, W, 0, 0, H, W) for both rows, as make_sdxl_goldens.py's inpainting cases; with
  requires_aesthetics_score false no aesthetic score is appended. No set_begin_index (index by timestep value).
"""

import json
import os
import shutil
import sys
import tempfile

import numpy as np
import PIL.Image
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_sdxl_goldens as base_script  # noqa: E402  (the base model's conventions: redraw, images, masks, writer)
from make_sdxl_goldens import (OUT, ROOT, SCHEDULERS, SIZE_KEYS, WORDS, decode_as_pipeline,  # noqa: E402
                               make_init_image, make_mask, make_tokenizers, redraw)

import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import (AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLInpaintPipeline,  # noqa: E402
                       UNet2DConditionModel)
from safetensors.torch import load_file  # noqa: E402
from transformers import CLIPTextModel, CLIPTextModelWithProjection  # noqa: E402

BASE = os.path.join(OUT, "pipeline_sdxl")
FOLDER = os.path.join(OUT, "pipeline_sdxl_inpaint9")
CASES_GOLDEN = os.path.join(OUT, "pipeline_sdxl_inpaint9_cases.safetensors")
SCRIPT = "tools/reference/make_sdxl_inpaint9_goldens.py"
INPAINT9_SEED = 2026

# Files copied from the base folder unchanged (everything but unet/ and model_index.json).
SHARED_FILES = ("text_encoder/config.json", "text_encoder/model.safetensors",
                "text_encoder_2/config.json", "text_encoder_2/model.safetensors",
                "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
                "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer/tokenizer_config.json",
                "tokenizer/special_tokens_map.json",
                "tokenizer_2/vocab.json", "tokenizer_2/merges.txt", "tokenizer_2/tokenizer_config.json",
                "tokenizer_2/special_tokens_map.json", "scheduler/scheduler_config.json")
OWN_FILES = ("model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors")
WEIGHT_FILES = ("unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                "text_encoder/model.safetensors", "text_encoder_2/model.safetensors")

_C = dict(pipeline="inpaint", steps=8, cfg=5.0, width=64, height=64, prompt_2=None, negative_2=None)
CASES = [
    dict(_C, name="inpaint9_euler_s100", scheduler="euler", seed=301, strength=1.0, init_variant=0,
         mask=(20, 12, 44, 40), prompt="a red square on the right", negative="a green circle"),
    dict(_C, name="inpaint9_euler_s075", scheduler="euler", seed=307, strength=0.75, init_variant=2,
         mask=(17, 23, 41, 51), prompt="a small blue triangle, masterpiece", negative="photo of a dog"),
    dict(_C, name="inpaint9_dpmpp2m_s075", scheduler="dpm++2m", seed=311, strength=0.75, init_variant=1,
         mask=(17, 23, 41, 51), prompt="photo of a cat on the left", negative="a large square"),
]


def check_prompts():
    base_script.check_words(CASES)


def versions():
    return base_script.versions(SCRIPT)


sha256 = base_script.sha256


def same_bytes(a, b):
    with open(a, "rb") as f, open(b, "rb") as g:
        return f.read() == g.read()


def list_files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


# ---------------------------------------------------------------------------------------------------------
# The folder

def build_unet9():
    cfg = UNet2DConditionModel.load_config(os.path.join(BASE, "unet"))
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    assert cfg["in_channels"] == 4
    cfg["in_channels"] = 9
    torch.manual_seed(INPAINT9_SEED)
    unet = UNet2DConditionModel.from_config(cfg)
    redraw(unet, torch.Generator().manual_seed(INPAINT9_SEED))
    unet.eval()
    return unet


def base_components(tmp):
    """The base folder's components in fp16, built so that save_pretrained writes them as the base folder has them
    (no _name_or_path from loading; the tokenizers made afresh as make_sdxl_goldens.py makes them, since reloaded
    ones write pad_token in special_tokens_map.json in another form)."""
    comps = {}
    for name, cls in (("text_encoder", CLIPTextModel), ("text_encoder_2", CLIPTextModelWithProjection)):
        m = cls.from_pretrained(os.path.join(BASE, name), torch_dtype=torch.float16)
        m.config._name_or_path = ""  # the base folder's encoders were built, not loaded
        comps[name] = m.eval()
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(os.path.join(BASE, "vae")))
    vae.load_state_dict(load_file(os.path.join(BASE, "vae", "diffusion_pytorch_model.safetensors")))
    comps["vae"] = vae.to(torch.float16).eval()
    _, comps["tokenizer"], comps["tokenizer_2"] = make_tokenizers(tmp)
    comps["scheduler"] = EulerDiscreteScheduler.from_pretrained(os.path.join(BASE, "scheduler"))
    return comps


def write_folder():
    """Writes FOLDER: model_index.json and unet/ from StableDiffusionXLInpaintPipeline.save_pretrained, every other
    file copied from BASE. Returns the fp16-rounded UNet weights (as fp32)."""
    unet = build_unet9()
    rounded = {k: v.clone() for k, v in unet.state_dict().items()}
    assert rounded["conv_in.weight"].shape == (8, 9, 3, 3)
    with tempfile.TemporaryDirectory() as tmp:
        pipe = StableDiffusionXLInpaintPipeline(**base_components(tmp), unet=unet.to(torch.float16),
                                                requires_aesthetics_score=False, force_zeros_for_empty_prompt=True,
                                                add_watermarker=False)
        saved = os.path.join(tmp, "saved")
        pipe.save_pretrained(saved, safe_serialization=True, variant=None)
        assert list_files(saved) == list_files(BASE) == sorted(SHARED_FILES + OWN_FILES), list_files(saved)
        for rel in SHARED_FILES:
            assert same_bytes(os.path.join(BASE, rel), os.path.join(saved, rel)), \
                f"save_pretrained does not reproduce the base folder's {rel}"
        if os.path.isdir(FOLDER):
            shutil.rmtree(FOLDER)
        for rel in SHARED_FILES:
            os.makedirs(os.path.dirname(os.path.join(FOLDER, rel)), exist_ok=True)
            shutil.copyfile(os.path.join(BASE, rel), os.path.join(FOLDER, rel))
        for rel in OWN_FILES:
            os.makedirs(os.path.dirname(os.path.join(FOLDER, rel)) or FOLDER, exist_ok=True)
            shutil.copyfile(os.path.join(saved, rel), os.path.join(FOLDER, rel))
    assert list_files(FOLDER) == list_files(BASE)
    for rel in SHARED_FILES:
        assert same_bytes(os.path.join(BASE, rel), os.path.join(FOLDER, rel)), rel
    with open(os.path.join(FOLDER, "model_index.json")) as f:
        index = json.load(f)
    with open(os.path.join(BASE, "model_index.json")) as f:
        base_index = json.load(f)
    assert index["_class_name"] == "StableDiffusionXLInpaintPipeline", index
    assert index["force_zeros_for_empty_prompt"] is True and index["requires_aesthetics_score"] is False, index
    extra = {k for k in index if k not in base_index}
    assert extra == {"requires_aesthetics_score"}, extra
    assert all(index[k] == base_index[k] for k in base_index if k != "_class_name"), (index, base_index)
    with open(os.path.join(FOLDER, "unet", "config.json")) as f, open(os.path.join(BASE, "unet", "config.json")) as g:
        ucfg, bcfg = json.load(f), json.load(g)
    assert ucfg.keys() == bcfg.keys() and {k for k in ucfg if ucfg[k] != bcfg[k]} == {"in_channels"}
    assert ucfg["in_channels"] == 9
    return rounded


def load_pipeline(rounded):
    pipe = StableDiffusionXLInpaintPipeline.from_pretrained(FOLDER, torch_dtype=torch.float32, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.unet.config.in_channels == 9
    assert pipe.config.force_zeros_for_empty_prompt and not pipe.config.requires_aesthetics_score
    got = pipe.unet.state_dict()
    assert got.keys() == rounded.keys()
    for k, v in rounded.items():
        assert got[k].dtype == torch.float32 and torch.equal(got[k], v), f"unet.{k} does not round-trip"
    for name, fname in (("vae", "vae/diffusion_pytorch_model.safetensors"),
                        ("text_encoder", "text_encoder/model.safetensors"),
                        ("text_encoder_2", "text_encoder_2/model.safetensors")):
        want = load_file(os.path.join(BASE, fname))
        sd = getattr(pipe, name).state_dict()
        for k, v in want.items():
            assert sd[k].dtype == torch.float32 and torch.equal(sd[k], v.float()), (name, k)
    return pipe


# ---------------------------------------------------------------------------------------------------------
# Runs

class Recorder:
    """A forward pre-hook on the UNet: every call's timestep, sample and conditioning."""

    def __init__(self):
        self.timesteps, self.samples, self.context, self.text_embeds, self.time_ids = [], [], [], [], []

    def __call__(self, module, args, kwargs):
        self.timesteps.append(float(args[1]))
        self.samples.append(args[0].detach().clone())
        self.context.append(kwargs["encoder_hidden_states"].detach().clone())
        self.text_embeds.append(kwargs["added_cond_kwargs"]["text_embeds"].detach().clone())
        self.time_ids.append(kwargs["added_cond_kwargs"]["time_ids"].detach().clone())


def rerun_by_hand(pipe, case, init_u8, mask_u8, sched_cfg, rec):
    """The whole case from the docstring's rules, with the pipeline's UNet, VAE and scheduler class and the text
    conditioning the pipeline fed its UNet. Returns (latent, masked_image_latents, z0 or None, first UNet input,
    the generator)."""
    vae, cls, f = pipe.vae, SCHEDULERS[case["scheduler"]], pipe.vae_scale_factor
    h, w = case["height"], case["width"]
    shape = (1, 4, h // f, w // f)
    sched = cls.from_config(sched_cfg)
    sched.set_timesteps(case["steps"])
    n_run = min(int(case["steps"] * case["strength"]), case["steps"])
    timesteps = sched.timesteps[case["steps"] - n_run:]

    # Preprocessing with the pipeline's own processors (the tensors' strides select the VAE's convolution
    # kernels, so the last bits depend on them), checked against the rules.
    x_img = pipe.image_processor.preprocess(PIL.Image.fromarray(init_u8, mode="RGB"), height=h, width=w)
    mb = pipe.mask_processor.preprocess(PIL.Image.fromarray(mask_u8, mode="L"), height=h, width=w)
    assert torch.equal(x_img, torch.from_numpy(init_u8).permute(2, 0, 1)[None].float() / 255.0 * 2.0 - 1.0)
    want_mb = torch.from_numpy((mask_u8.astype(np.float32) / 255.0 >= 0.5).astype(np.float32))[None, None]
    assert torch.equal(mb, want_mb), "mask binarisation"
    masked = x_img * (mb < 0.5)
    assert torch.equal(masked, torch.where(want_mb >= 0.5, torch.zeros(()), x_img)), "masked image"
    m = torch.nn.functional.interpolate(mb, size=(h // f, w // f))
    assert torch.equal(m, want_mb[:, :, ::f, ::f]), "latent mask is not image pixel (2i, 2j)"

    def posterior_sample(img, gen):
        with torch.no_grad():
            dist = vae.encode(img).latent_dist
        return vae.config.scaling_factor * (dist.mean + dist.std * torch.randn(shape, generator=gen))

    gen = torch.Generator("cpu").manual_seed(case["seed"])
    z0 = None
    if case["strength"] == 1.0:
        noise = torch.randn(shape, generator=gen)                         # draw 1
        x = noise * sched.init_noise_sigma
    else:
        z0 = posterior_sample(x_img, gen)                                 # draw 1
        noise = torch.randn(shape, generator=gen)                         # draw 2
        x = sched.add_noise(z0, noise, timesteps[:1])
    mil = posterior_sample(masked, gen)                                   # draw 2 (strength 1) or 3
    mask_in, mil_in = torch.cat([m, m]), torch.cat([mil, mil])
    ctx, temb, tids = rec.context[0], rec.text_embeds[0], rec.time_ids[0]
    first = None
    for t in timesteps:
        xin = torch.cat([sched.scale_model_input(torch.cat([x, x]), t), mask_in, mil_in], dim=1)
        if first is None:
            first = xin
        with torch.no_grad():
            eps = pipe.unet(xin, t, encoder_hidden_states=ctx,
                            added_cond_kwargs={"text_embeds": temb, "time_ids": tids}).sample
        u, c = eps.chunk(2)
        eps = u + case["cfg"] * (c - u)
        x = sched.step(eps, t, x, generator=gen).prev_sample  # Euler draws here; DPM++ 2M does not
    return x, mil, z0, first, gen, [float(t) for t in timesteps], m


def run_case(pipe, case, sched_cfg, check_pil=False):
    cls = SCHEDULERS[case["scheduler"]]
    pipe.scheduler = cls.from_config(sched_cfg)
    h, w = case["height"], case["width"]
    init_u8 = make_init_image(h, w, case["init_variant"])
    mask_u8 = make_mask(h, w, case["mask"])
    call = dict(prompt=case["prompt"], prompt_2=case["prompt_2"], negative_prompt=case["negative"],
                negative_prompt_2=case["negative_2"], image=PIL.Image.fromarray(init_u8, mode="RGB"),
                mask_image=PIL.Image.fromarray(mask_u8, mode="L"), height=h, width=w, strength=case["strength"],
                num_inference_steps=case["steps"], guidance_scale=case["cfg"])
    rec = Recorder()
    handle = pipe.unet.register_forward_pre_hook(rec, with_kwargs=True)
    gen = torch.Generator("cpu").manual_seed(case["seed"])
    try:
        with torch.no_grad():
            latent = pipe(**call, generator=gen, output_type="latent").images
    finally:
        handle.remove()
    f = pipe.vae_scale_factor
    lat_shape = (1, 4, h // f, w // f)
    # The generator's draws, in the docstring's order: it must end where they leave it.
    draws = (["noise", "masked posterior"] if case["strength"] == 1.0
             else ["posterior", "noise", "masked posterior"])
    if cls is EulerDiscreteScheduler:
        draws += ["step"] * len(rec.timesteps)
    base_script.check_draws(gen, case["seed"], lat_shape, len(draws), (case["name"], "generator draws", draws))

    all_timesteps = [float(x) for x in pipe.scheduler.timesteps.tolist()]
    n_run = min(int(case["steps"] * case["strength"]), case["steps"])
    assert rec.timesteps == all_timesteps[case["steps"] - n_run:], (case["name"], rec.timesteps)
    assert all(torch.equal(s, rec.time_ids[0]) for s in rec.time_ids)
    assert all(torch.equal(s, rec.context[0]) for s in rec.context)
    assert all(torch.equal(s, rec.text_embeds[0]) for s in rec.text_embeds)
    time_ids = rec.time_ids[0]
    assert time_ids.tolist() == [[h, w, 0, 0, h, w]] * 2, time_ids

    mine, mil, z0, first, my_gen, my_timesteps, m = rerun_by_hand(pipe, case, init_u8, mask_u8, sched_cfg, rec)
    assert my_timesteps == rec.timesteps
    assert torch.equal(my_gen.get_state(), gen.get_state()), "the rerun's draws differ"
    got_first = rec.samples[0]
    assert got_first.shape == (2, 9) + lat_shape[2:], got_first.shape
    assert torch.equal(got_first[0], got_first[1])
    assert torch.equal(got_first[:, 4:5], torch.cat([m, m])), "channel 4 is not the latent mask"
    assert torch.equal(got_first[:, 5:], torch.cat([mil, mil])), "channels 5..8 are not the masked-image latent"
    for s in rec.samples:
        assert torch.equal(s[:, 4:], got_first[:, 4:]), "mask or masked-image channels change between steps"
    first_diff = (got_first - first).abs().max().item()
    assert first_diff <= 1e-5 * first.abs().max().item(), (case["name"], "first UNet input", first_diff)
    diff = (mine - latent).abs().max().item()
    assert diff <= 1e-5 * latent.abs().max().item(), (case["name"], "rerun by hand", diff)
    info = dict(first_diff=first_diff, diff=diff)
    if z0 is not None:
        # No blending: outside the latent mask the result is not the init latent.
        keep = (m[0] == 0).expand_as(latent[0])
        assert not torch.equal(latent[0][keep], z0[0][keep]), case["name"]
        info["outside"] = (latent[0][keep] - z0[0][keep]).abs().max().item()
    # The extra channels matter: the first UNet call with the mask inverted, or the masked-image latent zeroed,
    # predicts something else.
    cond = dict(encoder_hidden_states=rec.context[0],
                added_cond_kwargs={"text_embeds": rec.text_embeds[0], "time_ids": rec.time_ids[0]})
    t0 = torch.tensor(rec.timesteps[0])
    with torch.no_grad():
        out = pipe.unet(got_first, t0, **cond).sample
        flipped = got_first.clone()
        flipped[:, 4:5] = 1 - flipped[:, 4:5]
        zeroed = got_first.clone()
        zeroed[:, 5:] = 0
        for what, other in (("mask", flipped), ("masked-image latent", zeroed)):
            d = (pipe.unet(other, t0, **cond).sample - out).abs().max().item()
            assert d > 1e-2 * out.abs().max().item(), (case["name"], what, d)
            info[what] = d

    image = decode_as_pipeline(pipe, latent)
    if check_pil:
        with torch.no_grad():
            pil = pipe(**call, generator=torch.Generator("cpu").manual_seed(case["seed"]), output_type="pil").images[0]
        assert torch.equal(torch.from_numpy(np.asarray(pil).copy()), image), "decode differs from the pipeline's"
    params = {k: case.get(k) for k in ("name", "pipeline", "scheduler")}
    params.update(pipeline_class=type(pipe).__name__, scheduler_class=cls.__name__, prompt=case["prompt"],
                  prompt_2=case["prompt_2"], negative=case["negative"], negative_2=case["negative_2"],
                  steps=case["steps"], cfg=case["cfg"], seed=case["seed"], width=w, height=h,
                  strength=case["strength"], init_variant=case["init_variant"], mask_rect=list(case["mask"]),
                  requires_aesthetics_score=bool(pipe.config.requires_aesthetics_score))
    params.update({k: None for k in SIZE_KEYS})
    params["all_timesteps"] = all_timesteps
    params["timesteps"] = rec.timesteps
    params["time_ids"] = time_ids.tolist()
    params["unet_in_channels"] = int(pipe.unet.config.in_channels)
    tensors = {"init": torch.from_numpy(init_u8).permute(2, 0, 1)[None].contiguous(),
               "mask": torch.from_numpy(mask_u8), "masked_image_latents": mil.contiguous(),
               "latent": latent[0:1].contiguous(), "image": image.contiguous(), "time_ids": time_ids.contiguous()}
    if z0 is not None:
        tensors["init_latents"] = z0.contiguous()
    return tensors, params, info


def run_cases(pipe):
    sched_cfg = dict(pipe.scheduler.config)
    meta = dict(versions(), seed=str(INPAINT9_SEED), scheduler_config=json.dumps(sched_cfg),
                unet_config=json.dumps(dict(pipe.unet.config)),
                folder_weights_sha256=json.dumps({rel: sha256(os.path.join(FOLDER, rel)) for rel in WEIGHT_FILES}))
    tensors, latents = {}, {}
    for i, case in enumerate(CASES):
        t, params, info = run_case(pipe, case, sched_cfg, check_pil=(i == 0))
        name = case["name"]
        latent, image = t["latent"], t["image"]
        assert torch.isfinite(latent).all(), name
        assert latent.shape == (1, 4, case["height"] // 2, case["width"] // 2), name
        assert image.shape == (case["height"], case["width"], 3) and image.dtype == torch.uint8, name
        for k, v in t.items():
            tensors[f"{name}.{k}"] = v
        meta[f"{name}.params"] = json.dumps(params)
        latents[name] = latent
        sat = ((image == 0) | (image == 255)).float().mean().item()
        print(f"  {name:21s} {params['scheduler_class']:27s} strength {case['strength']}: latent std "
              f"{latent.std().item():.3f}  image mean {image.float().mean().item():.1f} std "
              f"{image.float().std().item():.1f} saturated {sat:.0%}")
        print(f"  {'':21s} first UNet input off by {info['first_diff']:.1e}, rerun by hand off by {info['diff']:.1e}; "
              f"first UNet output moves by {info['mask']:.3f} with the mask inverted, "
              f"{info['masked-image latent']:.3f} with the masked-image latent zeroed"
              + (f"; outside the mask |latent - init_latents| up to {info['outside']:.3f} (no blending)"
                 if "outside" in info else ""))
        print(f"  {'':21s} timesteps {params['timesteps']} of {params['all_timesteps']}")
    base_script.assert_all_differ(latents)
    return tensors, meta


def main():
    torch.set_num_threads(1)
    check_prompts()
    rounded = write_folder()
    total = 0
    for rel in list_files(FOLDER):
        size = os.path.getsize(os.path.join(FOLDER, rel))
        total += size
        print(f"  {os.path.relpath(os.path.join(FOLDER, rel), ROOT)}: {size} bytes"
              + ("" if rel in OWN_FILES else " (copy of pipeline_sdxl/'s)"))
    print(f"wrote {os.path.relpath(FOLDER, ROOT)}: {total} bytes")
    pipe = load_pipeline(rounded)
    print("cases:")
    tensors, meta = run_cases(pipe)
    base_script.save(CASES_GOLDEN, tensors, meta)
    for k, v in tensors.items():
        print(f"  {k:38s} {str(v.dtype).replace('torch.', ''):8s} {list(v.shape)}")


if __name__ == "__main__":
    main()
