"""Inpainting goldens in diffusers semantics (`easel generate --schedule-from diffusers --mask M`): diffusers'
StableDiffusionInpaintPipeline (v0.30.3) with the scheduler classes easel supports there, built with
`from_config` from the folder's scheduler_config.json as make_pipeline_diffusers_goldens.py does, on the two tiny
random-weight models make_inpaint_goldens.py uses:

  - the ordinary 4-channel model tests/golden/data/pipeline_sd1/ ("blend_*"): after every scheduler step the
    pipeline blends latents = (1 - mask) * add_noise(image_latents, noise, timesteps[i + 1]) + mask * latents
    (the original, noised to the next timestep, outside the mask; after the last step the un-noised
    image_latents, so the final latent outside the mask is the init image's);
  - the 9-channel inpainting model tests/golden/data/pipeline_sd1_inpaint/ ("inpaint9_*"): the UNet input is
    [scaled latents, mask, masked-image latents].

Run with the reference environment (tools/reference/README.md), after make_inpaint_goldens.py:
    source /work/refenv/env.sh && /usr/bin/python3 tools/reference/make_inpaint_diffusers_goldens.py

The inputs are inpaint_cases.safetensors' init image and, as the mask, that file's mask after
make_inpaint_goldens.py's blur (grey levels 0..255, so the mask processor's binarisation at 0.5 matters). The
generator is torch.Generator("cpu").manual_seed(seed); in pipeline order it draws: the init image's posterior
sample (4-channel models always, 9-channel ones only when strength < 1), the initial noise, the masked image's
posterior sample (always, even for 4-channel models that do not use it), then each ancestral step's noise.
Strength 1 starts from noise * init_noise_sigma instead of the noised image.

Writes tests/golden/data/inpaint_diffusers_cases.safetensors: init image, mask, and per case the final latent
(output_type="latent") and the image decoded from it (uint8, rounded as numpy_to_pil). diffusers does not paste
the original back (no padding_mask_crop), so neither does the golden.
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
import safetensors_io  # noqa: E402
import make_model_goldens as mg  # noqa: E402
import make_inpaint_goldens as ig  # noqa: E402  (the mask blur)
import export  # noqa: E402  (tools/train: load_diffusers)

from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,  # noqa: E402
                       EulerDiscreteScheduler, LMSDiscreteScheduler, StableDiffusionInpaintPipeline)
from transformers import CLIPTokenizer  # noqa: E402

OUT = os.path.join(ROOT, "tests", "golden", "data")
BASE = os.path.join(OUT, "pipeline_sd1")
INPAINT = os.path.join(OUT, "pipeline_sd1_inpaint")
SIZE = 32

SCHEDULERS = {
    "euler": EulerDiscreteScheduler,
    "euler_a": EulerAncestralDiscreteScheduler,
    "lms": LMSDiscreteScheduler,
    "dpm++2m": DPMSolverMultistepScheduler,
    "ddim": DDIMScheduler,
}

CASES = [
    # name, model, scheduler, steps, cfg, seed, prompt, negative, strength
    ("blend_euler", "base", "euler", 10, 7.0, 31, "a red circle", "", 0.6),
    ("blend_euler_a", "base", "euler_a", 10, 7.0, 32, "a small green triangle", "blurry", 1.0),
    ("blend_dpmpp2m", "base", "dpm++2m", 10, 5.0, 33, "a blue square on the left", "", 0.7),
    ("blend_ddim", "base", "ddim", 10, 7.0, 34, "a red square", "", 0.55),
    ("blend_lms", "base", "lms", 10, 7.0, 35, "a green square", "", 0.8),
    ("inpaint9_euler", "inpaint", "euler", 10, 6.0, 36, "a small square", "", 1.0),
    ("inpaint9_euler_a", "inpaint", "euler_a", 10, 7.0, 37, "a green triangle", "", 0.75),
    ("inpaint9_dpmpp2m", "inpaint", "dpm++2m", 10, 5.0, 38, "a large circle", "red", 0.8),
    ("inpaint9_ddim", "inpaint", "ddim", 10, 7.0, 39, "a blue circle", "", 1.0),
]


def main():
    vae, unet4, te = export.load_diffusers(BASE)
    _, unet9, _ = export.load_diffusers(INPAINT)  # same VAE and text encoder (copied by make_inpaint_goldens.py)
    for m in (unet4, unet9, vae):
        m.set_attn_processor(mg.ZeroedAttnProcessor())
    tok = CLIPTokenizer.from_pretrained(os.path.join(BASE, "tokenizer"))
    with open(os.path.join(BASE, "scheduler", "scheduler_config.json")) as f:
        sched_cfg = json.load(f)

    src = safetensors_io.load_file(os.path.join(OUT, "inpaint_cases.safetensors"))
    init_u8 = torch.from_numpy(src["init_image"])  # [1, 3, 32, 32]
    mask_u8 = ig.gaussian_blur_u8(np.asarray(src["mask"]), ig.MASK_BLUR)  # [32, 32] grey levels
    init_pil = Image.fromarray(init_u8[0].permute(1, 2, 0).numpy())
    mask_pil = Image.fromarray(mask_u8, mode="L")
    tensors = {"init_image": init_u8.contiguous(), "mask": torch.from_numpy(mask_u8.copy())}
    meta = {"script": "tools/reference/make_inpaint_diffusers_goldens.py", "git": mg.git_hash(),
            "torch": torch.__version__, "width": str(SIZE), "height": str(SIZE),
            "scheduler_config": json.dumps(sched_cfg)}
    for name, which, sched, steps, cfg, seed, prompt, negative, strength in CASES:
        scheduler = SCHEDULERS[sched].from_config(sched_cfg)
        unet = unet9 if which == "inpaint" else unet4
        pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=scheduler,
                                              safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        g = torch.Generator("cpu").manual_seed(seed)
        with torch.no_grad():
            lat = pipe(prompt, image=init_pil, mask_image=mask_pil, strength=strength, negative_prompt=negative,
                       height=SIZE, width=SIZE, num_inference_steps=steps, guidance_scale=cfg, generator=g,
                       output_type="latent").images
            img = vae.decode(lat / vae.config.scaling_factor).sample
        img8 = ((img / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
        tensors[f"{name}.latent"] = lat.contiguous()
        tensors[f"{name}.image"] = img8.contiguous()
        meta[f"{name}.params"] = json.dumps(dict(model=which, scheduler=sched, steps=steps, cfg=cfg, seed=seed,
                                                 prompt=prompt, negative=negative, strength=strength,
                                                 spacing=scheduler.config.timestep_spacing))
        print(f"{name}: {type(scheduler).__name__} strength {strength}, latent std {lat.std().item():.3f}, "
              f"image mean {img8.float().mean().item():.1f}")
    safetensors_io.save_file(tensors, os.path.join(OUT, "inpaint_diffusers_cases.safetensors"), meta)


if __name__ == "__main__":
    main()
