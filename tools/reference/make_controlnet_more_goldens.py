#!/work/refvenv/bin/python
"""More ControlNet goldens: diffusers' ControlNet image-to-image and inpainting pipelines, and a ControlNet
together with an IP-Adapter, on the tiny SD 1.x and SDXL models, with the ControlNets, control images and
IP-Adapter that make_controlnet_goldens.py and make_ip_adapter_goldens.py wrote (read from their files here,
never rewritten).

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline, after
make_pipeline_goldens.py, make_sdxl_goldens.py, make_controlnet_goldens.py and make_ip_adapter_goldens.py:

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_controlnet_more_goldens.py

It takes about 9 s (5 s after the imports; 0.6 GB resident) on an idle two-core machine (one torch thread, so
every run writes the same bytes: checked, two runs give the same sha256 for every file written). Every value is
drawn from torch.Generators with fixed seeds; the .safetensors file goes through safetensors_io.py (header in a
fixed order) and the PNGs through PIL from fixed arrays. Versions used (requirements-pip.txt): torch 2.4.1
(CPU), diffusers 0.30.3, transformers 4.40.2, huggingface_hub 0.36.2, Pillow 13.0.0. All computation is float32
on the CPU, on weights rounded to fp16.

Inputs (read only; their sha256 are recorded in the metadata inputs.<path>):
  base models   make_lora_goldens.build_sd1 / build_sdxl: sd1 = tests/golden/data/pipeline_sd1/ (32x32 images,
                16x16 latents, ZeroedAttnProcessor), sdxl = tests/golden/data/pipeline_sdxl/ (64x64, 32x32
                latents), EulerDiscreteScheduler.from_config(the folder's scheduler config), fresh per run.
  ControlNets   controlnet/sd1_a/ and controlnet/sdxl_a/ (ControlNetModel.from_pretrained, float32; sd1_a with
                ZeroedAttnProcessor as make_controlnet_goldens.attach sets it). The params name sd1_a/ for the
                img2img and inpainting cases and the prefixed LDM file sd1_a_ldm.safetensors (the same fp16 bits)
                for sd1_cn_ip, so a test loads both forms.
  control       controlnet/control_a.png (32x32 edge map), controlnet/control_sdxl.png (64x64 edge map); checked
  images        equal to make_controlnet_goldens.make_images() pixel for pixel.
  IP-Adapter    ip_adapter/sd1_plain.safetensors with ip_adapter/image_encoder/ (CLIPVisionModelWithProjection,
                float32) and CLIPImageProcessor(size=32, crop_size=32) (make_ip_adapter_goldens.processor); the
                reference image ip_adapter/ip_ref_a.png (40x40).
New images (tests/golden/data/controlnet/; PNG, 8 bits, from fixed arrays; no tiny init image or mask existed as
a PNG before, the other goldens hold theirs as tensors):
  more_init_sd1.png   32x32 RGB: make_sdxl_goldens.make_init_image(32, 32, 4) (ramps, a disc, stripes)
  more_init_sdxl.png  64x64 RGB: make_init_image(64, 64, 5)
  more_mask_sd1.png   32x32 L: make_sdxl_goldens.make_mask(32, 32, MASK_RECT = (6, 4, 26, 24)): 255 inside rows
                      6..25 x columns 4..23 (repaint), a one-pixel ring of 128 just outside (>= 0.5 after / 255:
                      repainted), a ring of 127 outside that (< 0.5: kept), 0 elsewhere. The latent mask takes
                      image pixel (2i, 2j): ring pixels on even rows / columns reach it (row 4 and column 2 at 127:
                      kept; row 26 and column 24 at 128: repainted), so the threshold shows in the latent too.

Cases (CASES; every case CFG with the batch [negative, positive], guess_mode False, one ControlNet; in brackets
mean |image - the same run without the ControlNet| in levels of 255, and the mean |latent diff|):
  sd1_cn_img2img       StableDiffusionControlNetImg2ImgPipeline, sd1 + sd1_a/, control_a scale 1.0, window 0..1,
                       init more_init_sd1, strength 0.6, 8 steps (4 run), CFG 7                   [8.85, 0.50]
  sd1_cn_img2img_win   the same call (same seed and prompt) with control_guidance_start 0.1, end 0.7:
                       controlnet_keep over the 4 steps that run is [0, 1, 0, 0]                   [2.24, 0.13]
                       (6.94 levels from sd1_cn_img2img: the window shows)
  sd1_cn_inpaint       StableDiffusionControlNetInpaintPipeline on the plain 4-channel sd1 UNet (latent blending),
                       init more_init_sd1, mask more_mask_sd1, strength 1.0, control_a scale 1.0, 8 steps, CFG 7
                                                                                                   [8.05, 1.95]
  sd1_cn_inpaint_s075  the same at strength 0.75 (6 steps run), another seed and prompt             [5.64, 0.47]
  sd1_cn_ip            StableDiffusionControlNetPipeline (txt2img) + load_ip_adapter(sd1_plain.safetensors) at
                       scale 0.6 on ip_ref_a, + sd1_a (as sd1_a_ldm.safetensors) on control_a at scale 0.8, 8
                       steps, CFG 7                                                                [8.09, 8.06]
                       (9.65 levels from the same run with the ControlNet alone: the adapter shows)
  sdxl_cn_img2img      StableDiffusionXLControlNetImg2ImgPipeline, sdxl + sdxl_a/, control_sdxl scale 1.0, init
                       more_init_sdxl, strength 0.7 (int(6 * 0.7) = 4 steps run), 6 steps, CFG 5 [15.85, 1.64]
                       (1.9% of pixels at 0 or 255, 1.6% without; sd1: at most 0.2%)
Each is called as pipe(prompt, negative_prompt, height, width, num_inference_steps, guidance_scale, generator=
torch.Generator("cpu").manual_seed(seed), output_type="latent", controlnet_conditioning_scale,
control_guidance_start, control_guidance_end, plus: img2img image=<init PIL>, control_image=<control PIL>,
strength; inpainting image, mask_image=<mask PIL, mode L>, control_image, strength; txt2img image=<control PIL>,
ip_adapter_image=<PIL>), PIL images as read back from the PNGs. "Without the ControlNet" is the same call on
the plain pipeline of the kind (StableDiffusionImg2ImgPipeline / StableDiffusionInpaintPipeline /
StableDiffusionPipeline with the same IP-Adapter / StableDiffusionXLImg2ImgPipeline(requires_aesthetics_score
False)) from the same components; StableDiffusionImg2ImgPipeline and StableDiffusionXLImg2ImgPipeline take no
height / width (the init image's own size is used: 32x32 / 64x64, the same).

What a reimplementation must match (diffusers 0.30.3; the starred points are asserted on every run)
------------------------------------------------------------------------------------------------
Init image (img2img and inpainting pipelines): image_processor = VaeImageProcessor(vae_scale_factor[,
  do_convert_rgb=True]); preprocess(image, height, width): PIL-resized (LANCZOS) to (width, height) only when its
  size differs (here it does not), then x = 2 * (u8 / 255) - 1, float32, CHW, batch 1 (*). The VAE encodes x and
  its latent_dist is SAMPLED (not its mean): z0 = scaling_factor * (mean + exp(0.5 * logvar) * eps), eps from the
  generator (*: stored as <case>.init_latents). The ControlNet img2img pipelines pass height / width to this
  preprocess (default None: the init image's own size); StableDiffusion[XL]Img2ImgPipeline calls preprocess(image)
  without a size: an init image of another size than the request is resized by the ControlNet pipelines only.
Timesteps (img2img, inpainting): set_timesteps(N), then n = min(int(N * strength), N) run: timesteps[N - n:]
  (*: the UNet's timesteps are recorded as params timesteps). sd1: Euler from the folder's PNDM config, which
  names no timestep_spacing, so "linspace" (float timesteps): N = 8 gives 999, 856.2857, 713.5714, 570.8571,
  428.1429, 285.4286, 142.7143, 0; strength 0.6 runs the last 4 (428.14 ... 0), 0.75 the last 6 (713.57 ...).
  sdxl: "leading", steps_offset 1: N = 6 gives 831 665 499 333 167 1; strength 0.7 runs 499 333 167 1.
  int() truncates: 8 * 0.6 -> 4, 6 * 0.7 = 4.2 -> 4, 8 * 0.75 -> 6. All three ControlNet pipelines call
  scheduler.set_begin_index(N - n) (StableDiffusionXLImg2ImgPipeline does not; with no repeated timesteps the
  same result).
Initial latent: img2img x = add_noise(z0, noise, t_first) = z0 + sigma(t_first) * noise (Euler); inpainting with
  strength < 1 the same; inpainting with strength exactly 1.0: x = noise * init_noise_sigma (sqrt(sigma_max^2 +
  1)), z0 is still encoded (for the blending). The first UNet input is scale_model_input(x) = x / sqrt(sigma^2
  + 1) (*: asserted within 1e-5 relative of the pipeline's; it is equal, bit for bit, in every case).
Generator draws, in order, each randn of the latent shape [1, 4, H/2, W/2] (*: checked through the generator's
  final state): img2img: 1. eps of z0, 2. noise, then one per Euler step (step() always draws; s_churn 0 never
  uses it). Inpainting (4-channel UNet): 1. eps of z0 (also at strength 1), 2. noise, 3. eps of the masked image's
  posterior (init * (mask < 0.5), encoded although a 4-channel UNet never uses it), then one per step. txt2img +
  IP-Adapter: 1. noise, then one per step (the image encoder draws nothing).
Mask (inpainting): mask_processor = VaeImageProcessor(do_normalize=False, do_binarize=True,
  do_convert_grayscale=True): convert("L"), / 255, binarised: 1 where >= 0.5 (128 repaints, 127 keeps), else 0;
  masked_image = init_x * (mask < 0.5) (the [-1, 1] image with repainted pixels set to 0, i.e. grey). Latent mask
  m = F.interpolate(mask, size=(H/2, W/2)) (mode "nearest": latent (i, j) takes pixel (2i, 2j)). After every
  scheduler step i the 4-channel UNet's latent is blended: latents = (1 - m) * add_noise(z0, noise, timesteps[i +
  1]) + m * latents, and after the last step with z0 itself, so outside m the final latent IS z0 (*, bit for
  bit), inside it differs. (A 9-channel UNet would get [scaled latents, m, masked-image latents] as input and
  no blending; the ControlNet still gets the scaled 4-channel latents only: control_model_input is taken before
  the concatenation.) diffusers does not paste the original back (no padding_mask_crop), nor mask the control
  image: control_a goes in whole (marking masked pixels, e.g. -1 for the inpaint ControlNet, is the caller's job).
Control image (all pipelines, prepare_image / prepare_control_image): control_image_processor =
  VaeImageProcessor(do_convert_rgb=True, do_normalize=False); preprocess(control, height, width): PIL LANCZOS
  resize to (width, height) only if the size differs (not here), u8 / 255 float32 in [0, 1], CHW, no [-1, 1]
  normalisation; concatenated twice [negative, positive] with CFG (*: the ControlNet's controlnet_cond is
  recorded and checked). The ControlNet gets the same scaled latent batch, timestep and text embeddings as the
  UNet (not in guess mode); the SDXL one also the UNet's added_cond_kwargs (text_embeds, time_ids). Its
  residuals, times conditioning_scale * controlnet_keep[i], are added to the UNet's skip connections and mid
  block output for both CFG halves.
controlnet_keep (img2img and inpainting): computed over the timesteps that RUN, not over the whole schedule:
  with n = len(timesteps) after the strength cut, keep[i] = 1.0 - float(i / n < start or (i + 1) / n > end)
  for i = 0 .. n - 1, and step i runs the ControlNet with conditioning_scale = scale * keep[i] (the ControlNet
  is still evaluated at scale 0; a zero residual changes nothing, bit for bit). sd1_cn_img2img_win: n = 4,
  start 0.1, end 0.7 -> [0, 1, 0, 0] (steps 0: 0/4 < 0.1; 2: 3/4 > 0.7; 3: 4/4 > 0.7), where the full 8-step
  schedule's keep [0, 1, 1, 1, 1, 0, 0, 0] cut to its last 4 entries would be [1, 0, 0, 0] (*: the scales the
  ControlNet received are recorded and equal scale * keep; params controlnet_keep, and for the window case
  controlnet_keep_if_over_full_schedule to show the difference).
SDXL img2img: time_ids (H, W, 0, 0, H, W) for both rows, with original_size = the prepared CONTROL image's size
  and target_size = (height, width) after prepare_control_image (= the control image's size; not the init
  image's: StableDiffusionXLImg2ImgPipeline uses the init image's); requires_aesthetics_score False (the
  ControlNet img2img pipeline's default), so no aesthetic score (*: time_ids recorded).
IP-Adapter with a ControlNet (StableDiffusionControlNetPipeline): load_ip_adapter changes the UNet's attention
  processors only (attn2 -> IPAdapterAttnProcessor2_0, attn1 -> a new ZeroedAttnProcessor); the ControlNet's
  stay (*: all ZeroedAttnProcessor), and the ControlNet gets the text embeddings only (encoder_hidden_states
  [2, 77, 32]) and no image_embeds (*: added_cond_kwargs None); the image tokens reach the UNet's attn2 layers as
  in make_ip_adapter_goldens.py (negative image embedding zeros for the plain projection).
What the ControlNet pipelines add to the plain ones, then: the ControlNet call and its residuals, the init
image resized to height / width when given (above), set_begin_index, and for SDXL time_ids from the control
image's size. With the ControlNet at conditioning_scale 0.0 each case gives the plain pipeline's latent bit for
bit (*, all six cases).

Goldens: tests/golden/data/controlnet_more_cases.safetensors
----------------------------------------------------------
    <case>.latent        float32 [1, 4, H/2, W/2]  the final latent (output_type="latent")
    <case>.image         uint8 [1, 3, H, W]        decoded as make_controlnet_goldens.decode (CHW, RGB)
    <case>.init          uint8 [1, 3, H, W]        (img2img, inpainting) the init image's pixels (= the PNG), for
                                                   easel::testing::image_from_golden
    <case>.init_latents  float32 [1, 4, H/2, W/2]  (img2img, inpainting) z0 as above
    <case>.mask          uint8 [H, W]              (inpainting) the mask's pixels (= the PNG), for mask_from_golden
    <case>.time_ids      float32 [2, 6]            (sdxl) the UNet's add_time_ids, row 0 negative
    metadata <case>.params (JSON; the fields diffusers_case_params / sized_case_params read, and the
      controlnets list of make_controlnet_goldens.py): model ("sd1" | "sdxl"), folder, scheduler ("euler"),
      pipeline ("img2img" | "inpaint" | "txt2img"), pipeline_class, reference_pipeline_class (the run without
      ControlNet), steps, cfg, seed, prompt, negative, width, height, strength (null for txt2img), init_image and
      mask (paths relative to tests/golden/data, or null), guess_mode, controlnets [{name, file, image, scale,
      start, end}], controlnet_keep (per step that runs, per ControlNet), all_timesteps (set_timesteps(steps)),
      timesteps (those that ran), generator_draws (the generator's randn draws in order), image_encoder /
      feature_extractor / adapters (as make_ip_adapter_goldens.py's params: adapters [{adapter, file, kind,
      images, scale}]; null / [] without IP-Adapter),
      mean_abs_image_diff_vs_no_controlnet (levels of 255), mean_abs_latent_diff_vs_no_controlnet; sdxl also
      time_ids; sd1_cn_img2img_win also controlnet_keep_if_over_full_schedule and
      mean_abs_image_diff_vs_every_step (against sd1_cn_img2img: the same call without the window); sd1_cn_ip
      also mean_abs_image_diff_vs_no_ip_adapter (against the ControlNet alone).
Metadata also: script, git, torch, diffusers, transformers, huggingface_hub, cases (names in order),
scheduler_config.sd1 / .sdxl, notes (JSON list), inputs.<path> (bytes, sha256 of each file read), files.<png>
(bytes, sha256 of each PNG written).

Checks (asserted on every run): the control images equal make_controlnet_goldens.make_images(); the new PNGs read
back to their arrays; the starred points above; each case's image differs from the same run without its
ControlNet by more than MIN_MEAN_DIFF (1.5) levels on average; sd1_cn_ip's also from the ControlNet alone; all
latents pairwise different; everything finite; the base UNets' attention processors are back after the
IP-Adapter case.
"""
import json
import os
import sys
import time

import numpy as np
import PIL.Image
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402
import make_model_goldens as mg  # noqa: E402  (git_hash, ZeroedAttnProcessor)
import make_sdxl_goldens as sg  # noqa: E402  (make_init_image, make_mask, check_draws, versions, ...)
import make_lora_goldens as lg  # noqa: E402  (build_sd1, build_sdxl, save_goldens, sha256, SIZES)
import make_controlnet_goldens as cg  # noqa: E402  (make_images, attach, decode, keep_table, FOLDERS)
import make_ip_adapter_goldens as ig  # noqa: E402  (processor, restore)

import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import (ControlNetModel, EulerDiscreteScheduler, StableDiffusionControlNetImg2ImgPipeline,  # noqa: E402
                       StableDiffusionControlNetInpaintPipeline, StableDiffusionControlNetPipeline,
                       StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline, StableDiffusionPipeline,
                       StableDiffusionXLControlNetImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline)
from transformers import CLIPVisionModelWithProjection  # noqa: E402

OUT = lg.OUT
CN_DIR = cg.CN_DIR
IPA_DIR = ig.IPA_DIR
GOLDEN = os.path.join(OUT, "controlnet_more_cases.safetensors")
SCRIPT = "tools/reference/make_controlnet_more_goldens.py"

MIN_MEAN_DIFF = 1.5  # levels of 255
FOLDERS = cg.FOLDERS
MASK_RECT = (6, 4, 26, 24)  # top, left, bottom, right (bottom / right exclusive)
# name: (kind, width, height, make_init_image variant or mask rect)
NEW_IMAGES = {
    "more_init_sd1": ("RGB", 32, 32, 4),
    "more_init_sdxl": ("RGB", 64, 64, 5),
    "more_mask_sd1": ("L", 32, 32, MASK_RECT),
}
# ControlNet name -> the file the params name (relative to tests/golden/data)
CN_FILES = {"sd1_a": "controlnet/sd1_a", "sd1_a_ldm": "controlnet/sd1_a_ldm.safetensors",
            "sdxl_a": "controlnet/sdxl_a"}
IP_ENCODER = "ip_adapter/image_encoder"

# nets: (controlnet, params file key, control image, scale, start, end); adapters as make_ip_adapter_goldens.CASES
# (adapter, file, images, scale).
_SD1 = dict(model="sd1", steps=8, cfg=7.0, adapters=[])
CASES = [
    dict(_SD1, name="sd1_cn_img2img", pipeline="img2img", nets=[("sd1_a", "sd1_a", "control_a", 1.0, 0.0, 1.0)],
         init="more_init_sd1", mask=None, strength=0.6, seed=601,
         prompt="a red circle on a blue background", negative=""),
    dict(_SD1, name="sd1_cn_img2img_win", pipeline="img2img",
         nets=[("sd1_a", "sd1_a", "control_a", 1.0, 0.1, 0.7)],
         init="more_init_sd1", mask=None, strength=0.6, seed=601,
         prompt="a red circle on a blue background", negative=""),
    dict(_SD1, name="sd1_cn_inpaint", pipeline="inpaint", nets=[("sd1_a", "sd1_a", "control_a", 1.0, 0.0, 1.0)],
         init="more_init_sd1", mask="more_mask_sd1", strength=1.0, seed=603,
         prompt="a small green triangle on the left", negative="blue"),
    dict(_SD1, name="sd1_cn_inpaint_s075", pipeline="inpaint",
         nets=[("sd1_a", "sd1_a", "control_a", 1.0, 0.0, 1.0)],
         init="more_init_sd1", mask="more_mask_sd1", strength=0.75, seed=604,
         prompt="a large blue square, masterpiece", negative="red"),
    dict(_SD1, name="sd1_cn_ip", pipeline="txt2img", nets=[("sd1_a", "sd1_a_ldm", "control_a", 0.8, 0.0, 1.0)],
         init=None, mask=None, strength=None, seed=605, prompt="photo of a cat on the right", negative="",
         adapters=[("sd1_plain", "sd1_plain.safetensors", ["ip_ref_a"], 0.6)]),
    dict(name="sdxl_cn_img2img", model="sdxl", pipeline="img2img", steps=6, cfg=5.0, adapters=[],
         nets=[("sdxl_a", "sdxl_a", "control_sdxl", 1.0, 0.0, 1.0)],
         init="more_init_sdxl", mask=None, strength=0.7, seed=606,
         prompt="a green triangle on a red background", negative="a blue square"),
]


def rel(path):
    return os.path.relpath(path, OUT)


def file_info(path):
    if os.path.isdir(path):
        return {rel(os.path.join(path, f)): dict(bytes=os.path.getsize(os.path.join(path, f)),
                                                 sha256=lg.sha256(os.path.join(path, f)))
                for f in sorted(os.listdir(path))}
    return {rel(path): dict(bytes=os.path.getsize(path), sha256=lg.sha256(path))}


# ---------------------------------------------------------------------------------------------------------
# Images

def new_images():
    """name -> uint8 array ([H, W, 3] RGB or [H, W] L), see the docstring."""
    out = {}
    for name, (mode, w, h, arg) in NEW_IMAGES.items():
        arr = sg.make_init_image(h, w, arg) if mode == "RGB" else sg.make_mask(h, w, arg)
        assert arr.shape == ((h, w, 3) if mode == "RGB" else (h, w)) and arr.dtype == np.uint8, name
        out[name] = arr
    return out


def write_new_images(arrs):
    pils, infos = {}, {}
    for name, arr in arrs.items():
        mode = NEW_IMAGES[name][0]
        path = os.path.join(CN_DIR, f"{name}.png")
        PIL.Image.fromarray(arr, mode).save(path)
        back = PIL.Image.open(path)
        back.load()
        assert back.mode == mode and np.array_equal(np.asarray(back), arr), name
        pils[name] = back
        infos.update(file_info(path))
    return pils, infos


def read_inputs():
    """The sibling scripts' control images and IP-Adapter reference image, as they read them back."""
    want = cg.make_images()
    pils = {}
    for name in ("control_a", "control_sdxl"):
        back = PIL.Image.open(os.path.join(CN_DIR, f"{name}.png"))
        assert back.mode == "RGB" and np.array_equal(np.asarray(back), want[name]), \
            f"{name}.png is not make_controlnet_goldens.make_images()'s"
        pils[name] = back.convert("RGB")
    back = PIL.Image.open(os.path.join(IPA_DIR, "ip_ref_a.png"))
    back.load()
    pils["ip_ref_a"] = back
    return pils


def load_controlnets():
    nets = {}
    for name, model in (("sd1_a", "sd1"), ("sdxl_a", "sdxl")):
        cn = ControlNetModel.from_pretrained(os.path.join(CN_DIR, name), torch_dtype=torch.float32)
        nets[name] = cg.attach(cn, model)
    return nets


# ---------------------------------------------------------------------------------------------------------
# Pipelines

def sd1_common(base):
    return dict(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=base.unet,
                safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def sdxl_common(base):
    return dict(vae=base.vae, text_encoder=base.text_encoder, text_encoder_2=base.text_encoder_2,
                tokenizer=base.tokenizer, tokenizer_2=base.tokenizer_2, unet=base.unet,
                force_zeros_for_empty_prompt=base.config.force_zeros_for_empty_prompt, add_watermarker=False)


def make_pipeline(bases, case, cn, encoder):
    """The case's ControlNet pipeline (cn given) or the plain pipeline of its kind (cn None)."""
    base, sched_cfg = bases[case["model"]]
    sched = EulerDiscreteScheduler.from_config(sched_cfg)
    kind = case["pipeline"]
    if case["model"] == "sdxl":
        assert kind == "img2img"
        common = dict(sdxl_common(base), scheduler=sched, requires_aesthetics_score=False)
        pipe = (StableDiffusionXLControlNetImg2ImgPipeline(**common, controlnet=cn) if cn is not None
                else StableDiffusionXLImg2ImgPipeline(**common))
    else:
        common = dict(sd1_common(base), scheduler=sched)
        if kind == "txt2img":
            common.update(image_encoder=encoder, feature_extractor=ig.processor(ig.VISION["image_size"]))
        cls = {"img2img": (StableDiffusionControlNetImg2ImgPipeline, StableDiffusionImg2ImgPipeline),
               "inpaint": (StableDiffusionControlNetInpaintPipeline, StableDiffusionInpaintPipeline),
               "txt2img": (StableDiffusionControlNetPipeline, StableDiffusionPipeline)}[kind]
        pipe = cls[0](**common, controlnet=cn) if cn is not None else cls[1](**common)
    pipe.set_progress_bar_config(disable=True)
    return pipe


class Recorder:
    """Forward pre-hooks: the UNet's timesteps, first latent input and time_ids; the ControlNet's
    conditioning_scale per call, its first controlnet_cond, encoder_hidden_states and added_cond_kwargs."""

    def __init__(self):
        self.timesteps, self.first_input, self.time_ids = [], None, []
        self.cn_scales, self.cn_cond, self.cn_ehs, self.cn_added = [], None, None, []

    def unet(self, module, args, kwargs):
        if self.first_input is None:
            self.first_input = args[0].detach().clone()
        self.timesteps.append(float(args[1]))
        added = kwargs.get("added_cond_kwargs") or {}
        if "time_ids" in added:
            self.time_ids.append(added["time_ids"].detach().clone())

    def controlnet(self, module, args, kwargs):
        self.cn_scales.append(float(kwargs["conditioning_scale"]))
        if self.cn_cond is None:
            self.cn_cond = kwargs["controlnet_cond"].detach().clone()
            self.cn_ehs = kwargs["encoder_hidden_states"].detach().clone()
        self.cn_added.append(kwargs.get("added_cond_kwargs"))


def run(bases, nets, encoder, pils, case, with_cn=True, scale=None, window=None, with_ip=True):
    """One call; returns (latent, image, recorder, pipe, generator after the call)."""
    model = case["model"]
    net = case["nets"][0]
    cn = nets[net[0]] if with_cn else None
    pipe = make_pipeline(bases, case, cn, encoder)
    adapters = case["adapters"] if with_ip else []
    if adapters:
        pipe.load_ip_adapter(IPA_DIR, subfolder="", weight_name=adapters[0][1])
        pipe.set_ip_adapter_scale(adapters[0][3])
    w, h = lg.SIZES[model]
    kw = dict(prompt=case["prompt"], negative_prompt=case["negative"], num_inference_steps=case["steps"],
              guidance_scale=case["cfg"])
    if case["pipeline"] != "img2img" or with_cn:
        kw.update(height=h, width=w)  # the plain img2img pipelines take no size (the init image's is used)
    if case["pipeline"] in ("img2img", "inpaint"):
        kw.update(image=pils[case["init"]], strength=case["strength"])
    if case["pipeline"] == "inpaint":
        kw.update(mask_image=pils[case["mask"]])
    if adapters:
        kw.update(ip_adapter_image=pils[adapters[0][2][0]])
    if with_cn:
        start, end = window if window is not None else (net[4], net[5])
        kw.update(controlnet_conditioning_scale=net[3] if scale is None else scale, control_guidance_start=start,
                  control_guidance_end=end)
        kw["image" if case["pipeline"] == "txt2img" else "control_image"] = pils[net[2]]
    rec = Recorder()
    hooks = [pipe.unet.register_forward_pre_hook(rec.unet, with_kwargs=True)]
    if with_cn:
        hooks.append(pipe.controlnet.register_forward_pre_hook(rec.controlnet, with_kwargs=True))
    gen = torch.Generator("cpu").manual_seed(case["seed"])
    try:
        with torch.no_grad():
            lat = pipe(**kw, generator=gen, output_type="latent").images
    finally:
        for hd in hooks:
            hd.remove()
    assert torch.isfinite(lat).all(), case["name"]
    img = cg.decode(pipe, model, lat)
    if adapters:
        if with_cn:
            assert all(type(p) is mg.ZeroedAttnProcessor for p in pipe.controlnet.attn_processors.values()), \
                "load_ip_adapter changed the ControlNet's processors"
        ig.restore(pipe, model)
    return lat.contiguous(), img, rec, pipe, gen


def keep_list(n, start, end):
    """diffusers' controlnet_keep for one ControlNet over n steps."""
    return [1.0 - float(i / n < start or (i + 1) / n > end) for i in range(n)]


def u8_chw(pil):
    return torch.from_numpy(np.asarray(pil.convert("RGB")).copy()).permute(2, 0, 1)[None].contiguous()


def expected_start(pipe, case, pils, sched_cfg):
    """z0 (the init image's posterior sample, generator draw 1), and the UNet's first input as the docstring
    says it is made."""
    w, h = lg.SIZES[case["model"]]
    g = torch.Generator("cpu").manual_seed(case["seed"])
    processed = pipe.image_processor.preprocess(pils[case["init"]], height=h, width=w).to(torch.float32)
    assert torch.equal(processed, u8_chw(pils[case["init"]]).float() / 255.0 * 2.0 - 1.0), \
        "the init image preprocessing is not 2 * u8 / 255 - 1"
    vae = pipe.vae
    with torch.no_grad():
        dist = vae.encode(processed).latent_dist  # the pipeline's own tensor (strides change the last bits)
    z0 = vae.config.scaling_factor * (dist.mean + dist.std * torch.randn(dist.mean.shape, generator=g))
    noise = torch.randn(z0.shape, generator=g)
    sched = EulerDiscreteScheduler.from_config(sched_cfg)
    sched.set_timesteps(case["steps"])
    n = min(int(case["steps"] * case["strength"]), case["steps"])
    t0 = sched.timesteps[case["steps"] - n]
    if case["pipeline"] == "inpaint" and case["strength"] == 1.0:
        x = noise * sched.init_noise_sigma
    else:
        x = sched.add_noise(z0, noise, t0.reshape(1))
    return z0, sched.scale_model_input(x, t0)


def check_draws(case, gen, rec, lat_shape):
    if case["pipeline"] == "img2img":
        draws = ["posterior", "noise"]
    elif case["pipeline"] == "inpaint":
        draws = ["posterior", "noise", "masked posterior"]
    else:
        draws = ["noise"]
    draws += ["euler step"] * len(rec.timesteps)
    sg.check_draws(gen, case["seed"], lat_shape, len(draws), (case["name"], "generator draws", draws))
    return draws


def pipeline_cases(bases, nets, encoder, pils, tensors, meta, notes):
    latents, images = {}, {}
    base_procs = {m: {k: type(v) for k, v in bases[m][0].unet.attn_processors.items()} for m in bases}
    for case in CASES:
        t0 = time.time()
        name, model = case["name"], case["model"]
        sched_cfg = bases[model][1]
        w, h = lg.SIZES[model]
        net = case["nets"][0]
        lat, img, rec, pipe, gen = run(bases, nets, encoder, pils, case)
        ref_lat, ref_img, ref_rec, ref_pipe, _ = run(bases, nets, encoder, pils, case, with_cn=False)
        # scale 0: the plain pipeline's latent bit for bit
        zero_lat = run(bases, nets, encoder, pils, case, scale=0.0)[0]
        assert torch.equal(zero_lat, ref_lat), (name, "scale 0 is not the plain pipeline",
                                                (zero_lat - ref_lat).abs().max().item())
        # timesteps
        sched = EulerDiscreteScheduler.from_config(sched_cfg)
        sched.set_timesteps(case["steps"])
        all_ts = [float(t) for t in sched.timesteps.tolist()]
        n = case["steps"] if case["strength"] is None else min(int(case["steps"] * case["strength"]), case["steps"])
        assert rec.timesteps == all_ts[case["steps"] - n:] and ref_rec.timesteps == rec.timesteps, \
            (name, rec.timesteps, all_ts)
        draws = check_draws(case, gen, rec, tuple(lat.shape))
        # controlnet_keep over the steps that run, as the scales the ControlNet received
        keep = keep_list(n, net[4], net[5])
        assert len(rec.cn_scales) == n and rec.cn_scales == [net[3] * k for k in keep], (name, rec.cn_scales, keep)
        # the control image as the ControlNet got it: u8 / 255, doubled for CFG
        control = u8_chw(pils[net[2]]).float() / 255.0
        assert torch.equal(rec.cn_cond, torch.cat([control, control])), (name, "controlnet_cond")
        assert rec.cn_ehs.shape[0] == 2
        if model == "sd1":
            assert all(a is None for a in rec.cn_added), name
        extra, t = {}, {}
        if case["init"] is not None:
            z0, want_in = expected_start(pipe, case, pils, sched_cfg)
            got_in = rec.first_input
            assert got_in.shape[0] == 2 and torch.equal(got_in[0], got_in[1])
            off = (got_in[0:1] - want_in).abs().max().item()
            assert off <= 1e-5 * want_in.abs().max().item(), (name, "first UNet input", off)
            t["init"] = u8_chw(pils[case["init"]])
            t["init_latents"] = z0.contiguous()
            notes.append(f"{name}: the first UNet input as the docstring makes it, within {off:.1e}")
        if case["mask"] is not None:
            mask_u8 = np.asarray(pils[case["mask"]])
            m = torch.from_numpy((mask_u8.astype(np.float32) / 255.0 >= 0.5).astype(np.float32))[::2, ::2]
            keep_px = (m == 0).expand_as(lat[0])
            assert torch.equal(lat[0][keep_px], z0[0][keep_px]), name
            assert not torch.equal(lat[0][~keep_px], z0[0][~keep_px]), name
            t["mask"] = torch.from_numpy(mask_u8.copy())
            notes.append(f"{name}: outside the latent mask ({int((m == 0).sum())} of {m.numel()} latent pixels) the "
                         f"final latent equals init_latents bit for bit")
        if model == "sdxl":
            assert len(rec.time_ids) == n and all(torch.equal(x, rec.time_ids[0]) for x in rec.time_ids)
            time_ids = rec.time_ids[0]
            assert time_ids.tolist() == [[float(h), float(w), 0.0, 0.0, float(h), float(w)]] * 2, time_ids
            assert all(torch.equal(a["time_ids"], time_ids) for a in rec.cn_added)
            t["time_ids"] = time_ids.contiguous()
            extra["time_ids"] = time_ids.tolist()
        diff = (img.float() - ref_img.float()).abs().mean().item()
        lat_diff = (lat - ref_lat).abs().mean().item()
        sat = ((img == 0) | (img == 255)).float().mean().item()
        sat0 = ((ref_img == 0) | (ref_img == 255)).float().mean().item()
        print(f"{name:20s} {type(pipe).__name__} strength {case['strength']} steps run {n} keep {keep}: mean |image "
              f"- no-ControlNet image| {diff:.2f} (max {(img.float() - ref_img.float()).abs().max().item():.0f}), "
              f"image mean {img.float().mean().item():.1f}, saturated {sat:.1%} (without {sat0:.1%}), latent std "
              f"{lat.std().item():.3f}, mean |latent diff| {lat_diff:.3f}")
        assert diff > MIN_MEAN_DIFF, (name, diff)
        if (net[4], net[5]) != (0.0, 1.0):
            extra["controlnet_keep_if_over_full_schedule"] = [
                [k] for k in keep_list(case["steps"], net[4], net[5])[case["steps"] - n:]]
            assert extra["controlnet_keep_if_over_full_schedule"] != [[k] for k in keep]
            full_img = images["sd1_cn_img2img"]  # the same call without the window
            extra["mean_abs_image_diff_vs_every_step"] = round((img.float() - full_img.float()).abs().mean().item(), 3)
            print(f"{'':20s} mean |image - the same at every step (sd1_cn_img2img)| "
                  f"{extra['mean_abs_image_diff_vs_every_step']:.2f}")
            assert extra["mean_abs_image_diff_vs_every_step"] > MIN_MEAN_DIFF, name
        adapters = []
        if case["adapters"]:
            assert all(type(p) is mg.ZeroedAttnProcessor for p in nets["sd1_a"].attn_processors.values())
            _, cn_only_img, _, _, _ = run(bases, nets, encoder, pils, case, with_ip=False)
            extra["mean_abs_image_diff_vs_no_ip_adapter"] = round(
                (img.float() - cn_only_img.float()).abs().mean().item(), 3)
            print(f"{'':20s} mean |image - the ControlNet alone| {extra['mean_abs_image_diff_vs_no_ip_adapter']:.2f}")
            assert extra["mean_abs_image_diff_vs_no_ip_adapter"] > MIN_MEAN_DIFF, name
            adapters = [dict(adapter=a[0], file=f"ip_adapter/{a[1]}", kind=ig.ADAPTERS[a[0]]["kind"],
                             images=[f"ip_adapter/{i}.png" for i in a[2]], scale=a[3]) for a in case["adapters"]]
        for m in bases:  # the base UNets' processors are as they were
            assert {k: type(v) for k, v in bases[m][0].unet.attn_processors.items()} == base_procs[m], m
        tensors[f"{name}.latent"] = lat
        tensors[f"{name}.image"] = img
        for k, v in t.items():
            tensors[f"{name}.{k}"] = v
        entries = [dict(name=net[0], file=CN_FILES[net[1]], image=f"controlnet/{net[2]}.png", scale=net[3],
                        start=net[4], end=net[5])]
        meta[f"{name}.params"] = json.dumps(dict(
            model=model, folder=FOLDERS[model], scheduler="euler", pipeline=case["pipeline"],
            pipeline_class=type(pipe).__name__, reference_pipeline_class=type(ref_pipe).__name__,
            steps=case["steps"], cfg=case["cfg"], seed=case["seed"], prompt=case["prompt"],
            negative=case["negative"], width=w, height=h, strength=case["strength"],
            init_image=f"controlnet/{case['init']}.png" if case["init"] else None,
            mask=f"controlnet/{case['mask']}.png" if case["mask"] else None, guess_mode=False,
            controlnets=entries, controlnet_keep=[[k] for k in keep], all_timesteps=all_ts,
            timesteps=rec.timesteps, generator_draws=draws,
            image_encoder=IP_ENCODER if adapters else None,
            feature_extractor=(dict(size=ig.VISION["image_size"], crop_size=ig.VISION["image_size"])
                               if adapters else None),
            adapters=adapters, mean_abs_image_diff_vs_no_controlnet=round(diff, 3),
            mean_abs_latent_diff_vs_no_controlnet=round(lat_diff, 4), **extra))
        notes.append(f"{name}: at controlnet_conditioning_scale 0.0 the {type(ref_pipe).__name__} latent bit for bit")
        latents[name], images[name] = lat, img
        print(f"{'':20s} timesteps {rec.timesteps} of {all_ts} ({time.time() - t0:.1f} s)")
    sg.assert_all_differ(latents)
    return [c["name"] for c in CASES]


def main():
    t_start = time.time()
    torch.set_num_threads(1)
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    sg.check_words(CASES)
    bases = {"sd1": lg.build_sd1(), "sdxl": lg.build_sdxl()}
    notes = []

    pils = read_inputs()
    new_pils, png_infos = write_new_images(new_images())
    pils.update(new_pils)
    nets = load_controlnets()
    encoder = CLIPVisionModelWithProjection.from_pretrained(os.path.join(OUT, IP_ENCODER)).eval()
    inputs = {}
    for p in ("controlnet/sd1_a", "controlnet/sd1_a_ldm.safetensors", "controlnet/sdxl_a", "controlnet/control_a.png",
              "controlnet/control_sdxl.png", "ip_adapter/sd1_plain.safetensors", IP_ENCODER,
              "ip_adapter/ip_ref_a.png"):
        inputs.update(file_info(os.path.join(OUT, p)))
    # sd1_a_ldm.safetensors holds sd1_a/'s bits (what the params of sd1_cn_ip name)
    ldm = safetensors_io.load_file(os.path.join(CN_DIR, "sd1_a_ldm.safetensors"))
    want = cg.ldm_state(nets["sd1_a"], cg.LDM_PREFIX)
    assert ldm.keys() == want.keys() and all(np.array_equal(ldm[k], v.numpy()) for k, v in want.items())
    notes.append("controlnet/sd1_a_ldm.safetensors holds controlnet/sd1_a/'s fp16 bits (make_controlnet_goldens."
                 "ldm_state of the folder's model, every tensor equal)")

    tensors = {}
    meta = dict(sg.versions(SCRIPT), git=mg.git_hash(), **{
        "scheduler_config.sd1": json.dumps(bases["sd1"][1]), "scheduler_config.sdxl": json.dumps(bases["sdxl"][1])})
    for p, info in inputs.items():
        meta[f"inputs.{p}"] = json.dumps(info)
    for p, info in png_infos.items():
        meta[f"files.{p}"] = json.dumps(info)
    meta["cases"] = json.dumps(pipeline_cases(bases, nets, encoder, pils, tensors, meta, notes))
    meta["notes"] = json.dumps(list(dict.fromkeys(notes)))
    lg.save_goldens(tensors, meta, GOLDEN)
    print("NOTES:")
    for n in dict.fromkeys(notes):
        print("  " + n)
    print(f"took {time.time() - t_start:.1f} s")


if __name__ == "__main__":
    main()
