#!/work/refvenv/bin/python
"""The tiny SDXL model of make_sdxl_goldens.py as ONE single-file checkpoint in Stability's original SDXL
("sgm", generative-models) layout, the layout of sd_xl_base_1.0.safetensors.

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline, after
make_sdxl_goldens.py has written the folder:

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_sdxl_single_file.py

Versions (requirements-pip.txt): torch 2.4.1 (CPU), diffusers 0.30.3, transformers 4.40.2. It takes a few
seconds. Every run writes the same bytes (safetensors_io.py, not the safetensors library).

Reads tests/golden/data/pipeline_sdxl/ (the diffusers folder: fp16 unet/, vae/, text_encoder/, text_encoder_2/)
and writes tests/golden/data/pipeline_sdxl_single/tiny-sdxl.safetensors (no yaml: SDXL single files come
without one). Every weight is the folder's fp16 tensor with the same bits, only renamed and rearranged:

    model.diffusion_model.*      the UNet in LDM names (input_blocks / middle_block / output_blocks, time_embed.0/.2,
                                 label_emb.0.0/.0.2 for diffusers' add_embedding.linear_1/linear_2, out.0/.2)
    first_stage_model.*          the VAE in LDM names; the mid-block attention's q, k, v, proj_out weights are
                                 stored as 1x1 convolution weights [C, C, 1, 1] (diffusers keeps them as [C, C])
    conditioner.embedders.0.transformer.text_model.*   text_encoder (CLIP-L role) in transformers' own names, plus
                                 embeddings.position_ids: int64 [1, 77] = arange(77), as the published file carries
                                 (transformers 4.40 no longer saves that buffer, so the folder has none)
    conditioner.embedders.1.model.*   text_encoder_2 (OpenCLIP bigG role) in open_clip names: token_embedding.weight,
                                 positional_embedding, transformer.resblocks.N.{ln_1, ln_2, attn.in_proj_weight /
                                 in_proj_bias (q, k, v rows concatenated), attn.out_proj, mlp.c_fc, mlp.c_proj},
                                 ln_final, text_projection stored as [width 48, embed 40] (open_clip computes
                                 x @ text_projection: the transpose of transformers' text_projection.weight [40, 48]),
                                 and logit_scale, an fp16 scalar (shape []) = log(1 / 0.07) rounded to fp16, which no
                                 SDXL loader uses.
Metadata: {"format": "pt", "easel.source": <this script and the versions>, "easel.config.<component>": the folder's
config.json of unet, vae, text_encoder and text_encoder_2 (the tiny widths need them)}; no modelspec.* keys.

The UNet and VAE names come from make_sdxl_key_lists.py (ldm_unet_names, ldm_vae_names), which map a
{diffusers name: shape} dict one to one and in order; the pairing is read off the two orders, and the shapes
they return are checked against the tensors written. The open_clip tensors are built here, and their names
and shapes must equal what make_sdxl_key_lists.open_clip_names lists.

Validation (the script fails unless all of it holds):
  1. The file read back (with the safetensors library, as diffusers reads it) holds exactly the tensors built,
     bit for bit, with dtype float16 everywhere but position_ids (int64); and every name in it is in SDXL base
     1.0's single-file key list (tests/data/keys/sdxl_base.ldm.json.gz, make_sdxl_key_lists.py) with the same
     dtype and rank (the tiny model has fewer levels, blocks and layers, so its names are a subset).
  2. diffusers' single-file converters (diffusers.loaders.single_file_utils: convert_ldm_unet_checkpoint,
     convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint, convert_open_clip_checkpoint with the prefix
     from_single_file uses for SDXL base), run on the file's tensors, give back every tensor of the folder bit
     for bit and nothing else (position_ids, which convert_ldm_clip_checkpoint passes through, must be
     arange(77)); the converters read every name in the file except logit_scale. diffusers'
     infer_diffusers_model_type says "v1", not "xl_base", and the script checks that it does: diffusers 0.30.3
     tells SDXL base by the name conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias, and this
     bigG has 2 layers (is_clip_sdxl_model and is_open_clip_sdxl_model, which the text-encoder loading uses,
     do say yes). So from_single_file needs config=; without it, it would fetch a v1 pipeline config.
  3. End to end: StableDiffusionXLPipeline.from_single_file(file, config=<the folder>, local_files_only=True,
     torch_dtype=float16) loads offline (the folder supplies configs, tokenizers and scheduler), and the
     state dict of each of unet, vae, text_encoder, text_encoder_2 equals the folder's safetensors file: the
     same names, every tensor the same bits. (Without accelerate installed diffusers loads the text encoders
     with load_state_dict(strict=False), which would not report a missing tensor; the name-set and bitwise
     comparisons here would.) The component configs must equal the folder's too. transformers prints
     "Some weights of the model checkpoint were not used when initializing CLIPTextModel:
     ['text_model.embeddings.position_ids']" during this step: expected (4.40 keeps it as a non-persistent buffer).

Counts: 811 tensors: model.diffusion_model. 620 (the folder's unet: 620), first_stage_model. 124 (vae: 124),
conditioner.embedders.0.transformer. 37 (text_encoder 36 + position_ids), conditioner.embedders.1.model. 30
(text_encoder_2's 37, less 2 per layer for each fused q/k/v weight and bias, plus logit_scale); 1,555,008 bytes.
The orientation of text_projection matters beyond the transpose: diffusers' convert_open_clip_checkpoint splits
in_proj into q, k, v at text_projection.shape[0], so it must be the width (48); with width != projection dim
(48 vs 40) this file catches a loader that gets either wrong, which bigG's square 1280 x 1280 cannot.
"""
import gzip
import json
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import diffusers  # noqa: E402
import safetensors.torch  # noqa: E402
import transformers  # noqa: E402
from diffusers import StableDiffusionXLPipeline  # noqa: E402
from diffusers.loaders import single_file_utils as sfu  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModelWithProjection  # noqa: E402

import make_sdxl_key_lists as kl  # noqa: E402
import safetensors_io  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
FOLDER = os.path.join(ROOT, "tests", "golden", "data", "pipeline_sdxl")
OUT_DIR = os.path.join(ROOT, "tests", "golden", "data", "pipeline_sdxl_single")
OUT = os.path.join(OUT_DIR, "tiny-sdxl.safetensors")
BASE_KEYS = os.path.join(ROOT, "tests", "data", "keys", "sdxl_base.ldm.json.gz")  # make_sdxl_key_lists.py
SCRIPT = "tools/reference/make_sdxl_single_file.py"

UNET_PREFIX = kl.UNET_PREFIX  # model.diffusion_model.
VAE_PREFIX = kl.VAE_PREFIX  # first_stage_model.
CLIP_L_PREFIX = kl.CLIP_L_PREFIX  # conditioner.embedders.0.transformer.
BIGG_PREFIX = "conditioner.embedders.1.model."
POSITION_IDS = CLIP_L_PREFIX + "text_model.embeddings.position_ids"
LOGIT_SCALE = BIGG_PREFIX + "logit_scale"
FILES = {
    "unet": "unet/diffusion_pytorch_model.safetensors",
    "vae": "vae/diffusion_pytorch_model.safetensors",
    "text_encoder": "text_encoder/model.safetensors",
    "text_encoder_2": "text_encoder_2/model.safetensors",
}


def load_config(sub):
    with open(os.path.join(FOLDER, sub, "config.json")) as f:
        return json.load(f)


def load_folder():
    out = {}
    for comp, rel in FILES.items():
        sd = safetensors.torch.load_file(os.path.join(FOLDER, rel))
        for k, v in sd.items():
            if v.dtype != torch.float16:
                sys.exit(f"{comp}.{k}: dtype {v.dtype}, expected float16")
        out[comp] = sd
    return out


def same_bits(a, b):
    """Same dtype, shape and bits (fp16 compared as int16, so -0.0 and NaN count too)."""
    def bits(t):
        return t.view(torch.int16) if t.dtype == torch.float16 else t
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(bits(a), bits(b))


def renamed(sd, mapper, *args):
    """Applies one of make_sdxl_key_lists' name maps (dict of diffusers name -> shape, one output per input, in
    order) and returns {ldm name: (diffusers name, shape the key list expects)}."""
    shapes = {k: list(v.shape) for k, v in sd.items()}
    ldm = mapper(shapes, *args)
    if len(ldm) != len(shapes):
        sys.exit(f"{mapper.__name__}: {len(shapes)} names became {len(ldm)}")
    return {n: (d, s) for d, (n, s) in zip(shapes, ldm.items())}


def to_open_clip(sd, hidden):
    """transformers CLIPTextModelWithProjection state dict -> open_clip names (q/k/v fused, projection transposed)."""
    out = {}
    for name, t in sd.items():
        p = name.split(".")
        if name == "text_model.embeddings.token_embedding.weight":
            out["token_embedding.weight"] = t
        elif name == "text_model.embeddings.position_embedding.weight":
            out["positional_embedding"] = t
        elif name.startswith("text_model.final_layer_norm."):
            out["ln_final." + p[-1]] = t
        elif name == "text_projection.weight":
            out["text_projection"] = t.t().contiguous()
        elif name.startswith("text_model.encoder.layers."):
            base = f"transformer.resblocks.{p[3]}."
            rest = ".".join(p[4:])
            if rest.startswith(("self_attn.q_proj.", "self_attn.k_proj.", "self_attn.v_proj.")):
                if p[5] != "q_proj":
                    continue  # fused below, once per layer and leaf
                leaf = p[-1]
                parts = [sd[f"text_model.encoder.layers.{p[3]}.self_attn.{x}_proj.{leaf}"] for x in "qkv"]
                assert all(x.shape[0] == hidden for x in parts), name
                out[base + ("attn.in_proj_weight" if leaf == "weight" else "attn.in_proj_bias")] = torch.cat(parts, 0)
                continue
            for d, o in kl.OPEN_CLIP_LAYER:
                if rest.startswith(d):
                    out[base + o + rest[len(d):]] = t
                    break
            else:
                raise ValueError(name)
        else:
            raise ValueError(name)
    out["logit_scale"] = torch.tensor(math.log(1 / 0.07), dtype=torch.float16)
    return out


def build(folder, unet_cfg, vae_cfg, te1_cfg, te2_cfg):
    ck = {}
    for n, (d, s) in renamed(folder["unet"], kl.ldm_unet_names, unet_cfg["layers_per_block"]).items():
        t = folder["unet"][d]
        assert list(t.shape) == s, (n, d)
        ck[UNET_PREFIX + n] = t
    for n, (d, s) in renamed(folder["vae"], kl.ldm_vae_names, len(vae_cfg["block_out_channels"])).items():
        t = folder["vae"][d]
        if list(t.shape) != s:
            assert s == list(t.shape) + [1, 1] and ".mid.attn_1." in n, (n, d, s)
            t = t.reshape(s)
        ck[VAE_PREFIX + n] = t
    for n, t in folder["text_encoder"].items():
        ck[CLIP_L_PREFIX + n] = t
    ck[POSITION_IDS] = torch.arange(te1_cfg["max_position_embeddings"], dtype=torch.int64)[None]
    oc = to_open_clip(folder["text_encoder_2"], te2_cfg["hidden_size"])
    want = kl.open_clip_names({k: list(v.shape) for k, v in folder["text_encoder_2"].items()}, te2_cfg["hidden_size"])
    got = {k: list(v.shape) for k, v in oc.items()}
    if got != want:
        sys.exit(f"open_clip names differ from make_sdxl_key_lists.open_clip_names: {sorted(set(got) ^ set(want))}")
    ck.update({BIGG_PREFIX + k: v for k, v in oc.items()})
    return ck


def compare(tag, got, want):
    """Both {name: tensor}: same names, every tensor the same bits."""
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        sys.exit(f"{tag}: missing {missing[:10]} ({len(missing)}), left over {extra[:10]} ({len(extra)})")
    bad = [k for k in want if not same_bits(got[k], want[k])]
    if bad:
        sys.exit(f"{tag}: {len(bad)} tensors differ, e.g. {bad[:5]}")


def validate_converters(ck, folder, unet_cfg, vae_cfg, te2_cfg):
    seen = kl.Recorder(ck)
    # diffusers 0.30.3 tells SDXL base by conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias,
    # which a 2-layer bigG does not have: it calls this file "v1" (which is why from_single_file gets config=).
    model_type = sfu.infer_diffusers_model_type(seen)
    if model_type != "v1" or sfu.CHECKPOINT_KEY_NAMES["xl_base"] in ck:
        sys.exit(f"infer_diffusers_model_type: {model_type}, expected v1 (no resblocks.9 in a 2-layer bigG)")
    if not (sfu.is_clip_sdxl_model(ck) and sfu.is_open_clip_sdxl_model(ck)):
        sys.exit("diffusers does not see SDXL base's text encoders")
    compare("convert_ldm_unet_checkpoint", sfu.convert_ldm_unet_checkpoint(seen, dict(unet_cfg)), folder["unet"])
    compare("convert_ldm_vae_checkpoint", sfu.convert_ldm_vae_checkpoint(seen, dict(vae_cfg)), folder["vae"])
    t1 = sfu.convert_ldm_clip_checkpoint(seen)
    pos = t1.pop("text_model.embeddings.position_ids")
    if not same_bits(pos, torch.arange(77, dtype=torch.int64)[None]):
        sys.exit("position_ids")
    compare("convert_ldm_clip_checkpoint", t1, folder["text_encoder"])
    with torch.device("meta"):
        te2 = CLIPTextModelWithProjection(CLIPTextConfig(**{k: v for k, v in te2_cfg.items() if k != "architectures"}))
    compare("convert_open_clip_checkpoint", sfu.convert_open_clip_checkpoint(te2, seen, prefix=BIGG_PREFIX),
            folder["text_encoder_2"])
    unread = sorted(set(ck) - seen.read)
    if unread != [LOGIT_SCALE]:
        sys.exit(f"names the converters never read: {unread}")
    return model_type


def validate_pipeline(folder):
    pipe = StableDiffusionXLPipeline.from_single_file(OUT, config=FOLDER, local_files_only=True,
                                                      torch_dtype=torch.float16)
    for comp in FILES:
        model = getattr(pipe, comp)
        compare(f"from_single_file {comp}", model.state_dict(), folder[comp])
        cfg = model.config.to_dict() if hasattr(model.config, "to_dict") else dict(model.config)
        ref = load_config(comp)
        diff = sorted(k for k in ref if not k.startswith("_") and k not in ("transformers_version", "torch_dtype")
                      and k in cfg and cfg[k] != ref[k] and not (isinstance(ref[k], list) and list(cfg[k]) == ref[k]))
        if diff:
            sys.exit(f"from_single_file {comp}: config differs from the folder's in {diff}")
    return type(pipe.scheduler).__name__


def main():
    torch.set_num_threads(1)
    unet_cfg, vae_cfg = load_config("unet"), load_config("vae")
    te1_cfg, te2_cfg = load_config("text_encoder"), load_config("text_encoder_2")
    folder = load_folder()
    ck = build(folder, unet_cfg, vae_cfg, te1_cfg, te2_cfg)

    source = (f"{SCRIPT}: tests/golden/data/pipeline_sdxl/ in the single-file (sgm) layout; diffusers "
              f"{diffusers.__version__}, transformers {transformers.__version__}, torch {torch.__version__}")
    os.makedirs(OUT_DIR, exist_ok=True)
    # The tiny model's widths need its configs (32 norm groups and 64-wide heads, SDXL's defaults, do not divide
    # them): easel reads a component's diffusers config.json from the metadata key easel.config.<component>.
    meta = {"format": "pt", "easel.source": source}
    for comp in ("unet", "vae", "text_encoder", "text_encoder_2"):
        with open(os.path.join(FOLDER, comp, "config.json")) as f:
            meta[f"easel.config.{comp}"] = f.read()
    safetensors_io.save_file(ck, OUT, meta)

    # 1. the file as written
    back = safetensors.torch.load_file(OUT)
    compare("read back", back, ck)
    assert all(v.dtype == torch.float16 for k, v in back.items() if k != POSITION_IDS)
    assert back[POSITION_IDS].dtype == torch.int64 and list(back[POSITION_IDS].shape) == [1, 77]
    with gzip.open(BASE_KEYS) as f:
        base = {n: (s, d) for n, s, d in json.load(f)["tensors"]}
    odd = [k for k, v in back.items() if k not in base or len(base[k][0]) != v.dim()
           or base[k][1] != str(v.dtype).replace("torch.", "")]
    if odd:
        sys.exit(f"names not in SDXL base's key list with the same dtype and rank: {odd[:10]} ({len(odd)})")
    # 2. diffusers' converters; 3. the whole pipeline
    model_type = validate_converters(back, folder, unet_cfg, vae_cfg, te2_cfg)
    scheduler = validate_pipeline(folder)

    counts = {p: sum(k.startswith(p) for k in back) for p in (UNET_PREFIX, VAE_PREFIX, CLIP_L_PREFIX, BIGG_PREFIX)}
    assert sum(counts.values()) == len(back)
    print(f"wrote {os.path.relpath(OUT, ROOT)}: {os.path.getsize(OUT)} bytes, {len(back)} tensors {counts}; "
          f"folder tensors {({c: len(v) for c, v in folder.items()})}; infer_diffusers_model_type {model_type}; "
          f"from_single_file: every tensor equal bit for bit (scheduler {scheduler})")


if __name__ == "__main__":
    main()
