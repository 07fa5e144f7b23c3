#!/work/refvenv/bin/python
"""ControlNet fixtures and goldens: small random ControlNets for the tiny SD 1.x and SDXL models, in diffusers'
folder layout and in the original (lllyasviel cldm) single-file layout, synthetic control images, and what
diffusers' ControlNet pipelines make with them.

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline, after
make_pipeline_goldens.py and make_sdxl_goldens.py (it reads their model folders and changes nothing in them):

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_controlnet_goldens.py

It takes about 10 s on an idle two-core machine (one torch thread, so every run writes the same bytes).
Every value is drawn from torch.Generators with fixed seeds; every .safetensors file goes through
safetensors_io.py (header in a fixed order) and the PNGs through PIL from fixed arrays. Versions used
(requirements-pip.txt): torch 2.4.1 (CPU), diffusers 0.30.3, transformers 4.40.2, huggingface_hub 0.36.2,
Pillow 13.0.0. All computation is float32 on the CPU, on weights rounded to fp16.

The base models are make_lora_goldens.py's (imported for build_sd1, build_sdxl, ldm_name, save_goldens): sd1 =
tests/golden/data/pipeline_sd1/ (32x32 images, 16x16 latents, ZeroedAttnProcessor), sdxl =
tests/golden/data/pipeline_sdxl/ (64x64 images, 32x32 latents, diffusers' default attention), both with
EulerDiscreteScheduler.from_config(the folder's scheduler config). Both tiny VAEs downsample by 2.

1. ControlNets: tests/golden/data/controlnet/
---------------------------------------------
Each is ControlNetModel.from_unet(the base UNet, conditioning_embedding_out_channels=COND_CHANNELS = (8, 16)),
so it has the base UNet's config (encoder half: conv_in, time embedding, down blocks, mid block; for SDXL also
add_embedding, the text_time conditioning), plus:
  controlnet_cond_embedding  conv_in 3->8 (3x3), SiLU, blocks.0 8->8 (3x3), SiLU, blocks.1 8->16 (3x3,
                             stride 2), SiLU, conv_out 16->block_out_channels[0] (3x3). len(COND_CHANNELS) - 1 = 1
                             stride-2 conv: the control image [B, 3, H, W] becomes [B, C0, H/2, W/2], the latent's
                             size (log2(vae scale factor 2) + 1 = 2 channel entries).
  controlnet_down_blocks.i   1x1 conv per UNet skip connection (9 for both models: conv_in, 2 resnets per level,
                             2 downsamplers), C -> C; controlnet_mid_block 1x1 conv on the mid block's output.
Weights: from_unet copies the UNet's encoder, and diffusers zero-initialises conv_out and the 1x1 "zero convs"
(a ControlNet left like that changes nothing). So EVERY parameter is then re-drawn, from one
torch.Generator("cpu").manual_seed(seed) in named_parameters() order, by make_sdxl_goldens.redraw (GroupNorm /
LayerNorm weights 1 + 0.1 randn, their biases 0.1 randn, tensors of rank >= 2 randn * min(0.2, 1.5 /
sqrt(fan_in)), other biases 0.2 randn, each rounded to fp16 at once); then the zero convs' weights and biases
(controlnet_down_blocks.*, controlnet_mid_block.*) are multiplied by the file's GAIN and rounded to fp16 again.
GAIN = 2.0 (sd1), 0.5 (sdxl): a ControlNet at scale ~1 then moves its case's image by several levels of 255
on average (printed per case as mean |image - the same run without ControlNet|; sd1_cn 8.2, sdxl_cn 11.1), the
latents keep the base pipelines' spread (std ~15 sd1, ~12 sdxl) and no image saturates (sdxl: 1.5% of pixels at
0 or 255, 1.1% without). On sd1 the effect levels off above GAIN ~3 (8.9 at 3, 9.7 at 6: the residuals then
dominate the skip features, which the up blocks' GroupNorms rescale); at GAIN 1 sd1_cn moved 6.1 levels.

  sd1_a/                     diffusers folder (ControlNetModel.save_pretrained: config.json, and
                             diffusion_pytorch_model.safetensors F16, rewritten by safetensors_io with the
                             metadata {"format": "pt"} save_pretrained writes). Seed 3101, GAIN["sd1"].
  sd1_a_ldm.safetensors      the same F16 bits in the original ControlNet layout (cldm/cldm.py ControlNet as its
                             .ckpt/.safetensors files hold it, ComfyUI's and AUTOMATIC1111's "control_model."
                             files): every key prefixed "control_model.".
  sd1_b_ldm.safetensors      another SD 1.x ControlNet (seed 3102, same config), LDM layout without the prefix
                             (as files extracted from a full checkpoint hold it, e.g. by sd-webui-controlnet's
                             extract_controlnet.py: "input_hint_block.0.weight", "zero_convs.0.0.weight", ...;
                             ControlNet 1.1's own .pth files keep the prefix, see
                             make_fullsize_controlnet_goldens.py). No diffusers folder.
  sdxl_a/                    diffusers folder from the tiny SDXL UNet (seed 3103, GAIN["sdxl"]): add_embedding
                             (text_time: text_embeds 40 + 6 time ids x 8) comes along with the encoder.
The LDM files' metadata: {"format": "pt", "easel.source": this script and the versions,
"easel.config.controlnet": the config.json text save_pretrained writes (= sd1_a/config.json, checked)}, as
make_sdxl_single_file.py does for the tiny widths (the number of heads and norm groups cannot be read off the
weights).

diffusers -> LDM names (the inverse of diffusers' single-file conversion, loaders/single_file_utils.py
convert_controlnet_checkpoint; UNet part as make_lora_goldens.ldm_name, layers_per_block 2 so 3 LDM input blocks
per level):
  time_embedding.linear_1 / linear_2          time_embed.0 / time_embed.2
  conv_in                                     input_blocks.0.0
  down_blocks.i.resnets.j.X                   input_blocks.{3i+j+1}.0.Y, X -> Y: norm1 -> in_layers.0, conv1 ->
                                              in_layers.2, time_emb_proj -> emb_layers.1, norm2 -> out_layers.0,
                                              conv2 -> out_layers.3, conv_shortcut -> skip_connection
  down_blocks.i.attentions.j.*                input_blocks.{3i+j+1}.1.* (norm, proj_in, transformer_blocks.K.
                                              {attn1, attn2, ff.net.0.proj, ff.net.2, norm1-3}, proj_out)
  down_blocks.i.downsamplers.0.conv           input_blocks.{3(i+1)}.0.op
  mid_block.resnets.0 / attentions.0 / resnets.1   middle_block.0 / .1 / .2
  controlnet_cond_embedding.conv_in           input_hint_block.0
  controlnet_cond_embedding.blocks.k          input_hint_block.{2k+2}   (SiLU at the odd indices)
  controlnet_cond_embedding.conv_out          input_hint_block.{2n+2}, n = len(blocks): the highest index (14
                                              in SD 1.5's ControlNets, whose hint block has 6 blocks; 6 here)
  controlnet_down_blocks.i                    zero_convs.i.0
  controlnet_mid_block                        middle_block_out.0
Checked on every run: the map is one to one over every parameter; diffusers' convert_controlnet_checkpoint gives
back every diffusers tensor bit for bit from both LDM files (prefixed and bare). diffusers 0.30.3 hard-codes the
hint block's conv_out as input_hint_block.14 (SD 1.5's 16-entry Sequential: it takes every other
input_hint_block index as a blocks.* entry), so the check first renames this file's last index (6) to 14; the
files themselves keep the real index, as the original code (and ComfyUI, which reads the Sequential as is)
numbers it. ControlNetModel.from_single_file(file, config=sd1_a/) raises no error on these files but drops
input_hint_block.6 (read as a blocks.2 that does not exist) and leaves conv_out on the meta device, without
values: the notes record it on every run.

Control images (PNG, RGB, 8 bits; deterministic arrays written with PIL):
  control_a.png     32x32 (sd1 size): a canny-like edge map, 1-pixel white (255) lines on black: a rectangle
                    outline, a circle and a diagonal.
  control_b.png     32x32: make_sdxl_goldens.make_init_image(32, 32, 1): colour ramps, a disc and stripes.
  control_c.png     49 wide, 35 high (not multiples of 8; ~1.5x wider than high): the edge pattern drawn at that
                    size over a darkened make_init_image(35, 49, 2). The pipelines resize it (see below).
  control_sdxl.png  64x64 (sdxl size): the edge pattern of control_a drawn at 64x64.
How the pipelines prepare a control image (StableDiffusion[XL]ControlNetPipeline.prepare_image): the
control_image_processor (VaeImageProcessor(do_convert_rgb=True, do_normalize=False), resample "lanczos") resizes
it with PIL to (width, height) of the call if its size differs (Image.resize((width, height),
Image.LANCZOS): no aspect-ratio handling, no crop), then /255 to float32 in [0, 1], CHW, no normalisation to
[-1, 1]; repeated over the batch, and with CFG (not in guess mode) concatenated twice [uncond, cond]. RGB order
(controlnet_conditioning_channel_order "rgb").

2. Goldens: tests/golden/data/controlnet_cases.safetensors
----------------------------------------------------------
Component cases (the ControlNet alone; COMPONENTS): sample = randn [2, 4, 8, 12] (COMPONENT_LATENT: not square,
so a transposed axis shows), encoder_hidden_states = randn [2, 77, D], drawn in that order (then text_embeds
randn [2, 40] for SDXL) from torch.Generator("cpu").manual_seed(seed); timestep passed as a float32 0-dim
tensor (stored as [1]);
controlnet_cond = control_image_processor.preprocess([image 0, image 1], height=16, width=24) (batch items 0 and
1 from two different images, LANCZOS-resized to twice the latent size, / 255); SDXL time_ids the rows
(64, 64, 0, 0, 64, 64) and (96, 64, 8, 4, 64, 64) (original size, crop top-left, target size). Called as
controlnet(sample, timestep, encoder_hidden_states=, controlnet_cond=, conditioning_scale=, guess_mode=,
added_cond_kwargs= (sdxl), return_dict=False).
    <name>.sample, .timestep ([1]), .encoder_hidden_states, .controlnet_cond, (sdxl) .text_embeds, .time_ids
    <name>.cond_embedding   controlnet_cond_embedding(controlnet_cond): [2, C0, 8, 12] (added to conv_in's output)
    <name>.down.{i}         down_block_res_samples[i] (after the zero conv and the scale), i = 0..8
    <name>.mid              mid_block_res_sample
    metadata <name>.component (JSON): controlnet, file, timestep, conditioning_scale, guess_mode, images, seed,
        height, width (of controlnet_cond).
  cn_sd1_a        sd1_a, t 421, scale 1.0
  cn_sd1_a_guess  sd1_a, the same inputs (same seed), guess_mode=True, conditioning_scale 0.8: residual i is
                  cn_sd1_a's times 0.8 * logspace(-1, 0, 10)[i], the mid one times 0.8 * 1.0 (checked bit for bit)
  cn_sdxl_a       sdxl_a, t 421, scale 1.0, with added_cond_kwargs {text_embeds, time_ids}
Pipeline cases (CASES): StableDiffusionControlNetPipeline / StableDiffusionXLControlNetPipeline built from the
base pipeline's components with the case's ControlNet(s) (a list = MultiControlNetModel), called as
pipe(prompt, image=<PIL image(s) as loaded from the PNGs>, negative_prompt, height, width, num_inference_steps,
guidance_scale, controlnet_conditioning_scale, control_guidance_start, control_guidance_end, guess_mode,
generator=torch.Generator("cpu").manual_seed(seed), output_type="latent").
    <case>.latent          float32 [1, 4, H/2, W/2]   the final latent
    <case>.image           uint8 [1, 3, H, W]         decoded as make_lora_goldens.run decodes (CHW, RGB)
    <case>.control_input   float32 [1, 3, H, W]       (sd1_cn_resize) the control tensor the pipeline used:
                           pipe.prepare_image(...) without the CFG doubling, i.e. the resized image / 255
    metadata <case>.params (JSON): model ("sd1" | "sdxl"), folder (relative to tests/golden/data), scheduler
        ("euler"), steps, cfg, seed, prompt, negative, width, height, guess_mode, controlnets: [{name, file
        (relative to tests/golden/data: the folder, or an LDM file), image (relative path), scale, start, end}],
        controlnet_keep (per step, per ControlNet: 1.0 if the ControlNet acts at that step, else 0.0: diffusers'
        keep = 1 - (i / steps < start or (i + 1) / steps > end); the pipeline still runs it with scale 0 there),
        mean_abs_image_diff_vs_no_controlnet (levels of 255), mean_abs_latent_diff_vs_no_controlnet, and for
        sd1_cn_window mean_abs_image_diff_vs_every_step (against the same case with start 0, end 1).
Cases (sd1: 8 steps, CFG 7 unless said):
  sd1_cn          sd1_a, control_a, scale 1.0
  sd1_cn_window   sd1_a, control_a, scale 0.6, start 0.25, end 0.75 (acts at steps 2..5 of 0..7). It moves the
                  image only 0.7 levels (max 6; latent 0.41 on average): the tiny sd1 model's image is set by
                  steps 0..1 (the same ControlNet at steps 0..1 only: 4.5 levels; 2..3: 0.6; 4..5: 0.2; 6..7:
                  0.1). Against the same case at every step it differs by 4.5 levels, so the window shows.
  sd1_cn_guess    sd1_a, control_a, scale 1.0, guess_mode: the ControlNet runs on the conditional half only (its
                  input is the unscaled-CFG latent, scale_model_input'd, with the prompt's embeddings), its
                  residuals scaled by logspace(-1, 0, 10) and zero for the unconditional half
  sd1_cn_multi    sd1_a with control_a at 0.8 + sd1_b (the bare LDM file) with control_b at 0.5
                  (MultiControlNetModel: the residuals of both summed)
  sd1_cn_resize   sd1_a, control_c (49x35, resized to 32x32 by the pipeline), scale 1.0
  sd1_cn_nocfg    sd1_a, control_a, scale 1.0, CFG 1.0 (no unconditional batch). Its params name the
                  prefixed LDM file sd1_a_ldm.safetensors (the same weights as sd1_a/), so a test loads both forms.
  sdxl_cn         sdxl_a, control_sdxl, scale 0.7, 6 steps, CFG 5
Metadata also: script, git, torch, diffusers, transformers, huggingface_hub, cases and components (names in
order), scheduler_config.sd1 / .sdxl, notes (JSON list), files.<name> (JSON per ControlNet: files, format,
dtype, seed, gain, conditioning_embedding_out_channels, tensors, bytes and sha256 per file).

Checks (asserted on every run): every ControlNet parameter non-zero after the draw; each folder reloads with
from_pretrained to the drawn fp16 bits; the LDM files convert back bit for bit (above); a run at
controlnet_conditioning_scale 0.0 gives the base pipeline's latent bit for bit (the ControlNet pipeline adds
exactly nothing then: checked for sd1 and sdxl); each case's image differs from the same run without ControlNet
by more than MIN_MEAN_DIFF (2) levels on average (sd1_cn_window: MIN_MEAN_DIFF_WINDOW (0.5), and more than 2 from
the same case at every step); cn_sd1_a_guess is cn_sd1_a times the guess-mode scales bit for bit; prepare_image
equals PIL LANCZOS / 255 bit for bit; all latents pairwise different; everything finite.
"""
import json
import os
import re
import sys

import numpy as np
import PIL.Image
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402
import make_model_goldens as mg  # noqa: E402  (git_hash, ZeroedAttnProcessor)
import make_sdxl_goldens as sg  # noqa: E402  (redraw, make_init_image, decode_as_pipeline, versions, ...)
import make_lora_goldens as lg  # noqa: E402  (build_sd1, build_sdxl, ldm_name, save_goldens, sha256, SIZES)

import diffusers  # noqa: E402
from diffusers import (ControlNetModel, EulerDiscreteScheduler, StableDiffusionControlNetPipeline,  # noqa: E402
                       StableDiffusionXLControlNetPipeline)
from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint  # noqa: E402

OUT = lg.OUT
CN_DIR = os.path.join(OUT, "controlnet")
GOLDEN = os.path.join(OUT, "controlnet_cases.safetensors")
SCRIPT = "tools/reference/make_controlnet_goldens.py"

COND_CHANNELS = (8, 16)  # log2(vae scale factor 2) + 1 entries: one stride-2 conv
GAIN = {"sd1": 2.0, "sdxl": 0.5}
MIN_MEAN_DIFF = 2.0  # levels of 255
# sd1_cn_window acts at steps 2..5 of 8 only, where the tiny SD 1.x model follows a change of its noise
# prediction far less than at steps 0..1 (see the docstring): its own, lower bound.
MIN_MEAN_DIFF_WINDOW = 0.5
FOLDERS = {"sd1": "pipeline_sd1", "sdxl": "pipeline_sdxl"}
LDM_PREFIX = "control_model."

# name: model, seed, the files written ("folder", "ldm_prefixed", "ldm_bare").
CONTROLNETS = {
    "sd1_a": dict(model="sd1", seed=3101, files=("folder", "ldm_prefixed")),
    "sd1_b": dict(model="sd1", seed=3102, files=("ldm_bare",)),
    "sdxl_a": dict(model="sdxl", seed=3103, files=("folder",)),
}
IMAGES = {"control_a": (32, 32), "control_b": (32, 32), "control_c": (49, 35), "control_sdxl": (64, 64)}  # w, h

# name, controlnet, images (two: batch items 0 and 1), timestep, conditioning_scale, guess_mode, seed
COMPONENTS = [
    ("cn_sd1_a", "sd1_a", ("control_a", "control_b"), 421.0, 1.0, False, 3201),
    ("cn_sd1_a_guess", "sd1_a", ("control_a", "control_b"), 421.0, 0.8, True, 3201),  # cn_sd1_a's inputs
    ("cn_sdxl_a", "sdxl_a", ("control_sdxl", "control_c"), 421.0, 1.0, False, 3203),
]
COMPONENT_LATENT = (8, 12)  # h, w: not square (a transposed axis shows), small (the goldens stay small)
SDXL_TIME_IDS = [[64.0, 64.0, 0.0, 0.0, 64.0, 64.0], [96.0, 64.0, 8.0, 4.0, 64.0, 64.0]]

# nets: (controlnet, image, scale, start, end) each; file_override: {controlnet: the file kind its params name}
# (default: the first of CONTROLNETS[...]["files"]).
CASES = [
    dict(name="sd1_cn", model="sd1", nets=[("sd1_a", "control_a", 1.0, 0.0, 1.0)], steps=8, cfg=7.0, seed=401,
         prompt="a red circle on a blue background", negative=""),
    dict(name="sd1_cn_window", model="sd1", nets=[("sd1_a", "control_a", 0.6, 0.25, 0.75)], steps=8, cfg=7.0,
         seed=402, prompt="a small green triangle on the left", negative="blue"),
    dict(name="sd1_cn_guess", model="sd1", nets=[("sd1_a", "control_a", 1.0, 0.0, 1.0)], steps=8, cfg=7.0,
         seed=403, prompt="photo of a cat on the right", negative="", guess_mode=True),
    dict(name="sd1_cn_multi", model="sd1", nets=[("sd1_a", "control_a", 0.8, 0.0, 1.0),
                                                  ("sd1_b", "control_b", 0.5, 0.0, 1.0)],
         steps=8, cfg=7.0, seed=404, prompt="a large blue square, masterpiece", negative="red"),
    dict(name="sd1_cn_resize", model="sd1", nets=[("sd1_a", "control_c", 1.0, 0.0, 1.0)], steps=8, cfg=7.0,
         seed=405, prompt="a green circle on the top", negative=""),
    dict(name="sd1_cn_nocfg", model="sd1", nets=[("sd1_a", "control_a", 1.0, 0.0, 1.0)], steps=8, cfg=1.0,
         seed=406, prompt="a red triangle on the bottom", negative="", file_override={"sd1_a": "ldm_prefixed"}),
    dict(name="sdxl_cn", model="sdxl", nets=[("sdxl_a", "control_sdxl", 0.7, 0.0, 1.0)], steps=6, cfg=5.0,
         seed=407, prompt="a green triangle on a red background", negative="a blue square"),
]


def rel(path):
    return os.path.relpath(path, OUT)


def file_path(name, kind):
    return os.path.join(CN_DIR, {"folder": name, "ldm_prefixed": f"{name}_ldm.safetensors",
                                 "ldm_bare": f"{name}_ldm.safetensors"}[kind])


# ---------------------------------------------------------------------------------------------------------
# Control images

def edge_map(height, width):
    """uint8 [H, W]: 1-pixel lines (255) on 0, like a canny map: a rectangle outline, a circle, a diagonal."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    m = np.zeros((height, width), bool)
    x0, x1 = round(0.15 * width), round(0.7 * width)
    y0, y1 = round(0.12 * height), round(0.55 * height)
    m |= ((x == x0) | (x == x1)) & (y >= y0) & (y <= y1)
    m |= ((y == y0) | (y == y1)) & (x >= x0) & (x <= x1)
    cx, cy, r = 0.62 * width, 0.68 * height, 0.22 * min(width, height)
    m |= np.abs(np.hypot(x - cx, y - cy) - r) < 0.5
    m |= np.abs((x / width + y / height) - 0.45) * min(width, height) < 0.5  # a diagonal, top-right to left
    return np.where(m, 255, 0).astype(np.uint8)


def make_images():
    """name -> uint8 [H, W, 3] (see the docstring)."""
    imgs = {}
    a = edge_map(32, 32)
    imgs["control_a"] = np.stack([a] * 3, axis=-1)
    imgs["control_b"] = sg.make_init_image(32, 32, 1)
    w, h = IMAGES["control_c"]
    c = sg.make_init_image(h, w, 2) // 2
    c[edge_map(h, w) > 0] = 255
    imgs["control_c"] = c
    s = edge_map(64, 64)
    imgs["control_sdxl"] = np.stack([s] * 3, axis=-1)
    for name, arr in imgs.items():
        assert arr.shape == (IMAGES[name][1], IMAGES[name][0], 3) and arr.dtype == np.uint8, name
    return imgs


def write_images(imgs):
    out = {}
    for name, arr in imgs.items():
        path = os.path.join(CN_DIR, f"{name}.png")
        PIL.Image.fromarray(arr, "RGB").save(path)
        back = PIL.Image.open(path)
        assert back.mode == "RGB" and np.array_equal(np.asarray(back), arr), name
        out[name] = back.convert("RGB")
    return out


# ---------------------------------------------------------------------------------------------------------
# ControlNets

def is_zero_conv(name):
    return name.startswith("controlnet_down_blocks.") or name.startswith("controlnet_mid_block.")


def make_controlnet(unet, seed, gain):
    """ControlNetModel.from_unet, every parameter re-drawn (see the docstring); fp32 holding fp16 values."""
    cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=COND_CHANNELS)
    gen = torch.Generator("cpu").manual_seed(seed)
    sg.redraw(cn, gen)
    with torch.no_grad():
        for name, p in cn.named_parameters():
            if is_zero_conv(name):
                p.mul_(gain)
                p.copy_(p.half().float())
            assert p.abs().max() > 0, name
    return cn.eval()


def state_of(cn):
    return {k: v.detach().clone() for k, v in cn.state_dict().items()}


def write_folder(cn, path):
    """save_pretrained in fp16, then the weights rewritten with safetensors_io (same tensors and metadata, fixed
    byte order); checks that from_pretrained gives back the fp16 bits."""
    rounded = state_of(cn)
    half = ControlNetModel.from_config(cn.config).to(torch.float16)
    half.load_state_dict(rounded)
    half.save_pretrained(path, safe_serialization=True)
    weights = os.path.join(path, "diffusion_pytorch_model.safetensors")
    assert sorted(os.listdir(path)) == ["config.json", "diffusion_pytorch_model.safetensors"], os.listdir(path)
    assert safetensors_io.load_metadata(weights) == {"format": "pt"}
    safetensors_io.save_file({k: v.half() for k, v in rounded.items()}, weights, {"format": "pt"})
    with open(os.path.join(path, "config.json")) as f:
        assert f.read() == config_json(cn)
    back = ControlNetModel.from_pretrained(path, torch_dtype=torch.float32)
    got = back.state_dict()
    assert got.keys() == rounded.keys()
    for k, v in rounded.items():
        assert got[k].dtype == torch.float32 and torch.equal(got[k], v), k
    return back.eval()


def ldm_key(key, cn):
    """diffusers ControlNetModel parameter name -> LDM (cldm) name without prefix (see the docstring's table)."""
    module, leaf = key.rsplit(".", 1)
    n_blocks = len(cn.controlnet_cond_embedding.blocks)
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "controlnet_cond_embedding.conv_in": "input_hint_block.0",
             "controlnet_cond_embedding.conv_out": f"input_hint_block.{2 * n_blocks + 2}",
             "controlnet_mid_block": "middle_block_out.0"}
    if module in fixed:
        name = fixed[module]
    elif m := re.fullmatch(r"controlnet_cond_embedding\.blocks\.(\d+)", module):
        name = f"input_hint_block.{2 * int(m[1]) + 2}"
    elif m := re.fullmatch(r"controlnet_down_blocks\.(\d+)", module):
        name = f"zero_convs.{m[1]}.0"
    elif m := re.fullmatch(r"(.*\.resnets\.\d+)\.(norm1|norm2)", module):
        # make_lora_goldens.ldm_name knows the resnets' convs: a norm sits at index 0 of its conv's Sequential.
        conv, old, new = {"norm1": ("conv1", "in_layers.2", "in_layers.0"),
                          "norm2": ("conv2", "out_layers.3", "out_layers.0")}[m[2]]
        name = lg.ldm_name(f"{m[1]}.{conv}", cn)
        assert name.endswith(old), name
        name = name[: -len(old)] + new
    else:
        name = lg.ldm_name(module, cn)
    return f"{name}.{leaf}"


def ldm_state(cn, prefix):
    state = state_of(cn)
    out = {}
    for k, v in state.items():
        lk = prefix + ldm_key(k, cn)
        assert lk not in out, (k, lk)
        out[lk] = v.half()
    return out


def hint_indices(ldm, prefix):
    return sorted({int(k[len(prefix):].split(".")[1]) for k in ldm if k[len(prefix):].startswith("input_hint_block.")})


def check_ldm(ldm, prefix, cn, notes):
    """diffusers' convert_controlnet_checkpoint gives back every tensor of cn (bit for bit)."""
    idx = hint_indices(ldm, prefix)
    last = idx[-1]
    ck = {}
    for k, v in ldm.items():
        if k == f"{prefix}input_hint_block.{last}.weight" or k == f"{prefix}input_hint_block.{last}.bias":
            k = k.replace(f"input_hint_block.{last}.", "input_hint_block.14.")  # diffusers' fixed conv_out index
        ck[k] = v
    conv = convert_controlnet_checkpoint(ck, dict(cn.config))
    ref = state_of(cn)
    missing = sorted(k for k in ref if conv.get(k) is None)
    extra = sorted(k for k in conv if k not in ref)
    assert not missing and not extra, (missing[:5], extra[:5])
    for k, v in ref.items():
        assert conv[k].dtype == torch.float16 and torch.equal(conv[k].float(), v), k
    notes.append(f"LDM layout (prefix {prefix!r}): diffusers' convert_controlnet_checkpoint gives back all {len(ref)} "
                 f"tensors bit for bit once input_hint_block.{last} is renamed input_hint_block.14 (hint indices "
                 f"in the file: {idx})")
    # Without the rename: what diffusers makes of the file as written.
    conv_raw = convert_controlnet_checkpoint(dict(ldm), dict(cn.config))
    invented = sorted(k for k, v in conv_raw.items() if v is None or k not in ref)
    lost = sorted(k for k in ref if conv_raw.get(k) is None)
    notes.append(f"LDM layout (prefix {prefix!r}) as written: diffusers' converter makes {', '.join(invented)} "
                 f"(no such parameter) and no {', '.join(lost)}: it expects SD 1.5's 16-entry input_hint_block")


def try_from_single_file(path, folder, ref, notes):
    """What ControlNetModel.from_single_file(file, config=folder) makes of a file, against the weights written."""
    try:
        m = ControlNetModel.from_single_file(path, config=folder, local_files_only=True, torch_dtype=torch.float32)
    except Exception as e:  # noqa: BLE001
        notes.append(f"ControlNetModel.from_single_file({rel(path)}, config={rel(folder)}): refused "
                     f"({type(e).__name__}: {str(e).splitlines()[0][:200]})")
        return
    got = m.state_dict()
    wrong = sorted(k for k, v in ref.items() if got[k].is_meta or not torch.equal(got[k], v))
    meta = sorted(k for k in wrong if got[k].is_meta)
    keys = safetensors_io.load_file(path)
    last = hint_indices(keys, LDM_PREFIX if LDM_PREFIX + "time_embed.0.weight" in keys else "")[-1]
    notes.append(f"ControlNetModel.from_single_file({rel(path)}, config={rel(folder)}) loads without an error, but "
                 f"{len(wrong)} of {len(ref)} tensors are not the file's: {', '.join(wrong)} ({len(meta)} of them left "
                 f"on the meta device, without values); input_hint_block.{last} is read as a blocks entry and dropped")


def config_json(cn):
    """The config.json text save_pretrained writes for cn."""
    return cn.to_json_string()


def write_ldm(cn, path, prefix, notes):
    ldm = ldm_state(cn, prefix)
    check_ldm(ldm, prefix, cn, notes)
    source = (f"{SCRIPT}: a random tiny ControlNet in the original (cldm) layout; diffusers {diffusers.__version__}, "
              f"torch {torch.__version__}")
    meta = {"format": "pt", "easel.source": source, "easel.config.controlnet": config_json(cn)}
    safetensors_io.save_file(ldm, path, meta)
    back = safetensors_io.load_file(path)
    assert back.keys() == ldm.keys()
    for k, v in ldm.items():
        assert np.array_equal(back[k], v.numpy()), k
    return ldm


def attach(cn, model):
    if model == "sd1":
        cn.set_attn_processor(mg.ZeroedAttnProcessor())  # as build_sd1 does to the UNet
    return cn.eval()


def build_controlnets(bases, notes):
    nets, infos, configs = {}, {}, {}
    for name, spec in CONTROLNETS.items():
        model = spec["model"]
        cn = make_controlnet(bases[model][0].unet, spec["seed"], GAIN[model])
        info = dict(model=model, seed=spec["seed"], gain=GAIN[model], dtype="float16",
                    conditioning_embedding_out_channels=list(COND_CHANNELS), tensors=len(cn.state_dict()), files={})
        loaded = cn
        for kind in spec["files"]:
            path = file_path(name, kind)
            if kind == "folder":
                loaded = write_folder(cn, path)
                configs[name] = path
                weights = os.path.join(path, "diffusion_pytorch_model.safetensors")
                info["files"][rel(path)] = dict(format="diffusers", bytes=os.path.getsize(weights),
                                                sha256=lg.sha256(weights))
            else:
                prefix = LDM_PREFIX if kind == "ldm_prefixed" else ""
                write_ldm(cn, path, prefix, notes)
                info["files"][rel(path)] = dict(format=f"ldm{' (control_model. prefix)' if prefix else ''}",
                                                bytes=os.path.getsize(path), sha256=lg.sha256(path))
                # the model as a loader of this file would make it: the config, and the converted weights
                ldm = {k: torch.from_numpy(v) for k, v in safetensors_io.load_file(path).items()}
                last = hint_indices(ldm, prefix)[-1]
                ldm = {k.replace(f"input_hint_block.{last}.", "input_hint_block.14."): v for k, v in ldm.items()}
                fresh = ControlNetModel.from_config(cn.config)
                fresh.load_state_dict({k: v.float() for k, v in convert_controlnet_checkpoint(
                    ldm, dict(cn.config)).items()})
                if kind == "ldm_bare":
                    loaded = fresh
                for k, v in state_of(fresh).items():
                    assert torch.equal(v, cn.state_dict()[k]), k
        nets[name] = attach(loaded, model)
        infos[name] = info
    for name, spec in CONTROLNETS.items():
        for kind in spec["files"]:
            if kind != "folder":
                folder = configs.get(name, configs["sd1_a"])
                try_from_single_file(file_path(name, kind), folder, state_of(nets[name]), notes)
    return nets, infos


# ---------------------------------------------------------------------------------------------------------
# Component goldens

def component_cases(nets, pils, pipes, tensors, meta):
    names, outputs = [], {}
    for name, net, imgs, t, scale, guess, seed in COMPONENTS:
        cn = nets[net]
        model = CONTROLNETS[net]["model"]
        pipe = pipes[model]
        lh, lw = COMPONENT_LATENT
        h, w = 2 * lh, 2 * lw
        gen = torch.Generator("cpu").manual_seed(seed)
        sample = torch.randn([2, 4, lh, lw], generator=gen)
        ehs = torch.randn([2, 77, cn.config.cross_attention_dim], generator=gen)
        cond = pipe.control_image_processor.preprocess([pils[i] for i in imgs], height=h, width=w).float()
        assert cond.shape == (2, 3, h, w) and cond.min() >= 0 and cond.max() <= 1
        kwargs = {}
        tensors[f"{name}.sample"] = sample
        tensors[f"{name}.timestep"] = torch.tensor([t])
        tensors[f"{name}.encoder_hidden_states"] = ehs
        tensors[f"{name}.controlnet_cond"] = cond
        if model == "sdxl":
            text_embeds = torch.randn([2, 40], generator=gen)
            time_ids = torch.tensor(SDXL_TIME_IDS)
            kwargs["added_cond_kwargs"] = dict(text_embeds=text_embeds, time_ids=time_ids)
            tensors[f"{name}.text_embeds"] = text_embeds
            tensors[f"{name}.time_ids"] = time_ids
        with torch.no_grad():
            emb = cn.controlnet_cond_embedding(cond)
            down, mid = cn(sample, torch.tensor(t), encoder_hidden_states=ehs, controlnet_cond=cond,
                           conditioning_scale=scale, guess_mode=guess, return_dict=False, **kwargs)
        tensors[f"{name}.cond_embedding"] = emb
        for i, d in enumerate(down):
            tensors[f"{name}.down.{i}"] = d
        tensors[f"{name}.mid"] = mid
        meta[f"{name}.component"] = json.dumps(dict(
            controlnet=net, file=rel(file_path(net, CONTROLNETS[net]["files"][0])), timestep=t,
            conditioning_scale=scale, guess_mode=guess, images=[f"controlnet/{i}.png" for i in imgs], seed=seed,
            height=h, width=w))
        outputs[name] = down, mid
        print(f"{name}: cond_embedding {list(emb.shape)} std {emb.std().item():.3f}; down "
              + ", ".join(f"{list(d.shape[1:])} {d.std().item():.3f}" for d in down)
              + f"; mid {list(mid.shape[1:])} {mid.std().item():.3f}")
        names.append(name)
    # Guess mode on the same inputs: each residual times conditioning_scale * logspace(-1, 0, 10)[i] (mid: [-1]).
    (down, mid), (gdown, gmid) = outputs["cn_sd1_a"], outputs["cn_sd1_a_guess"]
    scales = torch.logspace(-1, 0, len(down) + 1) * COMPONENTS[1][4]
    assert all(torch.equal(g, d * sc) for g, d, sc in zip(gdown, down, scales)) and torch.equal(gmid, mid * scales[-1])
    assert all(torch.equal(tensors[f"cn_sd1_a.{k}"], tensors[f"cn_sd1_a_guess.{k}"])
               for k in ("sample", "encoder_hidden_states", "controlnet_cond"))
    return names


# ---------------------------------------------------------------------------------------------------------
# Pipeline runs

def controlnet_pipeline(base, model, sched_cfg, nets):
    cn = nets[0] if len(nets) == 1 else list(nets)
    sched = EulerDiscreteScheduler.from_config(sched_cfg)
    if model == "sd1":
        pipe = StableDiffusionControlNetPipeline(
            vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=base.unet, controlnet=cn,
            scheduler=sched, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    else:
        pipe = StableDiffusionXLControlNetPipeline(
            vae=base.vae, text_encoder=base.text_encoder, text_encoder_2=base.text_encoder_2,
            tokenizer=base.tokenizer, tokenizer_2=base.tokenizer_2, unet=base.unet, controlnet=cn, scheduler=sched,
            force_zeros_for_empty_prompt=base.config.force_zeros_for_empty_prompt, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def decode(pipe, model, lat):
    """As make_lora_goldens.run decodes: uint8 [1, 3, H, W]."""
    if model == "sd1":
        vae = pipe.vae
        with torch.no_grad():
            img = vae.decode(lat / vae.config.scaling_factor).sample
        return ((img / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).contiguous()
    return sg.decode_as_pipeline(pipe, lat).permute(2, 0, 1)[None].contiguous()


def call_args(case):
    w, h = lg.SIZES[case["model"]]
    return dict(prompt=case["prompt"], negative_prompt=case["negative"], height=h, width=w,
                num_inference_steps=case["steps"], guidance_scale=case["cfg"])


def run_base(bases, case):
    pipe, sched_cfg = bases[case["model"]]
    pipe.scheduler = EulerDiscreteScheduler.from_config(sched_cfg)
    with torch.no_grad():
        lat = pipe(**call_args(case), generator=torch.Generator("cpu").manual_seed(case["seed"]),
                   output_type="latent").images
    return lat.contiguous(), decode(pipe, case["model"], lat)


def run_controlnet(bases, nets, pils, case, scales=None):
    base, sched_cfg = bases[case["model"]]
    pipe = controlnet_pipeline(base, case["model"], sched_cfg, [nets[n[0]] for n in case["nets"]])
    multi = len(case["nets"]) > 1
    images = [pils[n[1]] for n in case["nets"]]
    scales = scales if scales is not None else [n[2] for n in case["nets"]]
    kwargs = dict(image=images if multi else images[0],
                  controlnet_conditioning_scale=scales if multi else scales[0],
                  control_guidance_start=[n[3] for n in case["nets"]] if multi else case["nets"][0][3],
                  control_guidance_end=[n[4] for n in case["nets"]] if multi else case["nets"][0][4],
                  guess_mode=case.get("guess_mode", False))
    with torch.no_grad():
        lat = pipe(**call_args(case), **kwargs, generator=torch.Generator("cpu").manual_seed(case["seed"]),
                   output_type="latent").images
    assert torch.isfinite(lat).all(), case["name"]
    return pipe, lat.contiguous(), decode(pipe, case["model"], lat)


def keep_table(case):
    """diffusers' controlnet_keep: per step, per ControlNet."""
    n = case["steps"]
    return [[1.0 - float(i / n < s or (i + 1) / n > e) for _, _, _, s, e in case["nets"]] for i in range(n)]


def pipeline_cases(bases, nets, pils, tensors, meta, notes):
    latents = {}
    # Scale 0 adds exactly nothing: the ControlNet pipeline is then the base pipeline, bit for bit.
    for case in (CASES[0], CASES[-1]):
        _, lat0, _ = run_controlnet(bases, nets, pils, case, scales=[0.0] * len(case["nets"]))
        ref, _ = run_base(bases, case)
        assert torch.equal(lat0, ref), case["name"]
        notes.append(f"{case['name']} at controlnet_conditioning_scale 0.0: the base pipeline's latent bit for bit")
    for case in CASES:
        name, model = case["name"], case["model"]
        pipe, lat, img = run_controlnet(bases, nets, pils, case)
        ref_lat, ref_img = run_base(bases, case)
        diff = (img.float() - ref_img.float()).abs().mean().item()
        lat_diff = (lat - ref_lat).abs().mean().item()
        sat = ((img == 0) | (img == 255)).float().mean().item()
        sat0 = ((ref_img == 0) | (ref_img == 255)).float().mean().item()
        print(f"{name:14s} {model:4s} {[(n, i, s, a, b) for n, i, s, a, b in case['nets']]} guess "
              f"{case.get('guess_mode', False)} cfg {case['cfg']}: mean |image - no-ControlNet image| {diff:.2f} "
              f"(max {(img.float() - ref_img.float()).abs().max().item():.0f}), image mean "
              f"{img.float().mean().item():.1f}, saturated {sat:.1%} (without {sat0:.1%}), latent std "
              f"{lat.std().item():.3f}, mean |latent - no-ControlNet latent| {lat_diff:.3f}")
        extra = {}
        if case["nets"][0][3] > 0 or case["nets"][0][4] < 1:
            # The window matters: the same case with the ControlNet acting at every step.
            full = dict(case, nets=[(n, i, s, 0.0, 1.0) for n, i, s, _, _ in case["nets"]])
            _, _, full_img = run_controlnet(bases, nets, pils, full)
            extra["mean_abs_image_diff_vs_every_step"] = round((img.float() - full_img.float()).abs().mean().item(), 3)
            print(f"{'':14s} mean |image - the same at every step| {extra['mean_abs_image_diff_vs_every_step']:.2f}")
            assert diff > MIN_MEAN_DIFF_WINDOW and extra["mean_abs_image_diff_vs_every_step"] > MIN_MEAN_DIFF, name
        else:
            assert diff > MIN_MEAN_DIFF, (name, diff)
        tensors[f"{name}.latent"] = lat
        tensors[f"{name}.image"] = img
        w, h = lg.SIZES[model]
        if name == "sd1_cn_resize":
            net, image = case["nets"][0][0], case["nets"][0][1]
            control = pipe.prepare_image(pils[image], width=w, height=h, batch_size=1, num_images_per_prompt=1,
                                         device=torch.device("cpu"), dtype=torch.float32,
                                         do_classifier_free_guidance=False)
            direct = torch.from_numpy(np.asarray(pils[image].resize((w, h), PIL.Image.LANCZOS)).copy())
            direct = (direct.float() / 255).permute(2, 0, 1)[None]
            assert torch.equal(control, direct), "prepare_image is not PIL LANCZOS resize / 255"
            tensors[f"{name}.control_input"] = control.contiguous()
            notes.append(f"{name}: {image} {pils[image].size[0]}x{pils[image].size[1]} -> {w}x{h} by PIL "
                         f"Image.resize((width, height), LANCZOS) then /255 (equal to prepare_image bit for bit)")
        override = case.get("file_override", {})
        entries = [dict(name=n, file=rel(file_path(n, override.get(n, CONTROLNETS[n]["files"][0]))),
                        image=f"controlnet/{i}.png", scale=s, start=a, end=b) for n, i, s, a, b in case["nets"]]
        meta[f"{name}.params"] = json.dumps(dict(
            model=model, folder=FOLDERS[model], scheduler="euler", steps=case["steps"], cfg=case["cfg"],
            seed=case["seed"], prompt=case["prompt"], negative=case["negative"], width=w, height=h,
            guess_mode=case.get("guess_mode", False), controlnets=entries, controlnet_keep=keep_table(case),
            mean_abs_image_diff_vs_no_controlnet=round(diff, 3),
            mean_abs_latent_diff_vs_no_controlnet=round(lat_diff, 4), **extra))
        latents[name] = lat
    sg.assert_all_differ(latents)
    return [c["name"] for c in CASES]


def main():
    torch.set_num_threads(1)
    diffusers.utils.logging.disable_progress_bar()
    sg.check_words(CASES)
    os.makedirs(CN_DIR, exist_ok=True)
    bases = {"sd1": lg.build_sd1(), "sdxl": lg.build_sdxl()}
    notes = []

    pils = write_images(make_images())
    nets, infos = build_controlnets(bases, notes)
    for name, info in infos.items():
        for f, fi in info["files"].items():
            print(f"{f}: {fi['format']}, {fi['bytes']} bytes")

    tensors = {}
    meta = dict(sg.versions(SCRIPT), git=mg.git_hash(), **{
        "scheduler_config.sd1": json.dumps(bases["sd1"][1]), "scheduler_config.sdxl": json.dumps(bases["sdxl"][1])})
    for name, info in infos.items():
        meta[f"files.{name}"] = json.dumps(info)
    cn_pipes = {m: controlnet_pipeline(bases[m][0], m, bases[m][1], [nets[n]])
                for m, n in (("sd1", "sd1_a"), ("sdxl", "sdxl_a"))}
    meta["components"] = json.dumps(component_cases(nets, pils, cn_pipes, tensors, meta))
    meta["cases"] = json.dumps(pipeline_cases(bases, nets, pils, tensors, meta, notes))
    meta["notes"] = json.dumps(list(dict.fromkeys(notes)))
    lg.save_goldens(tensors, meta, GOLDEN)
    print("NOTES:")
    for n in dict.fromkeys(notes):
        print("  " + n)


if __name__ == "__main__":
    main()
