#!/work/refvenv/bin/python
"""SDXL goldens from diffusers' StableDiffusionXLPipeline on a tiny random-weight SDXL-shaped model.

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline:

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_sdxl_goldens.py

It takes under 10 s on an idle two-core machine (2 minutes while a build runs beside it). Every weight is
random; nothing is downloaded. Every run writes the same bytes: the two .safetensors files go through
safetensors_io.py (metadata keys sorted), not the safetensors library, whose header order varies per run.
Versions used (requirements-pip.txt): torch 2.4.1 (CPU), diffusers 0.30.3, transformers 4.40.2, huggingface_hub 0.36.2.
All computation is float32 on the CPU, with diffusers' default attention processor (AttnProcessor2_0, i.e.
torch's scaled_dot_product_attention; the torch 1.13 `baddbmm` pitfall of the README does not apply).

It writes four things (all tensors float32 unless said):

1. tests/golden/data/pipeline_sdxl/: the model as a diffusers folder, written by
   StableDiffusionXLPipeline.save_pretrained (safe_serialization, variant None) after `.to(torch.float16)`:
   model_index.json, unet/, vae/, text_encoder/, text_encoder_2/ (config.json and fp16 safetensors),
   tokenizer/, tokenizer_2/ (vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json),
   scheduler/scheduler_config.json. model_index.json has force_zeros_for_empty_prompt true (SDXL base's
   value). The pipeline is built with add_watermarker=False (invisible-watermark is not installed anyway).
   Every reference run below uses the folder reloaded with from_pretrained(torch_dtype=torch.float32), so it
   computes in fp32 on exactly the fp16-rounded weights (the script checks that the reloaded weights equal
   the fp16-rounded ones bit for bit).

2. tests/golden/data/model_sdxl_tiny.safetensors: component goldens on that model (no weights: the test
   loads them from the folder).

3. tests/golden/data/pipeline_sdxl_cases.safetensors: whole-pipeline runs (CASES below).

4. tests/golden/data/pipeline_sdxl_img2img_cases.safetensors: image-to-image and inpainting runs
   (IMG2IMG_CASES below), written last, so adding it left files 1 to 3 byte-identical.

The model
---------
- tokenizer: the small CLIP-format BPE vocabulary of pipeline_sd1 (tools/train/bpe.py, build_bpe on WORDS,
  the same words make_pipeline_goldens.py uses, so vocab.json and merges.txt have the same content as
  pipeline_sd1/tokenizer/): 591 tokens, the 256 byte symbols ("!" is id 0), their "</w>" forms, 77 merges,
  <|startoftext|> 589, <|endoftext|> 590. pad_token <|endoftext|>, so its pad id is 590 (SD 1.x / SDXL
  tokenizer). model_max_length 77.
- tokenizer_2: the same vocabulary with pad_token "!", as SDXL's tokenizer_2: pad id 0. "!" is already a
  token (the first byte symbol), so the vocabulary is unchanged; transformers lists it in tokenizer_config's
  added_tokens_decoder as special token 0, as it does every special token, and so splits each "!" out of a
  prompt as id 0 (see text.bang_ids_2).
  Without ftfy (not installed in the venv) transformers' CLIPTokenizer cleans text with BERT's
  BasicTokenizer; for the lower-case ASCII prompts here that changes nothing.
- text_encoder: CLIPTextModel, hidden 32, intermediate 64, 2 layers, 4 heads, quick_gelu, 77 positions,
  vocab 591, bos 589, eos 590, pad 590, layer_norm_eps 1e-5. With eos_token_id != 2, transformers 4.40 pools
  at the first position equal to eos_token_id (its legacy argmax rule gives the same position here, since
  EOS is the largest id).
- text_encoder_2: CLIPTextModelWithProjection, hidden 48, intermediate 96, 2 layers, 4 heads, gelu (erf),
  projection_dim 40, vocab 591, bos 589, eos 590, pad 0.
- unet: UNet2DConditionModel, SDXL's layout at tiny widths: sample_size 8, in/out channels 4, down blocks
  (DownBlock2D, CrossAttnDownBlock2D, CrossAttnDownBlock2D), up blocks (CrossAttnUpBlock2D,
  CrossAttnUpBlock2D, UpBlock2D), block_out_channels UNET_WIDTHS = (8, 16, 32), layers_per_block 2,
  transformer_layers_per_block (1, 1, 2) (up blocks reversed: 2, 1, 1; the mid block takes the last, 2),
  attention_head_dim (2, 4, 8) (diffusers' name; it is the number of heads, so every head has 4 channels),
  use_linear_projection True, cross_attention_dim 80 (= 32 + 48), addition_embed_type "text_time",
  addition_time_embed_dim 8, projection_class_embeddings_input_dim 88 (= 40 + 6 * 8), norm_num_groups 4,
  upcast_attention False. Time embedding width 32 (4 * 8). About 1.1 MB in fp16 (widths (16, 32, 64) would
  give 4.3 MB with the same layout).
- vae: AutoencoderKL, block_out_channels (8, 16), layers_per_block 1, latent_channels 4, norm_num_groups 4,
  DownEncoderBlock2D x2 / UpDecoderBlock2D x2 (downscale 2), scaling_factor 0.13025, force_upcast True,
  sample_size 64, latents_mean/latents_std None.
- scheduler: EulerDiscreteScheduler.from_config of SDXL base's scheduler_config.json values: beta_start
  0.00085, beta_end 0.012, scaled_linear, 1000 train steps, epsilon, timestep_spacing "leading",
  steps_offset 1, interpolation_type linear, use_karras_sigmas false, and the keys SDXL's file carries for
  other classes (clip_sample false, set_alpha_to_one false, sample_max_value 1.0, skip_prk_steps true,
  trained_betas null), so DDIMScheduler.from_config gets clip_sample false and set_alpha_to_one false as with
  the real model.

Weights: built with torch.manual_seed(SEED) (SEED = 2024), then every parameter of unet, vae, text_encoder,
text_encoder_2 (in that order, named_parameters() order) is re-drawn from one torch.Generator seeded with
SEED: GroupNorm/LayerNorm weights 1 + 0.1 * randn, their biases 0.1 * randn; other tensors of rank >= 2
randn * min(0.2, 1.5 / sqrt(fan_in)) (fan_in = numel / out_features: make_model_goldens.py's rule),
except the VAE's decoder.conv_out.weight, drawn at 0.3 times that scale (VAE_DAMP: at full scale about 30% of
the pipeline images' pixels clamp to 0 or 255; at 0.3 a few percent do); other biases 0.2 * randn. Each value
is rounded to fp16 at once. The draws use the one generator throughout, so the order above fixes the bits.

model_sdxl_tiny.safetensors
---------------------------
Prompt TEXT_PROMPT, encoded as StableDiffusionXLPipeline.encode_prompt does (the script checks that
encode_prompt returns exactly these):
    text.ids_1          int32 [1, 77]  tokenizer ids: BOS, words, EOS, then EOS (590) padding
    text.ids_2          int32 [1, 77]  tokenizer_2 ids: BOS, words, EOS, then "!" (0) padding
    text.hidden_1       [1, 77, 32]    text_encoder(ids_1).hidden_states[-2]: the input of the last layer,
                                       no final layer norm
    text.hidden_2       [1, 77, 48]    text_encoder_2(ids_2).hidden_states[-2], the same
    text.context        [1, 77, 80]    cat(hidden_1, hidden_2, dim=-1): the UNet's encoder_hidden_states
    text.pooler_2       [1, 48]        text_encoder_2's final-layer-normed state at its first EOS
    text.text_embeds    [1, 40]        text_encoder_2(ids_2).text_embeds = text_projection(pooler_2):
                                       the pooled vector SDXL feeds to the UNet (add_text_embeds)
    text.bang_ids_1     int32 [1, 77]  tokenizer ids of BANG_PROMPT "photo of a cat! a dog!!": each "!"
                                       is BPE'd as usual ("!</w>" = 256, "!!" = 0 256)
    text.bang_ids_2     int32 [1, 77]  tokenizer_2 ids of the same: its pad token "!" is a special added
                                       token (transformers registers every special token), so each "!" is
                                       split out before BPE and is id 0, and padding is 0 too
UNet, one forward each at timesteps 421 and 999 (a float tensor [2] of that value), inputs drawn from a
Generator seeded IO_SEED = 7 in this order: x, context, text_embeds:
    unet.x              [2, 4, 8, 12]  latent input (non-square: height 8, width 12), randn
    unet.context        [2, 77, 80]    encoder_hidden_states, randn
    unet.text_embeds    [2, 40]        added_cond_kwargs["text_embeds"], randn
    unet.time_ids       [2, 6]         added_cond_kwargs["time_ids"]: rows (64, 96, 0, 0, 64, 96) and
                                       (128, 128, 16, 8, 64, 96) (original h, w, crop top, left, target h, w)
    unet.out_t421       [2, 4, 8, 12]  unet(x, 421, context, added_cond_kwargs).sample
    unet.out_t999       [2, 4, 8, 12]  the same at 999
VAE, inputs drawn from the same generator after those (z, then image):
    vae.z               [1, 4, 8, 12]  a latent as the sampler leaves it, randn
    vae.decoded         [1, 3, 16, 24] vae.decode(z / 0.13025).sample (what the pipeline decodes), fp32;
                                       this VAE upsamples by 2 (see the pipeline cases)
    vae.image           [1, 3, 64, 96] an image in [-1, 1], rand * 2 - 1
    vae.mean            [1, 4, 32, 48] vae.encode(image).latent_dist.mean
    vae.logvar          [1, 4, 32, 48] vae.encode(image).latent_dist.logvar (clamped to [-30, 20] by
                                       diffusers; nothing is clamped here, the script checks)
Metadata: script, torch, diffusers, transformers, huggingface_hub, seed, io_seed, prompt, bang_prompt, the configs
(unet_config, vae_config, text_encoder_config, text_encoder_2_config).

pipeline_sdxl_cases.safetensors
-------------------------------
Per case, StableDiffusionXLPipeline(...)(prompt, prompt_2, negative_prompt, width, height,
num_inference_steps, guidance_scale, generator=torch.Generator("cpu").manual_seed(seed), output_type="latent",
and the case's size arguments), the scheduler built with <Class>.from_config(folder's scheduler config):
    <name>.latent       [1, 4, H/2, W/2]  the final latent as the pipeline returns it (not yet divided by
                                       the scaling factor). The 2-level VAE downsamples by 2 (the
                                       pipeline's vae_scale_factor = 2 ** (len(block_out_channels) - 1)),
                                       so a 64x64 image has a 32x32 latent, not 8x8 as with SDXL's VAE
    <name>.image        uint8 [H, W, 3]   (HWC, RGB) the image decoded as the pipeline does: latent /
                                       scaling_factor, vae.decode, image_processor.postprocess to PIL
                                       (that is, round(clamp(x / 2 + 0.5, 0, 1) * 255) in float32 numpy),
                                       then numpy.asarray. The script checks for the first case that the
                                       pipeline's own output_type="pil" gives the same pixels.
    <name>.time_ids     [B, 6]            the add_time_ids the UNet received (B = 2 with CFG: row 0 negative,
                                       row 1 positive, the order of the batch; B = 1 without CFG)
Metadata <name>.params (JSON): name, scheduler (our name), scheduler_class, prompt, prompt_2, negative
(null means negative_prompt=None), negative_2, steps, cfg, seed, width, height, original_size,
crops_coords_top_left, target_size, negative_original_size, negative_crops_coords_top_left,
negative_target_size (null where left to the pipeline's default), timesteps (the scheduler's, as a list),
time_ids (as in <name>.time_ids). Also script, torch, diffusers, transformers, huggingface_hub, seed and
scheduler_config.

Cases (steps 6, guidance 5.0 unless said; width x height):
    euler            Euler 64x64
    euler_a          EulerAncestral 64x96 (height 96)
    dpmpp2m          DPMSolverMultistep (its defaults: dpmsolver++, order 2) 96x64 (width 96)
    ddim             DDIM 64x64 (eta 0)
    euler_nocfg      Euler 64x64, guidance 1.0: no CFG, batch 1, the negative prompt is never encoded
    euler_prompt2    Euler 64x64 with a prompt_2 that differs from prompt (tokenizer_2/text_encoder_2 see it)
    euler_sizes      Euler 64x64 with original_size (128, 128), crops_coords_top_left (16, 8), target_size
                     (64, 64); negative_* sizes left at None, so the negative row copies the positive one
    euler_negsizes   (extra) Euler 64x64 with euler_sizes' size arguments plus negative_original_size (32, 32),
                     negative_crops_coords_top_left (0, 0), negative_target_size (64, 64): the negative row
                     gets its own time ids
    euler_noneg      (extra) Euler 64x64, negative_prompt None: with force_zeros_for_empty_prompt the
                     unconditional context and pooled vector are zeros instead of an encoded ""
Every time_ids default is (height, width, 0, 0, height, width). The script also runs each of euler_prompt2,
euler_sizes, euler_negsizes and euler_noneg without its feature (ABLATIONS; prompt_2 None, sizes None, negative
"") and checks that the latent changes; those runs are not saved. It checks that every latent is finite and
that no two cases give the same latent.

pipeline_sdxl_img2img_cases.safetensors
---------------------------------------
The same fp32 model, through StableDiffusionXLImg2ImgPipeline and StableDiffusionXLInpaintPipeline built from
its components (force_zeros_for_empty_prompt True, add_watermarker False, requires_aesthetics_score False:
SDXL base's value, so time_ids are the 6 numbers of txt2img and no aesthetic score is used). Each call:
pipe(prompt, prompt_2, negative_prompt, negative_prompt_2, image=PIL RGB image of <name>.init, strength,
num_inference_steps, guidance_scale, generator=torch.Generator("cpu").manual_seed(seed), output_type="latent"),
plus for inpainting mask_image=PIL "L" image of <name>.mask and height/width = the image's. The scheduler is
<Class>.from_config(folder's scheduler config), fresh per case. Per case <name>:
    <name>.init          uint8 [1, 3, H, W]   the init image (CHW, RGB): make_init_image(H, W, variant), a
                                              deterministic pattern (ramps, a disc, stripes; no randomness)
    <name>.mask          uint8 [H, W]         (inpainting only) white = repaint: 255 inside the params' mask_rect
                                              (top, left, bottom, right; bottom/right exclusive), a one-pixel
                                              ring of 128 just outside it, a ring of 127 outside that, 0 elsewhere
    <name>.init_latents  [1, 4, H/2, W/2]     scaling_factor * (mean + std * eps) of the init image: the VAE
                                              posterior *sample* (generator draw 1), as the pipeline uses it
    <name>.latent        [1, 4, H/2, W/2]     the final latent the pipeline returns (output_type="latent")
    <name>.image         uint8 [H, W, 3]      decoded as in pipeline_sdxl_cases (the first case of each pipeline
                                              is checked against the pipeline's own output_type="pil")
    <name>.time_ids      [2, 6]               add_time_ids the UNet got: row 0 negative, row 1 positive
Metadata <name>.params (JSON): as in pipeline_sdxl_cases (the size keys are all null: defaults) plus pipeline
(img2img / inpaint), pipeline_class, strength, init_variant, mask_rect (null for img2img),
requires_aesthetics_score, all_timesteps (the scheduler's full schedule for `steps`) and timesteps (those that
ran, as the UNet received them).

Cases (steps 8, guidance 5.0; width x height; prompts in IMG2IMG_CASES):
    i2i_euler            img2img, Euler 64x64, strength 0.6
    i2i_euler_wide       img2img, Euler 96x64 (width 96), strength 0.6
    i2i_dpmpp2m          img2img, DPMSolverMultistep (dpmsolver++, order 2) 64x64, strength 0.6
    i2i_dpmpp2m_wide     img2img, DPMSolverMultistep 96x64, strength 0.6
    inpaint_euler_s100   inpainting with the 4-channel UNet (latent blending), Euler 64x64, strength 1.0,
                         mask_rect (20, 12, 44, 40)
    inpaint_euler_s075   the same at strength 0.75 (another init image and seed)

What a reimplementation must match (diffusers 0.30.3; the script asserts the starred points on every case):
- Init image preprocessing: the PIL image is used at its own size (img2img passes no height/width; inpainting
  passes the image's, so nothing is resampled; both must be multiples of vae_scale_factor, 2 here), then
  x = 2 * (u8 / 255) - 1 in float32, CHW, batch 1. (*) The VAE encodes x; its latent_dist is sampled, not
  its mean: z0 = scaling_factor * (mean + exp(0.5 * logvar) * eps) (logvar clamped to [-30, 20]).
- Timesteps for strength s and N steps: the scheduler's set_timesteps(N) schedule, of which the last
  n = min(int(N * s), N) run (t_start = N - n, scheduler order 1 here). (*) Euler with SDXL's "leading"
  spacing and steps_offset 1: 876 751 626 501 376 251 126 1, so s = 0.6 (n = 4) runs 376 251 126 1 and
  s = 0.75 (n = 6) runs 626 ... 1. DPMSolverMultistep computes "leading" differently
  (step_ratio = 1000 // (N + 1)): 889 778 667 556 445 334 223 112, so s = 0.6 runs 445 334 223 112.
  int() truncates: strength 0.6 at 8 steps is 4 steps, not 5.
- Generator draws, in order, each a torch CPU randn of the latent shape [1, 4, H/2, W/2] (*, checked through
  the generator's final state):
    img2img:    1. eps of the init image's posterior sample; 2. the noise;
                then Euler draws one more per step (EulerDiscreteScheduler.step always draws, and with
                s_churn 0 never uses it); DPM++ 2M draws nothing.
    inpainting: 1. eps of the init image's posterior sample (drawn even at strength 1.0, where z0 is used only
                for blending); 2. the noise; 3. eps of the *masked* image's posterior sample
                (init * (mask < 0.5), encoded although the 4-channel UNet never uses it); then Euler's per-step
                draws.
  Only draws 1 and 2 affect the result.
- Initial latent (*: the UNet's first input is checked against this):
    img2img, and inpainting with strength < 1: x = scheduler.add_noise(z0, noise, t_first): for Euler
        z0 + sigma(t_first) * noise; for DPM++ alpha_t * z0 + sigma_t * noise with alpha_t = 1 / sqrt(1 +
        sigma^2), sigma_t = sigma * alpha_t (sigma = sqrt((1 - alphas_cumprod) / alphas_cumprod) at t_first).
    inpainting with strength exactly 1.0: x = noise * init_noise_sigma (Euler, leading: sqrt(sigma_max^2 + 1));
        the init image does not enter. (The pipeline's default strength is 0.9999, which is NOT this branch.)
  Each step then runs as in txt2img (scale_model_input, CFG with the batch [negative, positive], step).
- Inpainting mask: converted to grayscale, / 255, binarised: 1 where >= 0.5 (so 128 repaints, 127 keeps), 0
  elsewhere. The latent mask is F.interpolate(mask, size=(H/2, W/2)), mode "nearest": latent pixel (i, j)
  takes image pixel (2i, 2j). 4-channel blending after every scheduler step i:
      latents = (1 - m) * add_noise(z0, noise, timesteps[i + 1]) + m * latents,
  and after the last step with the un-noised z0: (1 - m) * z0 + m * latents. (*) So outside the latent mask
  the returned latent equals <name>.init_latents exactly.
- time_ids: (H, W, 0, 0, H, W) with H, W the latent size times vae_scale_factor (the image's size), for both
  rows. Note for other callers: with requires_aesthetics_score False the img2img/inpainting pipelines build the
  negative row from negative_original_size + crops_coords_top_left (the *positive* crop: the
  negative_crops_coords_top_left argument is ignored) + negative_target_size, unlike StableDiffusionXLPipeline.
- No set_begin_index: unlike StableDiffusionImg2ImgPipeline/StableDiffusionInpaintPipeline, the SDXL pipelines
  leave the scheduler's begin_index unset, so step and add_noise find each timestep's index by value
  (index_for_timestep); with no repeated timesteps the result is the same.
"""

import hashlib
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import PIL.Image
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
import bpe  # noqa: E402  (tools/train: the tiny CLIP-format BPE vocabulary)
import safetensors_io  # noqa: E402  (deterministic writer: metadata in a fixed order, so reruns give the same bytes)

import diffusers  # noqa: E402
import huggingface_hub  # noqa: E402
import transformers  # noqa: E402
from diffusers import (AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler,  # noqa: E402
                       EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline,
                       StableDiffusionXLInpaintPipeline, StableDiffusionXLPipeline, UNet2DConditionModel)
from safetensors.torch import load_file  # noqa: E402
from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection,  # noqa: E402
                          CLIPTokenizer)

OUT = os.path.join(ROOT, "tests", "golden", "data")
FOLDER = os.path.join(OUT, "pipeline_sdxl")
MODEL_GOLDEN = os.path.join(OUT, "model_sdxl_tiny.safetensors")
CASES_GOLDEN = os.path.join(OUT, "pipeline_sdxl_cases.safetensors")
IMG2IMG_GOLDEN = os.path.join(OUT, "pipeline_sdxl_img2img_cases.safetensors")
SCRIPT = "tools/reference/make_sdxl_goldens.py"
SEED = 2024
IO_SEED = 7

# The words of pipeline_sd1's vocabulary (make_pipeline_goldens.py), so both tiny tokenizers are the same.
WORDS = ("a red green blue circle square triangle on the left right top bottom centre background small large "
         "photo of cat dog, masterpiece").split()
TEXT_PROMPT = "a small red circle on the left of a large blue square"
# A prompt with "!": tokenizer_2 registers its pad token "!" as a special added token, so it splits every "!"
# out of the text before BPE and gives it id 0, where tokenizer (and CLIP's BPE) gives "!</w>" (256).
BANG_PROMPT = "photo of a cat! a dog!!"

UNET_WIDTHS = (8, 16, 32)
# The decoder's last conv drawn at 0.3 of the usual scale: pixels of the pipeline images then have a standard
# deviation of about 0.3 to 0.6 (in [-1, 1] units) instead of 1 to 1.7, and only a few percent clamp to 0 or 255.
VAE_DAMP = {"decoder.conv_out.weight": 0.3}

# SDXL base 1.0's scheduler/scheduler_config.json values.
SCHEDULER_CONFIG = {
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
    "prediction_type": "epsilon", "timestep_spacing": "leading", "steps_offset": 1,
    "interpolation_type": "linear", "use_karras_sigmas": False,
    "clip_sample": False, "sample_max_value": 1.0, "set_alpha_to_one": False, "skip_prk_steps": True,
    "trained_betas": None,
}

SCHEDULERS = {
    "euler": EulerDiscreteScheduler,
    "euler_a": EulerAncestralDiscreteScheduler,
    "dpm++2m": DPMSolverMultistepScheduler,
    "ddim": DDIMScheduler,
}

_BASE = dict(steps=6, cfg=5.0, width=64, height=64, prompt_2=None, negative_2=None)
CASES = [
    dict(_BASE, name="euler", scheduler="euler", seed=42,
         prompt="a red circle on a blue background", negative="a green square"),
    dict(_BASE, name="euler_a", scheduler="euler_a", seed=1234, width=64, height=96,
         prompt="a small green triangle on the top", negative="photo of a dog"),
    dict(_BASE, name="dpmpp2m", scheduler="dpm++2m", seed=7, width=96, height=64,
         prompt="a large square, masterpiece", negative="a small circle"),
    dict(_BASE, name="ddim", scheduler="ddim", seed=11,
         prompt="a red square on the left", negative="blue"),
    dict(_BASE, name="euler_nocfg", scheduler="euler", seed=13, cfg=1.0,
         prompt="photo of a cat", negative="dog"),
    dict(_BASE, name="euler_prompt2", scheduler="euler", seed=17,
         prompt="a blue triangle on the right", prompt_2="photo of a large green circle, masterpiece",
         negative="a red square"),
    dict(_BASE, name="euler_sizes", scheduler="euler", seed=19,
         prompt="a green circle on the bottom", negative="a red triangle",
         original_size=(128, 128), crops_coords_top_left=(16, 8), target_size=(64, 64)),
    dict(_BASE, name="euler_negsizes", scheduler="euler", seed=23,
         prompt="a green circle on the bottom", negative="a red triangle",
         original_size=(128, 128), crops_coords_top_left=(16, 8), target_size=(64, 64),
         negative_original_size=(32, 32), negative_crops_coords_top_left=(0, 0), negative_target_size=(64, 64)),
    dict(_BASE, name="euler_noneg", scheduler="euler", seed=29,
         prompt="a small cat on the left", negative=None),
]
# Each feature case run again without its feature (same seed): the latents must differ, or the case tests nothing.
ABLATIONS = {
    "euler_prompt2": dict(prompt_2=None),
    "euler_sizes": dict(original_size=None, crops_coords_top_left=None, target_size=None),
    "euler_negsizes": dict(negative_original_size=None, negative_crops_coords_top_left=None,
                           negative_target_size=None),
    "euler_noneg": dict(negative=""),
}
# Image-to-image and inpainting cases (IMG2IMG_GOLDEN; see the docstring). init_variant picks the init image's
# pattern (make_init_image); mask is (top, left, bottom, right) of the repaint rectangle (make_mask).
_I2I = dict(steps=8, cfg=5.0, prompt_2=None, negative_2=None)
IMG2IMG_CASES = [
    dict(_I2I, name="i2i_euler", pipeline="img2img", scheduler="euler", seed=101, width=64, height=64,
         strength=0.6, init_variant=0, prompt="a red circle on a blue background", negative="a green square"),
    dict(_I2I, name="i2i_euler_wide", pipeline="img2img", scheduler="euler", seed=103, width=96, height=64,
         strength=0.6, init_variant=1, prompt="a small green triangle on the top", negative="photo of a dog"),
    dict(_I2I, name="i2i_dpmpp2m", pipeline="img2img", scheduler="dpm++2m", seed=107, width=64, height=64,
         strength=0.6, init_variant=2, prompt="a large square, masterpiece", negative="a small circle"),
    dict(_I2I, name="i2i_dpmpp2m_wide", pipeline="img2img", scheduler="dpm++2m", seed=109, width=96, height=64,
         strength=0.6, init_variant=3, prompt="photo of a cat on the left", negative="blue"),
    dict(_I2I, name="inpaint_euler_s100", pipeline="inpaint", scheduler="euler", seed=113, width=64, height=64,
         strength=1.0, init_variant=0, mask=(20, 12, 44, 40),
         prompt="a red square on the right", negative="a green circle"),
    dict(_I2I, name="inpaint_euler_s075", pipeline="inpaint", scheduler="euler", seed=127, width=64, height=64,
         strength=0.75, init_variant=2, mask=(20, 12, 44, 40),
         prompt="a small blue triangle, masterpiece", negative="photo of a dog"),
]
SIZE_KEYS = ("original_size", "crops_coords_top_left", "target_size", "negative_original_size",
             "negative_crops_coords_top_left", "negative_target_size")


def check_words(cases, extra=()):
    """Every prompt of `cases` (and each text in `extra`) is made of WORDS (and commas), so each word is one token
    of the tiny vocabulary. The other SDXL scripts call this for their own cases."""
    words = set(" ".join(WORDS).replace(",", " ").split())
    for case in cases:
        texts = (case.get("prompt"), case.get("prompt_2"), case.get("negative"), case.get("negative_2"), *extra)
        for text in texts:
            for w in (text or "").replace(",", " ").split():
                assert w in words, (case["name"], w)


def check_draws(gen, seed, shape, count, what):
    """The generator made exactly `count` randn draws of `shape` (checked through its final state)."""
    ref = torch.Generator("cpu").manual_seed(seed)
    for _ in range(count):
        torch.randn(shape, generator=ref)
    assert torch.equal(ref.get_state(), gen.get_state()), (what, count)


def assert_all_differ(latents):
    """No two cases of a golden file may share a latent (a case that ignored its parameters would)."""
    names = list(latents)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            la, lb = latents[names[a]], latents[names[b]]
            assert la.shape != lb.shape or not torch.equal(la, lb), (names[a], names[b])


def check_prompts():
    check_words(CASES + IMG2IMG_CASES, (TEXT_PROMPT,))


def versions(script=SCRIPT):
    """The metadata every SDXL golden records: the writing script and the library versions."""
    return {"script": script, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "huggingface_hub": huggingface_hub.__version__}


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ---------------------------------------------------------------------------------------------------------
# The model

def redraw(module, gen, damp=None):
    """Re-draws every parameter (see the docstring): norms near 1, matrices scaled by fan-in, small biases.
    damp maps a parameter name to an extra factor on its matrix scale."""
    damp = damp or {}
    norm_params = {}
    for m in module.modules():
        if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
            if m.weight is not None:
                norm_params[id(m.weight)] = "weight"
            if m.bias is not None:
                norm_params[id(m.bias)] = "bias"
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            kind = norm_params.get(id(p))
            if kind == "weight":
                p.copy_(1.0 + 0.1 * noise)
            elif kind == "bias":
                p.copy_(0.1 * noise)
            elif p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(noise * (min(0.2, 1.5 / fan_in ** 0.5) * damp.get(name, 1.0)))
            else:
                p.copy_(0.2 * noise)
            p.copy_(p.half().float())


def make_tokenizers(tmp):
    vocab, merges = bpe.build_bpe([" ".join(WORDS)])
    bpe.write_files(tmp, vocab, merges)
    vocab_file, merges_file = os.path.join(tmp, "vocab.json"), os.path.join(tmp, "merges.txt")
    common = dict(bos_token=bpe.BOS, eos_token=bpe.EOS, unk_token=bpe.EOS, model_max_length=77)
    tok = CLIPTokenizer(vocab_file, merges_file, pad_token=bpe.EOS, **common)
    tok_2 = CLIPTokenizer(vocab_file, merges_file, pad_token="!", **common)
    assert "!" in vocab, "the byte symbol '!' is always in a CLIP-format vocabulary"
    return vocab, tok, tok_2


def build_pipeline(tmp):
    vocab, tok, tok_2 = make_tokenizers(tmp)
    bos, eos = vocab[bpe.BOS], vocab[bpe.EOS]
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=UNET_WIDTHS, layers_per_block=2, transformer_layers_per_block=(1, 1, 2),
        attention_head_dim=(2, 4, 8), use_linear_projection=True, cross_attention_dim=80,
        addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=88,
        norm_num_groups=4, upcast_attention=False)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        norm_num_groups=4, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        sample_size=64, scaling_factor=0.13025, force_upcast=True)
    te = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5,
        bos_token_id=bos, eos_token_id=eos, pad_token_id=eos))
    te_2 = CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=40,
        bos_token_id=bos, eos_token_id=eos, pad_token_id=vocab["!"]))
    for m in (unet, vae, te, te_2):
        redraw(m, gen, VAE_DAMP if m is vae else None)
        m.eval()
    scheduler = EulerDiscreteScheduler.from_config(SCHEDULER_CONFIG)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=te, text_encoder_2=te_2, tokenizer=tok,
                                     tokenizer_2=tok_2, unet=unet, scheduler=scheduler,
                                     force_zeros_for_empty_prompt=True, add_watermarker=False)
    return pipe


def write_folder():
    with tempfile.TemporaryDirectory() as tmp:
        pipe = build_pipeline(tmp)
        rounded = {name: {k: v.clone() for k, v in getattr(pipe, name).state_dict().items()}
                   for name in ("unet", "vae", "text_encoder", "text_encoder_2")}
        if os.path.isdir(FOLDER):
            shutil.rmtree(FOLDER)
        pipe.to(torch.float16)
        pipe.save_pretrained(FOLDER, safe_serialization=True, variant=None)
    # The vocabulary is pipeline_sd1's.
    sd1_vocab = os.path.join(OUT, "pipeline_sd1", "tokenizer", "vocab.json")
    if os.path.exists(sd1_vocab):
        with open(sd1_vocab, encoding="utf-8") as f, \
                open(os.path.join(FOLDER, "tokenizer", "vocab.json"), encoding="utf-8") as g:
            assert json.load(f) == json.load(g), "tiny vocabulary differs from pipeline_sd1's"
    return rounded


def load_fp32(rounded):
    pipe = StableDiffusionXLPipeline.from_pretrained(FOLDER, torch_dtype=torch.float32, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    for name, ref in rounded.items():
        got = getattr(pipe, name).state_dict()
        for k, v in ref.items():
            assert got[k].dtype == torch.float32, (name, k)
            assert torch.equal(got[k], v), f"{name}.{k} does not round-trip"
    return pipe


# ---------------------------------------------------------------------------------------------------------
# Component goldens

def component_goldens(pipe):
    t = {}
    tok, tok_2 = pipe.tokenizer, pipe.tokenizer_2
    ids_1 = tok(TEXT_PROMPT, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    ids_2 = tok_2(TEXT_PROMPT, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    assert ids_1[0, -1].item() == tok.pad_token_id == tok.eos_token_id
    assert ids_2[0, -1].item() == tok_2.pad_token_id == 0
    with torch.no_grad():
        out_1 = pipe.text_encoder(ids_1, output_hidden_states=True)
        out_2 = pipe.text_encoder_2(ids_2, output_hidden_states=True)
        hidden_1, hidden_2 = out_1.hidden_states[-2], out_2.hidden_states[-2]
        context = torch.cat([hidden_1, hidden_2], dim=-1)
        pooler_2 = pipe.text_encoder_2.text_model(ids_2).pooler_output
        text_embeds = out_2.text_embeds
        pe, npe, ppe, nppe = pipe.encode_prompt(TEXT_PROMPT, device=torch.device("cpu"), num_images_per_prompt=1,
                                                do_classifier_free_guidance=False)
    assert npe is None and nppe is None
    assert torch.equal(pe, context) and torch.equal(ppe, text_embeds), "encode_prompt differs"
    first_eos = ids_2[0].tolist().index(tok_2.eos_token_id)
    assert torch.equal(pooler_2[0], out_2.last_hidden_state[0, first_eos])
    bang_1 = tok(BANG_PROMPT, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    bang_2 = tok_2(BANG_PROMPT, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    assert not torch.equal(bang_1[:, :10], bang_2[:, :10])
    t.update({"text.bang_ids_1": bang_1.to(torch.int32), "text.bang_ids_2": bang_2.to(torch.int32)})
    t.update({"text.ids_1": ids_1.to(torch.int32), "text.ids_2": ids_2.to(torch.int32),
              "text.hidden_1": hidden_1, "text.hidden_2": hidden_2, "text.context": context,
              "text.pooler_2": pooler_2, "text.text_embeds": text_embeds})

    g = torch.Generator().manual_seed(IO_SEED)
    x = torch.randn((2, 4, 8, 12), generator=g)
    ctx = torch.randn((2, 77, 80), generator=g)
    temb = torch.randn((2, 40), generator=g)
    time_ids = torch.tensor([[64, 96, 0, 0, 64, 96], [128, 128, 16, 8, 64, 96]], dtype=torch.float32)
    t.update({"unet.x": x, "unet.context": ctx, "unet.text_embeds": temb, "unet.time_ids": time_ids})
    with torch.no_grad():
        for ts in (421, 999):
            out = pipe.unet(x, torch.tensor([float(ts)] * 2), encoder_hidden_states=ctx,
                            added_cond_kwargs={"text_embeds": temb, "time_ids": time_ids}).sample
            t[f"unet.out_t{ts}"] = out

    z = torch.randn((1, 4, 8, 12), generator=g)
    img = torch.rand((1, 3, 64, 96), generator=g) * 2 - 1
    vae = pipe.vae
    with torch.no_grad():
        decoded = vae.decode(z / vae.config.scaling_factor).sample
        dist = vae.encode(img).latent_dist
        moments = vae.quant_conv(vae.encoder(img))
    raw_mean, raw_logvar = torch.chunk(moments, 2, dim=1)
    assert torch.equal(dist.mean, raw_mean) and torch.equal(dist.logvar, raw_logvar), "logvar was clamped"
    t.update({"vae.z": z, "vae.decoded": decoded, "vae.image": img, "vae.mean": dist.mean,
              "vae.logvar": dist.logvar})

    meta = dict(versions(), seed=str(SEED), io_seed=str(IO_SEED), prompt=TEXT_PROMPT, bang_prompt=BANG_PROMPT,
                unet_config=json.dumps(dict(pipe.unet.config)), vae_config=json.dumps(dict(pipe.vae.config)),
                text_encoder_config=pipe.text_encoder.config.to_json_string(),
                text_encoder_2_config=pipe.text_encoder_2.config.to_json_string())
    for k, v in t.items():
        print(f"  {k:18s} {str(v.dtype).replace('torch.', ''):8s} {list(v.shape)}"
              + (f"  std {v.float().std().item():.4f}" if v.is_floating_point() else ""))
    return t, meta


# ---------------------------------------------------------------------------------------------------------
# Pipeline cases

class TimeIdsRecorder:
    """A forward pre-hook on the UNet that keeps the added_cond_kwargs["time_ids"] of every call."""

    def __init__(self):
        self.seen = []

    def __call__(self, module, args, kwargs):
        self.seen.append(kwargs["added_cond_kwargs"]["time_ids"].detach().clone())


def decode_as_pipeline(pipe, latent):
    vae = pipe.vae
    assert vae.dtype == torch.float32  # so the pipeline's force_upcast branch is not taken
    with torch.no_grad():
        image = vae.decode(latent / vae.config.scaling_factor, return_dict=False)[0]
    pil = pipe.image_processor.postprocess(image, output_type="pil")[0]
    return torch.from_numpy(np.asarray(pil).copy())


def run_case(pipe, case, sched_cfg, check_pil=False):
    cls = SCHEDULERS[case["scheduler"]]
    pipe.scheduler = cls.from_config(sched_cfg)
    kwargs = {k: case[k] for k in SIZE_KEYS if case.get(k) is not None}
    call = dict(prompt=case["prompt"], prompt_2=case["prompt_2"], negative_prompt=case["negative"],
                negative_prompt_2=case["negative_2"], width=case["width"], height=case["height"],
                num_inference_steps=case["steps"], guidance_scale=case["cfg"], **kwargs)
    rec = TimeIdsRecorder()
    handle = pipe.unet.register_forward_pre_hook(rec, with_kwargs=True)
    try:
        with torch.no_grad():
            latent = pipe(**call, generator=torch.Generator("cpu").manual_seed(case["seed"]),
                          output_type="latent").images
    finally:
        handle.remove()
    assert len(rec.seen) == case["steps"] and all(torch.equal(s, rec.seen[0]) for s in rec.seen)
    time_ids = rec.seen[0]
    image = decode_as_pipeline(pipe, latent)
    if check_pil:
        with torch.no_grad():
            pil = pipe(**call, generator=torch.Generator("cpu").manual_seed(case["seed"]), output_type="pil").images[0]
        assert torch.equal(torch.from_numpy(np.asarray(pil).copy()), image), "decode differs from the pipeline's"
    params = {k: case.get(k) for k in ("name", "scheduler")}
    params.update(scheduler_class=cls.__name__, prompt=case["prompt"], prompt_2=case["prompt_2"],
                  negative=case["negative"], negative_2=case["negative_2"], steps=case["steps"], cfg=case["cfg"],
                  seed=case["seed"], width=case["width"], height=case["height"])
    params.update({k: (list(case[k]) if case.get(k) is not None else None) for k in SIZE_KEYS})
    params["timesteps"] = [float(x) for x in pipe.scheduler.timesteps.tolist()]
    params["time_ids"] = time_ids.tolist()
    return latent[0:1].contiguous(), image.contiguous(), time_ids.contiguous(), params


def pipeline_cases(pipe):
    sched_cfg = dict(pipe.scheduler.config)
    tensors, meta = {}, dict(versions(), seed=str(SEED), scheduler_config=json.dumps(sched_cfg))
    latents = {}
    for i, case in enumerate(CASES):
        latent, image, time_ids, params = run_case(pipe, case, sched_cfg, check_pil=(i == 0))
        name = case["name"]
        assert torch.isfinite(latent).all(), name
        f = pipe.vae_scale_factor
        assert latent.shape == (1, 4, case["height"] // f, case["width"] // f), name
        assert image.shape == (case["height"], case["width"], 3) and image.dtype == torch.uint8, name
        tensors[f"{name}.latent"] = latent
        tensors[f"{name}.image"] = image
        tensors[f"{name}.time_ids"] = time_ids
        meta[f"{name}.params"] = json.dumps(params)
        latents[name] = latent
        sat = ((image == 0) | (image == 255)).float().mean().item()
        print(f"  {name:15s} {params['scheduler_class']:32s} {case['width']}x{case['height']} latent std "
              f"{latent.std().item():.3f} max|.| {latent.abs().max().item():.3f}  image mean "
              f"{image.float().mean().item():.1f} std {image.float().std().item():.1f} saturated {sat:.0%}")
        print(f"  {'':15s} timesteps {params['timesteps']}  time_ids {params['time_ids']}")
    for name, overrides in ABLATIONS.items():
        case = dict(next(c for c in CASES if c["name"] == name), **overrides)
        other = run_case(pipe, case, sched_cfg)[0]
        diff = (other - latents[name]).abs().max().item()
        print(f"  {name} without its feature {overrides}: max |latent difference| {diff:.4f}")
        assert diff > 1e-3 * latents[name].std().item(), name
    assert_all_differ(latents)
    return tensors, meta


# ---------------------------------------------------------------------------------------------------------
# Image-to-image and inpainting cases

def make_init_image(height, width, variant):
    """A deterministic RGB test image, uint8 [H, W, 3]: smooth ramps, a disc and stripes (no randomness)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / (width - 1), y / (height - 1)
    phase = 0.7 * variant
    r = 40 + 180 * u
    g = 30 + 170 * v
    b = 60 + 60 * np.sin(2 * np.pi * (u + v) * 2 + phase)
    cx, cy, rad = (0.35 + 0.1 * variant) * width, (0.6 - 0.05 * variant) * height, 0.22 * min(height, width)
    disc = (x - cx) ** 2 + (y - cy) ** 2 < rad ** 2
    r = np.where(disc, 230, r)
    g = np.where(disc, 200 - 30 * variant, g)
    b = np.where(disc, 40, b)
    stripes = ((x + 2 * y + 3 * variant) // 5) % 4 == 0
    g = np.where(stripes & ~disc, g * 0.6, g)
    img = np.stack([r, g, b], axis=-1)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def make_mask(height, width, rect):
    """uint8 [H, W]: 255 inside rect = (top, left, bottom, right) (repaint), 0 elsewhere, with a one-pixel ring
    of 128 just outside it (>= 0.5 after /255: repainted) and a ring of 127 outside that (< 0.5: kept), so the
    pipeline's binarisation threshold is exercised."""
    top, left, bottom, right = rect
    m = np.zeros((height, width), np.uint8)
    m[top - 2:bottom + 2, left - 2:right + 2] = 127
    m[top - 1:bottom + 1, left - 1:right + 1] = 128
    m[top:bottom, left:right] = 255
    return m


class UNetInputRecorder:
    """A forward pre-hook on the UNet: the timestep of every call, the first call's latent input, time_ids."""

    def __init__(self):
        self.timesteps, self.first_input, self.time_ids = [], None, []

    def __call__(self, module, args, kwargs):
        if self.first_input is None:
            self.first_input = args[0].detach().clone()
        self.timesteps.append(float(args[1]))
        self.time_ids.append(kwargs["added_cond_kwargs"]["time_ids"].detach().clone())


def derived_pipelines(pipe):
    common = dict(vae=pipe.vae, text_encoder=pipe.text_encoder, text_encoder_2=pipe.text_encoder_2,
                  tokenizer=pipe.tokenizer, tokenizer_2=pipe.tokenizer_2, unet=pipe.unet, scheduler=pipe.scheduler,
                  force_zeros_for_empty_prompt=True, add_watermarker=False)
    out = {"img2img": StableDiffusionXLImg2ImgPipeline(**common, requires_aesthetics_score=False),
           "inpaint": StableDiffusionXLInpaintPipeline(**common, requires_aesthetics_score=False)}
    for p in out.values():
        p.set_progress_bar_config(disable=True)
    return out


def expected_first_input(pipe, case, init_u8, sched_cfg, t_start):
    """The UNet's first latent input as the docstring says it is made: generator draw 1 is the VAE posterior
    sample of the init image, draw 2 the noise."""
    vae, cls = pipe.vae, SCHEDULERS[case["scheduler"]]
    g = torch.Generator().manual_seed(case["seed"])
    init = torch.from_numpy(init_u8).permute(2, 0, 1)[None].float() / 255.0 * 2.0 - 1.0
    processed = pipe.image_processor.preprocess(PIL.Image.fromarray(init_u8, mode="RGB"))
    assert torch.equal(init, processed), "the pipeline's image preprocessing is not 2 * u8 / 255 - 1"
    with torch.no_grad():
        # Encode the pipeline's own tensor: its strides (a transposed numpy HWC array) select other convolution
        # kernels than a contiguous copy, which changes the last bits.
        dist = vae.encode(processed).latent_dist
    z0 = vae.config.scaling_factor * (dist.mean + dist.std * torch.randn(dist.mean.shape, generator=g))
    noise = torch.randn(z0.shape, generator=g)
    sched = cls.from_config(sched_cfg)
    sched.set_timesteps(case["steps"])
    t0 = sched.timesteps[t_start]
    if case["strength"] == 1.0:
        x = noise * sched.init_noise_sigma
    else:
        x = sched.add_noise(z0, noise, t0.reshape(1))
    return sched.scale_model_input(x, t0), z0


def run_img2img_case(pipes, case, sched_cfg, check_pil=False):
    pipe = pipes[case["pipeline"]]
    cls = SCHEDULERS[case["scheduler"]]
    pipe.scheduler = cls.from_config(sched_cfg)
    h, w = case["height"], case["width"]
    init_u8 = make_init_image(h, w, case["init_variant"])
    call = dict(prompt=case["prompt"], prompt_2=case["prompt_2"], negative_prompt=case["negative"],
                negative_prompt_2=case["negative_2"], image=PIL.Image.fromarray(init_u8, mode="RGB"),
                strength=case["strength"], num_inference_steps=case["steps"], guidance_scale=case["cfg"])
    mask_u8 = None
    if case["pipeline"] == "inpaint":
        mask_u8 = make_mask(h, w, case["mask"])
        # height and width must be given: the inpainting pipeline's default is unet.sample_size * vae_scale_factor
        # (16 here), not the image's size as in img2img.
        call.update(mask_image=PIL.Image.fromarray(mask_u8, mode="L"), height=h, width=w)
    rec = UNetInputRecorder()
    handle = pipe.unet.register_forward_pre_hook(rec, with_kwargs=True)
    gen = torch.Generator("cpu").manual_seed(case["seed"])
    try:
        with torch.no_grad():
            latent = pipe(**call, generator=gen, output_type="latent").images
    finally:
        handle.remove()
    # Every draw from the generator, in order (the docstring's list): the generator ends where these leave it.
    lat_shape = (1, 4, h // pipe.vae_scale_factor, w // pipe.vae_scale_factor)
    draws = ["posterior", "noise"] + (["masked posterior"] if case["pipeline"] == "inpaint" else [])
    if cls is EulerDiscreteScheduler:
        draws += ["step"] * len(rec.timesteps)
    check_draws(gen, case["seed"], lat_shape, len(draws), (case["name"], "generator draws", draws))
    all_timesteps = [float(x) for x in pipe.scheduler.timesteps.tolist()]
    n_run = min(int(case["steps"] * case["strength"]), case["steps"])
    t_start = case["steps"] - n_run
    assert rec.timesteps == all_timesteps[t_start:], (case["name"], rec.timesteps, all_timesteps)
    assert all(torch.equal(s, rec.time_ids[0]) for s in rec.time_ids)
    time_ids = rec.time_ids[0]
    want_in, z0 = expected_first_input(pipe, case, init_u8, sched_cfg, t_start)
    got_in = rec.first_input
    assert got_in.shape[0] == 2 and torch.equal(got_in[0], got_in[1])  # CFG: [uncond, cond] of the same latent
    diff = (got_in[0:1] - want_in).abs().max().item()
    assert diff <= 1e-5 * want_in.abs().max().item(), (case["name"], "first UNet input", diff)
    if mask_u8 is not None:
        # Latent mask: binarised at 0.5, then sampled every vae_scale_factor pixels (nearest; 2 here, 8 for SDXL's
        # VAE). Outside it the final latent is the init image's latent z0 exactly (the last step blends with the
        # un-noised latent).
        f = pipe.vae_scale_factor
        m = torch.from_numpy((mask_u8.astype(np.float32) / 255.0 >= 0.5).astype(np.float32))[::f, ::f]
        keep = (m == 0).expand_as(latent[0])
        assert torch.equal(latent[0][keep], z0[0][keep]), case["name"]
        assert not torch.equal(latent[0][~keep], z0[0][~keep]), case["name"]
    image = decode_as_pipeline(pipe, latent)
    if check_pil:
        with torch.no_grad():
            pil = pipe(**call, generator=torch.Generator("cpu").manual_seed(case["seed"]), output_type="pil").images[0]
        assert torch.equal(torch.from_numpy(np.asarray(pil).copy()), image), "decode differs from the pipeline's"
    params = {k: case.get(k) for k in ("name", "pipeline", "scheduler")}
    params.update(pipeline_class=type(pipe).__name__, scheduler_class=cls.__name__, prompt=case["prompt"],
                  prompt_2=case["prompt_2"], negative=case["negative"], negative_2=case["negative_2"],
                  steps=case["steps"], cfg=case["cfg"], seed=case["seed"], width=w, height=h,
                  strength=case["strength"], init_variant=case["init_variant"],
                  mask_rect=list(case["mask"]) if "mask" in case else None,
                  requires_aesthetics_score=bool(pipe.config.requires_aesthetics_score))
    params.update({k: None for k in SIZE_KEYS})
    params["all_timesteps"] = all_timesteps
    params["timesteps"] = rec.timesteps
    params["time_ids"] = time_ids.tolist()
    tensors = {"init": torch.from_numpy(init_u8).permute(2, 0, 1)[None].contiguous(),
               "init_latents": z0.contiguous(), "latent": latent[0:1].contiguous(), "image": image.contiguous(),
               "time_ids": time_ids.contiguous()}
    if mask_u8 is not None:
        tensors["mask"] = torch.from_numpy(mask_u8)
    return tensors, params, diff


def img2img_cases(pipe):
    pipes = derived_pipelines(pipe)
    sched_cfg = dict(pipe.scheduler.config)
    tensors, meta = {}, dict(versions(), seed=str(SEED), scheduler_config=json.dumps(sched_cfg))
    latents = {}
    first_of = set()
    for case in IMG2IMG_CASES:
        check = case["pipeline"] not in first_of
        first_of.add(case["pipeline"])
        t, params, diff = run_img2img_case(pipes, case, sched_cfg, check_pil=check)
        name = case["name"]
        latent = t["latent"]
        assert torch.isfinite(latent).all(), name
        f = pipe.vae_scale_factor
        assert latent.shape == (1, 4, case["height"] // f, case["width"] // f), name
        assert t["image"].shape == (case["height"], case["width"], 3) and t["image"].dtype == torch.uint8, name
        assert t["init"].shape == (1, 3, case["height"], case["width"]) and t["init"].dtype == torch.uint8, name
        for k, v in t.items():
            tensors[f"{name}.{k}"] = v
        meta[f"{name}.params"] = json.dumps(params)
        latents[name] = latent
        image = t["image"]
        sat = ((image == 0) | (image == 255)).float().mean().item()
        print(f"  {name:19s} {params['pipeline_class']:33s} {params['scheduler_class']:27s} "
              f"{case['width']}x{case['height']} strength {case['strength']}: latent std {latent.std().item():.3f}  "
              f"image mean {image.float().mean().item():.1f} std {image.float().std().item():.1f} saturated "
              f"{sat:.0%}; first UNet input off by {diff:.1e}")
        print(f"  {'':19s} timesteps {params['timesteps']} of {params['all_timesteps']}  time_ids {params['time_ids']}")
    assert_all_differ(latents)
    return tensors, meta


def save(path, tensors, meta):
    for k, v in tensors.items():
        if v.is_floating_point():
            assert v.dtype == torch.float32 and torch.isfinite(v).all(), k
    tensors = {k: v.detach().clone().contiguous() for k, v in tensors.items()}
    safetensors_io.save_file(tensors, path, dict(sorted(meta.items())))
    back = load_file(path)  # read back with the safetensors library
    assert back.keys() == tensors.keys() and all(torch.equal(back[k], v) for k, v in tensors.items())
    print(f"wrote {os.path.relpath(path, ROOT)}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


def main():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    check_prompts()
    rounded = write_folder()
    total = 0
    for dirpath, _, files in sorted(os.walk(FOLDER)):
        for f in sorted(files):
            size = os.path.getsize(os.path.join(dirpath, f))
            total += size
            print(f"  {os.path.relpath(os.path.join(dirpath, f), ROOT)}: {size} bytes")
    print(f"wrote {os.path.relpath(FOLDER, ROOT)}: {total} bytes")
    pipe = load_fp32(rounded)
    print("pad ids: tokenizer", pipe.tokenizer.pad_token_id, "tokenizer_2", pipe.tokenizer_2.pad_token_id)
    print("component goldens:")
    save(MODEL_GOLDEN, *component_goldens(pipe))
    print("pipeline cases:")
    save(CASES_GOLDEN, *pipeline_cases(pipe))
    print("img2img and inpainting cases:")
    save(IMG2IMG_GOLDEN, *img2img_cases(pipe))


if __name__ == "__main__":
    main()
