#!/work/refvenv/bin/python
"""ControlNet goldens in AUTOMATIC1111 semantics: how the sd-webui-controlnet extension applies a unit's guidance
window and its control mode ("Balanced", "My prompt is more important", "ControlNet is more important") during
k-diffusion sampling, restated here in our own code on the tiny SD 1.x model and ControlNet sd1_a.

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline, after
make_pipeline_goldens.py and make_controlnet_goldens.py (it reads their files and changes nothing in them):

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_controlnet_a1111_goldens.py

About 15 s on an idle two-core machine, one torch thread (every run writes the same bytes), ~0.6 GB resident.
Writes tests/golden/data/controlnet_a1111_cases.safetensors. Versions: torch 2.4.1 (CPU), diffusers 0.30.3,
transformers 4.40.2, k-diffusion 0.0.16; everything float32 on the CPU on the fp16-rounded weights.

No code of the extension or of the web UI is in this file: the rules below were read from their sources and are
restated as formulas, and the loop is written against k-diffusion's public samplers.

What the sources say
====================
Read: Mikubill/sd-webui-controlnet at commit 56cec5b2958edf3b1807b7e7b2b1b5186dbd2f81 (2024-07-25, "fix version
parsing (#3016)"): scripts/hook.py (UnetHook.guidance_schedule_handler, UnetHook.hook and its inner forward,
ControlParams, aligned_adding, unmark_prompt_context), scripts/controlnet.py (Script.controlnet_main_entry where
ControlParams are built; Script.detectmap_proc; get_pytorch_control), scripts/enums.py (ControlMode),
internal_controlnet/args.py (ControlNetUnit fields), scripts/cldm.py (ControlNet.forward). And AUTOMATIC1111's
stable-diffusion-webui: modules/sd_samplers_cfg_denoiser.py (CFGDenoiser.forward, version 029adbe5),
modules/sd_samplers_common.py (Sampler.callback_state, Sampler.launch_sampling, SamplerData.total_steps,
setup_img2img_steps; version 044494d9), modules/sd_samplers_kdiffusion.py (KDiffusionSampler.sample and
sample_img2img; versions 01a40c62 and 7f200512 agree, as do later ones).

1. The guidance window: when a unit is active
---------------------------------------------
- The extension registers UnetHook.guidance_schedule_handler with script_callbacks.on_cfg_denoiser. The web UI
  calls that callback in CFGDenoiser.forward, once per denoiser call (one call = one UNet batch holding the cond
  and uncond rows; both rows therefore share one decision), before the UNet runs, with
  CFGDenoiserParams(..., sampling_step = state.sampling_step, total_sampling_steps = state.sampling_steps, ...).
- For every unit: current_sampling_percent = sampling_step / total_sampling_steps (Python floats), and
      guidance_stopped = (percent < guidance_start) or (percent > guidance_end),
  i.e. the unit is ACTIVE iff  guidance_start <= sampling_step / total_sampling_steps <= guidance_end  (both ends
  inclusive). A stopped unit adds nothing (its ControlNet is not run).
- state.sampling_steps and state.sampling_step: Sampler.launch_sampling(steps, ...) sets sampling_steps = steps
  and sampling_step = 0; Sampler.callback_state(d) sets sampling_step = d["i"]. k-diffusion calls the callback
  once per step, right AFTER the step's first model call (sample_euler, sample_heun, sample_dpm_2,
  sample_dpmpp_2s_ancestral, ... in k_diffusion/sampling.py), so a model call never sees its own step index
  before the callback has run:
      step i's first model call sees   s = i - 1  (i >= 1),  s = 0 at i = 0;
      step i's second model call (Heun, DPM2, DPM++ 2S a, DPM++ SDE, when sigma[i + 1] > 0) sees  s = i.
  With N steps percent runs 0, 0, 1/N, ..., (N-1)/N: it never reaches 1, the first two model calls both see 0.
- The total is the number of steps that RUN, never doubled: txt2img KDiffusionSampler.sample calls
  launch_sampling(steps); img2img sample_img2img calls launch_sampling(t_enc + 1) on the shortened schedule
  sigmas[steps - t_enc - 1:], t_enc = int(min(denoising_strength, 0.999) * steps) (setup_img2img_steps; with
  img2img_fix_steps on, steps is raised to int(steps / min(strength, 0.999)) and t_enc = requested - 1, again
  t_enc + 1 steps run), and the sampling_step counts from 0 within it. SamplerData.total_steps (x2 for
  "second_order" samplers) only feeds CFGDenoiser.total_steps (refiner switch, skip_early_cond), not this.
  A hires-fix second pass calls launch_sampling again: its own steps, from 0.
- Compare diffusers: keep = 1 - (i / N < start or (i + 1) / N > end) per step i, no lag, end exclusive-ish. For
  N = 8, start 0.25, end 0.75 diffusers acts at steps 2..5, A1111 at steps 3..7 (see the tables below).

2. Control modes (scripts/enums.py ControlMode, in this order: BALANCED "Balanced" = 0, PROMPT "My prompt is more
   important" = 1, CONTROL "ControlNet is more important" = 2)
-----------------------------------------------------------------------------------------------------------------
ControlParams gets  soft_injection = (control_mode != BALANCED)  and  cfg_injection = (control_mode == CONTROL)
(scripts/controlnet.py). In the hooked UNet forward (hook.py), for each active ControlNet unit:
- control = the ControlNet's outputs in order: the down residuals (one per zero conv: 12 for SD 1.x, 9 for SDXL)
  then the mid residual (middle_block_out) LAST. The ControlNet runs on the whole batch (x * c_in, the float t,
  the batch's own context, the hint repeated per row), uncond rows included.
- control_scales = [weight] * 13 (SD 1.x) or * 10 (SDXL): weight = the unit's "Control Weight".
- cfg_injection (mode 2; also forced for models whose config sets global_average_pooling, i.e. shuffle): every
  residual is multiplied by cond_mark, a [B, 1, 1, 1] tensor that is 1 for the rows of the positive prompt and 0
  for the rows of the negative prompt (hook.py unmark_prompt_context: the extension marks the prompts in
  process.sample). So the uncond half gets NO residual at all (the UNet runs plain there), the cond half gets
  the scaled residuals.
- soft_injection (modes 1 and 2): control_scales = [weight * 0.825 ** float(12 - i) for i in 0..12]; for SDXL
  the list is then cut to its first 10 entries (i = 0..9). (In a hires-fix pass canny and mlsd preprocessors
  force soft injection. advanced_weighting, when given, replaces control_scales altogether.)
- Then residual_i = control_i * control_scales_i over zip(control, control_scales) (zip stops at the shorter),
  times the effective-region mask if any, then (global_average_pooling only) mean over H and W.
- So residual i (0-based over the ControlNet's output list, down residuals first, mid last) is scaled by
      Balanced (0):  weight                              on both halves
      Prompt   (1):  weight * 0.825 ** (12 - i)          on both halves
      Control  (2):  weight * 0.825 ** (12 - i)          on the cond half;  0 on the uncond half
  For SD 1.5 (13 residuals): the mid block gets weight * 1.0, down residual 0 (conv_in) weight * 0.825 ** 12 =
  0.0992 * weight, down residual 11 weight * 0.825. For SDXL (10): the mid block gets weight * 0.825 ** 3 =
  0.5615 * weight, down residual 0 weight * 0.825 ** 12.
- Several units: each unit's list, already scaled (and masked) by its own weights, is added into one running
  total per residual (total_controlnet_embedding[i] = unit residual + total[i]); the sum is formed AFTER the
  per-unit weights. The UNet adds the total mid residual to the middle block's output and total[k] to the skip
  connection it pairs with (aligned_adding; nearest-resized first if the sizes differ), as diffusers does.
- The tiny model here has 10 residuals (9 down + mid). zip gives them control_scales[0..9], i.e. residual i gets
  0.825 ** (12 - i) (mid = i 9: 0.825 ** 3, as for SDXL). That is what this script uses ("the weight vector"
  in the params). (The extension's own UNet hook could not run this model at all: for a non-SDXL UNet it keeps
  13 slots and pops the mid residual from slot 12, which a 10-output ControlNet leaves at 0; the restatement
  adds residual i where diffusers adds it.) An implementation that instead anchors the mid block at exponent 0
  for every family (0.825 ** (N - 1 - i)) agrees with the extension on SD 1.5 only, not on SDXL or here.

3. Balanced txt2img versus diffusers
------------------------------------
At Balanced, per model call, the extension's residuals are diffusers' (controlnet_conditioning_scale = weight,
guess_mode False): each residual times weight, both halves, the ControlNet fed the UNet's own input x * c_in,
timestep and context, and the hint = the control image / 255 in [0, 1], RGB, CHW (get_pytorch_control), the
same for both rows. The differences:
- the window rule above (the only one in these cases);
- the hint of an image of another size: Script.detectmap_proc resizes with cv2 (high_quality_resize:
  INTER_NEAREST for 3..199 colours, INTER_AREA when shrinking, INTER_CUBIC when growing; binary maps
  re-thresholded (Otsu) and one-pixel edges thinned), in the unit's resize mode (default "Crop and Resize":
  scale by max(h / H0, w / W0), centre crop; "Resize and Fill"; "Just Resize"), not PIL LANCZOS. At the same
  size every mode is the identity: control_a.png is 32x32, the image size here;
- global_average_pooling (shuffle ControlNets, from the model's config): residuals averaged over H and W, and
  cfg injection forced; the effective region mask; advanced_weighting. None applies here.
So a Balanced unit with a full window (0..1) in k-diffusion sampling is diffusers' ControlNet maths applied at
every model call; a1111_balanced below is that case.

The restatement
===============
Model: make_lora_goldens.build_sd1() (tests/golden/data/pipeline_sd1: our folder reader, ZeroedAttnProcessor),
its tokenizer and text encoder; prompts encoded as make_pipeline_goldens.encode (CLIP last_hidden_state, BOS +
tokens + EOS padded to 77 with EOS; an empty negative encoded like any text, SD 1.x). ControlNet:
tests/golden/data/controlnet/sd1_a (ControlNetModel.from_pretrained, float32, ZeroedAttnProcessor as
make_controlnet_goldens.attach). Control image: controlnet/control_a.png (32x32), / 255, CHW, both rows.
Loop (k-diffusion mode of easel, as make_pipeline_goldens.py): K.external.CompVisDenoiser(quantize=False) over
make_pipeline_goldens.LdmWrapper's alphas_cumprod (scaled-linear betas in float64, cumprod, float32); our
wrapper's apply_model(x, t, cond) runs the ControlNet (when the unit is active) and the UNet with its residuals;
sigmas = CompVisDenoiser.get_sigmas(8) ("automatic"); noise torch.randn([1, 4, 16, 16],
generator=torch.Generator().manual_seed(seed)) * sigmas[0]; CFG as A1111's CFGDenoiser: one batch [cond,
uncond], denoised = u + (c - u) * cfg; before each batch the window decision from a restated state
(sampling_steps = steps, sampling_step = 0 at the start, sampling_step = i in the k-diffusion callback).
Samplers: k_diffusion.sampling.sample_euler / sample_heun (s_churn 0).

Cases (8 steps, CFG 7, seed 611, 32x32, prompt "a small green triangle on the left", negative "blue"; unit sd1_a
on control_a):
  a1111_balanced  Balanced, weight 1.0, window 0..1 (every call active): the reference the others are measured from
  a1111_window    Balanced, weight 1.0, start 0.25, end 0.75: active at steps 3..7 (percent 0.25..0.75);
                  diffusers' rule would act at steps 2..5
  a1111_window_early  Balanced, weight 1.0, start 0, end 0.1: active at steps 0 and 1 (both see sampling_step
                  0, percent 0: the lag); diffusers' rule acts at no step at all ((0 + 1) / 8 > 0.1). Added because
                  the tiny model's image is set by its first steps: there the two window rules differ by ~6 levels,
                  while in a1111_window and a1111_cn_heun (late steps) they differ by under 1 level in the image
                  (0.6 and 0.7; 0.27 in the latent, far above the tests' latent tolerance). (End 0.2 would act at
                  steps 0..2, 2.5 levels from diffusers' rule but only 0.8 from the full window.)
  a1111_prompt    "My prompt is more important", weight 1.0, window 0..1
  a1111_cn        "ControlNet is more important", weight 0.8, window 0..1 (weight times the soft scales, cond half)
  a1111_cn_heun   "ControlNet is more important", weight 1.0, window 0.2..0.8, Heun: 15 model calls; active at the
                  calls whose sampling_step is 2..6 (the second call of step 2 through the single call of step 7)
Each case's mean |image - reference| (levels of 255) is measured against the Balanced, full-window run with the
same sampler and weight (a1111_balanced for the Euler cases at weight 1; unsaved runs otherwise), and asserted
> MIN_MEAN_DIFF (1 level).

File: tests/golden/data/controlnet_a1111_cases.safetensors
    <case>.latent  float32 [1, 4, 16, 16]  the sampler's final x (not divided by the scaling factor)
    <case>.image   uint8 [1, 3, 32, 32]    vae.decode(latent / scaling_factor), round(clamp(x / 2 + 0.5) * 255),
                                           CHW RGB (as make_pipeline_goldens.py / make_controlnet_goldens.py)
    metadata <case>.params (JSON): the fields tests/common/golden_case.h case_params reads (prompt, negative,
      steps, cfg, seed, sampler "euler" | "heun", schedule "automatic") plus model "sd1", folder "pipeline_sd1",
      width, height, control_mode (0 | 1 | 2), control_mode_name, start, end, weight, controlnets [{name, file,
      image, scale (= weight), start, end, control_mode}], residual_weights (cond row, per residual, down first,
      mid last; computed in double, applied as float32 multipliers), uncond_residual_weights, sigmas, calls
      (per model call: call, step, stage (0 first call of the step, 1 second), sigma (the sigma passed to the
      denoiser), sampling_step, percent, active, weights [cond row list, uncond row list] or null when inactive),
      active_calls (count), diffusers_keep (diffusers' per-step rule for the same window, for comparison),
      reference, mean_abs_image_diff_vs_reference, mean_abs_latent_diff_vs_reference,
      mean_abs_image_diff_vs_no_controlnet, and for the windowed cases mean_abs_image_diff_vs_diffusers_window_rule
      and mean_abs_latent_diff_vs_diffusers_window_rule (the same
      unit acting at every call of the steps diffusers' keep selects instead: an unsaved run).
    metadata also: script, git, versions, cases (names in order), extension_commit, rules (JSON: the formulas
      above), checks (JSON list of what was asserted, with the numbers).

Checks (asserted on every run): without a unit this loop reproduces make_pipeline_goldens.py's "euler" and
"heun" cases (pipeline_sd1_cases.safetensors; the same UNet, prompts, schedule and noise) within 1e-3 in the
latent; the call tables recorded by the callback-driven state equal the closed form (first call of step i sees
max(i - 1, 0), second call i); Euler makes 8 model calls and Heun 15; in mode 2 the uncond row of the UNet's
output at the first active call equals the plain UNet on that row and the cond row equals the UNet on that row
with the soft-scaled residuals; every case differs from its reference by more than MIN_MEAN_DIFF; all latents
pairwise different and finite.
"""
import json
import os
import sys

import numpy as np
import PIL.Image
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import make_sdxl_kdiffusion_goldens as skd  # noqa: E402  (imports k_diffusion with its clip stand-in)
import make_pipeline_goldens as pg  # noqa: E402  (LdmWrapper, encode, WORDS)
import make_model_goldens as mg  # noqa: E402  (git_hash, ZeroedAttnProcessor)
import make_lora_goldens as lg  # noqa: E402  (build_sd1, save_goldens, OUT)
import make_sdxl_goldens as sg  # noqa: E402  (versions, assert_all_differ)
import safetensors_io  # noqa: E402

from diffusers import ControlNetModel  # noqa: E402

K = skd.K
OUT = lg.OUT
GOLDEN = os.path.join(OUT, "controlnet_a1111_cases.safetensors")
SCRIPT = "tools/reference/make_controlnet_a1111_goldens.py"
EXTENSION_COMMIT = "56cec5b2958edf3b1807b7e7b2b1b5186dbd2f81"
CN_FOLDER = "controlnet/sd1_a"
CONTROL_IMAGE = "controlnet/control_a.png"
MIN_MEAN_DIFF = 1.0  # levels of 255

BALANCED, PROMPT, CONTROL = 0, 1, 2
MODE_NAMES = {BALANCED: "Balanced", PROMPT: "My prompt is more important", CONTROL: "ControlNet is more important"}
SOFT_BASE = 0.825
SOFT_TOP = 12  # exponent of residual 0: 0.825 ** (12 - i)

_COMMON = dict(steps=8, cfg=7.0, seed=611, prompt="a small green triangle on the left", negative="blue")
CASES = [
    dict(name="a1111_balanced", sampler="euler", mode=BALANCED, weight=1.0, start=0.0, end=1.0, **_COMMON),
    dict(name="a1111_window", sampler="euler", mode=BALANCED, weight=1.0, start=0.25, end=0.75, **_COMMON),
    dict(name="a1111_window_early", sampler="euler", mode=BALANCED, weight=1.0, start=0.0, end=0.1, **_COMMON),
    dict(name="a1111_prompt", sampler="euler", mode=PROMPT, weight=1.0, start=0.0, end=1.0, **_COMMON),
    dict(name="a1111_cn", sampler="euler", mode=CONTROL, weight=0.8, start=0.0, end=1.0, **_COMMON),
    dict(name="a1111_cn_heun", sampler="heun", mode=CONTROL, weight=1.0, start=0.2, end=0.8, **_COMMON),
]


# ---------------------------------------------------------------------------------------------------------
# The extension's rules, restated

def unit_active(sampling_step, sampling_steps, start, end):
    """Active iff start <= sampling_step / sampling_steps <= end (the stop test is percent < start or > end)."""
    percent = sampling_step / sampling_steps
    return not (percent < start or percent > end)


def residual_weights(mode, weight, n):
    """Per residual (down residuals first, the mid one last; n of them): (cond row, uncond row) scales."""
    if mode == BALANCED:
        cond = [weight] * n
    else:
        assert n <= SOFT_TOP + 1, n
        cond = [weight * SOFT_BASE ** float(SOFT_TOP - i) for i in range(n)]
    uncond = [0.0] * n if mode == CONTROL else list(cond)
    return cond, uncond


def expected_sampling_steps(sampler, steps):
    """Closed form of the sampling_step each model call sees: (step, stage, sampling_step) per call."""
    out = []
    for i in range(steps):
        out.append((i, 0, max(i - 1, 0)))
        if sampler == "heun" and i < steps - 1:  # the last step goes to sigma 0: one call
            out.append((i, 1, i))
    return out


def diffusers_keep(steps, start, end):
    return [1.0 - float(i / steps < start or (i + 1) / steps > end) for i in range(steps)]


class WebUiState:
    """The two fields of the web UI's shared.state the extension reads."""

    def __init__(self):
        self.sampling_step = 0
        self.sampling_steps = 0

    def launch(self, steps):  # Sampler.launch_sampling
        self.sampling_steps = steps
        self.sampling_step = 0

    def callback(self, d):  # Sampler.callback_state
        self.sampling_step = d["i"]


# ---------------------------------------------------------------------------------------------------------
# The model with a ControlNet unit

class ControlledUnet(pg.LdmWrapper):
    """What CompVisDenoiser wraps: alphas_cumprod and apply_model(x, t, cond), here the UNet plus the residuals of
    the unit that the current denoiser call armed (self.armed: None, or (cond_weights, uncond_weights))."""

    def __init__(self, unet, controlnet, hint):
        super().__init__(unet)
        self.controlnet = controlnet
        self.hint = hint  # [1, 3, H, W] in [0, 1]
        self.armed = None

    def residuals(self, x, t, context, cond_w, uncond_w):
        rows = x.shape[0]
        assert rows == 2, "cond and uncond rows in one batch"
        hint = self.hint.repeat(rows, 1, 1, 1)
        down, mid = self.controlnet(x, t, encoder_hidden_states=context, controlnet_cond=hint, conditioning_scale=1.0,
                                    return_dict=False)
        outs = list(down) + [mid]
        assert len(outs) == len(cond_w)
        scaled = []
        for r, wc, wu in zip(outs, cond_w, uncond_w):
            scale = torch.tensor([wc, wu], dtype=r.dtype).view(rows, 1, 1, 1)
            scaled.append(r * scale)
        return scaled[:-1], scaled[-1]

    def apply_model(self, x, t, cond):
        if self.armed is None:
            return self.unet(x, t, encoder_hidden_states=cond).sample
        down, mid = self.residuals(x, t, cond, *self.armed)
        return self.unet(x, t, encoder_hidden_states=cond, down_block_additional_residuals=down,
                         mid_block_additional_residual=mid).sample


def a1111_denoiser(model, wrapper, cond, uncond, scale, unit, state, log):
    """CFGDenoiser: the on_cfg_denoiser decision for the unit, then one batch [cond, uncond]."""
    def f(x, sigma):
        armed = None
        entry = dict(call=len(log), sigma=float(sigma[0]), sampling_step=state.sampling_step,
                     percent=state.sampling_step / state.sampling_steps, active=False, weights=None)
        if unit is not None:
            if "per_call" in unit:  # a comparison run: the activity given per call (diffusers' rule)
                entry["active"] = bool(unit["per_call"][len(log)])
            else:
                entry["active"] = unit_active(state.sampling_step, state.sampling_steps, unit["start"], unit["end"])
            if entry["active"]:
                armed = residual_weights(unit["mode"], unit["weight"], unit["n"])
                entry["weights"] = [list(armed[0]), list(armed[1])]
        log.append(entry)
        wrapper.armed = armed
        try:
            out = model(torch.cat([x, x]), torch.cat([sigma, sigma]), cond=torch.cat([cond, uncond]))
        finally:
            wrapper.armed = None
        c, u = out.chunk(2)
        return u + (c - u) * scale
    return f


def sample(sampler, den, x, sigmas, state):
    cb = state.callback
    if sampler == "euler":
        return K.sampling.sample_euler(den, x, sigmas, callback=cb, disable=True)
    if sampler == "heun":
        return K.sampling.sample_heun(den, x, sigmas, callback=cb, disable=True)
    raise ValueError(sampler)


class Pipeline:
    def __init__(self):
        pipe, _ = lg.build_sd1()
        self.vae, self.tok, self.te = pipe.vae, pipe.tokenizer, pipe.text_encoder
        self.unet = pipe.unet
        cn = ControlNetModel.from_pretrained(os.path.join(OUT, CN_FOLDER), torch_dtype=torch.float32)
        cn.set_attn_processor(mg.ZeroedAttnProcessor())
        self.cn = cn.eval()
        img = np.asarray(PIL.Image.open(os.path.join(OUT, CONTROL_IMAGE)).convert("RGB"))
        assert img.shape == (32, 32, 3), img.shape
        self.hint = (torch.from_numpy(img.copy()).float() / 255.0).permute(2, 0, 1)[None].contiguous()
        self.wrapper = ControlledUnet(self.unet, self.cn, self.hint)
        self.model = K.external.CompVisDenoiser(self.wrapper, quantize=False)
        self.n_residuals = len(self.cn.controlnet_down_blocks) + 1

    def run(self, case, unit):
        """case: sampler, steps, cfg, seed, prompt, negative; unit: None or dict(mode, weight, start, end)."""
        with torch.no_grad():
            cond, uncond = pg.encode(self.tok, self.te, case["prompt"]), pg.encode(self.tok, self.te, case["negative"])
            sigmas = self.model.get_sigmas(case["steps"])
            g = torch.Generator().manual_seed(case["seed"])
            x = torch.randn((1, 4, 16, 16), generator=g) * sigmas[0]
            state, log = WebUiState(), []
            if unit is not None:
                unit = dict(unit, n=self.n_residuals)
            den = a1111_denoiser(self.model, self.wrapper, cond, uncond, case["cfg"], unit, state, log)
            state.launch(case["steps"])
            x0 = sample(case["sampler"], den, x, sigmas, state)
            img = self.vae.decode(x0 / self.vae.config.scaling_factor).sample
            img8 = ((img / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
        assert torch.isfinite(x0).all()
        return x0.contiguous(), img8.contiguous(), log, sigmas


def unit_of(case, mode=None, start=None, end=None):
    return dict(mode=case["mode"] if mode is None else mode, weight=case["weight"],
                start=case["start"] if start is None else start, end=case["end"] if end is None else end)


def diffusers_rule_unit(case):
    """The case's unit with diffusers' window rule instead (per step, every call of the step)."""
    keep = diffusers_keep(case["steps"], case["start"], case["end"])
    per_call = [keep[i] > 0 for i, _, _ in expected_sampling_steps(case["sampler"], case["steps"])]
    return dict(unit_of(case), per_call=per_call)


# ---------------------------------------------------------------------------------------------------------
# Checks

def check_plain_loop(p, checks):
    """Without a unit the loop is make_pipeline_goldens.py's (its euler and heun cases)."""
    golden = safetensors_io.load_file(os.path.join(OUT, "pipeline_sd1_cases.safetensors"))
    meta = safetensors_io.load_metadata(os.path.join(OUT, "pipeline_sd1_cases.safetensors"))
    for name in ("euler", "heun"):
        j = json.loads(meta[f"{name}.params"])
        case = dict(sampler=j["sampler"], steps=j["steps"], cfg=j["cfg"], seed=j["seed"], prompt=j["prompt"],
                    negative=j["negative"])
        assert j["schedule"] == "automatic" and j["strength"] is None
        lat, img, log, _ = p.run(case, None)
        ref = torch.from_numpy(golden[f"{name}.latent"].copy())
        d = (lat - ref).abs().max().item()
        di = (img.int() - torch.from_numpy(golden[f"{name}.image"].copy()).int()).abs().max().item()
        print(f"plain loop vs pipeline_sd1_cases {name}: max |latent diff| {d:.2e}, max |image diff| {di}")
        assert d < 1e-3 and di <= 1, (name, d, di)
        checks.append(f"no unit: make_pipeline_goldens {name} reproduced (max |latent diff| {d:.2e}, image {di})")


def check_cfg_injection(p, case, checks):
    """Mode 2 at the first call: the uncond row is the plain UNet, the cond row the UNet with soft residuals."""
    with torch.no_grad():
        cond, uncond = pg.encode(p.tok, p.te, case["prompt"]), pg.encode(p.tok, p.te, case["negative"])
        sigmas = p.model.get_sigmas(case["steps"])
        x = torch.randn((1, 4, 16, 16), generator=torch.Generator().manual_seed(case["seed"])) * sigmas[0]
        c_out, c_in = [k.view(-1, 1, 1, 1) for k in p.model.get_scalings(sigmas[:1])]
        t = p.model.sigma_to_t(sigmas[:1])
        xi = x * c_in
        cw, uw = residual_weights(CONTROL, case["weight"], p.n_residuals)
        p.wrapper.armed = (cw, uw)
        both = p.wrapper.apply_model(torch.cat([xi, xi]), torch.cat([t, t]), torch.cat([cond, uncond]))
        p.wrapper.armed = None
        plain_u = p.unet(xi, t, encoder_hidden_states=uncond).sample
        down, mid = p.cn(xi, t, encoder_hidden_states=cond, controlnet_cond=p.hint, conditioning_scale=1.0,
                         return_dict=False)
        outs = [r * w for r, w in zip(list(down) + [mid], cw)]
        soft_c = p.unet(xi, t, encoder_hidden_states=cond, down_block_additional_residuals=outs[:-1],
                        mid_block_additional_residual=outs[-1]).sample
    du = (both[1:] - plain_u).abs().max().item()
    dc = (both[:1] - soft_c).abs().max().item()
    print(f"cfg injection: uncond row vs plain UNet {du:.2e}, cond row vs UNet + soft residuals {dc:.2e}")
    assert du < 1e-5 and dc < 1e-5, (du, dc)
    checks.append(f"mode 2, first call: uncond row = plain UNet (max diff {du:.1e}), cond row = UNet + soft-scaled "
                  f"residuals (max diff {dc:.1e})")


def check_calls(case, log):
    exp = expected_sampling_steps(case["sampler"], case["steps"])
    assert len(log) == len(exp) == {"euler": case["steps"], "heun": 2 * case["steps"] - 1}[case["sampler"]], len(log)
    for entry, (i, stage, s) in zip(log, exp):
        assert entry["sampling_step"] == s, (case["name"], entry, s)
        entry["step"], entry["stage"] = i, stage
        assert entry["active"] == unit_active(s, case["steps"], case["start"], case["end"])


def table(log):
    return " ".join(f"{e['step']}{'ab'[e['stage']]}:{e['sampling_step']}{'+' if e['active'] else '-'}" for e in log)


# ---------------------------------------------------------------------------------------------------------

def main():
    torch.set_num_threads(1)
    for case in CASES:
        for text in (case["prompt"], case["negative"]):
            assert all(w in pg.WORDS for w in text.replace(",", " ").split()), text
    p = Pipeline()
    checks = []
    check_plain_loop(p, checks)
    check_cfg_injection(p, CASES[3], checks)

    tensors, meta, latents = {}, {}, {}
    refs, plain = {}, {}
    for case in CASES:
        key = (case["sampler"], case["weight"])
        if key not in refs:
            refs[key] = p.run(case, unit_of(case, mode=BALANCED, start=0.0, end=1.0))
        if case["sampler"] not in plain:
            plain[case["sampler"]] = p.run(case, None)
        lat, img, log, sigmas = p.run(case, unit_of(case))
        check_calls(case, log)
        ref_lat, ref_img, _, _ = refs[key]
        ref_name = ("a1111_balanced" if key == ("euler", 1.0)
                    else f"(unsaved) Balanced, window 0..1, {key[0]}, weight {key[1]}")
        diff = (img.float() - ref_img.float()).abs().mean().item()
        lat_diff = (lat - ref_lat).abs().mean().item()
        diff_plain = (img.float() - plain[case["sampler"]][1].float()).abs().mean().item()
        is_ref = case["name"] == "a1111_balanced"
        if is_ref:
            assert torch.equal(lat, ref_lat)
            assert diff_plain > MIN_MEAN_DIFF, diff_plain
        else:
            assert diff > MIN_MEAN_DIFF, (case["name"], diff)
        extra = {}
        if case["start"] > 0 or case["end"] < 1:
            d_lat, d_img, _, _ = p.run(case, diffusers_rule_unit(case))
            extra["mean_abs_image_diff_vs_diffusers_window_rule"] = round(
                (img.float() - d_img.float()).abs().mean().item(), 3)
            extra["mean_abs_latent_diff_vs_diffusers_window_rule"] = round((lat - d_lat).abs().mean().item(), 4)
            print(f"{case['name']}: mean |image - the same with diffusers' window rule| "
                  f"{extra['mean_abs_image_diff_vs_diffusers_window_rule']:.2f}, mean |latent diff| "
                  f"{extra['mean_abs_latent_diff_vs_diffusers_window_rule']:.3f}")
        cw, uw = residual_weights(case["mode"], case["weight"], p.n_residuals)
        active = sum(e["active"] for e in log)
        print(f"{case['name']:15s} {case['sampler']:5s} mode {case['mode']} w {case['weight']} "
              f"[{case['start']}, {case['end']}]: {active}/{len(log)} calls active; mean |image - reference| "
              f"{diff:.2f} (max {(img.float() - ref_img.float()).abs().max().item():.0f}), |latent diff| "
              f"{lat_diff:.3f}; vs no ControlNet {diff_plain:.2f}")
        print(f"{'':15s} calls (step, a/b = 1st/2nd call: sampling_step, +active): {table(log)}")
        tensors[f"{case['name']}.latent"] = lat
        tensors[f"{case['name']}.image"] = img
        latents[case["name"]] = lat
        unit_entry = dict(name="sd1_a", file=CN_FOLDER, image=CONTROL_IMAGE, scale=case["weight"],
                          start=case["start"], end=case["end"], control_mode=case["mode"])
        meta[f"{case['name']}.params"] = json.dumps(dict(
            name=case["name"], model="sd1", folder="pipeline_sd1", sampler=case["sampler"], schedule="automatic",
            steps=case["steps"], cfg=case["cfg"], seed=case["seed"], prompt=case["prompt"],
            negative=case["negative"], width=32, height=32, control_mode=case["mode"],
            control_mode_name=MODE_NAMES[case["mode"]], start=case["start"], end=case["end"],
            weight=case["weight"], controlnets=[unit_entry], residual_weights=cw, uncond_residual_weights=uw,
            sampling_steps=case["steps"], sigmas=[float(s) for s in sigmas], calls=log, active_calls=active,
            diffusers_keep=diffusers_keep(case["steps"], case["start"], case["end"]),
            reference=ref_name, mean_abs_image_diff_vs_reference=round(diff, 3),
            mean_abs_latent_diff_vs_reference=round(lat_diff, 4),
            mean_abs_image_diff_vs_no_controlnet=round(diff_plain, 3), **extra))
    sg.assert_all_differ(latents)
    checks.append("call tables: recorded sampling_step = max(i - 1, 0) for a step's first call, i for its second; "
                  "euler 8 calls, heun 15")
    checks.append(f"every case differs from its Balanced full-window reference by > {MIN_MEAN_DIFF} level")

    rules = dict(
        active="start <= sampling_step / sampling_steps <= end (stopped iff percent < start or percent > end)",
        sampling_step="step i: first model call sees max(i - 1, 0); second call of a 2-call step sees i",
        sampling_steps="the number of steps that run (txt2img: steps; img2img: t_enc + 1); not doubled for Heun",
        soft_injection="control_mode != 0: residual i scaled by weight * 0.825 ** (12 - i), i over the "
                       "ControlNet's outputs (down first, mid last), truncated to their number",
        cfg_injection="control_mode == 2: residuals multiplied by 1 on cond rows, 0 on uncond rows",
        balanced="control_mode == 0: every residual times weight, both rows",
        units="each unit's residuals scaled by its own weights, then summed")
    meta.update(sg.versions(SCRIPT))
    meta.update({"git": mg.git_hash(), "k_diffusion": "0.0.16", "cases": json.dumps([c["name"] for c in CASES]),
                 "extension_commit": EXTENSION_COMMIT, "rules": json.dumps(rules), "checks": json.dumps(checks),
                 "stubbed_modules": json.dumps(skd.STUBBED)})
    lg.save_goldens(tensors, meta, GOLDEN)


if __name__ == "__main__":
    main()
