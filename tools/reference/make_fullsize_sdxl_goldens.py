#!/work/refvenv/bin/python
"""Full-size SDXL base 1.0 and refiner 1.0 parity without shipping 7-10 GB checkpoints: the SDXL counterpart of
make_fullsize_goldens.py (SD 1.5 / 2.1). Full-size networks, tiny latents (64x64 to 96x64 images).

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline, base first (the
refiner's hand-off case reads the base's file):

    HF_HUB_OFFLINE=1 nice /work/refvenv/bin/python tools/reference/make_fullsize_sdxl_goldens.py sdxl_base
    HF_HUB_OFFLINE=1 nice /work/refvenv/bin/python tools/reference/make_fullsize_sdxl_goldens.py sdxl_refiner

Writes tests/golden/data/fullsize_<variant>_cases.safetensors (base about 138 KB, refiner about 870 KB) through
make_sdxl_goldens.save (safetensors_io: the same bytes on every run, checked across runs and PYTHONHASHSEEDs).
Versions (requirements-pip.txt): torch 2.4.1 (CPU), diffusers 0.30.3, transformers 4.40.2, k-diffusion 0.0.16; all
computation float32 on the CPU, diffusers' default attention processor (torch's scaled_dot_product_attention).
torch runs ONE CPU thread (THREADS): the last bits depend on the thread count (make_sdxl_kdiffusion_goldens'
docstring), and on the shared 2-core machine one thread was also the faster (a bigG forward took 2.4 s with one
thread, 8.2 s with two while another job held the other core).
Measured there (nice, /usr/bin/time -v, "Maximum resident set size"): sdxl_base 5 min 15 s wall (2 min to generate
and load the weights, the UNet alone 100 s), peak RSS 14.5 to 16.0 million KB (13.8 to 15.3 GiB, varying from run to
run with the allocator; the fp32 models alone are 13.9 GB); sdxl_refiner 2.5 to 3 min, 12.8 to 13.5 million KB (12.2
to 12.9 GiB).

Weights
-------
A pure function of the published tensor list tests/data/keys/<variant>.ldm.json.gz (make_sdxl_key_lists.py: the
Stability "sgm" single-file names and shapes of sd_xl_base_1.0 / sd_xl_refiner_1.0) and torch's CPU generator:
tensor number i of that list (0-based, over the WHOLE list) is make_fullsize_goldens.weight(i, name, shape) (read
its docstring: randn seeded 1000 + i, scaled per kind, position_ids = arange, rounded to fp16, used in fp32). The C++
tests rebuild the same checkpoint bit for bit. To keep the peak near the fp32 models' own size, each component
(text_encoder: CLIP-L, base only; text_encoder_2: OpenCLIP bigG; vae; unet) is generated on its own (only the list
entries under its prefix of <variant>.expect.json's ldm_prefixes, each still seeded by its index in the full
list), converted with diffusers 0.30.3's single-file converters (convert_ldm_clip_checkpoint,
convert_open_clip_checkpoint with the variant's bigG prefix, convert_ldm_vae_checkpoint, convert_ldm_unet_checkpoint),
and loaded with load_state_dict(strict=True, assign=True) into the model built on the meta device from
make_sdxl_key_lists.py's published configs (CLIPTextModel, CLIPTextModelWithProjection, AutoencoderKL,
UNet2DConditionModel), before the next component is generated.
Checks: every name of the list is read by a converter except the expect file's ldm_extras (CLIP-L's position_ids,
which must be arange(77), and bigG's logit_scale); the converted tensors hold exactly as many numbers as the list's
(nothing dropped); strict loading (so no missing or unexpected key, text encoders included); no meta tensor left;
every output finite; no two cases with the same latent; ABLATIONS (prompt_2 and the zeroed empty negative change
their case's latent).

Tokenizers: CLIP's real BPE vocabulary (data/clip/bpe_simple_vocab_16e6.txt.gz, turned into vocab.json + merges.txt
by make_tokenizer_goldens.vocab_from_gz), model_max_length 77. tokenizer (CLIP-L) pads with <|endoftext|> (49407);
tokenizer_2 (bigG) pads with "!" (id 0), as SDXL's tokenizer_2/tokenizer_config.json. Prompts are plain lower-case
English words, each one token of the vocabulary, no "!" (checked).
Schedulers: make_sdxl_goldens.SCHEDULER_CONFIG (SDXL base's scheduler_config.json: EulerDiscreteScheduler values,
scaled_linear 0.00085..0.012, epsilon, "leading", steps_offset 1), as a folder's scheduler_config.json holds it
(every key written out: checked equal to the tiny pipeline_sdxl/'s), <Class>.from_config of it per case; the refiner's
published scheduler config has the same values and is used the same way. Stored as metadata "scheduler_config".

Cases
-----
Each runs exactly as the tiny SDXL goldens' function named in brackets (imported, so the params JSON has the same
keys and the same tensors are stored; their docstrings say what a reimplementation must match). Images are uint8
[H, W, 3] (HWC RGB, make_sdxl_goldens.decode_as_pipeline: latent / 0.13025, vae.decode, round(clamp(x / 2 + 0.5)
* 255)); latents fp32 [1, 4, H/8, W/8], not divided by the scaling factor. With these weights the UNets' noise
predictions are small, so most of a txt2img latent is its starting noise: the UNet moves diffusers_euler's latent by
0.35 (std; 0.9 at most), some 100 times the C++ tests' tolerance (atol 2e-3, rtol 2e-4).
sdxl_base (StableDiffusionXLPipeline: force_zeros_for_empty_prompt true, add_watermarker false):
    diffusers_euler              [make_sdxl_goldens.run_case] Euler 64x64, 4 steps, cfg 5, seed 101, negative prompt.
                                 Tensors .latent .image .time_ids
    diffusers_dpmpp2m_96x64      [same] DPMSolverMultistep, width 96 height 64, 4 steps, cfg 6, seed 102, a prompt_2
    diffusers_img2img            [make_sdxl_goldens.run_img2img_case] StableDiffusionXLImg2ImgPipeline on the base
                                 (requires_aesthetics_score false), Euler 64x64, make_init_image(64, 64, 0) (the tiny
                                 goldens' deterministic pattern), strength 0.6, 5 steps (3 run), cfg 5, seed 103.
                                 Tensors .init (uint8 [1, 3, H, W]) .init_latents .latent .image .time_ids
    diffusers_inpaint_blend      [same] StableDiffusionXLInpaintPipeline with the 4-channel base UNet (latent
                                 blending), make_init_image(64, 64, 2) and make_mask(64, 64, (20, 12, 44, 40)) (uint8
                                 [H, W], 255 = repaint, with 128/127 rings), strength 0.75, 5 steps (3 run), cfg 5,
                                 seed 104. Tensors as img2img plus .mask
    handoff_base                 [make_sdxl_refiner_goldens.handoff_base_stage] StableDiffusionXLPipeline Euler 64x64,
                                 5 steps, cfg 5, seed 105, denoising_end 0.8, output_type "latent": runs 801 601 401
                                 201. Tensors .latent (what it hands over; no image) .time_ids
    kd_euler_a                   [make_sdxl_kdiffusion_goldens.run_case] A1111 / k-diffusion semantics, Euler a,
                                 automatic schedule, 64x64, 4 steps, cfg 7, seed 106, negative prompt.
                                 Tensors .latent .image .sigmas
    kd_dpmpp2m_karras_zero_neg   [same] DPM++ 2M, karras, width 64 height 96, 4 steps, cfg 6, seed 107, empty negative
                                 (zeroed context and pooled vector, as A1111 does)
    plus "alphas_cumprod" (make_sdxl_kdiffusion_goldens.ALPHAS_CUMPROD, what the k-diffusion cases use).
sdxl_refiner (StableDiffusionXLImg2ImgPipeline: text_encoder None, requires_aesthetics_score true,
force_zeros_for_empty_prompt false, aesthetic scores 6.0 / 2.5):
    refiner_img2img              [make_sdxl_refiner_goldens.refiner_img2img_case] Euler, make_init_image(64, 64, 1),
                                 strength 0.3, 5 steps (int(1.5) = 1 runs: t = 1), cfg 5, seed 108.
                                 Tensors .init .init_latents .latent .image .time_ids ([2, 5]) .context .text_embeds
    refiner_img2img_s08          (added: refiner_img2img runs the UNet once, at sigma 0.041; it moves the latent by
                                 at most 0.01, about the C++ tolerance, so a broken refiner UNet could pass) the same
                                 at strength 0.8 (4 of 5 steps run: 601 401 201 1, from sigma 2.29; the UNet moves the
                                 latent by up to 0.57), make_init_image(64, 64, 2), seed 109. Tensors as
                                 refiner_img2img without .context and .text_embeds
    refiner_handoff              [make_sdxl_refiner_goldens.handoff_refiner_stage] denoising_start 0.8, 5 steps (runs
                                 t = 1), handoff_base's prompt, negative and seed; image = handoff_base.latent read
                                 from the base file (stored again as .init_latent; metadata base_cases_sha256).
                                 Tensors .init_latent .latent .image .time_ids. The refiner's one step (sigma 0.041)
                                 moves the latent by at most 0.009: this case tests the hand-off (no noise added, the
                                 timesteps, the 5 time ids), not the refiner UNet.
Metadata: versions (make_sdxl_goldens.versions, plus make_sdxl_kdiffusion_goldens' for k-diffusion and friends),
script, keys, weights, torch_threads, scheduler_config, <name>.params (JSON).
"""
import contextlib
import gzip
import io
import itertools
import json
import os
import resource
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_sdxl_kdiffusion_goldens as kd  # noqa: E402  (first: stubs the missing clip module before k_diffusion)
import make_fullsize_goldens as fg  # noqa: E402  (the weight rule, the tokenizer's pad setup)
import make_sdxl_goldens as sx  # noqa: E402  (txt2img / img2img / inpainting runs, decode, writer, versions)
import make_sdxl_key_lists as kl  # noqa: E402  (published configs, meta-device builders, Recorder)
import make_sdxl_refiner_goldens as rg  # noqa: E402  (refiner img2img, the hand-off stages, their params)
import make_tokenizer_goldens as tg  # noqa: E402  (CLIP's vocabulary as vocab.json + merges.txt)

import k_diffusion as K  # noqa: E402
from diffusers import (AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline,  # noqa: E402
                       StableDiffusionXLPipeline, UNet2DConditionModel)
from diffusers.loaders import single_file_utils as sfu  # noqa: E402
from safetensors import safe_open  # noqa: E402
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer  # noqa: E402

ROOT, OUT = sx.ROOT, sx.OUT
SCRIPT = "tools/reference/make_fullsize_sdxl_goldens.py"
KEYS = os.path.join(ROOT, "tests", "data", "keys")
VOCAB = os.path.join(ROOT, "data", "clip", "bpe_simple_vocab_16e6.txt.gz")
THREADS = 1  # torch's CPU thread count: the last bits depend on it (see the docstring)

UNET_CONFIGS = {"sdxl_base": kl.SDXL_BASE_UNET, "sdxl_refiner": kl.SDXL_REFINER_UNET}

_TXT = dict(kind="txt2img", width=64, height=64, prompt_2=None, negative_2=None)
_I2I = dict(kind="img2img", scheduler="euler", width=64, height=64, steps=5, cfg=5.0, prompt_2=None, negative_2=None)
_KD = dict(kind="kdiffusion", width=64, height=64)
HANDOFF = dict(name="handoff_base", kind="handoff_base", scheduler="euler", width=64, height=64, steps=5, cfg=5.0,
               seed=105, prompt="a portrait of an old fisherman, detailed", negative="cartoon", prompt_2=None,
               negative_2=None, denoising_end=0.8)
BASE_CASES = [
    dict(_TXT, name="diffusers_euler", scheduler="euler", steps=4, cfg=5.0, seed=101,
         prompt="a photo of a cat sitting on a wooden table", negative="blurry, low quality"),
    dict(_TXT, name="diffusers_dpmpp2m_96x64", scheduler="dpm++2m", width=96, steps=4, cfg=6.0, seed=102,
         prompt="a lighthouse on a rocky coast at sunset", prompt_2="an oil painting with warm colors",
         negative="fog"),
    dict(_I2I, name="diffusers_img2img", pipeline="img2img", seed=103, strength=0.6, init_variant=0,
         prompt="a watercolor painting of a mountain lake", negative="dark"),
    dict(_I2I, name="diffusers_inpaint_blend", pipeline="inpaint", seed=104, strength=0.75, init_variant=2,
         mask=(20, 12, 44, 40), prompt="a red apple on a plate", negative="green leaves"),
    HANDOFF,
    dict(_KD, name="kd_euler_a", sampler="euler_a", schedule="automatic", steps=4, cfg=7.0, seed=106,
         prompt="a castle on a hill under a starry sky", negative="blurry"),
    dict(_KD, name="kd_dpmpp2m_karras_zero_neg", sampler="dpm++2m", schedule="karras", height=96, steps=4, cfg=6.0,
         seed=107, prompt="a bowl of soup with fresh bread", negative=""),
]
REFINER_CASES = [
    dict(rg._REF, name="refiner_img2img", steps=5, seed=108, init_variant=1,
         prompt="a small house in a snowy forest", negative="ugly"),
    # Not in the brief's list: at strength 0.3 and 5 steps the refiner UNet runs once, at sigma 0.041, and moves the
    # latent by at most 0.01, about the C++ tolerance. This one runs 601 401 201 1 (see the docstring).
    dict(rg._REF, name="refiner_img2img_s08", steps=5, strength=0.8, seed=109, init_variant=2,
         prompt="a sailing boat on a calm sea", negative="storm"),
    dict(HANDOFF, name="refiner_handoff", kind="handoff", denoising_start=0.8, strength=0.3, aesthetic_score=6.0,
         negative_aesthetic_score=2.5),  # strength: ignored with denoising_start (as in the tiny hand-off case)
]
# Cases run again without their feature (not saved): the latent must change, or the case tests nothing.
ABLATIONS = {"diffusers_dpmpp2m_96x64": dict(prompt_2=None), "kd_dpmpp2m_karras_zero_neg": dict(zero=False)}


def peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def check_prompts(cases, vocab):
    for case in cases:
        for text in (case.get("prompt"), case.get("prompt_2"), case.get("negative"), case.get("negative_2")):
            assert "!" not in (text or ""), case["name"]
            for w in (text or "").replace(",", " ").split():
                assert w + "</w>" in vocab, (case["name"], w, "not one token of CLIP's vocabulary")


def tokenizers(tmp):
    files = tg.vocab_from_gz(VOCAB, tmp)
    tok, tok_2 = CLIPTokenizer(*files), CLIPTokenizer(*files)
    fg.pipeline_tokenizer(tok, None)  # model_max_length 77, pad <|endoftext|>
    fg.pipeline_tokenizer(tok_2, 0)  # pad "!" = id 0
    return tok, tok_2


def build_models(variant):
    """{component: fp32 model}, one component generated, converted and loaded at a time (see the docstring)."""
    with gzip.open(os.path.join(KEYS, f"{variant}.ldm.json.gz"), "rt") as f:
        names = json.load(f)["tensors"]
    with open(os.path.join(KEYS, f"{variant}.expect.json")) as f:
        expect = json.load(f)
    assert expect["unet_config"] == UNET_CONFIGS[variant] and expect["vae_config"] == kl.SDXL_VAE
    assert expect["text_encoder_2_config"] == kl.OPEN_CLIP_BIGG
    assert expect["text_encoder_config"] == (kl.CLIP_L if "text_encoder" in expect["ldm_prefixes"] else None)
    prefixes, extras = expect["ldm_prefixes"], set(expect["ldm_extras"])
    assert all(sum(n.startswith(p) for p in prefixes.values()) == 1 for n, _, _ in names)
    builders = {
        "text_encoder": lambda: kl.build_text(CLIPTextModel, kl.CLIP_L),
        "text_encoder_2": lambda: kl.build_text(CLIPTextModelWithProjection, kl.OPEN_CLIP_BIGG),
        "vae": lambda: kl.build_diffusers(AutoencoderKL, kl.SDXL_VAE),
        "unet": lambda: kl.build_diffusers(UNet2DConditionModel, UNET_CONFIGS[variant]),
    }
    converters = {
        "text_encoder": lambda ck, m: sfu.convert_ldm_clip_checkpoint(ck),
        "text_encoder_2": lambda ck, m: sfu.convert_open_clip_checkpoint(m, ck, prefix=prefixes["text_encoder_2"]),
        "vae": lambda ck, m: sfu.convert_ldm_vae_checkpoint(ck, dict(kl.SDXL_VAE)),
        "unet": lambda ck, m: sfu.convert_ldm_unet_checkpoint(ck, dict(UNET_CONFIGS[variant])),
    }
    models = {}
    for comp in ("text_encoder", "text_encoder_2", "vae", "unet"):  # the UNet last: the largest
        if comp not in prefixes:
            continue
        t0 = time.time()
        ck = kl.Recorder({n: fg.weight(i, n, s) for i, (n, s, _) in enumerate(names) if n.startswith(prefixes[comp])})
        model = builders[comp]()
        with contextlib.redirect_stdout(io.StringIO()):
            sd = converters[comp](ck, model)
        unread = set(ck) - ck.read
        assert unread <= extras, (comp, sorted(unread)[:10])
        pos = sd.pop("text_model.embeddings.position_ids", None)
        if comp == "text_encoder":
            assert torch.equal(pos, torch.arange(77)[None]), "position_ids"
        stored = sum(v.numel() for k, v in ck.items() if k not in extras)
        assert sum(v.numel() for v in sd.values()) == stored, (comp, "numbers dropped or duplicated")
        model.load_state_dict({k: v.contiguous() for k, v in sd.items()}, strict=True, assign=True)
        if comp.startswith("text_encoder"):  # a non-persistent buffer, left on the meta device
            model.text_model.embeddings.register_buffer(
                "position_ids", torch.arange(77).expand((1, -1)), persistent=False)
        left = [n for n, t in itertools.chain(model.named_parameters(), model.named_buffers()) if t.is_meta]
        assert not left, (comp, left[:5])
        assert all(p.dtype == torch.float32 for p in model.parameters()), comp
        models[comp] = model.eval()
        print(f"{comp}: {len(ck)} tensors, {stored / 1e9:.3f} B numbers -> {len(sd)} tensors in "
              f"{time.time() - t0:.0f} s; peak RSS {peak_rss_gb():.1f} GB")
        del ck, sd, model
    return models


def scheduler_config(pipe):
    """The scheduler config as a model folder's scheduler_config.json holds it (every key, no _use_default_values,
    whose order varies from run to run): the tiny SDXL goldens' config, which the cases pass to from_config."""
    cfg = json.loads(pipe.scheduler.to_json_string())
    with open(os.path.join(sx.FOLDER, "scheduler", "scheduler_config.json")) as f:
        assert cfg == json.load(f), "differs from the tiny SDXL folder's scheduler config"
    return cfg


def record(tensors, meta, name, t, params, seconds):
    latent, image = t["latent"], t.get("image")
    for k, v in t.items():
        assert not v.is_floating_point() or torch.isfinite(v).all(), (name, k)
        tensors[f"{name}.{k}"] = v.contiguous()
    meta[f"{name}.params"] = json.dumps(params)
    shown = "no image" if image is None else \
        f"image mean {image.float().mean().item():.1f} std {image.float().std().item():.1f}"
    print(f"  {name:28s} latent std {latent.std().item():.3f}  {shown}  {seconds:.0f} s; peak RSS "
          f"{peak_rss_gb():.1f} GB", flush=True)


def run_base(models, tok, tok_2, keys):
    pipe = StableDiffusionXLPipeline(
        vae=models["vae"], text_encoder=models["text_encoder"], text_encoder_2=models["text_encoder_2"], tokenizer=tok,
        tokenizer_2=tok_2, unet=models["unet"], scheduler=EulerDiscreteScheduler.from_config(sx.SCHEDULER_CONFIG),
        force_zeros_for_empty_prompt=True, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    pipes = sx.derived_pipelines(pipe)
    sched_cfg = scheduler_config(pipe)
    model = K.external.CompVisDenoiser(kd.SdxlEpsModel(pipe.unet), quantize=False)
    kd.check_sigmas(model)
    tensors = {"alphas_cumprod": kd.ALPHAS_CUMPROD.clone()}
    meta = dict(kd.versions(), **sx.versions(SCRIPT), scheduler_config=json.dumps(sched_cfg))
    for case in BASE_CASES:
        t0, name, kind = time.time(), case["name"], case["kind"]
        # The first case of each pipeline: the pipeline's own output_type="pil" must give the stored image.
        check_pil = name in ("diffusers_euler", "diffusers_img2img", "diffusers_inpaint_blend")
        if kind == "txt2img":
            latent, image, time_ids, params = sx.run_case(pipe, case, sched_cfg, check_pil=check_pil)
            t = {"latent": latent, "image": image, "time_ids": time_ids}
        elif kind == "img2img":
            t, params, _ = sx.run_img2img_case(pipes, case, sched_cfg, check_pil=check_pil)
        elif kind == "handoff_base":
            latent, info, time_ids, cutoff = rg.handoff_base_stage(pipe, case, sched_cfg)
            t = {"latent": latent, "time_ids": time_ids}
            params = rg.case_params(pipe, case, keys, info, time_ids, {"discrete_timestep_cutoff": cutoff})
        else:  # A1111 / k-diffusion: the params make_sdxl_kdiffusion_goldens.all_cases stores
            latent, sigmas, time_ids = kd.run_case(pipe, model, case)
            t = {"latent": latent, "image": sx.decode_as_pipeline(pipe, latent), "sigmas": sigmas.clone()}
            params = {k: case[k] for k in ("name", "prompt", "negative", "steps", "cfg", "seed", "width", "height",
                                           "sampler", "schedule")}
            params.update(zero_negative=case["negative"] == "", time_ids=time_ids[0].tolist(), sigmas=sigmas.tolist())
        record(tensors, meta, name, t, params, time.time() - t0)
    for name, change in ABLATIONS.items():
        case = next(c for c in BASE_CASES if c["name"] == name)
        if case["kind"] == "txt2img":
            other = sx.run_case(pipe, dict(case, **change), sched_cfg)[0]
        else:  # the empty negative encoded instead of zeroed
            other = kd.run_case(pipe, model, case, zero_empty_negative=change["zero"])[0]
        diff = (other - tensors[f"{name}.latent"]).abs().max().item()
        print(f"  {name} with {change}: max |latent difference| {diff:.4f}")
        assert diff > 1e-3 * tensors[f"{name}.latent"].std().item(), name
    return tensors, meta


def run_refiner(models, tok_2, keys):
    refiner = StableDiffusionXLImg2ImgPipeline(
        vae=models["vae"], text_encoder=None, text_encoder_2=models["text_encoder_2"], tokenizer=None,
        tokenizer_2=tok_2, unet=models["unet"], scheduler=EulerDiscreteScheduler.from_config(sx.SCHEDULER_CONFIG),
        requires_aesthetics_score=True, force_zeros_for_empty_prompt=False, add_watermarker=False)
    refiner.set_progress_bar_config(disable=True)
    sched_cfg = scheduler_config(refiner)
    base_file = os.path.join(OUT, "fullsize_sdxl_base_cases.safetensors")
    with safe_open(base_file, "pt") as f:
        base_latent = f.get_tensor("handoff_base.latent")
        base_params = json.loads(f.metadata()["handoff_base.params"])
    tensors = {}
    meta = dict(sx.versions(SCRIPT), scheduler_config=json.dumps(sched_cfg), base_cases_sha256=sx.sha256(base_file))
    for case in REFINER_CASES:
        t0, name = time.time(), case["name"]
        if case["kind"] == "refiner_img2img":
            t, info, extra = rg.refiner_img2img_case(refiner, case, sched_cfg)
            if name != "refiner_img2img":  # the conditioning once is enough (790 KB each)
                t = {k: v for k, v in t.items() if k not in ("context", "text_embeds")}
        else:
            for k in ("prompt", "negative", "seed", "steps", "cfg", "denoising_end"):
                assert base_params[k] == case[k], k
            latent, image, info, time_ids, cutoff = rg.handoff_refiner_stage(refiner, case, sched_cfg, base_latent,
                                                                             base_params)
            t = {"init_latent": base_latent, "latent": latent, "image": image, "time_ids": time_ids}
            extra = {"base_" + k: base_params[k] for k in ("timesteps", "sigma_indices", "sigmas", "time_ids",
                                                          "pipeline_class", "discrete_timestep_cutoff")}
            extra.update(base_cases="tests/golden/data/fullsize_sdxl_base_cases.safetensors (handoff_base)",
                         discrete_timestep_cutoff=cutoff)
        record(tensors, meta, name, t, rg.case_params(refiner, case, keys, info, t["time_ids"], extra),
               time.time() - t0)
    return tensors, meta


def main():
    variant = sys.argv[1] if len(sys.argv) > 1 else "sdxl_base"
    assert variant in UNET_CONFIGS, f"usage: {SCRIPT} [sdxl_base|sdxl_refiner]"
    torch.set_num_threads(THREADS)
    start = time.time()
    keys = f"tests/data/keys/{variant}.ldm.json.gz"
    with tempfile.TemporaryDirectory() as tmp:
        tok, tok_2 = tokenizers(tmp)
    cases = BASE_CASES if variant == "sdxl_base" else REFINER_CASES
    check_prompts(cases, tok.get_vocab())
    assert tok.pad_token_id == tok.eos_token_id == 49407 and tok_2.pad_token_id == 0
    models = build_models(variant)
    print(f"built in {time.time() - start:.0f} s; torch threads {torch.get_num_threads()}")
    with torch.no_grad():
        if variant == "sdxl_base":
            tensors, meta = run_base(models, tok, tok_2, keys)
        else:
            tensors, meta = run_refiner(models, tok_2, keys)
    latents = {k: v for k, v in tensors.items() if k.endswith(".latent")}
    for a, b in itertools.combinations(latents, 2):
        assert latents[a].shape != latents[b].shape or not torch.equal(latents[a], latents[b]), (a, b)
    meta.update(keys=keys, torch_threads=str(THREADS),
                weights="make_fullsize_goldens.weight(i, name, shape) over the key list (fp16-rounded, used in fp32)")
    sx.save(os.path.join(OUT, f"fullsize_{variant}_cases.safetensors"), tensors, meta)
    print(f"{variant}: {time.time() - start:.0f} s in all; peak RSS {peak_rss_gb():.1f} GB")


if __name__ == "__main__":
    main()
