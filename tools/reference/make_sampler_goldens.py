#!/usr/bin/python3
"""Writes tests/golden/data/sampler_kdiffusion.safetensors (schedules and full sampler loops from k-diffusion) and
sampler_diffusers.safetensors (diffusers-mode plans and loops; see diffusers_file below).

Run:  source /work/refenv/env.sh && /usr/bin/python3 tools/reference/make_sampler_goldens.py
(k-diffusion v0.0.16, the commit AUTOMATIC1111 pins, from /work/refenv; torch 1.13.1 from Debian).

Schedules ("sched/<name>/<steps>", float32):
  default, karras, exponential  - k-diffusion's CompVisDenoiser.get_sigmas / get_sigmas_karras /
                                  get_sigmas_exponential on SD's LDM schedule (alphas_cumprod built as the LDM code
                                  does: float64 betas and cumprod, stored float32).
  sgm_uniform, simple, ddim_uniform, ays - ComfyUI's schedulers. ComfyUI is not in the reference environment, so
                                  these are our own torch/numpy restatement of its definitions (comfy/samplers.py,
                                  comfy_extras/nodes_align_your_steps.py) on the same k-diffusion model sigmas.
  "model/sigmas", "model/alphas_cumprod": the 1000 training values; "model/sigma_to_t_in" -> "model/sigma_to_t"
  and "model/t_to_sigma_in" -> "model/t_to_sigma" from DiscreteSchedule.

Sampler loops ("run/<denoiser>/<sampler>/<schedule>", float32 [1,4,6,6], 12 steps): the final x of k-diffusion's
sample_* with the initial x = torch.randn(shape, generator=g) * sigmas[0], g = torch.Generator().manual_seed(SEED),
and every later noise draw torch.randn(shape, generator=g) from the same generator (passed as noise_sampler; for
the SDE samplers this replaces k-diffusion's default BrownianTreeNoiseSampler, see src/sampling/noise.h).
The sigmas each run used are stored under "sigmas/<schedule>". Denoisers (float32 torch; the C++ test has the same):
  gauss:  x0 = MU + (x - MU) * SD^2 / (sigma^2 + SD^2)        (the exact denoiser for N(MU, SD^2) data)
  tanh:   u = x / sqrt(sigma^2 + 1);  x0 = 0.8 * tanh(u + 0.3 * flip_w(u)) + 0.1 * u   (flip_w: reverse last dim)
"ddim" is k-diffusion sample_euler (ComfyUI's ddim); "lcm" is ComfyUI's sample_lcm restated here (not in
k-diffusion). "steps/tanh/euler_a/karras" holds x after each step; "lms_coeffs/karras" holds
linear_multistep_coeff(order=min(i+1, 4), sigmas, i, j) as [steps, 4] (0 where j >= order).
"""

import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from safetensors_io import save_file  # noqa: E402

from k_diffusion import external, sampling  # noqa: E402

OUT = os.path.join(HERE, "..", "..", "tests", "golden", "data", "sampler_kdiffusion.safetensors")
SEED = 20240607
SHAPE = [1, 4, 6, 6]  # 144 values: not a multiple of 16, so the torch RNG tail path is exercised too
STEPS = 12
MU, SD = 0.2, 0.5


class FakeLDM(torch.nn.Module):
    """Only what CompVisDenoiser reads: alphas_cumprod as ldm.models.diffusion.ddpm builds it."""

    def __init__(self):
        super().__init__()
        betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
        alphas_cumprod = np.cumprod(1.0 - betas.numpy(), axis=0)
        self.register_buffer("alphas_cumprod", torch.tensor(alphas_cumprod, dtype=torch.float32))


# ---- ComfyUI schedulers, restated (ComfyUI itself is not in the reference environment) ----
def comfy_sigma(model, t):
    t = torch.clamp(torch.as_tensor(t, dtype=torch.float32), min=0, max=len(model.sigmas) - 1)
    low, high, w = t.floor().long(), t.ceil().long(), t.frac()
    return ((1 - w) * model.log_sigmas[low] + w * model.log_sigmas[high]).exp()


def sgm_uniform(model, n):
    ts = torch.linspace(len(model.sigmas) - 1, 0, n + 1)[:-1]
    return torch.tensor([float(comfy_sigma(model, t)) for t in ts] + [0.0], dtype=torch.float32)


def simple(model, n):
    ss = len(model.sigmas) / n
    return torch.tensor([float(model.sigmas[-(1 + int(x * ss))]) for x in range(n)] + [0.0], dtype=torch.float32)


def ddim_uniform(model, n):
    sigs, x = [0.0], 1
    ss = max(len(model.sigmas) // n, 1)
    while x < len(model.sigmas):
        sigs.append(float(model.sigmas[x]))
        x += ss
    return torch.tensor(sigs[::-1], dtype=torch.float32)


AYS_SD1 = [14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092, 0.9642583904,
           0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582]


def ays(n):
    levels = list(AYS_SD1)
    if n + 1 != len(levels):
        xs = np.linspace(0, 1, len(levels))
        ys = np.log(levels[::-1])
        levels = np.exp(np.interp(np.linspace(0, 1, n + 1), xs, ys))[::-1].copy()
    levels[-1] = 0
    return torch.FloatTensor(levels)


def schedules(model, n):
    smin, smax = float(model.sigmas[0]), float(model.sigmas[-1])
    return {
        "default": model.get_sigmas(n),
        "karras": sampling.get_sigmas_karras(n, smin, smax),
        "exponential": sampling.get_sigmas_exponential(n, smin, smax),
        "sgm_uniform": sgm_uniform(model, n),
        "simple": simple(model, n),
        "ddim_uniform": ddim_uniform(model, n),
        "ays": ays(n),
    }


# ---- denoisers ----
def gauss(x, sigma):
    s = sigma.reshape(-1, 1, 1, 1)
    return MU + (x - MU) * (SD * SD) / (s * s + SD * SD)


def tanh_model(x, sigma):
    s = sigma.reshape(-1, 1, 1, 1)
    u = x / (s * s + 1) ** 0.5
    return 0.8 * torch.tanh(u + 0.3 * u.flip(-1)) + 0.1 * u


@torch.no_grad()
def sample_lcm(model, x, sigmas, noise_sampler, callback=None):
    """ComfyUI's sample_lcm for an eps-parameterised model (noise_scaling: latent + sigma * noise)."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in)
        if callback is not None:
            callback({"x": x, "i": i, "denoised": denoised})
        x = denoised
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * noise_sampler(sigmas[i], sigmas[i + 1])
    return x


def run(name, model, sigmas, record_steps=None):
    g = torch.Generator().manual_seed(SEED)
    x = torch.randn(SHAPE, generator=g) * sigmas[0]
    noise = lambda s, sn: torch.randn(SHAPE, generator=g)  # noqa: E731
    seen = []
    cb = (lambda d: seen.append(d["x"].clone())) if record_steps is not None else None
    kw = dict(disable=True, callback=cb)
    if name == "euler":
        out = sampling.sample_euler(model, x, sigmas, **kw)
    elif name == "ddim":
        out = sampling.sample_euler(model, x, sigmas, **kw)
    elif name == "euler_a":
        out = sampling.sample_euler_ancestral(model, x, sigmas, noise_sampler=noise, **kw)
    elif name == "heun":
        out = sampling.sample_heun(model, x, sigmas, **kw)
    elif name == "dpm2":
        out = sampling.sample_dpm_2(model, x, sigmas, **kw)
    elif name == "lms":
        out = sampling.sample_lms(model, x, sigmas, **kw)
    elif name == "dpm++2m":
        out = sampling.sample_dpmpp_2m(model, x, sigmas, **kw)
    elif name == "dpm++2m_sde":
        out = sampling.sample_dpmpp_2m_sde(model, x, sigmas, noise_sampler=noise, **kw)
    elif name == "dpm++sde":
        out = sampling.sample_dpmpp_sde(model, x, sigmas, noise_sampler=noise, **kw)
    elif name == "lcm":
        out = sample_lcm(model, x, sigmas, noise, callback=cb)
    else:
        raise ValueError(name)
    if record_steps is not None:
        record_steps.extend(seen[1:] + [out])
    return out


SAMPLERS = ["euler", "euler_a", "heun", "dpm2", "lms", "dpm++2m", "dpm++2m_sde", "dpm++sde", "ddim", "lcm"]


def main():
    torch.set_num_threads(1)
    model = external.CompVisDenoiser(FakeLDM())
    out = {
        "model/sigmas": model.sigmas.float(),
        "model/alphas_cumprod": model.inner_model.alphas_cumprod,
    }
    probe = torch.tensor([0.0292, 0.03, 0.1, 0.5, 1.0, 2.5, 7.0, 14.0, 14.6], dtype=torch.float32)
    out["model/sigma_to_t_in"] = probe
    out["model/sigma_to_t"] = model.sigma_to_t(probe)
    t_probe = torch.tensor([0.0, 0.5, 1.0, 10.25, 500.0, 998.5, 999.0], dtype=torch.float32)
    out["model/t_to_sigma_in"] = t_probe
    out["model/t_to_sigma"] = model.t_to_sigma(t_probe)

    for n in [1, 2, 3, 10, 12, 20, 30, 50]:
        for name, s in schedules(model, n).items():
            out[f"sched/{name}/{n}"] = s.float()

    sched12 = schedules(model, STEPS)
    for sname, sig in sched12.items():
        sig = sig.float()
        out[f"sigmas/{sname}"] = sig
        for name in SAMPLERS:
            out[f"run/tanh/{name}/{sname}"] = run(name, tanh_model, sig)
    for name in SAMPLERS:
        out[f"run/gauss/{name}/default"] = run(name, gauss, sched12["default"].float())

    steps = []
    run("euler_a", tanh_model, sched12["karras"].float(), record_steps=steps)
    out["steps/tanh/euler_a/karras"] = torch.stack(steps)

    sig = sched12["karras"].float().numpy()
    coeffs = np.zeros((STEPS, 4), dtype=np.float64)
    for i in range(STEPS):
        order = min(i + 1, 4)
        for j in range(order):
            coeffs[i, j] = sampling.linear_multistep_coeff(order, sig, i, j)
    out["lms_coeffs/karras"] = coeffs

    meta = {
        "script": "tools/reference/make_sampler_goldens.py",
        "torch": torch.__version__,
        "k_diffusion": "v0.0.16 ab527a9a6d347f364e3d185ba6d714e22d80cb3c",
        "seed": str(SEED),
        "shape": "x".join(map(str, SHAPE)),
        "steps": str(STEPS),
        "mu": repr(MU),
        "sd": repr(SD),
    }
    save_file(out, OUT, meta)
    print(f"wrote {OUT}: {len(out)} tensors, {os.path.getsize(OUT)} bytes")




# ---------------------------------------------------------------------------------------------------------------
# Diffusers mode: tests/golden/data/sampler_diffusers.safetensors
#
# diffusers v0.30.3 schedulers (from /work/refenv) run their own loop as the SD pipelines do:
#   latents = torch.randn(shape, generator=g) * scheduler.init_noise_sigma
#   for t in scheduler.timesteps: latents = scheduler.step(eps_model(scheduler.scale_model_input(latents, t), t),
#                                                           t, latents[, generator=g]).prev_sample
# with an analytic eps model:  eps = tanh(x_in * (0.5 + t / 2000) + 0.2 * flip_w(x_in)).
# Stored per case "<scheduler>/<spacing>[/karras]": plan sigmas, timesteps, init_noise_sigma (steps 12, 20, 25)
# and the final latents of the 12-step loop ("run/..."; UniPC and LCM also "run/.../<n>" for 1, 4 and 7 steps).
# DDIM (eta 0), PNDM (skip_prk_steps) with "leading" spacing and LCM store timesteps and init only (they have no
# sigma list).
# ---------------------------------------------------------------------------------------------------------------
SD_SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "clip_sample": False,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
}


def eps_model(x_in, t):
    t = torch.as_tensor(t).float()
    return torch.tanh(x_in * (0.5 + t / 2000) + 0.2 * x_in.flip(-1))


def diffusers_cases():
    import diffusers

    classes = {
        "euler": diffusers.EulerDiscreteScheduler,
        "euler_a": diffusers.EulerAncestralDiscreteScheduler,
        "heun": diffusers.HeunDiscreteScheduler,
        "lms": diffusers.LMSDiscreteScheduler,
        "dpm++2m": diffusers.DPMSolverMultistepScheduler,
        "unipc": diffusers.UniPCMultistepScheduler,  # SD defaults: bh2, order 2, lower_order_final, final zero
    }
    cases = [("ddim", diffusers.DDIMScheduler, "leading", False), ("pndm", diffusers.PNDMScheduler, "leading", False),
             ("lcm", diffusers.LCMScheduler, "leading", False)]  # LCM ignores the spacing
    for name in classes:
        for spacing in ["leading", "linspace", "trailing"]:
            for karras in [False, True]:
                if karras and name == "euler_a":
                    continue
                cases.append((name, classes[name], spacing, karras))
    return cases


def diffusers_file():
    import diffusers

    out = {}
    ac_ref = diffusers.EulerDiscreteScheduler.from_config(SD_SCHEDULER_CONFIG).alphas_cumprod
    out["alphas_cumprod"] = ac_ref.float()
    for name, cls, spacing, karras in diffusers_cases():
        cfg = dict(SD_SCHEDULER_CONFIG, timestep_spacing=spacing, use_karras_sigmas=karras)
        key = f"{name}/{spacing}" + ("/karras" if karras else "")
        for n in [12, 20, 25]:
            sched = cls.from_config(cfg)
            sched.set_timesteps(n)
            if name in ("ddim", "pndm", "lcm"):  # no sigma list: timesteps (PNDM's without its repeated entry) only
                out[f"plan/{key}/{n}/timesteps"] = torch.tensor(sched._timesteps, dtype=torch.float32).flip(0) \
                    if name == "pndm" else sched.timesteps.float()
                out[f"plan/{key}/{n}/init"] = torch.tensor([float(sched.init_noise_sigma)], dtype=torch.float32)
                continue
            sig = sched.sigmas.float()
            ts = sched.timesteps.float()
            if name == "heun":  # undo the interleaving: one entry per step, as our plan stores them
                sig = torch.cat([sig[:1], sig[1:-1:2], sig[-1:]])
                ts = torch.cat([ts[:1], ts[1::2]])
            out[f"plan/{key}/{n}/sigmas"] = sig
            out[f"plan/{key}/{n}/timesteps"] = ts
            out[f"plan/{key}/{n}/init"] = torch.tensor([float(sched.init_noise_sigma)], dtype=torch.float32)
        # UniPC and LCM also at 1, 4 and 7 steps (UniPC: order warm-up, the corrector's orders, lower_order_final).
        for n in [STEPS] + ([1, 4, 7] if name in ("unipc", "lcm") else []):
            sched = cls.from_config(cfg)
            sched.set_timesteps(n)
            g = torch.Generator().manual_seed(SEED)
            latents = torch.randn(SHAPE, generator=g) * sched.init_noise_sigma
            takes_generator = name in ("euler", "euler_a", "dpm++2m", "ddim", "lcm")
            for t in sched.timesteps:
                x_in = sched.scale_model_input(latents, t)
                eps = eps_model(x_in, t)
                kw = {"generator": g} if takes_generator else {}
                latents = sched.step(eps, t, latents, **kw).prev_sample
            out[f"run/{key}" + ("" if n == STEPS else f"/{n}")] = latents.float()
    meta = {
        "script": "tools/reference/make_sampler_goldens.py",
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "seed": str(SEED),
        "shape": "x".join(map(str, SHAPE)),
        "steps": str(STEPS),
        "config": repr(SD_SCHEDULER_CONFIG),
    }
    path = os.path.join(os.path.dirname(OUT), "sampler_diffusers.safetensors")
    save_file(out, path, meta)
    print(f"wrote {path}: {len(out)} tensors, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    if sys.argv[1:] == ["--diffusers-only"]:  # sampler_diffusers.safetensors alone
        diffusers_file()
    else:
        main()
        diffusers_file()
