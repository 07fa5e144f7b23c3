#!/usr/bin/env python3
"""Writes tests/data/keys/: tensor names and shapes of SD models in the diffusers and the original LDM layout.

For each case it
  1. builds the diffusers models (diffusers' UNet2DConditionModel/AutoencoderKL, transformers' CLIPTextModel)
     from a config -- the published SD 1.5 / 2.1 / inpainting configs, and tiny ones with other level counts --
     without initialising weights (nothing is computed; memory is reserved lazily), and records
     (name, shape) of their state dicts under the folder prefixes unet./vae./text_encoder.;
  2. writes the same model in the original LDM single-file layout. The names come from diffusers' own
     diffusers->LDM script (scripts/convert_diffusers_to_original_stable_diffusion.py) for the full-size SD
     layouts it hard-codes, and from `ldm_unet_name`/`ldm_vae_name` below for any layout; the script asserts
     both agree where both apply;
  3. proves the LDM list against diffusers' single-file loader: diffusers.loaders.single_file_utils
     (convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint,
     convert_open_clip_checkpoint), run on zero-stride stand-in tensors, must give back exactly the diffusers
     names and shapes of step 1, or the script fails.
The C++ tests (tests/unit/keymap_ldm_test.cpp, model_config_test.cpp, detect_test.cpp) then check that our
own map turns each LDM list into the diffusers list and that config detection recovers each config.

It also writes controlnet_sd15.ldm.json.gz: an SD 1.5 ControlNet v1.1 single file as lllyasviel's
control_v11p_sd15_*.pth hold it (see controlnet_ldm_list; used by tests/full/controlnet_test.cpp and
make_fullsize_controlnet_goldens.py). `make_key_lists.py controlnet` writes only that list; it runs in either
environment (the pip venv too: `HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_key_lists.py
controlnet`, about 5 s). `make_key_lists.py controlnet_sd21` writes only controlnet_sd21.ldm.json.gz, the same for
SD 2.1 (CONTROLNET_SD21_CASES: thibaud's community SD 2.1 ControlNets, cldm_v21.yaml's layout; used by
tests/full/controlnet_sd21_test.cpp and make_fullsize_controlnet_sd21_goldens.py), proved the same way with
SD 2.1's published UNet config; the plain run and `controlnet` do not write it. `make_key_lists.py controlnet_sdxl`
(pip venv only) writes only controlnet_sdxl.json.gz: an SDXL ControlNet in diffusers' ControlNetModel names (see
CONTROLNET_SDXL_CASES for why; used by tests/full/controlnet_sdxl_test.cpp and
make_fullsize_controlnet_sdxl_goldens.py); no other run writes it.

`make_key_lists.py ip_adapter` writes three more lists (used by make_fullsize_ip_adapter_goldens.py), in the pip
venv only (`HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_key_lists.py ip_adapter`, about 10 s;
not part of the plain run, which has not been tried with torch 1.13's diffusers processors):
  clip_vit_h14_vision.json.gz   transformers' CLIPVisionModelWithProjection with h94/IP-Adapter models/
                                image_encoder's config (OpenCLIP ViT-H/14, CLIP_VIT_H14_VISION): its state dict
                                (vision_model.*, visual_projection.weight), what save_pretrained writes; see
                                clip_vision_list for the evidence.
  ip_adapter_sd15.json.gz       h94's ip-adapter_sd15 (ImageProjModel: 4 tokens) for SD 1.5,
  ip_adapter_plus_sd15.json.gz  ip-adapter-plus_sd15 (Resampler, 16 tokens): the original file layout, keys
                                image_proj.* and ip_adapter.<K>.to_{k,v}_ip.weight; proved against diffusers' own
                                IP-Adapter loader on SD 1.5's UNet (see ip_adapter_list).
`make_key_lists.py ip_adapter_sdxl` writes the SDXL ones (used by make_fullsize_ip_adapter_sdxl_goldens.py), pip venv
only, the same way:
  clip_vit_bigg14_vision.json.gz  h94/IP-Adapter sdxl_models/image_encoder (OpenCLIP ViT-bigG/14,
                                CLIP_VIT_BIGG14_VISION), proved as clip_vit_h14_vision is;
  ip_adapter_sdxl.json.gz, ip_adapter_sdxl_vit_h.json.gz, ip_adapter_plus_sdxl_vit_h.json.gz
                                IP_ADAPTER_SDXL_CASES, proved against diffusers' loader on SDXL base's UNet.

Run:  source /work/refenv/env.sh && /usr/bin/python3 tools/reference/make_key_lists.py
Pinned: diffusers v0.30.3, transformers 4.40 (see /work/refenv/VERSIONS), torch 1.13.1.
"""
import gzip
import importlib.util
import json
import os
import sys

import torch

import diffusers
import transformers
from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
from diffusers.loaders import single_file_utils as sfu
from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection
from transformers.modeling_utils import no_init_weights

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "keys")

# --- published configs (huggingface.co model repos; the keys diffusers/transformers read) -------------------
SD15_UNET = {
    "_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": False, "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}  # runwayml/stable-diffusion-v1-5 unet/config.json
SD21_UNET = dict(SD15_UNET, **{
    "attention_head_dim": [5, 10, 20, 20], "cross_attention_dim": 1024, "dual_cross_attention": False,
    "num_class_embeds": None, "only_cross_attention": False, "sample_size": 96, "upcast_attention": True,
    "use_linear_projection": True,
})  # stabilityai/stable-diffusion-2-1 unet/config.json
SD15_INPAINT_UNET = dict(SD15_UNET, in_channels=9)  # runwayml/stable-diffusion-inpainting
SD2_INPAINT_UNET = dict(SD21_UNET, in_channels=9, sample_size=64, upcast_attention=False)  # stabilityai/stable-diffusion-2-inpainting
SD_VAE = {
    "_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "in_channels": 3, "latent_channels": 4, "layers_per_block": 2,
    "norm_num_groups": 32, "out_channels": 3, "sample_size": 512, "up_block_types": ["UpDecoderBlock2D"] * 4,
}  # runwayml/stable-diffusion-v1-5 vae/config.json (2.x: identical but sample_size 768)
CLIP_L = {
    "architectures": ["CLIPTextModel"], "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0,
    "eos_token_id": 2, "hidden_act": "quick_gelu", "hidden_size": 768, "initializer_factor": 1.0,
    "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05, "max_position_embeddings": 77,
    "model_type": "clip_text_model", "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1,
    "projection_dim": 768, "vocab_size": 49408,
}  # runwayml/stable-diffusion-v1-5 text_encoder/config.json
OPEN_CLIP_H = dict(CLIP_L, **{
    "hidden_act": "gelu", "hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
    "num_hidden_layers": 23, "projection_dim": 512,
})  # stabilityai/stable-diffusion-2-1 text_encoder/config.json

# --- tiny configs: other level counts, layers per block, depths, attention placement -----------------------
TINY_A_UNET = {
    "block_out_channels": [32, 64], "layers_per_block": 1, "norm_num_groups": 8, "cross_attention_dim": 128,
    "attention_head_dim": 2, "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "sample_size": 8,
}
TINY_A_VAE = {"block_out_channels": [16, 32], "layers_per_block": 1, "norm_num_groups": 8, "latent_channels": 4,
              "down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2}
TINY_A_TEXT = {"vocab_size": 1000, "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
               "num_attention_heads": 2, "max_position_embeddings": 16, "hidden_act": "quick_gelu"}
TINY_B_UNET = {
    "block_out_channels": [16, 32, 48], "layers_per_block": 3, "norm_num_groups": 4, "cross_attention_dim": 64,
    "attention_head_dim": [2, 4, 4], "transformer_layers_per_block": [1, 2, 2], "use_linear_projection": True,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"], "in_channels": 9, "sample_size": 8,
}
TINY_B_VAE = {"block_out_channels": [8, 16, 16], "layers_per_block": 3, "norm_num_groups": 4, "latent_channels": 4,
              "down_block_types": ["DownEncoderBlock2D"] * 3, "up_block_types": ["UpDecoderBlock2D"] * 3,
              "mid_block_add_attention": False}
TINY_B_TEXT = {"vocab_size": 500, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
               "num_attention_heads": 1, "max_position_embeddings": 16, "hidden_act": "gelu"}

# (name, unet, vae, text, text layout, family, stored OpenCLIP layers, dtype)
CASES = [
    ("sd15", SD15_UNET, SD_VAE, CLIP_L, "clip", "sd1", None, "float32"),
    ("sd21", SD21_UNET, dict(SD_VAE, sample_size=768), OPEN_CLIP_H, "open_clip", "sd2", 24, "float16"),
    ("sd15_inpaint", SD15_INPAINT_UNET, SD_VAE, CLIP_L, "clip", "sd1-inpaint", None, "float32"),
    ("sd2_inpaint", SD2_INPAINT_UNET, SD_VAE, OPEN_CLIP_H, "open_clip", "sd2-inpaint", 24, "float16"),
    ("tiny_a", TINY_A_UNET, TINY_A_VAE, TINY_A_TEXT, "clip", "sd1", None, "float32"),
    ("tiny_b", TINY_B_UNET, TINY_B_VAE, TINY_B_TEXT, "open_clip", "sd2-inpaint", 3, "bfloat16"),
]

# Buffers ldm's LatentDiffusion stores beside the weights (v1-5-pruned-emaonly and the SD 2 checkpoints carry them).
SCHEDULE_BUFFERS = ["betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
                    "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
                    "posterior_mean_coef1", "posterior_mean_coef2"]


def stand_in(shape):
    """A tensor of `shape` that owns one element (zero strides): enough for name/shape conversion code."""
    return torch.zeros(()).expand(*shape) if len(shape) else torch.zeros(())


def build(cls, cfg, **kw):
    with no_init_weights():  # also stubs torch.nn.init, so nothing touches the (lazily reserved) memory
        if cls is CLIPTextModel:
            return CLIPTextModel(CLIPTextConfig(**{k: v for k, v in cfg.items() if k != "architectures"}))
        return cls(**{k: v for k, v in cfg.items() if not k.startswith("_")}, **kw)


def shapes(module):
    return {k: list(v.shape) for k, v in module.state_dict().items()}


# --- our diffusers -> LDM names, for any layout (diffusers' script only knows SD's 4x2) -----------------------
RESNET_TO_LDM = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                 ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]


def ldm_unet_name(name, levels, lpb):
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    head, leaf = name.rsplit(".", 1)
    if head in fixed:
        return f"{fixed[head]}.{leaf}"
    p = name.split(".")

    def resnet(rest):
        for d, l in RESNET_TO_LDM:
            if rest.startswith(d + "."):
                return l + rest[len(d):]
        raise ValueError(name)

    if p[0] == "down_blocks":
        b = int(p[1])
        if p[2] == "downsamplers":
            return f"input_blocks.{1 + b * (lpb + 1) + lpb}.0.op.{p[-1]}"
        i = 1 + b * (lpb + 1) + int(p[3])
        rest = ".".join(p[4:])
        return f"input_blocks.{i}.0.{resnet(rest)}" if p[2] == "resnets" else f"input_blocks.{i}.1.{rest}"
    if p[0] == "mid_block":
        rest = ".".join(p[3:])
        return f"middle_block.{2 * int(p[2])}.{resnet(rest)}" if p[1] == "resnets" else f"middle_block.1.{rest}"
    if p[0] == "up_blocks":
        b = int(p[1])
        if p[2] == "upsamplers":
            return ("UPSAMPLER", b, p[-1])
        i = b * (lpb + 1) + int(p[3])
        rest = ".".join(p[4:])
        return f"output_blocks.{i}.0.{resnet(rest)}" if p[2] == "resnets" else f"output_blocks.{i}.1.{rest}"
    raise ValueError(name)


def ldm_unet_names(diff, levels, lpb):
    out = {}
    for k, shape in diff.items():
        n = ldm_unet_name(k, levels, lpb)
        if isinstance(n, tuple):
            _, b, leaf = n
            i = b * (lpb + 1) + lpb
            has_attn = any(x.startswith(f"up_blocks.{b}.attentions.") for x in diff)
            n = f"output_blocks.{i}.{2 if has_attn else 1}.conv.{leaf}"
        out[n] = shape
    return out


def ldm_vae_names(diff, levels):
    out = {}
    for k, shape in diff.items():
        n = k
        for d, l in [("encoder.conv_norm_out", "encoder.norm_out"), ("decoder.conv_norm_out", "decoder.norm_out")]:
            n = n.replace(d, l)
        p = n.split(".")
        if p[1] == "down_blocks":
            if p[3] == "downsamplers":
                n = f"encoder.down.{p[2]}.downsample.conv.{p[-1]}"
            else:
                n = f"encoder.down.{p[2]}.block.{p[4]}." + ".".join(p[5:])
        elif p[1] == "up_blocks":
            lvl = levels - 1 - int(p[2])
            if p[3] == "upsamplers":
                n = f"decoder.up.{lvl}.upsample.conv.{p[-1]}"
            else:
                n = f"decoder.up.{lvl}.block.{p[4]}." + ".".join(p[5:])
        elif p[1] == "mid_block":
            if p[2] == "resnets":
                n = f"{p[0]}.mid.block_{int(p[3]) + 1}." + ".".join(p[4:])
            else:
                m = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out": "proj_out"}[p[4]]
                n = f"{p[0]}.mid.attn_1.{m}.{p[-1]}"
                if p[-1] == "weight" and m != "norm":
                    shape = shape + [1, 1]  # ldm's AttnBlock uses 1x1 convs
        n = n.replace("conv_shortcut", "nin_shortcut")
        out[n] = shape
    return out


def load_diffusers_script():
    path = os.path.join(os.path.dirname(diffusers.__file__), "..", "..", "scripts",
                        "convert_diffusers_to_original_stable_diffusion.py")
    spec = importlib.util.spec_from_file_location("d2o", os.path.abspath(path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --- ControlNet v1.1 (lllyasviel's cldm single-file layout) --------------------------------------------------
# lllyasviel/control_v11p_sd15_canny config.json (= ControlNetModel.from_unet(SD 1.5's UNet) with these channels):
# cldm's input_hint_block, 3 -> 16 -> 16 -> 32 (s2) -> 32 -> 96 (s2) -> 96 -> 256 (s2) -> 320.
CONTROLNET_COND_CHANNELS = (16, 32, 96, 256)
# lllyasviel's ControlNet-v1-1 .pth files store the ControlNet as ControlLDM's `control_model` submodule: every key
# starts with "control_model." (the nightly repo's gradio_*.py load them with strict=False into ControlLDM, which
# would silently skip bare keys; diffusers' infer_diffusers_model_type recognises a ControlNet file only by
# "control_model.time_embed.0.weight", and its single-file test loads control_v11p_sd15_canny.pth without a config).
# Files without the prefix are later extractions (sd-webui-controlnet's extract_controlnet.py strips it).
CONTROLNET_PREFIX = "control_model."
# (name, base UNet config, conditioning embedding channels, key prefix, dtype: the .pth files are float32)
CONTROLNET_CASES = [("controlnet_sd15", SD15_UNET, CONTROLNET_COND_CHANNELS, CONTROLNET_PREFIX, "float32")]
# SD 2.1 ControlNets (`make_key_lists.py controlnet_sd21`, used by make_fullsize_controlnet_sd21_goldens.py): there
# is no official one (lllyasviel, ControlNet-v1-1-nightly issue 56: "2.1 models are only available from community
# implementations"); the community's (thibaud's controlnet_sd21 / control_v11p_sd21_*) were trained with
# lllyasviel's cldm code and load in AUTOMATIC1111's extension with its models/cldm_v21.yaml: cldm.cldm.ControlNet
# with SD 2's UNet settings (use_linear_in_transformer, context_dim 1024, num_head_channels 64, legacy False) and the
# same hint_channels 3 / input_hint_block (16, 16, 32, 32, 96, 96, 256) as SD 1.5's. So the layout is the SD 1.5
# list's with SD 2.1's encoder: ControlNetModel.from_unet(SD 2.1's UNet, the same conditioning channels), linear
# proj_in/proj_out, 1024-wide attn2 to_k/to_v. Assumed, not read from a real file: the "control_model." prefix
# (what ControlLDM's state dict gives; loaders strip it or not alike) and fp16 (the community's .safetensors are
# taken to be fp16: 364 M parameters, 728 MB; not checked). The dtype of a key list is informative only.
CONTROLNET_SD21_CASES = [("controlnet_sd21", SD21_UNET, CONTROLNET_COND_CHANNELS, CONTROLNET_PREFIX, "float16")]


def build_controlnet(unet_cfg, cond_channels):
    """diffusers' ControlNetModel.from_unet(the UNet of unet_cfg), weights neither initialised nor copied."""
    unet = build(UNet2DConditionModel, unet_cfg)
    with no_init_weights():
        return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=tuple(cond_channels),
                                         load_weights_from_unet=False)


def ldm_controlnet_name(name, levels, lpb, hint_blocks):
    """diffusers ControlNetModel name -> cldm ControlNet name (no prefix). The encoder half is the UNet's
    (ldm_unet_name); the rest is the ControlNet's own: controlnet_cond_embedding.conv_in / blocks.k / conv_out ->
    input_hint_block.0 / .{2k+2} / .{2 * hint_blocks + 2} (the SiLUs sit at the odd indices; 14 for SD 1.5),
    controlnet_down_blocks.i -> zero_convs.i.0, controlnet_mid_block -> middle_block_out.0."""
    head, leaf = name.rsplit(".", 1)
    p = head.split(".")
    if head == "controlnet_cond_embedding.conv_in":
        return f"input_hint_block.0.{leaf}"
    if head == "controlnet_cond_embedding.conv_out":
        return f"input_hint_block.{2 * hint_blocks + 2}.{leaf}"
    if p[0] == "controlnet_cond_embedding" and p[1] == "blocks":
        return f"input_hint_block.{2 * int(p[2]) + 2}.{leaf}"
    if p[0] == "controlnet_down_blocks":
        return f"zero_convs.{p[1]}.0.{leaf}"
    if head == "controlnet_mid_block":
        return f"middle_block_out.0.{leaf}"
    n = ldm_unet_name(name, levels, lpb)
    assert isinstance(n, str), name  # a ControlNet has no up blocks
    return n


def controlnet_ldm_list(unet_cfg, cond_channels, prefix):
    """(LDM {name: shape} in the order of the diffusers state dict, diffusers {name: shape}, ControlNetModel config),
    proved against diffusers' own single-file converter: convert_controlnet_checkpoint must give back exactly the
    diffusers names and shapes, each from the LDM tensor our map names (checked with stand-ins that carry their
    index), with the prefix and without it; and infer_diffusers_model_type must call the prefixed list a
    ControlNet."""
    cn = build_controlnet(unet_cfg, cond_channels)
    diff = shapes(cn)
    config = dict(cn.config)
    del cn
    levels, lpb = len(unet_cfg["block_out_channels"]), unet_cfg.get("layers_per_block", 2)
    hint_blocks = len({k.split(".")[2] for k in diff if k.startswith("controlnet_cond_embedding.blocks.")})
    assert hint_blocks == 2 * (len(cond_channels) - 1), hint_blocks
    ldm = {}
    for k, s in diff.items():
        n = prefix + ldm_controlnet_name(k, levels, lpb, hint_blocks)
        assert n not in ldm, (k, n)
        ldm[n] = s
    index = {n: i for i, n in enumerate(ldm)}
    source_of = {k: prefix + ldm_controlnet_name(k, levels, lpb, hint_blocks) for k in diff}
    for pre in dict.fromkeys((prefix, "")):
        ck = {n[len(prefix):] if pre == "" else n: torch.full((), float(i)).expand(*s) for n, i, s in
              ((n, index[n], ldm[n]) for n in ldm)}
        conv = sfu.convert_controlnet_checkpoint(ck, dict(config))
        got = {k: list(v.shape) for k, v in conv.items() if v is not None}
        if got != diff or any(v is None for v in conv.values()):
            missing = sorted(set(diff) - set(got))[:10]
            extra = sorted(set(got) - set(diff))[:10]
            bad = [k for k in diff if k in got and got[k] != diff[k]][:10]
            sys.exit(f"controlnet (prefix {pre!r}): diffusers' convert_controlnet_checkpoint does not turn our LDM "
                     f"list into ControlNetModel: missing {missing} extra {extra} shape {bad}")
        wrong = [k for k, v in conv.items() if int(v.reshape(-1)[0].item()) != index[source_of[k]]]
        if wrong:
            sys.exit(f"controlnet (prefix {pre!r}): diffusers takes {wrong[:5]} from other LDM names than ours")
    if prefix:
        assert sfu.infer_diffusers_model_type({n: stand_in(s) for n, s in ldm.items()}) == "controlnet"
    return ldm, diff, config


def write_controlnet_lists(cases=CONTROLNET_CASES):
    for name, unet_cfg, cond_channels, prefix, dtype in cases:
        ldm, diff, _ = controlnet_ldm_list(unet_cfg, cond_channels, prefix)
        source = (f"tools/reference/make_key_lists.py case {name}; diffusers {diffusers.__version__}, transformers "
                  f"{transformers.__version__}, torch {torch.__version__}; LDM layout (lllyasviel's cldm ControlNet, "
                  f"prefix {prefix!r})")
        write_list(os.path.join(OUT, f"{name}.ldm.json.gz"), ldm, dtype, source)
        print(f"{name}: {len(ldm)} LDM names -> {len(diff)} diffusers names, verified against "
              f"convert_controlnet_checkpoint (with and without the prefix, each tensor from the name we map it to)")


# --- SDXL ControlNet (diffusers' ControlNetModel names) ------------------------------------------------------
# `make_key_lists.py controlnet_sdxl` (pip venv only; used by make_fullsize_controlnet_sdxl_goldens.py and
# tests/full/controlnet_sdxl_test.cpp) writes controlnet_sdxl.json.gz: ControlNetModel.from_unet(SDXL base 1.0's
# UNet (make_sdxl_key_lists.SDXL_BASE_UNET, its published unet/config.json), conditioning_embedding_out_channels
# (16, 32, 96, 256)): the names, shapes and state-dict order of its state dict, in DIFFUSERS names, no prefix.
# Why diffusers' names and not an original layout: SDXL had no cldm release; the SDXL ControlNets people download are
# mostly diffusers-trained (diffusers/controlnet-canny-sdxl-1.0 and its -depth / -small siblings, xinsir's
# controlnet-canny/-openpose/-union-sdxl-1.0, ...), published as a diffusers folder (config.json +
# diffusion_pytorch_model[.fp16].safetensors) or as that safetensors file alone, renamed. Others differ (stabilityai's
# control-lora files, kohya's sd-scripts ControlNets, the union model's extra blocks) and are not this list. Assumed,
# not read from a real file: the full-size layout is what from_unet gives with these conditioning channels (the
# diffusers training script's default, the canny/depth models' config.json) and fp16 (the .fp16 variants; a key
# list's dtype is informative only). Checked here: each name outside controlnet_cond_embedding.* /
# controlnet_down_blocks.* / controlnet_mid_block.* is a name of the SDXL UNet with the same shape (the encoder
# half is the UNet's), and load_state_dict(strict) of the list into a ControlNetModel built from the list's config.
CONTROLNET_SDXL_CASES = [("controlnet_sdxl", CONTROLNET_COND_CHANNELS, "float16")]


def write_controlnet_sdxl_lists():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import make_sdxl_key_lists as kl  # the published SDXL configs (imported here only: the other lists need not)
    for name, cond_channels, dtype in CONTROLNET_SDXL_CASES:
        diff, config = controlnet_sdxl_list(kl.SDXL_BASE_UNET, cond_channels)
        source = (f"tools/reference/make_key_lists.py case {name}; diffusers {diffusers.__version__}, transformers "
                  f"{transformers.__version__}, torch {torch.__version__}; diffusers layout (ControlNetModel."
                  f"from_unet(SDXL base 1.0's UNet, conditioning_embedding_out_channels {tuple(cond_channels)}), "
                  f"no prefix)")
        write_list(os.path.join(OUT, f"{name}.json.gz"), diff, dtype, source)
        print(f"{name}: {len(diff)} diffusers names, {sum(math_prod(s) for s in diff.values())} parameters")


def controlnet_sdxl_list(unet_cfg, cond_channels):
    """(diffusers {name: shape} in state-dict order, ControlNetModel config) of from_unet(unet_cfg), on the meta
    device (nothing allocated), with the checks of the comment above."""
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config({k: v for k, v in unet_cfg.items() if not k.startswith("_")})
        cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=tuple(cond_channels),
                                       load_weights_from_unet=False)
    diff, u = shapes(cn), shapes(unet)
    own = ("controlnet_cond_embedding.", "controlnet_down_blocks.", "controlnet_mid_block.")
    for k, s in diff.items():
        if not k.startswith(own):
            assert u.get(k) == s, (k, s, u.get(k))
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cn.config.items() if not k.startswith("_")}
    with torch.device("meta"):
        again = ControlNetModel.from_config(config)
    missing, unexpected = again.load_state_dict({k: torch.empty(s, device="meta") for k, s in diff.items()},
                                                strict=True, assign=True)
    assert not missing and not unexpected and shapes(again) == diff
    return diff, config


# --- IP-Adapter (h94/IP-Adapter: the image encoder and the SD 1.5 adapters) ---------------------------------
# h94/IP-Adapter models/image_encoder/config.json: OpenCLIP ViT-H/14's image tower as transformers'
# CLIPVisionModelWithProjection (the encoder of every SD 1.5 IP-Adapter and of the SDXL "vit-h" ones).
CLIP_VIT_H14_VISION = {
    "architectures": ["CLIPVisionModelWithProjection"], "attention_dropout": 0.0, "dropout": 0.0,
    "hidden_act": "gelu", "hidden_size": 1280, "image_size": 224, "initializer_factor": 1.0,
    "initializer_range": 0.02, "intermediate_size": 5120, "layer_norm_eps": 1e-05,
    "model_type": "clip_vision_model", "num_attention_heads": 16, "num_channels": 3, "num_hidden_layers": 32,
    "patch_size": 14, "projection_dim": 1024,
}
# ip-adapter_sd15: ImageProjModel, clip_extra_context_tokens 4: proj Linear(1024 -> 4 * 768), norm LayerNorm(768).
IP_ADAPTER_PLAIN_TOKENS = 4
# ip-adapter-plus_sd15: the original Resampler(dim=768, depth=4, dim_head=64, heads=12, num_queries=16,
# embedding_dim=1280 (the encoder's hidden width: it reads the penultimate hidden states), output_dim=768,
# ff_mult=4), names as its state dict has them: latents, proj_in, proj_out, norm_out, layers.<i>.0 (PerceiverAttention:
# norm1 on the image features, norm2 on the latents, to_q, to_kv (k rows first, then v), to_out, all without bias),
# layers.<i>.1 (FeedForward: 0 LayerNorm, 1 Linear(768 -> 3072) no bias, 2 GELU, 3 Linear(3072 -> 768) no bias).
IP_ADAPTER_PLUS = dict(dim=768, depth=4, dim_head=64, heads=12, num_queries=16, embedding_dim=1280, output_dim=768,
                       ff_mult=4)
# (name, kind, base UNet config, encoder config, dtype of the published file)
# The dtype column is what the published files hold (informative only: random_checkpoint writes F16 anyway):
# models/image_encoder/model.safetensors is float32 (2.53 GB for 632 M parameters), the adapters float16
# (ip-adapter_sd15 22.3 M parameters, 44.6 MB; ip-adapter-plus_sd15 49.1 M, 98 MB).
IP_ADAPTER_CASES = [("ip_adapter_sd15", "plain", SD15_UNET, CLIP_VIT_H14_VISION, "float16"),
                    ("ip_adapter_plus_sd15", "plus", SD15_UNET, CLIP_VIT_H14_VISION, "float16")]
# h94/IP-Adapter sdxl_models/image_encoder/config.json: OpenCLIP ViT-bigG/14's image tower (1.84 B parameters:
# 48 layers of width 1664, 16 heads of 104, projection 1280), the encoder of ip-adapter_sdxl.
CLIP_VIT_BIGG14_VISION = dict(CLIP_VIT_H14_VISION, hidden_size=1664, intermediate_size=8192, num_hidden_layers=48,
                              projection_dim=1280)
# ip-adapter-plus_sdxl_vit-h: Resampler(dim=1280, depth=4, dim_head=64, heads=20, num_queries=16,
# embedding_dim=1280 (ViT-H's width), output_dim=2048 (SDXL's cross-attention width), ff_mult=4).
IP_ADAPTER_PLUS_SDXL = dict(IP_ADAPTER_PLUS, dim=1280, heads=20, output_dim=2048)
# The SDXL adapters (sdxl_models/ in h94/IP-Adapter): ip-adapter_sdxl (bigG's image_embeds, 1280 -> 4 x 2048),
# ip-adapter_sdxl_vit-h (ViT-H's, 1024 -> 4 x 2048) and ip-adapter-plus_sdxl_vit-h (ViT-H's penultimate states);
# (name, kind, encoder key list, encoder config, Resampler config or None, dtype of the published file: float16).
IP_ADAPTER_SDXL_CASES = [
    ("ip_adapter_sdxl", "plain", "clip_vit_bigg14_vision", CLIP_VIT_BIGG14_VISION, None, "float16"),
    ("ip_adapter_sdxl_vit_h", "plain", "clip_vit_h14_vision", CLIP_VIT_H14_VISION, None, "float16"),
    ("ip_adapter_plus_sdxl_vit_h", "plus", "clip_vit_h14_vision", CLIP_VIT_H14_VISION, IP_ADAPTER_PLUS_SDXL,
     "float16"),
]


def build_vision(cfg):
    with no_init_weights():  # nothing initialised; the parameters' memory is reserved lazily, never touched
        return CLIPVisionModelWithProjection(CLIPVisionConfig(**{k: v for k, v in cfg.items() if k != "architectures"}))


def clip_vision_list(cfg):
    """{name: shape} of CLIPVisionModelWithProjection(cfg) as save_pretrained writes it (state-dict order), proved:
    the model's state dict has no position_ids (a non-persistent buffer in transformers 4.40; older exports that
    carry it load anyway: from_pretrained drops a stored buffer silently) and nothing save_pretrained leaves out
    (no tied or ignored-on-save keys); and a shallower model of the same widths (2 layers), written with save_pretrained
    (safetensors) and read back with from_pretrained, stores exactly the list's names and shapes for those layers
    and loads with no missing or unexpected key."""
    import tempfile
    model = build_vision(cfg)
    names = shapes(model)
    assert not any(k.endswith("position_ids") for k in names)
    assert not getattr(model, "_keys_to_ignore_on_save", None) and not getattr(model, "_tied_weights_keys", None)
    assert "vision_model.embeddings.position_ids" in dict(model.named_buffers())  # the buffer, not stored
    layers = cfg["num_hidden_layers"]
    del model
    small_cfg = dict(cfg, num_hidden_layers=2)
    small = build_vision(small_cfg)
    with torch.no_grad():
        for p in small.parameters():
            p.zero_()  # defined values (the file is written from them)
    with tempfile.TemporaryDirectory() as tmp:
        small.save_pretrained(tmp, safe_serialization=True)
        from safetensors import safe_open
        with safe_open(os.path.join(tmp, "model.safetensors"), "pt") as f:
            stored = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
        back, info = CLIPVisionModelWithProjection.from_pretrained(tmp, output_loading_info=True)
    want = {k: s for k, s in names.items()
            if not k.startswith("vision_model.encoder.layers.") or int(k.split(".")[3]) < 2}
    assert stored == want, sorted(set(stored) ^ set(want))[:6]
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    assert {k: list(v.shape) for k, v in back.state_dict().items()} == want
    assert len({k.split(".")[3] for k in names if k.startswith("vision_model.encoder.layers.")}) == layers
    return names


def ip_adapter_image_proj_list(kind, cross_dim, enc_cfg, plus=IP_ADAPTER_PLUS):
    """{name: shape} of the original image_proj (no prefix), in the original module's state-dict order; plus: the
    Resampler's config (kind "plus")."""
    if kind == "plain":
        return {"proj.weight": [IP_ADAPTER_PLAIN_TOKENS * cross_dim, enc_cfg["projection_dim"]],
                "proj.bias": [IP_ADAPTER_PLAIN_TOKENS * cross_dim], "norm.weight": [cross_dim],
                "norm.bias": [cross_dim]}
    r = plus
    assert r["output_dim"] == cross_dim and r["embedding_dim"] == enc_cfg["hidden_size"]
    dim, inner, ff = r["dim"], r["dim_head"] * r["heads"], r["dim"] * r["ff_mult"]
    out = {"latents": [1, r["num_queries"], dim], "proj_in.weight": [dim, r["embedding_dim"]],
           "proj_in.bias": [dim], "proj_out.weight": [r["output_dim"], dim], "proj_out.bias": [r["output_dim"]],
           "norm_out.weight": [r["output_dim"]], "norm_out.bias": [r["output_dim"]]}
    for i in range(r["depth"]):
        p = f"layers.{i}"
        out.update({f"{p}.0.norm1.weight": [dim], f"{p}.0.norm1.bias": [dim], f"{p}.0.norm2.weight": [dim],
                    f"{p}.0.norm2.bias": [dim], f"{p}.0.to_q.weight": [inner, dim],
                    f"{p}.0.to_kv.weight": [2 * inner, dim], f"{p}.0.to_out.weight": [dim, inner],
                    f"{p}.1.0.weight": [dim], f"{p}.1.0.bias": [dim], f"{p}.1.1.weight": [ff, dim],
                    f"{p}.1.3.weight": [dim, ff]})
    return out


def ip_adapter_layers(unet):
    """[(K, attention module name, width)] for every cross-attention (attn2) of the UNet, in attn_processors order
    (down_blocks, up_blocks, mid_block: the order UNet2DConditionModel.__init__ registers its children): K = 1, 3,
    5, ... (the original code numbered every attention processor, attn1 even, attn2 odd; diffusers'
    _convert_ip_adapter_attn_to_diffusers counts key_id from 1 in steps of 2 over the attn2 processors). width =
    the layer's to_k out_features (its block's width)."""
    out, key_id = [], 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor") or name.startswith("encoder_hid_proj."):
            continue  # (a loaded IP-Adapter Plus's resampler shows its own attention processors)
        assert name.endswith("attn2.processor"), name
        attn = unet.get_submodule(name[: -len(".processor")])
        assert attn.to_k.in_features == unet.config.cross_attention_dim
        out.append((key_id, name[: -len(".processor")], attn.to_k.out_features))
        key_id += 2
    return out


def ip_adapter_diffusers_names(kind, name):
    """Original image_proj name (no prefix) -> [(diffusers name, row chunk of 2 or None)]: where diffusers 0.30.3's
    loader puts it (ImageProjection / IPAdapterPlusImageProjection)."""
    if kind == "plain":
        return [(name.replace("proj.", "image_embeds."), None)]
    p = name.split(".")
    if p[0] != "layers":
        return [(name, None)]
    i, sub, rest = p[1], p[2], ".".join(p[3:])
    if sub == "0":
        if rest.startswith("norm1.") or rest.startswith("norm2."):
            return [(f"layers.{i}.ln{int(rest[4]) - 1}.{rest.split('.')[1]}", None)]
        if rest == "to_kv.weight":
            return [(f"layers.{i}.attn.to_k.weight", 0), (f"layers.{i}.attn.to_v.weight", 1)]
        return [({"to_q.weight": f"layers.{i}.attn.to_q.weight",
                  "to_out.weight": f"layers.{i}.attn.to_out.0.weight"}[rest], None)]
    idx, leaf = rest.split(".")
    return [(f"layers.{i}.{ {'0': 'ff.0', '1': 'ff.1.net.0.proj', '3': 'ff.1.net.2'}[idx]}.{leaf}", None)]


class _Recording(dict):
    """A dict that remembers which keys were read."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.read = set()

    def __getitem__(self, k):
        self.read.add(k)
        return super().__getitem__(k)


def ip_adapter_list(kind, unet_cfg, enc_cfg, plus=IP_ADAPTER_PLUS):
    """(original {name: shape}: image_proj.* then ip_adapter.<K>.to_k_ip / to_v_ip by K, [(K, layer, width)]),
    proved against diffusers' own loader on the UNet of unet_cfg with stand-ins that carry their list index:
    _convert_ip_adapter_attn_to_diffusers must read every ip_adapter.* key and put each into the processor of the
    layer ip_adapter_layers names (to_k_ip.0 / to_v_ip.0, Linear(cross_attention_dim -> width), strict load);
    _convert_ip_adapter_image_proj_to_diffusers must build the expected module (ImageProjection with 4 tokens, or
    IPAdapterPlusImageProjection with 12 heads, 4 layers, 16 queries) and load the image_proj.* keys strictly,
    each diffusers tensor from the original name ip_adapter_diffusers_names maps it from; and
    _load_ip_adapter_weights (what load_ip_adapter calls) must go through, leaving every cross-attention with an
    IP-Adapter processor of this many tokens. plus: the Resampler's config (kind "plus")."""
    unet = build(UNet2DConditionModel, unet_cfg)
    cross = unet_cfg["cross_attention_dim"]
    layers = ip_adapter_layers(unet)
    proj = ip_adapter_image_proj_list(kind, cross, enc_cfg, plus)
    names = {"image_proj." + k: s for k, s in proj.items()}
    for k, _, width in layers:
        names[f"ip_adapter.{k}.to_k_ip.weight"] = [width, cross]
        names[f"ip_adapter.{k}.to_v_ip.weight"] = [width, cross]
    index = {n: i for i, n in enumerate(names)}

    def standins():
        sd = {"image_proj": _Recording(), "ip_adapter": _Recording()}
        for n, s in names.items():
            part, rest = n.split(".", 1)
            dict.__setitem__(sd[part], rest, torch.full((), float(index[n])).expand(*s))
        return sd

    def source(t):
        v = t.detach().reshape(-1)
        assert v.min().item() == v.max().item()
        return int(v[0].item())

    sd = standins()
    procs = unet._convert_ip_adapter_attn_to_diffusers([sd], low_cpu_mem_usage=False)
    assert sd["ip_adapter"].read == set(sd["ip_adapter"]), sorted(set(sd["ip_adapter"]) - sd["ip_adapter"].read)[:4]
    tokens = IP_ADAPTER_PLAIN_TOKENS if kind == "plain" else plus["num_queries"]
    for k, lname, width in layers:
        proc = procs[lname + ".processor"]
        assert list(proc.num_tokens) == [tokens], (lname, proc.num_tokens)
        for kv in ("k", "v"):
            lin = getattr(proc, f"to_{kv}_ip")[0]
            assert list(lin.weight.shape) == [width, cross] and lin.bias is None, lname
            assert source(lin.weight) == index[f"ip_adapter.{k}.to_{kv}_ip.weight"], (lname, kv)
    image_proj = unet._convert_ip_adapter_image_proj_to_diffusers(sd["image_proj"], low_cpu_mem_usage=False)
    got = image_proj.state_dict()
    want_src = {}
    for n in proj:
        for dn, chunk in ip_adapter_diffusers_names(kind, n):
            want_src[dn] = (index["image_proj." + n], chunk)
    assert sorted(got) == sorted(want_src), sorted(set(got) ^ set(want_src))[:6]
    for dn, (src, chunk) in want_src.items():
        assert source(got[dn]) == src, dn
    from diffusers.models.embeddings import ImageProjection, IPAdapterPlusImageProjection
    if kind == "plain":
        assert type(image_proj) is ImageProjection and image_proj.num_image_text_embeds == tokens
    else:
        r = plus
        assert type(image_proj) is IPAdapterPlusImageProjection and len(image_proj.layers) == r["depth"]
        assert {blk.attn.heads for blk in image_proj.layers} == {r["heads"]}
        assert list(image_proj.latents.shape) == [1, r["num_queries"], r["dim"]]
    del procs, image_proj, got
    sd = standins()
    unet._load_ip_adapter_weights([sd], low_cpu_mem_usage=False)
    ip_procs = {n: p for n, p in unet.attn_processors.items()
                if n.endswith("attn2.processor") and not n.startswith("encoder_hid_proj.")}
    assert len(ip_procs) == len(layers) and all(list(p.num_tokens) == [tokens] for p in ip_procs.values())
    assert len(unet.encoder_hid_proj.image_projection_layers) == 1
    del unet
    return names, layers


def write_vision_list(name, cfg, dtype, what):
    """An image tower's list (clip_vision_list's, proved there) as tests/data/keys/<name>.json.gz."""
    enc = clip_vision_list(cfg)
    source = (f"tools/reference/make_key_lists.py case {name}; diffusers {diffusers.__version__}, "
              f"transformers {transformers.__version__}, torch {torch.__version__}; transformers "
              f"CLIPVisionModelWithProjection ({what})")
    write_list(os.path.join(OUT, f"{name}.json.gz"), enc, dtype, source, {"config": json.dumps(cfg, sort_keys=True)})
    print(f"{name}: {len(enc)} tensors, {sum(math_prod(s) for s in enc.values())} parameters; "
          f"= save_pretrained's keys (checked at depth 2, from_pretrained loads them all)")


def write_adapter_list(name, kind, base, unet_cfg, enc_name, enc_cfg, plus, dtype):
    """An IP-Adapter's list (ip_adapter_list's, proved there against diffusers' loader on unet_cfg's UNet)."""
    names, layers = ip_adapter_list(kind, unet_cfg, enc_cfg, plus or IP_ADAPTER_PLUS)
    source = (f"tools/reference/make_key_lists.py case {name}; diffusers {diffusers.__version__}, transformers "
              f"{transformers.__version__}, torch {torch.__version__}; h94/IP-Adapter original layout "
              f"(image_proj.*, ip_adapter.<K>.to_k_ip/to_v_ip.weight)")
    meta = {"kind": kind, "base": base, "image_encoder": enc_name,
            "encoder_output": "image_embeds" if kind == "plain" else "penultimate hidden states",
            "layers": json.dumps([[k, n, w] for k, n, w in layers])}
    if plus:
        meta["resampler"] = json.dumps(plus, sort_keys=True)
    write_list(os.path.join(OUT, f"{name}.json.gz"), names, dtype, source, meta)
    print(f"{name}: {len(names)} tensors, {sum(math_prod(s) for s in names.values())} parameters, "
          f"{len(layers)} cross-attention pairs (K 1..{layers[-1][0]}); verified against diffusers' IP-Adapter "
          f"loader on {base}'s UNet (every key read, each tensor where our map puts it)")


def write_ip_adapter_lists():
    write_vision_list("clip_vit_h14_vision", CLIP_VIT_H14_VISION, "float32",
                      "h94/IP-Adapter models/image_encoder: OpenCLIP ViT-H/14")
    for name, kind, unet_cfg, enc_cfg, dtype in IP_ADAPTER_CASES:
        write_adapter_list(name, kind, "sd15", unet_cfg, "clip_vit_h14_vision", enc_cfg, None, dtype)


def write_ip_adapter_sdxl_lists():
    """The SDXL adapters' lists (IP_ADAPTER_SDXL_CASES), each proved against diffusers' IP-Adapter loader on SDXL
    base 1.0's UNet (built without touching its memory), and ViT-bigG/14's image tower's (ViT-H/14's is
    write_ip_adapter_lists')."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import make_sdxl_key_lists as kl  # the published SDXL configs
    write_vision_list("clip_vit_bigg14_vision", CLIP_VIT_BIGG14_VISION, "float16",
                      "h94/IP-Adapter sdxl_models/image_encoder: OpenCLIP ViT-bigG/14")
    for name, kind, enc_name, enc_cfg, plus, dtype in IP_ADAPTER_SDXL_CASES:
        write_adapter_list(name, kind, "sdxl_base", kl.SDXL_BASE_UNET, enc_name, enc_cfg, plus, dtype)


def math_prod(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def write_list(path, names_shapes, dtype, source, metadata=None):
    tensors = [[k, list(s), "float32" if k in SCHEDULE_BUFFERS else dtype] for k, s in names_shapes.items()]
    doc = {"format": "easel-key-list-1", "source": source, "tensors": tensors}
    if metadata:
        doc["metadata"] = metadata
    with gzip.GzipFile(path, "wb", mtime=0) as f:  # mtime 0: same bytes on every run
        f.write(json.dumps(doc, separators=(",", ":")).encode())


def main():
    os.makedirs(OUT, exist_ok=True)
    if sys.argv[1:] == ["controlnet"]:
        write_controlnet_lists()
        return
    if sys.argv[1:] == ["controlnet_sd21"]:
        write_controlnet_lists(CONTROLNET_SD21_CASES)
        return
    if sys.argv[1:] == ["controlnet_sdxl"]:
        write_controlnet_sdxl_lists()
        return
    if sys.argv[1:] == ["ip_adapter"]:
        write_ip_adapter_lists()
        return
    if sys.argv[1:] == ["ip_adapter_sdxl"]:
        write_ip_adapter_sdxl_lists()
        return
    d2o = load_diffusers_script()
    import contextlib, io
    for name, unet_cfg, vae_cfg, text_cfg, text_layout, family, stored_layers, dtype in CASES:
        unet = build(UNet2DConditionModel, unet_cfg)
        vae = build(AutoencoderKL, vae_cfg)
        text = build(CLIPTextModel, text_cfg)
        u, v, t = shapes(unet), shapes(vae), shapes(text)
        levels, lpb = len(unet_cfg["block_out_channels"]), unet_cfg.get("layers_per_block", 2)
        vae_levels = len(vae_cfg["block_out_channels"])

        # LDM layout.
        lu = ldm_unet_names(u, levels, lpb)
        lv = ldm_vae_names(v, vae_levels)
        if levels == 4 and lpb == 2:  # diffusers' script hard-codes SD's layout: it must agree with ours
            with contextlib.redirect_stdout(io.StringIO()):
                su = d2o.convert_unet_state_dict({k: stand_in(s) for k, s in u.items()})
                sv = d2o.convert_vae_state_dict({k: stand_in(s) for k, s in v.items()})
            assert {k: list(x.shape) for k, x in su.items()} == lu, f"{name}: UNet names differ from diffusers' script"
            assert {k: list(x.shape) for k, x in sv.items()} == lv, f"{name}: VAE names differ from diffusers' script"
        ldm = {"model.diffusion_model." + k: s for k, s in lu.items()}
        ldm.update({"first_stage_model." + k: s for k, s in lv.items()})
        if text_layout == "clip":
            ldm.update({"cond_stage_model.transformer." + k: s for k, s in t.items()})
            ldm["cond_stage_model.transformer.text_model.embeddings.position_ids"] = [1, text_cfg["max_position_embeddings"]]
            extras = ["cond_stage_model.transformer.text_model.embeddings.position_ids"]
        else:
            # The OpenCLIP checkpoint stores every resblock (SD 2: 24) and its contrastive head; diffusers'
            # text_encoder keeps the first stored-1 ("penultimate").
            full = build(CLIPTextModel, dict(text_cfg, num_hidden_layers=stored_layers))
            tf = {"transformer." + k: stand_in(s) for k, s in shapes(full).items()}
            st = d2o.convert_text_enc_state_dict_v20(tf)
            lt = {"cond_stage_model.model." + k: list(x.shape) for k, x in st.items()}
            hidden = text_cfg["hidden_size"]
            lt["cond_stage_model.model.text_projection"] = [hidden, hidden]
            lt["cond_stage_model.model.logit_scale"] = []
            ldm.update(lt)
            last = f"cond_stage_model.model.transformer.resblocks.{stored_layers - 1}."
            extras = [k for k in lt if k.startswith(last)] + ["cond_stage_model.model.text_projection",
                                                              "cond_stage_model.model.logit_scale"]
        for b in SCHEDULE_BUFFERS:
            ldm[b] = [1000]
        ldm["model_ema.decay"] = []
        ldm["model_ema.num_updates"] = []
        extras += SCHEDULE_BUFFERS + ["model_ema.decay", "model_ema.num_updates"]

        # Prove the LDM list against diffusers' single-file loader.
        ck = {k: stand_in(s) for k, s in ldm.items()}
        with contextlib.redirect_stdout(io.StringIO()):
            fu = sfu.convert_ldm_unet_checkpoint(ck, dict(unet_cfg))
            fv = sfu.convert_ldm_vae_checkpoint(ck, dict(vae_cfg, down_block_types=vae_cfg["down_block_types"],
                                                         up_block_types=vae_cfg["up_block_types"]))
            if text_layout == "clip":
                ft = sfu.convert_ldm_clip_checkpoint(ck)
                ft.pop("text_model.embeddings.position_ids")  # transformers 4.40 no longer stores it
            else:
                ft = sfu.convert_open_clip_checkpoint(text, ck)
                # diffusers drops resblock 23 by a fixed name list (SD 2's); for other depths drop the last here.
                ft = {k: x for k, x in ft.items() if not k.startswith(f"text_model.encoder.layers.{stored_layers - 1}.")}
        got = {"unet." + k: list(x.shape) for k, x in fu.items()}
        got.update({"vae." + k: list(x.shape) for k, x in fv.items()})
        got.update({"text_encoder." + k: list(x.shape) for k, x in ft.items()})
        want = {"unet." + k: s for k, s in u.items()}
        want.update({"vae." + k: s for k, s in v.items()})
        want.update({"text_encoder." + k: s for k, s in t.items()})
        if got != want:
            missing = sorted(set(want) - set(got))[:10]
            extra = sorted(set(got) - set(want))[:10]
            bad = [k for k in want if k in got and got[k] != want[k]][:10]
            sys.exit(f"{name}: diffusers' loader does not turn our LDM list into the model: "
                     f"missing {missing} extra {extra} shape {bad}")

        source = (f"tools/reference/make_key_lists.py case {name}; diffusers {diffusers.__version__}, "
                  f"transformers {transformers.__version__}, torch {torch.__version__}")
        write_list(os.path.join(OUT, f"{name}.ldm.json.gz"), ldm, dtype, source + "; LDM layout")
        write_list(os.path.join(OUT, f"{name}.diffusers.json.gz"), want, dtype, source + "; diffusers layout")
        expect = {
            "source": source, "family": family, "unet_config": unet_cfg, "vae_config": vae_cfg,
            "text_encoder_config": text_cfg, "text_layout": text_layout, "ldm_extras": extras,
            "open_clip_stored_layers": stored_layers, "weight_dtype": dtype,
        }
        with open(os.path.join(OUT, f"{name}.expect.json"), "w") as f:
            json.dump(expect, f, indent=1)
            f.write("\n")
        print(f"{name}: {len(ldm)} LDM names -> {len(want)} diffusers names, verified against single_file_utils")
        del unet, vae, text
    write_controlnet_lists()


if __name__ == "__main__":
    main()
