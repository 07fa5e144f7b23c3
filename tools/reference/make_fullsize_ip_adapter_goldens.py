#!/work/refvenv/bin/python
"""IP-Adapter on the FULL-SIZE random SD 1.5: the full-size counterpart of make_ip_adapter_goldens.py (tiny models),
on make_fullsize_goldens.py's SD 1.5 checkpoint, in diffusers mode at 64x64 (8x8 latents): small images, full-size
networks, the real layouts of h94/IP-Adapter's models/image_encoder (OpenCLIP ViT-H/14), ip-adapter_sd15 and
ip-adapter-plus_sd15.

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline, after
`make_key_lists.py ip_adapter` (it reads the three key lists and checks them against that script's lists):

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_fullsize_ip_adapter_goldens.py [--sweep]

Versions (requirements-pip.txt): torch 2.4.1 (CPU), diffusers 0.30.3, transformers 4.40.2; float32 on the CPU, ONE
torch thread (THREADS; make_fullsize_sdxl_goldens' docstring: the last bits depend on it).
Measured on the shared 2-core machine (/usr/bin/time -v): 1 min 58 s to 2 min 9 s wall (the key-list proofs 5 s, the
encoder's weights 4 to 9 s, SD 1.5's 25 to 39 s, each 4-step run 8 to 9 s without IP-Adapter, 12 s with the plain
adapter (one ViT-H forward, 4 s), 17 s with Plus (two forwards: the image and the all-zero negative); 8 runs), peak
RSS 8.25 million KB (7.87 GiB: the fp32 SD 1.5 models 4.3 GB, the fp32 ViT-H 2.5 GB, while the UNet is converted).
`--sweep`: 4 min 20 s, peak RSS 8.13 million KB. The same bytes on every run (checked, two runs) on one CPU. Rerun on a Zen 3
(AVX2, session 22, after the helpers gained parameters for the SDXL script) the tensors differ from the stored
Zen 4 ones in the last bits (latents by up to 2.5e-5, encoder outputs by up to 1.6e-5, images by 1 level), as torch's
CPU kernels do by ISA (the sibling check moved from 1.1e-5 to 1.9e-5 too); the stored file was kept.
`--sweep` writes nothing: it runs each case at every gain of SWEEP_GAINS and prints the table below.

Weights
-------
Every network is a pure function of a key list (make_fullsize_goldens.weight(i, name, shape): randn seeded 1000 + i,
scaled per kind, rounded to fp16, used in fp32; i = the tensor's 0-based index in ITS OWN list), then the GAINs
below (powers of two, so every product of an fp16 value is again an fp16 value, exactly: checked per tensor; a
reimplementation multiplies the F16 tensors of random_checkpoint(list) by them, no rounding involved):
  SD 1.5         tests/data/keys/sd15.ldm.json.gz, built exactly as make_fullsize_controlnet_goldens.py builds it
                 (make_fullsize_lora_goldens.build_pipeline("sd15"): diffusers' single-file converters, published
                 configs, mg.ZeroedAttnProcessor on UNet and VAE, CLIP's real BPE vocabulary padded with
                 <|endoftext|>); checked: it reproduces fullsize_sd15_cases.safetensors' diffusers_euler latent.
  Image encoder  tests/data/keys/clip_vit_h14_vision.json.gz (make_key_lists.py ip_adapter: transformers'
                 CLIPVisionModelWithProjection with h94/IP-Adapter models/image_encoder's config, 520 tensors,
                 632 M parameters, no position_ids), loaded with load_state_dict(strict=True, assign=True) into the
                 model built on the meta device from that config (the list's metadata "config"; ENCODER_CONFIG_JSON
                 below is the config.json save_pretrained writes for it). EMBED_GAIN = 16 on
                 vision_model.embeddings.class_embedding [1280] and vision_model.embeddings.position_embedding.weight
                 [257, 1280]: the weight rule gives them 0.05 randn and randn / sqrt(1280) = 0.028 randn against
                 patch embeddings of std 0.85 (fullsize_ref), so the positions hardly mattered: removing the position
                 embedding changed the penultimate states by 1.9 % (mean |diff| / mean |x|) at gain 1, 13 % at 8, 26 %
                 at 16, 44 % at 32; the class token's image_embeds by 23, 23, 27, 38 %. At 16 the positions have std
                 0.45, the class embedding 0.8.
  ip-adapter_sd15       tests/data/keys/ip_adapter_sd15.json.gz (36 tensors: image_proj.proj.weight [3072, 1024],
                 .bias [3072], image_proj.norm.weight / .bias [768], ip_adapter.{1,3,...,31}.to_k_ip.weight /
                 .to_v_ip.weight [width, 768]: the 16 cross-attentions in attn_processors order, width 320, 320,
                 640, 640, 1280, 1280 (down), 1280 x3, 640 x3, 320 x3 (up), 1280 (mid)).
  ip-adapter-plus_sd15  tests/data/keys/ip_adapter_plus_sd15.json.gz (83 tensors: the original Resampler's names,
                 image_proj.latents [1, 16, 768], proj_in [768, 1280] + bias, proj_out [768, 768] + bias, norm_out,
                 layers.{0..3}.0.{norm1, norm2, to_q [768, 768], to_kv [1536, 768], to_out [768, 768]},
                 layers.{0..3}.1.{0 (LayerNorm: its weight is named "...1.0.weight", no "norm", so the rule draws it
                 as 0.05 randn, not 1 + 0.1 randn), 1 [3072, 768], 3 [768, 3072]}; then the same 32 ip_adapter.*).
                 Both adapters: GAIN (ADAPTERS) on every ip_adapter.*.to_k_ip.weight / .to_v_ip.weight (32 tensors),
                 nothing else. Written as the user's file is: one safetensors file, F16, keys with the image_proj. /
                 ip_adapter. prefixes, metadata {"format": "pt"}, and read by pipe.load_ip_adapter(folder,
                 subfolder="", weight_name=file); checked after loading: every attn2 processor is
                 IPAdapterAttnProcessor2_0 holding the list's to_k_ip / to_v_ip (float32, no bias) and the converted
                 projection (ImageProjection / IPAdapterPlusImageProjection, 12 heads, 4 layers) holds exactly the
                 list's tensors under the names make_key_lists.ip_adapter_diffusers_names gives (to_kv split by rows,
                 k first): every list entry used.
Why the GAIN: at gain 1 each case moved its image by only about 4 levels (twice MIN_MEAN_DIFF). Measured (`--sweep`;
mean |image - the same run without IP-Adapter| in levels of 255, then the fraction of pixels at 0 or 255):
    gain              1            2            4             8             16            32
    fullsize_ip       4.04 14.8 %  7.40 15.0 %  10.86 15.3 %  12.27 15.3 %  12.43 15.4 %  13.18 15.9 %  (none: 14.2 %)
    fullsize_ip_plus  3.92 13.2 %  8.36 13.7 %  12.20 14.2 %  13.82 14.1 %  14.51 14.3 %  14.85 14.4 %  (none: 12.9 %)
GAIN = 2 for both: twice gain 1's effect (the adapters still act in proportion; from 4 on the effect levels off,
where a wrong adapter would show less), +0.8 % saturated pixels at most (this random SD 1.5 saturates 13-14 % of its
64x64 pixels on its own). Stored as metadata "gains" and as each case's adapters[0].gain.
Reference image: tests/golden/data/ip_adapter/fullsize_ref.png, 96 wide x 80 high RGB 8 bits:
make_sdxl_goldens.make_init_image(80, 96, 2) with its left 12 columns inverted; written with PIL and read back
(equal). CLIPImageProcessor() (defaults: shortest edge 224, centre crop 224 x 224, BICUBIC, OpenAI CLIP mean/std)
resizes it UP to 268 x 224 (int(224 * 96 / 80) = 268) and crops left 22, top 0; checked bit for bit against
make_ip_adapter_goldens.clip_preprocess (the steps written out).

Pipeline: StableDiffusionPipeline(the SD 1.5 components, image_encoder=the ViT-H (float32), feature_extractor=
CLIPImageProcessor() (defaults), EulerDiscreteScheduler.from_config(make_fullsize_goldens.sd_scheduler_config(False)):
SD's single-file config, "linspace" spacing, steps_offset 1), safety checker off; load_ip_adapter as above;
set_ip_adapter_scale(scale); called as pipe(prompt, negative_prompt, ip_adapter_image=<the PNG as PIL>, height=64,
width=64, num_inference_steps=4, guidance_scale=7, generator=torch.Generator("cpu").manual_seed(seed),
output_type="latent"); decoded as the siblings decode: round(clamp(vae.decode(latent / 0.18215) / 2 + 0.5) * 255).
CFG's negative image input: zeros [1, 1024] for the plain adapter (image_embeds), the encoder's penultimate states
of an all-zero pixel_values [1, 3, 224, 224] for Plus. load_ip_adapter puts IPAdapterAttnProcessor2_0 (SDPA) on
every attn2 and a new ZeroedAttnProcessor on every attn1; after each run unload_ip_adapter and ZeroedAttnProcessor
everywhere again (checked).

Writes
------
tests/golden/data/ip_adapter/fullsize_ref.png  (the reference image)
tests/golden/data/fullsize_ip_adapter_cases.safetensors (safetensors_io: fixed header order, sorted metadata; the
same bytes on every run, checked across runs):
  pre.fullsize_ref               float32 [1, 3, 224, 224]  CLIPImageProcessor()(fullsize_ref.png).pixel_values
  vis.image_embeds               float32 [1, 1024]         the encoder's image_embeds for pre.fullsize_ref
  vis.penultimate                float32 [1, 257, 1280]    its hidden_states[-2] (output of layer 31 of 32)
  proj.ip_adapter_sd15           float32 [1, 4, 768]       the loaded ImageProjection on vis.image_embeds
  proj.ip_adapter_sd15.negative  float32 [1, 4, 768]       ... on zeros [1, 1024]
  proj.ip_adapter_plus_sd15      float32 [1, 16, 768]      the loaded IPAdapterPlusImageProjection on vis.penultimate
  proj.ip_adapter_plus_sd15.negative  float32 [1, 16, 768] ... on the penultimate states of all-zero pixel_values
  <case>.latent                  float32 [1, 4, 8, 8]      the pipeline's final latent
  <case>.image                   uint8 [1, 3, 64, 64]      CHW RGB
  (checked: the pipeline's own image encoder input is pre.fullsize_ref bit for bit, its encoder outputs are
  vis.* bit for bit, and the projected tokens the UNet receives are proj.* within 1e-5.)
  metadata <case>.params (JSON): model "sd15", keys (the base model's key list, relative to tests/data), mode
      "diffusers", scheduler "euler", spacing, steps, cfg, seed, prompt, negative, width, height, image_encoder
      {file (key list), embed_gain, embed_gain_applies_to}, feature_extractor {size,
      crop_size}, adapters [{name, file (KEY LIST, relative to tests/data: a test writes its random file), kind,
      gain, gain_applies_to, images ["ip_adapter/fullsize_ref.png"] (relative to tests/golden/data), scale}],
      mean_abs_image_diff_vs_no_ip_adapter (levels of 255), max_abs_image_diff_vs_no_ip_adapter,
      mean_abs_latent_diff_vs_no_ip_adapter, saturated_fraction.
  metadata also: script, git, torch, diffusers, transformers, huggingface_hub, cases (names in order), keys,
      image_encoder_keys, image_encoder_config (config.json), embed_gain, adapter_keys, gains, keys_sha256 (of each
      .json.gz), pre.fullsize_ref.params (image, size, resized, crop), weights, scheduler_config, sibling_check,
      notes.

Cases (64x64, Euler, 4 steps, CFG 7)
  fullsize_ip       ip-adapter_sd15, fullsize_ref.png, scale 0.8
  fullsize_ip_plus  ip-adapter-plus_sd15, fullsize_ref.png, scale 1.0
  Measured (GAIN 2): fullsize_ip moves the image by 7.40 levels on average (max 45) and the latent by 1.945 (mean
  |.|; latent std 14.1); fullsize_ip_plus by 8.36 (max 46) and 1.566 (latent std 15.0). Encoder: image_embeds std
  1.007, penultimate std 6.13 (all-zero input: 5.86); projected tokens std 1.00 (LayerNorm outputs). At scale 0 the
  fullsize_ip pipeline is within 9.5e-6 of the base pipeline (ZeroedAttnProcessor's baddbmm against SDPA).
Checks (asserted on every run): the key lists on disk are make_key_lists' lists (names, shapes, dtypes; that
script proves them against diffusers' loader and transformers' save_pretrained); every list entry lands in the
loaded model; the sibling's diffusers_euler latent reproduced (< 1e-4); at ip_adapter scale 0 the fullsize_ip
pipeline gives, bit for bit, the base pipeline with attn2 set to AttnProcessor2_0 (what load_ip_adapter leaves);
pre.fullsize_ref equals the written-out preprocessing; the pipeline's encoder inputs/outputs and projected tokens
as above; each case's image differs from the same run without IP-Adapter by more than MIN_MEAN_DIFF levels on
average, with under MAX_SAT_RISE more saturated pixels; all latents pairwise different; every tensor finite.
"""
import json
import os
import sys
import tempfile
import time

import numpy as np
import PIL.Image
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_fullsize_lora_goldens as flg  # noqa: E402  (first: its imports stub `clip` before k_diffusion; SD 1.5)
import make_fullsize_controlnet_goldens as fcg  # noqa: E402  (read_list, sha256)
import make_fullsize_goldens as fg  # noqa: E402  (the weight rule)
import make_ip_adapter_goldens as ipg  # noqa: E402  (clip_preprocess, restore)
import make_key_lists as mk  # noqa: E402  (the key lists, their configs and the name map)
import make_model_goldens as mg  # noqa: E402  (git_hash, ZeroedAttnProcessor)
import make_sdxl_goldens as sx  # noqa: E402  (versions, assert_all_differ, make_init_image)
import safetensors_io  # noqa: E402

import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline  # noqa: E402
from diffusers.models.attention_processor import AttnProcessor2_0, IPAdapterAttnProcessor2_0  # noqa: E402
from diffusers.models.embeddings import ImageProjection, IPAdapterPlusImageProjection  # noqa: E402
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection  # noqa: E402

ROOT = flg.ROOT
OUT = os.path.join(ROOT, "tests", "golden", "data")
DATA = os.path.join(ROOT, "tests", "data")
GOLDEN = os.path.join(OUT, "fullsize_ip_adapter_cases.safetensors")
IMAGE = os.path.join(OUT, "ip_adapter", "fullsize_ref.png")
IMAGE_REL = "ip_adapter/fullsize_ref.png"  # relative to tests/golden/data
SCRIPT = "tools/reference/make_fullsize_ip_adapter_goldens.py"
BASE_KEYS = "keys/sd15.ldm.json.gz"  # relative to tests/data
ENC_KEYS = "keys/clip_vit_h14_vision.json.gz"
THREADS = 1
SIZE, CFG, STEPS = 64, 7.0, 4
REF_W, REF_H = 96, 80
# class_embedding and position_embedding.weight times EMBED_GAIN after the weight rule (see the docstring).
EMBED_GAIN = 16.0
EMBED_GAINED = ("vision_model.embeddings.class_embedding", "vision_model.embeddings.position_embedding.weight")
# name: key list, kind, GAIN on every ip_adapter.*.to_k_ip.weight / .to_v_ip.weight (a power of two)
ADAPTERS = {
    "ip_adapter_sd15": dict(keys="keys/ip_adapter_sd15.json.gz", kind="plain", gain=2.0),
    "ip_adapter_plus_sd15": dict(keys="keys/ip_adapter_plus_sd15.json.gz", kind="plus", gain=2.0),
}
SWEEP_GAINS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
MIN_MEAN_DIFF = 2.0  # levels of 255
MAX_SAT_RISE = 0.05  # fraction of pixels newly at 0 or 255
PROJ_ATOL = 1e-5  # the UNet's projected tokens (a batch of 2) against proj.* (a batch of 1)

# name, adapter, scale, seed, prompt, negative
CASES = [
    ("fullsize_ip", "ip_adapter_sd15", 0.8, 721, "a cat sitting on a wooden chair", "blurry"),
    ("fullsize_ip_plus", "ip_adapter_plus_sd15", 1.0, 722, "a bowl of fruit on a table", ""),
]


def is_ip_weight(name):
    return name.startswith("ip_adapter.") and (name.endswith(".to_k_ip.weight") or name.endswith(".to_v_ip.weight"))


def pow2(g):
    m, _ = np.frexp(g)
    return g > 0 and m == 0.5


# ---------------------------------------------------------------------------------------------------------
# Files

def reference_image():
    arr = sx.make_init_image(REF_H, REF_W, 2)
    arr[:, :12] = 255 - arr[:, :12]  # an inverted left band: the centre crop keeps only part of it
    PIL.Image.fromarray(arr, "RGB").save(IMAGE)
    back = PIL.Image.open(IMAGE)
    back.load()
    assert back.mode == "RGB" and back.size == (REF_W, REF_H) and np.array_equal(np.asarray(back), arr)
    return back


def encoder_config(cfg=mk.CLIP_VIT_H14_VISION):
    return CLIPVisionConfig(**{k: v for k, v in cfg.items() if k != "architectures"})


def encoder_config_json(cfg, published=mk.CLIP_VIT_H14_VISION):
    """config.json as save_pretrained writes it for the fp16 model (architectures, torch_dtype float16); checked
    to read back as the published config."""
    c = CLIPVisionConfig.from_dict(cfg.to_dict())
    c.architectures = ["CLIPVisionModelWithProjection"]
    c.torch_dtype = torch.float16
    with tempfile.TemporaryDirectory() as tmp:
        c.save_pretrained(tmp)
        with open(os.path.join(tmp, "config.json")) as f:
            text = f.read()
        back = CLIPVisionConfig.from_pretrained(tmp)
    for k in published:
        if k != "architectures":
            assert getattr(back, k) == getattr(cfg, k), k
    return text


def check_lists(notes):
    """The key lists on disk are make_key_lists' (names, shapes, dtypes) and its proofs pass."""
    enc = fcg.read_list(ENC_KEYS)
    want = mk.clip_vision_list(mk.CLIP_VIT_H14_VISION)
    assert [[n, s] for n, s, _ in enc] == [[n, s] for n, s in want.items()], \
        f"{ENC_KEYS} is not make_key_lists' list: run make_key_lists.py ip_adapter"
    assert {d for _, _, d in enc} == {"float32"}
    for name, spec in ADAPTERS.items():
        got = fcg.read_list(spec["keys"])
        want, _ = mk.ip_adapter_list(spec["kind"], mk.SD15_UNET, mk.CLIP_VIT_H14_VISION)
        assert [[n, s] for n, s, _ in got] == [[n, s] for n, s in want.items()], \
            f"{spec['keys']} is not make_key_lists' list: run make_key_lists.py ip_adapter"
        assert {d for _, _, d in got} == {"float16"}
    notes.append(f"{ENC_KEYS}, " + ", ".join(s["keys"] for s in ADAPTERS.values()) + ": make_key_lists' lists, "
                 "proved there against transformers' save_pretrained / from_pretrained and diffusers' IP-Adapter "
                 "loader on SD 1.5's UNet")


def build_encoder(notes, keys=ENC_KEYS, published=mk.CLIP_VIT_H14_VISION):
    t0 = time.time()
    tensors = fcg.read_list(keys)
    cfg = encoder_config(published)
    with torch.device("meta"):
        enc = CLIPVisionModelWithProjection(cfg)
    sd = {}
    for i, (name, shape, _) in enumerate(tensors):
        w = fg.weight(i, name, shape)
        if name in EMBED_GAINED:
            w = w * EMBED_GAIN
            assert torch.equal(w.half().float(), w), name  # exact in fp16
        sd[name] = w
    assert sum(n in sd for n in EMBED_GAINED) == len(EMBED_GAINED)
    enc.load_state_dict(sd, strict=True, assign=True)
    emb = enc.vision_model.embeddings
    emb.register_buffer("position_ids", torch.arange(emb.num_positions).expand((1, -1)), persistent=False)
    left = [n for n, t in list(enc.named_parameters()) + list(enc.named_buffers()) if t.is_meta]
    assert not left, left[:5]
    got = enc.state_dict()
    assert list(got) == list(sd) and all(v.data_ptr() == sd[k].data_ptr() for k, v in got.items())  # the list's tensors
    note = (f"{keys}: {len(tensors)} tensors loaded strictly (assign) into CLIPVisionModelWithProjection, each the "
            f"list's tensor; class/position embeddings times {EMBED_GAIN:g}")
    notes.append(note)
    print(f"image encoder: {note}; {time.time() - t0:.0f} s, peak RSS {flg.peak_rss_gb():.1f} GB", flush=True)
    return enc.eval()


def adapter_tensors(name, gain, adapters=ADAPTERS, pairs=16):
    """{list name: fp32 tensor (fp16 values)}: the weight rule over the adapter's list, GAIN on to_k_ip / to_v_ip
    (pairs: how many cross-attentions the UNet has)."""
    out = {}
    for i, (n, shape, _) in enumerate(fcg.read_list(adapters[name]["keys"])):
        w = fg.weight(i, n, shape)
        if is_ip_weight(n) and gain != 1.0:
            w = w * gain
            assert torch.equal(w.half().float(), w), n  # exact in fp16: no rounding, no overflow
        out[n] = w
    assert sum(is_ip_weight(n) for n in out) == 2 * pairs
    return out


def write_adapter(folder, name, tensors):
    """The user's file: one safetensors file, F16, the original keys with prefixes, metadata {"format": "pt"}."""
    fname = f"{name}.safetensors"
    safetensors_io.save_file({k: v.half() for k, v in tensors.items()}, os.path.join(folder, fname), {"format": "pt"})
    return fname


# ---------------------------------------------------------------------------------------------------------
# Pipelines

def ip_pipeline(base, enc, sched_cfg):
    pipe = StableDiffusionPipeline(
        vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=base.unet,
        scheduler=EulerDiscreteScheduler.from_config(sched_cfg), safety_checker=None,
        feature_extractor=CLIPImageProcessor(), image_encoder=enc, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def check_loaded(pipe, name, tensors, adapters=ADAPTERS, attn1=mg.ZeroedAttnProcessor, plus=mk.IP_ADAPTER_PLUS):
    """Every list entry where it belongs: the attn2 processors' to_k_ip / to_v_ip and the converted projection
    (attn1: the self-attentions' processor class; plus: the Resampler's config). tensors: the list's values, fp32 or
    fp16 (compared in fp32)."""
    unet, kind = pipe.unet, adapters[name]["kind"]
    used = set()
    for k, lname, width in mk.ip_adapter_layers(unet):
        proc = unet.attn_processors[f"{lname}.processor"]
        assert type(proc) is IPAdapterAttnProcessor2_0 and len(proc.to_k_ip) == 1, lname
        for kv in ("k", "v"):
            key = f"ip_adapter.{k}.to_{kv}_ip.weight"
            lin = getattr(proc, f"to_{kv}_ip")[0]
            assert lin.bias is None and lin.weight.dtype == torch.float32 and torch.equal(lin.weight, tensors[key].float()), key
            used.add(key)
    got1 = {type(p) for n, p in unet.attn_processors.items() if n.endswith("attn1.processor")}
    assert got1 == {attn1}, got1
    layer = unet.encoder_hid_proj.image_projection_layers[0]
    assert len(unet.encoder_hid_proj.image_projection_layers) == 1
    assert type(layer) is (ImageProjection if kind == "plain" else IPAdapterPlusImageProjection)
    got = layer.state_dict()
    want = {}
    for n, v in tensors.items():
        if not n.startswith("image_proj."):
            continue
        for dn, chunk in mk.ip_adapter_diffusers_names(kind, n[len("image_proj."):]):
            want[dn] = v if chunk is None else v.chunk(2, dim=0)[chunk]
        used.add(n)
    assert sorted(got) == sorted(want), sorted(set(got) ^ set(want))[:6]
    for k, v in want.items():
        assert got[k].dtype == torch.float32 and torch.equal(got[k], v.float()), (name, k)
    assert used == set(tensors), sorted(set(tensors) - used)[:5]  # the list fully used
    if kind == "plus":
        assert {blk.attn.heads for blk in layer.layers} == {plus["heads"]}
        assert len(layer.layers) == plus["depth"] and layer.latents.shape[1] == plus["num_queries"]
    return layer


class Capture:
    """Forward hook: the first call's inputs and output."""

    def __init__(self):
        self.calls = []

    def __call__(self, module, args, kwargs, output):
        self.calls.append((args, kwargs, output))


def run_ip(base, enc, sched_cfg, folder, fname, case, scale=None, inspect=None):
    """(latent, image, what the hooks saw) of one IP-Adapter run; the base processors are back afterwards."""
    name, adapter, c_scale, seed, prompt, negative = case
    pipe = ip_pipeline(base, enc, sched_cfg)
    pipe.load_ip_adapter(folder, subfolder="", weight_name=fname)
    pipe.set_ip_adapter_scale(c_scale if scale is None else scale)
    seen = {}
    hooks = []
    if inspect is not None:
        seen["layer"] = check_loaded(pipe, adapter, inspect)
        seen["enc"], seen["proj"] = Capture(), Capture()
        hooks = [enc.register_forward_hook(seen["enc"], with_kwargs=True),
                 pipe.unet.encoder_hid_proj.image_projection_layers[0].register_forward_hook(seen["proj"],
                                                                                            with_kwargs=True)]
    try:
        with torch.no_grad():
            lat = pipe(prompt, negative_prompt=negative, ip_adapter_image=PIL.Image.open(IMAGE), height=SIZE,
                       width=SIZE, num_inference_steps=STEPS, guidance_scale=CFG,
                       generator=torch.Generator("cpu").manual_seed(seed), output_type="latent").images
            dec = pipe.vae.decode(lat / pipe.vae.config.scaling_factor).sample
            img = ((dec / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    finally:
        for h in hooks:
            h.remove()
    assert torch.isfinite(lat).all(), name
    ipg.restore(pipe, "sd1")  # unload_ip_adapter, ZeroedAttnProcessor everywhere again (asserted)
    return lat.contiguous(), img.contiguous(), seen


def compare(img, ref_img, lat, ref_lat):
    diff = (img.float() - ref_img.float()).abs()
    sat = ((img == 0) | (img == 255)).float().mean().item()
    sat0 = ((ref_img == 0) | (ref_img == 255)).float().mean().item()
    return dict(mean=diff.mean().item(), max=diff.max().item(), lat=(lat - ref_lat).abs().mean().item(), sat=sat,
                sat0=sat0)


def sweep(base, enc, sched_cfg, refs):
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for case in CASES:
            for g in SWEEP_GAINS:
                t0 = time.time()
                fname = write_adapter(folder, case[1], adapter_tensors(case[1], g))
                lat, img, _ = run_ip(base, enc, sched_cfg, folder, fname, case)
                c = compare(img, refs[case[0]][1], lat, refs[case[0]][0])
                rows.append((case[0], g, c))
                print(f"SWEEP {case[0]} gain {g:g}: mean |image diff| {c['mean']:.2f} (max {c['max']:.0f}), mean "
                      f"|latent diff| {c['lat']:.3f}, saturated {c['sat']:.1%} (without {c['sat0']:.1%}) "
                      f"({time.time() - t0:.0f} s)", flush=True)
    return rows


def main():
    torch.set_num_threads(THREADS)
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    start = time.time()
    notes = []
    assert (SIZE, CFG) == (flg.SIZE, flg.CFG)  # flg.run (the runs without IP-Adapter) uses its own
    flg.fsx.check_prompts([dict(name=c[0], prompt=c[4], negative=c[5]) for c in CASES],
                          flg.tokenizers(tempfile.mkdtemp())[0].get_vocab())
    assert pow2(EMBED_GAIN) and all(pow2(a["gain"]) for a in ADAPTERS.values())
    do_sweep = sys.argv[1:] == ["--sweep"]
    assert sys.argv[1:] in ([], ["--sweep"]), sys.argv
    pil = reference_image()
    check_lists(notes)
    enc = build_encoder(notes)
    t0 = time.time()
    pipe, sched_cfg = flg.build_pipeline("sd15", tempfile.mkdtemp())
    print(f"SD 1.5 pipeline built in {time.time() - t0:.0f} s; peak RSS {flg.peak_rss_gb():.1f} GB", flush=True)
    sibling_err = flg.check_sibling(pipe, "sd15", sched_cfg)

    refs = {}
    for case in CASES:  # the same runs without IP-Adapter
        t0 = time.time()
        refs[case[0]] = flg.run(pipe, "sd15", sched_cfg, STEPS, case[3], case[4], case[5])
        print(f"{case[0]} without IP-Adapter: {time.time() - t0:.0f} s", flush=True)
    if do_sweep:
        sweep(pipe, enc, sched_cfg, refs)
        print(f"{time.time() - start:.0f} s in all; peak RSS {flg.peak_rss_gb():.1f} GB", flush=True)
        return

    tensors, meta, latents = {}, {}, {}
    # Preprocessing, the encoder's outputs.
    pre = CLIPImageProcessor()(pil, return_tensors="pt").pixel_values
    mine, geo = ipg.clip_preprocess(pil, 224)
    assert pre.dtype == torch.float32 and pre.shape == (1, 3, 224, 224) and torch.equal(pre[0], mine)
    assert geo == dict(resized=[268, 224], crop=[0, 22]), geo
    tensors["pre.fullsize_ref"] = pre.contiguous()
    meta["pre.fullsize_ref.params"] = json.dumps(dict(image=IMAGE_REL, mode="RGB", width=REF_W, height=REF_H,
                                                      size=224, crop_size=224, **geo))
    notes.append("pre.fullsize_ref: CLIPImageProcessor() equals the written-out steps (make_ip_adapter_goldens."
                 "clip_preprocess) bit for bit; 96x80 -> resized 268x224 (upscaled), crop top 0 left 22")
    t0 = time.time()
    with torch.no_grad():
        out = enc(pre, output_hidden_states=True)
        zout = enc(torch.zeros_like(pre), output_hidden_states=True)
    assert len(out.hidden_states) == 33 and torch.equal(out.hidden_states[-1], out.last_hidden_state)
    vis = {"image_embeds": out.image_embeds.contiguous(), "penultimate": out.hidden_states[-2].contiguous()}
    zeros_pen = zout.hidden_states[-2].contiguous()
    for k, v in vis.items():
        tensors[f"vis.{k}"] = v
    print(f"encoder: image_embeds {list(vis['image_embeds'].shape)} std {vis['image_embeds'].std().item():.3f}, "
          f"penultimate {list(vis['penultimate'].shape)} std {vis['penultimate'].std().item():.3f} (all-zero input: "
          f"std {zeros_pen.std().item():.3f}); two forwards {time.time() - t0:.0f} s", flush=True)

    tmp = tempfile.TemporaryDirectory()  # the adapter files (143 MB), removed at the end
    folder = tmp.name
    files, adapter_ts = {}, {}
    for name, spec in ADAPTERS.items():
        adapter_ts[name] = adapter_tensors(name, spec["gain"])
        files[name] = write_adapter(folder, name, adapter_ts[name])

    # Scale 0: the IP-Adapter's attention is skipped; attn2 then runs AttnProcessor2_0's SDPA.
    case0 = CASES[0]
    lat0, _, _ = run_ip(pipe, enc, sched_cfg, folder, files[case0[1]], case0, scale=0.0)
    pipe.unet.set_attn_processor({n: (AttnProcessor2_0() if n.endswith("attn2.processor") else mg.ZeroedAttnProcessor())
                                  for n in pipe.unet.attn_processors})
    same, _ = flg.run(pipe, "sd15", sched_cfg, STEPS, case0[3], case0[4], case0[5])
    pipe.unet.set_attn_processor(mg.ZeroedAttnProcessor())
    assert torch.equal(lat0, same), "scale 0 is not the base pipeline with SDPA cross-attention"
    err0 = (lat0 - refs[case0[0]][0]).abs().max().item()
    notes.append(f"{case0[0]} at ip_adapter scale 0.0: bit for bit the base pipeline with attn2 set to "
                 f"AttnProcessor2_0 (as load_ip_adapter leaves it); against ZeroedAttnProcessor everywhere max "
                 f"|latent diff| {err0:.1e}")
    print(notes[-1], flush=True)

    for case in CASES:
        name, adapter, scale, seed, prompt, negative = case
        kind = ADAPTERS[adapter]["kind"]
        t0 = time.time()
        lat, img, seen = run_ip(pipe, enc, sched_cfg, folder, files[adapter], case, inspect=adapter_ts[adapter])
        t_ip = time.time() - t0
        # What the pipeline fed the encoder and the projection, against the component goldens.
        enc_calls = seen["enc"].calls
        assert len(enc_calls) == (1 if kind == "plain" else 2), len(enc_calls)
        assert torch.equal(enc_calls[0][0][0], pre), "the pipeline's pixel_values are not pre.fullsize_ref"
        src = "image_embeds" if kind == "plain" else "penultimate"
        got_src = enc_calls[0][2].image_embeds if kind == "plain" else enc_calls[0][2].hidden_states[-2]
        assert torch.equal(got_src, vis[src]), (name, src)
        if kind == "plus":
            assert not enc_calls[1][0][0].any() and torch.equal(enc_calls[1][2].hidden_states[-2], zeros_pen)
        layer = seen["layer"]
        neg_in = torch.zeros_like(vis[src]) if kind == "plain" else zeros_pen
        with torch.no_grad():
            proj, proj_neg = layer(vis[src]).contiguous(), layer(neg_in).contiguous()
        (p_args, _, p_out) = seen["proj"].calls[0]
        assert len(seen["proj"].calls) == STEPS
        assert torch.equal(p_args[0], torch.cat([neg_in, vis[src]])), name  # [negative, positive]
        perr = max((p_out[1] - proj[0]).abs().max().item(), (p_out[0] - proj_neg[0]).abs().max().item())
        assert perr <= PROJ_ATOL, (name, perr)
        tensors[f"proj.{adapter}"] = proj
        tensors[f"proj.{adapter}.negative"] = proj_neg
        notes.append(f"{name}: the pipeline's encoder input is pre.fullsize_ref and its {src} is vis.{src}, bit for "
                     f"bit; the UNet's projected tokens (batch [negative, positive]) are proj.{adapter}[.negative] "
                     f"within {perr:.1e}")
        c = compare(img, refs[name][1], lat, refs[name][0])
        print(f"{name}: {adapter} gain {ADAPTERS[adapter]['gain']:g} scale {scale}: mean |image - no-IP image| "
              f"{c['mean']:.2f} levels (max {c['max']:.0f}), mean |latent diff| {c['lat']:.3f}, image mean "
              f"{img.float().mean().item():.1f} std {img.float().std().item():.1f}, saturated {c['sat']:.1%} (without "
              f"{c['sat0']:.1%}), latent std {lat.std().item():.3f}; proj std {proj.std().item():.3f}; IP run "
              f"{t_ip:.0f} s; peak RSS {flg.peak_rss_gb():.1f} GB", flush=True)
        assert c["mean"] > MIN_MEAN_DIFF and c["sat"] - c["sat0"] < MAX_SAT_RISE, (name, c)
        tensors[f"{name}.latent"] = lat
        tensors[f"{name}.image"] = img
        latents[name] = lat
        meta[f"{name}.params"] = json.dumps(dict(
            model="sd15", keys=BASE_KEYS, mode="diffusers", scheduler="euler",
            spacing=EulerDiscreteScheduler.from_config(sched_cfg).config.timestep_spacing, steps=STEPS, cfg=CFG,
            seed=seed, prompt=prompt, negative=negative, width=SIZE, height=SIZE,
            image_encoder=dict(file=ENC_KEYS, embed_gain=EMBED_GAIN, embed_gain_applies_to=list(EMBED_GAINED)),
            feature_extractor=dict(size=224, crop_size=224),
            adapters=[dict(name=adapter, file=ADAPTERS[adapter]["keys"], kind=kind, gain=ADAPTERS[adapter]["gain"],
                           gain_applies_to="ip_adapter.*.to_k_ip.weight, ip_adapter.*.to_v_ip.weight",
                           images=[IMAGE_REL], scale=scale)],
            mean_abs_image_diff_vs_no_ip_adapter=round(c["mean"], 3),
            max_abs_image_diff_vs_no_ip_adapter=int(c["max"]),
            mean_abs_latent_diff_vs_no_ip_adapter=round(c["lat"], 4), saturated_fraction=round(c["sat"], 4)))
    sx.assert_all_differ(latents)
    assert torch.equal(flg.run(pipe, "sd15", sched_cfg, STEPS, *CASES[0][3:])[0], refs[CASES[0][0]][0]), \
        "the base pipeline changed"
    del pipe, enc
    tmp.cleanup()

    enc_cfg_json = encoder_config_json(encoder_config())
    meta.update(sx.versions(SCRIPT))
    meta.update({
        "git": mg.git_hash(), "cases": json.dumps([c[0] for c in CASES]), "keys": BASE_KEYS,
        "image_encoder_keys": ENC_KEYS, "image_encoder_config": enc_cfg_json,
        "embed_gain": json.dumps(dict(value=EMBED_GAIN, applies_to=list(EMBED_GAINED))),
        "adapter_keys": json.dumps({n: s["keys"] for n, s in ADAPTERS.items()}),
        "gains": json.dumps({n: dict(value=s["gain"], applies_to="ip_adapter.*.to_k_ip.weight, "
                                                                 "ip_adapter.*.to_v_ip.weight (32 tensors)")
                             for n, s in ADAPTERS.items()}),
        "keys_sha256": json.dumps({k: fcg.sha256(os.path.join(DATA, k))
                                   for k in [ENC_KEYS] + [s["keys"] for s in ADAPTERS.values()]}),
        "weights": "make_fullsize_goldens.weight(i, name, shape) over each key list (sd15.ldm.json.gz; "
                   "clip_vit_h14_vision.json.gz; ip_adapter_sd15.json.gz / ip_adapter_plus_sd15.json.gz, names with "
                   "the image_proj. / ip_adapter. prefixes), i the index in that list, fp16-rounded, used in fp32; "
                   "then the gains (powers of two: exact in fp16)",
        "scheduler_config": json.dumps(sched_cfg),
        "sibling_check": json.dumps(dict(file=flg.SIBLINGS["sd15"], case="diffusers_euler",
                                         max_abs_latent_diff=sibling_err)),
        "notes": json.dumps(list(dict.fromkeys(notes))),
    })
    for k, v in tensors.items():
        if v.is_floating_point():
            assert v.dtype == torch.float32 and torch.isfinite(v).all(), k
    safetensors_io.save_file({k: v.detach().clone().contiguous() for k, v in sorted(tensors.items())}, GOLDEN,
                             dict(sorted(meta.items())))
    print(f"wrote {os.path.relpath(GOLDEN, ROOT)}: {len(tensors)} tensors, {os.path.getsize(GOLDEN)} bytes; "
          f"{os.path.relpath(IMAGE, ROOT)} {os.path.getsize(IMAGE)} bytes", flush=True)
    for k, v in sorted(tensors.items()):
        print(f"  {k} {str(v.dtype).replace('torch.', '')} {list(v.shape)}")
    print("image encoder config.json:\n" + enc_cfg_json)
    for n in dict.fromkeys(notes):
        print("  note: " + n)
    print(f"{time.time() - start:.0f} s in all; peak RSS {flg.peak_rss_gb():.1f} GB", flush=True)


if __name__ == "__main__":
    main()
