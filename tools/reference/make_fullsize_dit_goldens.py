#!/work/refvenv/bin/python
"""Full-size SD3 medium and FLUX.1-dev (real widths, 2 + 2 blocks) transformer parity without shipping 4 GB of
weights: the DiT counterpart of make_fullsize_sdxl_goldens.py. Real networks, small latents (256 and 384 image
tokens), one transformer forward per case (the tiny SD3 / Flux goldens, make_sd3_goldens.py and
make_flux_goldens.py, already test the pipelines around it; this tests the network at its published sizes).

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline:

    HF_HUB_OFFLINE=1 nice -n 19 /work/refvenv/bin/python tools/reference/make_fullsize_dit_goldens.py

(`--smoke`: the same code on 2 SD3 blocks and 1 + 1 Flux blocks, folders under <dir>-smoke, golden to
<tmp>/fullsize_dit_smoke_cases.safetensors; only to try the script.)
Measured on the 2-core machine (nice -n 19, nothing else running, /usr/bin/time -v; two runs, the second wrote
the same golden bytes and the same folder hashes): 3 min 56 s and 4 min 21 s wall (first run, SD3: 34 s to
generate the weights, 18 s to write them, 21 s to read them back twice, 6 s per 256-token forward; Flux: 19 s,
8 s, 12 s, 12 s per forward); "Maximum resident set size" 9,146,484 and 9,121,784 KB (8.7 GiB: the fp32 SD3,
8.3 GB, and the process; the fp16 generation and the write peak at 5.3 GiB). 6.2 GB of temporary disk.
Versions (requirements-pip.txt): torch 2.4.1 (CPU), diffusers 0.30.3, transformers 4.40.2 (unused but recorded),
safetensors 0.8.0, accelerate 0.33.0; all computation float32 on the CPU with diffusers' default processors
(JointAttnProcessor2_0 / FluxAttnProcessor2_0: torch's scaled_dot_product_attention). torch runs THREADS = 2 CPU
threads (the last bits of a forward depend on the thread count: make_sdxl_kdiffusion_goldens' docstring).

What it writes
--------------
1. Two diffusers component folders, OUTSIDE the repository (4.2 GB and 2.1 GB: not for git), under
   DIR = $EASEL_FULLSIZE_DIT_DIR, else <tempfile.gettempdir()>/easel-fullsize-dit (tempfile honours $TMPDIR as
   std::filesystem::temp_directory_path() does; normally /tmp/easel-fullsize-dit):
       DIR/sd3_medium/transformer/config.json, diffusion_pytorch_model.safetensors          (fp16, 683 tensors)
       DIR/flux1_dev_2x2/transformer/config.json, diffusion_pytorch_model.safetensors       (fp16, 112 tensors)
   written by ModelMixin.save_pretrained(safe_serialization=True) of the fp16 model (one unsharded file each:
   under diffusers' 10 GB shard size). Each model's folder is deleted and rewritten on every run; nothing else
   under DIR is touched. The same bytes on every run (sha256 of every file recorded in the golden's metadata,
   "<model>.sha256").
2. tests/golden/data/fullsize_dit_cases.safetensors (about 7.5 MB): inputs and outputs only, written with
   safetensors_io (metadata keys sorted: the same bytes on every run).

The models
----------
sd3_medium     SD3Transformer2DModel with stabilityai/stable-diffusion-3-medium-diffusers' config (sample_size
               128, patch_size 2, in/out_channels 16, num_layers 24, attention_head_dim 64, num_attention_heads 24,
               joint_attention_dim 4096, caption_projection_dim 1536, pooled_projection_dim 2048,
               pos_embed_max_size 192), the config tests/data/keys/sd3_medium_transformer.expect.json holds
               (make_sd3_key_lists.py; checked equal): 683 tensors, 2,084,951,104 values (2,028,328,000
               parameters + the pos_embed buffer [1, 36864, 1536]).
flux1_dev_2x2  FluxTransformer2DModel with black-forest-labs/FLUX.1-dev's config (patch_size 1, in_channels 64,
               attention_head_dim 128, num_attention_heads 24, joint_attention_dim 4096, pooled_projection_dim
               768, guidance_embeds True, axes_dims_rope (16, 56, 56)) EXCEPT num_layers 2 and
               num_single_layers 2 (dev has 19 and 38; the 12 B model does not fit the machine): every block is
               exactly one of Flux's, only fewer of them. 112 tensors, 1,026,971,200 parameters.

Weights
-------
A pure function of the published tensor lists (tests/data/keys/sd3_medium_transformer.json.gz and
flux1_dev_transformer.json.gz: diffusers' names and shapes, in state-dict order) and torch's CPU generator, as in
make_fullsize_sdxl_goldens.py: the tensor at position i of the WHOLE list (0-based) is
make_fullsize_goldens.weight(i, name, shape) (randn seeded 1000 + i; 1-D "...norm...weight" 1 + 0.1 x, other
1-D 0.05 x, 2-D and more x * min(0.2, 1 / sqrt(numel / shape[0])); rounded to fp16), which C++ rebuilds bit for
bit (tests/common/random_checkpoint.h random_checkpoint_weight(i, name, shape)). Exceptions and selection:
  - sd3_medium: every entry of the list; position 0, pos_embed.pos_embed, is NOT random: it is the buffer
    diffusers computes (get_2d_sincos_pos_embed(1536, 192, base_size = 128 / 2 = 64, interpolation_scale 1)),
    rounded to fp16 as save_pretrained stores it. A C++ rebuild must compute it (or read it from the folder).
  - flux1_dev_2x2: only the entries whose name is not transformer_blocks.<b>.* / single_transformer_blocks.<b>.*
    with b >= 2, each keeping its position in the whole 1160-entry list (metadata "flux1_dev_2x2.tensors": the
    [position, name, shape] of every kept entry). The list is bf16 (FLUX.1's published dtype); these files are
    fp16 (the values are the rule's fp16 ones).
Every model's state dict is checked to be exactly the (kept) list: same names, same order, same shapes.
The folder is read back twice: by diffusers (from_pretrained(torch_dtype=float16): every tensor checked equal,
by a hash of its fp16 bytes, to the one generated; then dropped), and for the cases: the model built on the meta
device from the folder's config.json, given the file's fp16 tensors (plain reads, no mmap) widened to fp32 one
at a time: the values from_pretrained(torch_dtype=float32) gives, without its 13 GB peak for SD3 (it holds the
fp16 state dict and the fp32 model at once). So the forwards compute in fp32 on exactly the fp16 values.

The cases (every input drawn on its own: torch.randn(shape, generator=torch.Generator().manual_seed(IO_SEED + k)),
k listed; floats are float32 unless said)
-------------------------------------------------------------------------------------------------------------
sd3 (SD3's pipeline calls transformer(hidden_states=latent, timestep=t.expand(1), encoder_hidden_states=context,
pooled_projections=pooled).sample):
    sd3.context            float16 [1, 333, 4096]  k 0, randn rounded to fp16 (stored as fp16: exact; computed as
                                                   fp32). Rows 0-76 stand for CLIP (columns 2048-4095 zero, as the
                                                   pipeline pads the 2048-wide CLIP rows to T5's width), rows
                                                   77-332 for T5 (256 rows)
    sd3.pooled             [1, 2048]               k 1, randn
    sd3.latent_sq          [1, 16, 32, 32]         k 2, randn (a 256x256 image: 16 x 16 = 256 patches)
    sd3.latent_wide        [1, 16, 32, 48]         k 3, randn (height 32, width 48: 16 x 24 = 384 patches;
                                                   a 384x256 image, W x H)
    sd3.sq_t1000.timestep  [1] = 1000              sd3.sq_t1000.out   [1, 16, 32, 32]
    sd3.sq_t400.timestep   [1] = 400               sd3.sq_t400.out    [1, 16, 32, 32]
    sd3.wide_t700.timestep [1] = 700               sd3.wide_t700.out  [1, 16, 32, 48]
    The 2-D positions are the centre crop of the 192 x 192 pos_embed grid (PatchEmbed.cropped_pos_embed: top
    (192 - h) // 2, left (192 - w) // 2 in patches: (88, 88) for 16 x 16, (88, 84) for 16 x 24).
flux (FluxPipeline 0.30.3: transformer(hidden_states=packed, timestep=t / 1000, guidance=tensor([3.5]),
pooled_projections, encoder_hidden_states, txt_ids, img_ids).sample; the transformer multiplies both by 1000):
    flux.latent            [1, 16, 32, 32]         k 10, randn (a 256x256 image)
    flux.hidden_states     [1, 256, 64]            FluxPipeline._pack_latents(latent, 1, 16, 32, 32): token
                                                   r * 16 + c holds channel-major 2x2 patches
    flux.encoder_hidden_states float16 [1, 512, 4096]  k 11, randn rounded to fp16 (stored fp16, computed fp32)
    flux.pooled_projections [1, 768]               k 12, randn
    flux.txt_ids           [1, 512, 3]             zeros (FluxPipeline.encode_prompt)
    flux.img_ids           [1, 256, 3]             FluxPipeline._prepare_latent_image_ids(1, 32, 32): (0, r, c)
    flux.t1000.timestep    [1] = 1.0               flux.t1000.guidance [1] = 3.5   flux.t1000.out [1, 256, 64]
    flux.t400.timestep     [1] = 0.4 (float32 400 / 1000)  flux.t400.guidance [1] = 3.5  flux.t400.out [1, 256, 64]
Sanity (printed, not stored): every output finite; t1000 vs t400 differ; ABLATIONS: the sq / t1000 forward with
the T5 rows (sd3) or the whole text (flux) negated, and with another pooled vector, must move the output well
beyond the C++ tolerances, or the case would not test the text path.
Metadata: script, versions, torch_threads, io_seed, <model>.config (the config.json diffusers wrote),
<model>.folder (the absolute path written), <model>.files (relative name -> bytes), <model>.sha256,
<model>.keys (the list it came from), <model>.tensors (flux: kept [position, name, shape]), <model>.params
(each case's call: shapes, timesteps, guidance), weights (the rule).
"""
import gc
import gzip
import hashlib
import json
import math
import os
import re
import resource
import shutil
import struct
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_sdxl_kdiffusion_goldens  # noqa: E402,F401  (first: stubs the missing clip module before k_diffusion)
import make_fullsize_goldens as fg  # noqa: E402  (the weight rule)
import safetensors_io  # noqa: E402

import accelerate  # noqa: E402
import diffusers  # noqa: E402
import huggingface_hub  # noqa: E402
import numpy  # noqa: E402
import safetensors  # noqa: E402
import transformers  # noqa: E402
from diffusers import FluxPipeline, FluxTransformer2DModel, SD3Transformer2DModel  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "tests", "golden", "data")
KEYS = os.path.join(ROOT, "tests", "data", "keys")
SCRIPT = "tools/reference/make_fullsize_dit_goldens.py"
GOLDEN = os.path.join(OUT, "fullsize_dit_cases.safetensors")
DIR_ENV = "EASEL_FULLSIZE_DIT_DIR"
THREADS = 2  # torch's CPU thread count: the last bits depend on it (see the docstring)
IO_SEED = 4000
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"

SD3_CONFIG = {
    "_class_name": "SD3Transformer2DModel", "sample_size": 128, "patch_size": 2, "in_channels": 16,
    "num_layers": 24, "attention_head_dim": 64, "num_attention_heads": 24, "joint_attention_dim": 4096,
    "caption_projection_dim": 1536, "pooled_projection_dim": 2048, "out_channels": 16, "pos_embed_max_size": 192,
}  # the brief's values; checked equal to sd3_medium_transformer.expect.json's
FLUX_DEV_CONFIG = {
    "_class_name": "FluxTransformer2DModel", "patch_size": 1, "in_channels": 64, "num_layers": 19,
    "num_single_layers": 38, "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 4096,
    "pooled_projection_dim": 768, "guidance_embeds": True, "axes_dims_rope": [16, 56, 56],
}  # checked equal to flux1_dev_transformer.expect.json's

SD3_TIMESTEPS = (("sq", 1000.0), ("sq", 400.0), ("wide", 700.0))
FLUX_TIMESTEPS = (1000.0, 400.0)
FLUX_GUIDANCE = 3.5
BLOCK = re.compile(r"^(transformer_blocks|single_transformer_blocks)\.(\d+)\.")


def peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def rss_gb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 30


def log(msg):
    print(f"[{time.time() - START:5.0f} s, RSS {rss_gb():5.1f} GB, peak {peak_rss_gb():5.1f} GB] {msg}", flush=True)


def versions():
    return {"script": SCRIPT, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "huggingface_hub": huggingface_hub.__version__,
            "safetensors": safetensors.__version__, "accelerate": accelerate.__version__,
            "numpy": numpy.__version__}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_tensor(t):
    return hashlib.sha256(t.detach().contiguous().view(-1).view(torch.int16).numpy().tobytes()).hexdigest()


def model_specs(smoke):
    """name -> (class, key list, full-list config, config to build, {block kind: {model index: list index}})."""
    sd3_blocks = {0: 0, 1: 23} if smoke else {b: b for b in range(24)}
    flux_n = 1 if smoke else 2
    return {
        "sd3_medium": dict(
            cls=SD3Transformer2DModel, keys="sd3_medium_transformer", list_config=SD3_CONFIG,
            config=dict(SD3_CONFIG, num_layers=len(sd3_blocks)), blocks={"transformer_blocks": sd3_blocks}),
        "flux1_dev_2x2": dict(
            cls=FluxTransformer2DModel, keys="flux1_dev_transformer", list_config=FLUX_DEV_CONFIG,
            config=dict(FLUX_DEV_CONFIG, num_layers=flux_n, num_single_layers=flux_n),
            blocks={"transformer_blocks": {b: b for b in range(flux_n)},
                    "single_transformer_blocks": {b: b for b in range(flux_n)}}),
    }


def read_list(keys, list_config):
    with gzip.open(os.path.join(KEYS, f"{keys}.json.gz"), "rt") as f:
        tensors = json.load(f)["tensors"]
    with open(os.path.join(KEYS, f"{keys}.expect.json")) as f:
        expect = json.load(f)
    assert expect["config"] == list_config, (keys, expect["config"])
    assert expect["counts"]["tensors"] == len(tensors)
    return tensors


def list_name(name, blocks):
    """The model's tensor name -> its name in the published list (smoke runs keep SD3's last block as block 1)."""
    m = BLOCK.match(name)
    if not m:
        return name
    return f"{m.group(1)}.{blocks[m.group(1)][int(m.group(2))]}." + name[m.end():]


def build_meta(spec):
    with torch.device("meta"):  # parameters without storage; SD3's pos_embed buffer is made from numpy (on the CPU)
        return spec["cls"].from_config({k: v for k, v in spec["config"].items() if k != "_class_name"})


def generate(name, spec, smoke):
    """The fp16 state dict (the rule, in the model's order), the per-tensor fp16 hashes, the kept entries."""
    t0 = time.time()
    tensors = read_list(spec["keys"], spec["list_config"])
    index = {n: (i, s) for i, (n, s, _) in enumerate(tensors)}
    model = build_meta(spec)
    sd_meta = model.state_dict()
    kept, sd16, hashes = [], {}, {}
    for k, v in sd_meta.items():
        ln = list_name(k, spec["blocks"])
        i, shape = index[ln]
        assert list(v.shape) == shape, (k, ln, list(v.shape), shape)
        if k == "pos_embed.pos_embed":  # the buffer diffusers computed (not meta), rounded as save_pretrained does
            assert not v.is_meta and v.dtype == torch.float32 and i == 0
            w = v.half()
        else:
            assert v.is_meta, k
            w = fg.weight(i, ln, shape).half()
        sd16[k] = w
        hashes[k] = sha256_tensor(w)
        kept.append([i, ln, shape])
    positions = [i for i, _, _ in kept]
    assert positions == sorted(positions) and len(set(positions)) == len(positions), "not in the list's order"
    if not smoke:  # the whole list (sd3) or exactly the entries of blocks 0 and 1 (flux), in the list's order
        want = [[i, n, s] for i, (n, s, _) in enumerate(tensors)
                if not ((m := BLOCK.match(n)) and int(m.group(2)) not in spec["blocks"][m.group(1)])]
        assert kept == want, name
        if name == "sd3_medium":
            assert len(kept) == len(tensors) == 683
    values = sum(v.numel() for v in sd16.values())
    log(f"{name}: generated {len(sd16)} tensors, {values:,} values in {time.time() - t0:.0f} s")
    del model, sd_meta
    return sd16, hashes, kept


def write_folder(name, spec, sd16, folder):
    model_dir = os.path.join(folder, name)
    if os.path.isdir(model_dir):
        shutil.rmtree(model_dir)
    model = build_meta(spec)
    model.load_state_dict(sd16, strict=True, assign=True)
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    assert not left, left[:5]
    assert all(t.dtype == torch.float16 for t in model.state_dict().values())
    model.save_pretrained(os.path.join(model_dir, "transformer"), safe_serialization=True)
    del model
    files, sha = {}, {}
    for dirpath, _, names in sorted(os.walk(model_dir)):
        for f in sorted(names):
            p = os.path.join(dirpath, f)
            rel = os.path.relpath(p, model_dir)
            files[rel] = os.path.getsize(p)
            sha[rel] = sha256_file(p)
    assert sorted(files) == ["transformer/config.json", f"transformer/{WEIGHTS_FILE}"], files
    log(f"{name}: wrote {model_dir}: " + ", ".join(f"{k} {v:,} bytes" for k, v in files.items()))
    return model_dir, files, sha


def read_f16_tensors(path):
    """(name, fp16 tensor) of a safetensors file, in file order, each read with plain file reads: safe_open's mmap
    keeps every page it touched resident until the file is closed (the file's size again on top of the fp32
    model)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        start = 8 + n
        entries = sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
                         key=lambda kv: kv[1]["data_offsets"][0])
        assert header.get("__metadata__") == {"format": "pt"}, header.get("__metadata__")
        for k, info in entries:
            assert info["dtype"] == "F16", (k, info["dtype"])
            begin, end = info["data_offsets"]
            assert end - begin == 2 * math.prod(info["shape"]), k
            f.seek(start + begin)
            buf = bytearray(f.read(end - begin))
            yield k, torch.frombuffer(buf, dtype=torch.float16).reshape(info["shape"])


def load_fp32(spec, model_dir, hashes):
    """The folder as diffusers reads it (from_pretrained, fp16: checked tensor by tensor against what was
    generated, then dropped), and the model the cases run: built on the meta device from the folder's config.json
    and given the file's tensors widened to fp32 one by one (from_pretrained(torch_dtype=float32) holds the fp16
    state dict and the fp32 model at once: 13 GB for SD3)."""
    path = os.path.join(model_dir, "transformer")
    check = spec["cls"].from_pretrained(path, torch_dtype=torch.float16)
    sd = check.state_dict()
    assert list(sd) == list(hashes), "reloaded names or order differ"
    for k, v in sd.items():
        assert v.dtype == torch.float16 and sha256_tensor(v) == hashes[k], f"{k} does not round-trip"
    del check, sd
    gc.collect()
    config = dict(spec["cls"].load_config(path))
    for k, v in spec["config"].items():
        assert config[k] == (list(v) if isinstance(v, tuple) else v), (k, config[k], v)
    with torch.device("meta"):
        model = spec["cls"].from_config(config)
    sd32 = {}
    for k, v in read_f16_tensors(os.path.join(path, WEIGHTS_FILE)):
        assert sha256_tensor(v) == hashes[k], k
        sd32[k] = v.float()
    assert sorted(sd32) == sorted(hashes)
    model.load_state_dict(sd32, strict=True, assign=True)
    del sd32
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    assert not left, left[:5]
    assert all(t.dtype == torch.float32 for t in model.state_dict().values())
    return model.eval(), config


def randn(k, shape):
    return torch.randn(shape, generator=torch.Generator().manual_seed(IO_SEED + k))


def sd3_inputs():
    ctx = randn(0, (1, 333, 4096))
    ctx[:, :77, 2048:] = 0  # CLIP rows: 768 + 1280 = 2048 wide, zero-padded to T5's 4096 by the pipeline
    ctx = ctx.half()
    return {"sd3.context": ctx, "sd3.pooled": randn(1, (1, 2048)), "sd3.latent_sq": randn(2, (1, 16, 32, 32)),
            "sd3.latent_wide": randn(3, (1, 16, 32, 48))}


def sd3_forward(model, x, t, ctx, pooled):
    with torch.no_grad():
        return model(hidden_states=x, timestep=torch.tensor([t], dtype=torch.float32),
                     encoder_hidden_states=ctx.float(), pooled_projections=pooled, return_dict=False)[0]


def flux_inputs():
    latent = randn(10, (1, 16, 32, 32))
    packed = FluxPipeline._pack_latents(latent, 1, 16, 32, 32)
    img_ids = FluxPipeline._prepare_latent_image_ids(1, 32, 32, torch.device("cpu"), torch.float32)
    rows, cols = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    want = torch.stack([torch.zeros_like(rows), rows, cols], dim=-1).reshape(1, -1, 3).float()
    assert packed.shape == (1, 256, 64) and torch.equal(img_ids, want)
    assert torch.equal(packed[0, 3 * 16 + 5, 2 * 4 + 1], latent[0, 2, 2 * 3 + 0, 2 * 5 + 1])  # (r, c) = (3, 5)
    return {"flux.latent": latent, "flux.hidden_states": packed,
            "flux.encoder_hidden_states": randn(11, (1, 512, 4096)).half(),
            "flux.pooled_projections": randn(12, (1, 768)), "flux.txt_ids": torch.zeros(1, 512, 3),
            "flux.img_ids": img_ids}


def flux_forward(model, inp, t, ctx=None, pooled=None):
    timestep = torch.tensor([t], dtype=torch.float32) / 1000  # as the pipeline: t (float32) / 1000
    guidance = torch.tensor([FLUX_GUIDANCE])
    with torch.no_grad():
        out = model(hidden_states=inp["flux.hidden_states"], timestep=timestep, guidance=guidance,
                    pooled_projections=inp["flux.pooled_projections"] if pooled is None else pooled,
                    encoder_hidden_states=(inp["flux.encoder_hidden_states"] if ctx is None else ctx).float(),
                    txt_ids=inp["flux.txt_ids"], img_ids=inp["flux.img_ids"], return_dict=False)[0]
    return out, timestep, guidance


def tag(t):
    return f"t{t:g}".replace(".", "_")


def check_moves(label, base, other):
    """An ablation must move the output far beyond the C++ tolerances (atol 2e-3, rtol 2e-4 on O(1) values)."""
    d = (other - base).abs()
    rel = d.norm().item() / base.norm().item()
    log(f"  {label}: max |diff| {d.max().item():.4f}, relative L2 {rel:.4f}")
    assert d.max().item() > 0.05 and rel > 1e-3, label


def run_sd3(model, tensors, meta):
    inp = sd3_inputs()
    tensors.update(inp)
    params = {}
    for which, t in SD3_TIMESTEPS:
        t0 = time.time()
        x = inp[f"sd3.latent_{which}"]
        out = sd3_forward(model, x, t, inp["sd3.context"], inp["sd3.pooled"])
        assert out.shape == x.shape and torch.isfinite(out).all()
        name = f"sd3.{which}_{tag(t)}"
        tensors[f"{name}.timestep"] = torch.tensor([t], dtype=torch.float32)
        tensors[f"{name}.out"] = out
        params[name] = dict(hidden_states=f"sd3.latent_{which}", timestep=t, encoder_hidden_states="sd3.context",
                            pooled_projections="sd3.pooled", image_tokens=x.shape[2] * x.shape[3] // 4,
                            context_tokens=333)
        log(f"  {name}: out std {out.std().item():.4f} mean {out.mean().item():.4f} max |.| "
            f"{out.abs().max().item():.3f} in {time.time() - t0:.0f} s")
    base = tensors["sd3.sq_t1000.out"]
    check_moves("sd3 sq t1000 vs t400", base, tensors["sd3.sq_t400.out"])
    neg = inp["sd3.context"].clone()
    neg[:, 77:] = -neg[:, 77:]
    check_moves("sd3 sq t1000, T5 rows negated", base, sd3_forward(model, inp["sd3.latent_sq"], 1000.0, neg,
                                                                  inp["sd3.pooled"]))
    check_moves("sd3 sq t1000, other pooled", base, sd3_forward(model, inp["sd3.latent_sq"], 1000.0,
                                                               inp["sd3.context"], randn(99, (1, 2048))))
    meta["sd3_medium.params"] = json.dumps(params)


def run_flux(model, tensors, meta):
    inp = flux_inputs()
    tensors.update(inp)
    params = {}
    for t in FLUX_TIMESTEPS:
        t0 = time.time()
        out, timestep, guidance = flux_forward(model, inp, t)
        assert out.shape == (1, 256, 64) and torch.isfinite(out).all()
        name = f"flux.{tag(t)}"
        tensors.update({f"{name}.timestep": timestep, f"{name}.guidance": guidance, f"{name}.out": out})
        params[name] = dict(hidden_states="flux.hidden_states", timestep=timestep.item(), guidance=FLUX_GUIDANCE,
                            encoder_hidden_states="flux.encoder_hidden_states",
                            pooled_projections="flux.pooled_projections", txt_ids="flux.txt_ids",
                            img_ids="flux.img_ids", image_tokens=256, text_tokens=512)
        log(f"  {name}: out std {out.std().item():.4f} mean {out.mean().item():.4f} max |.| "
            f"{out.abs().max().item():.3f} in {time.time() - t0:.0f} s")
    base = tensors["flux.t1000.out"]
    check_moves("flux t1000 vs t400", base, tensors["flux.t400.out"])
    check_moves("flux t1000, text negated", base,
                flux_forward(model, inp, 1000.0, ctx=-inp["flux.encoder_hidden_states"])[0])
    check_moves("flux t1000, other pooled", base, flux_forward(model, inp, 1000.0, pooled=randn(98, (1, 768)))[0])
    meta["flux1_dev_2x2.params"] = json.dumps(params)


def save(path, tensors, meta):
    for k, v in tensors.items():
        if v.is_floating_point():
            assert v.dtype == (torch.float16 if k in ("sd3.context", "flux.encoder_hidden_states")
                               else torch.float32), k
            assert torch.isfinite(v).all(), k
    tensors = {k: v.detach().clone().contiguous() for k, v in tensors.items()}
    safetensors_io.save_file(tensors, path, dict(sorted(meta.items())))
    back = load_file(path)
    assert back.keys() == tensors.keys() and all(torch.equal(back[k], v) for k, v in tensors.items())
    log(f"wrote {path}: {len(tensors)} tensors, {os.path.getsize(path):,} bytes, sha256 {sha256_file(path)}")
    for k in sorted(tensors):
        log(f"  {k:32s} {str(tensors[k].dtype).replace('torch.', ''):8s} {list(tensors[k].shape)}")


def main():
    smoke = "--smoke" in sys.argv[1:]
    assert all(a == "--smoke" for a in sys.argv[1:]), f"usage: {SCRIPT} [--smoke]"
    torch.set_num_threads(THREADS)
    folder = os.path.abspath(os.environ.get(DIR_ENV) or os.path.join(tempfile.gettempdir(), "easel-fullsize-dit"))
    golden = GOLDEN
    if smoke:
        folder += "-smoke"
        golden = os.path.join(tempfile.gettempdir(), "fullsize_dit_smoke_cases.safetensors")
    os.makedirs(folder, exist_ok=True)
    log(f"torch threads {torch.get_num_threads()}; folders under {folder}{' (smoke)' if smoke else ''}")
    tensors = {}
    meta = dict(versions(), torch_threads=str(THREADS), io_seed=str(IO_SEED), folder_env=DIR_ENV,
                weights="make_fullsize_goldens.weight(i, name, shape), i = position in the whole key list "
                        "(fp16-rounded, used in fp32); sd3 pos_embed.pos_embed: diffusers' computed buffer, fp16",
                smoke=str(smoke))
    for name, spec in model_specs(smoke).items():
        sd16, hashes, kept = generate(name, spec, smoke)
        model_dir, files, sha = write_folder(name, spec, sd16, folder)
        del sd16
        gc.collect()
        model, config = load_fp32(spec, model_dir, hashes)
        log(f"{name}: reloaded in fp32 ({sum(p.numel() for p in model.parameters()):,} parameters)")
        meta.update({f"{name}.folder": model_dir, f"{name}.files": json.dumps(files), f"{name}.sha256": json.dumps(sha),
                     f"{name}.config": json.dumps(config, sort_keys=True),
                     f"{name}.keys": f"tests/data/keys/{spec['keys']}.json.gz"})
        if name.startswith("flux"):
            meta[f"{name}.tensors"] = json.dumps(kept)
        (run_sd3 if name.startswith("sd3") else run_flux)(model, tensors, meta)
        del model
        gc.collect()
    save(golden, tensors, meta)
    log("done")


START = time.time()

if __name__ == "__main__":
    main()
