#!/work/refvenv/bin/python
"""Flux img2img goldens from diffusers 0.31.0's FluxImg2ImgPipeline on the tiny Flux models of make_flux_goldens.py.

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv") and diffusers 0.31.0
put ahead of the venv's 0.30.3 (diffusers 0.30.3 has no FluxImg2ImgPipeline), offline:

    HF_HUB_OFFLINE=1 PYTHONPATH=/work/refvenv-diffusers031 nice -n 10 /work/refvenv/bin/python \\
        tools/reference/make_flux_img2img_goldens.py

It takes about 7 s (nice 10, one torch thread; 655 MB peak RSS). The script asserts
diffusers.__version__ == "0.31.0". It reads the two model folders make_flux_goldens.py wrote,
tests/golden/data/pipeline_flux/ (dev-like: guidance embedding, dynamic shifting) and
tests/golden/data/pipeline_flux_schnell/, and changes neither (it cannot import make_flux_goldens.py: that script
imports diffusers 0.30.3's attention_processor.apply_rope, which 0.31.0 no longer has; the few helpers it needs
are restated here). Every run writes the same bytes (torch pinned to one thread; the golden goes through
safetensors_io.py, metadata keys sorted; checked with two runs). Versions: torch 2.4.1 (CPU), diffusers 0.31.0,
transformers 4.40.2, huggingface_hub 0.36.2 (the rest as requirements-pip.txt). All computation is float32 on the
CPU: the folders' fp16 weights are loaded with from_pretrained(torch_dtype=torch.float32) (the script checks every
loaded tensor equals the fp16 value on disk widened to float32).

It writes one file, tests/golden/data/pipeline_flux_img2img_cases.safetensors (tensors float32 unless said):

For each case <name> (CASES below), FluxImg2ImgPipeline(prompt, image=init PIL image, height=H, width=W,
strength, num_inference_steps=N, guidance_scale, max_sequence_length, generator=torch.Generator("cpu")
.manual_seed(seed), output_type="latent"), prompt_2 None, with the folder's own scheduler config
(FlowMatchEulerDiscreteScheduler.from_config of scheduler/scheduler_config.json, fresh per run). height and
width ARE passed: left out, the pipeline would default them to default_sample_size * vae_scale_factor (64 * 4 =
256 here, 1024 real) and resize the init image to that.
    <name>.init                   uint8 [1, 3, H, W]   the init image (CHW, RGB):
                                                       make_sdxl_goldens.make_init_image(H, W, init_variant)
    <name>.latent_packed          [1, N_tok, 64]       the final packed latent as the pipeline returns it
    <name>.latent                 [1, 16, h, w]        _unpack_latents(latent_packed, H, W, 4) (h = 2 * (H // 4))
    <name>.image                  uint8 [H, W, 3]      (HWC, RGB) decoded as the pipeline does: unpack, latent /
                                                       0.3611 + 0.1159, vae.decode, image_processor.postprocess
                                                       to PIL, numpy.asarray. The script checks it equals the
                                                       pipeline's own output_type="pil" (a second run) bit for bit
    <name>.timesteps              [N - t_start]        the timesteps RUN: scheduler.timesteps[t_start:] (as the
                                                       SD3 img2img case "e"; for the txt2img cases of
                                                       pipeline_flux_cases the two are the same thing)
    <name>.all_timesteps          [N]                  the full schedule scheduler.timesteps after set_timesteps
    <name>.transformer_timesteps  [N - t_start]        what the transformer received: timesteps / 1000 (float32)
    <name>.sigmas                 [N + 1]              the scheduler's sigmas (full schedule, ends with 0)
    <name>.mu                     float64 [1]          calculate_shift(image_seq_len, 256, 4096, 0.5, 1.15)
                                                       (schnell ignores it)
    <name>.eps                    [1, 16, H/2, W/2]    generator draw 1: the VAE posterior's standard normal
    <name>.init_latents           [1, 16, H/2, W/2]    (mean + std * eps - 0.1159) * 0.3611 (_encode_vae_image)
    <name>.noise                  [1, 16, h, w]        generator draw 2: the flow-matching noise
Metadata <name>.params (JSON): name, pipeline_class ("FluxImg2ImgPipeline"), model (dev/schnell), prompt,
negative (null), steps (N, as passed), steps_run (N - t_start), t_start, strength, init_variant, guidance
(guidance_scale as passed), guidance_used (false for schnell), seed, width, height, max_sequence_length,
timesteps (run), all_timesteps, transformer_timesteps, sigmas, mu, image_seq_len. Also script, versions,
scheduler_config and scheduler_schnell_config (the folders' scheduler_config.json, "_" keys dropped).

Cases (sizes in pixels, height x width):
    f   dev 32x32 (latent [1, 16, 16, 16], 64 tokens), init variant 1, strength 0.6, 6 steps, guidance 3.5,
        seed 7, max_sequence_length 512: t_start 2, 4 steps run
    g   schnell 32x48 (height 32, width 48: latent [1, 16, 16, 24], 96 tokens), init variant 2, strength 0.75,
        4 steps, guidance_scale 0 (ignored: no guidance embedder), seed 11, max_sequence_length 256: t_start 1,
        3 steps run
(max_sequence_length as make_flux_goldens' cases: 512 for dev, 256 for schnell.) No two cases give the same
latent (checked); every latent is finite. The script replays every case's loop on the recorded transformer
outputs and gets every transformer input and the final latent bit for bit.

Cross-check with diffusers 0.30.3: the script also runs diffusers 0.31.0's FluxPipeline (txt2img) on
pipeline_flux_cases' case a (dev, 32x32, seed 42, 4 steps, guidance 3.5, 512) and compares with that golden's
a.latent_packed: equal bit for bit, so 0.31.0's Flux transformer, encoders, schedule and
packing compute exactly what 0.30.3's did for these models (the goldens of the two files are consistent).

What a reimplementation must match (diffusers 0.31.0; the script asserts each point)
---------------------------------------------------------------------------------------
Everything make_flux_goldens.py's docstring says of FluxPipeline (conditioning, packing, ids, schedule, step,
transformer, decoding) holds, with these img2img differences:
- Init image: image_processor.preprocess(PIL, height=H, width=W): H and W rounded down to a multiple of
  vae_scale_factor (4 here, 16 real), resized to that with PIL (lanczos; a no-op at the same size, as here),
  then x = 2 * u8 / 255 - 1 in float32, [1, 3, H, W]. (The tensor is a channels-last view in memory, which the
  VAE's first conv sums in another order than a contiguous copy would: the init latents differ by up to ~1e-5
  (1.2e-5 for f, 8.6e-6 for g) from a contiguous input's; the goldens are the pipeline's.)
- Schedule and t_start: the full N-step schedule is built exactly as in txt2img (sigmas_in = linspace(1, 1 / N,
  N), mu = calculate_shift(image_seq_len = (H // 4) * (W // 4) = number of packed tokens), dev: dynamic shift,
  schnell: shift 1), then get_timesteps: init_timestep = min(N * strength, N) (a Python float), t_start =
  int(max(N - init_timestep, 0)) (truncation toward zero), timesteps = scheduler.timesteps[t_start:],
  scheduler.set_begin_index(t_start); N - t_start steps run (a ValueError if that is < 1). The sigmas are NOT
  recomputed for the shorter run: step i (0-based among those run) uses sigma[t_start + i] -> sigma[t_start + i
  + 1] of the full table, the last step going to 0. Float rounding matters: f: 6 * 0.6 = 3.5999999999999996,
  6 - that = 2.4000000000000004, t_start 2, 4 steps; g: 4 * 0.75 = 3.0, t_start 1, 3 steps. (This is SD3
  img2img's rule; SDXL/SD1 img2img use int(N * strength) steps.)
- Generator draws: one CPU torch.Generator, seeded, is used for exactly two torch.randn draws, in this order
  (checked through the generator's final state), both float32 on the CPU, after the prompt is encoded (which
  draws nothing) and after the schedule is set:
    1. the VAE posterior sample: vae.encode(x).latent_dist.sample(generator) (retrieve_latents with its default
       sample_mode "sample", NOT the mean/argmax): eps = torch.randn(mean.shape) with mean.shape = [B, 16, H / 2,
       W / 2] here (the tiny VAE downscales by 2; real FLUX.1: [B, 16, H / 8, W / 8]). The encoder's 32 output
       channels split into mean (first 16) and logvar (last 16) (no quant_conv); logvar = clamp(logvar, -30, 20),
       std = exp(0.5 * logvar); z = mean + std * eps; init_latents = (z - shift_factor 0.1159) * scaling_factor
       0.3611.
    2. the noise: torch.randn([B, 16, h, w]) with h = 2 * (H // vae_scale_factor), w = 2 * (W // vae_scale_factor)
       (the unpacked latent shape; [1, 16, 16, 16] for f, [1, 16, 16, 24] for g; the same shape as draw 1, since
       H and W are multiples of vae_scale_factor after preprocessing).
  Then scale_noise at sigma = sigmas[t_start] (begin_index is set, so the index is t_start, not looked up from
  the timestep): x0 = sigma * noise + (1 - sigma) * init_latents (float32, unpacked), then _pack_latents(x0) is
  the transformer's first input. No other draws: the Euler steps are deterministic.
- The loop: timestep passed = t / 1000 (float32) for t in timesteps[t_start:]; guidance = tensor([scale])
  (dev) or None (schnell); x_next = x + (sigma[t_start + i + 1] - sigma[t_start + i]) * v.
- Decoding as txt2img: unpack, / 0.3611 + 0.1159, the VAE decoder, postprocess (round(clamp(x / 2 + 0.5, 0, 1)
  * 255)).
- 0.31.0's pipeline passes txt_ids [M, 3] and img_ids [N_tok, 3] (2-D; 0.30.3 passed them batched, 3-D): the
  same values (zeros; (0, row, col)).
"""

import json
import math
import os
import sys

import numpy as np
import PIL.Image
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_sd3_goldens as sd3_script  # noqa: E402  (the T5 sentencepiece corpus: prompt words)
import make_sdxl_goldens as sdxl_script  # noqa: E402  (the CLIP vocabulary words, the init image, the checks)
import safetensors_io  # noqa: E402  (deterministic writer: metadata in a fixed order, so reruns give the same bytes)
from make_sdxl_goldens import OUT, ROOT, assert_all_differ, check_draws, make_init_image  # noqa: E402

import diffusers  # noqa: E402
import huggingface_hub  # noqa: E402
import transformers  # noqa: E402

assert diffusers.__version__ == "0.31.0", (
    f"diffusers {diffusers.__version__} from {diffusers.__file__}: run with PYTHONPATH=/work/refvenv-diffusers031")

from diffusers import FlowMatchEulerDiscreteScheduler, FluxImg2ImgPipeline, FluxPipeline  # noqa: E402
from diffusers.pipelines.flux.pipeline_flux_img2img import calculate_shift  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

FOLDER = os.path.join(OUT, "pipeline_flux")
SCHNELL_FOLDER = os.path.join(OUT, "pipeline_flux_schnell")
TXT2IMG_GOLDEN = os.path.join(OUT, "pipeline_flux_cases.safetensors")
CASES_GOLDEN = os.path.join(OUT, "pipeline_flux_img2img_cases.safetensors")
SCRIPT = "tools/reference/make_flux_img2img_goldens.py"
MODULES = ("transformer", "vae", "text_encoder", "text_encoder_2")

CASES = [
    dict(name="f", model="dev", seed=7, height=32, width=32, init_variant=1, strength=0.6, steps=6, guidance=3.5,
         max_sequence_length=512, prompt="a large red circle on the right"),
    dict(name="g", model="schnell", seed=11, height=32, width=48, init_variant=2, strength=0.75, steps=4,
         guidance=0.0, max_sequence_length=256, prompt="photo of a dog"),
]


def versions():
    return {"script": SCRIPT, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "huggingface_hub": huggingface_hub.__version__}


def check_prompts():
    """Every prompt word is one token of the tiny CLIP vocabulary and a word of the T5 sentencepiece corpus."""
    sdxl_script.check_words(CASES)
    words = set(" ".join(sd3_script.SP_CORPUS).replace(",", " ").split())
    for case in CASES:
        assert all(w in words for w in case["prompt"].replace(",", " ").split()), case["name"]


def scheduler_config(folder):
    with open(os.path.join(folder, "scheduler", "scheduler_config.json")) as f:
        return {k: v for k, v in json.load(f).items() if not k.startswith("_")}


def load_fp32(folder):
    """FluxImg2ImgPipeline.from_pretrained in float32; every weight must be the fp16 value on disk, widened."""
    pipe = FluxImg2ImgPipeline.from_pretrained(folder, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    for name in MODULES:
        got = getattr(pipe, name).state_dict()
        assert all(v.dtype == torch.float32 for v in got.values()), name
        files = sorted(f for f in os.listdir(os.path.join(folder, name)) if f.endswith(".safetensors"))
        assert files, name
        for f in files:
            for k, v in load_file(os.path.join(folder, name, f)).items():
                assert v.dtype == torch.float16, (name, k)
                assert torch.equal(got[k], v.float()), f"{name}.{k} differs from the folder's fp16 value"
    assert pipe.vae_scale_factor == 4 and pipe.tokenizer_max_length == 77
    assert pipe.transformer.config.guidance_embeds == (folder == FOLDER)
    return pipe


# ---------------------------------------------------------------------------------------------------------
# Pipeline cases (make_flux_goldens' recorder, replay and decoding, with the img2img start offset)

class TransformerRecorder:
    """A forward hook on the transformer: every call's timestep, guidance, latent input and output, and the first
    call's conditioning."""

    def __init__(self):
        self.timesteps, self.guidance, self.inputs, self.outputs, self.first = [], [], [], [], None

    def __call__(self, module, args, kwargs, output):
        t = kwargs["timestep"]
        assert t.shape == (1,) and t.dtype == torch.float32
        self.timesteps.append(t.clone())
        g = kwargs["guidance"]
        self.guidance.append(None if g is None else g.clone())
        self.inputs.append(kwargs["hidden_states"].detach().clone())
        self.outputs.append(output[0].detach().clone())
        if self.first is None:
            self.first = {k: kwargs[k].detach().clone() for k in ("hidden_states", "encoder_hidden_states",
                                                                  "pooled_projections", "txt_ids", "img_ids")}


def replay(rec, sigmas, t_start, latent):
    """The denoising loop restated on the recorded transformer outputs: x + (sigma[t_start + i + 1] -
    sigma[t_start + i]) * v. Every transformer input and the final latent must match bit for bit."""
    x = rec.inputs[0]
    for i, (x_in, out) in enumerate(zip(rec.inputs, rec.outputs)):
        assert torch.equal(x_in, x), ("transformer input", i)
        x = x + (sigmas[t_start + i + 1] - sigmas[t_start + i]) * out
    assert torch.equal(x, latent), "replayed loop differs"


def decode_as_pipeline(pipe, packed, h, w):
    vae = pipe.vae
    latent = pipe._unpack_latents(packed, h, w, pipe.vae_scale_factor)
    with torch.no_grad():
        image = vae.decode(latent / vae.config.scaling_factor + vae.config.shift_factor, return_dict=False)[0]
    pil = pipe.image_processor.postprocess(image, output_type="pil")[0]
    return latent, torch.from_numpy(np.asarray(pil).copy())


def expected_sigmas(cfg, n, n_tok):
    """The schedule restated (make_flux_goldens' docstring): float64 shift of linspace(1, 1 / n, n), float32."""
    s = np.linspace(1.0, 1 / n, n)
    mu = calculate_shift(n_tok, cfg["base_image_seq_len"], cfg["max_image_seq_len"], cfg["base_shift"],
                         cfg["max_shift"])
    if cfg["use_dynamic_shifting"]:
        sig = math.exp(mu) / (math.exp(mu) + (1 / s - 1) ** 1.0)
    else:
        sig = cfg["shift"] * s / (1 + (cfg["shift"] - 1) * s)
    sig = torch.from_numpy(sig).to(torch.float32)
    return torch.cat([sig, torch.zeros(1)]), mu


def run_case(pipes, cfgs, case):
    pipe, sched_cfg = pipes[case["model"]], cfgs[case["model"]]
    pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(sched_cfg)
    h, w, n, strength = case["height"], case["width"], case["steps"], case["strength"]
    init_u8 = make_init_image(h, w, case["init_variant"])
    init_pil = PIL.Image.fromarray(init_u8, mode="RGB")
    msl = case["max_sequence_length"]
    call = dict(prompt=case["prompt"], image=init_pil, height=h, width=w, strength=strength,
                num_inference_steps=n, guidance_scale=case["guidance"], max_sequence_length=msl)
    rec = TransformerRecorder()
    handle = pipe.transformer.register_forward_hook(rec, with_kwargs=True)
    gen = torch.Generator("cpu").manual_seed(case["seed"])
    try:
        with torch.no_grad():
            packed = pipe(**call, generator=gen, output_type="latent").images
    finally:
        handle.remove()
    f = pipe.vae_scale_factor
    lh, lw = 2 * (h // f), 2 * (w // f)
    shape = (1, 16, lh, lw)
    n_tok = (lh // 2) * (lw // 2)
    assert n_tok == (h // f) * (w // f)  # the pipeline's image_seq_len
    assert packed.shape == (1, n_tok, 64), packed.shape
    sched = pipe.scheduler
    sigmas = sched.sigmas.clone()
    all_timesteps = sched.timesteps.clone()
    want_sigmas, mu = expected_sigmas(sched_cfg, n, n_tok)
    assert torch.equal(sigmas, want_sigmas), (sigmas, want_sigmas)
    assert torch.equal(all_timesteps, want_sigmas[:-1] * 1000)
    # get_timesteps
    init_timestep = min(n * strength, n)
    t_start = int(max(n - init_timestep, 0))
    assert sched.begin_index == t_start, (sched.begin_index, t_start)
    steps_run = n - t_start
    assert len(rec.timesteps) == steps_run >= 1
    timesteps = all_timesteps[t_start:].clone()
    # Conditioning
    first = rec.first
    assert first["encoder_hidden_states"].shape == (1, msl, 96)
    assert torch.equal(first["txt_ids"], torch.zeros(msl, 3))
    assert torch.equal(first["img_ids"], pipe._prepare_latent_image_ids(1, lh, lw, "cpu", torch.float32))
    with torch.no_grad():
        pe, ppe, _ = pipe.encode_prompt(case["prompt"], prompt_2=None, max_sequence_length=msl)
    assert torch.equal(first["encoder_hidden_states"], pe) and torch.equal(first["pooled_projections"], ppe)
    # The generator: exactly two draws of the latent shape (the VAE posterior's eps, then the noise).
    check_draws(gen, case["seed"], shape, 2, (case["name"], "generator draws"))
    g = torch.Generator("cpu").manual_seed(case["seed"])
    x = pipe.image_processor.preprocess(init_pil, height=h, width=w)
    want_x = torch.from_numpy(init_u8.astype(np.float32) / 255.0).permute(2, 0, 1)[None] * 2 - 1
    assert x.dtype == torch.float32 and torch.equal(x, want_x)
    vae = pipe.vae
    with torch.no_grad():
        dist = vae.encode(x).latent_dist
        dist_c = vae.encode(x.contiguous()).latent_dist
    assert dist.mean.shape == shape, (dist.mean.shape, shape)
    eps = torch.randn(dist.mean.shape, generator=g)
    z0 = (dist.mean + dist.std * eps - vae.config.shift_factor) * vae.config.scaling_factor
    z0_c = (dist_c.mean + dist_c.std * eps - vae.config.shift_factor) * vae.config.scaling_factor
    noise = torch.randn(shape, generator=g)
    sigma = sigmas[t_start]
    x0 = pipe._pack_latents(sigma * noise + (1.0 - sigma) * z0, 1, 16, lh, lw)
    assert torch.equal(first["hidden_states"], x0), (case["name"], "first transformer input")
    # The loop
    for i in range(steps_run):
        assert torch.equal(rec.timesteps[i], timesteps[i:i + 1] / 1000), i
        if case["model"] == "dev":
            assert torch.equal(rec.guidance[i], torch.tensor([case["guidance"]])), i
        else:
            assert rec.guidance[i] is None
    replay(rec, sigmas, t_start, packed)
    latent, image = decode_as_pipeline(pipe, packed, h, w)
    assert latent.shape == shape
    pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(sched_cfg)
    with torch.no_grad():
        pil = pipe(**call, generator=torch.Generator("cpu").manual_seed(case["seed"]), output_type="pil").images[0]
    assert torch.equal(torch.from_numpy(np.asarray(pil).copy()), image), "decode differs from the pipeline's"
    passed = torch.cat(rec.timesteps)
    params = dict(name=case["name"], pipeline_class=type(pipe).__name__, model=case["model"], prompt=case["prompt"],
                  negative=None, steps=n, steps_run=steps_run, t_start=t_start, strength=strength,
                  init_variant=case["init_variant"], guidance=case["guidance"],
                  guidance_used=case["model"] == "dev", seed=case["seed"], width=w, height=h,
                  max_sequence_length=msl, timesteps=timesteps.tolist(), all_timesteps=all_timesteps.tolist(),
                  transformer_timesteps=passed.tolist(), sigmas=sigmas.tolist(), mu=mu, image_seq_len=n_tok)
    tensors = dict(init=torch.from_numpy(init_u8).permute(2, 0, 1)[None].contiguous(),
                   latent_packed=packed.contiguous(), latent=latent.contiguous(), image=image.contiguous(),
                   timesteps=timesteps, all_timesteps=all_timesteps, transformer_timesteps=passed, sigmas=sigmas,
                   mu=torch.tensor([mu], dtype=torch.float64), eps=eps, init_latents=z0, noise=noise)
    return tensors, params, (z0_c - z0).abs().max().item()


def pipeline_cases(pipes, cfgs):
    tensors, meta = {}, dict(versions(), scheduler_config=json.dumps(cfgs["dev"], sort_keys=True),
                             scheduler_schnell_config=json.dumps(cfgs["schnell"], sort_keys=True))
    latents = {}
    for case in CASES:
        t, params, contig = run_case(pipes, cfgs, case)
        name = case["name"]
        latent, image = t["latent"], t["image"]
        assert torch.isfinite(latent).all(), name
        assert image.shape == (case["height"], case["width"], 3) and image.dtype == torch.uint8, name
        for k, v in t.items():
            tensors[f"{name}.{k}"] = v
        meta[f"{name}.params"] = json.dumps(params)
        latents[name] = latent
        sat = ((image == 0) | (image == 255)).float().mean().item()
        print(f"  {name} {case['model']:7s} h{case['height']} w{case['width']} strength {case['strength']} steps "
              f"{case['steps']} (t_start {params['t_start']}, {params['steps_run']} run) guidance "
              f"{case['guidance']} msl {case['max_sequence_length']}: latent {tuple(latent.shape)} std "
              f"{latent.std().item():.3f}  image mean {image.float().mean().item():.1f} std "
              f"{image.float().std().item():.1f} saturated {sat:.0%}; contiguous-input init latents off by "
              f"{contig:.1e}")
        print(f"    mu {params['mu']!r} timesteps run {params['timesteps']}")
    assert_all_differ(latents)
    return tensors, meta


def cross_check_txt2img(dev):
    """0.31.0's FluxPipeline on pipeline_flux_cases' case a (written with 0.30.3)."""
    if not os.path.exists(TXT2IMG_GOLDEN):
        print("  (no pipeline_flux_cases.safetensors: cross-check skipped)")
        return
    want = load_file(TXT2IMG_GOLDEN)["a.latent_packed"]
    pipe = FluxPipeline(**dev.components)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(dev.scheduler.config)
    with torch.no_grad():
        got = pipe(prompt="a red circle on a blue background", height=32, width=32, num_inference_steps=4,
                   guidance_scale=3.5, max_sequence_length=512, generator=torch.Generator("cpu").manual_seed(42),
                   output_type="latent").images
    diff = (got - want).abs().max().item()
    print(f"  0.31.0 FluxPipeline vs pipeline_flux_cases a.latent_packed (0.30.3): "
          f"{'bit for bit' if torch.equal(got, want) else f'max abs diff {diff:.3e}'}")


def save(path, tensors, meta):
    for k, v in tensors.items():
        if v.is_floating_point():
            assert v.dtype == torch.float32 or k.endswith(".mu"), k
            assert torch.isfinite(v).all(), k
    tensors = {k: v.detach().clone().contiguous() for k, v in tensors.items()}
    safetensors_io.save_file(tensors, path, dict(sorted(meta.items())))
    back = load_file(path)
    assert back.keys() == tensors.keys() and all(torch.equal(back[k], v) for k, v in tensors.items())
    print(f"wrote {os.path.relpath(path, ROOT)}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


def main():
    torch.set_num_threads(1)
    check_prompts()
    cfgs = {"dev": scheduler_config(FOLDER), "schnell": scheduler_config(SCHNELL_FOLDER)}
    assert cfgs["dev"]["use_dynamic_shifting"] and not cfgs["schnell"]["use_dynamic_shifting"]
    pipes = {"dev": load_fp32(FOLDER), "schnell": load_fp32(SCHNELL_FOLDER)}
    print("cross-check:")
    cross_check_txt2img(pipes["dev"])
    print("pipeline cases:")
    save(CASES_GOLDEN, *pipeline_cases(pipes, cfgs))


if __name__ == "__main__":
    main()
