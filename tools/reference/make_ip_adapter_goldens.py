#!/work/refvenv/bin/python
"""IP-Adapter fixtures and goldens: a tiny random CLIP vision encoder (transformers' CLIPVisionModelWithProjection),
small random IP-Adapters (plain and Plus) for the tiny SD 1.x and SDXL models in the original h94/IP-Adapter file
layout, reference images, and what diffusers' pipelines make with them.

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline, after
make_pipeline_goldens.py and make_sdxl_goldens.py (it reads their model folders and changes nothing in them):

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_ip_adapter_goldens.py

It takes about 5 s on an idle two-core machine (one torch thread, so every run writes the same bytes: checked,
two runs give the same sha256 for every file). Every value is drawn from torch.Generators with fixed seeds;
every .safetensors file goes through safetensors_io.py (header in a fixed order), the .bin through torch.save
(saved twice and compared: deterministic) and the PNGs through PIL from fixed arrays. Versions used
(requirements-pip.txt): torch 2.4.1 (CPU), diffusers 0.30.3, transformers 4.40.2, huggingface_hub 0.36.2,
Pillow 13.0.0. All computation is float32 on the CPU, on weights rounded to fp16.

The base models are make_lora_goldens.py's build_sd1 / build_sdxl, as make_controlnet_goldens.py uses them:
sd1 = tests/golden/data/pipeline_sd1/ (32x32 images, 16x16 latents, cross_attention_dim 32, ZeroedAttnProcessor),
sdxl = tests/golden/data/pipeline_sdxl/ (64x64 images, 32x32 latents, cross_attention_dim 80, diffusers' default
AttnProcessor2_0), both with EulerDiscreteScheduler.from_config(the folder's scheduler config).

1. Image encoders: tests/golden/data/ip_adapter/image_encoder/ and image_encoder_quick/
--------------------------------------------------------------------------------------
transformers CLIPVisionModelWithProjection, CLIPVisionConfig(hidden_size 48, intermediate_size 96,
num_hidden_layers 3, num_attention_heads 4 (head dim 12), image_size 32, patch_size 8, projection_dim 24,
layer_norm_eps 1e-5, hidden_act "gelu" (image_encoder, seed 4101; the erf GELU, as h94's ViT-H / bigG encoders)
or "quick_gelu" (image_encoder_quick, seed 4102; x * sigmoid(1.702 x), as OpenAI's ViT-L; component cases only)).
save_pretrained in fp16: config.json (torch_dtype "float16") and model.safetensors, whose tensors are then
rewritten through safetensors_io as F16 with the metadata {"format": "pt"} save_pretrained writes (same keys:
vision_model.embeddings.{patch_embedding.weight [48, 3, 8, 8] (no bias), class_embedding [48],
position_embedding.weight [17, 48]}, vision_model.pre_layrnorm.{weight, bias}, vision_model.encoder.layers.N.
{self_attn.{q,k,v,out}_proj.{weight, bias}, layer_norm1, mlp.fc1, mlp.fc2, layer_norm2}, vision_model.
post_layernorm.*, visual_projection.weight [24, 48] (no bias); position_ids is a non-persistent buffer, not
stored). from_pretrained gives back the fp16 bits (checked). Weights: make_sdxl_goldens.redraw from
torch.Generator("cpu").manual_seed(seed) in named_parameters() order (LayerNorm weights 1 + 0.1 randn, biases
0.1 randn, matrices randn * min(0.2, 1.5 / sqrt(fan_in)), other vectors 0.2 randn, each rounded to fp16), then
class_embedding and position_embedding.weight times EMBED_GAIN = 5 (randn: as large as the patch embeddings, so
a wrong class token or position shows) and rounded again.
The model (read off transformers 4.40 modeling_clip.py): x = [class_embedding; conv(pixel_values) patches in
row-major order] + position_embedding (17 tokens); x = pre_layrnorm(x); hidden_states[0] = x; each layer
(pre-LN): x = x + out_proj(attn(layer_norm1(x))) (softmax(q k^T * 12^-0.5), 4 heads), x = x + fc2(act(fc1(
layer_norm2(x)))); hidden_states[i] = x after layer i. hidden_states[-2] ("penultimate", what IP-Adapter Plus
uses) is the output of layer 2 of 3, no norm after it; last_hidden_state = hidden_states[-1] (no
post_layernorm); image_embeds = visual_projection(post_layernorm(last_hidden_state[:, 0])).

2. IP-Adapters (original h94/IP-Adapter layout): tests/golden/data/ip_adapter/*.safetensors, *.bin
-------------------------------------------------------------------------------------------------
Keys "image_proj.<...>" (the image projection) and "ip_adapter.<K>.to_k_ip.weight" /
"ip_adapter.<K>.to_v_ip.weight" ([hidden, cross_attention_dim], no bias) for K = 1, 3, 5, ...: one pair per
cross-attention (attn2) layer, in the order of unet.attn_processors. That order is named_children() order:
UNet2DConditionModel.__init__ assigns down_blocks and up_blocks (empty ModuleLists) before mid_block, so the walk
is down_blocks.*, then up_blocks.*, then mid_block (checked on the tiny UNets; diffusers'
loaders/unet.py _convert_ip_adapter_attn_to_diffusers starts key_id at 1 and adds 2 per attn2 processor, skipping
attn1: the original training code numbered every processor, attn1 even, attn2 odd). hidden = the layer's block
width (block_out_channels[i] for down_blocks.i, reversed(block_out_channels)[i] for up_blocks.i, the last for
mid_block): the attn2 to_k's out_features. metadata ip_layers.sd1 / ip_layers.sdxl lists (key, layer, hidden):
  sd1   11 layers, K 1..21: down_blocks.0.attentions.{0,1} (16), down_blocks.1.attentions.{0,1} (32),
        up_blocks.1.attentions.{0,1,2} (32), up_blocks.2.attentions.{0,1,2} (16), mid_block.attentions.0 (32)
  sdxl  17 layers, K 1..33: down_blocks.1.attentions.{0,1} (16), down_blocks.2.attentions.{0,1}.transformer_blocks
        .{0,1} (32), up_blocks.0.attentions.{0,1,2}.transformer_blocks.{0,1} (32), up_blocks.1.attentions.{0,1,2}
        (16), mid_block.attentions.0.transformer_blocks.{0,1} (32)
  sd1_plain.safetensors    ImageProjModel for sd1: image_proj.proj.weight [4*32, 24], proj.bias [128],
                           norm.weight / norm.bias [32]: tokens = LayerNorm(reshape(proj(image_embeds), [B, 4, 32]))
                           (diffusers: ImageProjection, proj -> image_embeds; 4 tokens hard-coded). Seed 4201.
  sd1_plus.bin             IP-Adapter Plus Resampler for sd1 (seed 4202), torch.save of
                           {"image_proj": OrderedDict, "ip_adapter": OrderedDict} (h94's .bin form: the keys inside
                           without the prefixes, tensors float16; zip format; torch.load(weights_only=True) reads
                           it). image_proj: latents [1, 16, 64], proj_in.{weight [64, 48], bias}, proj_out.{weight
                           [32, 64], bias}, norm_out.{weight, bias} [32], layers.{0..3}.0.{norm1, norm2}.{weight,
                           bias} [64], layers.i.0.to_q.weight [64, 64], .to_kv.weight [128, 64] (rows 0..63 k, 64..127
                           v), .to_out.weight [64, 64], layers.i.1.0.{weight, bias} (LayerNorm 64),
                           layers.i.1.1.weight [256, 64], layers.i.1.3.weight [64, 256] (GELU (erf) between).
                           Maths (original Resampler, written out in original_forward and checked against diffusers'
                           converted module within 3e-6): lat = latents repeated over the batch; x = proj_in(penult);
                           per layer: xn = norm1(x), ln = norm2(lat), q = to_q(ln), k, v = to_kv(cat([xn, ln], tokens))
                           split in halves, heads of 64, softmax(q k^T / 8) v, lat = to_out(.) + lat; lat = ff(lat) +
                           lat; out = norm_out(proj_out(lat)): [B, 16, 32]. LayerNorm eps 1e-5 everywhere.
                           diffusers' conversion (the Plus branch): heads = layers.0.0.to_q rows // 64 (here 1);
                           norm1/norm2 -> ln0/ln1 and 1.0/1.1/1.3 -> ff.0/ff.1.net.0.proj/ff.1.net.2 are renamed by
                           literal string replaces for layers 0..3 only (depth 4 here, as h94's), to_kv split by
                           rows into attn.to_k / attn.to_v, to_out -> attn.to_out.0; checked here: the converted
                           IPAdapterPlusImageProjection holds exactly these values, 4 layers, 1 head.
  sd1_plus.safetensors     the same tensors flattened with the prefixes (image_proj.latents, ip_adapter.1.to_k_ip.
                           weight, ...): load_ip_adapter gives the same module and outputs as from the .bin, bit for
                           bit (checked).
  sdxl_plain.safetensors   ImageProjModel for sdxl (seed 4203): proj.weight [4*80, 24], norm [80]; the same image
                           encoder's image_embeds.
Draws (one torch.Generator per file, in the key order above: image_proj, then ip_adapter by K, k before v):
LayerNorm weights 1 + 0.1 randn, their biases 0.1 randn, latents randn, other biases 0.2 randn, matrices randn *
min(0.2, 1.5 / sqrt(fan_in)); to_k_ip / to_v_ip additionally times the adapter's GAIN (sd1_plain 4, sd1_plus 3,
sdxl_plain 0.5); every tensor rounded to fp16 and stored F16. .safetensors metadata {"format": "pt"}. With these
GAINs each case moves its image by 3 to 12 levels of 255 on average, without saturating (below); sd1_ip_nocfg is
the weakest (CFG 1: 2.2 at GAIN 2, 3.1 at GAIN 4, 3.4 at GAIN 6).

Reference images (PNG, 8 bits, from fixed arrays; make_sdxl_goldens.make_init_image patterns):
  ip_ref_a.png      40x40 RGB, make_init_image(40, 40, 3)
  ip_ref_b.png      57 wide x 33 high RGB, make_init_image(33, 57, 4) with its left 11 columns inverted
  ip_ref_c.png      300 wide x 200 high RGB, make_init_image(200, 300, 5) (the 224 preprocessing case)
  ip_ref_rgba.png   36x28 RGBA: make_init_image(28, 36, 6) with alpha ramping 0..255 left to right and a fully
                    transparent disc. The processor drops the alpha (PIL convert("RGB"): no compositing).
  ip_ref_gray.png   30 wide x 45 high, mode L (portrait: the long side is the height): convert("RGB") copies the
                    grey value into R, G, B.

How the pipelines prepare an IP-Adapter image (transformers 4.40 CLIPImageProcessor(size=S, crop_size=S), as
diffusers' load_ip_adapter makes it with S = image_encoder.config.image_size; size -> {"shortest_edge": S},
crop_size -> {"height": S, "width": S}; the default processor is S = 224), per image:
  1. convert to RGB if the PIL mode is not RGB (PIL Image.convert("RGB")), to a uint8 HWC array;
  2. resize, shortest edge to S: short, long = the smaller, larger of (w, h) (w <= h: w is short), new_long =
     int(S * long / short) (float division, truncated), with PIL Image.resize((new_w, new_h), BICUBIC) on the
     uint8 image (reducing_gap None; PIL's bicubic, a = -0.5, widened support when shrinking), back to uint8;
  3. centre crop S x S: top = (new_h - S) // 2, left = (new_w - S) // 2 (no padding case: the short side is S);
  4. rescale: uint8 * (1/255) evaluated in float64 (numpy), then cast to float32;
  5. normalise in float32: (x - mean) / std with OPENAI_CLIP_MEAN (0.48145466, 0.4578275, 0.40821073) and
     OPENAI_CLIP_STD (0.26862954, 0.26130258, 0.27577711) as float32 arrays; CHW, float32.
clip_preprocess writes these steps out and equals the processor bit for bit on every pre.* case (checked).
Geometry: a 40x40 -> 32x32, crop 0,0; b 57x33 -> 55x32, crop top 0 left 11; c 300x200 @224 -> 336x224, left 56;
b @224 -> 386x224 (upscaling), left 81; rgba 36x28 -> 41x32, left 4; gray 30x45 -> 32x48, top 8.

How diffusers' pipelines use it (pipeline_stable_diffusion[_xl].py encode_image / prepare_ip_adapter_image_embeds;
IPAdapterAttnProcessor2_0): for each IP-Adapter its image(s) go through the feature extractor (a list of images
for one adapter is one batch); a plain adapter (ImageProjection) takes image_embeds [n, 24], a Plus adapter
takes hidden_states[-2] [n, 17, 48]. The NEGATIVE (CFG) image embedding is zeros_like(image_embeds) for the plain
projection (so the negative tokens are LayerNorm(proj.bias reshaped): proj.*.negative), and for Plus the image
encoder run on zeros_like(pixel_values) (penultimate states of an all-zero image, i.e. the normalised value 0,
not a black image). With CFG the batch is [negative, positive]; with CFG 1 (sd1_ip_nocfg) no negative is made.
The projected tokens [B, n_images, T, D] reach every attn2 layer: out = attn(q, text k, text v) + sum over
adapters of scale * attn(q, to_k_ip(tokens), to_v_ip(tokens)), the n_images * T tokens of one adapter attended
together (view(batch, -1, heads, head_dim): the images' tokens concatenated; sd1_ip_plus: 2 x 16 = 32 tokens),
the same heads and head_dim as the layer's text attention, SDPA scale head_dim^-0.5, then to_out; an adapter at
scale 0 is skipped.
load_ip_adapter replaces the attention processors: attn2 -> IPAdapterAttnProcessor2_0 (SDPA), attn1 -> a new
instance of its current class (sd1: ZeroedAttnProcessor stays on attn1; sdxl: AttnProcessor2_0). So on sd1 the
text cross-attention runs through SDPA instead of ZeroedAttnProcessor's baddbmm (no NaN issue with torch 2.4):
at scale 0 the sd1 latent equals, bit for bit, the base pipeline with attn2 set to AttnProcessor2_0, and is
within 6e-5 of the base pipeline with ZeroedAttnProcessor everywhere; sdxl at scale 0 is the base latent bit
for bit. After each case the script calls unload_ip_adapter and puts the base processors back (checked: the
base pipeline then gives its first latent again).

3. Goldens: tests/golden/data/ip_adapter_cases.safetensors
----------------------------------------------------------
  pre.<name>  float32 [1, 3, S, S]: CLIPImageProcessor(size=S, crop_size=S)(image).pixel_values;
              metadata pre.<name>.params (image, mode, width, height, size, crop_size, resized [w, h],
              crop [top, left]). a_32, b_32, c_224, b_224, rgba_32, gray_32.
  vis.<enc>.* for image_encoder and image_encoder_quick (metadata vis.<enc>.params):
      pixel_values [2, 3, 32, 32] (ip_ref_a, ip_ref_b processed at S = 32: = pre.a_32, pre.b_32),
      image_embeds [2, 24], penultimate (hidden_states[-2]) [2, 17, 48], last_hidden_state [2, 17, 48],
      zeros_penultimate [1, 17, 48] and zeros_image_embeds [1, 24] (the encoder on an all-zero [1, 3, 32, 32]).
  proj.<adapter> for sd1_plain [2, 4, 32], sd1_plus [2, 16, 32], sdxl_plain [2, 4, 80]: the projection loaded by
      load_ip_adapter applied to proj.<adapter>.input (vis.image_encoder.image_embeds or .penultimate);
      proj.<adapter>.negative: the projection of the negative input (zeros [1, 24], or zeros_penultimate).
  Pipeline cases: StableDiffusionPipeline / StableDiffusionXLPipeline from the base pipeline's components plus
  image_encoder (ip_adapter/image_encoder, float32) and feature_extractor CLIPImageProcessor(size=32,
  crop_size=32); pipe.load_ip_adapter("tests/golden/data/ip_adapter", subfolder="", weight_name=file or [files]);
  pipe.set_ip_adapter_scale(scale or [scales]); pipe(prompt, negative_prompt, ip_adapter_image=<PIL image as read
  from the PNG> (one adapter, one image), or a list with one entry per adapter (a PIL image or a list of them),
  height, width, num_inference_steps, guidance_scale, generator=torch.Generator("cpu").manual_seed(seed),
  output_type="latent"); decoded as make_controlnet_goldens.decode.
    <case>.latent  float32 [1, 4, H/2, W/2];  <case>.image  uint8 [1, 3, H, W] (CHW, RGB)
    metadata <case>.params (JSON): model, folder, scheduler ("euler"), steps, cfg, seed, prompt, negative, width,
      height, image_encoder, feature_extractor {size, crop_size}, adapters [{adapter, file, kind, images,
      scale}], mean_abs_image_diff_vs_no_ip_adapter (levels of 255, against the base pipeline's run),
      mean_abs_latent_diff_vs_no_ip_adapter, saturated_fraction (pixels at 0 or 255).
  Cases (mean |image - the same run without IP-Adapter| in levels):
    sd1_ip        sd1_plain, ip_ref_a, scale 0.7, 8 steps, CFG 7                                       11.5
    sd1_ip_plus   sd1_plus.bin, [ip_ref_a, ip_ref_b] for the one adapter (32 tokens), scale 1.0, CFG 7  10.5
    sd1_ip_multi  sd1_plain with ip_ref_b at 0.5 + sd1_plus.safetensors with ip_ref_a at 0.8, CFG 7     12.4
    sd1_ip_nocfg  sd1_plain, ip_ref_a, scale 1.0, CFG 1.0 (no negative image embedding)                3.1
    sdxl_ip       sdxl_plain, ip_ref_a, scale 0.6, 6 steps, CFG 5                                      11.6
  (no image saturates: at most 0.1% of pixels at 0 or 255 on sd1; sdxl_ip 1.9%, 1.3% without.)
Metadata also: script, git, torch, diffusers, transformers, huggingface_hub, pre / vis / proj / cases (names in
order), scheduler_config.sd1 / .sdxl, ip_layers.sd1 / .sdxl, notes (JSON list), files.<name> (JSON per encoder /
adapter: seed, gain, dtype, tensors, files with format, bytes and sha256; the encoders also their config).

Checks (asserted on every run): every encoder parameter non-zero; the encoder folders reload to the fp16 bits;
load_ip_adapter on a pipeline without an encoder reads ip_adapter/image_encoder/ (same weights) and makes
CLIPImageProcessor(size=32, crop_size=32); the adapter files read back to the drawn bits (and the .bin is written
identically twice); after load_ip_adapter every attn2 processor is IPAdapterAttnProcessor2_0 holding this file's
to_k_ip / to_v_ip (float32, no bias) and the converted projections hold the drawn values under the expected
diffusers names (Plus: 4 layers, 1 head); original_forward matches them within 1e-5; sd1_plus.bin and
.safetensors give identical projections; the pre.* tensors equal clip_preprocess bit for bit (and the RGBA / L
rules); scale 0 (sd1_ip, sdxl_ip) as said above; each case's image differs from the same run without IP-Adapter
by more than MIN_MEAN_DIFF (2) levels; all latents pairwise different; everything finite; the base pipelines are
unchanged afterwards.
"""
import collections
import json
import os
import sys
import time

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402
import make_model_goldens as mg  # noqa: E402  (git_hash, ZeroedAttnProcessor)
import make_sdxl_goldens as sg  # noqa: E402  (redraw, make_init_image, decode_as_pipeline, versions, ...)
import make_lora_goldens as lg  # noqa: E402  (build_sd1, build_sdxl, save_goldens, sha256, SIZES)

import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline  # noqa: E402
from diffusers.models.attention_processor import AttnProcessor2_0, IPAdapterAttnProcessor2_0  # noqa: E402
from diffusers.models.embeddings import ImageProjection, IPAdapterPlusImageProjection  # noqa: E402
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection  # noqa: E402
from transformers.utils.constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD  # noqa: E402

OUT = lg.OUT
IPA_DIR = os.path.join(OUT, "ip_adapter")
GOLDEN = os.path.join(OUT, "ip_adapter_cases.safetensors")
SCRIPT = "tools/reference/make_ip_adapter_goldens.py"

MIN_MEAN_DIFF = 2.0  # levels of 255
FOLDERS = {"sd1": "pipeline_sd1", "sdxl": "pipeline_sdxl"}

# The tiny CLIP vision tower (ViT): 32x32 images, 8x8 patches -> 16 patch tokens + the class token.
VISION = dict(hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4, image_size=32,
              patch_size=8, projection_dim=24, layer_norm_eps=1e-5, num_channels=3)
ENCODERS = {
    "image_encoder": dict(seed=4101, hidden_act="gelu"),          # ViT-H/bigG style (h94's encoders)
    "image_encoder_quick": dict(seed=4102, hidden_act="quick_gelu"),  # ViT-L style (OpenAI CLIP)
}
EMBED_GAIN = 5.0  # class_embedding and position_embedding: 0.2 randn (redraw) * 5 = randn

# IP-Adapter Plus resampler (original Resampler naming): width 64, 16 queries, 4 layers, heads of 64.
PLUS = dict(hidden=64, queries=16, depth=4, dim_head=64, ff_mult=4)
PLAIN_TOKENS = 4
# name: model, kind, seed, files written, GAIN on to_k_ip / to_v_ip
ADAPTERS = {
    "sd1_plain": dict(model="sd1", kind="plain", seed=4201, files=("sd1_plain.safetensors",), gain=4.0),
    "sd1_plus": dict(model="sd1", kind="plus", seed=4202, files=("sd1_plus.bin", "sd1_plus.safetensors"), gain=3.0),
    "sdxl_plain": dict(model="sdxl", kind="plain", seed=4203, files=("sdxl_plain.safetensors",), gain=0.5),
}

# name: (width, height, mode)
IMAGES = {"ip_ref_a": (40, 40, "RGB"), "ip_ref_b": (57, 33, "RGB"), "ip_ref_c": (300, 200, "RGB"),
          "ip_ref_rgba": (36, 28, "RGBA"), "ip_ref_gray": (30, 45, "L")}

# Preprocessing goldens: name, image, S (CLIPImageProcessor(size=S, crop_size=S))
PRE = [("a_32", "ip_ref_a", 32), ("b_32", "ip_ref_b", 32), ("c_224", "ip_ref_c", 224), ("b_224", "ip_ref_b", 224),
       ("rgba_32", "ip_ref_rgba", 32), ("gray_32", "ip_ref_gray", 32)]
VIS_IMAGES = ("ip_ref_a", "ip_ref_b")  # batch items 0 and 1 of the component cases

# adapters: (adapter, file, images, scale)
CASES = [
    dict(name="sd1_ip", model="sd1", adapters=[("sd1_plain", "sd1_plain.safetensors", ["ip_ref_a"], 0.7)],
         steps=8, cfg=7.0, seed=501, prompt="a red circle on a blue background", negative=""),
    dict(name="sd1_ip_plus", model="sd1",
         adapters=[("sd1_plus", "sd1_plus.bin", ["ip_ref_a", "ip_ref_b"], 1.0)],
         steps=8, cfg=7.0, seed=502, prompt="a small green triangle on the left", negative="blue"),
    dict(name="sd1_ip_multi", model="sd1",
         adapters=[("sd1_plain", "sd1_plain.safetensors", ["ip_ref_b"], 0.5),
                   ("sd1_plus", "sd1_plus.safetensors", ["ip_ref_a"], 0.8)],
         steps=8, cfg=7.0, seed=503, prompt="a large blue square, masterpiece", negative="red"),
    dict(name="sd1_ip_nocfg", model="sd1", adapters=[("sd1_plain", "sd1_plain.safetensors", ["ip_ref_a"], 1.0)],
         steps=8, cfg=1.0, seed=504, prompt="a red triangle on the bottom", negative=""),
    dict(name="sdxl_ip", model="sdxl", adapters=[("sdxl_plain", "sdxl_plain.safetensors", ["ip_ref_a"], 0.6)],
         steps=6, cfg=5.0, seed=505, prompt="a green triangle on a red background", negative="a blue square"),
]


def rel(path):
    return os.path.relpath(path, OUT)


# ---------------------------------------------------------------------------------------------------------
# Reference images

def make_images():
    """name -> uint8 array [H, W, 3] (RGB), [H, W, 4] (RGBA) or [H, W] (L)."""
    imgs = {}
    w, h, _ = IMAGES["ip_ref_a"]
    imgs["ip_ref_a"] = sg.make_init_image(h, w, 3)
    w, h, _ = IMAGES["ip_ref_b"]
    b = sg.make_init_image(h, w, 4)
    b[:, : w // 5] = 255 - b[:, : w // 5]  # an inverted left band: the centre crop must drop most of it
    imgs["ip_ref_b"] = b
    w, h, _ = IMAGES["ip_ref_c"]
    imgs["ip_ref_c"] = sg.make_init_image(h, w, 5)
    w, h, _ = IMAGES["ip_ref_rgba"]
    rgb = sg.make_init_image(h, w, 6)
    y, x = np.mgrid[0:h, 0:w]
    alpha = np.clip(255 * x / (w - 1), 0, 255).round().astype(np.uint8)
    alpha[(x - w / 2) ** 2 + (y - h / 2) ** 2 < (0.25 * h) ** 2] = 0  # a transparent hole
    imgs["ip_ref_rgba"] = np.concatenate([rgb, alpha[..., None]], axis=-1)
    w, h, _ = IMAGES["ip_ref_gray"]
    g = sg.make_init_image(h, w, 7).astype(np.float64)
    imgs["ip_ref_gray"] = np.clip(np.round(0.299 * g[..., 0] + 0.587 * g[..., 1] + 0.114 * g[..., 2]), 0,
                                  255).astype(np.uint8)
    for name, arr in imgs.items():
        w, h, mode = IMAGES[name]
        shape = (h, w) if mode == "L" else (h, w, len(mode))
        assert arr.shape == shape and arr.dtype == np.uint8, name
    return imgs


def write_images(imgs):
    """Writes the PNGs and returns them as PIL reads them back (mode as stored)."""
    out = {}
    for name, arr in imgs.items():
        mode = IMAGES[name][2]
        path = os.path.join(IPA_DIR, f"{name}.png")
        PIL.Image.fromarray(arr, mode).save(path)
        back = PIL.Image.open(path)
        back.load()
        assert back.mode == mode and np.array_equal(np.asarray(back), arr), name
        out[name] = back
    return out


# ---------------------------------------------------------------------------------------------------------
# Preprocessing

def processor(size):
    """As diffusers' load_ip_adapter constructs it (size = image_encoder.config.image_size)."""
    return CLIPImageProcessor(size=size, crop_size=size)


def clip_preprocess(pil, size):
    """CLIPImageProcessor written out (see the docstring); float32 [3, S, S] and the geometry."""
    img = pil if pil.mode == "RGB" else pil.convert("RGB")
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    rw, rh = (size, new_long) if w <= h else (new_long, size)
    resized = np.asarray(img.resize((rw, rh), PIL.Image.BICUBIC))
    top, left = (rh - size) // 2, (rw - size) // 2
    crop = resized[top:top + size, left:left + size]
    x = (crop * (1 / 255)).astype(np.float32)  # uint8 * python float: float64, then float32
    x = (x - np.array(OPENAI_CLIP_MEAN, np.float32)) / np.array(OPENAI_CLIP_STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))), dict(resized=[rw, rh], crop=[top, left])


def pre_cases(pils, tensors, meta, notes):
    names = []
    for name, image, size in PRE:
        pv = processor(size)(pils[image], return_tensors="pt").pixel_values
        mine, geo = clip_preprocess(pils[image], size)
        assert pv.dtype == torch.float32 and pv.shape == (1, 3, size, size), (name, pv.shape)
        assert torch.equal(pv[0], mine), f"pre.{name}: CLIPImageProcessor is not the written-out steps"
        tensors[f"pre.{name}"] = pv.contiguous()
        w, h, mode = IMAGES[image]
        meta[f"pre.{name}.params"] = json.dumps(dict(
            image=f"ip_adapter/{image}.png", mode=mode, width=w, height=h, size=size, crop_size=size, **geo))
        print(f"pre.{name}: {image} {w}x{h} {mode} -> resized {geo['resized'][0]}x{geo['resized'][1]}, crop "
              f"top {geo['crop'][0]} left {geo['crop'][1]} -> {list(pv.shape)}, range "
              f"[{pv.min().item():.3f}, {pv.max().item():.3f}]")
        names.append(name)
    # RGBA: the alpha is dropped (PIL convert("RGB")), not composited.
    rgba = np.asarray(pils["ip_ref_rgba"])
    pv, _ = clip_preprocess(PIL.Image.fromarray(np.ascontiguousarray(rgba[..., :3]), "RGB"), 32)
    assert torch.equal(tensors["pre.rgba_32"][0], pv)
    notes.append("ip_ref_rgba: CLIPImageProcessor converts RGBA with PIL convert('RGB'): the alpha channel is "
                 "dropped (no compositing); pre.rgba_32 equals the RGB channels alone processed, bit for bit")
    gray = np.asarray(pils["ip_ref_gray"])
    pv, _ = clip_preprocess(PIL.Image.fromarray(np.ascontiguousarray(np.stack([gray] * 3, -1)), "RGB"), 32)
    assert torch.equal(tensors["pre.gray_32"][0], pv)
    notes.append("ip_ref_gray (mode L): converted with PIL convert('RGB'), the grey value copied to R, G and B")
    notes.append("every pre.* golden equals the written-out steps (int() size rule, PIL BICUBIC on uint8, crop "
                 "offsets (new - S) // 2, x * (1/255) in float64 then float32, (x - mean) / std in float32) bit "
                 "for bit")
    return names


# ---------------------------------------------------------------------------------------------------------
# The image encoders

def make_encoder(name):
    spec = ENCODERS[name]
    cfg = CLIPVisionConfig(**VISION, hidden_act=spec["hidden_act"])
    model = CLIPVisionModelWithProjection(cfg)
    gen = torch.Generator("cpu").manual_seed(spec["seed"])
    sg.redraw(model, gen)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname in ("vision_model.embeddings.class_embedding",
                         "vision_model.embeddings.position_embedding.weight"):
                p.mul_(EMBED_GAIN)
                p.copy_(p.half().float())
            assert p.abs().max() > 0, pname
    return model.eval()


def write_encoder(model, name):
    """save_pretrained in fp16 (config.json + model.safetensors), the weights rewritten with safetensors_io
    (same tensors, {"format": "pt"}); from_pretrained must give back the fp16 bits in float32."""
    path = os.path.join(IPA_DIR, name)
    rounded = {k: v.detach().clone() for k, v in model.state_dict().items()}
    half = CLIPVisionModelWithProjection(model.config).to(torch.float16)
    half.load_state_dict(rounded)
    half.save_pretrained(path, safe_serialization=True)
    weights = os.path.join(path, "model.safetensors")
    assert sorted(os.listdir(path)) == ["config.json", "model.safetensors"], os.listdir(path)
    assert safetensors_io.load_metadata(weights) == {"format": "pt"}
    assert sorted(safetensors_io.load_file(weights)) == sorted(rounded), "save_pretrained wrote other keys"
    safetensors_io.save_file({k: v.half() for k, v in rounded.items()}, weights, {"format": "pt"})
    back = CLIPVisionModelWithProjection.from_pretrained(path)
    got = back.state_dict()
    assert got.keys() == rounded.keys()
    for k, v in rounded.items():
        assert got[k].dtype == torch.float32 and torch.equal(got[k], v), k
    info = dict(seed=ENCODERS[name]["seed"], hidden_act=ENCODERS[name]["hidden_act"], dtype="float16",
                tensors=len(rounded), bytes=os.path.getsize(weights), sha256=lg.sha256(weights),
                config=json.loads(back.config.to_json_string()))
    return back.eval(), info


def encode(enc, pixel_values):
    with torch.no_grad():
        out = enc(pixel_values, output_hidden_states=True)
    assert len(out.hidden_states) == VISION["num_hidden_layers"] + 1
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    return out


def vision_cases(encoders, pils, tensors, meta):
    names = []
    pv = processor(VISION["image_size"])([pils[i] for i in VIS_IMAGES], return_tensors="pt").pixel_values
    assert torch.equal(pv[0], tensors["pre.a_32"][0]) and torch.equal(pv[1], tensors["pre.b_32"][0])
    zeros = torch.zeros([1, 3, VISION["image_size"], VISION["image_size"]])
    for name, enc in encoders.items():
        out, zout = encode(enc, pv), encode(enc, zeros)
        p = f"vis.{name}"
        tensors[f"{p}.pixel_values"] = pv.contiguous()
        tensors[f"{p}.image_embeds"] = out.image_embeds.contiguous()
        tensors[f"{p}.penultimate"] = out.hidden_states[-2].contiguous()
        tensors[f"{p}.last_hidden_state"] = out.last_hidden_state.contiguous()
        tensors[f"{p}.zeros_penultimate"] = zout.hidden_states[-2].contiguous()
        tensors[f"{p}.zeros_image_embeds"] = zout.image_embeds.contiguous()
        meta[f"{p}.params"] = json.dumps(dict(encoder=f"ip_adapter/{name}", hidden_act=ENCODERS[name]["hidden_act"],
                                              images=[f"ip_adapter/{i}.png" for i in VIS_IMAGES],
                                              image_size=VISION["image_size"]))
        print(f"{p}: image_embeds {list(out.image_embeds.shape)} std {out.image_embeds.std().item():.3f}, "
              f"penultimate {list(out.hidden_states[-2].shape)} std {out.hidden_states[-2].std().item():.3f}, "
              f"last std {out.last_hidden_state.std().item():.3f}, batch items differ by "
              f"{(out.image_embeds[0] - out.image_embeds[1]).abs().mean().item():.3f}")
        names.append(p)
    return names


# ---------------------------------------------------------------------------------------------------------
# IP-Adapters (original h94 layout)

def ip_layers(unet):
    """[(K, attn processor name, hidden size)] for every cross-attention (attn2) layer, in unet.attn_processors
    order: K = 2 * (index among all attention processors, attn1 and attn2) + 1 as diffusers counts key_id."""
    out, key_id = [], 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor") or name.startswith("encoder_hid_proj."):
            continue  # (the resampler's own attention shows once an IP-Adapter Plus is loaded)
        assert name.endswith("attn2.processor"), name
        attn = unet.get_submodule(name[: -len(".processor")])
        hidden = attn.to_k.out_features
        assert attn.to_k.in_features == unet.config.cross_attention_dim
        out.append((key_id, name[: -len(".processor")], hidden))
        key_id += 2
    return out


def draw(spec, gen, gain):
    """spec: [(name, shape, kind)] in file order; every value fp16-rounded (see the docstring)."""
    out = collections.OrderedDict()
    for name, shape, kind in spec:
        noise = torch.randn(shape, generator=gen)
        if kind == "norm_w":
            t = 1.0 + 0.1 * noise
        elif kind == "norm_b":
            t = 0.1 * noise
        elif kind == "latents":
            t = noise
        elif kind == "bias":
            t = 0.2 * noise
        else:
            fan_in = shape[1]
            t = noise * min(0.2, 1.5 / fan_in ** 0.5) * (gain if kind == "ip" else 1.0)
        out[name] = t.half()
    return out


def proj_spec(kind, cross_dim):
    if kind == "plain":
        d = VISION["projection_dim"]
        return [("proj.weight", [PLAIN_TOKENS * cross_dim, d], "matrix"),
                ("proj.bias", [PLAIN_TOKENS * cross_dim], "bias"),
                ("norm.weight", [cross_dim], "norm_w"), ("norm.bias", [cross_dim], "norm_b")]
    h, e, q = PLUS["hidden"], VISION["hidden_size"], PLUS["queries"]
    inner, ff = PLUS["dim_head"] * (h // PLUS["dim_head"]), h * PLUS["ff_mult"]
    spec = [("latents", [1, q, h], "latents"), ("proj_in.weight", [h, e], "matrix"), ("proj_in.bias", [h], "bias"),
            ("proj_out.weight", [cross_dim, h], "matrix"), ("proj_out.bias", [cross_dim], "bias"),
            ("norm_out.weight", [cross_dim], "norm_w"), ("norm_out.bias", [cross_dim], "norm_b")]
    for i in range(PLUS["depth"]):
        p = f"layers.{i}"
        spec += [(f"{p}.0.norm1.weight", [h], "norm_w"), (f"{p}.0.norm1.bias", [h], "norm_b"),
                 (f"{p}.0.norm2.weight", [h], "norm_w"), (f"{p}.0.norm2.bias", [h], "norm_b"),
                 (f"{p}.0.to_q.weight", [inner, h], "matrix"), (f"{p}.0.to_kv.weight", [2 * inner, h], "matrix"),
                 (f"{p}.0.to_out.weight", [h, inner], "matrix"),
                 (f"{p}.1.0.weight", [h], "norm_w"), (f"{p}.1.0.bias", [h], "norm_b"),
                 (f"{p}.1.1.weight", [ff, h], "matrix"), (f"{p}.1.3.weight", [h, ff], "matrix")]
    return spec


def make_adapter(name, unet):
    spec = ADAPTERS[name]
    cross = unet.config.cross_attention_dim
    gen = torch.Generator("cpu").manual_seed(spec["seed"])
    image_proj = draw(proj_spec(spec["kind"], cross), gen, 1.0)
    ip_spec = []
    for k, _, hidden in ip_layers(unet):
        ip_spec += [(f"{k}.to_k_ip.weight", [hidden, cross], "ip"), (f"{k}.to_v_ip.weight", [hidden, cross], "ip")]
    ip_adapter = draw(ip_spec, gen, spec["gain"])
    return collections.OrderedDict([("image_proj", image_proj), ("ip_adapter", ip_adapter)])


def flat(sd):
    return {f"{part}.{k}": v for part in ("image_proj", "ip_adapter") for k, v in sd[part].items()}


def write_adapter(name, sd):
    info = dict(model=ADAPTERS[name]["model"], kind=ADAPTERS[name]["kind"], seed=ADAPTERS[name]["seed"],
                gain=ADAPTERS[name]["gain"], dtype="float16", tensors=len(flat(sd)), files={})
    for fname in ADAPTERS[name]["files"]:
        path = os.path.join(IPA_DIR, fname)
        if fname.endswith(".bin"):
            torch.save(sd, path)
            with open(path, "rb") as f:
                first = f.read()
            torch.save(sd, path)
            with open(path, "rb") as f:
                assert f.read() == first, "torch.save is not deterministic"
            back = torch.load(path, weights_only=True)
            assert list(back) == ["image_proj", "ip_adapter"]
            for part in back:
                assert list(back[part]) == list(sd[part])
                for k, v in sd[part].items():
                    assert back[part][k].dtype == torch.float16 and torch.equal(back[part][k], v), k
            fmt = "torch.save (zip) of {'image_proj': OrderedDict, 'ip_adapter': OrderedDict}, float16"
        else:
            safetensors_io.save_file(flat(sd), path, {"format": "pt"})
            back = safetensors_io.load_file(path)
            assert sorted(back) == sorted(flat(sd))
            for k, v in flat(sd).items():
                assert np.array_equal(back[k], v.numpy()), k
            fmt = "safetensors F16, keys image_proj.* and ip_adapter.*"
        info["files"][rel(path)] = dict(format=fmt, bytes=os.path.getsize(path), sha256=lg.sha256(path))
    return info


def expected_diffusers_proj(kind, image_proj):
    """The converted projection's state dict as diffusers should make it from the original names."""
    out = {}
    for k, v in image_proj.items():
        v = v.float()
        if kind == "plain":
            out[k.replace("proj.", "image_embeds.")] = v
            continue
        parts = k.split(".")
        if parts[0] != "layers":
            out[k] = v
            continue
        i, sub, rest = parts[1], parts[2], ".".join(parts[3:])
        if sub == "0":
            if rest.startswith("norm1"):
                out[f"layers.{i}.ln0.{rest.split('.')[1]}"] = v
            elif rest.startswith("norm2"):
                out[f"layers.{i}.ln1.{rest.split('.')[1]}"] = v
            elif rest == "to_q.weight":
                out[f"layers.{i}.attn.to_q.weight"] = v
            elif rest == "to_kv.weight":
                kk, vv = v.chunk(2, dim=0)
                out[f"layers.{i}.attn.to_k.weight"] = kk
                out[f"layers.{i}.attn.to_v.weight"] = vv
            elif rest == "to_out.weight":
                out[f"layers.{i}.attn.to_out.0.weight"] = v
            else:
                raise AssertionError(k)
        else:
            idx, leaf = rest.split(".")
            mod = {"0": "ff.0", "1": "ff.1.net.0.proj", "3": "ff.1.net.2"}[idx]
            out[f"layers.{i}.{mod}.{leaf}"] = v
    return out


def original_forward(kind, sd, x):
    """The projection computed from the original names (ImageProjModel / Resampler, see the docstring)."""
    g = {k: v.float() for k, v in sd.items()}
    if kind == "plain":
        y = F.linear(x, g["proj.weight"], g["proj.bias"]).reshape(x.shape[0], PLAIN_TOKENS, -1)
        return F.layer_norm(y, y.shape[-1:], g["norm.weight"], g["norm.bias"], 1e-5)
    h, dh = PLUS["hidden"], PLUS["dim_head"]
    heads = g["layers.0.0.to_q.weight"].shape[0] // dh
    lat = g["latents"].repeat(x.shape[0], 1, 1)
    x = F.linear(x, g["proj_in.weight"], g["proj_in.bias"])
    for i in range(PLUS["depth"]):
        p = f"layers.{i}"
        xn = F.layer_norm(x, (h,), g[f"{p}.0.norm1.weight"], g[f"{p}.0.norm1.bias"], 1e-5)
        ln = F.layer_norm(lat, (h,), g[f"{p}.0.norm2.weight"], g[f"{p}.0.norm2.bias"], 1e-5)
        q = F.linear(ln, g[f"{p}.0.to_q.weight"])
        k, v = F.linear(torch.cat([xn, ln], dim=1), g[f"{p}.0.to_kv.weight"]).chunk(2, dim=-1)
        b = x.shape[0]
        q, k, v = (t.reshape(b, -1, heads, dh).transpose(1, 2) for t in (q, k, v))
        w = (q @ k.transpose(-1, -2) / dh ** 0.5).softmax(dim=-1)
        o = (w @ v).transpose(1, 2).reshape(b, -1, heads * dh)
        lat = F.linear(o, g[f"{p}.0.to_out.weight"]) + lat
        f = F.layer_norm(lat, (h,), g[f"{p}.1.0.weight"], g[f"{p}.1.0.bias"], 1e-5)
        f = F.linear(F.gelu(F.linear(f, g[f"{p}.1.1.weight"])), g[f"{p}.1.3.weight"])
        lat = f + lat
    lat = F.linear(lat, g["proj_out.weight"], g["proj_out.bias"])
    return F.layer_norm(lat, lat.shape[-1:], g["norm_out.weight"], g["norm_out.bias"], 1e-5)


# ---------------------------------------------------------------------------------------------------------
# Pipelines

def decode(pipe, model, lat):
    """As make_controlnet_goldens.decode (make_lora_goldens.run): uint8 [1, 3, H, W]."""
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


def ip_pipeline(bases, model, encoder):
    """The base pipeline's components with the image encoder and diffusers' feature extractor for it."""
    base, sched_cfg = bases[model]
    sched = EulerDiscreteScheduler.from_config(sched_cfg)
    fe = processor(VISION["image_size"]) if encoder is not None else None
    if model == "sd1":
        pipe = StableDiffusionPipeline(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer,
                                       unet=base.unet, scheduler=sched, safety_checker=None, feature_extractor=fe,
                                       image_encoder=encoder, requires_safety_checker=False)
    else:
        pipe = StableDiffusionXLPipeline(
            vae=base.vae, text_encoder=base.text_encoder, text_encoder_2=base.text_encoder_2,
            tokenizer=base.tokenizer, tokenizer_2=base.tokenizer_2, unet=base.unet, scheduler=sched,
            image_encoder=encoder, feature_extractor=fe,
            force_zeros_for_empty_prompt=base.config.force_zeros_for_empty_prompt, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def restore(pipe, model):
    """unload_ip_adapter, then the base model's attention processors again."""
    pipe.unload_ip_adapter()
    if model == "sd1":
        pipe.unet.set_attn_processor(mg.ZeroedAttnProcessor())
    procs = pipe.unet.attn_processors
    want = mg.ZeroedAttnProcessor if model == "sd1" else AttnProcessor2_0
    assert all(type(p) is want for p in procs.values()) and pipe.unet.encoder_hid_proj is None


def run_base(bases, case):
    pipe, sched_cfg = bases[case["model"]]
    pipe.scheduler = EulerDiscreteScheduler.from_config(sched_cfg)
    with torch.no_grad():
        lat = pipe(**call_args(case), generator=torch.Generator("cpu").manual_seed(case["seed"]),
                   output_type="latent").images
    return lat.contiguous(), decode(pipe, case["model"], lat)


def load_case_adapters(pipe, case):
    files = [a[1] for a in case["adapters"]]
    pipe.load_ip_adapter(IPA_DIR, subfolder="", weight_name=files if len(files) > 1 else files[0])


def run_ip(bases, encoder, pils, case, scales=None, keep=False):
    model = case["model"]
    pipe = ip_pipeline(bases, model, encoder)
    load_case_adapters(pipe, case)
    scales = scales if scales is not None else [a[3] for a in case["adapters"]]
    pipe.set_ip_adapter_scale(scales if len(scales) > 1 else scales[0])
    # one entry per IP-Adapter: a PIL image, or a list of them (their tokens concatenated); a single adapter with a
    # single image is passed as the bare image
    images = [[pils[i] for i in a[2]] if len(a[2]) > 1 else pils[a[2][0]] for a in case["adapters"]]
    single = len(images) == 1 and not isinstance(images[0], list)
    with torch.no_grad():
        lat = pipe(**call_args(case), ip_adapter_image=images[0] if single else images,
                   generator=torch.Generator("cpu").manual_seed(case["seed"]), output_type="latent").images
    assert torch.isfinite(lat).all(), case["name"]
    img = decode(pipe, model, lat)
    if not keep:
        restore(pipe, model)
        pipe = None
    return pipe, lat.contiguous(), img


def check_loaded(pipe, case, adapters, notes):
    """What load_ip_adapter made of the files: processors, their weights, the converted projections."""
    unet = pipe.unet
    layers = ip_layers(unet)
    n = len(case["adapters"])
    for (k, lname, hidden) in layers:
        proc = unet.attn_processors[f"{lname}.processor"]
        assert type(proc) is IPAdapterAttnProcessor2_0 and len(proc.to_k_ip) == n, lname
        for i, a in enumerate(case["adapters"]):
            sd = adapters[a[0]]["ip_adapter"]
            for kv in ("k", "v"):
                w = getattr(proc, f"to_{kv}_ip")[i].weight
                assert w.dtype == torch.float32 and torch.equal(w, sd[f"{k}.to_{kv}_ip.weight"].float()), (lname, k)
                assert getattr(proc, f"to_{kv}_ip")[i].bias is None
    attn1 = {type(p).__name__ for name, p in unet.attn_processors.items() if name.endswith("attn1.processor")}
    attn2 = {type(p).__name__ for name, p in unet.attn_processors.items()
             if name.endswith("attn2.processor") and not name.startswith("encoder_hid_proj")}
    notes.append(f"{case['model']} after load_ip_adapter: attn1 processors {sorted(attn1)}, attn2 (cross-attention) "
                 f"processors {sorted(attn2)}")
    for i, a in enumerate(case["adapters"]):
        layer = unet.encoder_hid_proj.image_projection_layers[i]
        kind = ADAPTERS[a[0]]["kind"]
        assert type(layer) is (ImageProjection if kind == "plain" else IPAdapterPlusImageProjection)
        want = expected_diffusers_proj(kind, adapters[a[0]]["image_proj"])
        got = layer.state_dict()
        assert sorted(got) == sorted(want), sorted(set(got) ^ set(want))[:6]
        for k, v in want.items():
            assert got[k].dtype == torch.float32 and torch.equal(got[k], v), (a[1], k)
        if kind == "plus":
            heads = {blk.attn.heads for blk in layer.layers}
            assert heads == {adapters[a[0]]["image_proj"]["layers.0.0.to_q.weight"].shape[0] // 64} == {1}, heads
            assert len(layer.layers) == PLUS["depth"]
    return layers


def component_projections(pipes_loaded, adapters, tensors, meta, notes):
    names = []
    for name, (layer, kind, model) in pipes_loaded.items():
        src = "image_embeds" if kind == "plain" else "penultimate"
        zsrc = "zeros_image_embeds" if kind == "plain" else "zeros_penultimate"
        x = tensors[f"vis.image_encoder.{src}"]
        with torch.no_grad():
            y = layer(x)
            neg = layer(torch.zeros_like(tensors[f"vis.image_encoder.{src}"][:1]) if kind == "plain"
                        else tensors[f"vis.image_encoder.{zsrc}"])
        mine = original_forward(kind, adapters[name]["image_proj"], x)
        err = (mine - y).abs().max().item()
        assert err < 1e-5, (name, err)
        notes.append(f"proj.{name}: the original-layout maths written out here matches diffusers' converted "
                     f"{type(layer).__name__} within {err:.1e}")
        tensors[f"proj.{name}.input"] = x.contiguous()
        tensors[f"proj.{name}"] = y.contiguous()
        tensors[f"proj.{name}.negative"] = neg.contiguous()
        meta[f"proj.{name}.params"] = json.dumps(dict(
            adapter=name, kind=kind, model=model, files=[f"ip_adapter/{f}" for f in ADAPTERS[name]["files"]],
            input=f"vis.image_encoder.{src}",
            negative_input=("zeros [1, 24] (image_embeds)" if kind == "plain"
                            else "vis.image_encoder.zeros_penultimate")))
        print(f"proj.{name}: {list(x.shape)} -> {list(y.shape)} std {y.std().item():.3f}; negative "
              f"{list(neg.shape)} std {neg.std().item():.3f}")
        names.append(f"proj.{name}")
    return names


def pipeline_cases(bases, encoder, pils, adapters, tensors, meta, notes):
    latents, layers_meta, loaded = {}, {}, {}
    base_first = run_base(bases, CASES[0])
    # Scale 0: the IP-Adapter's attention is skipped.
    for case in (CASES[0], CASES[-1]):
        model = case["model"]
        pipe, lat0, _ = run_ip(bases, encoder, pils, case, scales=[0.0] * len(case["adapters"]), keep=True)
        restore(pipe, model)
        ref, _ = run_base(bases, case)
        if model == "sd1":
            # the same processors as loaded (attn2: AttnProcessor2_0's SDPA), without the IP-Adapter
            unet = bases[model][0].unet
            unet.set_attn_processor({n: (AttnProcessor2_0() if n.endswith("attn2.processor")
                                         else mg.ZeroedAttnProcessor()) for n in unet.attn_processors})
            same, _ = run_base(bases, case)
            unet.set_attn_processor(mg.ZeroedAttnProcessor())
            assert torch.equal(lat0, same), case["name"]
            err = (lat0 - ref).abs().max().item()
            assert 0 < err < 1e-3, err
            notes.append(f"{case['name']} at ip_adapter scale 0.0: bit for bit the base pipeline with attn2 set to "
                         f"AttnProcessor2_0 (as load_ip_adapter leaves it); against the base pipeline's "
                         f"ZeroedAttnProcessor (baddbmm) max |latent diff| {err:.1e}")
        else:
            assert torch.equal(lat0, ref), case["name"]
            notes.append(f"{case['name']} at ip_adapter scale 0.0: the base pipeline's latent bit for bit")
    for case in CASES:
        name, model = case["name"], case["model"]
        t0 = time.time()
        pipe, lat, img = run_ip(bases, encoder, pils, case, keep=True)
        layers = check_loaded(pipe, case, adapters, notes)
        layers_meta[model] = layers
        for i, a in enumerate(case["adapters"]):
            layer = pipe.unet.encoder_hid_proj.image_projection_layers[i]
            loaded.setdefault(a[0], {})[a[1]] = layer
        restore(pipe, model)
        ref_lat, ref_img = run_base(bases, case)
        diff = (img.float() - ref_img.float()).abs().mean().item()
        lat_diff = (lat - ref_lat).abs().mean().item()
        sat = ((img == 0) | (img == 255)).float().mean().item()
        sat0 = ((ref_img == 0) | (ref_img == 255)).float().mean().item()
        print(f"{name:13s} {model:4s} {[(a[1], a[2], a[3]) for a in case['adapters']]} cfg {case['cfg']}: mean "
              f"|image - no-IP image| {diff:.2f} (max {(img.float() - ref_img.float()).abs().max().item():.0f}), "
              f"image mean {img.float().mean().item():.1f}, saturated {sat:.1%} (without {sat0:.1%}), latent std "
              f"{lat.std().item():.3f}, mean |latent diff| {lat_diff:.3f} ({time.time() - t0:.1f} s)")
        assert diff > MIN_MEAN_DIFF, (name, diff)
        tensors[f"{name}.latent"] = lat
        tensors[f"{name}.image"] = img
        w, h = lg.SIZES[model]
        entries = [dict(adapter=a[0], file=f"ip_adapter/{a[1]}", kind=ADAPTERS[a[0]]["kind"],
                        images=[f"ip_adapter/{i}.png" for i in a[2]], scale=a[3]) for a in case["adapters"]]
        meta[f"{name}.params"] = json.dumps(dict(
            model=model, folder=FOLDERS[model], scheduler="euler", steps=case["steps"], cfg=case["cfg"],
            seed=case["seed"], prompt=case["prompt"], negative=case["negative"], width=w, height=h,
            image_encoder="ip_adapter/image_encoder", feature_extractor=dict(size=VISION["image_size"],
                                                                             crop_size=VISION["image_size"]),
            adapters=entries, mean_abs_image_diff_vs_no_ip_adapter=round(diff, 3),
            mean_abs_latent_diff_vs_no_ip_adapter=round(lat_diff, 4), saturated_fraction=round(sat, 4)))
        latents[name] = lat
    sg.assert_all_differ(latents)
    # the base pipelines are back as they were
    assert torch.equal(run_base(bases, CASES[0])[0], base_first[0]), "the base pipeline changed"
    for model, layers in layers_meta.items():
        meta[f"ip_layers.{model}"] = json.dumps([dict(key=k, layer=n, hidden=hd) for k, n, hd in layers])
    return [c["name"] for c in CASES], loaded


def check_bin_vs_safetensors(loaded, tensors, notes):
    """sd1_plus.bin and sd1_plus.safetensors load to the same projection (state and outputs, bit for bit)."""
    a, b = loaded["sd1_plus"]["sd1_plus.bin"], loaded["sd1_plus"]["sd1_plus.safetensors"]
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    x = tensors["vis.image_encoder.penultimate"]
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    notes.append("sd1_plus.bin and sd1_plus.safetensors: load_ip_adapter makes the same IPAdapterPlusImageProjection "
                 "(every tensor, and its output on vis.image_encoder.penultimate, bit for bit)")


def check_folder_load(bases, encoder, notes):
    """load_ip_adapter on a pipeline without an image encoder reads ip_adapter/image_encoder/ (h94's layout) and
    makes CLIPImageProcessor(size=32, crop_size=32)."""
    pipe = ip_pipeline(bases, "sd1", None)
    pipe.load_ip_adapter(IPA_DIR, subfolder="", weight_name="sd1_plain.safetensors")
    got, want = pipe.image_encoder.state_dict(), encoder.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    fe = pipe.feature_extractor
    assert fe.size == {"shortest_edge": 32} and fe.crop_size == {"height": 32, "width": 32}, (fe.size, fe.crop_size)
    restore(pipe, "sd1")
    notes.append("load_ip_adapter(ip_adapter/, subfolder='', weight_name=...) on a pipeline without image_encoder "
                 "loads ip_adapter/image_encoder/ (the same weights) and makes CLIPImageProcessor(size={"
                 "'shortest_edge': 32}, crop_size={'height': 32, 'width': 32})")


def main():
    t_start = time.time()
    torch.set_num_threads(1)
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    sg.check_words(CASES)
    os.makedirs(IPA_DIR, exist_ok=True)
    bases = {"sd1": lg.build_sd1(), "sdxl": lg.build_sdxl()}
    notes = []

    pils = write_images(make_images())
    encoders, enc_infos = {}, {}
    for name in ENCODERS:
        encoders[name], enc_infos[name] = write_encoder(make_encoder(name), name)
    adapters, infos = {}, {}
    for name, spec in ADAPTERS.items():
        adapters[name] = make_adapter(name, bases[spec["model"]][0].unet)
        infos[name] = write_adapter(name, adapters[name])
    for name, info in {**enc_infos, **infos}.items():
        for f, fi in info.get("files", {rel(os.path.join(IPA_DIR, name)): info}).items():
            print(f"{f}: {fi['bytes']} bytes")

    tensors = {}
    meta = dict(sg.versions(SCRIPT), git=mg.git_hash(), **{
        "scheduler_config.sd1": json.dumps(bases["sd1"][1]), "scheduler_config.sdxl": json.dumps(bases["sdxl"][1])})
    for name, info in enc_infos.items():
        meta[f"files.{name}"] = json.dumps(info)
    for name, info in infos.items():
        meta[f"files.{name}"] = json.dumps(info)
    meta["pre"] = json.dumps(pre_cases(pils, tensors, meta, notes))
    meta["vis"] = json.dumps(vision_cases(encoders, pils, tensors, meta))
    check_folder_load(bases, encoders["image_encoder"], notes)
    cases, loaded = pipeline_cases(bases, encoders["image_encoder"], pils, adapters, tensors, meta, notes)
    meta["cases"] = json.dumps(cases)
    check_bin_vs_safetensors(loaded, tensors, notes)
    layers = {name: (next(iter(loaded[name].values())), ADAPTERS[name]["kind"], ADAPTERS[name]["model"])
              for name in ADAPTERS}
    meta["proj"] = json.dumps(component_projections(layers, adapters, tensors, meta, notes))
    meta["notes"] = json.dumps(list(dict.fromkeys(notes)))
    lg.save_goldens(tensors, meta, GOLDEN)
    print("NOTES:")
    for n in dict.fromkeys(notes):
        print("  " + n)
    print(f"took {time.time() - t_start:.1f} s")


if __name__ == "__main__":
    main()
