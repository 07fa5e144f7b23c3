#!/work/refvenv/bin/python
"""Writes key lists of SD3-era models to tests/data/keys/: tensor names, shapes and dtypes (no weights) of the
full-size SD3 medium and SD3.5 large MMDiTs, T5 v1.1 XXL's encoder and the FLUX.1 dev / schnell transformers, in
diffusers' layout and (for the MMDiTs and Flux) in the original single-file layout, for the detection and key-map
tests.

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline:

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_sd3_key_lists.py

That runs under the venv's diffusers 0.30.3 and then runs itself again, as `make_sd3_key_lists.py sd35_large`,
with PYTHONPATH=/work/refvenv-diffusers031 (diffusers 0.31.0, installed beside the venv with
`/work/refvenv/bin/pip install --no-deps --target /work/refvenv-diffusers031 diffusers==0.31.0`), for SD3.5, which
0.30.3 cannot build. About 11 s, 660 MB peak RSS, one torch thread; every run writes the same bytes (gzip mtime 0,
JSON in a fixed order; checked with two runs). Versions: torch 2.4.1 (CPU), transformers 4.40.2, diffusers 0.30.3
(0.31.0 for sd35_large_*). Every module is built inside `with torch.device("meta")` (T5 also under
transformers' no_init_weights), so no parameter is allocated. SD3's pos_embed buffer is computed with numpy at
build time, outside the meta device; while an MMDiT is built, get_2d_sincos_pos_embed is replaced by lazily
allocated zeros of the same shape (class LazyPosEmbed; the stand-in's shape is checked against the real function).

Outputs (<name>.json.gz: {"format": "easel-key-list-1", "source": ..., "tensors": [[name, shape, dtype], ...]}, the
format of make_key_lists.py / make_sdxl_key_lists.py, tensors in state-dict order (original lists: in the order
the mapping below produces them); <name>.expect.json: source, family ("sd3", "flux"; null for T5), variant,
layout ("diffusers", "original", "transformers"), class, config, weight_dtype, counts {tensors, parameters}; the
original lists also prefix, diffusers_list (the list they convert to) and diffusers_model_type (what that
diffusers' infer_diffusers_model_type says of the list); the SD3 diffusers lists buffers; T5 tied_left_out):

    name                        tensors  values (all tensors)  dtype     what
    sd3_medium_transformer        683    2,084,951,104         float16   SD3Transformer2DModel state dict, pos_embed
                                                                         buffer [1, 36864, 1536] included
                                                                         (2,028,328,000 without it)
    sd3_medium_original           491    2,084,951,104         float16   model.diffusion_model.* as in
                                                                         sd3_medium.safetensors
    sd35_large_transformer       1227    8,146,280,768         bfloat16  SD3.5 large (diffusers 0.31.0); pos_embed
                                                                         [1, 36864, 2432] included (8,056,627,520
                                                                         without)
    sd35_large_original           923    8,146,280,768         bfloat16  model.diffusion_model.* as in
                                                                         sd3.5_large.safetensors
    t5_v1_1_xxl_encoder           219    4,762,310,656         float16   T5EncoderModel as save_pretrained writes
                                                                         it: shared.weight [32128, 4096], no
                                                                         encoder.embed_tokens.weight (tied)
    flux1_dev_transformer        1160   11,901,408,320         bfloat16  FluxTransformer2DModel, guidance_embeds
    flux1_dev_original            780   11,901,408,320         bfloat16  BFL's flux1-dev.safetensors names
    flux1_schnell_transformer    1156   11,891,178,560         bfloat16  no guidance_embedder
    flux1_schnell_original        776   11,891,178,560         bfloat16  flux1-schnell.safetensors names
The single-file lists hold the transformer only. Stability's files may carry more under other prefixes
(first_stage_model.* for the VAE; text_encoders.clip_l/clip_g/t5xxl.* in the *_incl_clips* files); BFL's files
hold the transformer alone. dtypes: sd3_medium fp16 and the SD3 T5 fp16 are what the published
stable-diffusion-3-medium(-diffusers) files hold; FLUX.1 is bf16; SD3.5 large's bf16 is taken to be the
published one but was not checkable offline. The values counts are the element counts of the listed tensors.

Provenance of the configs (the venv's diffusers wheels hold no docs or tests; every value was checked against
what the installed code and diffusers' own conversion scripts (repository, scripts/) say):
- SD3 medium (stabilityai/stable-diffusion-3-medium-diffusers transformer/config.json): sample_size 128,
  patch_size 2, in_channels 16, joint_attention_dim 4096 are the literals diffusers' scripts/convert_sd3_to_diffusers.py
  builds SD3Transformer2DModel with; attention_head_dim 64, pooled_projection_dim 2048 (CLIP-L 768 + bigG 1280
  pooled), out_channels 16 are SD3Transformer2DModel's defaults, which that script keeps; num_attention_heads =
  num_layers (the script passes num_attention_heads=num_layers), 24 = the joint_blocks count; caption_projection_dim
  1536 = 24 * 64, hard-coded in 0.30.3's convert_sd3_transformer_checkpoint_to_diffusers and required by 0.31's
  infer_diffusers_model_type ("sd3" only when joint_blocks.0.context_block.adaLN_modulation.1.bias is 9216 =
  6 * 1536 wide); pos_embed_max_size 192 from the script's note "sd3.5 2b use pos_embed_max_size=384 and sd3.0 and
  sd3.5 8b use 192" (it reads sqrt of pos_embed's rows: 36864 = 192^2).
- SD3.5 large (stabilityai/stable-diffusion-3.5-large): 38 layers (0.31's CHECKPOINT_KEY_NAMES["sd35_large"] is
  joint_blocks.37.x_block.mlp.fc1.weight), 38 heads (heads = depth), caption_projection_dim 2432 = 38 * 64,
  qk_norm "rms_norm" (0.31's converter: ln_q present), no dual attention, pos_embed_max_size 192 (the note above).
- FLUX.1 (black-forest-labs/FLUX.1-dev, -schnell transformer/config.json): patch_size 1, in_channels 64,
  num_layers 19, num_single_layers 38, attention_head_dim 128, num_attention_heads 24, joint_attention_dim 4096,
  pooled_projection_dim 768, axes_dims_rope (16, 56, 56) are FluxTransformer2DModel's defaults in 0.30.3;
  scripts/convert_flux_to_diffusers.py hard-codes 19 / 38 / inner_dim 3072 / mlp_ratio 4.0 and so does the
  single-file converter (inner_dim 3072, mlp_ratio 4.0); guidance_embeds True for dev, False for schnell
  (infer_diffusers_model_type: guidance_in.* present -> "flux-dev", else "flux-schnell").
- T5 v1.1 XXL (google/t5-v1_1-xxl config.json; SD3's text_encoder_3/config.json is the same with
  architectures T5EncoderModel): d_model 4096, d_kv 64, num_heads 64, d_ff 10240, num_layers 24, vocab 32128,
  feed_forward_proj "gated-gelu", relative_attention_num_buckets 32, max_distance 128, tie_word_embeddings False.
  transformers' T5Config defaults are t5-small's and confirm nothing; the layout is the tiny SD3 golden's
  (make_sd3_goldens.py), whose T5 file likewise stores shared.weight only (checked).

The proof (every original list): the diffusers state dict (meta tensors) is mapped to original names by
sd3_to_original / flux_to_original below; diffusers' own converter (0.30.3's
convert_sd3_transformer_checkpoint_to_diffusers / convert_flux_transformer_checkpoint_to_diffusers; 0.31.0's for
SD3.5 large) is run on meta tensors of the listed shapes and must give exactly the diffusers names and shapes and
consume every original name. Then the same mapping is run on stand-ins that keep only dim 0 with a distinct number
per row, and the converter must put every row back where it came from: that proves the chunk order of every fused
tensor and the shift/scale swaps, which shapes alone cannot. 0.31.0's converter also reads the SD3 medium list
correctly, and 0.31.0 builds the same SD3 medium list (checked). infer_diffusers_model_type says "sd3",
"sd35_large", "flux-dev", "flux-schnell".

Mapping rules (diffusers name -> original name; all weights keep their [out, in] or conv shape: NO transposes
anywhere; every fusion is a concatenation along dim 0, i.e. of output rows)
SD3 / SD3.5 (Stability's MMDiT, prefix "model.diffusion_model."; i = block):
    pos_embed.pos_embed                               pos_embed  [1, pos_embed_max_size^2, width] (a stored
                                                      buffer: the file holds it, fp16/bf16-rounded)
    pos_embed.proj.*                                  x_embedder.proj.*  (conv 2x2 stride 2)
    time_text_embed.timestep_embedder.linear_1/2.*    t_embedder.mlp.0/2.*
    time_text_embed.text_embedder.linear_1/2.*        y_embedder.mlp.0/2.*
    context_embedder.*                                context_embedder.*
    transformer_blocks.i.norm1.linear.*               joint_blocks.i.x_block.adaLN_modulation.1.*  (6 or, with
                                                      attn2, 9 chunks; same order: no swap)
    transformer_blocks.i.attn.to_q/to_k/to_v.*        joint_blocks.i.x_block.attn.qkv.*  = cat(q, k, v) rows
    transformer_blocks.i.attn.to_out.0.*              joint_blocks.i.x_block.attn.proj.*
    transformer_blocks.i.ff.net.0.proj.* / net.2.*    joint_blocks.i.x_block.mlp.fc1.* / fc2.*
    transformer_blocks.i.norm1_context.linear.*       joint_blocks.i.context_block.adaLN_modulation.1.*
                                                      (6 chunks, same order) EXCEPT in the last block
                                                      (context_pre_only): 2 chunks, diffusers [scale; shift], the
                                                      file [shift; scale]: swap the two halves of the rows
    transformer_blocks.i.attn.add_q/add_k/add_v_proj.*  joint_blocks.i.context_block.attn.qkv.* = cat(q, k, v);
                                                      present in the last block too
    transformer_blocks.i.attn.to_add_out.*            joint_blocks.i.context_block.attn.proj.*  (not in the last
                                                      block)
    transformer_blocks.i.ff_context.net.0.proj/net.2.*  joint_blocks.i.context_block.mlp.fc1/fc2.*  (not in the
                                                      last block)
    SD3.5 only: attn.norm_q/norm_k.weight             joint_blocks.i.x_block.attn.ln_q/ln_k.weight
                attn.norm_added_q/norm_added_k.weight joint_blocks.i.context_block.attn.ln_q/ln_k.weight
                attn2.to_q/to_k/to_v.*                joint_blocks.i.x_block.attn2.qkv.* = cat(q, k, v)
                attn2.to_out.0.*                      joint_blocks.i.x_block.attn2.proj.*
                attn2.norm_q/norm_k.weight            joint_blocks.i.x_block.attn2.ln_q/ln_k.weight
    proj_out.*                                        final_layer.linear.*
    norm_out.linear.*                                 final_layer.adaLN_modulation.1.*  swapped: diffusers
                                                      [scale; shift], the file [shift; scale]
FLUX.1 (BFL, no prefix; i = double block, s = single block):
    time_text_embed.timestep_embedder.linear_1/2.*    time_in.in_layer/out_layer.*
    time_text_embed.text_embedder.linear_1/2.*        vector_in.in_layer/out_layer.*
    time_text_embed.guidance_embedder.linear_1/2.*    guidance_in.in_layer/out_layer.*  (dev only: schnell has
                                                      no guidance_in, the only difference between the two)
    context_embedder.* / x_embedder.*                 txt_in.* / img_in.*
    transformer_blocks.i.norm1.linear.*               double_blocks.i.img_mod.lin.*  (6 chunks, same order)
    transformer_blocks.i.norm1_context.linear.*       double_blocks.i.txt_mod.lin.*
    transformer_blocks.i.attn.to_q/to_k/to_v.*        double_blocks.i.img_attn.qkv.* = cat(q, k, v)
    transformer_blocks.i.attn.add_q/k/v_proj.*        double_blocks.i.txt_attn.qkv.* = cat(q, k, v)
    transformer_blocks.i.attn.norm_q/norm_k.weight    double_blocks.i.img_attn.norm.query_norm.scale /
                                                      key_norm.scale  (RMSNorm weights named "scale")
    transformer_blocks.i.attn.norm_added_q/k.weight   double_blocks.i.txt_attn.norm.query_norm.scale / key_norm.scale
    transformer_blocks.i.attn.to_out.0.*              double_blocks.i.img_attn.proj.*
    transformer_blocks.i.attn.to_add_out.*            double_blocks.i.txt_attn.proj.*
    transformer_blocks.i.ff.net.0.proj.* / net.2.*    double_blocks.i.img_mlp.0.* / img_mlp.2.*
    transformer_blocks.i.ff_context.net.0.proj / net.2  double_blocks.i.txt_mlp.0.* / txt_mlp.2.*
    single_transformer_blocks.s.norm.linear.*         single_blocks.s.modulation.lin.*  (3 chunks, same order)
    single_transformer_blocks.s.attn.to_q/to_k/to_v.*, .proj_mlp.*
                                                      single_blocks.s.linear1.* = cat(q, k, v, mlp) rows:
                                                      [3 * 3072 + 12288, 3072] = [21504, 3072]; split sizes
                                                      (3072, 3072, 3072, 12288)
    single_transformer_blocks.s.attn.norm_q/norm_k.weight  single_blocks.s.norm.query_norm.scale / key_norm.scale
    single_transformer_blocks.s.proj_out.*            single_blocks.s.linear2.*  [3072, 15360], unchanged: its
                                                      input columns are [attention output (3072) | GELU(mlp)
                                                      (12288)] in both
    proj_out.*                                        final_layer.linear.*
    norm_out.linear.*                                 final_layer.adaLN_modulation.1.*  swapped ([shift; scale] in
                                                      the file, [scale; shift] in diffusers)
Telling them apart by names and shapes: SD3 vs SD3.5 large: attn.ln_q present; SD3.5 medium: attn2.* present
(and pos_embed 384^2 rows); depth = joint_blocks count, width = 64 * depth = context_embedder rows. FLUX.1:
double_blocks.* (BFL) or single_transformer_blocks.* (diffusers); dev vs schnell: guidance_in /
guidance_embedder.
"""
import gzip
import json
import os
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_sdxl_key_lists as sdxl_lists  # noqa: E402  (write_list: the easel-key-list-1 writer)

import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import SD3Transformer2DModel  # noqa: E402
from diffusers.loaders import single_file_utils as sfu  # noqa: E402
from transformers import T5Config, T5EncoderModel  # noqa: E402
from transformers.modeling_utils import no_init_weights  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "tests", "data", "keys")
SCRIPT = "tools/reference/make_sd3_key_lists.py"
OVERLAY = "/work/refvenv-diffusers031"  # diffusers 0.31.0 (tools/reference/README.md, "The pip venv")

# --- published configs (see the docstring for where each value comes from) ------------------------------------
SD3_MEDIUM = {
    "_class_name": "SD3Transformer2DModel", "sample_size": 128, "patch_size": 2, "in_channels": 16,
    "num_layers": 24, "attention_head_dim": 64, "num_attention_heads": 24, "joint_attention_dim": 4096,
    "caption_projection_dim": 1536, "pooled_projection_dim": 2048, "out_channels": 16, "pos_embed_max_size": 192,
}  # stabilityai/stable-diffusion-3-medium-diffusers transformer/config.json
SD35_LARGE = dict(SD3_MEDIUM, **{
    "num_layers": 38, "num_attention_heads": 38, "caption_projection_dim": 2432, "qk_norm": "rms_norm",
})  # stabilityai/stable-diffusion-3.5-large transformer/config.json (dual_attention_layers: the default, none)
T5_XXL = {
    "architectures": ["T5EncoderModel"], "d_ff": 10240, "d_kv": 64, "d_model": 4096, "decoder_start_token_id": 0,
    "dense_act_fn": "gelu_new", "dropout_rate": 0.1, "eos_token_id": 1, "feed_forward_proj": "gated-gelu",
    "initializer_factor": 1.0, "is_encoder_decoder": True, "is_gated_act": True, "layer_norm_epsilon": 1e-06,
    "model_type": "t5", "num_decoder_layers": 24, "num_heads": 64, "num_layers": 24, "output_past": True,
    "pad_token_id": 0, "relative_attention_max_distance": 128, "relative_attention_num_buckets": 32,
    "tie_word_embeddings": False, "use_cache": True, "vocab_size": 32128,
}  # stabilityai/stable-diffusion-3-medium-diffusers text_encoder_3/config.json (google/t5-v1_1-xxl's, encoder only)
FLUX_DEV = {
    "_class_name": "FluxTransformer2DModel", "patch_size": 1, "in_channels": 64, "num_layers": 19,
    "num_single_layers": 38, "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 4096,
    "pooled_projection_dim": 768, "guidance_embeds": True, "axes_dims_rope": [16, 56, 56],
}  # black-forest-labs/FLUX.1-dev transformer/config.json
FLUX_SCHNELL = dict(FLUX_DEV, guidance_embeds=False)  # black-forest-labs/FLUX.1-schnell transformer/config.json

SD3_PREFIX = "model.diffusion_model."  # Stability's single files (sd3_medium.safetensors, sd3.5_large.safetensors)
FLUX_PREFIX = ""  # BFL's flux1-dev.safetensors / flux1-schnell.safetensors: no prefix


def source0():
    return (f"{SCRIPT}; diffusers {diffusers.__version__}, transformers {transformers.__version__}, "
            f"torch {torch.__version__}")


# --- building without memory --------------------------------------------------------------------------------
class LazyPosEmbed:
    """SD3's PatchEmbed computes its pos_embed buffer with numpy while the model is built, outside the meta device
    (float64 [192 * 192, width] and its halves: about 2 GB for SD3.5 large). Its values are never used here, so
    while a model is built get_2d_sincos_pos_embed is replaced by float32 zeros of the same shape, which the OS
    never backs with memory. The stand-in's shape is checked against the real function first."""

    def __enter__(self):
        import numpy as np
        from diffusers.models import embeddings
        self.module, self.real = embeddings, embeddings.get_2d_sincos_pos_embed

        def zeros(embed_dim, grid_size, **kw):
            return np.zeros((grid_size * grid_size, embed_dim), dtype=np.float32)

        assert self.real(32, 6, base_size=3).shape == zeros(32, 6).shape == (36, 32)
        embeddings.get_2d_sincos_pos_embed = zeros
        return self

    def __exit__(self, *exc):
        self.module.get_2d_sincos_pos_embed = self.real


def build_diffusers(cls, cfg):
    with torch.device("meta"), LazyPosEmbed():  # parameters without storage
        return cls.from_config({k: v for k, v in cfg.items() if k != "_class_name"})


def shapes(module, drop=()):
    """(name, shape) of the state dict, in its order. SD3's pos_embed buffer is made from numpy (LazyPosEmbed), so
    it is a CPU tensor; everything else is meta."""
    sd = module.state_dict()
    for k, v in sd.items():
        assert v.is_meta or k == "pos_embed.pos_embed", k
    return {k: list(v.shape) for k, v in sd.items() if k not in drop}


def t5_list():
    with torch.device("meta"), no_init_weights():
        model = T5EncoderModel(T5Config(**{k: v for k, v in T5_XXL.items() if k != "architectures"}))
    tied = list(model._tied_weights_keys)
    assert tied == ["encoder.embed_tokens.weight"]
    assert model.encoder.embed_tokens.weight is model.shared.weight
    # What save_pretrained writes: the tied copy of shared.weight is left out (pipeline_sd3's tiny T5 file has
    # shared.weight only, checked below).
    return shapes(model, drop=tied), tied


def check_tiny_t5_file():
    path = os.path.join(ROOT, "tests", "golden", "data", "pipeline_sd3", "text_encoder_3", "model.safetensors")
    if not os.path.exists(path):
        return
    from safetensors import safe_open
    with safe_open(path, "pt") as f:
        keys = set(f.keys())
    assert "shared.weight" in keys and "encoder.embed_tokens.weight" not in keys, "tiny T5 file"


# --- diffusers -> original single-file names -----------------------------------------------------------------
class Mapper:
    """Moves tensors from a diffusers state dict to original names, by renaming, fusing along dim 0, or swapping
    the two halves of dim 0. Works on meta tensors (names and shapes) and on real ones (the row-order proof)."""

    def __init__(self, sd):
        self.left = dict(sd)
        self.out = {}

    def move(self, d, o):
        self.out[o] = self.left.pop(d)

    def fuse(self, ds, o):
        self.out[o] = torch.cat([self.left.pop(d) for d in ds], dim=0)

    def swap(self, d, o):
        """diffusers' AdaLayerNormContinuous rows are [scale; shift], the original's [shift; scale]."""
        scale, shift = self.left.pop(d).chunk(2, dim=0)
        self.out[o] = torch.cat([shift, scale], dim=0)

    def done(self, prefix):
        assert not self.left, sorted(self.left)[:10]
        return {prefix + k: v for k, v in self.out.items()}


def sd3_to_original(sd, cfg):
    m = Mapper(sd)
    n = cfg["num_layers"]
    qk = cfg.get("qk_norm") is not None
    dual = set(cfg.get("dual_attention_layers", ()))
    m.move("pos_embed.pos_embed", "pos_embed")
    for w in ("weight", "bias"):
        m.move(f"pos_embed.proj.{w}", f"x_embedder.proj.{w}")
    for d, o in (("timestep_embedder", "t_embedder"), ("text_embedder", "y_embedder")):
        for i, j in ((1, 0), (2, 2)):
            for w in ("weight", "bias"):
                m.move(f"time_text_embed.{d}.linear_{i}.{w}", f"{o}.mlp.{j}.{w}")
    for w in ("weight", "bias"):
        m.move(f"context_embedder.{w}", f"context_embedder.{w}")
    for i in range(n):
        b, x, c = f"transformer_blocks.{i}.", f"joint_blocks.{i}.x_block.", f"joint_blocks.{i}.context_block."
        last = i == n - 1
        for w in ("weight", "bias"):
            m.move(f"{b}norm1.linear.{w}", f"{x}adaLN_modulation.1.{w}")
            m.fuse([f"{b}attn.to_{p}.{w}" for p in "qkv"], f"{x}attn.qkv.{w}")
            m.move(f"{b}attn.to_out.0.{w}", f"{x}attn.proj.{w}")
            m.move(f"{b}ff.net.0.proj.{w}", f"{x}mlp.fc1.{w}")
            m.move(f"{b}ff.net.2.{w}", f"{x}mlp.fc2.{w}")
            if i in dual:
                m.fuse([f"{b}attn2.to_{p}.{w}" for p in "qkv"], f"{x}attn2.qkv.{w}")
                m.move(f"{b}attn2.to_out.0.{w}", f"{x}attn2.proj.{w}")
            if last:  # context_pre_only: AdaLayerNormContinuous (2 chunks), no proj, no mlp
                m.swap(f"{b}norm1_context.linear.{w}", f"{c}adaLN_modulation.1.{w}")
            else:
                m.move(f"{b}norm1_context.linear.{w}", f"{c}adaLN_modulation.1.{w}")
            m.fuse([f"{b}attn.add_{p}_proj.{w}" for p in "qkv"], f"{c}attn.qkv.{w}")
            if not last:
                m.move(f"{b}attn.to_add_out.{w}", f"{c}attn.proj.{w}")
                m.move(f"{b}ff_context.net.0.proj.{w}", f"{c}mlp.fc1.{w}")
                m.move(f"{b}ff_context.net.2.{w}", f"{c}mlp.fc2.{w}")
        if qk:
            m.move(f"{b}attn.norm_q.weight", f"{x}attn.ln_q.weight")
            m.move(f"{b}attn.norm_k.weight", f"{x}attn.ln_k.weight")
            m.move(f"{b}attn.norm_added_q.weight", f"{c}attn.ln_q.weight")
            m.move(f"{b}attn.norm_added_k.weight", f"{c}attn.ln_k.weight")
            if i in dual:
                m.move(f"{b}attn2.norm_q.weight", f"{x}attn2.ln_q.weight")
                m.move(f"{b}attn2.norm_k.weight", f"{x}attn2.ln_k.weight")
    for w in ("weight", "bias"):
        m.move(f"proj_out.{w}", f"final_layer.linear.{w}")
        m.swap(f"norm_out.linear.{w}", f"final_layer.adaLN_modulation.1.{w}")
    return m.done(SD3_PREFIX)


def flux_to_original(sd, cfg):
    m = Mapper(sd)
    embedders = [("timestep_embedder", "time_in"), ("text_embedder", "vector_in")]
    if cfg["guidance_embeds"]:
        embedders.append(("guidance_embedder", "guidance_in"))
    for d, o in embedders:
        for i, j in ((1, "in_layer"), (2, "out_layer")):
            for w in ("weight", "bias"):
                m.move(f"time_text_embed.{d}.linear_{i}.{w}", f"{o}.{j}.{w}")
    for w in ("weight", "bias"):
        m.move(f"context_embedder.{w}", f"txt_in.{w}")
        m.move(f"x_embedder.{w}", f"img_in.{w}")
    for i in range(cfg["num_layers"]):
        b, o = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        for w in ("weight", "bias"):
            m.move(f"{b}norm1.linear.{w}", f"{o}img_mod.lin.{w}")
            m.move(f"{b}norm1_context.linear.{w}", f"{o}txt_mod.lin.{w}")
            m.fuse([f"{b}attn.to_{p}.{w}" for p in "qkv"], f"{o}img_attn.qkv.{w}")
            m.fuse([f"{b}attn.add_{p}_proj.{w}" for p in "qkv"], f"{o}txt_attn.qkv.{w}")
            m.move(f"{b}attn.to_out.0.{w}", f"{o}img_attn.proj.{w}")
            m.move(f"{b}attn.to_add_out.{w}", f"{o}txt_attn.proj.{w}")
            m.move(f"{b}ff.net.0.proj.{w}", f"{o}img_mlp.0.{w}")
            m.move(f"{b}ff.net.2.{w}", f"{o}img_mlp.2.{w}")
            m.move(f"{b}ff_context.net.0.proj.{w}", f"{o}txt_mlp.0.{w}")
            m.move(f"{b}ff_context.net.2.{w}", f"{o}txt_mlp.2.{w}")
        m.move(f"{b}attn.norm_q.weight", f"{o}img_attn.norm.query_norm.scale")
        m.move(f"{b}attn.norm_k.weight", f"{o}img_attn.norm.key_norm.scale")
        m.move(f"{b}attn.norm_added_q.weight", f"{o}txt_attn.norm.query_norm.scale")
        m.move(f"{b}attn.norm_added_k.weight", f"{o}txt_attn.norm.key_norm.scale")
    for i in range(cfg["num_single_layers"]):
        b, o = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        for w in ("weight", "bias"):
            m.move(f"{b}norm.linear.{w}", f"{o}modulation.lin.{w}")
            m.fuse([f"{b}attn.to_q.{w}", f"{b}attn.to_k.{w}", f"{b}attn.to_v.{w}", f"{b}proj_mlp.{w}"],
                   f"{o}linear1.{w}")
            m.move(f"{b}proj_out.{w}", f"{o}linear2.{w}")
        m.move(f"{b}attn.norm_q.weight", f"{o}norm.query_norm.scale")
        m.move(f"{b}attn.norm_k.weight", f"{o}norm.key_norm.scale")
    for w in ("weight", "bias"):
        m.move(f"proj_out.{w}", f"final_layer.linear.{w}")
        m.swap(f"norm_out.linear.{w}", f"final_layer.adaLN_modulation.1.{w}")
    return m.done(FLUX_PREFIX)


# --- the proofs ----------------------------------------------------------------------------------------------
def meta(names_shapes):
    return {k: torch.empty(s, device="meta") for k, s in names_shapes.items()}


def row_ids(names_shapes):
    """A stand-in per tensor holding only dim 0 (every converter here splits, fuses and swaps along dim 0 only):
    shape [rows, 1, ...], each row a distinct number (float64: exact for every row count here)."""
    out, base = {}, 0
    for k, s in names_shapes.items():
        rows = s[0] if s else 1
        t = torch.arange(base, base + rows, dtype=torch.float64)
        out[k] = t.reshape([rows] + [1] * (len(s) - 1)) if s else t.reshape(())
        base += rows
    return out


def prove(name, diff, to_original, cfg, convert):
    """The original list, converted back by diffusers' own converter, gives exactly the diffusers list (names and
    shapes, on meta tensors), every original name is consumed, and (on row-id stand-ins) every row lands where
    it came from: the fusing order and the shift/scale swap are diffusers' own."""
    orig = {k: list(v.shape) for k, v in to_original(meta(diff), cfg).items()}
    ck = meta(orig)
    got = convert(ck)
    assert not ck, (name, "left unconverted", sorted(ck)[:10])
    got = {k: list(v.shape) for k, v in got.items()}
    if got != diff:
        missing = sorted(set(diff) - set(got))[:10]
        extra = sorted(set(got) - set(diff))[:10]
        bad = [k for k in diff if k in got and got[k] != diff[k]][:10]
        sys.exit(f"{name}: diffusers' converter does not give the diffusers list back: missing {missing} extra "
                 f"{extra} shape {bad}")
    ids = row_ids(diff)
    back = convert(dict(to_original(ids, cfg)))
    assert back.keys() == ids.keys()
    for k, v in ids.items():
        assert torch.equal(back[k].reshape(-1), v.reshape(-1)), (name, "row order", k)
    return orig


def params(names_shapes):
    total = 0
    for s in names_shapes.values():
        n = 1
        for d in s:
            n *= d
        total += n
    return total


def write(name, names_shapes, dtype, source, expect):
    sdxl_lists.write_list(os.path.join(OUT, f"{name}.json.gz"), names_shapes,
                          {"__default__": dtype, "__source__": source})
    expect = dict({"source": source, "weight_dtype": dtype}, **expect,
                  counts={"tensors": len(names_shapes), "parameters": params(names_shapes)})
    with open(os.path.join(OUT, f"{name}.expect.json"), "w") as f:
        json.dump(expect, f, indent=1)
        f.write("\n")
    print(f"{name}: {len(names_shapes)} tensors, {params(names_shapes):,} values "
          f"({os.path.getsize(os.path.join(OUT, name + '.json.gz'))} bytes)")


def sd3_lists(name, cfg, orig_name, dtype, what, variant):
    diff = shapes(build_diffusers(SD3Transformer2DModel, cfg))
    orig = prove(name, diff, sd3_to_original, cfg, sfu.convert_sd3_transformer_checkpoint_to_diffusers)
    model_type = sfu.infer_diffusers_model_type(meta(orig))
    src = f"{source0()}; {what}"
    pos = diff["pos_embed.pos_embed"]
    write(name, diff, dtype, f"{src}; diffusers layout (SD3Transformer2DModel state dict, pos_embed buffer "
          "included)", {"family": "sd3", "variant": variant, "layout": "diffusers", "class": "SD3Transformer2DModel",
                        "config": cfg,
                        "buffers": {"pos_embed.pos_embed": pos}})
    write(orig_name, orig, dtype, f"{src}; Stability single-file layout ({SD3_PREFIX}*), proved with diffusers "
          f"{diffusers.__version__}'s convert_sd3_transformer_checkpoint_to_diffusers",
          {"family": "sd3", "variant": variant, "layout": "original", "prefix": SD3_PREFIX,
           "diffusers_list": name, "diffusers_model_type": model_type, "config": cfg})
    return model_type


def main_030():
    assert diffusers.__version__ == "0.30.3", diffusers.__version__
    from diffusers import FluxTransformer2DModel
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    mt = sd3_lists("sd3_medium_transformer", SD3_MEDIUM, "sd3_medium_original", "float16",
                   "stabilityai/stable-diffusion-3-medium(-diffusers)", "3-medium")
    assert mt == "sd3", mt

    check_tiny_t5_file()
    t5, tied = t5_list()
    write("t5_v1_1_xxl_encoder", t5, "float16",
          f"{source0()}; transformers T5EncoderModel with google/t5-v1_1-xxl's config (SD3's text_encoder_3); "
          "what save_pretrained writes: encoder.embed_tokens.weight (tied to shared.weight) left out",
          {"family": None, "variant": "t5-v1_1-xxl", "layout": "transformers", "class": "T5EncoderModel",
           "config": T5_XXL, "tied_left_out": tied})

    for name, cfg, orig_name in (("flux1_dev_transformer", FLUX_DEV, "flux1_dev_original"),
                                 ("flux1_schnell_transformer", FLUX_SCHNELL, "flux1_schnell_original")):
        diff = shapes(build_diffusers(FluxTransformer2DModel, cfg))
        orig = prove(name, diff, flux_to_original, cfg, sfu.convert_flux_transformer_checkpoint_to_diffusers)
        model_type = sfu.infer_diffusers_model_type(meta(orig))
        assert model_type == ("flux-dev" if cfg["guidance_embeds"] else "flux-schnell"), model_type
        variant = "dev" if cfg["guidance_embeds"] else "schnell"
        repo = "black-forest-labs/FLUX.1-" + variant
        write(name, diff, "bfloat16", f"{source0()}; diffusers FluxTransformer2DModel with {repo}'s config; "
              "diffusers layout", {"family": "flux", "variant": variant, "layout": "diffusers",
                                   "class": "FluxTransformer2DModel", "config": cfg})
        write(orig_name, orig, "bfloat16", f"{source0()}; {repo}: BFL's single-file layout "
              f"(flux1-{variant}.safetensors, no prefix), proved with "
              "diffusers' convert_flux_transformer_checkpoint_to_diffusers",
              {"family": "flux", "variant": variant, "layout": "original", "prefix": FLUX_PREFIX,
               "diffusers_list": name, "diffusers_model_type": model_type, "config": cfg})

    # SD3.5 large needs diffusers 0.31.0: the same script, on the overlay.
    if not os.path.isdir(os.path.join(OVERLAY, "diffusers")):
        sys.exit(f"{OVERLAY} is missing: pip install --no-deps --target {OVERLAY} diffusers==0.31.0")
    env = dict(os.environ, PYTHONPATH=OVERLAY + (os.pathsep + os.environ["PYTHONPATH"]
                                                 if os.environ.get("PYTHONPATH") else ""))
    subprocess.run([sys.executable, os.path.abspath(__file__), "sd35_large"], env=env, check=True)


def main_031():
    assert diffusers.__version__ == "0.31.0", f"run with PYTHONPATH={OVERLAY} (diffusers {diffusers.__version__})"
    torch.set_num_threads(1)
    # 0.31's converter reads the SD3 medium list as 0.30.3's does (it gained qk-norm and attn2 handling only).
    diff = shapes(build_diffusers(SD3Transformer2DModel, SD3_MEDIUM))
    prove("sd3_medium_transformer (0.31)", diff, sd3_to_original, SD3_MEDIUM,
          sfu.convert_sd3_transformer_checkpoint_to_diffusers)
    with gzip.open(os.path.join(OUT, "sd3_medium_transformer.json.gz")) as f:
        assert {k: s for k, s, _ in json.load(f)["tensors"]} == diff, "0.31 builds another SD3 medium"
    mt = sd3_lists("sd35_large_transformer", SD35_LARGE, "sd35_large_original", "bfloat16",
                   "stabilityai/stable-diffusion-3.5-large", "3.5-large")
    assert mt == "sd35_large", mt


if __name__ == "__main__":
    if sys.argv[1:] == ["sd35_large"]:
        main_031()
    elif not sys.argv[1:]:
        main_030()
    else:
        sys.exit(f"usage: {sys.argv[0]} [sd35_large]")
