"""Renaming table: diffusers/transformers state-dict names -> original LDM single-file names (SD 1.x).

The facts of the mapping are those of the public SD 1.x checkpoints (CompVis LDM module names); the
code is ours and is generalised over the number of levels and layers_per_block, so it covers both
SD 1.5 (4 levels, 2 layers) and the tiny model (3 levels, 1 layer).

    from ldm_names import unet_to_ldm, vae_to_ldm, text_to_ldm
    ldm_name = unet_to_ldm(unet_config)["down_blocks.0.resnets.0.norm1.weight"]
    # -> "model.diffusion_model.input_blocks.1.0.in_layers.0.weight"

LDM layout of the UNet: input_blocks.0 is conv_in; level i contributes layers_per_block blocks
(resnet at .0, spatial transformer at .1) and, except the last level, one downsample block
(.0.op). output_blocks: level i (in diffusers' up order) has layers_per_block + 1 blocks; the last
one of a level also carries the upsampler, at .1, or at .2 when the block has a transformer.
"""

from __future__ import annotations

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.transformer."

# diffusers ResnetBlock2D (UNet) -> LDM ResBlock
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
# diffusers VAE resnet/attention -> LDM
_VAE_RESNET = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2",
               "conv_shortcut": "nin_shortcut"}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _split(rest: str, table: dict[str, str]) -> str:
    """Renames the leading module path of `rest` ('norm1.weight') through `table`."""
    for src in sorted(table, key=len, reverse=True):
        if rest.startswith(src + "."):
            return table[src] + rest[len(src):]
    raise KeyError(rest)


def _unet_prefixes(cfg: dict) -> list[tuple[str, str, dict | None]]:
    """(diffusers prefix, LDM prefix, inner rename table or None) for every block."""
    n = len(cfg["block_out_channels"])
    per = cfg["layers_per_block"]
    out: list[tuple[str, str, dict | None]] = []
    for i in range(n):
        for j in range(per):
            blk = 1 + i * (per + 1) + j
            out.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{blk}.0.", _UNET_RESNET))
            out.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{blk}.1.", None))
        if i < n - 1:
            out.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(i + 1) * (per + 1)}.0.op.", None))
        has_attn = cfg["up_block_types"][i].startswith("CrossAttn")
        for j in range(per + 1):
            blk = i * (per + 1) + j
            out.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{blk}.0.", _UNET_RESNET))
            out.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{blk}.1.", None))
        if i < n - 1:
            out.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{i * (per + 1) + per}.{2 if has_attn else 1}.", None))
    out.append(("mid_block.resnets.0.", "middle_block.0.", _UNET_RESNET))
    out.append(("mid_block.attentions.0.", "middle_block.1.", None))
    out.append(("mid_block.resnets.1.", "middle_block.2.", _UNET_RESNET))
    return out


def unet_name(cfg: dict, key: str) -> str:
    for src in sorted(_UNET_TOP, key=len, reverse=True):
        if key.startswith(src + "."):
            return UNET_PREFIX + _UNET_TOP[src] + key[len(src):]
    for src, dst, inner in _unet_prefixes(cfg):
        if key.startswith(src):
            rest = key[len(src):]
            return UNET_PREFIX + dst + (_split(rest, inner) if inner else rest)
    raise KeyError(f"no LDM name for UNet tensor {key!r}")


def vae_name(cfg: dict, key: str) -> str:
    n = len(cfg["block_out_channels"])
    part, rest = key.split(".", 1)
    if part in ("quant_conv", "post_quant_conv"):
        return VAE_PREFIX + key
    if part not in ("encoder", "decoder"):
        raise KeyError(f"no LDM name for VAE tensor {key!r}")
    p = rest.split(".")
    if p[0] in ("conv_in", "conv_out"):
        mapped = rest
    elif p[0] == "conv_norm_out":
        mapped = "norm_out." + ".".join(p[1:])
    elif p[0] == "mid_block" and p[1] == "resnets":
        mapped = f"mid.block_{int(p[2]) + 1}." + _split(".".join(p[3:]), _VAE_RESNET)
    elif p[0] == "mid_block" and p[1] == "attentions":
        mapped = "mid.attn_1." + _split(".".join(p[3:]), _VAE_ATTN)
    elif p[0] == "down_blocks" and p[2] == "resnets":
        mapped = f"down.{p[1]}.block.{p[3]}." + _split(".".join(p[4:]), _VAE_RESNET)
    elif p[0] == "down_blocks" and p[2] == "downsamplers":
        mapped = f"down.{p[1]}.downsample." + ".".join(p[4:])
    elif p[0] == "up_blocks" and p[2] == "resnets":  # diffusers numbers up blocks in reverse
        mapped = f"up.{n - 1 - int(p[1])}.block.{p[3]}." + _split(".".join(p[4:]), _VAE_RESNET)
    elif p[0] == "up_blocks" and p[2] == "upsamplers":
        mapped = f"up.{n - 1 - int(p[1])}.upsample." + ".".join(p[4:])
    else:
        raise KeyError(f"no LDM name for VAE tensor {key!r}")
    return VAE_PREFIX + part + "." + mapped


def vae_needs_conv_shape(key: str) -> bool:
    """LDM's VAE attention uses 1x1 convs ([C, C, 1, 1]) where diffusers uses Linear ([C, C])."""
    return ".mid_block.attentions." in key and key.endswith(".weight") and "group_norm" not in key


def text_name(key: str) -> str:
    if not key.startswith("text_model."):
        raise KeyError(f"no LDM name for text encoder tensor {key!r}")
    return TEXT_PREFIX + key


def _table(keys, fn) -> dict[str, str]:
    table = {k: fn(k) for k in keys}
    if len(set(table.values())) != len(table):
        dup = sorted({v for v in table.values() if list(table.values()).count(v) > 1})
        raise RuntimeError(f"LDM renaming is not one-to-one: {dup[:5]}")
    return table


def unet_to_ldm(cfg: dict, keys) -> dict[str, str]:
    return _table(keys, lambda k: unet_name(cfg, k))


def vae_to_ldm(cfg: dict, keys) -> dict[str, str]:
    return _table(keys, lambda k: vae_name(cfg, k))


def text_to_ldm(keys) -> dict[str, str]:
    return _table(keys, text_name)
