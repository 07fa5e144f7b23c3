"""The tiny model's architecture: configs and builders for its three SD 1.x components.

All three are the stock classes real SD 1.x checkpoints use (diffusers' AutoencoderKL and
UNet2DConditionModel, transformers' CLIPTextModel); only the sizes differ. Configs are plain dicts
in diffusers/transformers' own key names, so they go to config.json unchanged.

    import refenv; refenv.ensure()                 # diffusers/transformers on sys.path
    from tiny_model import build_vae, build_unet, build_text_encoder, use_plain_attention
    vae = build_vae(); unet = build_unet(); te = build_text_encoder(vocab_size=597, bos=595, eos=596)
    use_plain_attention(vae); use_plain_attention(unet)

Why a custom attention processor: diffusers' classic AttnProcessor computes scores with
torch.baddbmm(torch.empty(...), q, k^T, beta=0); on torch 1.13 CPU, for small products, that lets
garbage from the uninitialised result through (tools/reference/README.md, "Known pitfalls") and turned
the training loss NaN. PlainAttnProcessor computes the same maths with a plain bmm.
"""

from __future__ import annotations

import copy

import torch

IMAGE_SIZE = 32          # pixels; the VAE downsamples 4x (3 block_out_channels) -> 8x8 latents
LATENT_CHANNELS = 4

VAE_CONFIG = {
    "_class_name": "AutoencoderKL",
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 3,
    "up_block_types": ["UpDecoderBlock2D"] * 3,
    # Full-resolution (32x32) stages dominate the cost, so they are narrow: 16 channels there cost
    # 180 MFLOP per image (encode + decode) against 420 for 32 channels, i.e. 2.3x the steps.
    "block_out_channels": [16, 32, 64],
    "layers_per_block": 1,
    "act_fn": "silu",
    "latent_channels": LATENT_CHANNELS,
    "norm_num_groups": 8,
    "sample_size": IMAGE_SIZE,
    "scaling_factor": 1.0,   # replaced by 1/std of the training latents after stage 1
}

TEXT_HIDDEN = 64

UNET_CONFIG = {
    "_class_name": "UNet2DConditionModel",
    "sample_size": IMAGE_SIZE // 4,
    "in_channels": LATENT_CHANNELS,
    "out_channels": LATENT_CHANNELS,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [32, 64, 64],
    "layers_per_block": 1,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 8,              # 4 and 8 channels per group (SD 1.x: 10 to 40)
    "norm_eps": 1e-5,
    "cross_attention_dim": TEXT_HIDDEN,
    # diffusers' (mis)name: for SD 1.x this field holds the NUMBER of heads at every level, which is
    # also what LDM's num_heads means. Head width = channels / 4 (8 and 16 here).
    "attention_head_dim": 4,
    "use_linear_projection": False,   # SD 1.x: proj_in/proj_out are 1x1 convs
}

TEXT_CONFIG = {
    "architectures": ["CLIPTextModel"],
    "model_type": "clip_text_model",
    "hidden_size": TEXT_HIDDEN,
    "intermediate_size": 4 * TEXT_HIDDEN,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",       # as OpenAI CLIP ViT-L/14, SD 1.x's text encoder
    "layer_norm_eps": 1e-5,
    "projection_dim": TEXT_HIDDEN,
    "initializer_range": 0.02,
    "initializer_factor": 1.0,
    "attention_dropout": 0.0,
    "dropout": 0.0,
    # vocab_size, bos_token_id, eos_token_id, pad_token_id: filled from the BPE vocabulary
}

# SD 1.x's training noise schedule (and the scheduler config exported with the model).
SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
}


def alphas_cumprod(schedule: dict = SCHEDULE) -> torch.Tensor:
    """scaled_linear: betas are linear in sqrt space (as diffusers' DDPMScheduler), float64 -> f32."""
    betas = torch.linspace(schedule["beta_start"] ** 0.5, schedule["beta_end"] ** 0.5,
                           schedule["num_train_timesteps"], dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).float()


def _init_kwargs(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def build_vae(cfg: dict | None = None):
    from diffusers import AutoencoderKL
    vae = AutoencoderKL(**_init_kwargs(cfg or VAE_CONFIG))
    use_plain_attention(vae)
    return vae


def build_unet(cfg: dict | None = None):
    from diffusers import UNet2DConditionModel
    unet = UNet2DConditionModel(**_init_kwargs(cfg or UNET_CONFIG))
    use_plain_attention(unet)
    return unet


def text_config(vocab_size: int, bos: int, eos: int, base: dict | None = None) -> dict:
    cfg = copy.deepcopy(base or TEXT_CONFIG)
    # pad = eos: SD 1.x pads prompts with <|endoftext|>. transformers pools at the first eos
    # (only when eos_token_id != 2); SD does not use the pooled output, but keep it right.
    cfg.update(vocab_size=vocab_size, bos_token_id=bos, eos_token_id=eos, pad_token_id=eos)
    return cfg


def build_text_encoder(vocab_size: int, bos: int, eos: int, cfg: dict | None = None):
    from transformers import CLIPTextConfig, CLIPTextModel
    c = text_config(vocab_size, bos, eos, cfg)
    return CLIPTextModel(CLIPTextConfig(**{k: v for k, v in c.items() if k != "architectures"}))


class PlainAttnProcessor:
    """diffusers' AttnProcessor maths (self/cross attention, optional group norm, residual,
    rescale), with scores = bmm(q, k^T) * scale instead of an out-of-place baddbmm with beta=0.
    No attention mask support: SD 1.x never passes one."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        if attention_mask is not None:
            raise ValueError("PlainAttnProcessor does not support attention masks")
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:  # [N, C, H, W] -> [N, H*W, C]
            n, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(n, c, h * w).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        query, key, value = (attn.head_to_batch_dim(t) for t in (query, key, value))
        if attn.upcast_attention:
            query, key = query.float(), key.float()
        scores = torch.bmm(query, key.transpose(-1, -2)) * attn.scale
        if attn.upcast_softmax:
            scores = scores.float()
        probs = scores.softmax(dim=-1).to(value.dtype)
        hidden_states = attn.batch_to_head_dim(torch.bmm(probs, value))
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))  # linear, dropout
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(n, c, h, w)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def use_plain_attention(model) -> None:
    model.set_attn_processor(PlainAttnProcessor())


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
