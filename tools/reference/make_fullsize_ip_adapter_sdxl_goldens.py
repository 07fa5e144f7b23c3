#!/work/refvenv/bin/python
"""IP-Adapters on the FULL-SIZE random SDXL base 1.0: the SDXL counterpart of make_fullsize_ip_adapter_goldens.py
(SD 1.5), on make_fullsize_sdxl_goldens.py's SDXL base checkpoint, in diffusers mode at 64x64 (8x8 latents): small
images, full-size networks, the real layouts of h94/IP-Adapter's sdxl_models: image_encoder (OpenCLIP ViT-bigG/14),
ip-adapter_sdxl, ip-adapter_sdxl_vit-h and ip-adapter-plus_sdxl_vit-h (these two on models/image_encoder, ViT-H/14).

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline, after
`make_key_lists.py ip_adapter` and `make_key_lists.py ip_adapter_sdxl` (it checks the lists against that script's):

    MALLOC_MMAP_THRESHOLD_=131072 HF_HUB_OFFLINE=1 nice /work/refvenv/bin/python \
        tools/reference/make_fullsize_ip_adapter_sdxl_goldens.py

Versions (requirements-pip.txt): torch 2.4.1 (CPU), diffusers 0.30.3, transformers 4.40.2; float32 on the CPU, ONE
torch thread (THREADS). Time and memory: see MEASURED below (printed at the end of every run).

Weights
-------
Every network is a pure function of a key list (make_fullsize_goldens.weight(i, name, shape), i = the index in ITS
OWN list, fp16-rounded, used in fp32), then powers-of-two gains (exact in fp16; a reimplementation multiplies the F16
tensors of random_checkpoint(list) by them):
  SDXL base   tests/data/keys/sdxl_base.ldm.json.gz, built as make_fullsize_lora_goldens.build_pipeline("sdxl")
              builds it (the SDXL siblings' pipeline: diffusers' single-file converters, published configs,
              SDPA attention); checked: it reproduces fullsize_sdxl_base_cases.safetensors' diffusers_euler latent.
  Encoders    keys/clip_vit_bigg14_vision.json.gz (ViT-bigG/14: 48 layers of 1664, 16 heads of 104, projection
              1280) and keys/clip_vit_h14_vision.json.gz (ViT-H/14), transformers' CLIPVisionModelWithProjection,
              loaded strictly (make_fullsize_ip_adapter_goldens.build_encoder); EMBED_GAIN on the class and position
              embeddings, for the reason that script's docstring gives.
  Adapters    keys/ip_adapter_sdxl.json.gz (ImageProjModel 1280 -> 4 x 2048), ip_adapter_sdxl_vit_h.json.gz
              (1024 -> 4 x 2048), ip_adapter_plus_sdxl_vit_h.json.gz (Resampler: 16 queries of 1280, 20 heads,
              4 layers, out 2048); each with 70 to_k_ip / to_v_ip pairs (SDXL base's cross-attentions). GAIN per
              adapter on every ip_adapter.*.to_k_ip.weight / .to_v_ip.weight: the smallest of MEASURED_GAINS at
              which the case moves its image by PICK_LEVELS levels of 255 on average (the table is stored as
              metadata "gains"). Written as the user's file: one F16 safetensors file with the original keys.

Pipeline: StableDiffusionXLPipeline(the base components, EulerDiscreteScheduler from SDXL base's scheduler config,
force_zeros_for_empty_prompt, no watermark, feature_extractor=CLIPImageProcessor(), image_encoder=the case's
encoder or None); pipe.load_ip_adapter(folder, subfolder="", weight_name=file, image_encoder_folder=None);
set_ip_adapter_scale(scale); pipe(prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds,
negative_pooled_prompt_embeds (the base pipeline's own encode_prompt(prompt, negative), computed before the text
encoders are freed), ip_adapter_image=<the PNG> or ip_adapter_image_embeds=[cat(negative, positive)], height=64,
width=64, num_inference_steps=4, guidance_scale=7, generator=torch.Generator("cpu").manual_seed(seed),
output_type="latent"); decoded as the SDXL siblings decode.
Memory: the SDXL pipeline (14 GB in fp32) and ViT-bigG (7.4 GB) do not fit beside each other in 24 GB, so bigG's
outputs are computed first and the encoder freed; its case runs from ip_adapter_image_embeds. That path is the image
path's exactly: the ViT-H cases run both ways, and their latents are asserted equal bit for bit. The runs without
IP-Adapter are from the prompts; at IP-Adapter scale 0 the run from the embeddings is asserted to give the same latent.
CFG's negative image input as diffusers makes it: zeros for the plain adapters (image_embeds), the encoder's
penultimate states of all-zero pixel_values for Plus.

Writes
------
tests/golden/data/fullsize_ip_adapter_sdxl_cases.safetensors (safetensors_io: fixed header order, sorted metadata):
  pre.fullsize_ref               float32 [1, 3, 224, 224]  CLIPImageProcessor()(ip_adapter/fullsize_ref.png)
  vis.<encoder>.image_embeds     float32 [1, 1280 | 1024]  each encoder's image_embeds for it
  vis.<encoder>.penultimate      float32 [1, 257, 1664 | 1280]  its hidden_states[-2]
  proj.<adapter>                 float32 [1, 4 | 16, 2048]  the loaded projection on its input
  proj.<adapter>.negative        float32 [1, 4 | 16, 2048]  ... on the negative input
  <case>.latent                  float32 [1, 4, 8, 8]      the pipeline's final latent
  <case>.image                   uint8 [1, 3, 64, 64]      CHW RGB
  metadata <case>.params (JSON): as make_fullsize_ip_adapter_goldens.py's, model "sdxl"; image_encoder {name,
      file, embed_gain, embed_gain_applies_to}; metadata image_encoder_config.<encoder> (config.json), gains, ...
Reference image: tests/golden/data/ip_adapter/fullsize_ref.png (make_fullsize_ip_adapter_goldens.py writes it; read
here, checked).

Cases (64x64, Euler, 4 steps, CFG 7): CASES below. Measured (mean |image - the same run without IP-Adapter| in levels
of 255, max in brackets; mean |latent diff|):
    gain                         2                    4                    8
    fullsize_ip_sdxl             2.19 (12) 0.190      5.27 (25) 0.379      6.11 (42) 0.550
    fullsize_ip_sdxl_vit_h       1.48 (10) 0.136      2.64 (16) 0.235      4.04 (23) 0.407
    fullsize_ip_plus_sdxl_vit_h  1.15 (7)  0.091      1.75 (10) 0.143      2.72 (16) 0.220
(gain 1 moved fullsize_ip_sdxl by 0.91 levels.) So GAIN 4 for ip_adapter_sdxl, 8 for the ViT-H ones (Plus stays
under PICK_LEVELS at 8, the largest measured, and over MIN_MEAN_DIFF); no case saturates (at most +0.2 % of pixels
at 0 or 255). The projected tokens the UNet receives equal proj.* within 1.7e-6; the ViT-H cases' image path gives the
embedding path's latent bit for bit; at scale 0 the latent is the base run's within 0 (bit for bit).
Measured on the shared 2-core machine (/usr/bin/time -v): 13 min 27 s wall (bigG built and run 76 s, the SDXL
pipeline 91 s, each 4-step IP-Adapter run 36 to 45 s, most of it loading the 0.35 to 0.42 B-parameter adapter),
peak RSS 18.3 million KB (17.4 GiB: the fp32 SDXL UNet and VAE 10.6 GB, ViT-H 2.5 GB, an adapter file's tensors and
diffusers' copy of them; the text encoders are freed after the runs without IP-Adapter).
"""
import gc
import json
import os
import sys
import tempfile
import time

import numpy as np
import PIL.Image
import safetensors.torch
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_fullsize_lora_goldens as flg  # noqa: E402  (first: its imports stub `clip` before k_diffusion)
import make_fullsize_controlnet_goldens as fcg  # noqa: E402  (read_list, sha256)
import make_fullsize_ip_adapter_goldens as fip  # noqa: E402  (the SD 1.5 script: encoders, adapter files, checks)
import make_ip_adapter_goldens as ipg  # noqa: E402  (clip_preprocess, restore)
import make_key_lists as mk  # noqa: E402  (the key lists and their configs)
import make_model_goldens as mg  # noqa: E402  (git_hash)
import make_sdxl_goldens as sx  # noqa: E402  (versions, assert_all_differ, make_init_image)
import make_sdxl_key_lists as kl  # noqa: E402  (SDXL base's UNet config)
import safetensors_io  # noqa: E402

import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline  # noqa: E402
from diffusers.models.attention_processor import AttnProcessor2_0  # noqa: E402
from transformers import CLIPImageProcessor  # noqa: E402

ROOT = flg.ROOT
OUT = os.path.join(ROOT, "tests", "golden", "data")
DATA = os.path.join(ROOT, "tests", "data")
GOLDEN = os.path.join(OUT, "fullsize_ip_adapter_sdxl_cases.safetensors")
SCRIPT = "tools/reference/make_fullsize_ip_adapter_sdxl_goldens.py"
MODEL = "sdxl"
BASE_KEYS = "keys/sdxl_base.ldm.json.gz"
THREADS = 1
SIZE, CFG, STEPS = 64, 7.0, 4
PAIRS = 70  # SDXL base's cross-attentions
EMBED_GAIN = fip.EMBED_GAIN
EMBED_GAINED = fip.EMBED_GAINED
ENCODERS = {  # in the order they are built (bigG first: it is freed before the pipeline is built)
    "clip_vit_bigg14_vision": dict(keys="keys/clip_vit_bigg14_vision.json.gz", config=mk.CLIP_VIT_BIGG14_VISION),
    "clip_vit_h14_vision": dict(keys="keys/clip_vit_h14_vision.json.gz", config=mk.CLIP_VIT_H14_VISION),
}
ADAPTERS = {
    "ip_adapter_sdxl": dict(keys="keys/ip_adapter_sdxl.json.gz", kind="plain", encoder="clip_vit_bigg14_vision"),
    "ip_adapter_sdxl_vit_h": dict(keys="keys/ip_adapter_sdxl_vit_h.json.gz", kind="plain",
                                  encoder="clip_vit_h14_vision"),
    "ip_adapter_plus_sdxl_vit_h": dict(keys="keys/ip_adapter_plus_sdxl_vit_h.json.gz", kind="plus",
                                       encoder="clip_vit_h14_vision", plus=mk.IP_ADAPTER_PLUS_SDXL),
}
MEASURED_GAINS = (2.0, 4.0, 8.0)  # gain 1 moved fullsize_ip_sdxl by 0.91 levels (max 5) in a first run
PICK_LEVELS = 3.0  # levels of 255, mean |image - without IP-Adapter|
MIN_MEAN_DIFF = 2.0
MAX_SAT_RISE = 0.05
PROJ_ATOL = 1e-5

# name, adapter, scale, seed, prompt, negative (non-empty: an empty one is another rule, tested elsewhere)
CASES = [
    ("fullsize_ip_sdxl", "ip_adapter_sdxl", 0.8, 731, "a cat sitting on a wooden chair", "blurry"),
    ("fullsize_ip_sdxl_vit_h", "ip_adapter_sdxl_vit_h", 0.7, 732, "a red car on a mountain road", "low quality"),
    ("fullsize_ip_plus_sdxl_vit_h", "ip_adapter_plus_sdxl_vit_h", 1.0, 733, "a bowl of fruit on a table", "dark"),
]


def check_lists(notes):
    """The key lists on disk are make_key_lists' (names and shapes), its proofs rerun."""
    for name, e in ENCODERS.items():
        got = fcg.read_list(e["keys"])
        want = mk.clip_vision_list(e["config"])
        assert [[n, s] for n, s, _ in got] == [[n, s] for n, s in want.items()], f"{e['keys']}: rerun make_key_lists"
    for name, a in ADAPTERS.items():
        got = fcg.read_list(a["keys"])
        want, layers = mk.ip_adapter_list(a["kind"], kl.SDXL_BASE_UNET, ENCODERS[a["encoder"]]["config"],
                                          a.get("plus", mk.IP_ADAPTER_PLUS))
        assert len(layers) == PAIRS
        assert [[n, s] for n, s, _ in got] == [[n, s] for n, s in want.items()], f"{a['keys']}: rerun make_key_lists"
    notes.append(", ".join([e["keys"] for e in ENCODERS.values()] + [a["keys"] for a in ADAPTERS.values()]) +
                 ": make_key_lists' lists, proved there against transformers' save_pretrained / from_pretrained and "
                 "diffusers' IP-Adapter loader on SDXL base's UNet")


def encode(enc, pre):
    with torch.no_grad():
        out = enc(pre, output_hidden_states=True)
        zout = enc(torch.zeros_like(pre), output_hidden_states=True)
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    return {"image_embeds": out.image_embeds.contiguous(), "penultimate": out.hidden_states[-2].contiguous(),
            "zero_penultimate": zout.hidden_states[-2].contiguous()}


def adapter_input(adapter, vis):
    """(positive, negative) inputs of the adapter's projection, as diffusers' encode_image makes them."""
    v = vis[ADAPTERS[adapter]["encoder"]]
    if ADAPTERS[adapter]["kind"] == "plain":
        return v["image_embeds"], torch.zeros_like(v["image_embeds"])
    return v["penultimate"], v["zero_penultimate"]


def ip_pipeline(base, enc, sched_cfg):
    """The SDXL pipeline without text encoders (the prompts' embeddings are passed in) and with enc (or None)."""
    pipe = StableDiffusionXLPipeline(
        vae=base["vae"], text_encoder=None, text_encoder_2=None, tokenizer=base["tokenizer"],
        tokenizer_2=base["tokenizer_2"], unet=base["unet"], scheduler=EulerDiscreteScheduler.from_config(sched_cfg),
        image_encoder=enc, feature_extractor=CLIPImageProcessor(), force_zeros_for_empty_prompt=True,
        add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run_ip(base, sched_cfg, folder, fname, case, vis, enc=None, scale=None, inspect=None):
    """(latent, image, what the hooks saw): from the PNG through enc when given, else from vis's embeddings; the
    prompt's embeddings from base["embeddings"]."""
    name, adapter, c_scale, seed, prompt, negative = case
    pipe = ip_pipeline(base, enc, sched_cfg)
    pipe.load_ip_adapter(folder, subfolder="", weight_name=fname, image_encoder_folder=None)
    pipe.set_ip_adapter_scale(c_scale if scale is None else scale)
    seen, hooks = {}, []
    if inspect is not None:
        a = ADAPTERS[adapter]
        seen["layer"] = fip.check_loaded(pipe, adapter, inspect, adapters=ADAPTERS, attn1=AttnProcessor2_0,
                                         plus=a.get("plus", mk.IP_ADAPTER_PLUS))
        seen["proj"] = fip.Capture()
        hooks.append(pipe.unet.encoder_hid_proj.image_projection_layers[0].register_forward_hook(
            seen["proj"], with_kwargs=True))
    if enc is not None:
        kw = dict(ip_adapter_image=PIL.Image.open(fip.IMAGE))
    else:
        pos, neg = adapter_input(adapter, vis)
        kw = dict(ip_adapter_image_embeds=[torch.cat([neg[None], pos[None]])])
    pe, npe, ppe, nppe = base["embeddings"][name]
    try:
        pipe.scheduler = EulerDiscreteScheduler.from_config(sched_cfg)
        with torch.no_grad():
            lat = pipe(prompt_embeds=pe, negative_prompt_embeds=npe, pooled_prompt_embeds=ppe,
                       negative_pooled_prompt_embeds=nppe, height=SIZE, width=SIZE, num_inference_steps=STEPS,
                       guidance_scale=CFG, generator=torch.Generator("cpu").manual_seed(seed), output_type="latent",
                       **kw).images
            img = sx.decode_as_pipeline(pipe, lat).permute(2, 0, 1)[None]
    finally:
        for h in hooks:
            h.remove()
    assert torch.isfinite(lat).all(), name
    ipg.restore(pipe, "sdxl")  # unload_ip_adapter; SDPA everywhere again (asserted)
    return lat.contiguous(), img.contiguous(), seen


def main():
    torch.set_num_threads(THREADS)
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    start = time.time()
    assert sys.argv[1:] == [], "usage: make_fullsize_ip_adapter_sdxl_goldens.py"
    assert (SIZE, CFG) == (flg.SIZE, flg.CFG)  # flg.run (the runs without IP-Adapter) uses its own
    assert fip.pow2(EMBED_GAIN) and all(fip.pow2(g) for g in MEASURED_GAINS)
    notes, tensors, meta, latents = [], {}, {}, {}
    tmpdir = tempfile.mkdtemp()
    flg.fsx.check_prompts([dict(name=c[0], prompt=c[4], negative=c[5]) for c in CASES],
                          flg.tokenizers(tmpdir)[0].get_vocab())
    # The reference image: the SD 1.5 golden's, read and checked.
    arr = sx.make_init_image(fip.REF_H, fip.REF_W, 2)
    arr[:, :12] = 255 - arr[:, :12]
    pil = PIL.Image.open(fip.IMAGE)
    pil.load()
    assert pil.mode == "RGB" and np.array_equal(np.asarray(pil), arr), fip.IMAGE
    check_lists(notes)

    pre = CLIPImageProcessor()(pil, return_tensors="pt").pixel_values
    mine, geo = ipg.clip_preprocess(pil, 224)
    assert pre.shape == (1, 3, 224, 224) and torch.equal(pre[0], mine)
    tensors["pre.fullsize_ref"] = pre.contiguous()
    meta["pre.fullsize_ref.params"] = json.dumps(dict(image=fip.IMAGE_REL, mode="RGB", width=fip.REF_W,
                                                      height=fip.REF_H, size=224, crop_size=224, **geo))

    # The encoders' outputs; bigG is freed before the pipeline is built, ViT-H kept for the image-path runs.
    vis, enc_h = {}, None
    for ename, e in ENCODERS.items():
        t0 = time.time()
        enc = fip.build_encoder(notes, keys=e["keys"], published=e["config"])
        vis[ename] = encode(enc, pre)
        layers = e["config"]["num_hidden_layers"]
        for k in ("image_embeds", "penultimate"):
            tensors[f"vis.{ename}.{k}"] = vis[ename][k]
        print(f"{ename}: image_embeds {list(vis[ename]['image_embeds'].shape)} std "
              f"{vis[ename]['image_embeds'].std().item():.3f}, penultimate (layer {layers - 1} of {layers}) "
              f"{list(vis[ename]['penultimate'].shape)} std {vis[ename]['penultimate'].std().item():.3f}; "
              f"{time.time() - t0:.0f} s; peak RSS {flg.peak_rss_gb():.1f} GB", flush=True)
        if ename == "clip_vit_h14_vision":
            enc_h = enc
        del enc
        gc.collect()

    t0 = time.time()
    pipe, sched_cfg = flg.build_pipeline(MODEL, tmpdir)
    print(f"SDXL pipeline built in {time.time() - t0:.0f} s; peak RSS {flg.peak_rss_gb():.1f} GB", flush=True)
    sibling_err = flg.check_sibling(pipe, MODEL, sched_cfg)
    refs, embeddings = {}, {}
    for case in CASES:
        t0 = time.time()
        refs[case[0]] = flg.run(pipe, MODEL, sched_cfg, STEPS, case[3], case[4], case[5])
        with torch.no_grad():
            embeddings[case[0]] = [e.clone() for e in pipe.encode_prompt(case[4], None, torch.device("cpu"), 1, True,
                                                                          case[5], None)]
        print(f"{case[0]} without IP-Adapter: {time.time() - t0:.0f} s", flush=True)
    # The text encoders go (3.3 GB); the IP-Adapter runs take the prompts' embeddings (the scale-0 check below shows
    # that this is the run from the prompts, bit for bit).
    base = dict(vae=pipe.vae, unet=pipe.unet, tokenizer=pipe.tokenizer, tokenizer_2=pipe.tokenizer_2,
                embeddings=embeddings)
    del pipe
    gc.collect()

    tmp = tempfile.TemporaryDirectory()
    folder = tmp.name
    # The gains: every case at every measured gain, from the embeddings.
    table, results = [], {}
    for case in CASES:
        name, adapter = case[0], case[1]
        for g in MEASURED_GAINS:
            t0 = time.time()
            # (the tensors are not kept: an SDXL adapter is 1.4 to 1.7 GB in fp32; the file is, in fp16)
            fname = fip.write_adapter(folder, f"{adapter}_gain{g:g}",
                                      fip.adapter_tensors(adapter, g, adapters=ADAPTERS, pairs=PAIRS))
            gc.collect()
            lat, img, _ = run_ip(base, sched_cfg, folder, fname, case, vis)
            c = fip.compare(img, refs[name][1], lat, refs[name][0])
            table.append(dict(case=name, adapter=adapter, gain=g, mean_abs_image_diff=round(c["mean"], 3),
                              max_abs_image_diff=int(c["max"]), mean_abs_latent_diff=round(c["lat"], 4),
                              saturated=round(c["sat"], 4), saturated_without=round(c["sat0"], 4)))
            results[(name, g)] = (lat, img, c, fname)
            print(f"gain {g:g} {name}: mean |image - no-IP image| {c['mean']:.2f} levels (max {c['max']:.0f}), "
                  f"mean |latent diff| {c['lat']:.3f}, saturated {c['sat']:.1%} (without {c['sat0']:.1%}); "
                  f"{time.time() - t0:.0f} s; peak RSS {flg.peak_rss_gb():.1f} GB", flush=True)
    gains = {}
    for case in CASES:
        ok = [g for g in MEASURED_GAINS if results[(case[0], g)][2]["mean"] >= PICK_LEVELS]
        gains[case[1]] = ok[0] if ok else MEASURED_GAINS[-1]
    print(f"GAINS {gains}", flush=True)

    # Scale 0: the adapter's attention is skipped, which leaves the base pipeline (SDPA everywhere).
    c0 = CASES[0]
    lat0, _, _ = run_ip(base, sched_cfg, folder, results[(c0[0], gains[c0[1]])][3], c0, vis, scale=0.0)
    err0 = (lat0 - refs[c0[0]][0]).abs().max().item()
    assert err0 < 1e-4, err0
    notes.append(f"{c0[0]} at ip_adapter scale 0.0, from the prompt's embeddings: the base pipeline's latent from the "
                 f"prompts within {err0:.1e}")

    for case in CASES:
        name, adapter, scale, seed, prompt, negative = case
        a, g = ADAPTERS[adapter], gains[adapter]
        lat, img, c, fname = results[(name, g)]
        # what check_loaded compares with: the file's fp16 values (half the memory of the fp32 ones)
        ts = safetensors.torch.load_file(os.path.join(folder, fname))
        assert all(v.dtype == torch.float16 for v in ts.values()) and len(ts) == len(fcg.read_list(a["keys"]))
        assert c["mean"] > MIN_MEAN_DIFF and c["sat"] - c["sat0"] < MAX_SAT_RISE, (name, c)
        t0 = time.time()
        if a["encoder"] == "clip_vit_h14_vision":  # the image path too: the same latent, bit for bit
            lat_i, img_i, seen = run_ip(base, sched_cfg, folder, fname, case, vis, enc=enc_h, inspect=ts)
            assert torch.equal(lat_i, lat) and torch.equal(img_i, img), name
            notes.append(f"{name}: the pipeline from the PNG through its own image encoder gives the latent of "
                         f"ip_adapter_image_embeds, bit for bit")
        else:
            lat_e, _, seen = run_ip(base, sched_cfg, folder, fname, case, vis, inspect=ts)
            assert torch.equal(lat_e, lat), name
        pos, neg = adapter_input(adapter, vis)
        with torch.no_grad():
            proj, proj_neg = seen["layer"](pos).contiguous(), seen["layer"](neg).contiguous()
        (p_args, _, p_out) = seen["proj"].calls[0]
        assert len(seen["proj"].calls) == STEPS
        assert torch.equal(p_args[0], torch.cat([neg, pos])), name  # [negative, positive]
        perr = max((p_out[1] - proj[0]).abs().max().item(), (p_out[0] - proj_neg[0]).abs().max().item())
        assert perr <= PROJ_ATOL, (name, perr)
        tensors[f"proj.{adapter}"] = proj
        tensors[f"proj.{adapter}.negative"] = proj_neg
        print(f"{name}: {adapter} gain {g:g} scale {scale}: mean |image - no-IP image| {c['mean']:.2f} levels (max "
              f"{c['max']:.0f}), latent std {lat.std().item():.3f}; projected tokens within {perr:.1e}; checks "
              f"{time.time() - t0:.0f} s", flush=True)
        tensors[f"{name}.latent"] = lat
        tensors[f"{name}.image"] = img
        latents[name] = lat
        meta[f"{name}.params"] = json.dumps(dict(
            model=MODEL, keys=BASE_KEYS, mode="diffusers", scheduler="euler",
            spacing=sched_cfg["timestep_spacing"], steps=STEPS, cfg=CFG, seed=seed, prompt=prompt,
            negative=negative, width=SIZE, height=SIZE,
            image_encoder=dict(name=a["encoder"], file=ENCODERS[a["encoder"]]["keys"], embed_gain=EMBED_GAIN,
                               embed_gain_applies_to=list(EMBED_GAINED)),
            feature_extractor=dict(size=224, crop_size=224),
            adapters=[dict(name=adapter, file=a["keys"], kind=a["kind"], gain=g,
                           gain_applies_to="ip_adapter.*.to_k_ip.weight, ip_adapter.*.to_v_ip.weight",
                           images=[fip.IMAGE_REL], scale=scale)],
            mean_abs_image_diff_vs_no_ip_adapter=round(c["mean"], 3), max_abs_image_diff_vs_no_ip_adapter=int(c["max"]),
            mean_abs_latent_diff_vs_no_ip_adapter=round(c["lat"], 4), saturated_fraction=round(c["sat"], 4)))
        del ts, seen
        gc.collect()
    sx.assert_all_differ(latents)
    del base, enc_h
    tmp.cleanup()

    meta.update(sx.versions(SCRIPT))
    meta.update({f"image_encoder_config.{n}": fip.encoder_config_json(fip.encoder_config(e["config"]), e["config"])
                 for n, e in ENCODERS.items()})
    meta.update({
        "git": mg.git_hash(), "cases": json.dumps([c[0] for c in CASES]), "keys": BASE_KEYS,
        "image_encoder_keys": json.dumps({n: e["keys"] for n, e in ENCODERS.items()}),
        "embed_gain": json.dumps(dict(value=EMBED_GAIN, applies_to=list(EMBED_GAINED))),
        "adapter_keys": json.dumps({n: a["keys"] for n, a in ADAPTERS.items()}),
        "gains": json.dumps(dict(values=gains, applies_to=f"ip_adapter.*.to_k_ip.weight, ip_adapter.*.to_v_ip.weight "
                                                          f"({2 * PAIRS} tensors)", pick_levels=PICK_LEVELS,
                                 measured=table)),
        "keys_sha256": json.dumps({k: fcg.sha256(os.path.join(DATA, k)) for k in
                                   [e["keys"] for e in ENCODERS.values()] + [a["keys"] for a in ADAPTERS.values()]}),
        "weights": "make_fullsize_goldens.weight(i, name, shape) over each key list, i the index in that list, "
                   "fp16-rounded, used in fp32; then the gains (powers of two: exact in fp16)",
        "scheduler_config": json.dumps(sched_cfg),
        "sibling_check": json.dumps(dict(file=flg.SIBLINGS[MODEL], case="diffusers_euler",
                                         max_abs_latent_diff=sibling_err)),
        "notes": json.dumps(list(dict.fromkeys(notes))),
    })
    for k, v in tensors.items():
        if v.is_floating_point():
            assert v.dtype == torch.float32 and torch.isfinite(v).all(), k
    safetensors_io.save_file({k: v.detach().clone().contiguous() for k, v in sorted(tensors.items())}, GOLDEN,
                             dict(sorted(meta.items())))
    print(f"wrote {os.path.relpath(GOLDEN, ROOT)}: {len(tensors)} tensors, {os.path.getsize(GOLDEN)} bytes",
          flush=True)
    for k, v in sorted(tensors.items()):
        print(f"  {k} {str(v.dtype).replace('torch.', '')} {list(v.shape)}")
    for n in dict.fromkeys(notes):
        print("  note: " + n)
    print(f"MEASURED {time.time() - start:.0f} s in all; peak RSS {flg.peak_rss_gb():.1f} GB", flush=True)


if __name__ == "__main__":
    main()
