"""Full-size SD 1.5 and SD 2.1 (768-v) parity without shipping 2-3 GB checkpoints: the weights are a pure function
of the published tensor list (tests/data/keys/sd15.ldm.json.gz / sd21.ldm.json.gz: the LDM single-file names
and shapes of v1-5-pruned-emaonly and v2-1_768-ema-pruned)
and torch's CPU generator, so the C++ tests (tests/golden/fullsize_*_test.cpp) rebuild the same checkpoint bit for
bit with easel's TorchCpuGenerator, writes it as an fp16 single file and loads it the way users load theirs.

The rule, for tensor number i (0-based, in the list's order) with shape S:
    x = torch.randn(S, generator=torch.Generator().manual_seed(1000 + i))
    1-D, "norm" or ".ln_" in the name, ends in "weight"  -> 1 + 0.1 * x
    other 1-D and 0-D                                     -> 0.05 * x
    2-D and more                                          -> x * min(0.2, 1 / sqrt(numel / S[0]))
    ...embeddings.position_ids                            -> arange(77), int64 (as real checkpoints store it)
then rounded to fp16 (the file easel reads is fp16; the reference computes in fp32 on the rounded values).

The reference: diffusers' single-file converters (convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint,
convert_ldm_clip_checkpoint, or convert_open_clip_checkpoint for SD 2.x, which keeps 23 of the 24 stored
OpenCLIP layers: the penultimate layer) turn the LDM dict into diffusers/transformers models with the published
configs; SD 2.1 768 is a v-prediction model (k-diffusion's CompVisVDenoiser), SD 2.x prompts pad with id 0 after
the end token (A1111's OpenCLIP embedder); CLIP's real BPE vocabulary (data/clip, the one easel builds in, turned into vocab.json + merges.txt in a
temporary folder as make_tokenizer_goldens.py does) tokenizes. Generation is the k-diffusion loop of
make_pipeline_goldens.py (A1111 semantics) at 64x64 (latent 8x8): small images, full-size networks.

Besides txt2img (CASES, SAMPLER_CASES: every k-diffusion sampler easel offers, each with another schedule, and
AYS_CASES on SD 1.5), the same networks run:
  - IMG2IMG_CASES: k-diffusion img2img as make_pipeline_goldens.py does it, on a seeded random 64x64 init image;
  - INPAINT_CASES: A1111 inpainting with this ordinary (4-channel) model, latent blending, mask blur 4, as
    make_inpaint_goldens.py does it, on a 64x64 mask (a disc and a rectangle);
  - DIFFUSERS_CASES (`--schedule-from diffusers`): StableDiffusionPipeline / StableDiffusionImg2ImgPipeline with
    each scheduler class built from the scheduler config easel assumes for a single file (SD's: PNDM's fields,
    steps_offset 1, leading spacing; prediction_type v_prediction for SD 2.1 768-v), the tokenizer padding with
    <|endoftext|> (SD 1.x) or "!" = id 0 (SD 2.x's tokenizer_config), the generator passed to the pipeline.

Run with the reference environment (tools/reference/README.md); a few minutes and up to 12 GB of memory:
    source /work/refenv/env.sh && /usr/bin/python3 tools/reference/make_fullsize_goldens.py [sd15|sd21|sd15_inpaint|sd2_inpaint]
Writes tests/golden/data/fullsize_<variant>_cases.safetensors. The inpainting variants (sd-v1-5-inpainting's and
stable-diffusion-2-inpainting's layouts: a 9-channel conv_in; SD 2's is eps prediction) run INPAINT9_CASES only.
"""
import contextlib
import gzip
import io
import json
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402
import make_model_goldens as mg  # noqa: E402
import make_pipeline_goldens as pg  # noqa: E402
import make_key_lists as mk  # noqa: E402
import make_sampler_goldens as sg  # noqa: E402

import k_diffusion as K  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
from diffusers.loaders import single_file_utils as sfu  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer  # noqa: E402

OUT = os.path.join(ROOT, "tests", "golden", "data")
VOCAB = os.path.join(ROOT, "data", "clip")

CASES = [
    # name, sampler, schedule, steps, cfg, seed, prompt (A1111 syntax, for easel), the same prompt as A1111's
    # parse_prompt_attention splits it (pieces with weights, for this script), negative
    ("euler_a", "euler_a", "automatic", 6, 7.0, 42, "a photo of a cat, (masterpiece:1.2)",
     [("a photo of a cat, ", 1.0), ("masterpiece", 1.2)], "blurry"),
    ("dpmpp2m_karras", "dpm++2m", "karras", 6, 5.0, 7, "an astronaut riding a horse",
     [("an astronaut riding a horse", 1.0)], ""),
]

# The rest of easel's k-diffusion samplers, each with a different schedule, on both networks (SAMPLER_CASES;
# AYS_CASES on SD 1.5 only: NVIDIA's list is SD 1.5's). Same columns as CASES; prompts without emphasis.
SAMPLER_CASES = [
    ("heun_exponential", "heun", "exponential", 4, 6.0, 61, "a lighthouse at dusk"),
    ("dpm2_karras", "dpm2", "karras", 4, 6.0, 62, "a bowl of ramen"),
    ("lms_sgm_uniform", "lms", "sgm_uniform", 6, 7.0, 63, "a snowy village"),
    ("dpmpp2m_sde_karras", "dpm++2m_sde", "karras", 6, 5.0, 64, "a portrait of a knight"),
    ("dpmpp_sde_simple", "dpm++sde", "simple", 4, 5.0, 65, "a field of sunflowers"),
    ("ddim_ddim_uniform", "ddim", "ddim_uniform", 6, 7.0, 66, "a steam train"),
    ("lcm_sgm_uniform", "lcm", "sgm_uniform", 4, 1.5, 67, "a red car"),
]
AYS_CASES = [
    ("euler_ays", "euler", "ays", 6, 7.0, 68, "a tabby cat"),
]

IMG2IMG_CASES = [
    # name, sampler, schedule, steps, cfg, seed, prompt, negative, strength
    ("img2img_euler", "euler", "automatic", 8, 7.0, 21, "a watercolor landscape", "", 0.6),
]

INPAINT_CASES = [
    # name, sampler, steps, cfg, seed, prompt, strength
    ("inpaint_blend_euler_a", "euler_a", 8, 7.0, 22, "a red apple on a table", 0.75),
]
MASK_BLUR = 4

INPAINT9_CASES = [
    # name, mode, sampler or scheduler, steps, cfg, seed, prompt, strength
    ("inpaint9_euler_a", "kdiffusion", "euler_a", 8, 7.0, 51, "a red apple on a table", 0.75),
    ("inpaint9_euler", "kdiffusion", "euler", 6, 6.0, 52, "a vase of flowers", 1.0),
    ("diffusers_inpaint9_euler", "diffusers", "euler", 6, 6.0, 53, "a vase of flowers", 1.0),
    ("diffusers_inpaint9_dpmpp2m", "diffusers", "dpm++2m", 8, 5.0, 54, "a red apple on a table", 0.8),
]

DIFFUSERS_CASES = [
    # name, scheduler, steps, cfg, seed, prompt, negative, img2img strength (None: txt2img)
    ("diffusers_euler", "euler", 6, 7.0, 31, "a photo of a dog", "", None),
    ("diffusers_euler_a", "euler_a", 6, 7.0, 32, "a castle on a hill", "blurry", None),
    ("diffusers_heun", "heun", 4, 6.0, 33, "portrait of an old man", "", None),
    ("diffusers_lms", "lms", 6, 7.0, 34, "a bowl of fruit", "", None),
    ("diffusers_dpmpp2m", "dpm++2m", 6, 5.0, 35, "a city at night", "", None),
    ("diffusers_dpmpp2m_karras", "dpm++2m_karras", 6, 5.0, 36, "a forest in autumn", "", None),
    ("diffusers_ddim", "ddim", 6, 7.0, 37, "a sailing boat", "fog", None),
    ("diffusers_pndm", "pndm", 6, 7.0, 38, "a cup of coffee", "", None),
    ("diffusers_unipc", "unipc", 6, 7.0, 39, "a mountain lake", "", None),
    ("diffusers_lcm", "lcm", 4, 1.5, 40, "a red car", "", None),
    ("diffusers_img2img_euler", "euler", 8, 7.0, 41, "a watercolor landscape", "", 0.6),
    ("diffusers_img2img_dpmpp2m", "dpm++2m", 8, 5.0, 42, "an oil painting", "", 0.5),
]


def weight(i, name, shape):
    if name.endswith("embeddings.position_ids"):
        return torch.arange(shape[-1], dtype=torch.int64).reshape(shape)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1000 + i))
    if len(shape) <= 1:
        norm = ("norm" in name or ".ln_" in name) and name.endswith("weight") and len(shape) == 1
        x = 1.0 + 0.1 * x if norm else 0.05 * x
    else:
        x = x * min(0.2, 1.0 / math.sqrt(math.prod(shape) / shape[0]))
    return x.half().float()


VARIANTS = {
    "sd15": dict(unet=mk.SD15_UNET, text=mk.CLIP_L, open_clip=False, v=False),
    "sd21": dict(unet=mk.SD21_UNET, text=mk.OPEN_CLIP_H, open_clip=True, v=True),
    # sd-v1-5-inpainting: SD 1.5 with a 9-channel conv_in; runs INPAINT9_CASES only.
    "sd15_inpaint": dict(unet=mk.SD15_INPAINT_UNET, text=mk.CLIP_L, open_clip=False, v=False, inpaint=True),
    # stable-diffusion-2-inpainting: SD 2's network (OpenCLIP-H, eps prediction) with a 9-channel conv_in.
    "sd2_inpaint": dict(unet=mk.SD2_INPAINT_UNET, text=mk.OPEN_CLIP_H, open_clip=True, v=False, inpaint=True),
}


def main():
    variant = sys.argv[1] if len(sys.argv) > 1 else "sd15"
    spec = VARIANTS[variant]
    with gzip.open(os.path.join(ROOT, "tests", "data", "keys", f"{variant}.ldm.json.gz"), "rt") as f:
        tensors = json.load(f)["tensors"]
    ldm = {name: weight(i, name, shape) for i, (name, shape, _) in enumerate(tensors)}
    te = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in spec["text"].items() if k != "architectures"})).eval()
    with contextlib.redirect_stdout(io.StringIO()):
        fu = sfu.convert_ldm_unet_checkpoint(ldm, dict(spec["unet"]))
        fv = sfu.convert_ldm_vae_checkpoint(ldm, dict(mk.SD_VAE))
        ft = sfu.convert_open_clip_checkpoint(te, ldm) if spec["open_clip"] else sfu.convert_ldm_clip_checkpoint(ldm)
    ft.pop("text_model.embeddings.position_ids", None)
    ucfg = {k: v for k, v in spec["unet"].items() if not k.startswith("_")}
    vcfg = {k: v for k, v in mk.SD_VAE.items() if not k.startswith("_")}
    unet = UNet2DConditionModel(**ucfg).eval()
    unet.load_state_dict(fu)
    vae = AutoencoderKL(**vcfg).eval()
    vae.load_state_dict(fv)
    missing, unexpected = te.load_state_dict(ft, strict=False)
    assert not missing, missing
    assert all(k.startswith("text_projection") for k in unexpected), unexpected
    del ldm, fu, fv, ft
    unet.set_attn_processor(mg.ZeroedAttnProcessor())
    vae.set_attn_processor(mg.ZeroedAttnProcessor())
    import tempfile
    import make_tokenizer_goldens as tg
    tmp = tempfile.mkdtemp()
    tok = CLIPTokenizer(*tg.vocab_from_gz(os.path.join(VOCAB, "bpe_simple_vocab_16e6.txt.gz"), tmp))

    pad = 0 if spec["open_clip"] else None
    if spec["v"]:
        model = K.external.CompVisVDenoiser(pg.LdmWrapper(unet), quantize=False)
    else:
        model = K.external.CompVisDenoiser(pg.LdmWrapper(unet), quantize=False)
    out = {}
    meta = {"script": "tools/reference/make_fullsize_goldens.py", "git": mg.git_hash(), "torch": torch.__version__,
            "keys": f"tests/data/keys/{variant}.ldm.json.gz", "width": "64", "height": "64",
            "prediction": "v" if spec["v"] else "epsilon"}
    if spec.get("inpaint"):
        with torch.no_grad():
            run_inpaint9(unet, vae, tok, te, 0 if spec["open_clip"] else None, out, meta)
        safetensors_io.save_file(out, os.path.join(OUT, f"fullsize_{variant}_cases.safetensors"), meta)
        return
    extra = SAMPLER_CASES + (AYS_CASES if variant == "sd15" else [])
    with torch.no_grad():
        for name, sampler, schedule, steps, cfg, seed, prompt, pieces, negative in CASES + [
                (n, sa, sc, st, c, se, pr, [(pr, 1.0)], "") for n, sa, sc, st, c, se, pr in extra]:
            cond = a1111_encode(tok, te, pieces, pad)
            uncond = a1111_encode(tok, te, [(negative, 1.0)], pad)
            sigmas = kdiffusion_sigmas(model, schedule, steps)
            g = torch.Generator().manual_seed(seed)
            x = torch.randn((1, 4, 8, 8), generator=g) * sigmas[0]
            x0 = pg.run_sampler(sampler, pg.cfg_denoiser(model, cond, uncond, cfg), x, sigmas, g)
            img = vae.decode(x0 / 0.18215).sample
            if not (torch.isfinite(x0).all() and torch.isfinite(img).all()):
                sys.exit(f"{name}: non-finite output; refusing to write goldens")
            img8 = ((img / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
            if any(name == c[0] for c in CASES):  # 236 KB each: the extra samplers' prompts take the same path
                out[f"{name}.cond"] = cond.contiguous()
            out[f"{name}.latent"] = x0.contiguous()
            out[f"{name}.image"] = img8.contiguous()
            meta[f"{name}.params"] = json.dumps(dict(sampler=sampler, schedule=schedule, steps=steps, cfg=cfg,
                                                     seed=seed, prompt=prompt, negative=negative))
            print(f"{name}: cond std {cond.std().item():.3f}, latent std {x0.std().item():.3f}, "
                  f"image mean {img8.float().mean().item():.1f} std {img8.float().std().item():.1f}")
        run_img2img_and_inpaint(model, vae, tok, te, pad, out, meta)
        run_diffusers(spec, unet, vae, tok, te, pad, out, meta)
    safetensors_io.save_file(out, os.path.join(OUT, f"fullsize_{variant}_cases.safetensors"), meta)


def kdiffusion_sigmas(model, schedule, steps):
    """"automatic" is k-diffusion's get_sigmas; the others as make_sampler_goldens.py restates ComfyUI's."""
    if schedule == "automatic":
        return model.get_sigmas(steps)
    return sg.schedules(model, steps)[schedule]


def save_case(out, meta, name, x0, img, params):
    if not (torch.isfinite(x0).all() and torch.isfinite(img).all()):
        sys.exit(f"{name}: non-finite output; refusing to write goldens")
    img8 = img if img.dtype == torch.uint8 else ((img / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    out[f"{name}.latent"] = x0.contiguous()
    out[f"{name}.image"] = img8.contiguous()
    meta[f"{name}.params"] = json.dumps(params)
    print(f"{name}: latent std {x0.std().item():.3f}, image mean {img8.float().mean().item():.1f} "
          f"std {img8.float().std().item():.1f}")


def init_image():
    return (torch.rand((1, 3, 64, 64), generator=torch.Generator().manual_seed(9)) * 255).round().to(torch.uint8)


def inpaint_mask():
    import make_inpaint_goldens as ig
    return ig.make_mask(64)  # make_inpaint_goldens.py's disc and rectangle, at 64x64


def img2img_start(model, vae, src, steps, strength, seed):
    """k-diffusion img2img as A1111 starts it: the last int(strength * steps) + 1 sigmas of get_sigmas(steps); one
    generator that samples the init image's posterior, then draws the noise added at the first sigma.
    Returns (sigmas, generator, init latent, starting x)."""
    sigmas = model.get_sigmas(steps)
    t_enc = int(min(strength, 0.999) * steps)
    sigmas = sigmas[steps - t_enc - 1:]
    g = torch.Generator().manual_seed(seed)
    mean, logvar = torch.chunk(vae.quant_conv(vae.encoder(src)), 2, dim=1)
    std = torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0))
    init = (mean + std * torch.randn(mean.shape, generator=g)) * vae.config.scaling_factor
    return sigmas, g, init, init + torch.randn(init.shape, generator=g) * sigmas[0]


def sd_scheduler_config(v):
    """The scheduler config easel assumes for a single file: SD's (PNDM's fields, steps_offset 1)."""
    return {"_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
            "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
            "prediction_type": "v_prediction" if v else "epsilon", "set_alpha_to_one": False,
            "skip_prk_steps": True, "steps_offset": 1, "clip_sample": False}


def a1111_inpaint(model, vae, tok, te, pad, init_u8, blurred, sampler, steps, cfg, seed, prompt, strength):
    """A1111 inpainting through k-diffusion (make_inpaint_goldens.py has the steps): latent blending with the
    blurred mask's 8x8 latent mask, then the original pasted back. Returns (final latent, uint8 image)."""
    import numpy as np
    from PIL import Image
    src = init_u8.float() / 127.5 - 1.0
    sf = vae.config.scaling_factor
    lat_u8 = np.array(Image.fromarray(blurred).convert("RGB").resize((8, 8)), dtype=np.float32)[..., 0]
    latmask = torch.from_numpy(np.around(lat_u8 / 255.0).astype(np.float32))[None, None]
    keep, repaint = 1.0 - latmask, latmask
    cond = a1111_encode(tok, te, [(prompt, 1.0)], pad)
    uncond = a1111_encode(tok, te, [("", 1.0)], pad)
    sigmas, g, init, x = img2img_start(model, vae, src, steps, strength, seed)
    base = pg.cfg_denoiser(model, cond, uncond, cfg)

    def den(xx, sigma):
        return init * keep + repaint * base(xx, sigma)

    x0 = pg.run_sampler(sampler, den, x, sigmas, g)
    x0 = x0 * repaint + init * keep
    gen8 = ((vae.decode(x0 / sf).sample / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.int64)
    overlay = torch.from_numpy(np.clip(blurred.astype(np.int64) * 2, 0, 255))[None, None]
    img8 = ((gen8 * overlay + init_u8.to(torch.int64) * (255 - overlay) + 127) // 255).to(torch.uint8)
    print(f"{prompt!r}: latent mask repaints {int(latmask.sum())} of 64 cells")
    return x0, img8


def run_img2img_and_inpaint(model, vae, tok, te, pad, out, meta):
    """k-diffusion img2img and A1111 inpainting with latent blending (make_pipeline_goldens.py and
    make_inpaint_goldens.py have the steps), at 64x64."""
    import make_inpaint_goldens as ig
    init_u8 = init_image()
    src = init_u8.float() / 127.5 - 1.0
    out["init_image"] = init_u8.contiguous()
    for name, sampler, schedule, steps, cfg, seed, prompt, negative, strength in IMG2IMG_CASES:
        cond = a1111_encode(tok, te, [(prompt, 1.0)], pad)
        uncond = a1111_encode(tok, te, [(negative, 1.0)], pad)
        sigmas, g, _, x = img2img_start(model, vae, src, steps, strength, seed)
        x0 = pg.run_sampler(sampler, pg.cfg_denoiser(model, cond, uncond, cfg), x, sigmas, g)
        save_case(out, meta, name, x0, vae.decode(x0 / vae.config.scaling_factor).sample,
                  dict(sampler=sampler, schedule=schedule, steps=steps, cfg=cfg, seed=seed, prompt=prompt,
                       negative=negative, strength=strength))
    mask_u8 = inpaint_mask()
    out["mask"] = torch.from_numpy(mask_u8.copy())
    meta["mask_blur"] = str(MASK_BLUR)
    blurred = ig.gaussian_blur_u8(mask_u8, MASK_BLUR)
    for name, sampler, steps, cfg, seed, prompt, strength in INPAINT_CASES:
        x0, img8 = a1111_inpaint(model, vae, tok, te, pad, init_u8, blurred, sampler, steps, cfg, seed, prompt,
                                 strength)
        save_case(out, meta, name, x0, img8, dict(sampler=sampler, steps=steps, cfg=cfg, seed=seed, prompt=prompt,
                                                  strength=strength))


def run_inpaint9(unet, vae, tok, te, pad, out, meta):
    """The 9-channel model (sd-v1-5-inpainting's layout): A1111 inpainting through k-diffusion with the mask and the
    masked picture's latent concatenated to the UNet input (make_inpaint_goldens.py, step 5), and diffusers'
    StableDiffusionInpaintPipeline (make_inpaint_diffusers_goldens.py) on the blurred mask, at 64x64."""
    import numpy as np
    from PIL import Image
    from diffusers import StableDiffusionInpaintPipeline
    import make_inpaint_goldens as ig
    import make_pipeline_diffusers_goldens as dg
    init_u8 = init_image()
    src = init_u8.float() / 127.5 - 1.0
    mask_u8 = inpaint_mask()
    blurred = ig.gaussian_blur_u8(mask_u8, MASK_BLUR)
    out["init_image"] = init_u8.contiguous()
    out["mask"] = torch.from_numpy(mask_u8.copy())
    out["mask_blurred"] = torch.from_numpy(blurred.copy())  # what the diffusers cases were given as the mask
    meta["mask_blur"] = str(MASK_BLUR)
    sf = vae.config.scaling_factor
    cmask = torch.round(torch.from_numpy(blurred.astype(np.float32) / 255.0))[None, None]
    mmean, _ = torch.chunk(vae.quant_conv(vae.encoder(src * (1.0 - cmask))), 2, dim=1)
    concat = torch.cat([torch.nn.functional.interpolate(cmask, size=mmean.shape[-2:]), mmean * sf], dim=1)
    model = K.external.CompVisDenoiser(ig.ConcatWrapper(unet, concat), quantize=False)
    sched_cfg = sd_scheduler_config(v=False)
    meta["scheduler_config"] = json.dumps(sched_cfg)
    pipeline_tokenizer(tok, pad)
    for name, mode, sampler, steps, cfg, seed, prompt, strength in INPAINT9_CASES:
        params = dict(sampler=sampler, steps=steps, cfg=cfg, seed=seed, prompt=prompt, negative="", strength=strength)
        if mode == "kdiffusion":
            x0, img8 = a1111_inpaint(model, vae, tok, te, pad, init_u8, blurred, sampler, steps, cfg, seed, prompt,
                                     strength)
            save_case(out, meta, name, x0, img8, params)
        else:
            scheduler = dg.SCHEDULERS[sampler][0].from_config(sched_cfg)
            pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet,
                                                  scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                                  requires_safety_checker=False)
            pipe.set_progress_bar_config(disable=True)
            g = torch.Generator("cpu").manual_seed(seed)
            lat = pipe(prompt, image=Image.fromarray(init_u8[0].permute(1, 2, 0).numpy()),
                       mask_image=Image.fromarray(blurred, mode="L"), strength=strength, height=64, width=64,
                       num_inference_steps=steps, guidance_scale=cfg, generator=g, output_type="latent").images
            params.update(mode="diffusers", scheduler=sampler)
            del params["sampler"]
            save_case(out, meta, name, lat, vae.decode(lat / sf).sample, params)


def pipeline_tokenizer(tok, pad):
    """The tokenizer as the model folders' tokenizer_config.json set it up for diffusers' pipelines: 77 positions,
    padded with end-of-text (SD 1.x) or "!" (id 0, SD 2.x's OpenCLIP)."""
    tok.model_max_length = 77
    if pad is not None:
        tok.pad_token = "!"
    assert tok.pad_token_id == (0 if pad is not None else tok.eos_token_id), tok.pad_token_id


def run_diffusers(spec, unet, vae, tok, te, pad, out, meta):
    """diffusers' own pipelines with each scheduler (make_pipeline_diffusers_goldens.py), at 64x64."""
    from PIL import Image
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline
    import make_pipeline_diffusers_goldens as dg
    sched_cfg = sd_scheduler_config(spec["v"])
    meta["scheduler_config"] = json.dumps(sched_cfg)
    pipeline_tokenizer(tok, pad)
    init_pil = Image.fromarray(init_image()[0].permute(1, 2, 0).numpy())
    for name, sched, steps, cfg, seed, prompt, negative, strength in DIFFUSERS_CASES:
        cls, extra = dg.SCHEDULERS[sched]
        scheduler = cls.from_config(sched_cfg, **extra)
        kind = StableDiffusionPipeline if strength is None else StableDiffusionImg2ImgPipeline
        pipe = kind(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=scheduler, safety_checker=None,
                    feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        kw = dict(height=64, width=64) if strength is None else dict(image=init_pil, strength=strength)
        g = torch.Generator("cpu").manual_seed(seed)
        lat = pipe(prompt, negative_prompt=negative, num_inference_steps=steps, guidance_scale=cfg, generator=g,
                   output_type="latent", **kw).images
        params = dict(mode="diffusers", scheduler=sched, steps=steps, cfg=cfg, seed=seed, prompt=prompt,
                      negative=negative, spacing=scheduler.config.timestep_spacing)
        if strength is not None:
            params["strength"] = strength
        save_case(out, meta, name, lat, vae.decode(lat / vae.config.scaling_factor).sample, params)


def a1111_encode(tok, te, pieces, pad=None):
    """A1111's FrozenCLIPEmbedderWithCustomWords for one chunk: each (text, weight) piece tokenized on its own,
    BOS + tokens + EOS padding to 77, last hidden state, multiply by the weights, restore the mean
    ("Original" emphasis)."""
    ids, weights = [], []
    for piece, w in pieces:
        t = tok(piece, add_special_tokens=False).input_ids
        ids += t
        weights += [w] * len(t)
    ids = [tok.bos_token_id] + ids[:75] + [tok.eos_token_id] * (76 - min(75, len(ids)))
    if pad is not None:  # A1111's OpenCLIP embedder: everything after the first end token becomes id_pad (0)
        first = ids.index(tok.eos_token_id)
        ids = ids[:first + 1] + [pad] * (76 - first)
    weights = [1.0] + weights[:75] + [1.0] * (76 - min(75, len(weights)))
    z = te(torch.tensor([ids])).last_hidden_state
    w = torch.tensor(weights).reshape(1, -1, 1)
    original_mean = z.mean()
    z = z * w
    return z * (original_mean / z.mean())


if __name__ == "__main__":
    main()
