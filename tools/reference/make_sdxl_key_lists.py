#!/work/refvenv/bin/python
"""Writes SDXL key lists to tests/data/keys/: tensor names, shapes and dtypes (no weights) of SDXL base 1.0,
the SDXL refiner 1.0 and the SDXL inpainting UNet, in the diffusers folder layout and in the original
single-file layout of Stability's checkpoints (sd_xl_base_1.0.safetensors, sd_xl_refiner_1.0.safetensors).

Run from the repository root with the pip venv (tools/reference/README.md), offline:

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_sdxl_key_lists.py

Versions (requirements-pip.txt): torch 2.4.1 (CPU), diffusers 0.30.3, transformers 4.40.2. It takes a few
seconds and almost no memory: every model is built inside `with torch.device("meta")`, so no parameter is
allocated (SDXL base alone has 3.5 B parameters with both text encoders and the VAE). Every run writes the same
bytes (gzip mtime 0, JSON with a fixed key order). This script is separate from make_key_lists.py, which runs
on the Debian environment (torch 1.13) and covers SD 1.x/2.x; the file formats are the same.

For each case it
  1. builds the diffusers models from the published configs below (diffusers' UNet2DConditionModel and
     AutoencoderKL, transformers' CLIPTextModel for CLIP ViT-L and CLIPTextModelWithProjection for OpenCLIP
     ViT-bigG) and records (name, shape) of their state dicts under the folder prefixes unet., vae.,
     text_encoder., text_encoder_2. (only the components the model has: the refiner has no text_encoder);
  2. writes the same model in the single-file layout of Stability's generative-models ("sgm") checkpoints:
        model.diffusion_model.*                      the UNet, in LDM names (input_blocks/middle_block/
                                                     output_blocks); the text_time embedding diffusers calls
                                                     add_embedding.linear_1/linear_2 is label_emb.0.0 / .0.2
        first_stage_model.*                          the VAE, in LDM names (its mid-block attention q/k/v/
                                                     proj_out are 1x1 convolutions: [512, 512, 1, 1])
        conditioner.embedders.0.transformer.text_model.*   CLIP ViT-L (base, inpainting), transformers' own
                                                     names, plus embeddings.position_ids int64 [1, 77]
        conditioner.embedders.1.model.*              OpenCLIP ViT-bigG (base, inpainting) in open_clip's
                                                     names; the refiner has it at conditioner.embedders.0.model.*
     The names come from ldm_unet_name / ldm_vae_name / open_clip_names below (written for this script from
     the pairs diffusers' single-file loader uses, see step 3);
  3. proves the single-file list against diffusers' own single-file loader (diffusers.loaders.single_file_utils:
     convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint,
     convert_open_clip_checkpoint with the prefix from_single_file uses for SDXL): run on meta tensors of the
     listed shapes, they must give back exactly the diffusers names and shapes of step 1, or the script
     fails. It also checks which single-file names diffusers leaves unused: exactly the "ldm_extras" of the
     expect file (CLIP-L's position_ids, bigG's logit_scale), and what infer_diffusers_model_type reports.

OpenCLIP bigG in open_clip's names (width 1280, 32 resblocks, 20 heads, MLP 5120, gelu):
    token_embedding.weight [49408, 1280], positional_embedding [77, 1280],
    transformer.resblocks.N.ln_1.{weight,bias}, .attn.in_proj_weight [3840, 1280] (rows: q, then k, then v),
    .attn.in_proj_bias [3840], .attn.out_proj.{weight,bias}, .ln_2.*, .mlp.c_fc.* [5120, 1280],
    .mlp.c_proj.* [1280, 5120], ln_final.{weight,bias},
    text_projection [1280, 1280]: open_clip stores it as [width, embed_dim] and computes x @ text_projection,
        so it is the transpose of transformers' text_projection.weight ([projection_dim, hidden] for
        x @ W^T); the two dimensions are equal for bigG, so only the transpose tells them apart,
    logit_scale [] (the contrastive temperature: unused for text conditioning).
Unlike SD 2 (make_key_lists.py), diffusers keeps all 32 bigG layers (SDXL reads hidden_states[-2] but pools
and projects the final layer's output) and keeps text_projection; only logit_scale is dropped. CLIP-L keeps
all 12 layers too (SDXL also reads its hidden_states[-2]).

dtypes: float16 for every floating tensor (the published base and refiner files are fp16), int64 for CLIP-L's
position_ids (transformers' buffer, stored by the transformers of mid 2023). There is no Stability single file
of the inpainting model (diffusers/stable-diffusion-xl-1.0-inpainting-0.1 is a diffusers folder); its list
assumes an fp16 single file laid out like the base's, which is what converted community files look like.
Not listed: denoiser.sigmas (sgm's DiscreteDenoiser buffer; model browsers treat it as the sign of an
SD/SDXL-Turbo file, so the 1.0 base and refiner files are taken not to carry it: the base list has 2515
tensors, the count usually quoted for sd_xl_base_1.0.safetensors) and any safetensors metadata (modelspec.*).

Outputs per case <name> (sdxl_base, sdxl_refiner, sdxl_inpaint):
    <name>.diffusers.json.gz   {"format": "easel-key-list-1", "source": ..., "tensors": [[name, shape, dtype]...]}
    <name>.ldm.json.gz         the same format, single-file layout
    <name>.expect.json         source, family ("sdxl" / "sdxl-inpaint"; the refiner is "sdxl" too, told apart
                               by "variant"), variant ("base" / "refiner" / "inpaint"), unet_config,
                               vae_config, text_encoder_config (CLIP-L; null for the refiner),
                               text_encoder_2_config (bigG), text_layout ("clip+open_clip" for base and
                               inpainting, "open_clip" for the refiner), ldm_prefixes (component -> its
                               single-file prefix), ldm_extras (single-file names with no diffusers
                               counterpart), open_clip_stored_layers (32: all stored, all kept),
                               weight_dtype, diffusers_model_type (what diffusers 0.30.3's
                               infer_diffusers_model_type says of the single-file list), counts.
The configs are the published config.json files (stabilityai/stable-diffusion-xl-base-1.0,
stabilityai/stable-diffusion-xl-refiner-1.0, diffusers/stable-diffusion-xl-1.0-inpainting-0.1 for the 9-channel
UNet, whose file also carries EMA bookkeeping keys that are left out here), minus _diffusers_version,
_name_or_path, torch_dtype and transformers_version.
"""
import gzip
import json
import os
import sys

import torch

import diffusers
import transformers
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders import single_file_utils as sfu
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "keys")
SCRIPT = "tools/reference/make_sdxl_key_lists.py"

# --- published configs -----------------------------------------------------------------------------------
SDXL_BASE_UNET = {
    "_class_name": "UNet2DConditionModel", "act_fn": "silu", "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64, "addition_time_embed_dim": 256, "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280], "center_input_sample": False, "class_embed_type": None,
    "class_embeddings_concat": False, "conv_in_kernel": 3, "conv_out_kernel": 3, "cross_attention_dim": 2048,
    "cross_attention_norm": None, "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1, "dual_cross_attention": False, "encoder_hid_dim": None, "encoder_hid_dim_type": None,
    "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
    "mid_block_only_cross_attention": None, "mid_block_scale_factor": 1, "mid_block_type": "UNetMidBlock2DCrossAttn",
    "norm_eps": 1e-05, "norm_num_groups": 32, "num_attention_heads": None, "num_class_embeds": None,
    "only_cross_attention": False, "out_channels": 4, "projection_class_embeddings_input_dim": 2816,
    "resnet_out_scale_factor": 1.0, "resnet_skip_time_act": False, "resnet_time_scale_shift": "default",
    "sample_size": 128, "time_cond_proj_dim": None, "time_embedding_act_fn": None, "time_embedding_dim": None,
    "time_embedding_type": "positional", "timestep_post_act": None, "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"], "upcast_attention": None,
    "use_linear_projection": True,
}  # stabilityai/stable-diffusion-xl-base-1.0 unet/config.json
SDXL_REFINER_UNET = dict(SDXL_BASE_UNET, **{
    "attention_head_dim": [6, 12, 24, 24], "block_out_channels": [384, 768, 1536, 1536], "cross_attention_dim": 1280,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "projection_class_embeddings_input_dim": 2560, "transformer_layers_per_block": 4,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
})  # stabilityai/stable-diffusion-xl-refiner-1.0 unet/config.json: 2560 = 1280 (pooled bigG) + 5 * 256
#     (original h, w, crop top, left, aesthetic score)
SDXL_INPAINT_UNET = dict(SDXL_BASE_UNET, in_channels=9)  # diffusers/stable-diffusion-xl-1.0-inpainting-0.1
SDXL_VAE = {
    "_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "force_upcast": True, "in_channels": 3, "latent_channels": 4,
    "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3, "sample_size": 1024, "scaling_factor": 0.13025,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}  # stabilityai/stable-diffusion-xl-base-1.0 vae/config.json (the refiner's is the same)
CLIP_L = {
    "architectures": ["CLIPTextModel"], "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0,
    "eos_token_id": 2, "hidden_act": "quick_gelu", "hidden_size": 768, "initializer_factor": 1.0,
    "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05, "max_position_embeddings": 77,
    "model_type": "clip_text_model", "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1,
    "projection_dim": 768, "vocab_size": 49408,
}  # stabilityai/stable-diffusion-xl-base-1.0 text_encoder/config.json
OPEN_CLIP_BIGG = dict(CLIP_L, **{
    "architectures": ["CLIPTextModelWithProjection"], "hidden_act": "gelu", "hidden_size": 1280,
    "intermediate_size": 5120, "num_attention_heads": 20, "num_hidden_layers": 32, "projection_dim": 1280,
})  # stabilityai/stable-diffusion-xl-base-1.0 text_encoder_2/config.json (refiner: its text_encoder_2)

# (name, family, variant, unet, clip-l (or None), bigG single-file prefix, dtype)
CASES = [
    ("sdxl_base", "sdxl", "base", SDXL_BASE_UNET, CLIP_L, "conditioner.embedders.1.model.", "float16"),
    ("sdxl_refiner", "sdxl", "refiner", SDXL_REFINER_UNET, None, "conditioner.embedders.0.model.", "float16"),
    ("sdxl_inpaint", "sdxl-inpaint", "inpaint", SDXL_INPAINT_UNET, CLIP_L, "conditioner.embedders.1.model.", "float16"),
]
UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_L_PREFIX = "conditioner.embedders.0.transformer."


def build_diffusers(cls, cfg):
    with torch.device("meta"):  # parameters without storage: nothing is allocated or initialised for real
        return cls.from_config({k: v for k, v in cfg.items() if k != "_class_name"})


def build_text(cls, cfg):
    with torch.device("meta"):
        return cls(CLIPTextConfig(**{k: v for k, v in cfg.items() if k != "architectures"}))


def shapes(module):
    sd = module.state_dict()
    assert all(v.is_meta for v in sd.values())
    return {k: list(v.shape) for k, v in sd.items()}


# --- diffusers -> single-file names ------------------------------------------------------------------------
RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"), ("conv2", "out_layers.3"),
          ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
UNET_FIXED = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
              "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
              "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}


def ldm_resnet(rest):
    for d, l in RESNET:
        if rest.startswith(d + "."):
            return l + rest[len(d):]
    raise ValueError(rest)


def ldm_unet_names(diff, lpb):
    """diffusers UNet names -> LDM names. Input blocks: 0 is conv_in, then per level lpb (resnet[, attention])
    blocks and a downsampler block (not after the last level). Output blocks: per level lpb + 1 blocks; the
    upsampler sits in the last block of a level at index 1, or 2 when that block has an attention."""
    out = {}
    for name, shape in diff.items():
        head, leaf = name.rsplit(".", 1)
        p = name.split(".")
        if head in UNET_FIXED:
            n = f"{UNET_FIXED[head]}.{leaf}"
        elif p[0] == "down_blocks":
            b = int(p[1])
            if p[2] == "downsamplers":
                n = f"input_blocks.{1 + b * (lpb + 1) + lpb}.0.op.{leaf}"
            else:
                i, rest = 1 + b * (lpb + 1) + int(p[3]), ".".join(p[4:])
                n = f"input_blocks.{i}.0.{ldm_resnet(rest)}" if p[2] == "resnets" else f"input_blocks.{i}.1.{rest}"
        elif p[0] == "mid_block":
            rest = ".".join(p[3:])
            n = f"middle_block.{2 * int(p[2])}.{ldm_resnet(rest)}" if p[1] == "resnets" else f"middle_block.1.{rest}"
        elif p[0] == "up_blocks":
            b = int(p[1])
            if p[2] == "upsamplers":
                has_attn = any(k.startswith(f"up_blocks.{b}.attentions.") for k in diff)
                n = f"output_blocks.{b * (lpb + 1) + lpb}.{2 if has_attn else 1}.conv.{leaf}"
            else:
                i, rest = b * (lpb + 1) + int(p[3]), ".".join(p[4:])
                n = f"output_blocks.{i}.0.{ldm_resnet(rest)}" if p[2] == "resnets" else f"output_blocks.{i}.1.{rest}"
        else:
            raise ValueError(name)
        out[n] = shape
    return out


def ldm_vae_names(diff, levels):
    """diffusers VAE names -> LDM names; decoder levels are numbered from the bottom (up.0 is the last)."""
    out = {}
    for name, shape in diff.items():
        p = name.split(".")
        n = name.replace("conv_norm_out", "norm_out")
        if p[1] == "down_blocks":
            n = (f"encoder.down.{p[2]}.downsample.conv.{p[-1]}" if p[3] == "downsamplers"
                 else f"encoder.down.{p[2]}.block.{p[4]}." + ".".join(p[5:]))
        elif p[1] == "up_blocks":
            lvl = levels - 1 - int(p[2])
            n = (f"decoder.up.{lvl}.upsample.conv.{p[-1]}" if p[3] == "upsamplers"
                 else f"decoder.up.{lvl}.block.{p[4]}." + ".".join(p[5:]))
        elif p[1] == "mid_block" and p[2] == "resnets":
            n = f"{p[0]}.mid.block_{int(p[3]) + 1}." + ".".join(p[4:])
        elif p[1] == "mid_block":
            part = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out": "proj_out"}[p[4]]
            n = f"{p[0]}.mid.attn_1.{part}.{p[-1]}"
            if p[-1] == "weight" and part != "norm":
                shape = shape + [1, 1]
        out[n.replace("conv_shortcut", "nin_shortcut")] = shape
    return out


OPEN_CLIP_LAYER = [("self_attn.out_proj.", "attn.out_proj."), ("layer_norm1.", "ln_1."), ("layer_norm2.", "ln_2."),
                   ("mlp.fc1.", "mlp.c_fc."), ("mlp.fc2.", "mlp.c_proj.")]


def open_clip_names(diff, hidden):
    """transformers CLIPTextModelWithProjection names -> open_clip's. q/k/v are one fused in_proj; the text
    projection is stored transposed; logit_scale is added (open_clip's CLIP carries it)."""
    out = {}
    for name, shape in diff.items():
        if name == "text_model.embeddings.token_embedding.weight":
            out["token_embedding.weight"] = shape
        elif name == "text_model.embeddings.position_embedding.weight":
            out["positional_embedding"] = shape
        elif name.startswith("text_model.final_layer_norm."):
            out["ln_final." + name.rsplit(".", 1)[1]] = shape
        elif name == "text_projection.weight":
            out["text_projection"] = [shape[1], shape[0]]
        elif name.startswith("text_model.encoder.layers."):
            p = name.split(".")
            rest = ".".join(p[4:])
            base = f"transformer.resblocks.{p[3]}."
            if rest.startswith(("self_attn.q_proj.", "self_attn.k_proj.", "self_attn.v_proj.")):
                leaf = p[-1]
                fused = base + ("attn.in_proj_weight" if leaf == "weight" else "attn.in_proj_bias")
                assert shape[0] == hidden
                out[fused] = [3 * hidden] + shape[1:]
                continue
            for d, o in OPEN_CLIP_LAYER:
                if rest.startswith(d):
                    out[base + o + rest[len(d):]] = shape
                    break
            else:
                raise ValueError(name)
        else:
            raise ValueError(name)
    out["logit_scale"] = []
    return out


def write_list(path, names_shapes, dtypes):
    doc = {"format": "easel-key-list-1", "source": dtypes.pop("__source__"),
           "tensors": [[k, list(s), dtypes.get(k, dtypes["__default__"])] for k, s in names_shapes.items()]}
    with gzip.GzipFile(path, "wb", mtime=0) as f:  # mtime 0: same bytes on every run
        f.write(json.dumps(doc, separators=(",", ":")).encode())


class Recorder(dict):
    """A checkpoint dict that records which names are read (get or [])."""

    def __init__(self, d):
        super().__init__(d)
        self.read = set()

    def __getitem__(self, k):
        self.read.add(k)
        return super().__getitem__(k)

    def get(self, k, default=None):
        self.read.add(k)
        return super().get(k, default)


def meta_checkpoint(names_shapes):
    return {k: torch.empty(s, device="meta") for k, s in names_shapes.items()}


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    source0 = (f"{SCRIPT}; diffusers {diffusers.__version__}, transformers {transformers.__version__}, "
               f"torch {torch.__version__}")
    for name, family, variant, unet_cfg, clip_l_cfg, bigg_prefix, dtype in CASES:
        u = shapes(build_diffusers(UNet2DConditionModel, unet_cfg))
        v = shapes(build_diffusers(AutoencoderKL, SDXL_VAE))
        te2_model = build_text(CLIPTextModelWithProjection, OPEN_CLIP_BIGG)
        t2 = shapes(te2_model)
        t1 = shapes(build_text(CLIPTextModel, clip_l_cfg)) if clip_l_cfg else None

        want = {"unet." + k: s for k, s in u.items()}
        want.update({"vae." + k: s for k, s in v.items()})
        if t1 is not None:
            want.update({"text_encoder." + k: s for k, s in t1.items()})
        want.update({"text_encoder_2." + k: s for k, s in t2.items()})

        # Single-file layout.
        ldm = {UNET_PREFIX + k: s for k, s in ldm_unet_names(u, unet_cfg["layers_per_block"]).items()}
        ldm.update({VAE_PREFIX + k: s for k, s in ldm_vae_names(v, len(SDXL_VAE["block_out_channels"])).items()})
        dtypes = {}
        extras = []
        if t1 is not None:
            ldm.update({CLIP_L_PREFIX + k: s for k, s in t1.items()})
            pos = CLIP_L_PREFIX + "text_model.embeddings.position_ids"
            ldm[pos] = [1, clip_l_cfg["max_position_embeddings"]]
            dtypes[pos] = "int64"
            extras.append(pos)
        ldm.update({bigg_prefix + k: s for k, s in open_clip_names(t2, OPEN_CLIP_BIGG["hidden_size"]).items()})
        extras.append(bigg_prefix + "logit_scale")

        # Prove it against diffusers' single-file loader.
        ck = meta_checkpoint(ldm)
        model_type = sfu.infer_diffusers_model_type(ck)
        fu = sfu.convert_ldm_unet_checkpoint(ck, dict(unet_cfg))
        fv = sfu.convert_ldm_vae_checkpoint(ck, dict(SDXL_VAE))
        got = {"unet." + k: list(x.shape) for k, x in fu.items()}
        got.update({"vae." + k: list(x.shape) for k, x in fv.items()})
        if t1 is not None:
            assert sfu.is_clip_sdxl_model(ck)
            ft = sfu.convert_ldm_clip_checkpoint(ck)
            ft.pop("text_model.embeddings.position_ids")  # transformers 4.40 keeps it as a non-persistent buffer
            got.update({"text_encoder." + k: list(x.shape) for k, x in ft.items()})
        if variant == "refiner":
            assert sfu.is_open_clip_sdxl_refiner_model(ck) and not sfu.is_clip_sdxl_model(ck)
        else:
            assert sfu.is_open_clip_sdxl_model(ck)
        ft2 = sfu.convert_open_clip_checkpoint(te2_model, ck, prefix=bigg_prefix)
        got.update({"text_encoder_2." + k: list(x.shape) for k, x in ft2.items()})
        if got != want:
            missing = sorted(set(want) - set(got))[:10]
            extra = sorted(set(got) - set(want))[:10]
            bad = [k for k in want if k in got and got[k] != want[k]][:10]
            sys.exit(f"{name}: diffusers' loader does not turn our single-file list into the model: "
                     f"missing {missing} extra {extra} shape {bad}")
        # Nothing is dropped but the extras: per component, the single-file names (a fused in_proj counts as
        # the three diffusers names it becomes) match the diffusers names one to one.
        def count(prefix):
            names = [k for k in ldm if k.startswith(prefix) and k not in extras]
            return len(names) + 2 * sum(1 for k in names if ".attn.in_proj_" in k)
        assert count(UNET_PREFIX) == len(u) and count(VAE_PREFIX) == len(v), name
        assert count(bigg_prefix) == len(t2) and (t1 is None or count(CLIP_L_PREFIX) == len(t1)), name
        prefixes_used = (UNET_PREFIX, VAE_PREFIX, bigg_prefix) + ((CLIP_L_PREFIX,) if t1 is not None else ())
        assert sum(count(p) for p in prefixes_used) == len(want), name
        assert all(k.startswith(prefixes_used) for k in ldm), name
        # And the bigG conversion never reads logit_scale.
        seen = Recorder(ck)
        sfu.convert_open_clip_checkpoint(te2_model, seen, prefix=bigg_prefix)
        assert bigg_prefix + "logit_scale" not in seen.read and bigg_prefix + "text_projection" in seen.read, name
        n_text = len(t1) if t1 is not None else 0

        source = f"{source0}; case {name}"
        write_list(os.path.join(OUT, f"{name}.ldm.json.gz"), ldm,
                   dict(dtypes, __default__=dtype, __source__=source + "; single-file (sgm) layout"))
        write_list(os.path.join(OUT, f"{name}.diffusers.json.gz"), want,
                   {"__default__": dtype, "__source__": source + "; diffusers layout"})
        prefixes = {"unet": UNET_PREFIX, "vae": VAE_PREFIX}
        if t1 is not None:
            prefixes["text_encoder"] = CLIP_L_PREFIX
        prefixes["text_encoder_2"] = bigg_prefix
        expect = {
            "source": source, "family": family, "variant": variant, "unet_config": unet_cfg, "vae_config": SDXL_VAE,
            "text_encoder_config": clip_l_cfg, "text_encoder_2_config": OPEN_CLIP_BIGG,
            "text_layout": "clip+open_clip" if t1 is not None else "open_clip", "ldm_prefixes": prefixes,
            "ldm_extras": extras, "open_clip_stored_layers": OPEN_CLIP_BIGG["num_hidden_layers"],
            "weight_dtype": dtype, "diffusers_model_type": model_type,
            "counts": {"ldm": len(ldm), "diffusers": len(want), "unet": len(u), "vae": len(v),
                       "text_encoder": n_text, "text_encoder_2": len(t2)},
        }
        with open(os.path.join(OUT, f"{name}.expect.json"), "w") as f:
            json.dump(expect, f, indent=1)
            f.write("\n")
        sizes = {ext: os.path.getsize(os.path.join(OUT, f"{name}.{ext}")) for ext in
                 ("ldm.json.gz", "diffusers.json.gz", "expect.json")}
        print(f"{name}: {len(ldm)} single-file names -> {len(want)} diffusers names (unet {len(u)}, vae {len(v)}, "
              f"text_encoder {n_text}, text_encoder_2 {len(t2)}), verified against single_file_utils; "
              f"infer_diffusers_model_type: {model_type}; bytes {sizes}")


if __name__ == "__main__":
    main()
