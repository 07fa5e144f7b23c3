#!/work/refvenv/bin/python
"""SDXL txt2img goldens in k-diffusion semantics (what AUTOMATIC1111 and ComfyUI run) on the tiny SDXL model.

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline, after
make_sdxl_goldens.py has written the model folder:

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_sdxl_kdiffusion_goldens.py

It reads tests/golden/data/pipeline_sdxl/ (the tiny random-weight SDXL model of make_sdxl_goldens.py, fp16
weights), loaded with StableDiffusionXLPipeline.from_pretrained(torch_dtype=torch.float32), so everything is
computed in fp32 on the CPU on the fp16-rounded weights, and writes
tests/golden/data/pipeline_sdxl_kdiffusion_cases.safetensors. It is the SDXL counterpart of
make_pipeline_goldens.py (SD 1.x). It takes about 7 s on an idle two-core machine (40 s beside a build).
Every run writes the same bytes: safetensors_io writes the metadata keys sorted, and the script pins torch
to ONE CPU thread. With 2 threads some of torch's CPU kernels sum in another order, and the latents move by
about 4e-4 (they reach 250 in magnitude). The script reruns the first case with 2 threads and prints that
difference.

Versions (requirements-pip.txt): torch 2.4.1 (CPU), diffusers 0.30.3, transformers 4.40.2, k-diffusion 0.0.16
(PyPI, the release AUTOMATIC1111 pins), torchsde 0.2.6, torchdiffeq 0.2.5, scipy 1.17.1, einops 0.8.2.
`import k_diffusion` imports every submodule. One of them, k_diffusion.evaluation (FID/KID and CLIP
scoring for training), does `import clip` (the clip-anytorch package) at module level. That package is NOT
installed: it requires ftfy, and with ftfy importable transformers' CLIPTokenizer cleans text through ftfy
instead of its BasicTokenizer fallback, which would change the environment that make_sdxl_goldens.py and
the other venv scripts document. So this script puts a stand-in module "clip" into sys.modules, but only
when the real one cannot be imported (stub_clip_if_missing). Any attribute access other than a dunder raises
RuntimeError. Only k_diffusion.evaluation.CLIPFeatureExtractor.__init__ uses `clip` (clip.load). Nothing in
k_diffusion.sampling, k_diffusion.external or k_diffusion.utils references k_diffusion.evaluation or clip, so
the stand-in cannot affect sampling. The metadata key "stubbed_modules" records it. Every other import of
k_diffusion (scikit-image, jsonmerge, clean-fid, resize-right, torchvision, ...) is the real package.

The model and its noise schedule
--------------------------------
The UNet, text encoders and VAE are the folder's (see make_sdxl_goldens.py's docstring). The VAE downsamples
by 2, not 8, so a W x H image has a [1, 4, H/2, W/2] latent.
alphas_cumprod (ALPHAS_CUMPROD, stored as the tensor "alphas_cumprod") is the folder's scheduler config
(scaled_linear, beta_start 0.00085, beta_end 0.012, 1000 train steps) built as LDM and sgm do (sgm's
LegacyDDPMDiscretization, which AUTOMATIC1111 installs as the SDXL model's alphas_cumprod):
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = cumprod(1 - betas) in float64, then rounded to float32.
The cumprod is in float64 and only the result is float32. diffusers' EulerDiscreteScheduler builds the
same quantities in float32 throughout (float32 linspace, float32 cumprod). The script prints the largest
relative difference between the two (about 1e-6; the goldens use LDM's).
k-diffusion's CompVisDenoiser(model, quantize=False) takes that tensor. Its sigmas are
sigmas[i] = ((1 - ac[i]) / ac[i]) ** 0.5, computed in float32 (i = 0..999), with sigma_min = sigmas[0] and
sigma_max = sigmas[999]. Its log_sigmas = sigmas.log().

Sampling sigmas (n = steps, every tensor float32):
    automatic: CompVisDenoiser.get_sigmas(n): t = torch.linspace(999, 0, n), float timesteps. Each is mapped
               to a sigma by linear interpolation of log_sigmas between floor(t) and ceil(t), weight
               frac(t): sigma = exp((1 - w) * log_sigmas[floor t] + w * log_sigmas[ceil t]). A 0 is
               appended (n + 1 values). This is A1111's "Automatic" schedule for Euler, Euler a and Heun.
               Even the endpoints go through exp(log): sigmas[0] is 14.614643096923828, one float32 ulp above
               sigma_max = 14.614642143249512, and sigmas[n - 1] is 0.0291675366461277, not sigma_min =
               0.02916753478348255.
    karras:    get_sigmas_karras(n, sigma_min.item(), sigma_max.item(), rho=7): ramp = torch.linspace(0, 1, n)
               (float32), sigma = (max ** (1/7) + ramp * (min ** (1/7) - max ** (1/7))) ** 7, where min ** (1/7)
               and max ** (1/7) are Python doubles, so the result is float32. A 0 is appended.
               (A1111 with use_old_karras_scheduler_sigmas off and "always discard next-to-last sigma" off,
               their defaults.)
Each case's sigmas are stored as <name>.sigmas and in its params. The script recomputes both schedules from
the formulas above (and the sigmas table from alphas_cumprod) and checks that k-diffusion gives the same bits.

The loop (A1111's txt2img with a k-diffusion sampler)
-----------------------------------------------------
Text conditioning, per prompt (A1111's SDXL path: sd_models_xl plus its CLIP hijacks for the two embedders):
- Tokens: the body ids of text from the folder's tokenizer (CLIPTokenizer, add_special_tokens=False), then
  BOS + body + EOS, padded to 77. The padding is EOS (590) for tokenizer (CLIP-L's side) and 0 for
  tokenizer_2 (bigG's side: A1111 overwrites everything after the first EOS with id_pad = 0). The script
  checks that this equals tokenizer(text, padding="max_length", max_length=77) for both tokenizers. The
  prompts are short (one 75-token chunk, so there is no chunking or comma backtracking) and contain no
  emphasis syntax. With every multiplier 1.0, A1111's "Original" emphasis (z * 1.0, then times
  mean_before / mean_after, which is exactly 1.0) leaves the hidden states unchanged.
- "!" and tokenizer_2: transformers registers tokenizer_2's pad token "!" as a special token, so it splits
  each "!" in a prompt out as id 0. open_clip's tokenizer, which A1111 uses for bigG, does not. No prompt here
  contains "!" (every prompt is made of make_sdxl_goldens.WORDS and commas, which the script asserts), so
  this difference is never hit. The script also asserts that both tokenizers give the same body ids (they
  share the vocabulary).
- context [1, 77, 80] = cat(text_encoder(ids_1).hidden_states[-2], text_encoder_2(ids_2).hidden_states[-2]),
  the penultimate hidden states with no final layer norm (CLIP-L first, then bigG).
- pooled [1, 40] = text_encoder_2(ids_2).text_embeds: the final-layer-normed state at the first EOS, through
  text_projection, for the first (only) chunk.
  For non-empty prompts the script checks that context and pooled equal StableDiffusionXLPipeline.encode_prompt's
  bit for bit.
- Negative prompt: when it is "" (A1111's force_zero_negative_prompt: every negative in the batch is empty),
  context and pooled are zeros of those shapes. The time ids are not zeroed. Otherwise it is encoded like the
  prompt. (This zeroing is A1111's. ComfyUI encodes an empty negative like any other text, as every case here
  but euler_zero_neg does.)
- time_ids = (height, width, 0, 0, height, width) for both rows. That is original size = target size = the
  image size, and crop top/left = 0, 0 (A1111's txt2img; sdxl_crop_top/left default 0).

Denoiser: CompVisDenoiser over a wrapper whose apply_model(x, t, cond) is
    unet(x, t, encoder_hidden_states=cond["context"],
         added_cond_kwargs={"text_embeds": cond["pooled"], "time_ids": cond["time_ids"]}).sample
(the eps prediction). CompVisDenoiser calls it with x * c_in, c_in = 1 / sqrt(sigma^2 + 1), and t =
sigma_to_t(sigma), a float timestep. That is log-sigma interpolation: with low_idx the last index whose
log_sigmas <= log sigma (clamped to <= 998), w = clamp((log_sigmas[low] - log sigma) / (log_sigmas[low] -
log_sigmas[low + 1]), 0, 1), t = (1 - w) * low + w * (low + 1). The UNet takes float t (a [2] float32
tensor) into its sinusoidal embedding unrounded. The denoised output is x + eps * (-sigma).
CFG (A1111's CFGDenoiser): one UNet batch of 2 with the conditional row first:
    x_in = cat([x, x]), sigma_in = cat([sigma, sigma]), context = cat([cond, uncond]),
    pooled = cat([cond_pooled, uncond_pooled]), time_ids = the same row twice;
    c, u = denoiser(x_in, sigma_in).chunk(2);  denoised = u + (c - u) * cfg.
Noise: g = torch.Generator().manual_seed(seed) (CPU); x = torch.randn([1, 4, H/2, W/2], generator=g) * sigmas[0].
That is A1111 with its random number generator source set to "CPU" (A1111's default, "GPU", would draw CUDA's
Philox numbers instead; ComfyUI draws its initial noise on the CPU) and sgm_noise_multiplier off (its
default). Every later draw continues g with torch.randn of the latent's shape. Only Euler a draws, as its
noise_sampler, once per step whose next sigma is > 0: 7 draws at 8 steps, none after the last step.
Samplers (k_diffusion.sampling, defaults otherwise: s_churn 0, eta 1, s_noise 1):
    euler    sample_euler
    euler_a  sample_euler_ancestral(noise_sampler=lambda s, s_next: torch.randn(shape, generator=g))
    dpm++2m  sample_dpmpp_2m
    heun     sample_heun
DPM++ 2M SDE (and every other SDE sampler) is not here: its default noise, which A1111 runs, comes from a
torchsde BrownianTree, not from continuing g.

The file (every tensor float32 unless said)
-------------------------------------------
    alphas_cumprod      [1000]            ALPHAS_CUMPROD as above
    <name>.latent       [1, 4, H/2, W/2]  the sampler's final x (not divided by the scaling factor)
    <name>.image        uint8 [H, W, 3]   (HWC, RGB) decoded as diffusers does: vae.decode(latent / 0.13025),
                                          then round(clamp(x / 2 + 0.5, 0, 1) * 255) (image_processor.postprocess
                                          to PIL, then numpy.asarray)
    <name>.sigmas       [steps + 1]       the sampling sigmas (the last is 0)
Metadata: <name>.params (JSON: name, prompt, negative, steps, cfg, seed, width, height, sampler (easel's
names "euler", "euler_a", "dpm++2m", "heun"), schedule ("automatic" or "karras"), zero_negative (true when
the negative was zeroed), time_ids, sigmas as a list), plus script, torch, diffusers, transformers,
huggingface_hub, k_diffusion, torchsde, torchdiffeq, scipy, numpy, stubbed_modules and alphas_cumprod (how
it was built).

Cases (CFG 5, 8 steps; W x H; all 64x64 but one):
    euler            Euler, automatic
    euler_a          Euler a, automatic
    dpmpp2m_karras   DPM++ 2M, karras
    heun             Heun, automatic (2 UNet batches per step except the last: 15 in all)
    euler_64x96      Euler, automatic, width 64, height 96 (latent [1, 4, 48, 32]; time ids (96, 64, 0, 0, 96, 64))
    euler_zero_neg   Euler, automatic, negative "": zeroed uncond context and pooled vector
The script checks that every latent is finite and that no two latents are equal. It also runs euler_zero_neg
once more with the empty negative encoded instead of zeroed, and checks that the latent changes. That run
is not saved.
"""

import importlib.metadata
import json
import os
import sys
import types

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import make_sdxl_goldens as sx  # noqa: E402  (the model folder, its WORDS, decode and the deterministic writer)

import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import StableDiffusionXLPipeline  # noqa: E402

OUT = os.path.join(ROOT, "tests", "golden", "data")
FOLDER = sx.FOLDER
GOLDEN = os.path.join(OUT, "pipeline_sdxl_kdiffusion_cases.safetensors")
SCRIPT = "tools/reference/make_sdxl_kdiffusion_goldens.py"

STUBBED = []


def stub_clip_if_missing():
    """k_diffusion/__init__ imports k_diffusion.evaluation, which does `import clip` (clip-anytorch, not installed:
    see the docstring). Put a stand-in in sys.modules that fails loudly if anything uses it."""
    try:
        import clip  # noqa: F401
        return
    except ImportError:
        pass
    mod = types.ModuleType("clip", "stand-in for clip-anytorch (make_sdxl_kdiffusion_goldens.py): not installed")

    def __getattr__(name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        raise RuntimeError(f"clip.{name}: clip-anytorch is not installed (stand-in module); "
                           "only k_diffusion.evaluation uses it, never sampling")

    mod.__getattr__ = __getattr__
    sys.modules["clip"] = mod
    STUBBED.append("clip (clip-anytorch; imported only by k_diffusion.evaluation, unused by sampling/external)")


stub_clip_if_missing()
import k_diffusion as K  # noqa: E402

assert importlib.metadata.version("k-diffusion") == "0.0.16", importlib.metadata.version("k-diffusion")


def ldm_alphas_cumprod():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).to(torch.float32)


ALPHAS_CUMPROD = ldm_alphas_cumprod()

_BASE = dict(steps=8, cfg=5.0, width=64, height=64)
CASES = [
    dict(_BASE, name="euler", sampler="euler", schedule="automatic", seed=42,
         prompt="a red circle on a blue background", negative="a green square"),
    dict(_BASE, name="euler_a", sampler="euler_a", schedule="automatic", seed=1234,
         prompt="a small green triangle on the top", negative="photo of a dog"),
    dict(_BASE, name="dpmpp2m_karras", sampler="dpm++2m", schedule="karras", seed=7,
         prompt="a large square, masterpiece", negative="a small circle"),
    dict(_BASE, name="heun", sampler="heun", schedule="automatic", seed=99,
         prompt="photo of a cat", negative="dog"),
    dict(_BASE, name="euler_64x96", sampler="euler", schedule="automatic", seed=17, width=64, height=96,
         prompt="a blue triangle on the right", negative="a red square"),
    dict(_BASE, name="euler_zero_neg", sampler="euler", schedule="automatic", seed=29,
         prompt="a small cat on the left", negative=""),
]


def check_prompts(cases=CASES):
    sx.check_words(cases)
    for case in cases:
        for text in (case["prompt"], case["negative"]):
            assert "!" not in text, case["name"]


def versions():
    v = dict(sx.versions(SCRIPT), numpy=np.__version__)
    for dist in ("k-diffusion", "torchsde", "torchdiffeq", "scipy"):
        v[dist.replace("-", "_")] = importlib.metadata.version(dist)
    v["stubbed_modules"] = json.dumps(STUBBED)
    v["alphas_cumprod"] = ("scaled_linear 0.00085..0.012, 1000 steps: betas = linspace(sqrt(b0), sqrt(b1)) ** 2 "
                           "and cumprod(1 - betas) in float64, rounded to float32 (LDM / sgm)")
    return v


# ---------------------------------------------------------------------------------------------------------
# Conditioning

def token_ids(tok, text, pad_id):
    body = tok(text, add_special_tokens=False).input_ids
    assert len(body) <= 75, "one chunk only"
    ids = [tok.bos_token_id] + body + [tok.eos_token_id]
    ids += [pad_id] * (77 - len(ids))
    ref = tok(text, padding="max_length", max_length=77, truncation=True).input_ids
    assert ids == ref, (text, ids, ref)
    return torch.tensor([ids]), body


def encode(pipe, text):
    ids_1, body_1 = token_ids(pipe.tokenizer, text, pipe.tokenizer.eos_token_id)
    ids_2, body_2 = token_ids(pipe.tokenizer_2, text, 0)
    assert body_1 == body_2, "tokenizer_2 split the text differently (a '!'?)"
    with torch.no_grad():
        out_1 = pipe.text_encoder(ids_1, output_hidden_states=True)
        out_2 = pipe.text_encoder_2(ids_2, output_hidden_states=True)
    context = torch.cat([out_1.hidden_states[-2], out_2.hidden_states[-2]], dim=-1)
    pooled = out_2.text_embeds
    if text:
        with torch.no_grad():
            pe, _, ppe, _ = pipe.encode_prompt(text, device=torch.device("cpu"), num_images_per_prompt=1,
                                               do_classifier_free_guidance=False)
        assert torch.equal(pe, context) and torch.equal(ppe, pooled), "differs from diffusers' encode_prompt"
    return context, pooled


def conditioning(pipe, prompt, negative, zero_empty_negative=True):
    cond, cond_pooled = encode(pipe, prompt)
    if negative == "" and zero_empty_negative:
        uncond, uncond_pooled = torch.zeros_like(cond), torch.zeros_like(cond_pooled)
    else:
        uncond, uncond_pooled = encode(pipe, negative)
    return cond, cond_pooled, uncond, uncond_pooled


# ---------------------------------------------------------------------------------------------------------
# The k-diffusion loop

class SdxlEpsModel(torch.nn.Module):
    """What CompVisDenoiser expects: alphas_cumprod and apply_model(x, t, cond) returning eps."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet
        self.register_buffer("alphas_cumprod", ALPHAS_CUMPROD.clone())

    def apply_model(self, x, t, cond):
        return self.unet(x, t, encoder_hidden_states=cond["context"],
                         added_cond_kwargs={"text_embeds": cond["pooled"], "time_ids": cond["time_ids"]}).sample


def cfg_denoiser(model, cond, scale):
    def denoise(x, sigma):
        out = model(torch.cat([x, x]), torch.cat([sigma, sigma]), cond=cond)
        c, u = out.chunk(2)
        return u + (c - u) * scale
    return denoise


def check_sigmas(model):
    """The schedules as the docstring states them, recomputed here and compared bit for bit with k-diffusion's."""
    sig = ((1 - ALPHAS_CUMPROD) / ALPHAS_CUMPROD) ** 0.5
    assert torch.equal(model.sigmas, sig) and torch.equal(model.log_sigmas, sig.log())
    for n in (8, 6, 20):
        t = torch.linspace(999, 0, n)
        lo, hi, w = t.floor().long(), t.ceil().long(), t.frac()
        auto = torch.cat([((1 - w) * sig.log()[lo] + w * sig.log()[hi]).exp(), torch.zeros(1)])
        assert torch.equal(model.get_sigmas(n), auto), n
        lo_r, hi_r = sig[0].item() ** (1 / 7), sig[-1].item() ** (1 / 7)
        karras = torch.cat([(hi_r + torch.linspace(0, 1, n) * (lo_r - hi_r)) ** 7, torch.zeros(1)])
        assert torch.equal(K.sampling.get_sigmas_karras(n, sig[0].item(), sig[-1].item()), karras), n


def case_sigmas(model, case):
    if case["schedule"] == "karras":
        return K.sampling.get_sigmas_karras(case["steps"], model.sigma_min.item(), model.sigma_max.item())
    assert case["schedule"] == "automatic"
    return model.get_sigmas(case["steps"])


def run_sampler(name, denoiser, x, sigmas, gen):
    if name == "euler":
        return K.sampling.sample_euler(denoiser, x, sigmas, disable=True)
    if name == "euler_a":
        noise = lambda s, s_next: torch.randn(x.shape, generator=gen)  # noqa: E731
        return K.sampling.sample_euler_ancestral(denoiser, x, sigmas, disable=True, noise_sampler=noise)
    if name == "dpm++2m":
        return K.sampling.sample_dpmpp_2m(denoiser, x, sigmas, disable=True)
    if name == "heun":
        return K.sampling.sample_heun(denoiser, x, sigmas, disable=True)
    raise ValueError(name)


class CallCounter:
    def __init__(self):
        self.n = 0

    def __call__(self, module, args, kwargs):
        self.n += 1


def run_case(pipe, model, case, zero_empty_negative=True):
    h, w = case["height"], case["width"]
    f = pipe.vae_scale_factor
    cond, cond_pooled, uncond, uncond_pooled = conditioning(pipe, case["prompt"], case["negative"],
                                                            zero_empty_negative)
    time_ids = torch.tensor([[h, w, 0, 0, h, w]] * 2, dtype=torch.float32)
    c = {"context": torch.cat([cond, uncond]), "pooled": torch.cat([cond_pooled, uncond_pooled]),
         "time_ids": time_ids}
    sigmas = case_sigmas(model, case)
    gen = torch.Generator().manual_seed(case["seed"])
    x = torch.randn((1, 4, h // f, w // f), generator=gen) * sigmas[0]
    counter = CallCounter()
    handle = pipe.unet.register_forward_pre_hook(counter, with_kwargs=True)
    try:
        with torch.no_grad():
            latent = run_sampler(case["sampler"], cfg_denoiser(model, c, case["cfg"]), x, sigmas, gen)
    finally:
        handle.remove()
    steps = case["steps"]
    assert counter.n == (2 * steps - 1 if case["sampler"] == "heun" else steps), (case["name"], counter.n)
    return latent.contiguous(), sigmas, time_ids


def all_cases(pipe):
    model = K.external.CompVisDenoiser(SdxlEpsModel(pipe.unet), quantize=False)
    assert model.sigmas.dtype == torch.float32
    check_sigmas(model)
    diff_ac = pipe.scheduler.alphas_cumprod
    rel = ((diff_ac.double() - ALPHAS_CUMPROD.double()).abs() / ALPHAS_CUMPROD.double()).max().item()
    print(f"  alphas_cumprod: max relative difference to diffusers' float32 cumprod {rel:.3g}")
    print(f"  sigma_min {model.sigma_min.item()!r} sigma_max {model.sigma_max.item()!r}")
    tensors = {"alphas_cumprod": ALPHAS_CUMPROD.clone()}
    meta = versions()
    latents = {}
    for case in CASES:
        name = case["name"]
        latent, sigmas, time_ids = run_case(pipe, model, case)
        image = sx.decode_as_pipeline(pipe, latent)
        h, w = case["height"], case["width"]
        assert torch.isfinite(latent).all(), name
        assert latent.shape == (1, 4, h // 2, w // 2), name
        assert image.shape == (h, w, 3) and image.dtype == torch.uint8, name
        params = {k: case[k] for k in ("name", "prompt", "negative", "steps", "cfg", "seed", "width", "height",
                                       "sampler", "schedule")}
        params["zero_negative"] = case["negative"] == ""
        params["time_ids"] = time_ids[0].tolist()
        params["sigmas"] = sigmas.tolist()
        tensors[f"{name}.latent"] = latent
        tensors[f"{name}.image"] = image.contiguous()
        tensors[f"{name}.sigmas"] = sigmas.clone().contiguous()
        meta[f"{name}.params"] = json.dumps(params)
        latents[name] = latent
        sat = ((image == 0) | (image == 255)).float().mean().item()
        print(f"  {name:15s} {case['sampler']:8s} {case['schedule']:9s} {w}x{h} latent std "
              f"{latent.std().item():.3f} max|.| {latent.abs().max().item():.3f}  image mean "
              f"{image.float().mean().item():.1f} std {image.float().std().item():.1f} saturated {sat:.0%}")
        print(f"  {'':15s} sigmas {[round(s, 5) for s in params['sigmas']]}")
    # The zeroed negative must matter.
    case = next(c for c in CASES if c["name"] == "euler_zero_neg")
    other = run_case(pipe, model, case, zero_empty_negative=False)[0]
    diff = (other - latents["euler_zero_neg"]).abs().max().item()
    print(f"  euler_zero_neg with the empty negative encoded instead: max |latent difference| {diff:.4f}")
    assert diff > 1e-3 * latents["euler_zero_neg"].std().item()
    sx.assert_all_differ(latents)
    # The bits depend on torch's CPU thread count (main pins 1); show by how much, on the first case.
    torch.set_num_threads(2)
    try:
        case = CASES[0]
        again = run_case(pipe, model, case)[0]
        print(f"  {case['name']} with 2 torch threads instead of 1: max |latent difference| "
              f"{(again - latents[case['name']]).abs().max().item():.3g}")
    finally:
        torch.set_num_threads(1)
    return tensors, meta


def main():
    torch.set_num_threads(1)  # see the docstring: the bits depend on the thread count
    check_prompts()
    pipe = StableDiffusionXLPipeline.from_pretrained(FOLDER, torch_dtype=torch.float32, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.vae_scale_factor == 2 and pipe.vae.config.scaling_factor == 0.13025
    sc = pipe.scheduler.config
    assert (sc.beta_schedule, sc.beta_start, sc.beta_end, sc.num_train_timesteps, sc.prediction_type) == \
        ("scaled_linear", 0.00085, 0.012, 1000, "epsilon"), dict(sc)
    print("k-diffusion cases:", "stubbed " + "; ".join(STUBBED) if STUBBED else "nothing stubbed")
    sx.save(GOLDEN, *all_cases(pipe))


if __name__ == "__main__":
    main()
