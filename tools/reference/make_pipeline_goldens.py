"""End-to-end txt2img / img2img goldens in k-diffusion semantics (what AUTOMATIC1111 and ComfyUI run) on a tiny
random-weight SD 1.x-shaped model, saved as a diffusers folder that easel loads through its normal path.

Run with the reference environment (tools/reference/README.md):
    source /work/refenv/env.sh && /usr/bin/python3 tools/reference/make_pipeline_goldens.py

Writes tests/golden/data/pipeline_sd1/ (model_index.json, unet/, vae/, text_encoder/ with fp16 safetensors,
tokenizer/ with a small CLIP-format BPE vocabulary, scheduler/) and tests/golden/data/pipeline_sd1_cases.safetensors:
for each case the final latent and the decoded image (uint8, rounded as diffusers' numpy_to_pil does), with
the case parameters in the metadata.

The reference loop is A1111's: CLIP last_hidden_state of BOS + tokens + EOS padded to 77 with EOS;
CFGDenoiser (cond and uncond in one batch, denoised = uncond + (cond - uncond) * scale) around k-diffusion's
CompVisDenoiser (quantize=False) over the model's float32 alphas_cumprod (scaled-linear betas built in float64,
as LDM does); sigmas from CompVisDenoiser.get_sigmas (Automatic) or get_sigmas_karras with the model's
sigma_min/max; initial noise torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * sigmas[0];
every later draw continues that generator with randn of the latent's shape (noise_sampler).
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
import safetensors_io  # noqa: E402
import bpe  # noqa: E402
import make_model_goldens as mg  # noqa: E402

import k_diffusion as K  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer  # noqa: E402

OUT = os.path.join(ROOT, "tests", "golden", "data")
FOLDER = os.path.join(OUT, "pipeline_sd1")

WORDS = ("a red green blue circle square triangle on the left right top bottom centre background small large "
         "photo of cat dog, masterpiece").split()


class LdmWrapper(torch.nn.Module):
    """What k-diffusion's CompVisDenoiser expects: alphas_cumprod and apply_model(x, t, cond)."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet
        betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
        self.register_buffer("alphas_cumprod", torch.cumprod(1.0 - betas, dim=0).to(torch.float32))

    def apply_model(self, x, t, cond):
        return self.unet(x, t, encoder_hidden_states=cond).sample


def cfg_denoiser(model, cond, uncond, scale):
    def f(x, sigma):
        x_in = torch.cat([x, x])
        s_in = torch.cat([sigma, sigma])
        out = model(x_in, s_in, cond=torch.cat([cond, uncond]))
        c, u = out.chunk(2)
        return u + (c - u) * scale
    return f


CASES = [
    # name, sampler, schedule, steps, cfg, seed, prompt, negative, init (img2img strength or None)
    ("euler", "euler", "automatic", 12, 7.0, 42, "a red circle on a blue background", "", None),
    ("euler_a", "euler_a", "automatic", 12, 7.0, 1234, "a small green triangle at the top", "blurry", None),
    ("dpmpp2m_karras", "dpm++2m", "karras", 12, 5.0, 7, "a large square, masterpiece", "", None),
    ("heun", "heun", "automatic", 8, 6.0, 99, "photo of a cat", "dog", None),
    ("dpmpp2m_sde_karras", "dpm++2m_sde", "karras", 10, 7.0, 2024, "a blue triangle on the right", "", None),
    ("lms", "lms", "automatic", 12, 7.0, 5, "a green square", "", None),
    ("img2img_euler_a", "euler_a", "automatic", 12, 7.0, 77, "a red circle", "", 0.6),
]


def run_sampler(name, denoiser, x, sigmas, gen):
    noise = lambda s, sn: torch.randn(x.shape, generator=gen)  # noqa: E731
    if name == "euler":
        return K.sampling.sample_euler(denoiser, x, sigmas, disable=True)
    if name == "euler_a":
        return K.sampling.sample_euler_ancestral(denoiser, x, sigmas, disable=True, noise_sampler=noise)
    if name == "heun":
        return K.sampling.sample_heun(denoiser, x, sigmas, disable=True)
    if name == "lms":
        return K.sampling.sample_lms(denoiser, x, sigmas, disable=True)
    if name == "dpm++2m":
        return K.sampling.sample_dpmpp_2m(denoiser, x, sigmas, disable=True)
    if name == "dpm++2m_sde":
        return K.sampling.sample_dpmpp_2m_sde(denoiser, x, sigmas, disable=True, noise_sampler=noise)
    if name == "dpm2":
        return K.sampling.sample_dpm_2(denoiser, x, sigmas, disable=True)
    if name == "dpm++sde":
        return K.sampling.sample_dpmpp_sde(denoiser, x, sigmas, disable=True, noise_sampler=noise)
    if name == "ddim":  # ComfyUI's ddim sampler is k-diffusion's sample_euler (the schedule is what differs)
        return K.sampling.sample_euler(denoiser, x, sigmas, disable=True)
    if name == "lcm":  # ComfyUI's sample_lcm, as make_sampler_goldens.py restates it
        import make_sampler_goldens as sg
        return sg.sample_lcm(denoiser, x, sigmas, noise)
    raise ValueError(name)


def encode(tok, te, text):
    ids = tok(text, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    return te(ids).last_hidden_state


def main():
    spec = mg.VARIANTS["sd1_tiny"]
    torch.manual_seed(4321)
    gen = torch.Generator().manual_seed(4321)

    # Tokenizer: a small CLIP-format BPE vocabulary (byte symbols, merges for WORDS, specials).
    vocab, merges = bpe.build_bpe([" ".join(WORDS)])
    tok_dir = os.path.join(FOLDER, "tokenizer")
    bpe.write_files(tok_dir, vocab, merges)
    with open(os.path.join(tok_dir, "tokenizer_config.json"), "w") as f:
        json.dump(bpe.tokenizer_config(), f, indent=1)
    tok = CLIPTokenizer(os.path.join(tok_dir, "vocab.json"), os.path.join(tok_dir, "merges.txt"), pad_token="<|endoftext|>")

    clip_cfg = dict(spec["clip"], vocab_size=len(vocab), bos_token_id=vocab["<|startoftext|>"],
                    eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"])
    unet = UNet2DConditionModel(**spec["unet"]).eval()
    vae = AutoencoderKL(**spec["vae"]).eval()
    te = CLIPTextModel(CLIPTextConfig(**clip_cfg)).eval()
    for m in (unet, vae, te):
        mg.randomize(m, gen)
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(p.half().float())
    unet.set_attn_processor(mg.ZeroedAttnProcessor())
    vae.set_attn_processor(mg.ZeroedAttnProcessor())

    # The diffusers folder.
    for name, m in (("unet", unet), ("vae", vae), ("text_encoder", te)):
        d = os.path.join(FOLDER, name)
        os.makedirs(d, exist_ok=True)
        fname = "model.safetensors" if name == "text_encoder" else "diffusion_pytorch_model.safetensors"
        sd = {k: v.half().contiguous() for k, v in m.state_dict().items() if not k.endswith("position_ids")}
        safetensors_io.save_file(sd, os.path.join(d, fname), {"format": "pt"})
        cfg = te.config.to_dict() if name == "text_encoder" else dict(m.config)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1, default=str)
    os.makedirs(os.path.join(FOLDER, "scheduler"), exist_ok=True)
    with open(os.path.join(FOLDER, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump({"_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
                   "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "prediction_type": "epsilon",
                   "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
                   "clip_sample": False}, f, indent=1)
    with open(os.path.join(FOLDER, "model_index.json"), "w") as f:
        json.dump({"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.3",
                   "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
                   "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
                   "scheduler": ["diffusers", "PNDMScheduler"], "safety_checker": [None, None],
                   "feature_extractor": [None, None], "requires_safety_checker": False}, f, indent=1)

    # The same model as an original-LDM single file with its yaml (tools/train/export.py's writer), which easel
    # must load to the same image: the single-file path (key rename, yaml config) is then covered too.
    import export  # noqa: E402  (tools/train)
    ck = {"unet": unet.state_dict(), "vae": vae.state_dict(),
          "text_encoder": {k: v for k, v in te.state_dict().items() if not k.endswith("position_ids")},
          "unet_config": dict(unet.config), "vae_config": dict(vae.config), "text_config": te.config.to_dict(),
          "tokenizer_dir": tok_dir}
    single = os.path.join(OUT, "pipeline_sd1_single")
    os.makedirs(single, exist_ok=True)
    y = export.ldm_yaml(ck)
    yaml_text = export.to_ldm_yaml_text(y)
    with open(os.path.join(single, "tiny-sd1.yaml"), "w") as f:
        f.write(yaml_text)
    safetensors_io.save_file(export.to_ldm_state(ck), os.path.join(single, "tiny-sd1.safetensors"),
                             export.ldm_metadata(ck, yaml_text))

    model = K.external.CompVisDenoiser(LdmWrapper(unet), quantize=False)
    tensors, meta = {}, {"script": "tools/reference/make_pipeline_goldens.py", "git": mg.git_hash(),
                         "torch": torch.__version__, "width": "32", "height": "32"}
    init_img = (torch.rand((1, 3, 32, 32), generator=torch.Generator().manual_seed(5)) * 255).round().to(torch.uint8)
    tensors["init_image"] = init_img
    with torch.no_grad():
        for name, sampler, schedule, steps, cfg, seed, prompt, negative, strength in CASES:
            cond, uncond = encode(tok, te, prompt), encode(tok, te, negative)
            if schedule == "karras":
                sigmas = K.sampling.get_sigmas_karras(steps, model.sigma_min.item(), model.sigma_max.item())
            else:
                sigmas = model.get_sigmas(steps)
            g = torch.Generator().manual_seed(seed)
            shape = (1, 4, 16, 16)
            if strength is None:
                x = torch.randn(shape, generator=g) * sigmas[0]
            else:
                t_enc = int(min(strength, 0.999) * steps)
                sigmas = sigmas[steps - t_enc - 1:]
                img = init_img.float() / 127.5 - 1.0
                moments = vae.quant_conv(vae.encoder(img))
                mean, logvar = torch.chunk(moments, 2, dim=1)
                std = torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0))
                lat = (mean + std * torch.randn(mean.shape, generator=g)) * vae.config.scaling_factor
                x = lat + torch.randn(lat.shape, generator=g) * sigmas[0]
            den = cfg_denoiser(model, cond, uncond, cfg)
            x0 = run_sampler(sampler, den, x, sigmas, g)
            img = vae.decode(x0 / vae.config.scaling_factor).sample
            img8 = ((img / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
            tensors[f"{name}.latent"] = x0.contiguous()
            tensors[f"{name}.image"] = img8.contiguous()
            meta[f"{name}.params"] = json.dumps(dict(sampler=sampler, schedule=schedule, steps=steps, cfg=cfg, seed=seed,
                                                     prompt=prompt, negative=negative, strength=strength))
            print(f"{name}: latent std {x0.std().item():.3f}, image mean {img8.float().mean().item():.1f}")
    safetensors_io.save_file(tensors, os.path.join(OUT, "pipeline_sd1_cases.safetensors"), meta)
    print("wrote", FOLDER)


if __name__ == "__main__":
    main()
