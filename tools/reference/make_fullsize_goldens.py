"""Full-size SD 1.5 and SD 2.1 (768-v) parity without shipping 2-3 GB checkpoints: the weights are a pure function
of the published tensor list (tests/data/keys/sd15.ldm.json.gz / sd21.ldm.json.gz: the LDM single-file names
and shapes of v1-5-pruned-emaonly and v2-1_768-ema-pruned)
and torch's CPU generator, so the C++ test (tests/golden/fullsize_test.cpp) rebuilds the same checkpoint bit for
bit with easel's TorchCpuGenerator, writes it as an fp16 single file and loads it the way users load theirs.

The rule, for tensor number i (0-based, in the list's order) with shape S:
    x = torch.randn(S, generator=torch.Generator().manual_seed(1000 + i))
    1-D, "norm" or ".ln_" in the name, ends in "weight"  -> 1 + 0.1 * x
    other 1-D and 0-D                                     -> 0.05 * x
    2-D and more                                          -> x * min(0.2, 1 / sqrt(numel / S[0]))
    ...embeddings.position_ids                            -> arange(77), int64 (as real checkpoints store it)
then rounded to fp16 (the file easel reads is fp16; the reference computes in fp32 on the rounded values).

The reference: diffusers' single-file converters (convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint,
convert_ldm_clip_checkpoint, or convert_open_clip_checkpoint for SD 2.x, which keeps 23 of the 24 stored
OpenCLIP layers: the penultimate layer) turn the LDM dict into diffusers/transformers models with the published
configs; SD 2.1 768 is a v-prediction model (k-diffusion's CompVisVDenoiser), SD 2.x prompts pad with id 0 after
the end token (A1111's OpenCLIP embedder); CLIP's real BPE vocabulary (../shared/data/clip, turned into vocab.json + merges.txt in a
temporary folder as make_tokenizer_goldens.py does) tokenizes. Generation is the k-diffusion loop of
make_pipeline_goldens.py (A1111 semantics) at 64x64 (latent 8x8): small images, full-size networks.

Run with the reference environment (tools/reference/README.md); a few minutes and up to 12 GB of memory:
    source /work/refenv/env.sh && /usr/bin/python3 tools/reference/make_fullsize_goldens.py [sd15|sd21]
Writes tests/golden/data/fullsize_<variant>_cases.safetensors.
"""
import contextlib
import gzip
import io
import json
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402
import make_model_goldens as mg  # noqa: E402
import make_pipeline_goldens as pg  # noqa: E402
import make_key_lists as mk  # noqa: E402

import k_diffusion as K  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
from diffusers.loaders import single_file_utils as sfu  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer  # noqa: E402

OUT = os.path.join(ROOT, "tests", "golden", "data")
VOCAB = os.path.join(ROOT, "..", "shared", "data", "clip")

CASES = [
    # name, sampler, schedule, steps, cfg, seed, prompt (A1111 syntax, for easel), the same prompt as A1111's
    # parse_prompt_attention splits it (pieces with weights, for this script), negative
    ("euler_a", "euler_a", "automatic", 6, 7.0, 42, "a photo of a cat, (masterpiece:1.2)",
     [("a photo of a cat, ", 1.0), ("masterpiece", 1.2)], "blurry"),
    ("dpmpp2m_karras", "dpm++2m", "karras", 6, 5.0, 7, "an astronaut riding a horse",
     [("an astronaut riding a horse", 1.0)], ""),
]


def weight(i, name, shape):
    if name.endswith("embeddings.position_ids"):
        return torch.arange(shape[-1], dtype=torch.int64).reshape(shape)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1000 + i))
    if len(shape) <= 1:
        norm = ("norm" in name or ".ln_" in name) and name.endswith("weight") and len(shape) == 1
        x = 1.0 + 0.1 * x if norm else 0.05 * x
    else:
        x = x * min(0.2, 1.0 / math.sqrt(math.prod(shape) / shape[0]))
    return x.half().float()


VARIANTS = {
    "sd15": dict(unet=mk.SD15_UNET, text=mk.CLIP_L, open_clip=False, v=False),
    "sd21": dict(unet=mk.SD21_UNET, text=mk.OPEN_CLIP_H, open_clip=True, v=True),
}


def main():
    variant = sys.argv[1] if len(sys.argv) > 1 else "sd15"
    spec = VARIANTS[variant]
    with gzip.open(os.path.join(ROOT, "tests", "data", "keys", f"{variant}.ldm.json.gz"), "rt") as f:
        tensors = json.load(f)["tensors"]
    ldm = {name: weight(i, name, shape) for i, (name, shape, _) in enumerate(tensors)}
    te = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in spec["text"].items() if k != "architectures"})).eval()
    with contextlib.redirect_stdout(io.StringIO()):
        fu = sfu.convert_ldm_unet_checkpoint(ldm, dict(spec["unet"]))
        fv = sfu.convert_ldm_vae_checkpoint(ldm, dict(mk.SD_VAE))
        ft = sfu.convert_open_clip_checkpoint(te, ldm) if spec["open_clip"] else sfu.convert_ldm_clip_checkpoint(ldm)
    ft.pop("text_model.embeddings.position_ids", None)
    ucfg = {k: v for k, v in spec["unet"].items() if not k.startswith("_")}
    vcfg = {k: v for k, v in mk.SD_VAE.items() if not k.startswith("_")}
    unet = UNet2DConditionModel(**ucfg).eval()
    unet.load_state_dict(fu)
    vae = AutoencoderKL(**vcfg).eval()
    vae.load_state_dict(fv)
    missing, unexpected = te.load_state_dict(ft, strict=False)
    assert not missing, missing
    assert all(k.startswith("text_projection") for k in unexpected), unexpected
    del ldm, fu, fv, ft
    unet.set_attn_processor(mg.ZeroedAttnProcessor())
    vae.set_attn_processor(mg.ZeroedAttnProcessor())
    import tempfile
    import make_tokenizer_goldens as tg
    tmp = tempfile.mkdtemp()
    tok = CLIPTokenizer(*tg.vocab_from_gz(os.path.join(VOCAB, "bpe_simple_vocab_16e6.txt.gz"), tmp))

    pad = 0 if spec["open_clip"] else None
    if spec["v"]:
        model = K.external.CompVisVDenoiser(pg.LdmWrapper(unet), quantize=False)
    else:
        model = K.external.CompVisDenoiser(pg.LdmWrapper(unet), quantize=False)
    out = {}
    meta = {"script": "tools/reference/make_fullsize_goldens.py", "git": mg.git_hash(), "torch": torch.__version__,
            "keys": f"tests/data/keys/{variant}.ldm.json.gz", "width": "64", "height": "64",
            "prediction": "v" if spec["v"] else "epsilon"}
    with torch.no_grad():
        for name, sampler, schedule, steps, cfg, seed, prompt, pieces, negative in CASES:
            cond = a1111_encode(tok, te, pieces, pad)
            uncond = a1111_encode(tok, te, [(negative, 1.0)], pad)
            if schedule == "karras":
                sigmas = K.sampling.get_sigmas_karras(steps, model.sigma_min.item(), model.sigma_max.item())
            else:
                sigmas = model.get_sigmas(steps)
            g = torch.Generator().manual_seed(seed)
            x = torch.randn((1, 4, 8, 8), generator=g) * sigmas[0]
            x0 = pg.run_sampler(sampler, pg.cfg_denoiser(model, cond, uncond, cfg), x, sigmas, g)
            img = vae.decode(x0 / 0.18215).sample
            if not (torch.isfinite(x0).all() and torch.isfinite(img).all()):
                sys.exit(f"{name}: non-finite output; refusing to write goldens")
            img8 = ((img / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
            out[f"{name}.cond"] = cond.contiguous()
            out[f"{name}.latent"] = x0.contiguous()
            out[f"{name}.image"] = img8.contiguous()
            meta[f"{name}.params"] = json.dumps(dict(sampler=sampler, schedule=schedule, steps=steps, cfg=cfg,
                                                     seed=seed, prompt=prompt, negative=negative))
            print(f"{name}: cond std {cond.std().item():.3f}, latent std {x0.std().item():.3f}, "
                  f"image mean {img8.float().mean().item():.1f} std {img8.float().std().item():.1f}")
    safetensors_io.save_file(out, os.path.join(OUT, f"fullsize_{variant}_cases.safetensors"), meta)


def a1111_encode(tok, te, pieces, pad=None):
    """A1111's FrozenCLIPEmbedderWithCustomWords for one chunk: each (text, weight) piece tokenized on its own,
    BOS + tokens + EOS padding to 77, last hidden state, multiply by the weights, restore the mean
    ("Original" emphasis)."""
    ids, weights = [], []
    for piece, w in pieces:
        t = tok(piece, add_special_tokens=False).input_ids
        ids += t
        weights += [w] * len(t)
    ids = [tok.bos_token_id] + ids[:75] + [tok.eos_token_id] * (76 - min(75, len(ids)))
    if pad is not None:  # A1111's OpenCLIP embedder: everything after the first end token becomes id_pad (0)
        first = ids.index(tok.eos_token_id)
        ids = ids[:first + 1] + [pad] * (76 - first)
    weights = [1.0] + weights[:75] + [1.0] * (76 - min(75, len(weights)))
    z = te(torch.tensor([ids])).last_hidden_state
    w = torch.tensor(weights).reshape(1, -1, 1)
    original_mean = z.mean()
    z = z * w
    return z * (original_mean / z.mean())


if __name__ == "__main__":
    main()
