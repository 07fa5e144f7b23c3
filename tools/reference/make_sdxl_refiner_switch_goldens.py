#!/work/refvenv/bin/python
"""AUTOMATIC1111's SDXL "Refiner" with "Switch at", in k-diffusion semantics, on the tiny SDXL base and refiner.

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline, after
make_sdxl_goldens.py and make_sdxl_refiner_goldens.py have written the two model folders:

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_sdxl_refiner_switch_goldens.py

It reads tests/golden/data/pipeline_sdxl/ (the tiny random-weight base, StableDiffusionXLPipeline) and
tests/golden/data/pipeline_sdxl_refiner/ (the tiny refiner: bigG alone, 5 time ids with the aesthetic score;
StableDiffusionXLImg2ImgPipeline), both loaded with torch_dtype=torch.float32, so everything is fp32 on the CPU
on the fp16-rounded weights, and writes tests/golden/data/pipeline_sdxl_refiner_switch_cases.safetensors.
It takes about 6 s on a two-core machine beside another reference job (the script prints its time). Every run
writes the same bytes (safetensors_io through make_sdxl_goldens.save, metadata keys sorted; torch pinned to ONE
CPU thread, as make_sdxl_kdiffusion_goldens.py does and for the same reason: with 2 threads some CPU kernels sum in
another order).

Versions: those of make_sdxl_kdiffusion_goldens.py (torch 2.4.1 CPU, diffusers 0.30.3, transformers 4.40.2,
k-diffusion 0.0.16, torchsde 0.2.6, torchdiffeq 0.2.5, scipy 1.17.1, numpy); the file's metadata records them
(kd.versions(), with this script's name).

Everything about the base's loop is imported from make_sdxl_kdiffusion_goldens.py (read its docstring): the
token ids, the base conditioning with an empty negative zeroed, the CompVisDenoiser over LDM's alphas_cumprod,
the automatic and karras sigmas, the CFG denoiser (conditional row first, u + (c - u) * cfg), the initial noise
from torch.Generator().manual_seed(seed) times sigmas[0], run_sampler (k_diffusion 0.0.16's sample_euler,
sample_euler_ancestral with its noise drawn from the same generator, sample_dpmpp_2m, sample_heun). The
refiner's folder, encode_2 and time-id layout are make_sdxl_refiner_goldens.py's.

What AUTOMATIC1111 does (v1.7 to v1.10, option refiner_switch_by_sample_steps False, its default)
-----------------------------------------------------------------------------------------------------
modules/sd_samplers_cfg_denoiser.py, CFGDenoiser.forward, begins every model evaluation of the k-diffusion
sampler (every call of the denoiser, so Heun's second evaluation within a step counts too) with
modules/sd_samplers_common.py apply_refiner(cfg_denoiser, sigma):
    timestep = torch.argmin(torch.abs(cfg_denoiser.inner_model.sigmas - torch.max(sigma)))
    completed_ratio = (999 - timestep) / 1000
    if refiner_switch_at is not None and completed_ratio < refiner_switch_at: return False   (keep the model)
    if shared.sd_model.sd_checkpoint_info == refiner_checkpoint_info: return False            (already switched)
    sd_models.reload_model_weights(info=refiner); p.setup_conds(); cfg_denoiser.update_inner_model()
update_inner_model drops the CompVisDenoiser (it is rebuilt from the refiner) and puts the refiner's conds into
sampler_extra_args, which forward then uses for this very call. Here:
- inner_model.sigmas is the base's CompVisDenoiser.sigmas: the 1000-entry float32 table sqrt((1 - ac) / ac);
  sigma is the [1] float32 tensor the sampler passes. argmin returns the first index on ties.
- timestep is an int64 tensor, so (999 - timestep) / 1000 is a float32 tensor (true division); comparing it with
  the Python float refiner_switch_at casts that float to float32 (a weak scalar). So 0.8 compares as
  float32(0.8), and a ratio of (999 - 199) / 1000 = float32(0.8) is NOT < 0.8: it switches. The script checks
  that comparing against torch.tensor(refiner_switch_at, dtype=float32) gives the same answer on every call.
- The switch happens once; afterwards the refiner stays (the second return False above).
- The sampler loop goes on unchanged: the same sigmas list (computed once from the base's model_wrap), the same
  x, the same generator (Euler a's later noise draws continue it), the same sampler state (DPM++ 2M's previous
  denoised, Heun's d of the current step) carried across the switch. Only the CFG denoiser's model and conds
  change. The refiner's CompVisDenoiser has the same alphas_cumprod (sd_xl_refiner.yaml uses sgm's
  LegacyDDPMDiscretization too), so its sigma table and sigma_to_t are the base's bit for bit (checked).
- The final latent is decoded by the refiner's VAE (A1111 decodes with whatever model is loaded). The tiny
  refiner's VAE has the same bytes as the base's (make_sdxl_refiner_goldens.py checks it; here the script checks
  that both decodes give the same image), so it does not matter which one decodes.

The refiner's conditioning (A1111's sd_models_xl.get_learned_conditioning on the sgm conditioner of
sd_xl_refiner.yaml: FrozenOpenCLIPEmbedder2 with layer "penultimate", then ConcatTimestepEmbedderND for
original_size_as_tuple, crop_coords_top_left, aesthetic_score):
- tokens: bigG's only: BOS + body + EOS padded with id 0 (A1111's OpenCLIP embedder), checked equal to
  tokenizer_2(text, padding="max_length") (no prompt contains "!").
- context [1, 77, 48] (1280 in the real refiner) = text_encoder_2(ids).hidden_states[-2], the penultimate state,
  no final layer norm, nothing concatenated; pooled [1, 40] = text_encoder_2(ids).text_embeds (projected,
  final-layer-normed end-of-text state).
- time ids (diffusers' order, the refiner's 5): (height, width, crop_top 0, crop_left 0, aesthetic_score), with
  aesthetic_score 6.0 for the prompt and 2.5 for the negative (opts sdxl_refiner_high_aesthetic_score and
  sdxl_refiner_low_aesthetic_score, their defaults). target_size is not part of the refiner's vector.
- An EMPTY negative prompt is zeroed on the refiner too (context and pooled all zeros; the aesthetic 2.5 stays in
  the time ids): get_learned_conditioning passes force_zero_embeddings=['txt'] whenever every negative is "",
  whatever the SDXL model. (diffusers' refiner folder has force_zeros_for_empty_prompt false; A1111 ignores that.)
- CFG batch as the base's: conditional row first: context cat([cond, uncond]), pooled cat([cond_pooled,
  uncond_pooled]), time ids [[H, W, 0, 0, 6.0], [H, W, 0, 0, 2.5]].

The file (float32 unless said)
------------------------------
    <name>.latent   [1, 4, H/2, W/2]  the sampler's final x (the tiny VAE downsamples by 2)
    <name>.image    uint8 [H, W, 3]   that latent decoded as make_sdxl_kdiffusion_goldens.py does, by the refiner's
                                      VAE (identical to the base's here)
    <name>.sigmas   [steps + 1]       the sampling sigmas (from the base; the last is 0)
Metadata <name>.params (JSON): the keys of make_sdxl_kdiffusion_goldens.py (name, prompt, negative, steps, cfg,
seed, width, height, sampler, schedule, zero_negative, time_ids (the base's row (H, W, 0, 0, H, W)), sigmas), plus
    refiner_switch_at        float
    switch_call              0-based index of the first model evaluation made by the refiner
    calls                    total model evaluations (steps, or 2 * steps - 1 for Heun)
    switch_sigma             the sigma of that evaluation (float32 value)
    switch_timestep          A1111's argmin timestep at it; switch_completed_ratio (999 - timestep) / 1000
    call_sigmas              the sigma of every evaluation, in order (Heun: sigmas[i], then sigmas[i + 1])
    call_timesteps           A1111's argmin timestep of every evaluation
    refiner_time_ids         [[H, W, 0, 0, 6.0], [H, W, 0, 0, 2.5]] (row 0 the prompt's, row 1 the negative's)
    refiner_aesthetic_score, refiner_negative_aesthetic_score   6.0, 2.5
    refiner_folder           "tests/golden/data/pipeline_sdxl_refiner"
plus the file metadata of make_sdxl_kdiffusion_goldens.versions() (script, library versions, stubbed_modules,
alphas_cumprod).

Cases (64x64 unless said; prompts from make_sdxl_goldens.WORDS):
    switch_euler_a         Euler a, automatic, 8 steps, cfg 7, seed 201, switch at 0.8, a negative prompt
    switch_dpmpp2m_karras  DPM++ 2M, karras, 10 steps, cfg 6, seed 202, switch at 0.6, EMPTY negative (zeroed on
                           both models)
    switch_heun            Heun, automatic, 6 steps, cfg 5, seed 203, switch at 0.5. The switch falls between the
                           two evaluations of one step: step 2's first evaluation (sigma[2], t = 599.4, ratio 0.4)
                           is the base's, its second (sigma[3], t = 399.6, ratio 0.6) the refiner's; Heun's update
                           then averages a base d and a refiner d. (With Heun this holds for ANY switch value that
                           does not switch at call 0: a new sigma is always first evaluated as the second evaluation
                           of the step before. The script asserts it.)
    switch_euler_64x96     Euler, automatic, width 64, height 96, 6 steps, cfg 5, seed 204, switch at 0.7
Checks (the script fails otherwise): every case calls each model at least once; the UNet forward hooks count
switch_call base and calls - switch_call refiner evaluations, at the expected sigmas; with the switch never reached
(refiner_switch_at 2.0) the loop gives make_sdxl_kdiffusion_goldens.run_case's latent bit for bit; the base
alone and the refiner alone (switch at 0.0) each give a different latent from the case's; every latent finite;
no two cases equal. The script prints the switch call, its sigma, ratio and latent statistics per case.
"""

import json
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_sdxl_kdiffusion_goldens as kd  # noqa: E402  (the k-diffusion loop for the base; stubs clip first)
import make_sdxl_refiner_goldens as rg  # noqa: E402  (the refiner folder, encode_2)
import make_sdxl_goldens as sx  # noqa: E402  (WORDS, decode, the deterministic writer)

from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline  # noqa: E402

K = kd.K
GOLDEN = os.path.join(sx.OUT, "pipeline_sdxl_refiner_switch_cases.safetensors")
SCRIPT = "tools/reference/make_sdxl_refiner_switch_goldens.py"
REFINER_FOLDER = "tests/golden/data/pipeline_sdxl_refiner"
AESTHETIC, NEGATIVE_AESTHETIC = 6.0, 2.5  # A1111's sdxl_refiner_high / low_aesthetic_score defaults
NEVER = 2.0  # a switch value no completed_ratio (at most 0.999) reaches

_BASE = dict(width=64, height=64, schedule="automatic")
CASES = [
    dict(_BASE, name="switch_euler_a", sampler="euler_a", steps=8, cfg=7.0, seed=201, refiner_switch_at=0.8,
         prompt="a red circle on a blue background, masterpiece", negative="photo of a small dog"),
    dict(_BASE, name="switch_dpmpp2m_karras", sampler="dpm++2m", schedule="karras", steps=10, cfg=6.0, seed=202,
         refiner_switch_at=0.6, prompt="photo of a cat on the left", negative=""),
    dict(_BASE, name="switch_heun", sampler="heun", steps=6, cfg=5.0, seed=203, refiner_switch_at=0.5,
         prompt="a large green triangle on the top", negative="a blue square"),
    dict(_BASE, name="switch_euler_64x96", sampler="euler", steps=6, cfg=5.0, seed=204, refiner_switch_at=0.7,
         width=64, height=96, prompt="a small red square on the right", negative="photo of a dog"),
]


def versions():
    v = kd.versions()
    v["script"] = SCRIPT
    return v


# ---------------------------------------------------------------------------------------------------------
# Conditioning

def refiner_encode(refiner, text):
    """A1111's OpenCLIP side (BOS + body + EOS, pad 0) through make_sdxl_refiner_goldens.encode_2."""
    ids, _ = kd.token_ids(refiner.tokenizer_2, text, 0)
    context, pooled, ids_2 = rg.encode_2(refiner, text)
    assert torch.equal(ids, ids_2), text
    return context, pooled


def refiner_conditioning(refiner, case):
    """CFG dict for the refiner: conditional row first; an empty negative zeroed (force_zero_negative_prompt)."""
    h, w = case["height"], case["width"]
    cond, cond_pooled = refiner_encode(refiner, case["prompt"])
    if case["negative"] == "":
        uncond, uncond_pooled = torch.zeros_like(cond), torch.zeros_like(cond_pooled)
    else:
        uncond, uncond_pooled = refiner_encode(refiner, case["negative"])
    time_ids = torch.tensor([[h, w, 0, 0, AESTHETIC], [h, w, 0, 0, NEGATIVE_AESTHETIC]], dtype=torch.float32)
    return {"context": torch.cat([cond, uncond]), "pooled": torch.cat([cond_pooled, uncond_pooled]),
            "time_ids": time_ids}


def base_conditioning(base, case):
    """Exactly what make_sdxl_kdiffusion_goldens.run_case builds."""
    h, w = case["height"], case["width"]
    cond, cond_pooled, uncond, uncond_pooled = kd.conditioning(base, case["prompt"], case["negative"])
    time_ids = torch.tensor([[h, w, 0, 0, h, w]] * 2, dtype=torch.float32)
    return {"context": torch.cat([cond, uncond]), "pooled": torch.cat([cond_pooled, uncond_pooled]),
            "time_ids": time_ids}


# ---------------------------------------------------------------------------------------------------------
# The switching CFG denoiser (CFGDenoiser.forward with apply_refiner at its start)

class RefinerSwitch:
    def __init__(self, base_model, base_cond, refiner_model, refiner_cond, cfg, switch_at):
        self.denoisers = {"base": kd.cfg_denoiser(base_model, base_cond, cfg),
                          "refiner": kd.cfg_denoiser(refiner_model, refiner_cond, cfg)}
        self.tables = {"base": base_model.sigmas, "refiner": refiner_model.sigmas}
        self.switch_at = switch_at
        self.current = "base"
        self.switch_call = None
        self.sigmas, self.timesteps, self.ratios, self.models = [], [], [], []

    def __call__(self, x, sigma):
        # apply_refiner: the table of the model loaded now (the base's until the switch; the same bits after).
        timestep = torch.argmin(torch.abs(self.tables[self.current] - torch.max(sigma)))
        completed_ratio = (999 - timestep) / 1000
        assert completed_ratio.dtype == torch.float32
        keep = bool(completed_ratio < self.switch_at)
        assert keep == bool(completed_ratio < torch.tensor(self.switch_at, dtype=torch.float32))
        if not keep and self.current == "base":
            self.current = "refiner"
            self.switch_call = len(self.models)
        self.sigmas.append(sigma.item())
        self.timesteps.append(int(timestep))
        self.ratios.append(completed_ratio.item())
        self.models.append(self.current)
        return self.denoisers[self.current](x, sigma)


def call_plan(sampler, sigmas):
    """(step, evaluation within the step, sigma) of every denoiser call k_diffusion 0.0.16 makes."""
    s = sigmas.tolist()
    plan = []
    for i in range(len(s) - 1):
        plan.append((i, 0, s[i]))
        if sampler == "heun" and s[i + 1] != 0:
            plan.append((i, 1, s[i + 1]))
    return plan


def run_switch(base, refiner, base_model, refiner_model, case, switch_at):
    h, w = case["height"], case["width"]
    f = base.vae_scale_factor
    sigmas = kd.case_sigmas(base_model, case)
    gen = torch.Generator().manual_seed(case["seed"])
    x = torch.randn((1, 4, h // f, w // f), generator=gen) * sigmas[0]
    den = RefinerSwitch(base_model, base_conditioning(base, case), refiner_model, refiner_conditioning(refiner, case),
                        case["cfg"], switch_at)
    counters = {"base": kd.CallCounter(), "refiner": kd.CallCounter()}
    handles = [base.unet.register_forward_pre_hook(counters["base"], with_kwargs=True),
               refiner.unet.register_forward_pre_hook(counters["refiner"], with_kwargs=True)]
    try:
        with torch.no_grad():
            latent = kd.run_sampler(case["sampler"], den, x, sigmas, gen)
    finally:
        for hd in handles:
            hd.remove()
    plan = call_plan(case["sampler"], sigmas)
    calls = len(den.models)
    assert calls == len(plan) and den.sigmas == [p[2] for p in plan], (case["name"], den.sigmas, plan)
    n_base = den.switch_call if den.switch_call is not None else calls
    assert den.models == ["base"] * n_base + ["refiner"] * (calls - n_base)
    assert counters["base"].n == n_base and counters["refiner"].n == calls - n_base, case["name"]
    return latent.contiguous(), sigmas, den, plan


def all_cases(base, refiner):
    base_model = K.external.CompVisDenoiser(kd.SdxlEpsModel(base.unet), quantize=False)
    refiner_model = K.external.CompVisDenoiser(kd.SdxlEpsModel(refiner.unet), quantize=False)
    kd.check_sigmas(base_model)
    assert torch.equal(base_model.sigmas, refiner_model.sigmas)
    assert torch.equal(base_model.log_sigmas, refiner_model.log_sigmas)
    tensors, meta, latents = {}, versions(), {}
    for case in CASES:
        name, h, w = case["name"], case["height"], case["width"]
        switch_at = case["refiner_switch_at"]
        latent, sigmas, den, plan = run_switch(base, refiner, base_model, refiner_model, case, switch_at)
        k = den.switch_call
        assert k is not None and 0 < k < len(den.models), (name, k, "each model must make at least one call")
        assert torch.isfinite(latent).all() and latent.shape == (1, 4, h // 2, w // 2), name
        step, which, _ = plan[k]
        if case["sampler"] == "heun":
            # The switch lands between the two evaluations of one step (see the docstring).
            assert which == 1 and plan[k - 1][:2] == (step, 0), (name, plan[k - 1], plan[k])
        # Ablations: never switching is make_sdxl_kdiffusion_goldens' base loop, bit for bit, and differs from the
        # case; the refiner alone (switch at call 0) differs too.
        base_only = run_switch(base, refiner, base_model, refiner_model, case, NEVER)[0]
        ref = kd.run_case(base, base_model, case)[0]
        assert torch.equal(base_only, ref), (name, "the switching loop without a switch is not kd.run_case")
        refiner_only, _, den0, _ = run_switch(base, refiner, base_model, refiner_model, case, 0.0)
        assert den0.switch_call == 0
        d_base = (base_only - latent).abs().max().item()
        d_ref = (refiner_only - latent).abs().max().item()
        assert d_base > 1e-3 * latent.std().item() and d_ref > 1e-3 * latent.std().item(), (name, d_base, d_ref)
        image = sx.decode_as_pipeline(refiner, latent)
        assert torch.equal(image, sx.decode_as_pipeline(base, latent)), "the two VAEs decode differently"
        assert image.shape == (h, w, 3) and image.dtype == torch.uint8, name
        ref_c = refiner_conditioning(refiner, case)
        params = {k_: case[k_] for k_ in ("name", "prompt", "negative", "steps", "cfg", "seed", "width", "height",
                                          "sampler", "schedule")}
        params["zero_negative"] = case["negative"] == ""
        params["time_ids"] = [float(h), float(w), 0.0, 0.0, float(h), float(w)]
        params["sigmas"] = sigmas.tolist()
        params.update(refiner_switch_at=switch_at, switch_call=k, calls=len(den.models),
                      switch_sigma=den.sigmas[k], switch_timestep=den.timesteps[k],
                      switch_completed_ratio=den.ratios[k], call_sigmas=den.sigmas, call_timesteps=den.timesteps,
                      refiner_time_ids=ref_c["time_ids"].tolist(), refiner_aesthetic_score=AESTHETIC,
                      refiner_negative_aesthetic_score=NEGATIVE_AESTHETIC, refiner_folder=REFINER_FOLDER)
        tensors[f"{name}.latent"] = latent
        tensors[f"{name}.image"] = image.contiguous()
        tensors[f"{name}.sigmas"] = sigmas.clone().contiguous()
        meta[f"{name}.params"] = json.dumps(params)
        latents[name] = latent
        print(f"  {name:22s} {case['sampler']:8s} {case['schedule']:9s} {w}x{h} switch at {switch_at}: "
              f"call {k} of {len(den.models)} (step {step}, evaluation {which} of it), sigma {den.sigmas[k]:.6g}, "
              f"timestep {den.timesteps[k]}, ratio {den.ratios[k]:.6g} (previous call ratio "
              f"{den.ratios[k - 1]:.6g})")
        print(f"  {'':22s} latent mean {latent.mean().item():.4f} std {latent.std().item():.4f} max|.| "
              f"{latent.abs().max().item():.4f}; image mean {image.float().mean().item():.1f} std "
              f"{image.float().std().item():.1f}; max |latent - base alone| {d_base:.4f}, - refiner alone "
              f"{d_ref:.4f}")
        print(f"  {'':22s} call ratios {[round(r, 4) for r in den.ratios]}")
        near = [r for r in den.ratios if abs(r - switch_at) < 1e-6]
        if near:
            print(f"  {'':22s} NOTE: a completed_ratio equals the switch value ({near}): float32 comparison decides")
    sx.assert_all_differ(latents)
    return tensors, meta


def main():
    start = time.perf_counter()
    torch.set_num_threads(1)  # as make_sdxl_kdiffusion_goldens.py: the bits depend on the thread count
    kd.check_prompts(CASES)
    base = StableDiffusionXLPipeline.from_pretrained(kd.FOLDER, torch_dtype=torch.float32, add_watermarker=False)
    refiner = StableDiffusionXLImg2ImgPipeline.from_pretrained(rg.REFINER, torch_dtype=torch.float32,
                                                               add_watermarker=False)
    for p in (base, refiner):
        p.set_progress_bar_config(disable=True)
        assert p.vae_scale_factor == 2 and p.vae.config.scaling_factor == 0.13025
    assert refiner.text_encoder is None and refiner.unet.config.cross_attention_dim == 48
    assert refiner.unet.config.projection_class_embeddings_input_dim == 40 + 5 * 8
    for comp in ("vae", "text_encoder_2"):
        a, b = getattr(base, comp).state_dict(), getattr(refiner, comp).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), comp
    print("refiner switch cases:", "stubbed " + "; ".join(kd.STUBBED) if kd.STUBBED else "nothing stubbed")
    tensors, meta = all_cases(base, refiner)
    sx.save(GOLDEN, tensors, meta)
    print(f"took {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
