#!/work/refvenv/bin/python
"""SD3 goldens from diffusers' StableDiffusion3Pipeline on a tiny random-weight SD3 (medium)-shaped model.

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline:

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_sd3_goldens.py

It takes about 7 s on a two-core machine beside a running build (640 MB peak RSS). Every weight is random and
the T5 tokenizer's sentencepiece model is trained here; nothing is downloaded. Every run writes the same bytes
(torch pinned to one thread; the two .safetensors goldens go through safetensors_io.py, metadata keys sorted;
checked with two runs). Versions (requirements-pip.txt): torch 2.4.1 (CPU), diffusers 0.30.3,
transformers 4.40.2, tokenizers 0.19.1, sentencepiece 0.1.99, protobuf 4.25.3 (transformers needs both to turn
the slow T5Tokenizer into a T5TokenizerFast), huggingface_hub 0.36.2. All computation is float32 on the CPU
with diffusers' default processors (JointAttnProcessor2_0 and AttnProcessor2_0: torch's
scaled_dot_product_attention) and transformers' eager T5/CLIP attention.

It writes three things (all tensors float32 unless said):

1. tests/golden/data/pipeline_sd3/: the model as a diffusers folder, written by
   StableDiffusion3Pipeline.save_pretrained (safe_serialization, variant None) after `.to(torch.float16)`:
   model_index.json, transformer/, vae/, text_encoder/, text_encoder_2/, text_encoder_3/ (config.json and fp16
   safetensors), tokenizer/, tokenizer_2/ (CLIP: vocab.json, merges.txt, tokenizer_config.json,
   special_tokens_map.json), tokenizer_3/ (T5TokenizerFast: spiece.model, tokenizer.json, tokenizer_config.json,
   special_tokens_map.json), scheduler/scheduler_config.json. Every reference run below uses the folder reloaded
   with from_pretrained(torch_dtype=torch.float32), so it computes in fp32 on exactly the fp16-rounded weights
   (the script checks that every reloaded tensor, the transformer's pos_embed buffer included, equals the
   fp16-rounded one bit for bit).

2. tests/golden/data/model_sd3_tiny.safetensors: component goldens on that model (no weights).

3. tests/golden/data/pipeline_sd3_cases.safetensors: whole-pipeline runs (CASES below).

The model (SD3 medium's layout at tiny widths)
----------------------------------------------
- tokenizer, tokenizer_2: make_sdxl_goldens.make_tokenizers, so vocab.json and merges.txt are those of
  pipeline_sdxl/tokenizer (checked): 591 tokens, <|startoftext|> 589, <|endoftext|> 590, model_max_length 77.
  tokenizer pads with <|endoftext|> (590); tokenizer_2 pads with "!" (0), as SD3's tokenizer_2 (the bigG one)
  does. tokenizer_2 therefore splits every "!" out of a prompt as the special token 0 (see the OOV prompt).
- tokenizer_3: a T5TokenizerFast over a sentencepiece *unigram* model trained here (make_spiece): SP_VOCAB = 200
  pieces, trained on SP_CORPUS (the prompts of this script and some other sentences) with T5's special pieces
  <pad> 0, </s> 1, <unk> 2, no BOS (bos_id -1), normalization nmt_nfkc (sentencepiece's default, T5's rule:
  the precompiled NFKC charsmap, which is most of spiece.model's and tokenizer.json's size), add_dummy_prefix and
  remove_extra_whitespaces on, no byte fallback (characters it never saw, here upper case, digits and "!", become
  <unk>; a run of unknown characters is one <unk>), character_coverage 1.0, num_threads 1,
  set_random_generator_seed(SP_SEED). The script trains it twice and checks the bytes are identical.
  T5TokenizerFast(spiece.model) is built with transformers' defaults for T5: extra_ids 100, so the vocabulary is
  300 ids: the 200 pieces, then the sentinels <extra_id_99> (200) ... <extra_id_0> (299) (T5Converter adds them
  in reverse, as in real T5, where <extra_id_0> is 32099), registered as special added tokens; legacy unset
  (transformers' default, legacy behaviour: the Metaspace pre-tokenizer prepends "▁" to every word, "always");
  model_max_length 512 (SD3's tokenizer_3 value; the pipeline passes max_length itself). The fast and the slow
  tokenizer give the same ids for every prompt here (checked).
- text_encoder: CLIPTextModelWithProjection, hidden 32, intermediate 64, 2 layers, 4 heads, quick_gelu,
  projection_dim 32, 77 positions, vocab 591, bos 589, eos 590, pad 590, layer_norm_eps 1e-5 (SD3's CLIP-L is
  a CLIPTextModelWithProjection: its pooled output is text_embeds, the projected pooler).
- text_encoder_2: CLIPTextModelWithProjection, hidden 48, intermediate 96, 2 layers, 4 heads, gelu (erf),
  projection_dim 48, vocab 591, bos 589, eos 590, pad 0. With eos_token_id != 2, transformers 4.40 pools at
  the first position equal to eos_token_id (both encoders).
- text_encoder_3: T5EncoderModel, d_model 96, d_kv 16, num_heads 4 (inner 64 != d_model), d_ff 128, 2 layers,
  relative_attention_num_buckets 32, relative_attention_max_distance 128, feed_forward_proj "gated-gelu"
  (wi_0 through gelu_new, the tanh approximation, times wi_1; T5 v1.1 as SD3's T5-XXL), layer_norm_epsilon 1e-6,
  dropout 0, vocab 300 (= len(tokenizer_3)), pad 0, eos 1, tie_word_embeddings False (T5 v1.1's). T5 attention
  has no 1/sqrt(d_kv) scaling; the relative-position bias lives in block 0 only and is shared by both layers;
  layer norms are RMS norms (no mean, no bias). save_pretrained stores the embedding once, as
  shared.weight [300, 96] (encoder.embed_tokens.weight is tied to it and not written).
- transformer: SD3Transformer2DModel, sample_size 16, patch_size 2, in/out_channels 16, num_layers 3,
  attention_head_dim 8, num_attention_heads 4 (inner 32), joint_attention_dim 96, caption_projection_dim 32
  (it must equal inner: the context stream runs at the inner width), pooled_projection_dim 80 (32 + 48),
  pos_embed_max_size 16. The last block (index 2) is context_pre_only: its context stream has norm1_context =
  AdaLayerNormContinuous (2 * 32 outputs: scale, then shift), no to_add_out, no norm2_context/ff_context, and
  its context output is dropped. pos_embed.pos_embed is a *persistent* buffer [1, 256, 32] (16 * 16 positions),
  so it is in the safetensors file (fp16-rounded like the weights): get_2d_sincos_pos_embed(32, 16,
  base_size = sample_size / patch_size = 8): position r * 16 + c (row r, column c) holds [sin(x w), cos(x w),
  sin(y w), cos(y w)] with x = c / 2, y = r / 2 (coordinates scaled by base_size / 16; the column comes
  first) and w = 10000^(-i / 8), i = 0..7.
- vae: AutoencoderKL, block_out_channels (8, 16), layers_per_block 1, latent_channels 16, norm_num_groups 4,
  DownEncoderBlock2D x2 / UpDecoderBlock2D x2 (downscale 2: vae_scale_factor 2), use_quant_conv False,
  use_post_quant_conv False (SD3's VAE has neither), scaling_factor 1.5305, shift_factor 0.0609, force_upcast
  True (SD3's config; the SD3 pipelines never look at it), sample_size 32, latents_mean/std None.
- scheduler: FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0) (SD3 medium's
  scheduler_config.json; use_dynamic_shifting False).

Weights: built with torch.manual_seed(SEED) (SEED = 2025), then every parameter of transformer, vae,
text_encoder, text_encoder_2, text_encoder_3 (in that order, named_parameters() order) is re-drawn from one
torch.Generator seeded with SEED, with make_sdxl_goldens.redraw's rule: GroupNorm/LayerNorm (and T5's
T5LayerNorm) weights 1 + 0.1 * randn, their biases 0.1 * randn; other tensors of rank >= 2 randn *
min(0.2, 1.5 / sqrt(fan_in)) (fan_in = numel / out_features) times a per-name factor (FACTORS): the VAE's
decoder.conv_out.weight 0.3 (make_sdxl_goldens' VAE damping), T5's SelfAttention.q 0.25 (= 1/sqrt(d_kv): T5
folds the softmax scale into q's initialisation), T5's SelfAttention.o and DenseReluDense.wo 0.5 (so the
residual stream stays O(1): RMS 0.16 after the embedding, 1.4 after layer 0, for p0; attention spread, not
one-hot), T5's relative_attention_bias 5 (std 1.0, so relative positions matter); other
biases 0.2 * randn. Each value is rounded to fp16 at once. The transformer has no affine norms (every LayerNorm
in it is elementwise_affine False). The pos_embed buffer is not drawn (it is computed), only rounded to fp16:
a reimplementation that recomputes it instead of reading it from the file is off by that rounding.

model_sd3_tiny.safetensors
--------------------------
Prompts (metadata prompt.<k>): p0 TEXT_PROMPT, p1 "" (the empty prompt: what the pipeline encodes as the
negative when none is given), p2 OOV_PROMPT (upper case, digits and "!": <unk> in the T5 vocabulary; "!" is
tokenizer_2's pad token, so id 0 there), long LONG_PROMPT (84 CLIP tokens: truncated to BOS + 75 + EOS; 156
T5 pieces + </s>: kept whole at 256, truncated to 76 pieces + </s> at 77). Every prompt of the pipeline cases
as well: case.<name> (prompt) and case.<name>.neg (negative, where the case encodes one). For every prompt <k>:
    text.<k>.ids_1      int32 [1, 77]   tokenizer ids as _get_clip_prompt_embeds computes them (padding
                                        "max_length", max_length 77, truncation): BOS, words, EOS, 590 padding
    text.<k>.ids_2      int32 [1, 77]   tokenizer_2 ids, the same way: BOS, words, EOS, 0 padding
    text.<k>.ids_3      int32 [1, 256]  tokenizer_3 ids as _get_t5_prompt_embeds computes them (padding
                                        "max_length", max_length = max_sequence_length 256, truncation,
                                        add_special_tokens): pieces, </s> (1), then <pad> (0) padding; no BOS
For p0, p1, p2 also (the script checks encode_prompt gives exactly these):
    text.<k>.hidden_1   [1, 77, 32]     text_encoder(ids_1, output_hidden_states).hidden_states[-2]: the input
                                        of the last layer, no final layer norm
    text.<k>.pooled_1   [1, 32]         text_encoder(ids_1).text_embeds: text_projection of the final-layer-
                                        normed state at the first EOS
    text.<k>.hidden_2   [1, 77, 48]     text_encoder_2's hidden_states[-2]
    text.<k>.pooled_2   [1, 48]         text_encoder_2's text_embeds
    text.<k>.t5         [1, 256, 96]    text_encoder_3(ids_3).last_hidden_state (after the final RMS norm).
                                        NO attention mask: the pipeline passes none, so every position,
                                        padding included, attends to all 256
encode_prompt (do_classifier_free_guidance False, num_images_per_prompt 1):
    encode.long.prompt_embeds     [1, 333, 96]  LONG_PROMPT, max_sequence_length 256 (the default): rows 0-76
                                        cat(hidden_1, hidden_2) (80 wide) zero-padded on the right to 96 (T5's
                                        width), rows 77-332 T5's last_hidden_state
    encode.long.pooled            [1, 80]       cat(pooled_1, pooled_2)
    encode.long77.prompt_embeds   [1, 154, 96]  the same with max_sequence_length 77 (T5 ids truncated to 76
                                        pieces + </s>: text.long.ids_3_77)
    encode.long77.pooled          [1, 80]       identical to encode.long.pooled
    text.long.ids_3_77  int32 [1, 77]
    encode.not5.prompt_embeds     [1, 154, 96]  TEXT_PROMPT through the pipeline built with text_encoder_3=None
                                        and tokenizer_3=None: rows 77-153 are zeros of shape [77, 96]
                                        (tokenizer_max_length = 77 rows, joint_attention_dim wide), whatever
                                        max_sequence_length is
    encode.not5.pooled            [1, 80]       as with T5 (the pooled vector is CLIP only)
Transformer (inputs drawn from a Generator seeded IO_SEED in the order listed; two calls per latent):
    transformer.x_sq          [1, 16, 16, 16]  latent, randn (8 x 8 patches)
    transformer.ctx_sq        [1, 333, 96]     encoder_hidden_states, randn (the 77 + 256 layout)
    transformer.pooled_sq     [1, 80]          pooled_projections, randn
    transformer.x_wide        [1, 16, 16, 24]  latent, randn (height 16, width 24: 8 x 12 patches)
    transformer.ctx_wide      [1, 154, 96]     randn (the 77 + 77 layout)
    transformer.pooled_wide   [1, 80]          randn
    transformer.timesteps     [2]              TIMESTEPS as float32: 1000 and 283.7 (283.70001220703125)
    transformer.<sq|wide>_t1000, transformer.<sq|wide>_t283_7   [1, 16, H, W]
                                               transformer(hidden_states=x, timestep=tensor([t]),
                                               encoder_hidden_states=ctx, pooled_projections=pooled).sample
Scheduler (set_timesteps(n) of FlowMatchEulerDiscreteScheduler(1000, shift)):
    sched.s3_n4.timesteps [4], sched.s3_n4.sigmas [5]; sched.s3_n10.* [10], [11]; sched.s3_n28.* [28], [29];
    sched.s1_n10.* [10], [11] (shift 1.0). The sigmas end with the appended 0; timesteps = sigmas * 1000 in fp32.
VAE (inputs from the same generator after the transformer's):
    vae.latent          [1, 16, 8, 12]  a latent as the sampler leaves it, randn
    vae.z               [1, 16, 8, 12]  the VAE's own input: latent / 1.5305 + 0.0609 (what the pipeline decodes)
    vae.decoded         [1, 3, 16, 24]  vae.decode(z).sample (no post_quant_conv)
    vae.image           [1, 3, 32, 48]  an image in [-1, 1], rand * 2 - 1
    vae.mean            [1, 16, 16, 24] vae.encode(image).latent_dist.mean (no quant_conv: the encoder's 32
    vae.logvar          [1, 16, 16, 24] output channels split in two); logvar clamped to [-30, 20] by diffusers,
                                        nothing is clamped here (checked)
Metadata: script, versions, seed, io_seed, sp_seed, the prompts, the configs (transformer_config, vae_config,
scheduler_config, text_encoder_config, text_encoder_2_config, text_encoder_3_config), spiece_sha256.

pipeline_sd3_cases.safetensors
------------------------------
Per case, pipe(prompt, negative_prompt, height, width, num_inference_steps, guidance_scale,
generator=torch.Generator("cpu").manual_seed(seed), output_type="latent") (prompt_2/prompt_3 None: every
encoder sees the prompt; max_sequence_length 256), the scheduler FlowMatchEulerDiscreteScheduler.from_config
(the folder's), fresh per case:
    <name>.latent   [1, 16, H/2, W/2]  the final latent as the pipeline returns it (before / scaling_factor +
                                       shift_factor)
    <name>.image    uint8 [H, W, 3]    (HWC, RGB) decoded as the pipeline does: latent / 1.5305 + 0.0609,
                                       vae.decode, image_processor.postprocess to PIL (round(clamp(x / 2 + 0.5,
                                       0, 1) * 255) in float32 numpy), numpy.asarray. The script checks every
                                       case against the pipeline's own output_type="pil" (a second run)
    <name>.timesteps [n]               the timesteps the transformer received, in order (each expanded to the
                                       batch: the same value for both CFG rows)
    <name>.sigmas    [N + 1]           the scheduler's sigmas after set_timesteps(N) (ends with 0)
    a.noise          [1, 16, 16, 16]   case a's initial latent: torch.randn([1, 16, 16, 16], generator) from the
                                       seeded CPU generator, float32 (prepare_latents' randn_tensor; the script
                                       checks it is the transformer's first input exactly, both CFG rows)
    e.init           uint8 [1, 3, 32, 32]  the img2img init image (CHW, RGB): make_sdxl_goldens.make_init_image(32,
                                       32, 0)
    e.init_latents   [1, 16, 16, 16]   (posterior sample - 0.0609) * 1.5305 of the init image
Metadata <name>.params (JSON): name, pipeline_class, prompt, negative (null: negative_prompt=None), steps, cfg,
seed, width, height, strength (img2img), t5 (false for the case without text_encoder_3), timesteps (as the
transformer received them), all_timesteps (the full schedule), sigmas. Also script, versions, seed,
scheduler_config.

Cases (sizes in pixels, height x width):
    a   txt2img 32x32, 4 steps, guidance 5.0, prompt and negative prompt
    b   txt2img 32x48 (height 32, width 48: latent [1, 16, 16, 24]), 6 steps, guidance 7.0, negative "" (SD3
        encodes "" for a missing negative too: there is no force_zeros_for_empty_prompt)
    c   txt2img 32x32, 4 steps, guidance 1.0: no CFG (do_classifier_free_guidance is guidance_scale > 1),
        batch 1, the negative prompt is never encoded
    d   txt2img 32x32, 4 steps, guidance 5.0, the pipeline without T5 (text_encoder_3=None, tokenizer_3=None):
        context [2, 154, 96] with zero T5 rows
    e   StableDiffusion3Img2ImgPipeline, 32x32 init image, strength 0.6, 6 steps, guidance 5.0
No two cases give the same latent (checked); every latent is finite.

What a reimplementation must match (diffusers 0.30.3; the script asserts the starred points)
----------------------------------------------------------------------------------------------
- Conditioning (*): prompt_embeds = cat([pad(cat([clip_l_hidden[-2], clip_g_hidden[-2]], -1), (0, 96 - 80)),
  t5_last_hidden_state], dim=-2): [B, 77 + max_sequence_length, 96]; pooled = cat([clip_l_text_embeds,
  clip_g_text_embeds], -1). Without text_encoder_3 the T5 part is zeros [B, 77, joint_attention_dim] (77 =
  tokenizer.model_max_length; max_sequence_length is ignored). With CFG the batch is [negative, positive] for
  both; the negative of None or "" encodes "" (CLIP: BOS EOS + padding; T5: </s> + padding), never zeros.
  clip_skip is applied to the positive prompt only (not used here).
- Flow-match schedule (*): __init__ builds sigmas_train = shift * s / (1 + (shift - 1) * s) for s = linspace(1,
  1000, 1000)[::-1] / 1000 (float32), and keeps sigma_max = sigmas_train[0] = 1.0 and sigma_min =
  sigmas_train[-1] (shift 3: 0.002994012, float32). set_timesteps(N): t = numpy.linspace(sigma_max * 1000,
  sigma_min * 1000, N) (float64), s = t / 1000, then the shift is applied AGAIN: sigma = shift * s / (1 +
  (shift - 1) * s) (float64), cast to float32; timesteps = sigma * 1000 (float32); sigmas = cat(sigma, [0]).
  So the last sigma is shift applied twice to 0.001 (shift 3: 0.008928572, timestep 8.928572), not sigma_min.
- Step (*): x_next = x + (sigma[i + 1] - sigma[i]) * v, v = uncond + cfg * (cond - uncond); no noise, no
  generator draws. The script replays every case's loop on the recorded transformer outputs and gets every
  transformer input and the final latent bit for bit. The transformer gets the timestep sigma * 1000 (a float,
  not rounded), embedded by Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0): [cos, sin] of
  t * exp(-ln(10000) * i / 128), i = 0..127.
- Initial latent (*): txt2img: one torch CPU randn of [1, 16, H/2, W/2] from the generator, used as is (no
  init_noise_sigma scaling: flow matching starts at sigma 1). img2img: draws 1. eps of the VAE posterior
  sample of the init image, 2. the noise; init_latents = (mean + exp(0.5 * logvar) * eps - shift_factor) *
  scaling_factor; x = sigma * noise + (1 - sigma) * init_latents (scale_noise) at sigma = sigmas[t_start].
- img2img timesteps (*): init_timestep = min(N * strength, N) (a float), t_start = int(max(N - init_timestep, 0)),
  set_begin_index(t_start), timesteps[t_start:] run. N 6, strength 0.6: 6 * 0.6 = 3.5999999999999996, t_start =
  int(2.4000000000000004) = 2, so 4 steps run (SDXL's img2img, int(N * strength) = 3, runs 3).
- Decoding (*): latent / scaling_factor + shift_factor, then the VAE decoder (no post_quant_conv).
- Transformer: PatchEmbed (conv k=2 s=2, flatten to [B, h*w, 32] in row-major order) + the centre crop of the
  16 x 16 pos_embed: top = (16 - h) // 2, left = (16 - w) // 2 (h, w in patches; 8 x 12 takes rows 4-11,
  columns 2-13). temb = timestep_embedder(time_proj(t)) + text_embedder(pooled) (linear, SiLU, linear both).
  context = context_embedder(encoder_hidden_states). Each block: AdaLayerNormZero on both streams (linear of
  SiLU(temb) to 6 * 32: shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp; LayerNorm eps 1e-6
  without affine), joint attention over cat([image tokens, context tokens]) (q, k, v from to_q/k/v on the
  image and add_q/k/v_proj on the context; 4 heads of 8; no q/k norm in 0.30.3; softmax scale 1/sqrt(8)), split
  back, to_out[0] / to_add_out, gated residuals, FeedForward "gelu-approximate" (tanh) 32 -> 128 -> 32. The last
  block (context_pre_only) modulates its context with AdaLayerNormContinuous (linear to 64: scale, then shift)
  and only its image stream continues. norm_out: AdaLayerNormContinuous (scale, then shift; eps 1e-6), proj_out
  to 2 * 2 * 16, unpatchify "nhwpqc->nchpwq".
"""

import io
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
import make_sdxl_goldens as sdxl_script  # noqa: E402  (the SDXL conventions: CLIP tokenizers, init image, checks)
import safetensors_io  # noqa: E402  (deterministic writer: metadata in a fixed order, so reruns give the same bytes)
from make_sdxl_goldens import OUT, ROOT, assert_all_differ, check_draws, make_init_image  # noqa: E402

import diffusers  # noqa: E402
import google.protobuf  # noqa: E402
import huggingface_hub  # noqa: E402
import sentencepiece as spm  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402
from diffusers import (AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel,  # noqa: E402
                       StableDiffusion3Img2ImgPipeline, StableDiffusion3Pipeline)
from safetensors.torch import load_file  # noqa: E402
from transformers import (CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel,  # noqa: E402
                          T5Tokenizer, T5TokenizerFast)
from transformers.models.t5.modeling_t5 import T5LayerNorm  # noqa: E402

FOLDER = os.path.join(OUT, "pipeline_sd3")
MODEL_GOLDEN = os.path.join(OUT, "model_sd3_tiny.safetensors")
CASES_GOLDEN = os.path.join(OUT, "pipeline_sd3_cases.safetensors")
SCRIPT = "tools/reference/make_sd3_goldens.py"
SEED = 2025
IO_SEED = 11
SP_SEED = 1234
SP_VOCAB = 200

TEXT_PROMPT = "a small red circle on the left of a large blue square"
OOV_PROMPT = "Photo of a CAT, 42 dogs!"
LONG_PROMPT = " ".join(["photo of a small red circle on the left of a large blue square,"] * 6)
TIMESTEPS = (1000.0, 283.7)

# The sentencepiece training text: the prompts of this script and some other sentences (enough distinct
# substrings for a 200-piece unigram vocabulary: with the first 17 sentences alone sentencepiece allows at most
# 68 pieces, and hard_vocab_limit stays on, so the vocabulary is exactly SP_VOCAB).
SP_CORPUS = [
    TEXT_PROMPT, "a red circle on a blue background", "a green square", "photo of a cat", "photo of a dog",
    "a large square, masterpiece", "a small green triangle on the top", "a small circle", "a red square on the left",
    "the cat on the left of the dog", "a blue triangle in the centre of a red square",
    "a photo of a small dog on the right", "a large green circle at the bottom, masterpiece",
    "the background is blue and the square is red", "two cats and three dogs",
    "a painting of a house by the river at sunset", "an apple, a banana and a cherry",
    "small shapes on a white background", "large shapes on a black background",
    "a yellow flower in a glass vase on a wooden table", "an orange house with a purple door and a grey roof",
    "a portrait of an old man with a white beard, oil painting", "a mountain lake under a cloudy sky at night",
    "a city street in the rain with bright lights", "a bird sitting on a branch of a tall tree",
    "a bowl of fruit next to a cup of coffee", "a horse running across a field of grass in summer",
    "a boat floating on a calm sea near the beach", "a castle on a hill surrounded by snow in winter",
    "a robot reading a book in a quiet library", "a forest path covered with autumn leaves",
    "highly detailed, sharp focus, digital art, trending", "blurry, low quality, ugly, watermark, text",
    "a spaceship flying over a desert planet with two moons", "a little girl holding a red umbrella in the street",
    "a cozy kitchen with copper pots and fresh bread", "an astronaut riding a horse on the moon",
    "a watercolor sketch of a sleeping fox", "a steam train crossing an old stone bridge",
    "a neon sign glowing above a small shop", "a jar of honey with a wooden spoon",
]

# Extra factors on the matrix scale of make_sdxl_goldens.redraw's rule (see the docstring), by name suffix.
FACTORS = {
    "vae": {"decoder.conv_out.weight": 0.3},
    "text_encoder_3": {"SelfAttention.q.weight": 0.25, "SelfAttention.o.weight": 0.5,
                       "DenseReluDense.wo.weight": 0.5, "relative_attention_bias.weight": 5.0},
}

# SD3 medium's scheduler/scheduler_config.json.
SCHEDULER_CONFIG = {"num_train_timesteps": 1000, "shift": 3.0}

CASES = [
    dict(name="a", pipeline="txt2img", t5=True, seed=42, height=32, width=32, steps=4, cfg=5.0,
         prompt="a red circle on a blue background", negative="a green square"),
    dict(name="b", pipeline="txt2img", t5=True, seed=1234, height=32, width=48, steps=6, cfg=7.0,
         prompt="a small green triangle on the top", negative=""),
    dict(name="c", pipeline="txt2img", t5=True, seed=13, height=32, width=32, steps=4, cfg=1.0,
         prompt="photo of a cat", negative="dog"),
    dict(name="d", pipeline="txt2img", t5=False, seed=7, height=32, width=32, steps=4, cfg=5.0,
         prompt="a large square, masterpiece", negative="a small circle"),
    dict(name="e", pipeline="img2img", t5=True, seed=101, height=32, width=32, steps=6, cfg=5.0, strength=0.6,
         init_variant=0, prompt="a red square on the left", negative="blue"),
]


def versions():
    return {"script": SCRIPT, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "sentencepiece": spm.__version__, "protobuf": google.protobuf.__version__,
            "huggingface_hub": huggingface_hub.__version__}


def check_prompts():
    sdxl_script.check_words(CASES, (TEXT_PROMPT, LONG_PROMPT))
    words = set(" ".join(SP_CORPUS).replace(",", " ").split())
    for case in CASES:
        for text in (case["prompt"], case["negative"]):
            assert all(w in words for w in (text or "").replace(",", " ").split()), (case["name"], text)


# ---------------------------------------------------------------------------------------------------------
# The model

def redraw(module, gen, factors=None):
    """make_sdxl_goldens.redraw's rule, with T5's RMS norm counted as a norm and per-name-suffix factors."""
    factors = factors or {}
    norm_params = {}
    for m in module.modules():
        if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm, T5LayerNorm)):
            if getattr(m, "weight", None) is not None:
                norm_params[id(m.weight)] = "weight"
            if getattr(m, "bias", None) is not None:
                norm_params[id(m.bias)] = "bias"
    used = set()
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
                hits = [suffix for suffix in factors if name.endswith(suffix)]
                assert len(hits) <= 1, (name, hits)
                used.update(hits)
                f = factors[hits[0]] if hits else 1.0
                p.copy_(noise * (min(0.2, 1.5 / fan_in ** 0.5) * f))
            else:
                p.copy_(0.2 * noise)
            p.copy_(p.half().float())
    assert used == set(factors), (set(factors) - used)


def train_spiece():
    """The T5 sentencepiece model (see the docstring), as bytes."""
    spm.set_random_generator_seed(SP_SEED)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SP_CORPUS), model_writer=buf, model_type="unigram", vocab_size=SP_VOCAB,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
        character_coverage=1.0, num_threads=1, shuffle_input_sentence=False, input_sentence_size=0,
        normalization_rule_name="nmt_nfkc", minloglevel=2)
    return buf.getvalue()


def make_spiece(tmp):
    model = train_spiece()
    assert model == train_spiece(), "sentencepiece training is not deterministic"
    path = os.path.join(tmp, "spiece.model")
    with open(path, "wb") as f:
        f.write(model)
    sp = spm.SentencePieceProcessor(model_file=path)
    assert sp.get_piece_size() == SP_VOCAB
    assert [sp.id_to_piece(i) for i in range(3)] == ["<pad>", "</s>", "<unk>"] and sp.bos_id() == -1
    return path


def build_pipeline(tmp):
    vocab, tok, tok_2 = sdxl_script.make_tokenizers(tmp)
    spiece = make_spiece(tmp)
    tok_3 = T5TokenizerFast(vocab_file=spiece, model_max_length=512)
    bos, eos = vocab[sdxl_script.bpe.BOS], vocab[sdxl_script.bpe.EOS]
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    transformer = SD3Transformer2DModel(
        sample_size=16, patch_size=2, in_channels=16, out_channels=16, num_layers=3, attention_head_dim=8,
        num_attention_heads=4, joint_attention_dim=96, caption_projection_dim=32, pooled_projection_dim=80,
        pos_embed_max_size=16)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(8, 16), layers_per_block=1,
        norm_num_groups=4, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        sample_size=32, scaling_factor=1.5305, shift_factor=0.0609, force_upcast=True, use_quant_conv=False,
        use_post_quant_conv=False)
    te = CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=32,
        bos_token_id=bos, eos_token_id=eos, pad_token_id=eos))
    te_2 = CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=48,
        bos_token_id=bos, eos_token_id=eos, pad_token_id=vocab["!"]))
    te_3 = T5EncoderModel(T5Config(
        vocab_size=len(tok_3), d_model=96, d_kv=16, d_ff=128, num_layers=2, num_heads=4,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.0,
        layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False,
        tie_word_embeddings=False, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))
    with torch.no_grad():  # a computed buffer, not drawn: only rounded like the weights
        transformer.pos_embed.pos_embed.copy_(transformer.pos_embed.pos_embed.half().float())
    for name, m in (("transformer", transformer), ("vae", vae), ("text_encoder", te), ("text_encoder_2", te_2),
                    ("text_encoder_3", te_3)):
        redraw(m, gen, FACTORS.get(name))
        m.eval()
    scheduler = FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG)
    return StableDiffusion3Pipeline(transformer=transformer, scheduler=scheduler, vae=vae, text_encoder=te,
                                    tokenizer=tok, text_encoder_2=te_2, tokenizer_2=tok_2, text_encoder_3=te_3,
                                    tokenizer_3=tok_3)


MODELS = ("transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3")


def write_folder():
    with tempfile.TemporaryDirectory() as tmp:
        pipe = build_pipeline(tmp)
        rounded = {name: {k: v.clone() for k, v in getattr(pipe, name).state_dict().items()} for name in MODELS}
        if os.path.isdir(FOLDER):
            shutil.rmtree(FOLDER)
        pipe.to(torch.float16)
        pipe.save_pretrained(FOLDER, safe_serialization=True, variant=None)
    # The CLIP vocabulary is pipeline_sdxl's (and so pipeline_sd1's).
    for sub in ("tokenizer", "tokenizer_2"):
        for f in ("vocab.json", "merges.txt"):
            ref = os.path.join(OUT, "pipeline_sdxl", sub, f)
            if os.path.exists(ref):
                assert sdxl_script.sha256(ref) == sdxl_script.sha256(os.path.join(FOLDER, sub, f)), (sub, f)
    return rounded


def load_fp32(rounded):
    pipe = StableDiffusion3Pipeline.from_pretrained(FOLDER, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    for name, ref in rounded.items():
        got = getattr(pipe, name).state_dict()
        assert set(got) == set(ref), name
        for k, v in ref.items():
            assert got[k].dtype == torch.float32, (name, k)
            assert torch.equal(got[k], v), f"{name}.{k} does not round-trip"
    assert isinstance(pipe.tokenizer_3, T5TokenizerFast)
    return pipe


def without_t5(pipe, cls=StableDiffusion3Pipeline):
    comps = dict(pipe.components, text_encoder_3=None, tokenizer_3=None)
    p = cls(**comps)
    p.set_progress_bar_config(disable=True)
    return p


# ---------------------------------------------------------------------------------------------------------
# Component goldens

def ids_of(pipe, text, max_sequence_length=256):
    """The three tokenizers' ids as the pipeline computes them."""
    clip = dict(padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    ids_1 = pipe.tokenizer(text, **clip).input_ids
    ids_2 = pipe.tokenizer_2(text, **clip).input_ids
    ids_3 = pipe.tokenizer_3(text, padding="max_length", max_length=max_sequence_length, truncation=True,
                             add_special_tokens=True, return_tensors="pt").input_ids
    return ids_1, ids_2, ids_3


def check_slow_t5(pipe, texts):
    """The slow T5Tokenizer over the same spiece.model gives the fast tokenizer's ids."""
    slow = T5Tokenizer(os.path.join(FOLDER, "tokenizer_3", "spiece.model"), legacy=True)
    assert len(slow) == len(pipe.tokenizer_3)
    for text in texts:
        for n in (256, 77):
            kw = dict(padding="max_length", max_length=n, truncation=True, return_tensors="pt")
            assert torch.equal(slow(text, **kw).input_ids, pipe.tokenizer_3(text, **kw).input_ids), (text, n)


def check_rust_t5(text, ids_3):
    """tokenizer_3/tokenizer.json read by the tokenizers library alone gives the pipeline's ids (transformers 4.40
    writes add_prefix_space into tokenizer_config.json, so T5TokenizerFast.from_pretrained rebuilds the fast
    tokenizer from spiece.model instead of reading tokenizer.json; both must agree)."""
    tok = tokenizers.Tokenizer.from_file(os.path.join(FOLDER, "tokenizer_3", "tokenizer.json"))
    n = ids_3.shape[-1]
    tok.enable_truncation(n)
    tok.enable_padding(pad_id=0, pad_token="<pad>", length=n)
    assert tok.encode(text).ids == ids_3[0].tolist(), text


def encode(pipe, text, **kw):
    pe, npe, ppe, nppe = pipe.encode_prompt(text, None, None, device=torch.device("cpu"),
                                            do_classifier_free_guidance=False, **kw)
    assert npe is None and nppe is None
    return pe, ppe


def component_goldens(pipe):
    t = {}
    meta = dict(versions(), seed=str(SEED), io_seed=str(IO_SEED), sp_seed=str(SP_SEED),
                spiece_sha256=sdxl_script.sha256(os.path.join(FOLDER, "tokenizer_3", "spiece.model")))
    prompts = {"p0": TEXT_PROMPT, "p1": "", "p2": OOV_PROMPT, "long": LONG_PROMPT}
    for case in CASES:
        prompts[f"case.{case['name']}"] = case["prompt"]
        if case["cfg"] > 1.0:
            prompts[f"case.{case['name']}.neg"] = case["negative"] or ""
    check_slow_t5(pipe, list(prompts.values()))
    with torch.no_grad():
        for k, text in prompts.items():
            meta[f"prompt.{k}"] = text
            ids_1, ids_2, ids_3 = ids_of(pipe, text)
            # Padding (CLIP's truncation keeps the EOS last: the long prompt ends in 590 for both tokenizers).
            assert ids_1[0, -1].item() == 590 and ids_2[0, -1].item() == (590 if k == "long" else 0), k
            assert ids_3[0, -1].item() == 0, k
            check_rust_t5(text, ids_3)
            t.update({f"text.{k}.ids_1": ids_1.to(torch.int32), f"text.{k}.ids_2": ids_2.to(torch.int32),
                      f"text.{k}.ids_3": ids_3.to(torch.int32)})
            if k not in ("p0", "p1", "p2"):
                continue
            out_1 = pipe.text_encoder(ids_1, output_hidden_states=True)
            out_2 = pipe.text_encoder_2(ids_2, output_hidden_states=True)
            t5 = pipe.text_encoder_3(ids_3).last_hidden_state
            t.update({f"text.{k}.hidden_1": out_1.hidden_states[-2], f"text.{k}.pooled_1": out_1.text_embeds,
                      f"text.{k}.hidden_2": out_2.hidden_states[-2], f"text.{k}.pooled_2": out_2.text_embeds,
                      f"text.{k}.t5": t5})
            pe, ppe = encode(pipe, text)
            clip = torch.cat([out_1.hidden_states[-2], out_2.hidden_states[-2]], dim=-1)
            want = torch.cat([torch.nn.functional.pad(clip, (0, 16)), t5], dim=-2)
            assert torch.equal(pe, want), k
            assert torch.equal(ppe, torch.cat([out_1.text_embeds, out_2.text_embeds], dim=-1)), k
        # The OOV prompt: <unk> in T5, "!" is tokenizer_2's special pad token 0.
        assert 2 in t["text.p2.ids_3"][0].tolist() and 0 in t["text.p2.ids_2"][0, 1:12].tolist()
        assert (t["text.long.ids_3"][0] > 1).sum().item() > 77, "the long prompt must not fit in 77 T5 tokens"

        pe, ppe = encode(pipe, LONG_PROMPT)
        pe77, ppe77 = encode(pipe, LONG_PROMPT, max_sequence_length=77)
        ids_3_77 = ids_of(pipe, LONG_PROMPT, 77)[2]
        assert ids_3_77[0, -1].item() == 1 and torch.equal(ids_3_77[0, :76], t["text.long.ids_3"][0, :76])
        assert pe.shape == (1, 333, 96) and pe77.shape == (1, 154, 96) and torch.equal(ppe, ppe77)
        assert torch.equal(pe[:, :77], pe77[:, :77]) and not torch.equal(pe[:, 77:154], pe77[:, 77:])
        assert torch.equal(pe77[:, 77:], pipe.text_encoder_3(ids_3_77).last_hidden_state)
        t.update({"encode.long.prompt_embeds": pe, "encode.long.pooled": ppe, "encode.long77.prompt_embeds": pe77,
                  "encode.long77.pooled": ppe77, "text.long.ids_3_77": ids_3_77.to(torch.int32)})
        not5 = without_t5(pipe)
        pe_n, ppe_n = encode(not5, TEXT_PROMPT)
        pe_p0, ppe_p0 = encode(pipe, TEXT_PROMPT)
        assert pe_n.shape == (1, 154, 96) and torch.equal(pe_n[:, 77:], torch.zeros(1, 77, 96))
        assert torch.equal(pe_n[:, :77], pe_p0[:, :77]) and torch.equal(ppe_n, ppe_p0)
        assert torch.equal(encode(not5, TEXT_PROMPT, max_sequence_length=33)[0], pe_n)
        t.update({"encode.not5.prompt_embeds": pe_n, "encode.not5.pooled": ppe_n})

    g = torch.Generator().manual_seed(IO_SEED)
    ts = torch.tensor(TIMESTEPS, dtype=torch.float32)
    t["transformer.timesteps"] = ts
    for tag, (h, w, n_ctx) in (("sq", (16, 16, 333)), ("wide", (16, 24, 154))):
        x = torch.randn((1, 16, h, w), generator=g)
        ctx = torch.randn((1, n_ctx, 96), generator=g)
        pooled = torch.randn((1, 80), generator=g)
        t.update({f"transformer.x_{tag}": x, f"transformer.ctx_{tag}": ctx, f"transformer.pooled_{tag}": pooled})
        with torch.no_grad():
            for i, tv in enumerate(TIMESTEPS):
                out = pipe.transformer(hidden_states=x, timestep=ts[i:i + 1], encoder_hidden_states=ctx,
                                       pooled_projections=pooled).sample
                t[f"transformer.{tag}_t{str(tv).replace('.0', '').replace('.', '_')}"] = out

    for shift, n in ((3.0, 4), (3.0, 10), (3.0, 28), (1.0, 10)):
        s = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
        s.set_timesteps(n)
        tag = f"sched.s{int(shift)}_n{n}"
        t[f"{tag}.timesteps"], t[f"{tag}.sigmas"] = s.timesteps.clone(), s.sigmas.clone()
        assert s.timesteps.dtype == torch.float32 and s.sigmas.dtype == torch.float32 and s.sigmas[-1] == 0
        # The formula of the docstring, restated.
        s_train = torch.from_numpy(np.linspace(1, 1000, 1000, dtype=np.float32)[::-1].copy()) / 1000
        s_train = shift * s_train / (1 + (shift - 1) * s_train)
        lin = np.linspace(s_train[0].item() * 1000, s_train[-1].item() * 1000, n) / 1000
        sig = torch.from_numpy(shift * lin / (1 + (shift - 1) * lin)).to(torch.float32)
        assert torch.equal(s.sigmas[:-1], sig) and torch.equal(s.timesteps, sig * 1000), tag

    vae = pipe.vae
    latent = torch.randn((1, 16, 8, 12), generator=g)
    img = torch.rand((1, 3, 32, 48), generator=g) * 2 - 1
    z = latent / vae.config.scaling_factor + vae.config.shift_factor
    with torch.no_grad():
        decoded = vae.decode(z).sample
        dist = vae.encode(img).latent_dist
        moments = vae.encoder(img)
    assert vae.quant_conv is None and vae.post_quant_conv is None
    raw_mean, raw_logvar = torch.chunk(moments, 2, dim=1)
    assert torch.equal(dist.mean, raw_mean) and torch.equal(dist.logvar, raw_logvar), "logvar was clamped"
    t.update({"vae.latent": latent, "vae.z": z, "vae.decoded": decoded, "vae.image": img, "vae.mean": dist.mean,
              "vae.logvar": dist.logvar})

    meta.update(transformer_config=json.dumps(dict(pipe.transformer.config)),
                vae_config=json.dumps(dict(pipe.vae.config)),
                scheduler_config=json.dumps(dict(pipe.scheduler.config)),
                text_encoder_config=pipe.text_encoder.config.to_json_string(),
                text_encoder_2_config=pipe.text_encoder_2.config.to_json_string(),
                text_encoder_3_config=pipe.text_encoder_3.config.to_json_string())
    for k, v in t.items():
        if k.startswith("text.case"):
            continue
        print(f"  {k:30s} {str(v.dtype).replace('torch.', ''):8s} {list(v.shape)}"
              + (f"  std {v.float().std().item():.4f}" if v.is_floating_point() and v.numel() > 1 else ""))
    print("  T5 ids p0:", t["text.p0.ids_3"][0, :20].tolist())
    print("  T5 ids p2:", t["text.p2.ids_3"][0, :20].tolist(), pipe.tokenizer_3.convert_ids_to_tokens(
        t["text.p2.ids_3"][0, :12].tolist()))
    print("  long prompt T5 length:", (t["text.long.ids_3"][0] != 0).sum().item())
    for k in ("sched.s3_n4", "sched.s1_n10"):
        print(f"  {k}: timesteps {t[k + '.timesteps'].tolist()} sigmas {t[k + '.sigmas'].tolist()}")
    return t, meta


# ---------------------------------------------------------------------------------------------------------
# Pipeline cases

class TransformerRecorder:
    """A forward hook on the transformer: every call's timestep, latent input and output, and the first call's
    conditioning."""

    def __init__(self):
        self.timesteps, self.inputs, self.outputs, self.first = [], [], [], None

    def __call__(self, module, args, kwargs, output):
        t = kwargs["timestep"]
        assert torch.all(t == t[0])
        self.timesteps.append(float(t[0]))
        self.inputs.append(kwargs["hidden_states"].detach().clone())
        self.outputs.append(output[0].detach().clone())
        if self.first is None:
            self.first = {k: kwargs[k].detach().clone() for k in ("hidden_states", "encoder_hidden_states",
                                                                  "pooled_projections")}


def replay(rec, sigmas, t_start, cfg, latent):
    """The denoising loop restated on the recorded transformer outputs: CFG, then the flow-match Euler step
    x + (sigma[i + 1] - sigma[i]) * v. Every transformer input and the final latent must match bit for bit."""
    x = rec.inputs[0][0:1]
    for i, (x_in, out) in enumerate(zip(rec.inputs, rec.outputs)):
        assert all(torch.equal(x_in[j:j + 1], x) for j in range(x_in.shape[0])), ("transformer input", i)
        if cfg is not None:
            uncond, cond = out.chunk(2)
            v = uncond + cfg * (cond - uncond)
        else:
            v = out
        x = x + (sigmas[t_start + i + 1] - sigmas[t_start + i]) * v
    assert torch.equal(x, latent), "replayed loop differs"


def decode_as_pipeline(pipe, latent):
    vae = pipe.vae
    with torch.no_grad():
        image = vae.decode(latent / vae.config.scaling_factor + vae.config.shift_factor, return_dict=False)[0]
    pil = pipe.image_processor.postprocess(image, output_type="pil")[0]
    return torch.from_numpy(np.asarray(pil).copy())


def run_case(pipes, case, sched_cfg):
    key = (case["pipeline"], case["t5"])
    pipe = pipes[key]
    pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(sched_cfg)
    h, w, n = case["height"], case["width"], case["steps"]
    call = dict(prompt=case["prompt"], negative_prompt=case["negative"], num_inference_steps=n,
                guidance_scale=case["cfg"])
    init_u8 = None
    if case["pipeline"] == "img2img":
        init_u8 = make_init_image(h, w, case["init_variant"])
        call.update(image=PIL.Image.fromarray(init_u8, mode="RGB"), strength=case["strength"])
    else:
        call.update(height=h, width=w)
    rec = TransformerRecorder()
    handle = pipe.transformer.register_forward_hook(rec, with_kwargs=True)
    gen = torch.Generator("cpu").manual_seed(case["seed"])
    try:
        with torch.no_grad():
            latent = pipe(**call, generator=gen, output_type="latent").images
    finally:
        handle.remove()
    f = pipe.vae_scale_factor
    shape = (1, 16, h // f, w // f)
    cfg = case["cfg"] > 1.0
    sched = pipe.scheduler
    all_timesteps = [float(x) for x in sched.timesteps.tolist()]
    sigmas = sched.sigmas.clone()
    tensors = {}
    x_in = rec.first["hidden_states"]
    assert x_in.shape == ((2,) if cfg else (1,)) + shape[1:]
    if cfg:
        assert torch.equal(x_in[0], x_in[1])
    ctx = rec.first["encoder_hidden_states"]
    assert ctx.shape == (x_in.shape[0], 77 + (256 if case["t5"] else 77), 96), ctx.shape
    if not case["t5"]:
        assert torch.equal(ctx[:, 77:], torch.zeros_like(ctx[:, 77:]))
    if case["pipeline"] == "txt2img":
        check_draws(gen, case["seed"], shape, 1, (case["name"], "generator draws"))
        assert rec.timesteps == all_timesteps
        noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(case["seed"]))
        assert torch.equal(x_in[0:1], noise), case["name"]
        if case["name"] == "a":
            tensors["noise"] = noise
        diff = 0.0
    else:
        check_draws(gen, case["seed"], shape, 2, (case["name"], "generator draws"))
        init_timestep = min(n * case["strength"], n)
        t_start = int(max(n - init_timestep, 0))
        assert rec.timesteps == all_timesteps[t_start:], (rec.timesteps, all_timesteps)
        g = torch.Generator("cpu").manual_seed(case["seed"])
        # The pipeline's own preprocessing: 2 * u8 / 255 - 1, float32, CHW. It leaves the tensor as a permuted
        # (channels-last in memory) view, which the VAE's first conv computes in another order than a contiguous
        # copy (about 3e-6 off), so the exact preprocess call is used here.
        x = pipe.image_processor.preprocess(PIL.Image.fromarray(init_u8, mode="RGB"))
        want_x = torch.from_numpy(init_u8.astype(np.float32) / 255.0).permute(2, 0, 1)[None] * 2 - 1
        assert torch.equal(x, want_x)
        vae = pipe.vae
        with torch.no_grad():
            dist = vae.encode(x).latent_dist
        eps = torch.randn(dist.mean.shape, generator=g)
        z0 = (dist.mean + dist.std * eps - vae.config.shift_factor) * vae.config.scaling_factor
        noise = torch.randn(shape, generator=g)
        sigma = sigmas[t_start]
        want = sigma * noise + (1.0 - sigma) * z0
        diff = (x_in[0:1] - want).abs().max().item()
        assert torch.equal(x_in[0:1], want), (case["name"], "first transformer input", diff)
        tensors["init"] = torch.from_numpy(init_u8).permute(2, 0, 1)[None].contiguous()
        tensors["init_latents"] = z0
    replay(rec, sigmas, len(all_timesteps) - len(rec.timesteps), case["cfg"] if cfg else None, latent[0:1])
    image = decode_as_pipeline(pipe, latent)
    pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(sched_cfg)
    with torch.no_grad():
        pil = pipe(**call, generator=torch.Generator("cpu").manual_seed(case["seed"]), output_type="pil").images[0]
    assert torch.equal(torch.from_numpy(np.asarray(pil).copy()), image), "decode differs from the pipeline's"
    params = dict(name=case["name"], pipeline_class=type(pipe).__name__, prompt=case["prompt"],
                  negative=case["negative"], steps=n, cfg=case["cfg"], seed=case["seed"], width=w, height=h,
                  strength=case.get("strength"), init_variant=case.get("init_variant"), t5=case["t5"],
                  timesteps=rec.timesteps, all_timesteps=all_timesteps, sigmas=sigmas.tolist())
    tensors.update(latent=latent[0:1].contiguous(), image=image.contiguous(),
                   timesteps=torch.tensor(rec.timesteps, dtype=torch.float32), sigmas=sigmas)
    return tensors, params, diff


def pipeline_cases(pipe):
    pipes = {("txt2img", True): pipe, ("txt2img", False): without_t5(pipe)}
    i2i = StableDiffusion3Img2ImgPipeline(**pipe.components)
    i2i.set_progress_bar_config(disable=True)
    pipes[("img2img", True)] = i2i
    sched_cfg = dict(pipe.scheduler.config)
    tensors, meta = {}, dict(versions(), seed=str(SEED), scheduler_config=json.dumps(sched_cfg))
    latents = {}
    for case in CASES:
        t, params, diff = run_case(pipes, case, sched_cfg)
        name = case["name"]
        latent, image = t["latent"], t["image"]
        assert torch.isfinite(latent).all(), name
        assert latent.shape == (1, 16, case["height"] // 2, case["width"] // 2), name
        assert image.shape == (case["height"], case["width"], 3) and image.dtype == torch.uint8, name
        for k, v in t.items():
            tensors[f"{name}.{k}"] = v
        meta[f"{name}.params"] = json.dumps(params)
        latents[name] = latent
        sat = ((image == 0) | (image == 255)).float().mean().item()
        print(f"  {name} {params['pipeline_class']:32s} t5 {case['t5']!s:5s} h{case['height']} w{case['width']} "
              f"steps {case['steps']} cfg {case['cfg']}: latent std {latent.std().item():.3f}  image mean "
              f"{image.float().mean().item():.1f} std {image.float().std().item():.1f} saturated {sat:.0%}"
              + (f"; first input off by {diff:.1e}" if case["pipeline"] == "img2img" else ""))
        print(f"    timesteps {params['timesteps']}")
    assert_all_differ(latents)
    return tensors, meta


def save(path, tensors, meta):
    for k, v in tensors.items():
        if v.is_floating_point():
            assert v.dtype == torch.float32 and torch.isfinite(v).all(), k
    tensors = {k: v.detach().clone().contiguous() for k, v in tensors.items()}
    safetensors_io.save_file(tensors, path, dict(sorted(meta.items())))
    back = load_file(path)
    assert back.keys() == tensors.keys() and all(torch.equal(back[k], v) for k, v in tensors.items())
    print(f"wrote {os.path.relpath(path, ROOT)}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


def main():
    torch.set_num_threads(1)
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
    print("component goldens:")
    save(MODEL_GOLDEN, *component_goldens(pipe))
    print("pipeline cases:")
    save(CASES_GOLDEN, *pipeline_cases(pipe))


if __name__ == "__main__":
    main()
