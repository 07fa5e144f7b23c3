"""Tiny random-weight SD 1.x- and SD 2.x-shaped models (diffusers UNet2DConditionModel, AutoencoderKL,
transformers CLIPTextModel), their inputs, and the reference outputs, for easel's component golden tests.

Run with the reference environment (tools/reference/README.md):
    source /work/refenv/env.sh && /usr/bin/python3 tools/reference/make_model_goldens.py
Writes tests/golden/data/model_<variant>.safetensors: weights under "unet.", "vae.", "text_encoder."
(diffusers/transformers names), inputs and outputs under "io.", and each component's config.json text in
the metadata (unet_config, vae_config, text_encoder_config), plus versions and the seed.

Every parameter is redrawn (normal, scaled) so that no block is a zero-initialised identity and every weight
influences the outputs the tests compare.
"""
import json
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden", "data")


class ZeroedAttnProcessor:
    """diffusers' classic attention, maths identical to AttnProcessor (softmax(q k^T * scale) v, heads split),
    with the scores computed in place into a zeroed buffer. torch 1.13's out-of-place baddbmm with beta=0 does not
    copy its input into the fresh result, and its kernel for small products (batch entries of under 400
    multiply-adds: the 1x1 mid block of a 64x64 image, tiny models) still reads that uninitialised result times
    beta, so NaN left in the allocator's memory leaks into the scores (578 of 3000 calls in a stress test). The
    in-place form's result is the zeroed buffer (0 of 3000); on clean memory both give the same bits."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        residual = hidden_states
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        ctx = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        key = attn.to_k(ctx)
        value = attn.to_v(ctx)
        query = attn.head_to_batch_dim(query)
        key = attn.head_to_batch_dim(key)
        value = attn.head_to_batch_dim(value)
        scores = torch.zeros(query.shape[0], query.shape[1], key.shape[1], dtype=query.dtype)
        scores.baddbmm_(query, key.transpose(-1, -2), beta=0, alpha=attn.scale)
        probs = scores.softmax(dim=-1)
        hidden_states = torch.bmm(probs, value)
        hidden_states = attn.batch_to_head_dim(hidden_states)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def randomize(module, gen, scale=0.2):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("norm.weight") or ".norm" in name and name.endswith("weight") or "layer_norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else 1
                s = scale if p.dim() == 1 else min(scale, 1.5 / fan_in ** 0.5)
                p.copy_(s * torch.randn(p.shape, generator=gen))


VARIANTS = {
    # SD 1.x shape: conv proj_in/out, heads given per model, QuickGELU CLIP, pad with EOS.
    "sd1_tiny": dict(
        weight_dtype=torch.float16,
        unet=dict(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(16, 32, 32),
                  layers_per_block=2, down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                  attention_head_dim=2, cross_attention_dim=32, norm_num_groups=4, use_linear_projection=False),
        vae=dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32),
                 layers_per_block=1, norm_num_groups=8, down_block_types=("DownEncoderBlock2D",) * 2,
                 up_block_types=("UpDecoderBlock2D",) * 2, sample_size=32, scaling_factor=0.18215),
        clip=dict(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                  num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
                  bos_token_id=0, eos_token_id=2, pad_token_id=1),
    ),
    # SD 2.x shape: linear proj_in/out, per-level heads, upcast attention, GELU CLIP.
    "sd2_tiny": dict(
        weight_dtype=torch.float32,
        unet=dict(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(16, 32, 32),
                  layers_per_block=2, down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                  attention_head_dim=(2, 4, 4), cross_attention_dim=48, norm_num_groups=4,
                  use_linear_projection=True, upcast_attention=True),
        vae=dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32),
                 layers_per_block=1, norm_num_groups=8, down_block_types=("DownEncoderBlock2D",) * 2,
                 up_block_types=("UpDecoderBlock2D",) * 2, sample_size=32, scaling_factor=0.18215),
        clip=dict(vocab_size=1000, hidden_size=48, intermediate_size=96, num_hidden_layers=3,
                  num_attention_heads=3, max_position_embeddings=77, hidden_act="gelu",
                  bos_token_id=0, eos_token_id=2, pad_token_id=1),
    ),
}


def git_hash():
    try:
        return subprocess.check_output(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], text=True).strip()
    except Exception:
        return "unknown"


def make(name, spec, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    unet = UNet2DConditionModel(**spec["unet"]).eval()
    vae = AutoencoderKL(**spec["vae"]).eval()
    te = CLIPTextModel(CLIPTextConfig(**spec["clip"])).eval()
    for m in (unet, vae, te):
        randomize(m, gen)
        # Weights stored in fp16 are rounded first, so the fp32 reference runs on exactly the stored values.
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(p.to(spec["weight_dtype"]).float())
    unet.set_attn_processor(ZeroedAttnProcessor())
    vae.set_attn_processor(ZeroedAttnProcessor())

    io = {}
    with torch.no_grad():
        # Text encoder: two sequences of 77 ids (BOS, words, EOS, EOS padding), last layer and clip skip 2.
        ids = torch.full((2, 77), 999, dtype=torch.int64)
        ids[:, 0] = 998
        words = torch.randint(3, 997, (2, 20), generator=gen)
        ids[0, 1:21] = words[0]
        ids[1, 1:9] = words[1, :8]
        ids[1, 9:] = 999
        out = te(ids, output_hidden_states=True)
        io["io.clip.input_ids"] = ids.to(torch.int32)
        io["io.clip.last_hidden_state"] = out.last_hidden_state
        io["io.clip.skip2"] = te.text_model.final_layer_norm(out.hidden_states[-2])

        # UNet: batch 2 (as CFG runs it), an integer and a fractional timestep.
        x = torch.randn((2, 4, 16, 16), generator=gen)
        ctx = torch.randn((2, 77, spec["unet"]["cross_attention_dim"]), generator=gen)
        io["io.unet.x"] = x
        io["io.unet.context"] = ctx
        for t, key in ((999.0, "t999"), (421.37, "t421_37")):
            io[f"io.unet.out_{key}"] = unet(x, torch.tensor([t, t]), encoder_hidden_states=ctx).sample

        # VAE: decode a latent (already divided by the scaling factor), encode an image.
        z = torch.randn((1, 4, 8, 8), generator=gen)
        io["io.vae.z"] = z
        io["io.vae.decoded"] = vae.decode(z).sample
        img = torch.rand((1, 3, 32, 32), generator=gen) * 2 - 1
        io["io.vae.image"] = img
        moments = vae.quant_conv(vae.encoder(img))
        mean, logvar = torch.chunk(moments, 2, dim=1)
        io["io.vae.mean"] = mean
        io["io.vae.logvar"] = logvar

    tensors = {}
    for prefix, m in (("unet.", unet), ("vae.", vae), ("text_encoder.", te)):
        for k, v in m.state_dict().items():
            if k.endswith("position_ids"):
                continue
            tensors[prefix + k] = v.to(spec["weight_dtype"]).contiguous()
    tensors.update({k: v.contiguous() for k, v in io.items()})
    metadata = {
        "unet_config": json.dumps(dict(unet.config)),
        "vae_config": json.dumps(dict(vae.config)),
        "text_encoder_config": te.config.to_json_string(),
        "script": "tools/reference/make_model_goldens.py",
        "git": git_hash(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "seed": str(seed),
        "dtype": str(spec["weight_dtype"]).replace("torch.", ""),
    }
    path = os.path.join(OUT, f"model_{name}.safetensors")
    safetensors_io.save_file(tensors, path, metadata)
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB)")


def main():
    os.makedirs(OUT, exist_ok=True)
    for i, (name, spec) in enumerate(VARIANTS.items()):
        make(name, spec, seed=1234 + i)


if __name__ == "__main__":
    main()
