#!/work/refvenv-d032/bin/python
"""Skip-layer guidance goldens for SD3.5 medium, from diffusers 0.32.2 (the release that added the pipeline's
skip_guidance_layers, huggingface/diffusers#9880), on the tiny SD3.5 medium of make_sd35_goldens.py.

    python3 -m venv /work/refvenv-d032
    echo /work/refvenv/lib/python3.11/site-packages > /work/refvenv-d032/lib/python3.11/site-packages/refvenv.pth
    /work/refvenv-d032/bin/pip install --no-deps diffusers==0.32.2 transformers==4.44.2
    HF_HUB_OFFLINE=1 /work/refvenv-d032/bin/python tools/reference/make_sd35_slg_goldens.py

(The venv sees the pip venv's packages (tools/reference/README.md, "The pip venv": torch 2.4.1, tokenizers
0.19.1, ...) through the .pth file, with diffusers 0.32.2 and transformers 4.44.2 first on the path: diffusers
0.32's SD3 pipeline imports transformers' BaseImageProcessor, which 4.40.2 does not export.) The script refuses any other
diffusers. It reads tests/golden/data/pipeline_sd35_medium (and pipeline_sd3's shared components, linked as
make_sd35_goldens.linked_view does) and writes tests/golden/data/sd35_slg_cases.safetensors: for each case
<name>.latent [1, 16, 16, 16], <name>.image uint8 [32, 32, 3], <name>.sigmas, and <name>.params (JSON) with
<name>.skip_calls, the sigmas at which the extra skip-layer prediction ran (checked to be what the rule says).

Cases (all 32x32, "a red circle on a blue background" / "a green square", seed 42, guidance 5.0):
    slg_a  StableDiffusion3Pipeline(..., skip_guidance_layers=[1]) with diffusers' defaults (scale 2.8, start 0.01,
           stop 0.2), 10 steps: the steps i with 10 * 0.01 < i < 10 * 0.2, i.e. step 1 only.
    slg_b  skip_guidance_layers=[0, 2], skip_layer_guidance_scale 1.5, start 0.1, stop 0.7, 6 steps: steps 1-4.
           Block 2 is the last, context_pre_only block.
    slg_k  ComfyUI's rule (comfy_extras/nodes_slg.py SkipLayerGuidanceDiT, as SkipLayerGuidanceSD3 uses it) on
           k-diffusion's euler, restated here on the pipeline's own networks: sigmas = the scheduler's 6-step list
           (ComfyUI's "normal" schedule for this model sampling is the same list); x = noise * sigma_0; each step
           the denoised estimates x - sigma * v of the negative and positive prompts (one batch, as the pipeline),
           CFG on them, then, when sigma_end <= sigma <= sigma_start with sigma(p) = shift * (1 - p) / (1 +
           (shift - 1) * (1 - p)) (percent_to_sigma), the positive prompt once more with layers [1] skipped:
           cfg + (cond - skipped) * 3.0; then x += (x - denoised) / sigma * (sigma_next - sigma). start 0.01,
           end 0.5 (so that two of the six steps fall inside).
A run without skip layers (the pipeline, 10 steps) is also checked to differ from slg_a, and slg_a's transformer
calls to be 10 batched ones plus one of batch 1 with skip_layers [1].
"""

import json
import os
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_sd3_goldens as sd3_script  # noqa: E402  (decode as the pipeline, the writer, versions)
from make_sd35_goldens import VARIANTS, linked_view  # noqa: E402
from make_sd3_goldens import OUT, ROOT  # noqa: E402

import diffusers  # noqa: E402
from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

assert diffusers.__version__ == "0.32.2", f"diffusers {diffusers.__version__} from {diffusers.__file__}"

SCRIPT = "tools/reference/make_sd35_slg_goldens.py"
GOLDEN = os.path.join(OUT, "sd35_slg_cases.safetensors")
BASE = dict(prompt="a red circle on a blue background", negative="a green square", seed=42, height=32, width=32,
            cfg=5.0)
CASES = [
    dict(BASE, name="slg_a", mode="diffusers", steps=10, layers=[1], scale=2.8, start=0.01, stop=0.2),
    dict(BASE, name="slg_b", mode="diffusers", steps=6, layers=[0, 2], scale=1.5, start=0.1, stop=0.7),
    dict(BASE, name="slg_k", mode="kdiffusion", steps=6, layers=[1], scale=3.0, start=0.01, stop=0.5),
]


class Calls:
    """A forward pre-hook on the transformer: each call's batch size, timestep and skip_layers."""

    def __init__(self):
        self.calls = []

    def __call__(self, module, args, kwargs):
        self.calls.append((kwargs["hidden_states"].shape[0], float(kwargs["timestep"][0]), kwargs.get("skip_layers")))


def load_medium(tmp):
    folder = VARIANTS["medium"]["folder"]
    pipe = StableDiffusion3Pipeline.from_pretrained(linked_view(folder, tmp), torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    stored = load_file(os.path.join(folder, "transformer", "diffusion_pytorch_model.safetensors"))
    got = pipe.transformer.state_dict()
    for k, v in stored.items():
        assert torch.equal(got[k], v.float()), f"transformer.{k} does not widen from the fp16 file"
    assert tuple(pipe.transformer.config["dual_attention_layers"]) == (0, 1)
    return pipe


def run_diffusers(pipe, case, sched_cfg, calls):
    pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(sched_cfg)
    kw = dict(prompt=case["prompt"], negative_prompt=case["negative"], height=case["height"], width=case["width"],
              num_inference_steps=case["steps"], guidance_scale=case["cfg"])
    if case["layers"]:
        kw.update(skip_guidance_layers=case["layers"], skip_layer_guidance_scale=case["scale"],
                  skip_layer_guidance_start=case["start"], skip_layer_guidance_stop=case["stop"])
    with torch.no_grad():
        latent = pipe(**kw, generator=torch.Generator("cpu").manual_seed(case["seed"]), output_type="latent").images
    sigmas = pipe.scheduler.sigmas.clone()
    n = case["steps"]
    want = [i for i in range(n) if case["layers"] and n * case["start"] < i < n * case["stop"]]
    skipped = [j for j, c in enumerate(calls.calls) if c[2] is not None]
    assert [c[0] for c in calls.calls if c[2] is None] == [2] * n, calls.calls
    assert all(calls.calls[j][0] == 1 and list(calls.calls[j][2]) == case["layers"] for j in skipped)
    # Each extra call follows the batched call of its step.
    steps_skipped = [j - 1 - skipped.index(j) for j in skipped]
    assert steps_skipped == want, (steps_skipped, want)
    return latent, sigmas, [float(sigmas[i]) for i in want]


def percent_to_sigma(shift, p):
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    t = 1.0 - p
    return shift * t / (1 + (shift - 1) * t)


def run_kdiffusion(pipe, case, sched_cfg):
    sched = FlowMatchEulerDiscreteScheduler.from_config(sched_cfg)
    sched.set_timesteps(case["steps"])
    sigmas = sched.sigmas.clone()
    shift = sched_cfg["shift"]
    hi, lo = percent_to_sigma(shift, case["start"]), percent_to_sigma(shift, case["stop"])
    with torch.no_grad():
        pe, ne, pp, npool = pipe.encode_prompt(prompt=case["prompt"], prompt_2=None, prompt_3=None,
                                               negative_prompt=case["negative"], do_classifier_free_guidance=True,
                                               max_sequence_length=256)
        f = pipe.vae_scale_factor
        shape = (1, 16, case["height"] // f, case["width"] // f)
        x = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(case["seed"])) * sigmas[0]
        used = []
        for i in range(case["steps"]):
            s = sigmas[i]
            t = (s * 1000).expand(2)
            v = pipe.transformer(hidden_states=torch.cat([x, x]), timestep=t, encoder_hidden_states=torch.cat([ne, pe]),
                                 pooled_projections=torch.cat([npool, pp]), return_dict=False)[0]
            den_u, den_c = (torch.cat([x, x]) - s * v).chunk(2)
            den = den_u + case["cfg"] * (den_c - den_u)
            if lo <= float(s) <= hi:
                vs = pipe.transformer(hidden_states=x, timestep=t[:1], encoder_hidden_states=pe, pooled_projections=pp,
                                      return_dict=False, skip_layers=case["layers"])[0]
                den = den + (den_c - (x - s * vs)) * case["scale"]
                used.append(float(s))
            x = x + (x - den) / s * (sigmas[i + 1] - s)
    assert len(used) == 2, used
    return x, sigmas, used


def main():
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        pipe = load_medium(tmp)
        # _use_default_values is a list in set order (it changes from run to run): sorted, so reruns write the same bytes.
        sched_cfg = {k: (sorted(v) if k == "_use_default_values" else v) for k, v in pipe.scheduler.config.items()
                     if k != "_name_or_path"}
        tensors, meta, latents = {}, {}, {}
        for case in CASES:
            calls = Calls()
            handle = pipe.transformer.register_forward_pre_hook(calls, with_kwargs=True)
            try:
                if case["mode"] == "diffusers":
                    latent, sigmas, used = run_diffusers(pipe, case, sched_cfg, calls)
                else:
                    latent, sigmas, used = run_kdiffusion(pipe, case, sched_cfg)
            finally:
                handle.remove()
            name = case["name"]
            image = sd3_script.decode_as_pipeline(pipe, latent)
            tensors.update({f"{name}.latent": latent[0:1].contiguous(), f"{name}.image": image.contiguous(),
                            f"{name}.sigmas": sigmas})
            params = dict(name=name, prompt=case["prompt"], negative=case["negative"], steps=case["steps"],
                          cfg=case["cfg"], seed=case["seed"], width=case["width"], height=case["height"],
                          mode=case["mode"], slg_layers=case["layers"], slg_scale=case["scale"],
                          slg_start=case["start"], slg_stop=case["stop"], folder="tests/golden/data/pipeline_sd35_medium",
                          sigmas=sigmas.tolist())
            meta[f"{name}.params"] = json.dumps(params)
            meta[f"{name}.skip_calls"] = json.dumps(used)
            latents[name] = latent
            print(f"  {name}: {case['mode']}, layers {case['layers']}, extra calls at sigmas "
                  f"{[round(u, 4) for u in used]}; latent std {latent.std().item():.3f}")
        # Without skip layers, slg_a's run gives another latent.
        plain = dict(CASES[0], name="plain", layers=[])
        calls = Calls()
        handle = pipe.transformer.register_forward_pre_hook(calls, with_kwargs=True)
        try:
            off, _, _ = run_diffusers(pipe, plain, sched_cfg, calls)
        finally:
            handle.remove()
        d = (off - latents["slg_a"]).abs().max().item()
        assert d > 1e-3, d
        print(f"  slg_a vs the same run without skip layers: max |diff| {d:.4f}")
        sd3_script.assert_all_differ(latents)
    versions = sd3_script.versions()
    versions["script"] = SCRIPT
    meta.update({k: str(v) for k, v in versions.items()})
    meta["scheduler_config"] = json.dumps(sched_cfg)
    sd3_script.save(GOLDEN, tensors, meta)


if __name__ == "__main__":
    main()
