#!/work/refvenv/bin/python
"""IP-Adapter guidance windows: an adapter that acts in part of the steps only, as AUTOMATIC1111's ControlNet
extension runs an IP-Adapter unit's Guidance Start / End in k-diffusion sampling (restated here, as
make_controlnet_a1111_goldens.py restates its ControlNet window), and as a diffusers user gets it (a step-end
callback that sets the adapters' scales with set_ip_adapter_scale, per diffusers' ControlNet window rule).

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline, after
make_pipeline_goldens.py and make_ip_adapter_goldens.py (it reads their files and changes nothing in them):

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_ip_adapter_window_goldens.py

A few seconds on an idle two-core machine, one torch thread (every run writes the same bytes). Writes
tests/golden/data/ip_adapter_window_cases.safetensors. Versions: torch 2.4.1 (CPU), diffusers 0.30.3,
transformers 4.40.2, k-diffusion 0.0.16; float32 on the CPU on the fp16-rounded weights.

No code of the extension or of the web UI is in this file: the rules below were read from their sources and are
restated as formulas.

What the sources say
====================
Read: Mikubill/sd-webui-controlnet at commit 56cec5b2958edf3b1807b7e7b2b1b5186dbd2f81 (2024-07-25):
scripts/ipadapter/plugable_ipadapter.py (PlugableIPAdapter.hook, which stores the unit's start and end as
p_start / p_end, and patch_forward's inner forward) and scripts/hook.py (UnetHook.guidance_schedule_handler).
- An IP-Adapter unit is a ControlParams like a ControlNet unit. guidance_schedule_handler, called by the web UI's
  on_cfg_denoiser callback before every denoiser call, sets model.current_sampling_percent = sampling_step /
  total_sampling_steps, the same number the ControlNet window reads (make_controlnet_a1111_goldens.py, section 1:
  a step's first model call sees the step before, 0 at the first step; a second call between two schedule sigmas
  sees its own step).
- In each hooked cross-attention the adapter returns 0 (adds nothing, on the cond and uncond rows alike) when
  current_sampling_percent < p_start or current_sampling_percent > p_end or its weight is 0; otherwise its
  decoupled attention times the weight. So it acts iff start <= percent <= end, both ends inclusive: the
  ControlNet rule.
- diffusers 0.30.3 has no IP-Adapter window. Its users switch an adapter off and on with set_ip_adapter_scale in a
  callback_on_step_end, which runs after step i and so sets the scale of step i + 1. The cases here use diffusers'
  ControlNet rule for that (keep = 1 - (i / N < start or (i + 1) / N > end) for step i of N), the scale of step 0
  set before the call. At scale 0 IPAdapterAttnProcessor2_0 skips the adapter's attention.

Cases (tiny SD 1.x of tests/golden/data/pipeline_sd1, 32x32; adapters and images of tests/golden/data/ip_adapter)
----------------------------------------------------------------------------------------------------------------
  k-diffusion, A1111's rule (K.external.CompVisDenoiser(quantize=False) over make_pipeline_goldens.LdmWrapper,
  sigmas get_sigmas(steps) ("automatic"), noise randn([1, 4, 16, 16], seed) * sigmas[0], one batch [cond,
  uncond], CFG u + (c - u) * cfg, prompts as make_pipeline_goldens.encode):
    a1111_ip_full         sd1_plain x 1.0, window 0..1, Euler: the adapter at every call (the others' reference)
    a1111_ip_window       sd1_plain x 1.0, window 0.25..0.75, Euler: calls with sampling_step 2..6 (steps 3..7)
    a1111_ip_window_early sd1_plain x 1.0, window 0..0.1, Euler: steps 0 and 1 (both see sampling_step 0)
    a1111_ip_heun_multi   sd1_plain x 1.0 on 0..0.5 and sd1_plus x 0.8 on 0.4..1, Heun: each adapter its own window
  diffusers mode (StableDiffusionPipeline with EulerDiscreteScheduler, load_ip_adapter, ip_adapter_image):
    diffusers_ip_window   sd1_plain x 1.0, window 0.25..0.75: steps 2..5
    diffusers_ip_multi    sd1_plain x 1.0 on 0..0.5 and sd1_plus x 0.8 on 0.5..1
  8 steps, CFG 7, seed 721, prompt "a red circle on a blue background", negative "green" for all.

File: tests/golden/data/ip_adapter_window_cases.safetensors
    <case>.latent  float32 [1, 4, 16, 16]  the final latent (not divided by the scaling factor)
    <case>.image   uint8 [1, 3, 32, 32]    the decoded image, round(clamp(x / 2 + 0.5) * 255), CHW RGB
    metadata <case>.params (JSON): mode ("a1111" | "diffusers"), model, folder, sampler (k-diffusion) or scheduler
      (diffusers), schedule, steps, cfg, seed, prompt, negative, width, height, image_encoder, adapters [{adapter,
      file, images, scale, start, end}], calls (a1111: per model call the sampling_step and which adapters acted)
      or steps_active (diffusers: per step which adapters acted), mean_abs_image_diff_vs_full_window,
      mean_abs_image_diff_vs_no_ip_adapter
    metadata also: script, git, versions, cases, extension_commit, checks.

Checks (asserted on every run): the k-diffusion loop without an adapter reproduces make_pipeline_goldens.py's
"euler" case within 1e-3 in the latent; the call tables recorded by the callback-driven state equal the closed
form (make_controlnet_a1111_goldens.expected_sampling_steps); every windowed case differs from its full-window
run, and every case from the run without adapters, by more than MIN_MEAN_DIFF; all latents pairwise different.
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_controlnet_a1111_goldens as ca  # noqa: E402  (WebUiState, unit_active, expected_sampling_steps, ...)
import make_ip_adapter_goldens as ig  # noqa: E402  (ip_pipeline, call_args, decode, restore, IPA_DIR)
import make_pipeline_goldens as pg  # noqa: E402  (LdmWrapper, encode, WORDS)
import make_model_goldens as mg  # noqa: E402  (git_hash)
import make_lora_goldens as lg  # noqa: E402  (build_sd1, save_goldens, OUT)
import make_sdxl_goldens as sg  # noqa: E402  (versions, assert_all_differ, check_words)
import safetensors_io  # noqa: E402

import diffusers  # noqa: E402
import PIL.Image  # noqa: E402
import transformers  # noqa: E402
from transformers import CLIPVisionModelWithProjection  # noqa: E402

K = ca.K
OUT = lg.OUT
GOLDEN = os.path.join(OUT, "ip_adapter_window_cases.safetensors")
SCRIPT = "tools/reference/make_ip_adapter_window_goldens.py"
MIN_MEAN_DIFF = 1.0  # levels of 255

PLAIN = dict(adapter="sd1_plain", file="sd1_plain.safetensors", images=["ip_ref_a"])
PLUS = dict(adapter="sd1_plus", file="sd1_plus.safetensors", images=["ip_ref_b"])
_COMMON = dict(model="sd1", steps=8, cfg=7.0, seed=721, prompt="a red circle on a blue background", negative="green")
CASES = [
    dict(name="a1111_ip_full", mode="a1111", sampler="euler", adapters=[dict(PLAIN, scale=1.0, start=0.0, end=1.0)],
         **_COMMON),
    dict(name="a1111_ip_window", mode="a1111", sampler="euler",
         adapters=[dict(PLAIN, scale=1.0, start=0.25, end=0.75)], **_COMMON),
    dict(name="a1111_ip_window_early", mode="a1111", sampler="euler",
         adapters=[dict(PLAIN, scale=1.0, start=0.0, end=0.1)], **_COMMON),
    dict(name="a1111_ip_heun_multi", mode="a1111", sampler="heun",
         adapters=[dict(PLAIN, scale=1.0, start=0.0, end=0.5), dict(PLUS, scale=0.8, start=0.4, end=1.0)], **_COMMON),
    dict(name="diffusers_ip_window", mode="diffusers", adapters=[dict(PLAIN, scale=1.0, start=0.25, end=0.75)],
         **_COMMON),
    dict(name="diffusers_ip_multi", mode="diffusers",
         adapters=[dict(PLAIN, scale=1.0, start=0.0, end=0.5), dict(PLUS, scale=0.8, start=0.5, end=1.0)], **_COMMON),
]


def full_window(case):
    return dict(case, adapters=[dict(a, start=0.0, end=1.0) for a in case["adapters"]])


def load_adapters(pipe, case):
    files = [a["file"] for a in case["adapters"]]
    pipe.load_ip_adapter(ig.IPA_DIR, subfolder="", weight_name=files if len(files) > 1 else files[0])


def set_scales(pipe, scales):
    pipe.set_ip_adapter_scale(scales if len(scales) > 1 else scales[0])


def pil_images(case):
    """ip_adapter_image as make_ip_adapter_goldens.run_ip passes it: per adapter an image (or a list of them)."""
    imgs = [[PIL.Image.open(os.path.join(ig.IPA_DIR, f"{n}.png")) for n in a["images"]] for a in case["adapters"]]
    imgs = [i[0] if len(i) == 1 else i for i in imgs]
    return imgs[0] if len(imgs) == 1 else imgs


# ---------------------------------------------------------------------------------------------------------
# diffusers mode: the window through a step-end callback

def run_diffusers(bases, encoder, case):
    pipe = ig.ip_pipeline(bases, "sd1", encoder)
    if case["adapters"]:
        load_adapters(pipe, case)
    steps = case["steps"]
    keeps = [ca.diffusers_keep(steps, a["start"], a["end"]) for a in case["adapters"]]

    def scales_at(i):
        return [a["scale"] * k[i] for a, k in zip(case["adapters"], keeps)]

    def on_step_end(p, i, t, kwargs):
        if i + 1 < steps:
            set_scales(p, scales_at(i + 1))
        return kwargs

    extra = {}
    if case["adapters"]:
        set_scales(pipe, scales_at(0))
        extra = dict(ip_adapter_image=pil_images(case), callback_on_step_end=on_step_end)
    with torch.no_grad():
        lat = pipe(**ig.call_args(case), generator=torch.Generator("cpu").manual_seed(case["seed"]),
                   output_type="latent", **extra).images
    img = ig.decode(pipe, "sd1", lat)
    if case["adapters"]:
        ig.restore(pipe, "sd1")
    steps_active = [[bool(k[i]) for k in keeps] for i in range(steps)]
    return lat.contiguous(), img, steps_active


# ---------------------------------------------------------------------------------------------------------
# k-diffusion, A1111's rule

class IPUnet(pg.LdmWrapper):
    """apply_model with the adapters' image embeddings (rows [cond, uncond], as the batch)."""

    def __init__(self, unet):
        super().__init__(unet)
        self.embeds = None

    def apply_model(self, x, t, cond):
        if self.embeds is None:
            return self.unet(x, t, encoder_hidden_states=cond).sample
        return self.unet(x, t, encoder_hidden_states=cond, added_cond_kwargs={"image_embeds": self.embeds}).sample


def run_a1111(bases, encoder, case):
    pipe = ig.ip_pipeline(bases, "sd1", encoder)
    adapters = case["adapters"]
    wrapper = IPUnet(pipe.unet)
    model = K.external.CompVisDenoiser(wrapper, quantize=False)
    with torch.no_grad():
        if adapters:
            load_adapters(pipe, case)
            # diffusers' embeddings per adapter, [negative; positive] rows, put in the batch's order [cond; uncond]
            embeds = pipe.prepare_ip_adapter_image_embeds(pil_images(case), None, torch.device("cpu"), 1, True)
            wrapper.embeds = [torch.cat([e.chunk(2)[1], e.chunk(2)[0]]) for e in embeds]
        cond, uncond = pg.encode(pipe.tokenizer, pipe.text_encoder, case["prompt"]), \
            pg.encode(pipe.tokenizer, pipe.text_encoder, case["negative"])
        sigmas = model.get_sigmas(case["steps"])
        x = torch.randn((1, 4, 16, 16), generator=torch.Generator().manual_seed(case["seed"])) * sigmas[0]
        state, log = ca.WebUiState(), []

        def denoiser(x, sigma):
            active = [ca.unit_active(state.sampling_step, state.sampling_steps, a["start"], a["end"]) for a in adapters]
            log.append(dict(call=len(log), sigma=float(sigma[0]), sampling_step=state.sampling_step, active=active))
            if adapters:
                set_scales(pipe, [a["scale"] if on else 0.0 for a, on in zip(adapters, active)])
            out = model(torch.cat([x, x]), torch.cat([sigma, sigma]), cond=torch.cat([cond, uncond]))
            c, u = out.chunk(2)
            return u + (c - u) * case["cfg"]

        state.launch(case["steps"])
        x0 = ca.sample(case["sampler"], denoiser, x, sigmas, state)
        img = ig.decode(pipe, "sd1", x0)
    if adapters:
        ig.restore(pipe, "sd1")
    assert torch.isfinite(x0).all()
    exp = ca.expected_sampling_steps(case["sampler"], case["steps"])
    assert len(log) == len(exp), (len(log), len(exp))
    for entry, (i, stage, s) in zip(log, exp):
        assert entry["sampling_step"] == s, (case["name"], entry, s)
        entry["step"], entry["stage"] = i, stage
    return x0.contiguous(), img, log


def run(bases, encoder, case):
    return (run_a1111 if case["mode"] == "a1111" else run_diffusers)(bases, encoder, case)


def check_plain_loop(bases, encoder, checks):
    """Without an adapter the k-diffusion loop is make_pipeline_goldens.py's (its euler case)."""
    path = os.path.join(OUT, "pipeline_sd1_cases.safetensors")
    golden, meta = safetensors_io.load_file(path), safetensors_io.load_metadata(path)
    j = json.loads(meta["euler.params"])
    assert j["schedule"] == "automatic" and j["strength"] is None
    case = dict(name="plain", mode="a1111", sampler=j["sampler"], steps=j["steps"], cfg=j["cfg"], seed=j["seed"],
                prompt=j["prompt"], negative=j["negative"], model="sd1", adapters=[])
    lat, _, _ = run_a1111(bases, encoder, case)
    d = (lat - torch.from_numpy(golden["euler.latent"].copy())).abs().max().item()
    print(f"plain loop vs pipeline_sd1_cases euler: max |latent diff| {d:.2e}")
    assert d < 1e-3, d
    checks.append(f"no adapter: make_pipeline_goldens euler reproduced by the k-diffusion loop (max |latent diff| {d:.2e})")


def main():
    torch.set_num_threads(1)
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    sg.check_words(CASES)
    bases = {"sd1": lg.build_sd1()}
    encoder = CLIPVisionModelWithProjection.from_pretrained(os.path.join(ig.IPA_DIR, "image_encoder"),
                                                            torch_dtype=torch.float32).eval()
    checks = []
    check_plain_loop(bases, encoder, checks)

    tensors, meta, latents = {}, {}, {}
    for case in CASES:
        lat, img, record = run(bases, encoder, case)
        full_lat, full_img, _ = run(bases, encoder, full_window(case))
        _, plain_img, _ = run(bases, encoder, dict(case, adapters=[]))
        diff_full = (img.float() - full_img.float()).abs().mean().item()
        diff_plain = (img.float() - plain_img.float()).abs().mean().item()
        windowed = any(a["start"] > 0 or a["end"] < 1 for a in case["adapters"])
        if windowed:
            assert diff_full > MIN_MEAN_DIFF, (case["name"], diff_full)
        else:
            assert torch.equal(lat, full_lat)
        assert diff_plain > MIN_MEAN_DIFF, (case["name"], diff_plain)
        if case["mode"] == "a1111":
            table = " ".join(f"{e['step']}{'ab'[e['stage']]}:{e['sampling_step']}"
                             f"{''.join('+' if on else '-' for on in e['active'])}" for e in record)
        else:
            table = " ".join(f"{i}:{''.join('+' if on else '-' for on in r)}" for i, r in enumerate(record))
        print(f"{case['name']:22s} mean |image - full window| {diff_full:.2f}, |image - no adapter| {diff_plain:.2f}")
        print(f"{'':22s} {table}")
        tensors[f"{case['name']}.latent"] = lat
        tensors[f"{case['name']}.image"] = img
        latents[case["name"]] = lat
        params = dict(
            name=case["name"], mode=case["mode"], model="sd1", folder="pipeline_sd1", steps=case["steps"],
            cfg=case["cfg"], seed=case["seed"], prompt=case["prompt"], negative=case["negative"], width=32, height=32,
            image_encoder="ip_adapter/image_encoder",
            adapters=[dict(adapter=a["adapter"], file=f"ip_adapter/{a['file']}",
                           images=[f"ip_adapter/{n}.png" for n in a["images"]], scale=a["scale"], start=a["start"],
                           end=a["end"]) for a in case["adapters"]],
            mean_abs_image_diff_vs_full_window=round(diff_full, 3),
            mean_abs_image_diff_vs_no_ip_adapter=round(diff_plain, 3))
        if case["mode"] == "a1111":
            params.update(sampler=case["sampler"], schedule="automatic", calls=record)
        else:
            params.update(scheduler="euler", steps_active=record)
        meta[f"{case['name']}.params"] = json.dumps(params)
    sg.assert_all_differ(latents)
    checks.append(f"every windowed case differs from its full-window run and every case from the run without "
                  f"adapters by > {MIN_MEAN_DIFF} level")
    meta.update(sg.versions(SCRIPT))
    meta.update({"git": mg.git_hash(), "k_diffusion": "0.0.16", "cases": json.dumps([c["name"] for c in CASES]),
                 "extension_commit": ca.EXTENSION_COMMIT, "checks": json.dumps(checks),
                 "stubbed_modules": json.dumps(ca.skd.STUBBED)})
    lg.save_goldens(tensors, meta, GOLDEN)


if __name__ == "__main__":
    main()
