#!/work/refvenv/bin/python
"""SDXL refiner, base-to-refiner handoff and SDXL Turbo goldens from diffusers 0.30.3 on tiny random-weight models.

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline, after
make_sdxl_goldens.py has written tests/golden/data/pipeline_sdxl/ (this script reads that folder and imports that
script for its conventions: tokenizers, weight draws, init images, decoding, the safetensors writer):

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_sdxl_refiner_goldens.py

It takes about 6 s on an idle two-core machine. Nothing is downloaded. Every run writes the same bytes (the
folder through save_pretrained, whose safetensors files carry one metadata key; the cases file through
safetensors_io.py). Versions: torch 2.4.1 (CPU), diffusers 0.30.3, transformers 4.40.2, huggingface_hub 0.36.2.
All computation is float32 on the CPU with diffusers' default attention processor (torch's
scaled_dot_product_attention). If pipeline_sdxl/ is regenerated with other weights, rerun this script: the cases
file records the sha256 of the base folder's weight files it used (metadata base_weights_sha256).

It writes two things:

1. tests/golden/data/pipeline_sdxl_refiner/ (about 930 KB): a refiner-shaped diffusers folder as
   StableDiffusionXLImg2ImgPipeline.save_pretrained writes stabilityai/stable-diffusion-xl-refiner-1.0's layout
   (safe_serialization, variant None, after .to(float16)):
   - model_index.json: _class_name StableDiffusionXLImg2ImgPipeline, text_encoder and tokenizer [null, null]
     (also feature_extractor and image_encoder, as every 0.30 save writes them), requires_aesthetics_score true,
     force_zeros_for_empty_prompt false (the refiner's values); text_encoder_2, tokenizer_2, unet, vae, scheduler.
   - text_encoder_2/, tokenizer_2/, vae/, scheduler/: byte-identical to pipeline_sdxl/'s (checked): the real
     refiner shares OpenCLIP bigG and the VAE with the base, and diffusers' ensemble example passes the base's
     text_encoder_2 and vae to the refiner. So: CLIPTextModelWithProjection hidden 48, intermediate 96, 2 layers,
     4 heads, gelu, projection_dim 40, vocabulary 591 (bos 589, eos 590, pad 0); tokenizer_2 with pad "!" (id 0);
     the 2-level VAE (downscale 2, scaling_factor 0.13025); EulerDiscreteScheduler with SDXL's config ("leading",
     steps_offset 1, scaled_linear 0.00085 to 0.012, epsilon). The refiner's own scheduler config has the same values.
   - unet/: UNet2DConditionModel in the refiner's layout at tiny widths (real refiner values in brackets):
     sample_size 32 [128], down (DownBlock2D, CrossAttnDownBlock2D, CrossAttnDownBlock2D, DownBlock2D),
     mid UNetMidBlock2DCrossAttn, up (UpBlock2D, CrossAttnUpBlock2D, CrossAttnUpBlock2D, UpBlock2D),
     block_out_channels (8, 16, 16, 16) [(384, 768, 1536, 1536)], layers_per_block 2 [2],
     transformer_layers_per_block 2 [4] (an int: every cross-attention level, the mid block and, reversed, the up
     blocks), attention_head_dim (2, 4, 4, 2) [(6, 12, 12, 6)] (diffusers' name for the head count: 4 channels per
     head on levels 1 and 2; the mid block takes the last entry, 2 heads of 8 channels, as the real refiner's mid
     block has 6 heads of 256 channels where levels 1 and 2 have 12 of 64 and 128), use_linear_projection true,
     cross_attention_dim 48 [1280] (bigG alone), addition_embed_type "text_time", addition_time_embed_dim 8 [256],
     projection_class_embeddings_input_dim 80 = 40 + 5 * 8 [2560 = 1280 + 5 * 256], norm_num_groups 4 [32],
     upcast_attention false. About 665 KB in fp16.
     Weights: make_sdxl_goldens.redraw (the same rule as the base's: norms 1 + 0.1 randn, matrices randn *
     min(0.2, 1.5 / sqrt(fan_in)), other biases 0.2 randn, each rounded to fp16) from one torch.Generator seeded
     REFINER_SEED = 2025, named_parameters() order.
   The runs below reload both folders with from_pretrained(torch_dtype=torch.float32) (the script checks the
   refiner UNet's fp16-rounded weights round-trip bit for bit, and that the refiner's text_encoder_2 and vae equal
   the base's).

2. tests/golden/data/pipeline_sdxl_refiner_cases.safetensors (about 290 KB). Per case <name> (float32 unless said;
   every image 64x64, every latent [1, 4, 32, 32]):
    <name>.latent        [1, 4, 32, 32]  the final latent the pipeline returns with output_type="latent" (not divided
                                         by the scaling factor)
    <name>.image         uint8 [64, 64, 3] (HWC, RGB) that latent decoded as the pipeline does (latent / 0.13025,
                                         vae.decode, round(clamp(x / 2 + 0.5, 0, 1) * 255)); checked for every case
                                         against the pipeline's own output_type="pil"
    <name>.time_ids      [B, 5] or [B, 6] the add_time_ids the UNet got (B = 2 with CFG: row 0 negative, row 1
                                         positive; B = 1 without)
    <name>.init          uint8 [1, 3, 64, 64] (refiner img2img only) the init image, CHW RGB:
                                         make_sdxl_goldens.make_init_image(64, 64, init_variant)
    <name>.init_latents  [1, 4, 32, 32]  (refiner img2img only) 0.13025 * (mean + std * eps): the VAE posterior
                                         sample of the init image (generator draw 1)
    <name>.context       [2, 77, 48]     (refiner img2img only) encoder_hidden_states the UNet got: [negative, positive]
    <name>.text_embeds   [2, 40]         (refiner img2img only) added_cond_kwargs["text_embeds"]: [negative, positive]
    base_refiner_handoff.base_latent   [1, 4, 32, 32]  the base pipeline's output at denoising_end (what it hands over)
    base_refiner_handoff.base_time_ids [2, 6]          the base's time_ids
   Metadata <name>.params (JSON): name, kind, pipeline_class, folder, scheduler, scheduler_class, prompt, prompt_2,
   negative (null = negative_prompt None), negative_2, steps, cfg and guidance (the same: guidance_scale), seed,
   width, height, do_classifier_free_guidance, strength, aesthetic_score, negative_aesthetic_score, denoising_start,
   denoising_end, init_variant, requires_aesthetics_score, force_zeros_for_empty_prompt, the six size keys of
   make_sdxl_goldens (all null: defaults), all_timesteps and all_sigmas (the scheduler's whole set_timesteps(steps)
   schedule; all_sigmas ends with the appended 0), timesteps (those the UNet got), sigma_indices (the scheduler's
   step_index at each of them: step k goes from all_sigmas[i_k] to all_sigmas[i_k + 1]), sigmas (those sigmas plus
   the one the last step ends at), time_ids. The handoff adds base_timesteps, base_sigma_indices, base_sigmas,
   base_time_ids, base_pipeline_class, base_folder, base_discrete_timestep_cutoff, discrete_timestep_cutoff; the
   turbo cases add scheduler_config (the EulerAncestralDiscreteScheduler's) and init_noise_sigma. File metadata:
   script, versions, seed (2025), scheduler_config, refiner_unet_config, refiner_unet_sha256, base_weights_sha256.

Cases (guidance 5.0 unless said; each call gets generator=torch.Generator("cpu").manual_seed(seed)):
    refiner_img2img        StableDiffusionXLImg2ImgPipeline on the refiner folder, Euler, 8 steps, strength 0.3,
                           init_variant 1, seed 201, prompt "a red circle on a blue background", negative
                           "a green square", aesthetic_score 6.0 / negative_aesthetic_score 2.5 (the defaults).
                           Runs timesteps 126, 1 (sigma indices 6, 7: 0.402218, 0.0413145 -> 0).
                           time_ids [[64, 64, 0, 0, 2.5], [64, 64, 0, 0, 6.0]].
    refiner_img2img_noneg  the same with negative_prompt None (same seed and init).
    base_refiner_handoff   ensemble of experts, seed 211, prompt "photo of a cat on the left, masterpiece",
                           negative "a small dog": StableDiffusionXLPipeline on pipeline_sdxl/, Euler, 10 steps,
                           denoising_end 0.8, output_type "latent" (timesteps 901 801 ... 201, time_ids
                           [64, 64, 0, 0, 64, 64] twice); then the refiner's img2img pipeline with image = that
                           latent, the same 10 steps, denoising_start 0.8 (strength left at 0.3: ignored), its own
                           generator seeded 211 (timesteps 101, 1; time_ids as refiner_img2img's).
    turbo                  SDXL Turbo's way on the *base* folder: StableDiffusionXLPipeline with
                           EulerAncestralDiscreteScheduler.from_config(base config with timestep_spacing "trailing"),
                           guidance_scale 0.0, 1 step, seed 223, prompt "a small green triangle on the top", no
                           negative. Timestep 999 (sigma 14.6146 -> 0); time_ids [[64, 64, 0, 0, 64, 64]].
    turbo_4                the same with 4 steps: timesteps 999 749 499 249 (sigmas 14.6146, 4.08173, 1.61289,
                           0.693205 -> 0).
Checks that are not saved: refiner_img2img with aesthetic_score 7 and with negative_aesthetic_score 1 changes the
latent (so the case tests both); refiner_img2img_noneg with negative_prompt "" gives the same latent bit for bit;
refiner_img2img with prompt_2 and negative_prompt_2 set gives the same latent bit for bit (ignored, below); no two
cases share a latent.

What a reimplementation must match (diffusers 0.30.3; the script asserts each point, on every case it applies to)
---------------------------------------------------------------------------------------------------------------
Refiner text conditioning:
- Only tokenizer_2 / text_encoder_2 (bigG). ids = tokenizer_2(prompt, padding max_length 77, truncation): BOS,
  words, EOS, then "!" (0) padding. encoder_hidden_states = text_encoder_2(ids).hidden_states[-2]: the output of the
  penultimate layer (the input of the last one), no final layer norm, [1, 77, 48] (1280 wide in the real
  refiner): nothing is concatenated (the base concatenates CLIP-L's 32 and bigG's 48 to 80).
- The pooled vector (add_text_embeds) is text_encoder_2(ids).text_embeds = text_projection(final_layer_norm(
  last_hidden_state)[first EOS position]), [1, 40] (1280 in the real refiner, whose bigG projection is 1280 too).
- prompt_2 and negative_prompt_2 are ignored: encode_prompt zips [prompt, prompt_2] with the one tokenizer
  [tokenizer_2], so bigG sees `prompt` (and `negative_prompt`), never prompt_2 (checked bit for bit).
- The negative: with force_zeros_for_empty_prompt false (the refiner's model_index), negative_prompt None becomes ""
  and is encoded like any prompt: ids [589, 590, 0, 0, ...], its penultimate state and its projected pooled vector
  (checked: bit-identical to negative_prompt ""; refiner_img2img_noneg.context[0] / text_embeds[0] are that encoding).
  The zeroed negative (zeros for both context and pooled vector) happens only when force_zeros_for_empty_prompt is
  true, as in the base folder.
- CFG batch [negative, positive]: context, text_embeds and time_ids concatenated in that order; noise = uncond +
  guidance * (cond - uncond); do_classifier_free_guidance = guidance_scale > 1.
Refiner time ids (requires_aesthetics_score true: 5 numbers, so the add embedding is 40 + 5 * 8 = 80 wide):
- positive: (original_h, original_w, crop_top, crop_left, aesthetic_score); negative: (negative_original_h,
  negative_original_w, negative_crop_top, negative_crop_left, negative_aesthetic_score). Defaults: original_size =
  (H, W) = the latent's size * vae_scale_factor (the init image's size), crops (0, 0), negative_original_size =
  original_size, negative_crops_coords_top_left = its own argument, default (0, 0) (unlike the 6-number branch,
  which uses the positive crop), aesthetic_score 6.0, negative_aesthetic_score 2.5. target_size is not used at all.
  So here [[64, 64, 0, 0, 2.5], [64, 64, 0, 0, 6.0]] (row 0 negative).
- The UNet embeds each of the 5 numbers with its 8-wide sinusoidal time projection (as the 6 of the base), flattens
  them to 40 and concatenates [text_embeds (40), those 40] -> linear_1 (80 -> 32), silu, linear_2, added to the
  timestep embedding. The pipeline refuses a UNet whose add embedding width does not match 8 * len(ids) + 40.
Refiner img2img (no denoising_start):
- Timesteps: set_timesteps(N) (Euler "leading", steps_offset 1: 876 751 626 501 376 251 126 1 for N = 8), of which
  the last n = min(int(N * strength), N) run: 8 * 0.3 = 2.4 -> 2 steps, 126 and 1, sigma indices 6 and 7. No
  set_begin_index: the scheduler finds the index of 126 by value.
- Generator draws (each a CPU randn of [1, 4, 32, 32]): 1. eps of the init image's VAE posterior sample, 2. the
  noise, then one per Euler step (EulerDiscreteScheduler.step always draws; with s_churn 0 the draw is unused).
  Checked through the generator's final state.
- The init image: x = 2 * u8 / 255 - 1 (CHW, its own size), z0 = 0.13025 * (mean + exp(0.5 * logvar) * eps1), first
  latent z0 + sigma(126) * noise (Euler add_noise), the UNet's input that divided by sqrt(sigma^2 + 1).
Base-to-refiner handoff (denoising_end / denoising_start):
- cutoff = int(round(T - f * T)) with T = num_train_timesteps = 1000, f = denoising_end (base) or
  denoising_start (refiner): 0.8 -> 200 for both. Both stages call set_timesteps(N) with the same N = 10 ("leading",
  steps_offset 1): timesteps 901 801 701 601 501 401 301 201 101 1, sigmas
  8.39069 5.13443 3.34776 2.29285 1.62369 1.16822 0.835653 0.574051 0.346187 0.0413145 0.
- Base (StableDiffusionXLPipeline, 8.1 "Apply denoising_end"): keeps the timesteps t >= cutoff, taken from the front:
  n_base = #{t >= 200} = 8, timesteps 901 ... 201, sigma indices 0..7. Its last step goes from sigma[7] = 0.574051
  to sigma[8] = 0.346187, so the latent it hands over is at sigma[8] = sigma(t = 101), not sigma(200). It is the
  sampler's x (x0 + sigma * eps form, not divided by sqrt(sigma^2 + 1) nor by the scaling factor). Its first latent
  is randn (draw 1) * init_noise_sigma = sqrt(sigma[0]^2 + 1) = 8.45007 ("leading"); 1 + 8 draws in all.
- Refiner (StableDiffusionXLImg2ImgPipeline.get_timesteps with denoising_start): strength is ignored; keeps the
  timesteps t < cutoff, taken from the end: n_ref = #{t < 200} = 2, timesteps 101 and 1, sigma indices 8 and 9
  (found by value: 101 is index 8), steps sigma[8] -> sigma[9] -> 0. n_base + n_ref = N: every timestep runs exactly
  once, in one stage or the other (with the same N, scheduler config and f; for a second-order scheduler diffusers
  adds 1 to an even n_ref, not exercised here).
- No noise at the handoff: with denoising_start set, add_noise is false, and a 4-channel `image` is taken as the
  latent itself (the image processor passes it through, no VAE encode, no scaling). So the refiner's first UNet
  input is exactly base_latent / sqrt(sigma[8]^2 + 1) for both CFG rows (checked bit for bit), and the refiner's
  only generator draws are its 2 Euler step draws, unused: another seed gives the same latent bit for bit (checked).
- Each stage conditions with its own encoders and time ids: the base with the 80-wide CLIP-L + bigG context and
  6 ids (64, 64, 0, 0, 64, 64); the refiner with bigG alone and 5 ids (aesthetic scores). The final image is decoded
  by the refiner's VAE (the same weights as the base's here and in the real models).
SDXL Turbo (turbo, turbo_4):
- Scheduler: EulerAncestralDiscreteScheduler with SDXL's betas and timestep_spacing "trailing" (sdxl-turbo's
  scheduler_config.json: the base's values with "trailing"): timesteps round(T - i * T / N) - 1 for i = 0..N-1
  (np.arange(T, 0, -T / N).round() - 1; steps_offset is not used): N = 1: 999; N = 4: 999 749 499 249. sigmas =
  sqrt((1 - alphas_cumprod[t]) / alphas_cumprod[t]) at those, then 0: 14.6146 (N = 1); 14.6146 4.08173 1.61289
  0.693205 (N = 4).
- init_noise_sigma is sigma_max itself for "trailing" (and "linspace"), not sqrt(sigma_max^2 + 1) as for "leading":
  first latent x = randn (draw 1) * 14.6146; the UNet's input x / sqrt(sigma^2 + 1) (checked bit for bit).
- guidance_scale 0.0: do_classifier_free_guidance = guidance_scale > 1 (and the UNet has no time_cond_proj_dim) is
  false, so the batch is 1, no negative is encoded (negative arguments and force_zeros_for_empty_prompt do not
  matter), and the noise prediction is the conditional one, unscaled (guidance 0 does not mean "zero the
  prediction"). time_ids one row (64, 64, 0, 0, 64, 64).
- Each step: x0 = x - sigma * eps; sigma_up = sqrt(s_next^2 * (s^2 - s_next^2) / s^2); sigma_down =
  sqrt(s_next^2 - sigma_up^2); x = x + (x - x0) / s * (sigma_down - s) + sigma_up * randn (one draw per step,
  drawn even on the last step, where s_next = 0 makes sigma_up 0). So 1 step returns the x0 prediction
  x - 14.6146 * eps(x / sqrt(14.6146^2 + 1), 999) (checked to 1e-6). Draws: 1 + N.
"""

import json
import os
import shutil
import sys
import tempfile

import numpy as np
import PIL.Image
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_sdxl_goldens as base_script  # noqa: E402  (the base model's conventions: tokenizers, redraw, writer)
from make_sdxl_goldens import (OUT, ROOT, SCHEDULER_CONFIG, WORDS, decode_as_pipeline,  # noqa: E402
                               make_init_image, make_tokenizers, redraw)

import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import (AutoencoderKL, EulerAncestralDiscreteScheduler, EulerDiscreteScheduler,  # noqa: E402
                       StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline, UNet2DConditionModel)
from safetensors.torch import load_file  # noqa: E402
from transformers import CLIPTextModelWithProjection  # noqa: E402

BASE = os.path.join(OUT, "pipeline_sdxl")
REFINER = os.path.join(OUT, "pipeline_sdxl_refiner")
CASES_GOLDEN = os.path.join(OUT, "pipeline_sdxl_refiner_cases.safetensors")
SCRIPT = "tools/reference/make_sdxl_refiner_goldens.py"
REFINER_SEED = 2025

# The refiner UNet at tiny widths. stable-diffusion-xl-refiner-1.0: block_out_channels (384, 768, 1536, 1536),
# attention_head_dim (6, 12, 12, 6), transformer_layers_per_block 4, cross_attention_dim 1280,
# addition_time_embed_dim 256, projection_class_embeddings_input_dim 2560 (= 1280 + 5 * 256), sample_size 128.
REFINER_WIDTHS = (8, 16, 16, 16)
REFINER_HEADS = (2, 4, 4, 2)  # attention_head_dim: head counts; 16 / 4 = 4 channels; the mid block 16 / 2 = 8
REFINER_LAYERS = 2

# Files of the refiner folder that must be byte-identical to the base folder's (shared components).
SHARED_FILES = ("text_encoder_2/config.json", "text_encoder_2/model.safetensors",
                "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
                "tokenizer_2/vocab.json", "tokenizer_2/merges.txt", "tokenizer_2/tokenizer_config.json",
                "tokenizer_2/special_tokens_map.json", "scheduler/scheduler_config.json")
BASE_WEIGHT_FILES = ("unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                     "text_encoder/model.safetensors", "text_encoder_2/model.safetensors")

_REF = dict(kind="refiner_img2img", scheduler="euler", width=64, height=64, steps=8, cfg=5.0, strength=0.3,
            aesthetic_score=6.0, negative_aesthetic_score=2.5, prompt_2=None, negative_2=None,
            denoising_start=None, denoising_end=None)
CASES = [
    dict(_REF, name="refiner_img2img", seed=201, init_variant=1,
         prompt="a red circle on a blue background", negative="a green square"),
    dict(_REF, name="refiner_img2img_noneg", seed=201, init_variant=1,
         prompt="a red circle on a blue background", negative=None),
    dict(kind="handoff", name="base_refiner_handoff", scheduler="euler", width=64, height=64, steps=10, cfg=5.0,
         seed=211, prompt="photo of a cat on the left, masterpiece", negative="a small dog", prompt_2=None,
         negative_2=None, denoising_end=0.8, denoising_start=0.8, strength=0.3, aesthetic_score=6.0,
         negative_aesthetic_score=2.5),
    dict(kind="turbo", name="turbo", scheduler="euler_a_trailing", width=64, height=64, steps=1, cfg=0.0, seed=223,
         prompt="a small green triangle on the top", negative=None, prompt_2=None, negative_2=None),
    dict(kind="turbo", name="turbo_4", scheduler="euler_a_trailing", width=64, height=64, steps=4, cfg=0.0, seed=223,
         prompt="a small green triangle on the top", negative=None, prompt_2=None, negative_2=None),
]


def check_prompts():
    base_script.check_words(CASES)


def versions():
    return base_script.versions(SCRIPT)


sha256 = base_script.sha256


# ---------------------------------------------------------------------------------------------------------
# The refiner folder

def build_refiner_unet():
    unet = UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=REFINER_WIDTHS, layers_per_block=2, transformer_layers_per_block=REFINER_LAYERS,
        attention_head_dim=REFINER_HEADS, use_linear_projection=True, cross_attention_dim=48,
        addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=80,
        norm_num_groups=4, upcast_attention=False)
    redraw(unet, torch.Generator().manual_seed(REFINER_SEED))
    unet.eval()
    return unet


def write_folder():
    """Writes REFINER with save_pretrained; returns the fp16-rounded refiner UNet weights (as fp32)."""
    te_2 = CLIPTextModelWithProjection.from_pretrained(os.path.join(BASE, "text_encoder_2"),
                                                       torch_dtype=torch.float16)
    te_2.config._name_or_path = ""  # as in the base folder, whose encoder was built, not loaded
    # Built from the base's config and weights rather than from_pretrained, which would record _name_or_path.
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(os.path.join(BASE, "vae")))
    vae.load_state_dict(load_file(os.path.join(BASE, "vae", "diffusion_pytorch_model.safetensors")))
    vae.to(torch.float16).eval()
    unet = build_refiner_unet()
    rounded = {k: v.clone() for k, v in unet.state_dict().items()}
    with tempfile.TemporaryDirectory() as tmp:
        _, _, tok_2 = make_tokenizers(tmp)
        pipe = StableDiffusionXLImg2ImgPipeline(
            vae=vae, text_encoder=None, text_encoder_2=te_2, tokenizer=None, tokenizer_2=tok_2,
            unet=unet.to(torch.float16), scheduler=EulerDiscreteScheduler.from_config(SCHEDULER_CONFIG),
            requires_aesthetics_score=True, force_zeros_for_empty_prompt=False, add_watermarker=False)
        if os.path.isdir(REFINER):
            shutil.rmtree(REFINER)
        pipe.save_pretrained(REFINER, safe_serialization=True, variant=None)
    for rel in SHARED_FILES:
        with open(os.path.join(BASE, rel), "rb") as f, open(os.path.join(REFINER, rel), "rb") as g:
            assert f.read() == g.read(), f"{rel} differs from the base folder's"
    with open(os.path.join(REFINER, "model_index.json")) as f:
        index = json.load(f)
    assert index["text_encoder"] == [None, None] and index["tokenizer"] == [None, None], index
    assert index["requires_aesthetics_score"] is True and index["force_zeros_for_empty_prompt"] is False, index
    return rounded


def load_pipelines(rounded):
    refiner = StableDiffusionXLImg2ImgPipeline.from_pretrained(REFINER, torch_dtype=torch.float32,
                                                               add_watermarker=False)
    base = StableDiffusionXLPipeline.from_pretrained(BASE, torch_dtype=torch.float32, add_watermarker=False)
    for p in (refiner, base):
        p.set_progress_bar_config(disable=True)
    assert refiner.text_encoder is None and refiner.tokenizer is None
    assert refiner.config.requires_aesthetics_score and not refiner.config.force_zeros_for_empty_prompt
    got = refiner.unet.state_dict()
    for k, v in rounded.items():
        assert got[k].dtype == torch.float32 and torch.equal(got[k], v), f"unet.{k} does not round-trip"
    for name in ("text_encoder_2", "vae"):
        a, b = getattr(refiner, name).state_dict(), getattr(base, name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    return refiner, base


# ---------------------------------------------------------------------------------------------------------
# Runs

class Recorder:
    """Forward pre-hook and hook on a UNet: per call the timestep, the scheduler's step_index (the sigma index the
    step starts from), time_ids and batch; the first call's inputs; every call's output."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.timesteps, self.step_indices, self.time_ids, self.batch, self.outputs = [], [], [], [], []
        self.first = None
        self.handles = []

    def pre(self, module, args, kwargs):
        added = kwargs["added_cond_kwargs"]
        if self.first is None:
            self.first = {"x": args[0].detach().clone(), "context": kwargs["encoder_hidden_states"].detach().clone(),
                          "text_embeds": added["text_embeds"].detach().clone()}
        self.timesteps.append(float(args[1]))
        self.step_indices.append(int(self.pipe.scheduler.step_index))
        self.time_ids.append(added["time_ids"].detach().clone())
        self.batch.append(int(args[0].shape[0]))

    def post(self, module, args, kwargs, output):
        self.outputs.append(output[0].detach().clone())

    def __enter__(self):
        unet = self.pipe.unet
        self.handles = [unet.register_forward_pre_hook(self.pre, with_kwargs=True),
                        unet.register_forward_hook(self.post, with_kwargs=True)]
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


def encode_2(pipe, text):
    """tokenizer_2 / text_encoder_2 as the pipelines use them: penultimate hidden state, projected pooled vector."""
    ids = pipe.tokenizer_2(text, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        out = pipe.text_encoder_2(ids, output_hidden_states=True)
    return out.hidden_states[-2], out.text_embeds, ids


def check_pil(pipe, call, seed, image):
    with torch.no_grad():
        pil = pipe(**call, generator=torch.Generator("cpu").manual_seed(seed), output_type="pil").images[0]
    assert torch.equal(torch.from_numpy(np.asarray(pil).copy()), image), "decode differs from the pipeline's"


def sched_info(sched, rec):
    sig = sched.sigmas.tolist()
    idx = rec.step_indices
    return {"all_timesteps": [float(x) for x in sched.timesteps.tolist()], "timesteps": rec.timesteps,
            "sigma_indices": idx, "sigmas": [sig[i] for i in idx] + [sig[idx[-1] + 1]], "all_sigmas": sig}


def run_refiner_img2img(refiner, case, sched_cfg, **overrides):
    case = dict(case, **overrides)
    refiner.scheduler = EulerDiscreteScheduler.from_config(sched_cfg)
    h, w = case["height"], case["width"]
    init_u8 = make_init_image(h, w, case["init_variant"])
    call = dict(prompt=case["prompt"], prompt_2=case["prompt_2"], negative_prompt=case["negative"],
                negative_prompt_2=case["negative_2"], image=PIL.Image.fromarray(init_u8, mode="RGB"),
                strength=case["strength"], num_inference_steps=case["steps"], guidance_scale=case["cfg"],
                aesthetic_score=case["aesthetic_score"], negative_aesthetic_score=case["negative_aesthetic_score"])
    gen = torch.Generator("cpu").manual_seed(case["seed"])
    with Recorder(refiner) as rec, torch.no_grad():
        latent = refiner(**call, generator=gen, output_type="latent").images
    return case, call, init_u8, gen, rec, latent


def refiner_img2img_case(refiner, case, sched_cfg):
    case, call, init_u8, gen, rec, latent = run_refiner_img2img(refiner, case, sched_cfg)
    h, w, n_steps = case["height"], case["width"], case["steps"]
    f = refiner.vae_scale_factor
    shape = (1, 4, h // f, w // f)
    sched = refiner.scheduler
    # Timesteps: the last min(int(N * strength), N) of the schedule; the sigma indices are theirs.
    n_run = min(int(n_steps * case["strength"]), n_steps)
    t_start = n_steps - n_run
    info = sched_info(sched, rec)
    assert rec.timesteps == info["all_timesteps"][t_start:], (rec.timesteps, info["all_timesteps"])
    assert rec.step_indices == list(range(t_start, n_steps)), rec.step_indices
    # Draws: the posterior sample, the noise, one per Euler step.
    base_script.check_draws(gen, case["seed"], shape, 2 + n_run, case["name"])
    # time_ids: [negative row, positive row] = (H, W, 0, 0, negative_aesthetic_score), (H, W, 0, 0, aesthetic_score).
    time_ids = rec.time_ids[0]
    assert all(torch.equal(t, time_ids) for t in rec.time_ids) and set(rec.batch) == {2}
    want_ids = torch.tensor([[h, w, 0, 0, case["negative_aesthetic_score"]], [h, w, 0, 0, case["aesthetic_score"]]])
    assert torch.equal(time_ids, want_ids), time_ids
    # Text: bigG's penultimate hidden state (48 wide, no CLIP-L), its projected pooled vector; the negative is
    # the encoded negative prompt, or the encoded "" when negative_prompt is None (force_zeros_for_empty_prompt false).
    pos_h, pos_p, _ = encode_2(refiner, case["prompt"])
    neg_h, neg_p, neg_ids = encode_2(refiner, case["negative"] if case["negative"] is not None else "")
    if case["negative"] is None:
        assert neg_ids[0, :3].tolist() == [589, 590, 0] and (neg_ids[0, 2:] == 0).all()
    context, text_embeds = rec.first["context"], rec.first["text_embeds"]
    assert torch.equal(context, torch.cat([neg_h, pos_h])), "context differs"
    assert torch.equal(text_embeds, torch.cat([neg_p, pos_p])), "pooled vector differs"
    # The first UNet input: draw 1 = eps of the posterior sample, draw 2 = the noise; Euler add_noise at t_first.
    g = torch.Generator().manual_seed(case["seed"])
    processed = refiner.image_processor.preprocess(call["image"])
    assert torch.equal(processed, torch.from_numpy(init_u8).permute(2, 0, 1)[None].float() / 255.0 * 2.0 - 1.0)
    with torch.no_grad():
        dist = refiner.vae.encode(processed).latent_dist
    z0 = refiner.vae.config.scaling_factor * (dist.mean + dist.std * torch.randn(shape, generator=g))
    noise = torch.randn(shape, generator=g)
    ref_sched = EulerDiscreteScheduler.from_config(sched.config)
    ref_sched.set_timesteps(n_steps)
    t0 = ref_sched.timesteps[t_start]
    sigma0 = ref_sched.sigmas[t_start]
    x = z0 + sigma0 * noise
    want_in = x / (sigma0 ** 2 + 1) ** 0.5
    got_in = rec.first["x"]
    assert torch.equal(got_in[0], got_in[1])
    diff = (got_in[0:1] - want_in).abs().max().item()
    assert diff <= 1e-5 * want_in.abs().max().item(), (case["name"], diff)
    assert float(t0) == rec.timesteps[0]
    image = decode_as_pipeline(refiner, latent)
    check_pil(refiner, call, case["seed"], image)
    tensors = {"init": torch.from_numpy(init_u8).permute(2, 0, 1)[None].contiguous(), "init_latents": z0,
               "latent": latent, "image": image, "time_ids": time_ids, "context": context,
               "text_embeds": text_embeds}
    return tensors, info, {"first_input_error": diff}


def handoff_base_stage(base, case, sched_cfg):
    """The base half of the handoff: StableDiffusionXLPipeline with denoising_end. Returns the latent it hands over,
    its sched_info, its time_ids and the timestep cutoff."""
    h, w, n_steps = case["height"], case["width"], case["steps"]
    f = base.vae_scale_factor
    shape = (1, 4, h // f, w // f)
    base.scheduler = EulerDiscreteScheduler.from_config(sched_cfg)
    base_call = dict(prompt=case["prompt"], prompt_2=case["prompt_2"], negative_prompt=case["negative"],
                     negative_prompt_2=case["negative_2"], width=w, height=h, num_inference_steps=n_steps,
                     guidance_scale=case["cfg"], denoising_end=case["denoising_end"])
    gen_b = torch.Generator("cpu").manual_seed(case["seed"])
    with Recorder(base) as rec_b, torch.no_grad():
        base_latent = base(**base_call, generator=gen_b, output_type="latent").images
    base_info = sched_info(base.scheduler, rec_b)
    cutoff = int(round(1000 - case["denoising_end"] * 1000))
    n_base = sum(1 for t in base_info["all_timesteps"] if t >= cutoff)
    assert rec_b.timesteps == base_info["all_timesteps"][:n_base] and rec_b.step_indices == list(range(n_base))
    assert base.scheduler.step_index == n_base  # the base stops at sigma index n_base
    base_script.check_draws(gen_b, case["seed"], shape, 1 + n_base, "base")
    base_time_ids = rec_b.time_ids[0]
    assert torch.equal(base_time_ids, torch.tensor([[h, w, 0, 0, h, w]] * 2, dtype=torch.float32))
    return base_latent, base_info, base_time_ids, cutoff


def handoff_refiner_stage(refiner, case, sched_cfg, base_latent, base_info):
    """The refiner half: StableDiffusionXLImg2ImgPipeline with denoising_start on the base's latent (base_info: the
    base stage's sched_info). Returns the final latent, its decoded image, sched_info, time_ids and the cutoff."""
    h, w, n_steps = case["height"], case["width"], case["steps"]
    f = refiner.vae_scale_factor
    shape = (1, 4, h // f, w // f)
    refiner.scheduler = EulerDiscreteScheduler.from_config(sched_cfg)
    ref_call = dict(prompt=case["prompt"], prompt_2=case["prompt_2"], negative_prompt=case["negative"],
                    negative_prompt_2=case["negative_2"], image=base_latent, num_inference_steps=n_steps,
                    strength=case["strength"], denoising_start=case["denoising_start"], guidance_scale=case["cfg"],
                    aesthetic_score=case["aesthetic_score"],
                    negative_aesthetic_score=case["negative_aesthetic_score"])
    gen_r = torch.Generator("cpu").manual_seed(case["seed"])
    with Recorder(refiner) as rec_r, torch.no_grad():
        latent = refiner(**ref_call, generator=gen_r, output_type="latent").images
    info = sched_info(refiner.scheduler, rec_r)
    cutoff_r = int(round(1000 - case["denoising_start"] * 1000))
    n_ref = sum(1 for t in info["all_timesteps"] if t < cutoff_r)
    assert info["all_timesteps"] == base_info["all_timesteps"] and info["all_sigmas"] == base_info["all_sigmas"]
    assert rec_r.timesteps == info["all_timesteps"][n_steps - n_ref:], rec_r.timesteps
    assert rec_r.step_indices == list(range(n_steps - n_ref, n_steps)), rec_r.step_indices
    assert len(base_info["timesteps"]) + n_ref == n_steps  # every timestep runs once, in one stage or the other
    base_script.check_draws(gen_r, case["seed"], shape, n_ref, "refiner")  # only the Euler steps' (unused) draws
    # No noise is added at the handoff: the refiner's first UNet input is the base's latent, only scaled.
    ref_sched = EulerDiscreteScheduler.from_config(sched_cfg)
    ref_sched.set_timesteps(n_steps)
    sigma = ref_sched.sigmas[n_steps - n_ref]
    want_in = base_latent / (sigma ** 2 + 1) ** 0.5
    assert torch.equal(rec_r.first["x"], torch.cat([want_in, want_in])), "the refiner noised the handed-over latent"
    time_ids = rec_r.time_ids[0]
    want_ids = torch.tensor([[h, w, 0, 0, case["negative_aesthetic_score"]], [h, w, 0, 0, case["aesthetic_score"]]])
    assert torch.equal(time_ids, want_ids), time_ids
    # The refiner's generator does not matter (strength ignored, nothing drawn that is used).
    refiner.scheduler = EulerDiscreteScheduler.from_config(sched_cfg)
    with torch.no_grad():
        other = refiner(**ref_call, generator=torch.Generator("cpu").manual_seed(case["seed"] + 1000),
                        output_type="latent").images
    assert torch.equal(other, latent), "the refiner's generator changed the result"
    image = decode_as_pipeline(refiner, latent)
    refiner.scheduler = EulerDiscreteScheduler.from_config(sched_cfg)
    check_pil(refiner, ref_call, case["seed"], image)
    return latent, image, info, time_ids, cutoff_r


def handoff_case(refiner, base, case, sched_cfg):
    base_latent, base_info, base_time_ids, cutoff = handoff_base_stage(base, case, sched_cfg)
    latent, image, info, time_ids, cutoff_r = handoff_refiner_stage(refiner, case, sched_cfg, base_latent, base_info)
    tensors = {"base_latent": base_latent, "latent": latent, "image": image, "time_ids": time_ids,
               "base_time_ids": base_time_ids}
    extra = {"base_" + k: v for k, v in base_info.items() if k not in ("all_timesteps", "all_sigmas")}
    extra.update(base_time_ids=base_time_ids.tolist(), base_pipeline_class=type(base).__name__,
                 base_folder="tests/golden/data/pipeline_sdxl", base_discrete_timestep_cutoff=cutoff,
                 discrete_timestep_cutoff=cutoff_r)
    return tensors, info, extra


def turbo_scheduler_config(base_cfg):
    cfg = dict(base_cfg)
    cfg["timestep_spacing"] = "trailing"
    return cfg


def turbo_case(base, case, base_sched_cfg):
    h, w, n_steps = case["height"], case["width"], case["steps"]
    f = base.vae_scale_factor
    shape = (1, 4, h // f, w // f)
    cfg = turbo_scheduler_config(base_sched_cfg)
    base.scheduler = EulerAncestralDiscreteScheduler.from_config(cfg)
    call = dict(prompt=case["prompt"], prompt_2=case["prompt_2"], negative_prompt=case["negative"],
                negative_prompt_2=case["negative_2"], width=w, height=h, num_inference_steps=n_steps,
                guidance_scale=case["cfg"])
    gen = torch.Generator("cpu").manual_seed(case["seed"])
    with Recorder(base) as rec, torch.no_grad():
        latent = base(**call, generator=gen, output_type="latent").images
    assert not base.do_classifier_free_guidance
    sched = base.scheduler
    info = sched_info(sched, rec)
    want_t = [float(round(1000 - i * 1000 / n_steps) - 1) for i in range(n_steps)]
    assert rec.timesteps == info["all_timesteps"] == want_t, (rec.timesteps, want_t)
    assert rec.step_indices == list(range(n_steps)) and set(rec.batch) == {1}
    base_script.check_draws(gen, case["seed"], shape, 1 + n_steps, case["name"])
    time_ids = rec.time_ids[0]
    assert torch.equal(time_ids, torch.tensor([[h, w, 0, 0, h, w]], dtype=torch.float32)), time_ids
    # Initial latent: noise * init_noise_sigma, and for "trailing" init_noise_sigma is sigma_max itself.
    sigma_max = sched.sigmas[0]
    assert float(sched.init_noise_sigma) == float(sigma_max)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(case["seed"]))
    x = noise * sigma_max
    assert torch.equal(rec.first["x"], x / (sigma_max ** 2 + 1) ** 0.5)
    if n_steps == 1:
        # One step to sigma 0: sigma_up = sigma_down = 0, so the result is the x0 prediction x - sigma * eps.
        want = x - sigma_max * rec.outputs[0]
        assert (latent - want).abs().max().item() <= 1e-6 * want.abs().max().item()
    image = decode_as_pipeline(base, latent)
    base.scheduler = EulerAncestralDiscreteScheduler.from_config(cfg)
    check_pil(base, call, case["seed"], image)
    tensors = {"latent": latent, "image": image, "time_ids": time_ids}
    return tensors, info, {"scheduler_config": dict(sched.config), "init_noise_sigma": float(sched.init_noise_sigma)}


def case_params(pipe, case, folder, info, time_ids, extra):
    """A case's params JSON (the docstring's list): the case, the pipeline's settings, sched_info, time_ids, extra."""
    params = {k: case.get(k) for k in ("name", "kind", "scheduler", "prompt", "prompt_2", "negative",
                                       "negative_2", "steps", "cfg", "seed", "width", "height")}
    params.update(guidance=case["cfg"], pipeline_class=type(pipe).__name__, folder=folder,
                  scheduler_class=type(pipe.scheduler).__name__,
                  do_classifier_free_guidance=case["cfg"] > 1.0,
                  strength=case.get("strength"), aesthetic_score=case.get("aesthetic_score"),
                  negative_aesthetic_score=case.get("negative_aesthetic_score"),
                  denoising_start=case.get("denoising_start"), denoising_end=case.get("denoising_end"),
                  init_variant=case.get("init_variant"),
                  requires_aesthetics_score=bool(getattr(pipe.config, "requires_aesthetics_score", False)),
                  force_zeros_for_empty_prompt=bool(pipe.config.force_zeros_for_empty_prompt))
    params.update({k: None for k in base_script.SIZE_KEYS})
    params.update(info)
    params["time_ids"] = time_ids.tolist()
    params.update(extra)
    return params


def run_cases(refiner, base):
    sched_cfg = dict(refiner.scheduler.config)
    assert sched_cfg == dict(base.scheduler.config)
    tensors = {}
    meta = dict(versions(), seed=str(REFINER_SEED), scheduler_config=json.dumps(sched_cfg),
                refiner_unet_config=json.dumps(dict(refiner.unet.config)),
                base_weights_sha256=json.dumps({rel: sha256(os.path.join(BASE, rel)) for rel in BASE_WEIGHT_FILES}),
                refiner_unet_sha256=sha256(os.path.join(REFINER, "unet", "diffusion_pytorch_model.safetensors")))
    latents = {}
    for case in CASES:
        name, kind = case["name"], case["kind"]
        if kind == "refiner_img2img":
            t, info, extra = refiner_img2img_case(refiner, case, sched_cfg)
            pipe, folder = refiner, "tests/golden/data/pipeline_sdxl_refiner"
        elif kind == "handoff":
            t, info, extra = handoff_case(refiner, base, case, sched_cfg)
            pipe, folder = refiner, "tests/golden/data/pipeline_sdxl_refiner"
        else:
            t, info, extra = turbo_case(base, case, sched_cfg)
            pipe, folder = base, "tests/golden/data/pipeline_sdxl"
        latent, image = t["latent"], t["image"]
        f = pipe.vae_scale_factor
        assert latent.shape == (1, 4, case["height"] // f, case["width"] // f) and torch.isfinite(latent).all()
        assert image.shape == (case["height"], case["width"], 3) and image.dtype == torch.uint8
        params = case_params(pipe, case, folder, info, t["time_ids"], extra)
        for k, v in t.items():
            tensors[f"{name}.{k}"] = v.contiguous()
        meta[f"{name}.params"] = json.dumps(params)
        latents[name] = latent
        sat = ((image == 0) | (image == 255)).float().mean().item()
        print(f"  {name:22s} {params['pipeline_class']:33s} {params['scheduler_class']:32s} latent std "
              f"{latent.std().item():.3f}  image mean {image.float().mean().item():.1f} std "
              f"{image.float().std().item():.1f} saturated {sat:.0%}")
        if kind == "handoff":
            print(f"  {'':22s} base: timesteps {params['base_timesteps']} sigma indices "
                  f"{params['base_sigma_indices']} sigmas {params['base_sigmas']} time_ids {params['base_time_ids']}")
        print(f"  {'':22s} timesteps {params['timesteps']} sigma indices {params['sigma_indices']} sigmas "
              f"{params['sigmas']} time_ids {params['time_ids']}")
    # Ablations (not saved): the features a case stands for must change its result.
    ref_case = CASES[0]
    aes = run_refiner_img2img(refiner, ref_case, sched_cfg, aesthetic_score=7.0)[5]
    neg_aes = run_refiner_img2img(refiner, ref_case, sched_cfg, negative_aesthetic_score=1.0)[5]
    empty = run_refiner_img2img(refiner, CASES[1], sched_cfg, negative="")[5]
    # With text_encoder None the refiner zips [prompt, prompt_2] with [tokenizer_2]: prompt_2 and negative_prompt_2
    # are never used.
    p2 = run_refiner_img2img(refiner, ref_case, sched_cfg, prompt_2="photo of a dog", negative_2="a blue triangle")[5]
    assert torch.equal(p2, latents["refiner_img2img"]), "the refiner used prompt_2 or negative_prompt_2"
    print("  refiner_img2img with prompt_2 / negative_prompt_2 set: the same latent, bit for bit (ignored)")
    for label, other, name in (("aesthetic_score 7", aes, "refiner_img2img"),
                               ("negative_aesthetic_score 1", neg_aes, "refiner_img2img")):
        d = (other - latents[name]).abs().max().item()
        print(f"  {name} with {label}: max |latent difference| {d:.5f}")
        assert d > 1e-4 * latents[name].std().item(), label
    assert torch.equal(empty, latents["refiner_img2img_noneg"]), "negative_prompt None is not the encoded ''"
    print("  refiner_img2img_noneg with negative_prompt '': the same latent, bit for bit")
    base_script.assert_all_differ(latents)
    return tensors, meta


def main():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    check_prompts()
    rounded = write_folder()
    total = 0
    for dirpath, _, files in sorted(os.walk(REFINER)):
        for f in sorted(files):
            size = os.path.getsize(os.path.join(dirpath, f))
            total += size
            print(f"  {os.path.relpath(os.path.join(dirpath, f), ROOT)}: {size} bytes")
    print(f"wrote {os.path.relpath(REFINER, ROOT)}: {total} bytes")
    refiner, base = load_pipelines(rounded)
    print("cases:")
    tensors, meta = run_cases(refiner, base)
    base_script.save(CASES_GOLDEN, tensors, meta)
    for k, v in tensors.items():
        print(f"  {k:36s} {str(v.dtype).replace('torch.', ''):8s} {list(v.shape)}")


if __name__ == "__main__":
    main()
