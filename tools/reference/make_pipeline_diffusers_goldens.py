"""End-to-end txt2img goldens in diffusers semantics (`easel generate --schedule-from diffusers`): diffusers'
StableDiffusionPipeline with each supported scheduler class, built with `from_config` from the folder's
scheduler/scheduler_config.json (SD 1.5's PNDM config: steps_offset 1 and no timestep_spacing, so each class
uses its own default spacing), on the tiny random-weight model that make_pipeline_goldens.py wrote
(tests/golden/data/pipeline_sd1/, fp16 weights computed in fp32).

Run with the reference environment (tools/reference/README.md), after make_pipeline_goldens.py:
    source /work/refenv/env.sh && /usr/bin/python3 tools/reference/make_pipeline_diffusers_goldens.py

img2img cases run StableDiffusionImg2ImgPipeline on the init image of pipeline_sd1_cases.safetensors (copied
here as init_image): t_start = steps - min(int(steps * strength), steps), the scheduler's timesteps from
t_start * order on (set_begin_index), the init latent a posterior sample drawn from the generator, then
scheduler.add_noise with a second draw.

Writes tests/golden/data/pipeline_sd1_diffusers_cases.safetensors: per case the pipeline's final latent
(output_type="latent", as diffusers returns it) and the image decoded from it (uint8, rounded as numpy_to_pil),
with the case parameters in the metadata. The generator is torch.Generator("cpu").manual_seed(seed) passed to
the pipeline: it draws the initial latent and, for ancestral schedulers, every step's noise.
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
import safetensors_io  # noqa: E402
import make_model_goldens as mg  # noqa: E402
import export  # noqa: E402  (tools/train: load_diffusers)

from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,  # noqa: E402
                       EulerDiscreteScheduler, HeunDiscreteScheduler, LMSDiscreteScheduler, PNDMScheduler,
                       LCMScheduler, StableDiffusionImg2ImgPipeline, StableDiffusionPipeline,
                       UniPCMultistepScheduler)
from transformers import CLIPTokenizer  # noqa: E402

OUT = os.path.join(ROOT, "tests", "golden", "data")
FOLDER = os.path.join(OUT, "pipeline_sd1")

SCHEDULERS = {
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "heun": (HeunDiscreteScheduler, {}),
    "lms": (LMSDiscreteScheduler, {}),
    "dpm++2m": (DPMSolverMultistepScheduler, {}),
    "dpm++2m_karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),
    "ddim": (DDIMScheduler, {}),
    "pndm": (PNDMScheduler, {}),
    "unipc": (UniPCMultistepScheduler, {}),
    "unipc_karras": (UniPCMultistepScheduler, {"use_karras_sigmas": True}),
    "lcm": (LCMScheduler, {}),  # with ordinary CFG (StableDiffusionPipeline), not an LCM pipeline's w-embedding
}

CASES = [
    # name, scheduler, steps, cfg, seed, prompt, negative
    ("euler", "euler", 12, 7.0, 42, "a red circle on a blue background", ""),
    ("euler_a", "euler_a", 12, 7.0, 1234, "a small green triangle at the top", "blurry"),
    ("heun", "heun", 8, 6.0, 99, "photo of a cat", "dog"),
    ("lms", "lms", 12, 7.0, 5, "a green square", ""),
    ("dpmpp2m", "dpm++2m", 12, 5.0, 7, "a large square, masterpiece", ""),
    ("dpmpp2m_karras", "dpm++2m_karras", 12, 5.0, 8, "a blue triangle on the right", ""),
    ("ddim", "ddim", 12, 7.0, 11, "a red square on the left", ""),
    ("pndm", "pndm", 12, 7.0, 13, "a green circle at the bottom", "red"),
    ("unipc", "unipc", 7, 7.0, 14, "a yellow circle on a purple background", "blurry"),
    ("unipc_4", "unipc", 4, 7.0, 15, "a white square on the right", ""),
    ("unipc_karras", "unipc_karras", 12, 5.0, 16, "an orange triangle in the centre", ""),
    ("lcm", "lcm", 4, 1.5, 17, "a black circle on a yellow background", ""),
    ("lcm_7", "lcm", 7, 3.0, 18, "a red triangle at the bottom", "blue"),
]

IMG2IMG_CASES = [
    # name, scheduler, steps, cfg, seed, prompt, negative, strength
    ("img2img_euler", "euler", 12, 7.0, 21, "a red circle on a blue background", "", 0.6),
    ("img2img_euler_a", "euler_a", 12, 7.0, 22, "a small green triangle", "blurry", 0.75),
    ("img2img_heun", "heun", 8, 6.0, 23, "photo of a cat", "", 0.5),
    ("img2img_lms", "lms", 12, 7.0, 24, "a green square", "", 0.6),
    ("img2img_dpmpp2m", "dpm++2m", 12, 5.0, 25, "a large square", "", 0.7),
    ("img2img_ddim", "ddim", 12, 7.0, 26, "a red square on the left", "", 0.55),
    ("img2img_unipc", "unipc", 12, 7.0, 27, "a blue circle at the top", "", 0.6),
    ("img2img_lcm", "lcm", 8, 2.0, 28, "a green triangle", "", 0.5),
]


def main():
    vae, unet, te = export.load_diffusers(FOLDER)
    unet.set_attn_processor(mg.ZeroedAttnProcessor())
    vae.set_attn_processor(mg.ZeroedAttnProcessor())
    tok = CLIPTokenizer.from_pretrained(os.path.join(FOLDER, "tokenizer"))
    with open(os.path.join(FOLDER, "scheduler", "scheduler_config.json")) as f:
        sched_cfg = json.load(f)
    tensors, meta = {}, {"script": "tools/reference/make_pipeline_diffusers_goldens.py", "git": mg.git_hash(),
                         "torch": torch.__version__, "width": "32", "height": "32",
                         "scheduler_config": json.dumps(sched_cfg)}
    for name, sched, steps, cfg, seed, prompt, negative in CASES:
        cls, extra = SCHEDULERS[sched]
        scheduler = cls.from_config(sched_cfg, **extra)
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=scheduler,
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        g = torch.Generator("cpu").manual_seed(seed)
        with torch.no_grad():
            lat = pipe(prompt, negative_prompt=negative, height=32, width=32, num_inference_steps=steps,
                       guidance_scale=cfg, generator=g, output_type="latent").images
            img = vae.decode(lat / vae.config.scaling_factor).sample
        img8 = ((img / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
        tensors[f"{name}.latent"] = lat.contiguous()
        tensors[f"{name}.image"] = img8.contiguous()
        meta[f"{name}.params"] = json.dumps(dict(scheduler=sched, steps=steps, cfg=cfg, seed=seed, prompt=prompt,
                                                 negative=negative, spacing=scheduler.config.timestep_spacing))
        print(f"{name}: {cls.__name__} spacing {scheduler.config.timestep_spacing}, latent std {lat.std().item():.3f}, "
              f"image mean {img8.float().mean().item():.1f}")
    from PIL import Image
    init_u8 = torch.from_numpy(safetensors_io.load_file(os.path.join(OUT, "pipeline_sd1_cases.safetensors"))["init_image"])
    tensors["init_image"] = init_u8.contiguous()  # [1, 3, 32, 32] u8
    init_pil = Image.fromarray(init_u8[0].permute(1, 2, 0).numpy())
    for name, sched, steps, cfg, seed, prompt, negative, strength in IMG2IMG_CASES:
        cls, extra = SCHEDULERS[sched]
        scheduler = cls.from_config(sched_cfg, **extra)
        pipe = StableDiffusionImg2ImgPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=scheduler,
                                              safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        g = torch.Generator("cpu").manual_seed(seed)
        with torch.no_grad():
            lat = pipe(prompt, image=init_pil, strength=strength, negative_prompt=negative, num_inference_steps=steps,
                       guidance_scale=cfg, generator=g, output_type="latent").images
            img = vae.decode(lat / vae.config.scaling_factor).sample
        img8 = ((img / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
        tensors[f"{name}.latent"] = lat.contiguous()
        tensors[f"{name}.image"] = img8.contiguous()
        meta[f"{name}.params"] = json.dumps(dict(scheduler=sched, steps=steps, cfg=cfg, seed=seed, prompt=prompt,
                                                 negative=negative, strength=strength,
                                                 spacing=scheduler.config.timestep_spacing))
        print(f"{name}: {cls.__name__} strength {strength}, latent std {lat.std().item():.3f}, "
              f"image mean {img8.float().mean().item():.1f}")
    safetensors_io.save_file(tensors, os.path.join(OUT, "pipeline_sd1_diffusers_cases.safetensors"), meta)


if __name__ == "__main__":
    main()
