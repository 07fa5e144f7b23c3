#!/work/refvenv/bin/python
"""SD3.5 goldens from diffusers 0.31.0 (the first release with SD3.5): StableDiffusion3Pipeline with two tiny random
SD3.5-shaped transformers, SD3.5 large's (q/k RMS norms) and SD3.5 medium's MMDiT-X (q/k RMS norms and a second,
image-only attention in the first blocks), on the tiny SD3's other components.

The venv's own diffusers is 0.30.3, which has neither. diffusers 0.31.0 is installed beside it, without touching
the venv, and put first on the path only for this script (tools/reference/README.md, "The pip venv"):

    /work/refvenv/bin/pip install --no-deps --target /work/refvenv-diffusers031 diffusers==0.31.0
    PYTHONPATH=/work/refvenv-diffusers031 HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_sd35_goldens.py

(--no-deps: diffusers 0.31.0 runs on the venv's huggingface_hub 0.36.2, numpy, Pillow, safetensors and
importlib_metadata as they are.) The script refuses to run on any other diffusers. Run make_sd3_goldens.py first:
this script reads tests/golden/data/pipeline_sd3/ and imports that script's conventions (weight rule, case runner,
writer). It takes about 7 s on a two-core machine beside a running build (660 MB peak RSS). Every weight is random;
nothing is downloaded. Every run writes the same bytes (torch pinned to one thread; the golden goes through
safetensors_io.py with its metadata keys sorted, temporary paths kept out of it; checked with two runs). Versions
(metadata "versions" keys): torch 2.4.1 (CPU), diffusers 0.31.0, transformers 4.40.2, tokenizers 0.19.1,
sentencepiece 0.1.99, protobuf 4.25.3, huggingface_hub 0.36.2. All computation is float32 on the CPU with
diffusers' default processors (JointAttnProcessor2_0: torch's scaled_dot_product_attention) and transformers' eager
T5/CLIP attention.

It writes two things (all tensors float32 unless said):

1. tests/golden/data/pipeline_sd35_large/ and tests/golden/data/pipeline_sd35_medium/: each holds ONLY
   model_index.json and transformer/ (config.json, diffusion_pytorch_model.safetensors in fp16), about 270 KB and
   300 KB. Everything else is pipeline_sd3's: the folder is not loadable on its own. A loader (the C++ test, and
   this script, which loads through exactly such a view) builds a folder of links: scheduler, text_encoder,
   text_encoder_2, text_encoder_3, tokenizer, tokenizer_2, tokenizer_3 and vae -> tests/golden/data/pipeline_sd3/<same>,
   transformer and model_index.json -> this folder's. Both files are what StableDiffusion3Pipeline.save_pretrained
   (safe_serialization, variant None, after .to(torch.float16)) writes for pipeline_sd3's pipeline (rebuilt here
   with make_sd3_goldens.build_pipeline) with the new transformer. The script checks that every other file
   save_pretrained writes is pipeline_sd3's (the same file names; byte-identical, except vae/config.json and
   scheduler/scheduler_config.json, which differ only in "_diffusers_version"), and that model_index.json differs
   from pipeline_sd3's only in "_diffusers_version": "0.31.0" (the same nine components and classes). Every run
   below uses the view reloaded with from_pretrained(torch_dtype=torch.float32); the script checks that every
   reloaded transformer tensor (pos_embed buffer included) equals the fp16-rounded one bit for bit, and that the
   shared components equal pipeline_sd3's fp16 files widened to fp32.

2. tests/golden/data/sd35_cases.safetensors (about 740 KB): transformer goldens and pipeline cases for both.

The transformers
----------------
SD3Transformer2DModel with the tiny SD3's shape (make_sd3_goldens: sample_size 16, patch_size 2, in/out_channels
16, num_layers 3, attention_head_dim 8, num_attention_heads 4 (inner 32), joint_attention_dim 96,
caption_projection_dim 32, pooled_projection_dim 80, pos_embed_max_size 16; block 2 is context_pre_only), plus
    large:   qk_norm "rms_norm", dual_attention_layers ()      (SD3.5 large / large-turbo: 38 layers, no attn2)
    medium:  qk_norm "rms_norm", dual_attention_layers (0, 1)  (SD3.5 medium: 24 layers, attn2 in 0..12)
large has 107 tensors (130,464 values, pos_embed's 8,192 included), medium 127 (145,280). The pos_embed buffer,
time/text embedders, context_embedder, norm_out and proj_out are SD3's exactly (see make_sd3_goldens.py).
Weights: torch.manual_seed(seed), the model is built, its pos_embed buffer is rounded to fp16, then every
parameter (named_parameters() order) is re-drawn from torch.Generator().manual_seed(seed) with make_sd3_goldens'
rule (matrices randn * min(0.2, 1.5 / sqrt(fan_in)), other biases 0.2 * randn, LayerNorm/GroupNorm weights
1 + 0.1 * randn, their biases 0.1 * randn) with diffusers' RMSNorm counted as a norm: every q/k norm weight is
1 + 0.1 * randn (not ones: a port that skips the weight fails). Each value is rounded to fp16 at once. seed 2035
for large, 2036 for medium. The transformer has no other affine norm.

What a reimplementation must copy (diffusers 0.31.0; restated by manual_block below, which the script checks
against every block of every transformer call: 9.5e-6 at most)
-----------------------------------------------------------------------------------------------------------
q/k norm (qk_norm "rms_norm"; Attention(..., qk_norm="rms_norm", eps=1e-6) in JointTransformerBlock):
- Applied to q and k, never v, after the projection's bias and AFTER the split into heads: the projection output
  [B, L, heads * head_dim] is viewed [B, L, heads, head_dim] (head h = columns h*head_dim .. (h+1)*head_dim - 1),
  transposed to [B, heads, L, head_dim], and normalised over head_dim only: x * rsqrt(mean(x^2) + eps) * weight,
  weight [head_dim] shared by all heads, no bias, no mean subtraction; the mean of squares is computed in float32.
- eps is 1e-6, passed by JointTransformerBlock. Attention's own default is 1e-5; SAI's mmditx.py uses 1e-6 too.
- Four separately weighted norms per joint attention: norm_q, norm_k on the image stream (to_q, to_k) and
  norm_added_q, norm_added_k on the context stream (add_q_proj, add_k_proj). Each stream is normed on its own,
  then the image and context q (and k, v) are concatenated along the sequence (image first) for one softmax
  over 1/sqrt(head_dim) scaled scores. The norms change nothing else (the same SDPA scale as SD3).
- The last (context_pre_only) block has them too, and add_q_proj: its context queries are computed and normed, but
  the context rows of the attention output are dropped, so add_q_proj and norm_added_q of the last block have no
  effect on any output (a port may skip them; the file still holds them). Its context keys and values do count.
- attn2 (below) has its own norm_q, norm_k [head_dim] and no added norms.
- Single-file names (diffusers 0.31's convert_sd3_transformer_checkpoint_to_diffusers): x_block.attn.ln_q/ln_k
  -> attn.norm_q/norm_k, context_block.attn.ln_q/ln_k -> attn.norm_added_q/norm_added_k, x_block.attn2.ln_q/ln_k
  -> attn2.norm_q/norm_k, all ".weight", copied as they are.
Dual attention (MMDiT-X; JointTransformerBlock(use_dual_attention=True) for the blocks in dual_attention_layers):
- norm1 is SD35AdaLayerNormZeroX: one linear of SiLU(temb) to 9 * dim (norm1.linear.weight [288, 32] here, not
  [192, 32]), chunked in this order: shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp, shift_msa2,
  scale_msa2, gate_msa2. The three new chunks come LAST, so the first 6 * dim rows are an ordinary AdaLayerNormZero;
  the single-file x_block.adaLN_modulation.1 has the same order (copied unchanged, no shift/scale swap).
- ONE LayerNorm (eps 1e-6, no affine) of the block input x, modulated twice: x1 = n * (1 + scale_msa) + shift_msa
  for the joint attention, x2 = n * (1 + scale_msa2) + shift_msa2 for attn2. Both read the block's INPUT: attn2 does
  not see the joint attention's output (the two run in parallel, not one after the other).
- attn2 is a plain self-attention over the image tokens only (to_q/to_k/to_v [dim, dim] with biases, q/k RMS norms
  as above, the same heads and head_dim, to_out.0 with bias; no context, no add_*_proj, no to_add_out). diffusers
  runs it through the same JointAttnProcessor2_0 instance with encoder_hidden_states None.
- Residuals: x = x + gate_msa * to_out(joint attention, image rows); then x = x + gate_msa2 * attn2.to_out(attn2);
  then norm2 / MLP on that x: x = x + gate_mlp * ff(LayerNorm(x) * (1 + scale_mlp) + shift_mlp). The context
  stream is exactly SD3's (norm1_context is AdaLayerNormZero with 6 chunks even in a dual block).
- A dual block that is also context_pre_only is possible in diffusers (not built here; SD3.5 medium's last block,
  23, is not a dual one).
Pipeline: diffusers 0.31.0's StableDiffusion3Pipeline is 0.30.3's but for the size check (height and width must
be multiples of vae_scale_factor * patch_size: 4 here, 16 for the real models); FlowMatchEulerDiscreteScheduler and
the conditioning are unchanged (make_sd3_goldens.py's docstring holds for every case here). SD3.5 large and medium
ship the same scheduler config (shift 3.0) and the same nine components as SD3 medium.
Skip-layer guidance: diffusers 0.31.0 has none. StableDiffusion3Pipeline.__call__ has no skip_guidance_layers /
skip_layer_guidance_scale / _start / _stop and SD3Transformer2DModel.forward no skip_layers (they came with
huggingface/diffusers#9880, after issue #9819, in 0.32), so there is no SLG case.

sd35_cases.safetensors
----------------------
Transformer goldens (inputs drawn from torch.Generator().manual_seed(IO_SEED = 11) in the order listed:
make_sd3_goldens' own draws, so the inputs equal model_sd3_tiny.safetensors' transformer.* inputs, checked):
    transformer.x_sq [1, 16, 16, 16], transformer.ctx_sq [1, 333, 96], transformer.pooled_sq [1, 80],
    transformer.x_wide [1, 16, 16, 24], transformer.ctx_wide [1, 154, 96], transformer.pooled_wide [1, 80]  randn
    transformer.timesteps [2]   1000 and 283.7 (float32)
    transformer.<v>.<sq|wide>_t1000, transformer.<v>.<sq|wide>_t283_7   [1, 16, H, W]  for v in large, medium:
        transformer(hidden_states=x, timestep=tensor([t]), encoder_hidden_states=ctx, pooled_projections=pooled)
        .sample
    For the wide input at t = 1000, each block's inputs and outputs (to find where a port goes wrong):
    transformer.<v>.wide_t1000.temb [1, 32]                       time_text_embed(t, pooled)
    transformer.<v>.wide_t1000.block0_in.hidden [1, 96, 32]       pos_embed(x) (patches + cropped position table)
    transformer.<v>.wide_t1000.block0_in.context [1, 154, 32]     context_embedder(ctx)
    transformer.<v>.wide_t1000.block<j>.hidden [1, 96, 32]        block j's image output, j = 0, 1, 2
    transformer.<v>.wide_t1000.block<j>.context [1, 154, 32]      block j's context output, j = 0, 1 (block 2 has
                                                                  none)
Pipeline cases, as make_sd3_goldens.py runs them (its run_case: pipe(prompt, negative_prompt, height, width,
num_inference_steps, guidance_scale, generator=torch.Generator("cpu").manual_seed(seed), output_type="latent"),
max_sequence_length 256, a fresh FlowMatchEulerDiscreteScheduler from the folder's config per case; the loop is
replayed on the recorded transformer outputs bit for bit, the decode is checked against output_type="pil"):
    <name>.latent [1, 16, H/2, W/2], <name>.image uint8 [H, W, 3], <name>.timesteps [4], <name>.sigmas [5],
    <name>.noise [1, 16, H/2, W/2]  (the initial latent: torch.randn of that shape from the seeded CPU generator,
    checked to be the transformer's first input)
    large_a    pipeline_sd35_large,  32x32, 4 steps, guidance 5.0, seed 42, "a red circle on a blue background",
               negative "a green square" (make_sd3_goldens' case a: only the transformer differs)
    medium_a   pipeline_sd35_medium, the same
    medium_b   pipeline_sd35_medium, height 32, width 48 (latent [1, 16, 16, 24]), 4 steps, guidance 5.0, seed 1234,
               "a small green triangle on the top", negative "a large blue circle"
No two cases give the same latent (checked); each differs from SD3's case a. Metadata: <name>.params (JSON, as
make_sd3_goldens' plus variant and folder), <v>.transformer_config, <v>.seed, scheduler_config, io_seed, the
versions, diffusers_path.
"""

import json
import os
import shutil
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_sd3_goldens as sd3_script  # noqa: E402  (the SD3 conventions: weight rule, case runner, writer)
from make_sd3_goldens import OUT, ROOT  # noqa: E402

import diffusers  # noqa: E402
from diffusers import SD3Transformer2DModel, StableDiffusion3Pipeline  # noqa: E402
from diffusers.models.attention import JointTransformerBlock  # noqa: E402
from diffusers.models.normalization import RMSNorm, SD35AdaLayerNormZeroX  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers.models.t5.modeling_t5 import T5LayerNorm  # noqa: E402



def require_diffusers_031():
    # Checked when this script runs, not on import: make_sd35_slg_goldens.py imports its loader under 0.32.
    assert diffusers.__version__ == "0.31.0", (
        f"diffusers {diffusers.__version__} from {diffusers.__file__}: run with PYTHONPATH=/work/refvenv-diffusers031")

SCRIPT = "tools/reference/make_sd35_goldens.py"
SD3_FOLDER = os.path.join(OUT, "pipeline_sd3")
GOLDEN = os.path.join(OUT, "sd35_cases.safetensors")
IO_SEED = sd3_script.IO_SEED  # 11: the transformer inputs are model_sd3_tiny.safetensors' own (checked)
TIMESTEPS = sd3_script.TIMESTEPS  # (1000.0, 283.7)

# The SD3 tiny transformer's shape (make_sd3_goldens.build_pipeline).
TINY = dict(sample_size=16, patch_size=2, in_channels=16, out_channels=16, num_layers=3, attention_head_dim=8,
            num_attention_heads=4, joint_attention_dim=96, caption_projection_dim=32, pooled_projection_dim=80,
            pos_embed_max_size=16)
VARIANTS = {
    # SD3.5 large / large-turbo: qk_norm "rms_norm", no dual attention.
    "large": dict(folder=os.path.join(OUT, "pipeline_sd35_large"), seed=2035,
                  config=dict(TINY, qk_norm="rms_norm", dual_attention_layers=())),
    # SD3.5 medium (MMDiT-X): qk_norm "rms_norm" and a second, image-only self-attention in the first blocks.
    "medium": dict(folder=os.path.join(OUT, "pipeline_sd35_medium"), seed=2036,
                   config=dict(TINY, qk_norm="rms_norm", dual_attention_layers=(0, 1))),
}
# The folders hold only what is new; every other component is pipeline_sd3's (see the docstring).
SHARED = ("scheduler", "text_encoder", "text_encoder_2", "text_encoder_3", "tokenizer", "tokenizer_2",
          "tokenizer_3", "vae")

CASES = [
    dict(name="large_a", variant="large", pipeline="txt2img", t5=True, seed=42, height=32, width=32, steps=4,
         cfg=5.0, prompt="a red circle on a blue background", negative="a green square"),
    dict(name="medium_a", variant="medium", pipeline="txt2img", t5=True, seed=42, height=32, width=32, steps=4,
         cfg=5.0, prompt="a red circle on a blue background", negative="a green square"),
    dict(name="medium_b", variant="medium", pipeline="txt2img", t5=True, seed=1234, height=32, width=48, steps=4,
         cfg=5.0, prompt="a small green triangle on the top", negative="a large blue circle"),
]


def versions():
    return dict(sd3_script.versions(), script=SCRIPT, diffusers_path="PYTHONPATH=/work/refvenv-diffusers031 "
                "(pip install --no-deps --target /work/refvenv-diffusers031 diffusers==0.31.0)")


def check_prompts():
    sd3_script.sdxl_script.check_words(CASES)
    words = set(" ".join(sd3_script.SP_CORPUS).replace(",", " ").split())
    for case in CASES:
        for text in (case["prompt"], case["negative"]):
            assert all(w in words for w in text.replace(",", " ").split()), (case["name"], text)


# ---------------------------------------------------------------------------------------------------------
# The model

def redraw(module, gen):
    """make_sd3_goldens.redraw's rule, with diffusers' RMSNorm (the q/k norms) counted as a norm: its weight is
    1 + 0.1 * randn."""
    norm_params = {}
    for m in module.modules():
        if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm, T5LayerNorm, RMSNorm)):
            if getattr(m, "weight", None) is not None:
                norm_params[id(m.weight)] = "weight"
            if getattr(m, "bias", None) is not None:
                norm_params[id(m.bias)] = "bias"
    n_rms = 0
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            kind = norm_params.get(id(p))
            if kind == "weight":
                p.copy_(1.0 + 0.1 * noise)
                n_rms += ".norm_" in name
            elif kind == "bias":
                p.copy_(0.1 * noise)
            elif p.dim() >= 2:
                p.copy_(noise * min(0.2, 1.5 / p[0].numel() ** 0.5))
            else:
                p.copy_(0.2 * noise)
            p.copy_(p.half().float())
    return n_rms


def build_transformer(variant):
    v = VARIANTS[variant]
    torch.manual_seed(v["seed"])
    t = SD3Transformer2DModel(**v["config"])
    with torch.no_grad():  # a computed buffer, not drawn: only rounded like the weights
        t.pos_embed.pos_embed.copy_(t.pos_embed.pos_embed.half().float())
    n_rms = redraw(t, torch.Generator().manual_seed(v["seed"]))
    t.eval()
    cfg = v["config"]
    n_dual = len(cfg["dual_attention_layers"])
    # q/k norms: norm_q, norm_k, norm_added_q, norm_added_k per block (the last block's context too), and
    # attn2.norm_q, attn2.norm_k per dual block.
    assert n_rms == 4 * cfg["num_layers"] + 2 * n_dual, n_rms
    for i, blk in enumerate(t.transformer_blocks):
        assert isinstance(blk, JointTransformerBlock)
        assert blk.use_dual_attention == (i in cfg["dual_attention_layers"])
        assert isinstance(blk.norm1, SD35AdaLayerNormZeroX) == blk.use_dual_attention
        assert blk.attn.norm_q.eps == 1e-6 and blk.attn.norm_added_k.eps == 1e-6
        if blk.use_dual_attention:
            assert blk.attn2.added_kv_proj_dim is None and blk.attn2.norm_added_q is None
            assert not hasattr(blk.attn2, "to_add_out") and not hasattr(blk.attn2, "add_q_proj")
            assert blk.attn2.processor is blk.attn.processor  # one JointAttnProcessor2_0 instance for both
    return t


def same_but_version(a, b):
    """Two files are byte-identical, or two JSON configs that differ only in _diffusers_version."""
    with open(a, "rb") as f:
        da = f.read()
    with open(b, "rb") as f:
        db = f.read()
    if da == db:
        return True
    if not a.endswith(".json"):
        return False
    ja, jb = json.loads(da), json.loads(db)
    return ja.pop("_diffusers_version", None) != jb.pop("_diffusers_version", None) and ja == jb


def write_folders():
    """Each variant's folder: transformer/ and model_index.json as StableDiffusion3Pipeline.save_pretrained writes
    them for pipeline_sd3's pipeline (rebuilt by make_sd3_goldens.build_pipeline) with the new transformer. Every
    other file that save_pretrained writes is checked to be a copy of pipeline_sd3's (byte for byte, or for the
    two diffusers configs, equal but for _diffusers_version), and is not kept."""
    rounded = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = sd3_script.build_pipeline(tmp)
        for variant, v in VARIANTS.items():
            t = build_transformer(variant)
            rounded[variant] = {k: x.clone() for k, x in t.state_dict().items()}
            pipe = StableDiffusion3Pipeline(**dict(base.components, transformer=t))
            out = os.path.join(tmp, variant)
            pipe.to(torch.float16)
            pipe.save_pretrained(out, safe_serialization=True, variant=None)
            written = sorted(os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs)
            ref_files = sorted(os.path.relpath(os.path.join(d, f), SD3_FOLDER)
                               for d, _, fs in os.walk(SD3_FOLDER) for f in fs)
            assert written == ref_files, (written, ref_files)
            for rel in written:
                if rel.startswith("transformer" + os.sep):
                    continue
                assert same_but_version(os.path.join(out, rel), os.path.join(SD3_FOLDER, rel)), (
                    f"{rel} is not pipeline_sd3's")
            with open(os.path.join(out, "model_index.json")) as f:
                assert json.load(f)["_diffusers_version"] == "0.31.0"
            pipe.to(torch.float32)  # base's components are shared by the next variant
            if os.path.isdir(v["folder"]):
                shutil.rmtree(v["folder"])
            os.makedirs(v["folder"])
            shutil.copytree(os.path.join(out, "transformer"), os.path.join(v["folder"], "transformer"))
            shutil.copyfile(os.path.join(out, "model_index.json"), os.path.join(v["folder"], "model_index.json"))
    return rounded


def linked_view(folder, tmp):
    """What the test side does: a folder of links, pipeline_sd3's components plus this variant's transformer and
    model_index.json."""
    view = os.path.join(tmp, os.path.basename(folder))
    os.makedirs(view)
    for sub in SHARED:
        os.symlink(os.path.join(SD3_FOLDER, sub), os.path.join(view, sub))
    os.symlink(os.path.join(folder, "transformer"), os.path.join(view, "transformer"))
    os.symlink(os.path.join(folder, "model_index.json"), os.path.join(view, "model_index.json"))
    return view


def load_fp32(variant, rounded, tmp):
    view = linked_view(VARIANTS[variant]["folder"], tmp)
    pipe = StableDiffusion3Pipeline.from_pretrained(view, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    got = pipe.transformer.state_dict()
    assert set(got) == set(rounded), variant
    for k, v in rounded.items():
        assert got[k].dtype == torch.float32 and torch.equal(got[k], v), f"transformer.{k} does not round-trip"
    cfg = dict(pipe.transformer.config)
    assert tuple(cfg["dual_attention_layers"]) == VARIANTS[variant]["config"]["dual_attention_layers"]
    assert cfg["qk_norm"] == "rms_norm"
    # The shared components are pipeline_sd3's files, widened to fp32.
    for name, fname in (("vae", "diffusion_pytorch_model.safetensors"), ("text_encoder", "model.safetensors"),
                        ("text_encoder_2", "model.safetensors"), ("text_encoder_3", "model.safetensors")):
        ref = load_file(os.path.join(SD3_FOLDER, name, fname))
        sd = getattr(pipe, name).state_dict()
        for k, x in ref.items():
            assert x.dtype == torch.float16 and torch.equal(sd[k], x.float()), (name, k)
    return pipe


# ---------------------------------------------------------------------------------------------------------
# The block rules restated (see the docstring), checked against diffusers' JointTransformerBlock

def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def heads(x, n):
    b, l, d = x.shape
    return x.view(b, l, n, d // n).transpose(1, 2)


def attention(q, k, v):
    w = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
    b, n, l, d = q.shape
    return (w @ v).transpose(1, 2).reshape(b, l, n * d)


def manual_block(blk, x, c, temb, n_heads):
    ln = torch.nn.functional.layer_norm
    e = blk.norm1.linear(torch.nn.functional.silu(temb))
    chunks = e.chunk(9 if blk.use_dual_attention else 6, dim=1)
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = chunks[:6]
    xn = ln(x, x.shape[-1:], eps=1e-6)
    x1 = xn * (1 + scale_msa[:, None]) + shift_msa[:, None]
    if blk.context_pre_only:
        ec = blk.norm1_context.linear(torch.nn.functional.silu(temb))
        c_scale, c_shift = ec.chunk(2, dim=1)  # scale first, then shift
        c1 = ln(c, c.shape[-1:], eps=1e-6) * (1 + c_scale[:, None]) + c_shift[:, None]
    else:
        ec = blk.norm1_context.linear(torch.nn.functional.silu(temb))
        c_shift_msa, c_scale_msa, c_gate_msa, c_shift_mlp, c_scale_mlp, c_gate_mlp = ec.chunk(6, dim=1)
        c1 = ln(c, c.shape[-1:], eps=1e-6) * (1 + c_scale_msa[:, None]) + c_shift_msa[:, None]
    a = blk.attn
    eps = 1e-6
    q = rms(heads(a.to_q(x1), n_heads), a.norm_q.weight, eps)
    k = rms(heads(a.to_k(x1), n_heads), a.norm_k.weight, eps)
    v = heads(a.to_v(x1), n_heads)
    cq = rms(heads(a.add_q_proj(c1), n_heads), a.norm_added_q.weight, eps)
    ck = rms(heads(a.add_k_proj(c1), n_heads), a.norm_added_k.weight, eps)
    cv = heads(a.add_v_proj(c1), n_heads)
    o = attention(torch.cat([q, cq], 2), torch.cat([k, ck], 2), torch.cat([v, cv], 2))
    n_img = x.shape[1]
    x = x + gate_msa[:, None] * a.to_out[0](o[:, :n_img])
    if blk.use_dual_attention:
        shift_msa2, scale_msa2, gate_msa2 = chunks[6:]
        x2 = xn * (1 + scale_msa2[:, None]) + shift_msa2[:, None]  # the same LayerNorm output as x1
        a2 = blk.attn2
        q2 = rms(heads(a2.to_q(x2), n_heads), a2.norm_q.weight, eps)
        k2 = rms(heads(a2.to_k(x2), n_heads), a2.norm_k.weight, eps)
        v2 = heads(a2.to_v(x2), n_heads)
        x = x + gate_msa2[:, None] * a2.to_out[0](attention(q2, k2, v2))
    h = ln(x, x.shape[-1:], eps=1e-6) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
    x = x + gate_mlp[:, None] * blk.ff(h)
    if blk.context_pre_only:
        return None, x
    c = c + c_gate_msa[:, None] * a.to_add_out(o[:, n_img:])
    h = ln(c, c.shape[-1:], eps=1e-6) * (1 + c_scale_mlp[:, None]) + c_shift_mlp[:, None]
    c = c + c_gate_mlp[:, None] * blk.ff_context(h)
    return c, x


class BlockRecorder:
    def __init__(self):
        self.calls = []

    def __call__(self, module, args, kwargs, output):
        self.calls.append(({k: v.detach().clone() for k, v in kwargs.items()},
                           tuple(None if o is None else o.detach().clone() for o in output)))


# ---------------------------------------------------------------------------------------------------------
# Goldens

def transformer_goldens(pipes):
    t = {}
    g = torch.Generator().manual_seed(IO_SEED)
    ts = torch.tensor(TIMESTEPS, dtype=torch.float32)
    t["transformer.timesteps"] = ts
    sd3_tiny = os.path.join(OUT, "model_sd3_tiny.safetensors")
    sd3_ref = load_file(sd3_tiny) if os.path.exists(sd3_tiny) else None
    worst = 0.0
    for tag, (h, w, n_ctx) in (("sq", (16, 16, 333)), ("wide", (16, 24, 154))):
        x = torch.randn((1, 16, h, w), generator=g)
        ctx = torch.randn((1, n_ctx, 96), generator=g)
        pooled = torch.randn((1, 80), generator=g)
        ins = {f"transformer.x_{tag}": x, f"transformer.ctx_{tag}": ctx, f"transformer.pooled_{tag}": pooled}
        if sd3_ref is not None:
            assert all(torch.equal(sd3_ref[k], v) for k, v in ins.items()), "inputs differ from model_sd3_tiny's"
        t.update(ins)
        for variant, pipe in pipes.items():
            tr = pipe.transformer
            for i, tv in enumerate(TIMESTEPS):
                rec = BlockRecorder()
                handles = [b.register_forward_hook(rec, with_kwargs=True) for b in tr.transformer_blocks]
                try:
                    with torch.no_grad():
                        out = tr(hidden_states=x, timestep=ts[i:i + 1], encoder_hidden_states=ctx,
                                 pooled_projections=pooled).sample
                finally:
                    for hd in handles:
                        hd.remove()
                name = f"transformer.{variant}.{tag}_t{str(tv).replace('.0', '').replace('.', '_')}"
                t[name] = out
                assert len(rec.calls) == len(tr.transformer_blocks)
                with torch.no_grad():
                    for j, (blk, (kw, (c_out, x_out))) in enumerate(zip(tr.transformer_blocks, rec.calls)):
                        c_m, x_m = manual_block(blk, kw["hidden_states"], kw["encoder_hidden_states"], kw["temb"],
                                                tr.config.num_attention_heads)
                        worst = max(worst, (x_m - x_out).abs().max().item())
                        assert torch.allclose(x_m, x_out, atol=2e-5, rtol=0), (name, j, "image stream")
                        if blk.context_pre_only:
                            assert c_out is None and c_m is None
                        else:
                            worst = max(worst, (c_m - c_out).abs().max().item())
                            assert torch.allclose(c_m, c_out, atol=2e-5, rtol=0), (name, j, "context stream")
                        if tag == "wide" and i == 0:  # per-block states for one call, to find where a port goes wrong
                            if j == 0:
                                t[f"{name}.temb"] = kw["temb"]
                                t[f"{name}.block0_in.hidden"] = kw["hidden_states"]
                                t[f"{name}.block0_in.context"] = kw["encoder_hidden_states"]
                            t[f"{name}.block{j}.hidden"] = x_out
                            if c_out is not None:
                                t[f"{name}.block{j}.context"] = c_out
    print(f"  the block rules restated match diffusers' blocks within {worst:.1e}")
    return t


def run_cases(pipes):
    sched_cfg = {k: v for k, v in next(iter(pipes.values())).scheduler.config.items() if k != "_name_or_path"}
    tensors, meta, latents = {}, {"scheduler_config": json.dumps(sched_cfg)}, {}
    for case in CASES:
        pipe = pipes[case["variant"]]
        t, params, _ = sd3_script.run_case({("txt2img", True): pipe}, case, sched_cfg)
        name = case["name"]
        latent, image = t["latent"], t["image"]
        assert torch.isfinite(latent).all(), name
        assert latent.shape == (1, 16, case["height"] // 2, case["width"] // 2), name
        assert image.shape == (case["height"], case["width"], 3) and image.dtype == torch.uint8, name
        t["noise"] = torch.randn((1, 16, case["height"] // 2, case["width"] // 2),
                                 generator=torch.Generator("cpu").manual_seed(case["seed"]))
        for k, v in t.items():
            tensors[f"{name}.{k}"] = v
        params.update(variant=case["variant"], folder=os.path.relpath(VARIANTS[case["variant"]]["folder"], ROOT))
        meta[f"{name}.params"] = json.dumps(params)
        latents[name] = latent
        sat = ((image == 0) | (image == 255)).float().mean().item()
        print(f"  {name} h{case['height']} w{case['width']} steps {case['steps']} cfg {case['cfg']}: latent std "
              f"{latent.std().item():.3f}  image mean {image.float().mean().item():.1f} std "
              f"{image.float().std().item():.1f} saturated {sat:.0%}")
        print(f"    timesteps {params['timesteps']}")
    sd3_script.assert_all_differ(latents)
    # The same prompt, seed and schedule through SD3 and the two SD3.5 transformers give three different latents.
    sd3_cases = os.path.join(OUT, "pipeline_sd3_cases.safetensors")
    if os.path.exists(sd3_cases):
        a = load_file(sd3_cases)["a.latent"]
        assert not torch.equal(a, latents["large_a"]) and not torch.equal(a, latents["medium_a"])
        print(f"  SD3 case a vs large_a / medium_a: max |diff| {(a - latents['large_a']).abs().max().item():.3f} / "
              f"{(a - latents['medium_a']).abs().max().item():.3f}")
    return tensors, meta


def main():
    require_diffusers_031()
    torch.set_num_threads(1)
    check_prompts()
    rounded = write_folders()
    for v in VARIANTS.values():
        for dirpath, _, files in sorted(os.walk(v["folder"])):
            for f in sorted(files):
                p = os.path.join(dirpath, f)
                print(f"  {os.path.relpath(p, ROOT)}: {os.path.getsize(p)} bytes")
    with tempfile.TemporaryDirectory() as tmp:
        pipes = {variant: load_fp32(variant, rounded[variant], tmp) for variant in VARIANTS}
        tensors = transformer_goldens(pipes)
        case_tensors, case_meta = run_cases(pipes)
        tensors.update(case_tensors)
        meta = dict(versions(), io_seed=str(IO_SEED), **case_meta)
        for variant, pipe in pipes.items():
            cfg = {k: v for k, v in pipe.transformer.config.items() if k != "_name_or_path"}  # a temporary path
            meta[f"{variant}.transformer_config"] = json.dumps(cfg)
            meta[f"{variant}.seed"] = str(VARIANTS[variant]["seed"])
    for k, v in tensors.items():
        if k.split(".")[0] in ("transformer",) and ".block" not in k:
            print(f"  {k:34s} {str(v.dtype).replace('torch.', ''):8s} {list(v.shape)}"
                  + (f"  std {v.float().std().item():.4f}" if v.is_floating_point() and v.numel() > 1 else ""))
    sd3_script.save(GOLDEN, tensors, meta)


if __name__ == "__main__":
    main()
