#!/work/refvenv/bin/python
"""Flux goldens from diffusers' FluxPipeline on a tiny random-weight FLUX.1-shaped model (dev and schnell).

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline:

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_flux_goldens.py

It takes about 10 s on a two-core machine beside a running build (680 MB peak RSS). Every weight is random and
the T5 tokenizer's sentencepiece model is trained here (make_sd3_goldens.train_spiece); nothing is downloaded.
Every run writes the same bytes (torch pinned to one thread; the two .safetensors goldens go through
safetensors_io.py, metadata keys sorted; checked with two runs). Versions (requirements-pip.txt): torch 2.4.1
(CPU), diffusers 0.30.3, transformers 4.40.2, tokenizers 0.19.1, sentencepiece 0.1.99, protobuf 4.25.3,
huggingface_hub 0.36.2. All computation is float32 on the CPU with diffusers' default processors
(FluxAttnProcessor2_0 and FluxSingleAttnProcessor2_0: torch's scaled_dot_product_attention, AttnProcessor2_0 in
the VAE) and transformers' eager T5/CLIP attention.

It writes three things (all tensors float32 unless said):

1. tests/golden/data/pipeline_flux/ (dev-like) and tests/golden/data/pipeline_flux_schnell/: the two models as
   diffusers folders, written by FluxPipeline.save_pretrained (safe_serialization, variant None) after
   `.to(torch.float16)`: model_index.json, transformer/, vae/, text_encoder/, text_encoder_2/ (config.json and
   fp16 safetensors), tokenizer/ (CLIP: vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json),
   tokenizer_2/ (T5TokenizerFast: spiece.model, tokenizer.json, tokenizer_config.json, special_tokens_map.json),
   scheduler/scheduler_config.json. The two folders share every component but the transformer and the
   scheduler config (the same modules are saved twice: vae/, text_encoder/, text_encoder_2/, tokenizer/,
   tokenizer_2/ are byte-identical across the folders, checked), as FLUX.1-dev and FLUX.1-schnell ship the same
   VAE and text encoders. Every reference run below uses the folders reloaded with
   from_pretrained(torch_dtype=torch.float32), so it computes in fp32 on exactly the fp16-rounded weights (the
   script checks every reloaded tensor equals the fp16-rounded one bit for bit). About 1.4 MB each.

2. tests/golden/data/model_flux_tiny.safetensors: component goldens on those models (no weights).

3. tests/golden/data/pipeline_flux_cases.safetensors: whole-pipeline runs (CASES below).

The model (FLUX.1's layout at tiny widths)
-------------------------------------------
- tokenizer: make_sdxl_goldens.make_tokenizers' CLIPTokenizer (pad <|endoftext|>): vocab.json and merges.txt are
  pipeline_sdxl/tokenizer's, and all four files are byte-identical to pipeline_sd3/tokenizer's (checked): 591
  tokens, <|startoftext|> 589, <|endoftext|> 590, model_max_length 77.
- tokenizer_2: T5TokenizerFast over make_sd3_goldens' trained sentencepiece unigram model (SP_VOCAB 200 pieces,
  <pad> 0, </s> 1, <unk> 2, no BOS, nmt_nfkc, no byte fallback; see that script's docstring), built with
  model_max_length 512 as there; all four files are byte-identical to pipeline_sd3/tokenizer_3's (checked):
  300 ids (the 200 pieces, then <extra_id_99> 200 ... <extra_id_0> 299). Fast, slow and tokenizer.json-only
  tokenizers give the same ids for every prompt here at 512 and 256 (checked).
- text_encoder: CLIPTextModel (no projection, as FLUX.1's CLIP-L), hidden 32, intermediate 64, 2 layers, 4
  heads, quick_gelu, 77 positions, vocab 591, bos 589, eos 590, pad 590, layer_norm_eps 1e-5 (projection_dim 32
  is in config.json but CLIPTextModel has no projection). The pipeline takes only pooler_output: the
  final-layer-normed state at the first position equal to eos_token_id 590 (transformers 4.40's rule for
  eos_token_id != 2; 590 is also the largest id, so the argmax rule of eos_token_id == 2 picks the same
  position). The hidden states are not used at all.
- text_encoder_2: T5EncoderModel exactly as make_sd3_goldens' text_encoder_3 (d_model 96, d_kv 16, 4 heads, d_ff
  128, 2 layers, gated-gelu (gelu_new), 32 buckets, max distance 128, eps 1e-6, vocab 300, untied; shared.weight
  [300, 96] stored once), weights drawn with that script's T5 factors (but from this script's generator, so
  the values differ from pipeline_sd3's).
- transformer: FluxTransformer2DModel(patch_size 1, in_channels 64, num_layers 2, num_single_layers 2,
  attention_head_dim 16, num_attention_heads 2 (inner 32), joint_attention_dim 96, pooled_projection_dim 32,
  guidance_embeds True, axes_dims_rope (4, 6, 6) (sums to the head dim 16)): 137,344 parameters. The schnell
  folder's transformer is the same with guidance_embeds False (no time_text_embed.guidance_embedder.*:
  CombinedTimestepTextProjEmbeddings instead of CombinedTimestepGuidanceTextProjEmbeddings). No buffers.
- vae: AutoencoderKL, block_out_channels (8, 16), layers_per_block 1, latent_channels 16, norm_num_groups 4,
  DownEncoderBlock2D x2 / UpDecoderBlock2D x2 (the VAE downscales by 2), use_quant_conv False,
  use_post_quant_conv False, scaling_factor 0.3611, shift_factor 0.1159 (FLUX.1's), force_upcast True,
  sample_size 32. NOTE FluxPipeline.vae_scale_factor = 2 ** len(block_out_channels) = 4 here (16 for the real
  VAE, whose downscale is 8): twice the VAE's own factor, the 2 x 2 packing folded in; the image processor uses
  it too.
- scheduler: FlowMatchEulerDiscreteScheduler with FLUX.1-dev's scheduler_config.json values (DEV_SCHEDULER:
  shift 3.0, use_dynamic_shifting True, base_shift 0.5, max_shift 1.15, base_image_seq_len 256,
  max_image_seq_len 4096; `shift` is never used when dynamic shifting is on) and FLUX.1-schnell's
  (SCHNELL_SCHEDULER: shift 1.0, use_dynamic_shifting False, the rest the same).

Weights: built with torch.manual_seed(SEED) (SEED = 2026), then every parameter of transformer (dev), vae,
text_encoder, text_encoder_2, transformer (schnell) -- in that order, named_parameters() order -- is re-drawn from
ONE torch.Generator seeded with SEED, with make_sd3_goldens.redraw's rule, extended to diffusers' RMSNorm:
GroupNorm/LayerNorm/T5LayerNorm/RMSNorm weights 1 + 0.1 * randn (RMSNorm: the transformer's q/k norms
attn.norm_q, norm_k, norm_added_q, norm_added_k, [16] each), their biases 0.1 * randn; other tensors of rank
>= 2 randn * min(0.2, 1.5 / sqrt(fan_in)) times a per-name factor (FACTORS; a key is a name suffix, or with a
leading "=" a whole name); other biases 0.2 * randn. Each value is rounded to fp16 at once. Factors (the
damping): the VAE's decoder.conv_out.weight 0.3 (as the SDXL and SD3 scripts; pixels stay mostly inside
[-1, 1]); T5's make_sd3_goldens factors (SelfAttention.q 0.25, SelfAttention.o 0.5, DenseReluDense.wo 0.5,
relative_attention_bias 5); both transformers' top-level proj_out.weight 0.5 (only the final projection, not
the single blocks' proj_out: the velocity then has a standard deviation of about 0.6 to 0.9 instead of 1.2 to
1.7, and the final latents about 1.2 to 1.5 instead of 1.7 to 2.3; about 2% of the case images' pixels clamp to
0 or 255). The transformer's LayerNorms are all elementwise_affine False.

model_flux_tiny.safetensors
---------------------------
Prompts (metadata prompt.<k>): p0 TEXT_PROMPT, p1 "", p2 OOV_PROMPT (upper case, digits and "!": <unk> (2) in
the T5 vocabulary), long LONG_PROMPT (90 CLIP tokens: truncated to BOS + 75 + EOS; 156 T5 pieces + </s>: fits
both 256 and 512), and every case prompt: case.<name>. For every prompt <k>:
    text.<k>.ids_1      int32 [1, 77]   tokenizer ids as _get_clip_prompt_embeds computes them (padding
                                        "max_length", max_length 77, truncation): BOS, words, EOS, 590 padding
    text.<k>.ids_2      int32 [1, 512]  tokenizer_2 ids as _get_t5_prompt_embeds computes them at the pipeline's
                                        default max_sequence_length 512 (padding "max_length", truncation, the
                                        tokenizer's default add_special_tokens): pieces, </s> (1), <pad> (0)
    text.<k>.ids_2_256  int32 [1, 256]  the same at max_sequence_length 256 (its first 256 ids, checked)
For p0, p1, p2 also (the script checks encode_prompt returns exactly these):
    text.<k>.pooled     [1, 32]         text_encoder(ids_1).pooler_output (= pooled_prompt_embeds)
    text.<k>.t5         [1, 512, 96]    text_encoder_2(ids_2)[0]: last_hidden_state after the final RMS norm (=
                                        prompt_embeds). NO attention mask: the pipeline passes none, so every
                                        position, padding included, attends to all 512
encode_prompt(prompt, prompt_2=None, max_sequence_length=M) of LONG_PROMPT:
    encode.long.prompt_embeds          [1, 512, 96]  M = 512 (the default)
    encode.long.pooled_prompt_embeds   [1, 32]
    encode.long.text_ids               [1, 512, 3]   zeros (float32: text_encoder's dtype)
    encode.long256.*                   [1, 256, 96], [1, 32], [1, 256, 3]   M = 256. The pooled vectors are
                                        equal; the first 256 rows of the T5 states are NOT (the padding is
                                        attended to); the schnell pipeline gives the same (shared encoders)
Transformer (inputs drawn from a Generator seeded IO_SEED (12) in this order: latent, encoder_hidden_states,
pooled_projections for sq, then the same for wide); <tag> sq: a 16 x 16 latent (8 x 8 = 64 tokens), 512 text
tokens; wide: a 16 x 24 latent (height 16, width 24: 8 x 12 = 96 tokens), 256 text tokens:
    transformer.<tag>.latent                 [1, 16, 16, W]  randn, unpacked
    transformer.<tag>.hidden_states          [1, N, 64]      FluxPipeline._pack_latents(latent) (N = 64 or 96)
    transformer.<tag>.img_ids                [1, N, 3]       FluxPipeline._prepare_latent_image_ids(1, 16, W):
                                                             token r * (W / 2) + c holds (0, r, c)
    transformer.<tag>.txt_ids                [1, T, 3]       zeros (T = 512 or 256)
    transformer.<tag>.encoder_hidden_states  [1, T, 96]      randn
    transformer.<tag>.pooled_projections     [1, 32]         randn
    transformer.<tag>.<c>.timestep           [1]             as the pipeline passes it: tensor([t]) / 1000 in
                                                             float32 (t1000: 1.0; t283_7: 0.2837000191...)
    transformer.<tag>.<c>.guidance           [1]             tensor([g]) (t1000: 3.5; t283_7: 5.0)
    transformer.<tag>.<c>.out                [1, N, 64]      dev transformer(hidden_states, timestep, guidance,
                                                             pooled_projections, encoder_hidden_states, txt_ids,
                                                             img_ids)[0] (packed velocity)
    transformer_schnell.<tag>.<c>.out        [1, N, 64]      the schnell transformer on the same inputs with
                                                             guidance=None
  (<c> is t1000 or t283_7: the two CALLS (t, g) = (1000, 3.5), (283.7, 5.0).)
RoPE for the ids of those calls (txt_ids then img_ids, as the transformer concatenates them; L = T + N):
    rope.<tag>.ids      [1, L, 3]          cat((txt_ids, img_ids), dim=1)
    rope.<tag>.freqs    [1, 1, L, 8, 2, 2] transformer.pos_embed(ids) (EmbedND): per pair j, the rotation matrix
                                           [[cos, -sin], [sin, cos]] of angle_j
    rope.<tag>.cos      [L, 16]            cos(angle_j) at channels 2j and 2j + 1 (each value twice: the
    rope.<tag>.sin      [L, 16]            interleaved layout)
  Pairs 0-1 are axis 0 (dim 4: ids[..., 0], always 0 here), pairs 2-4 axis 1 (dim 6: the row), pairs 5-7 axis 2
  (dim 6: the column); for an axis of dim d, omega_j = 1 / 10000^(2j / d), j < d / 2, angle = id * omega_j, in
  float64, cos/sin rounded to float32 (checked against this formula). apply_rope(x) = x * cos + rot(x) * sin
  with rot(x)[2j] = -x[2j + 1], rot(x)[2j + 1] = x[2j] (checked bit for bit).
Scheduler (FlowMatchEulerDiscreteScheduler(**config).set_timesteps(sigmas=numpy.linspace(1.0, 1 / n, n),
mu=calculate_shift(seq, 256, 4096, 0.5, 1.15)), as the pipeline calls it; <s> = dev_seq64_n4, dev_seq64_n28,
dev_seq96_n4, dev_seq96_n28 (the two case sizes), dev_seq4096_n28 (a 1024 x 1024 FLUX.1 image: mu = 1.15),
schnell_n4 (SCHNELL_SCHEDULER; mu is passed but ignored):
    sched.<s>.timesteps     [n]       sigmas * 1000 (float32)
    sched.<s>.sigmas        [n + 1]   float32, ending with the appended 0
    sched.<s>.mu            float64 [1]  (also as repr() in metadata sched.<s>.mu): seq 64: 0.46749999999999997,
                                      seq 96: 0.47291666666666665
    sched.<s>.input_sigmas  float64 [n]  numpy.linspace(1.0, 1 / n, n), what the pipeline passes
VAE (inputs from the IO_SEED generator after the transformer's):
    vae.latent          [1, 16, 8, 12]  a latent as the sampler leaves it (unpacked), randn
    vae.z               [1, 16, 8, 12]  the VAE's own input: latent / 0.3611 + 0.1159 (what the pipeline decodes)
    vae.decoded         [1, 3, 16, 24]  vae.decode(z).sample (no post_quant_conv)
    vae.image           [1, 3, 32, 48]  an image in [-1, 1], rand * 2 - 1
    vae.mean            [1, 16, 16, 24] vae.encode(image).latent_dist.mean (no quant_conv: the encoder's 32
    vae.logvar          [1, 16, 16, 24] output channels split in two; nothing clamped here, checked)
Packing (from the same generator after the VAE's):
    pack.latent         [1, 16, 16, 24] randn
    pack.packed         [1, 96, 64]     FluxPipeline._pack_latents(latent, 1, 16, 16, 24)
    pack.unpacked       [1, 16, 16, 24] FluxPipeline._unpack_latents(packed, 32, 48, vae_scale_factor 4) (=
                                        latent, checked)
Metadata: script, versions, seed, io_seed, sp_seed, spiece_sha256, the prompts, sched.<s>.mu, the configs
(transformer_config, transformer_schnell_config, vae_config, scheduler_config, scheduler_schnell_config,
text_encoder_config, text_encoder_2_config).

pipeline_flux_cases.safetensors
-------------------------------
Per case, pipe(prompt, height, width, num_inference_steps, guidance_scale, max_sequence_length,
generator=torch.Generator("cpu").manual_seed(seed), output_type="latent") (prompt_2 None: T5 sees the prompt),
the scheduler FlowMatchEulerDiscreteScheduler.from_config (the model's), fresh per case:
    <name>.latent_packed  [1, N, 64]        the final latent as the pipeline returns it with output_type
                                            "latent": PACKED (N = H/4 * W/4 tokens here)
    <name>.latent         [1, 16, H/2, W/2] the same, _unpack_latents(latent_packed, H, W, 4)
    <name>.image          uint8 [H, W, 3]   (HWC, RGB) decoded as the pipeline does: unpack, latent / 0.3611 +
                                            0.1159, vae.decode, image_processor.postprocess to PIL (round(clamp(x /
                                            2 + 0.5, 0, 1) * 255) in float32 numpy). Checked against the
                                            pipeline's own output_type="pil" (a second run)
    <name>.timesteps      [n]               the scheduler's timesteps (sigma * 1000)
    <name>.transformer_timesteps [n]        what the transformer received: timesteps / 1000 (float32)
    <name>.sigmas         [n + 1]           the scheduler's sigmas (ends with 0)
    <name>.mu             float64 [1]       calculate_shift(N, 256, 4096, 0.5, 1.15) (schnell ignores it)
    a.noise               [1, 16, 16, 16]   case a's initial latent as prepare_latents draws it: torch.randn([1,
                                            16, 16, 16], generator) on the CPU, float32 (the only draw: checked)
    a.noise_packed        [1, 64, 64]       _pack_latents(a.noise): the transformer's first input (checked)
Metadata <name>.params (JSON): name, pipeline_class, model (dev/schnell), prompt, negative (null: FluxPipeline
0.30.3 has no negative prompt), steps, guidance (guidance_scale as passed), guidance_used (false for schnell),
seed, width, height, max_sequence_length, timesteps, transformer_timesteps, sigmas, mu, image_seq_len. Also
script, versions, seed, scheduler_config, scheduler_schnell_config.

Cases (sizes in pixels, height x width):
    a   dev 32x32 (latent [1, 16, 16, 16], 64 tokens), 4 steps, guidance 3.5, max_sequence_length 512
    b   dev 32x48 (height 32, width 48: latent [1, 16, 16, 24], 96 tokens), 6 steps, guidance 5.0, 512
    c   schnell 32x32, 4 steps, guidance_scale 0 (ignored: no guidance embedder), max_sequence_length 256
    (d) img2img is NOT made: diffusers 0.30.3 has no FluxImg2ImgPipeline (nor FluxInpaintPipeline; both came
        in a later release).
No two cases give the same latent (checked); every latent is finite. The script replays every case's loop on
the recorded transformer outputs and gets every transformer input and the final latent bit for bit.

What a reimplementation must match (diffusers 0.30.3; the script asserts the starred points)
----------------------------------------------------------------------------------------------
- Conditioning (*): prompt_embeds = T5 last_hidden_state of the prompt padded to max_sequence_length (default
  512, at most 512) with no attention mask: [B, M, 4096 real / 96 here]. pooled_prompt_embeds = CLIP
  pooler_output (the final-layer-normed EOS state, no projection) [B, 768 / 32]. CLIP's hidden states are not
  used. text_ids = zeros [B, M, 3] (3-D, batched, in 0.30.3). There is NO negative prompt and NO classifier-free
  guidance: FluxPipeline.__call__ has no negative_prompt argument, the batch is never doubled, and
  guidance_scale only feeds the guidance embedding (dev, guidance_embeds True: guidance = tensor([scale])
  expanded to the batch, float32); with guidance_embeds False (schnell) it is ignored entirely.
- Latents and ids (*): latent height/width = 2 * (H // vae_scale_factor) (vae_scale_factor = 2 ** len(VAE
  blocks): 16 real, 4 here), so the output shrinks to a multiple of 16 real pixels (check_inputs only asks for
  multiples of 8). The initial noise is one CPU randn of the UNPACKED shape [B, 16, h, w], then packed.
  _pack_latents: view [B, C, h/2, 2, w/2, 2], permute (0, 2, 4, 1, 3, 5), reshape [B, (h/2)(w/2), 4C]: token
  r * (w/2) + c (row-major), feature ch * 4 + dy * 2 + dx = latent[ch, 2r + dy, 2c + dx]. _unpack_latents is the
  inverse (view [B, h/2, w/2, C, 2, 2], permute (0, 3, 1, 4, 2, 5)). img_ids[r * (w/2) + c] = (0, r, c) in the
  latent's dtype, over the packed grid.
- Schedule (*): sigmas_in = numpy.linspace(1.0, 1 / n, n) (float64; the pipeline always passes it, so the
  scheduler's own linspace over its training sigmas is never used). mu = calculate_shift(image_seq_len = number
  of packed tokens, base_image_seq_len, max_image_seq_len, base_shift, max_shift) from the scheduler config (the
  function's own default max_shift 1.16 is not used): m = (max_shift - base_shift) / (max_len - base_len), mu =
  seq * m + (base_shift - m * base_len) in Python floats, linear and NOT clamped (64 tokens give 0.4675, below
  base_shift). Dynamic shifting (dev): sigma = exp(mu) / (exp(mu) + (1 / s - 1) ** 1.0) (time_shift with
  exponent 1.0) in float64, then float32; otherwise (schnell) sigma = shift * s / (1 + (shift - 1) * s) (shift
  1: unchanged: 1, 0.75, 0.5, 0.25). timesteps = sigma * 1000 (float32); sigmas = cat(sigma, [0]). With
  dynamic shifting __init__ does not apply `shift` to the training sigmas (irrelevant: they are replaced).
- Step (*): x_next = x + (sigma[i + 1] - sigma[i]) * v on the packed latent, float32; no noise, no generator
  draws after the initial one.
- Timestep and guidance embedding: the pipeline passes timestep = t / 1000 (float32), and the transformer
  multiplies by 1000 again (timestep.to(dtype) * 1000); guidance likewise: guidance.to(dtype) * 1000 (3.5 ->
  3500). (t / 1000) * 1000 in float32 gave t back for every schedule tried (n 1..50, 6 sequence lengths), but a
  reimplementation should compute it the same way. Both go through Timesteps(256, flip_sin_to_cos=True,
  downscale_freq_shift=0): [cos, sin] of v * exp(-ln(10000) * i / 128), i = 0..127 (float32), then
  TimestepEmbedding (linear 256 -> D, SiLU, linear D -> D): timestep_embedder and guidance_embedder.
  text_embedder (PixArtAlphaTextProjection, act "silu"): linear pooled -> D, SiLU, linear. temb = (t_emb +
  g_emb) + text_emb (schnell: t_emb + text_emb).
- Transformer: x_embedder Linear(64 -> D) on packed tokens; context_embedder Linear(joint_attention_dim -> D).
  The joint sequence is TEXT FIRST: ids = cat(txt_ids, img_ids); in the double blocks attention runs over
  cat([text, image]) (SD3's joint attention is image first); the single blocks run on cat([text, image]) and
  the output keeps [:, T:]. Double block (FluxTransformerBlock): norm1 / norm1_context = AdaLayerNormZero:
  linear(SiLU(temb)) -> 6D chunked as shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp;
  LayerNorm(eps 1e-6, no affine)(x) * (1 + scale) + shift. Image q/k/v = to_q/to_k/to_v, text q/k/v =
  add_q_proj/add_k_proj/add_v_proj (all with bias), heads split as view [B, L, H, 16]; RMSNorm over each head's
  16 channels with a learned weight (eps 1e-6; norm_q/norm_k for the image, norm_added_q/norm_added_k for the
  text), BEFORE RoPE; RoPE on q and k of the concatenated sequence (text rows get the identity: their ids are
  zero); SDPA with scale 1/sqrt(16); split back; image -> to_out[0], text -> to_add_out; x += gate_msa * attn;
  x += gate_mlp * ff(LayerNorm(x) * (1 + scale_mlp) + shift_mlp) with ff = Linear(D -> 4D), GELU tanh,
  Linear(4D -> D); the same for the text stream with its own modulation, ff_context. Single block
  (FluxSingleTransformerBlock): norm = AdaLayerNormZeroSingle: linear(SiLU(temb)) -> 3D chunked as shift, scale,
  gate; n = LayerNorm(x) * (1 + scale) + shift; mlp = GELU_tanh(proj_mlp(n)) (D -> 4D); attn = SDPA of
  rope(rms(to_q(n))), rope(rms(to_k(n))), to_v(n) with NO output projection (pre_only); x += gate *
  proj_out(cat([attn, mlp], -1)) (Linear(5D -> D), attention channels first). (BFL checkpoints fuse linear1 =
  [q, k, v, mlp] and linear2 = proj_out; diffusers splits linear1 into to_q, to_k, to_v, proj_mlp.) norm_out =
  AdaLayerNormContinuous (eps 1e-6, no affine): linear(SiLU(temb)) -> 2D chunked as SCALE, then SHIFT (the
  opposite of AdaLayerNormZero's order; BFL's final adaLN_modulation is (shift, scale)); proj_out Linear(D -> 64)
  gives the packed velocity. fp16-only clips to +-65504 (single blocks' output, double blocks' text stream) do
  not apply here.
- RoPE (*): EmbedND computes each axis's angles as float32 ids times float64 omegas (the einsum promotes), so
  cos/sin are float64 rounded to float32; the pairs are interleaved channels (2j, 2j + 1) of each head, not the
  rotate-half split; axis blocks in order axis 0, 1, 2 over the head's channels (real FLUX.1: 16, 56, 56 of
  128). apply_rope computes in float32: out[2j] = cos * x[2j] + (-sin) * x[2j + 1], out[2j + 1] = sin * x[2j] +
  cos * x[2j + 1]. (In 0.30.3 Flux does not use embeddings.get_1d_rotary_pos_embed / apply_rotary_emb and there
  is no FluxPosEmbed class: transformer_flux.rope / EmbedND and attention_processor.apply_rope do it.)
- dtypes: prompt_embeds are cast to text_encoder_2's dtype, text_ids take text_encoder's dtype, the latents
  prompt_embeds' dtype; the time projection is computed in float32 and cast to pooled_projections' dtype;
  RMSNorm computes the variance in float32; scheduler.step computes in float32 and casts back to the
  velocity's dtype.
- Decoding (*): unpack, latent / 0.3611 + 0.1159, the VAE decoder (no post_quant_conv), postprocess.
"""

import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_sd3_goldens as sd3_script  # noqa: E402  (the T5 sentencepiece model, its corpus, T5's weight factors)
import make_sdxl_goldens as sdxl_script  # noqa: E402  (the CLIP tokenizer, the checks)
import safetensors_io  # noqa: E402  (deterministic writer: metadata in a fixed order, so reruns give the same bytes)
from make_sdxl_goldens import OUT, ROOT, assert_all_differ, check_draws  # noqa: E402

import diffusers  # noqa: E402
import google.protobuf  # noqa: E402
import huggingface_hub  # noqa: E402
import sentencepiece as spm  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402
from diffusers import (AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline,  # noqa: E402
                       FluxTransformer2DModel)
from diffusers.models.attention_processor import apply_rope  # noqa: E402
from diffusers.models.normalization import RMSNorm  # noqa: E402
from diffusers.pipelines.flux.pipeline_flux import calculate_shift  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import (CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel, T5Tokenizer,  # noqa: E402
                          T5TokenizerFast)
from transformers.models.t5.modeling_t5 import T5LayerNorm  # noqa: E402

FOLDER = os.path.join(OUT, "pipeline_flux")
SCHNELL_FOLDER = os.path.join(OUT, "pipeline_flux_schnell")
SD3_TOKENIZER_3 = os.path.join(OUT, "pipeline_sd3", "tokenizer_3")
MODEL_GOLDEN = os.path.join(OUT, "model_flux_tiny.safetensors")
CASES_GOLDEN = os.path.join(OUT, "pipeline_flux_cases.safetensors")
SCRIPT = "tools/reference/make_flux_goldens.py"
SEED = 2026
IO_SEED = 12

TEXT_PROMPT = sd3_script.TEXT_PROMPT
OOV_PROMPT = sd3_script.OOV_PROMPT
LONG_PROMPT = sd3_script.LONG_PROMPT
# (timestep as the scheduler holds it, guidance scale) of the two transformer calls per latent.
CALLS = ((1000.0, 3.5), (283.7, 5.0))

# Extra factors on the matrix scale of the redraw rule (see the docstring), by name suffix.
FACTORS = {
    "vae": {"decoder.conv_out.weight": 0.3},
    "text_encoder_2": sd3_script.FACTORS["text_encoder_3"],
    "transformer": {"=proj_out.weight": 0.5},
    "transformer_schnell": {"=proj_out.weight": 0.5},
}

# FLUX.1-dev's and FLUX.1-schnell's scheduler/scheduler_config.json values.
DEV_SCHEDULER = {"num_train_timesteps": 1000, "shift": 3.0, "use_dynamic_shifting": True, "base_shift": 0.5,
                 "max_shift": 1.15, "base_image_seq_len": 256, "max_image_seq_len": 4096}
SCHNELL_SCHEDULER = {"num_train_timesteps": 1000, "shift": 1.0, "use_dynamic_shifting": False, "base_shift": 0.5,
                     "max_shift": 1.15, "base_image_seq_len": 256, "max_image_seq_len": 4096}

TRANSFORMER_CONFIG = dict(patch_size=1, in_channels=64, num_layers=2, num_single_layers=2, attention_head_dim=16,
                          num_attention_heads=2, joint_attention_dim=96, pooled_projection_dim=32,
                          axes_dims_rope=(4, 6, 6))

CASES = [
    dict(name="a", model="dev", seed=42, height=32, width=32, steps=4, guidance=3.5, max_sequence_length=512,
         prompt="a red circle on a blue background"),
    dict(name="b", model="dev", seed=1234, height=32, width=48, steps=6, guidance=5.0, max_sequence_length=512,
         prompt="a small green triangle on the top"),
    dict(name="c", model="schnell", seed=13, height=32, width=32, steps=4, guidance=0.0, max_sequence_length=256,
         prompt="photo of a cat"),
]


def versions():
    return {"script": SCRIPT, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "sentencepiece": spm.__version__, "protobuf": google.protobuf.__version__,
            "huggingface_hub": huggingface_hub.__version__}


def check_prompts():
    sdxl_script.check_words(CASES, (TEXT_PROMPT, LONG_PROMPT))
    words = set(" ".join(sd3_script.SP_CORPUS).replace(",", " ").split())
    for case in CASES:
        assert all(w in words for w in case["prompt"].replace(",", " ").split()), case["name"]


# ---------------------------------------------------------------------------------------------------------
# The model

def redraw(module, gen, factors=None):
    """make_sd3_goldens.redraw's rule, with diffusers' RMSNorm (the q/k norms) counted as a norm too. A factor key
    is a name suffix, or, starting with "=", a whole name."""
    factors = factors or {}
    norm_params = {}
    for m in module.modules():
        if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm, T5LayerNorm, RMSNorm)):
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
                hits = [key for key in factors if name == key[1:] or (key[0] != "=" and name.endswith(key))]
                assert len(hits) <= 1, (name, hits)
                used.update(hits)
                f = factors[hits[0]] if hits else 1.0
                p.copy_(noise * (min(0.2, 1.5 / fan_in ** 0.5) * f))
            else:
                p.copy_(0.2 * noise)
            p.copy_(p.half().float())
    assert used == set(factors), (set(factors) - used)


def build_pipelines(tmp):
    vocab, tok, _ = sdxl_script.make_tokenizers(tmp)
    spiece = sd3_script.make_spiece(tmp)
    ref = os.path.join(SD3_TOKENIZER_3, "spiece.model")
    if os.path.exists(ref):
        assert sdxl_script.sha256(ref) == sdxl_script.sha256(spiece), "spiece.model differs from pipeline_sd3's"
    tok_2 = T5TokenizerFast(vocab_file=spiece, model_max_length=512)
    bos, eos = vocab[sdxl_script.bpe.BOS], vocab[sdxl_script.bpe.EOS]
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    transformer = FluxTransformer2DModel(guidance_embeds=True, **TRANSFORMER_CONFIG)
    schnell = FluxTransformer2DModel(guidance_embeds=False, **TRANSFORMER_CONFIG)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(8, 16), layers_per_block=1,
        norm_num_groups=4, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        sample_size=32, scaling_factor=0.3611, shift_factor=0.1159, force_upcast=True, use_quant_conv=False,
        use_post_quant_conv=False)
    te = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=32,
        bos_token_id=bos, eos_token_id=eos, pad_token_id=eos))
    te_2 = T5EncoderModel(T5Config(
        vocab_size=len(tok_2), d_model=96, d_kv=16, d_ff=128, num_layers=2, num_heads=4,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.0,
        layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False,
        tie_word_embeddings=False, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))
    for name, m in (("transformer", transformer), ("vae", vae), ("text_encoder", te), ("text_encoder_2", te_2),
                    ("transformer_schnell", schnell)):
        redraw(m, gen, FACTORS.get(name))
        m.eval()
    common = dict(vae=vae, text_encoder=te, tokenizer=tok, text_encoder_2=te_2, tokenizer_2=tok_2)
    dev = FluxPipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(**DEV_SCHEDULER), **common)
    sch = FluxPipeline(transformer=schnell, scheduler=FlowMatchEulerDiscreteScheduler(**SCHNELL_SCHEDULER),
                       **common)
    return dev, sch


MODELS = ("transformer", "vae", "text_encoder", "text_encoder_2")


def write_folders():
    rounded = {}
    with tempfile.TemporaryDirectory() as tmp:
        dev, sch = build_pipelines(tmp)
        for folder, pipe in ((FOLDER, dev), (SCHNELL_FOLDER, sch)):
            rounded[folder] = {name: {k: v.clone() for k, v in getattr(pipe, name).state_dict().items()}
                               for name in MODELS}
        dev.to(torch.float16)  # sch shares every module but the transformer
        sch.transformer.to(torch.float16)
        for folder, pipe in ((FOLDER, dev), (SCHNELL_FOLDER, sch)):
            if os.path.isdir(folder):
                shutil.rmtree(folder)
            pipe.save_pretrained(folder, safe_serialization=True, variant=None)
    # The CLIP vocabulary is pipeline_sdxl's (and so pipeline_sd1's and pipeline_sd3's); the T5 tokenizer is
    # pipeline_sd3's tokenizer_3.
    for folder in (FOLDER, SCHNELL_FOLDER):
        for f in ("vocab.json", "merges.txt"):
            ref = os.path.join(OUT, "pipeline_sdxl", "tokenizer", f)
            if os.path.exists(ref):
                assert sdxl_script.sha256(ref) == sdxl_script.sha256(os.path.join(folder, "tokenizer", f)), f
        for sub, ref_sub in (("tokenizer", "tokenizer"), ("tokenizer_2", "tokenizer_3")):
            ref_dir = os.path.join(OUT, "pipeline_sd3", ref_sub)
            if os.path.isdir(ref_dir):
                assert sorted(os.listdir(ref_dir)) == sorted(os.listdir(os.path.join(folder, sub))), sub
                for f in sorted(os.listdir(ref_dir)):
                    assert sdxl_script.sha256(os.path.join(ref_dir, f)) == \
                        sdxl_script.sha256(os.path.join(folder, sub, f)), (sub, f)
    # Shared components are written identically into both folders.
    for sub in ("vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"):
        for f in sorted(os.listdir(os.path.join(FOLDER, sub))):
            assert sdxl_script.sha256(os.path.join(FOLDER, sub, f)) == \
                sdxl_script.sha256(os.path.join(SCHNELL_FOLDER, sub, f)), (sub, f)
    return rounded


def load_fp32(folder, rounded):
    pipe = FluxPipeline.from_pretrained(folder, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    for name, ref in rounded.items():
        got = getattr(pipe, name).state_dict()
        assert set(got) == set(ref), name
        for k, v in ref.items():
            assert got[k].dtype == torch.float32, (name, k)
            assert torch.equal(got[k], v), f"{name}.{k} does not round-trip"
    assert isinstance(pipe.tokenizer_2, T5TokenizerFast) and isinstance(pipe.text_encoder, CLIPTextModel)
    assert pipe.vae_scale_factor == 4 and pipe.tokenizer_max_length == 77
    return pipe


# ---------------------------------------------------------------------------------------------------------
# Component goldens

def ids_of(pipe, text, max_sequence_length=512):
    """Both tokenizers' ids as the pipeline computes them."""
    ids_1 = pipe.tokenizer(text, padding="max_length", max_length=77, truncation=True,
                           return_overflowing_tokens=False, return_length=False, return_tensors="pt").input_ids
    ids_2 = pipe.tokenizer_2(text, padding="max_length", max_length=max_sequence_length, truncation=True,
                             return_length=False, return_overflowing_tokens=False, return_tensors="pt").input_ids
    return ids_1, ids_2


def check_slow_t5(folder, pipe, texts):
    """The slow T5Tokenizer over the same spiece.model gives the fast tokenizer's ids."""
    slow = T5Tokenizer(os.path.join(folder, "tokenizer_2", "spiece.model"), legacy=True)
    assert len(slow) == len(pipe.tokenizer_2)
    for text in texts:
        for n in (512, 256):
            kw = dict(padding="max_length", max_length=n, truncation=True, return_tensors="pt")
            assert torch.equal(slow(text, **kw).input_ids, pipe.tokenizer_2(text, **kw).input_ids), (text, n)


def check_rust_t5(folder, text, ids_2):
    """tokenizer_2/tokenizer.json read by the tokenizers library alone gives the pipeline's ids."""
    tok = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer_2", "tokenizer.json"))
    n = ids_2.shape[-1]
    tok.enable_truncation(n)
    tok.enable_padding(pad_id=0, pad_token="<pad>", length=n)
    assert tok.encode(text).ids == ids_2[0].tolist(), text


def encode(pipe, text, **kw):
    return pipe.encode_prompt(text, None, device=torch.device("cpu"), **kw)


def rope_tables(freqs):
    """EmbedND's [1, 1, N, D/2, 2, 2] rotation matrices as per-channel cos and sin [N, D], each value repeated for
    the two channels of its pair (channels 2i, 2i + 1 rotate together)."""
    f = freqs[0, 0]
    cos, sin = f[..., 0, 0], f[..., 1, 0]
    assert torch.equal(f[..., 1, 1], cos) and torch.equal(f[..., 0, 1], -sin)
    return cos.repeat_interleave(2, dim=-1), sin.repeat_interleave(2, dim=-1)


def check_rope_formula(ids, cos, sin, axes=(4, 6, 6)):
    """The tables restated: axis a (dim d) holds d / 2 pairs with omega_j = 1 / 10000^(2j / d) (float64), angle =
    ids[..., a] * omega_j in float64, cos/sin rounded to float32; the axes' pairs follow each other."""
    parts = []
    for a, d in enumerate(axes):
        omega = 1.0 / 10000 ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
        parts.append(ids[0, :, a].to(torch.float64)[:, None] * omega[None])
    ang = torch.cat(parts, dim=-1)
    assert torch.equal(cos, torch.cos(ang).float().repeat_interleave(2, -1))
    assert torch.equal(sin, torch.sin(ang).float().repeat_interleave(2, -1))


def check_rope(freqs, cos, sin):
    """apply_rope(x) = x * cos + rot(x) * sin with rot(x)[2i] = -x[2i + 1], rot(x)[2i + 1] = x[2i], bit for bit."""
    n = freqs.shape[2]
    x = torch.randn((1, 2, n, 16), generator=torch.Generator().manual_seed(0))
    got, _ = apply_rope(x, x, freqs)
    rot = torch.stack([-x[..., 1::2], x[..., 0::2]], dim=-1).flatten(-2)
    want = x * cos + rot * sin
    assert torch.equal(got, want), (got - want).abs().max()


def component_goldens(dev, sch):
    t = {}
    meta = dict(versions(), seed=str(SEED), io_seed=str(IO_SEED), sp_seed=str(sd3_script.SP_SEED),
                spiece_sha256=sdxl_script.sha256(os.path.join(FOLDER, "tokenizer_2", "spiece.model")))
    prompts = {"p0": TEXT_PROMPT, "p1": "", "p2": OOV_PROMPT, "long": LONG_PROMPT}
    for case in CASES:
        prompts[f"case.{case['name']}"] = case["prompt"]
    check_slow_t5(FOLDER, dev, list(prompts.values()))
    with torch.no_grad():
        for k, text in prompts.items():
            meta[f"prompt.{k}"] = text
            ids_1, ids_2 = ids_of(dev, text)
            ids_2_256 = ids_of(dev, text, 256)[1]
            assert ids_1[0, -1].item() == 590 and ids_2[0, -1].item() == 0 and ids_2_256[0, -1].item() == 0, k
            assert torch.equal(ids_2[:, :256], ids_2_256), k
            check_rust_t5(FOLDER, text, ids_2)
            check_rust_t5(FOLDER, text, ids_2_256)
            t.update({f"text.{k}.ids_1": ids_1.to(torch.int32), f"text.{k}.ids_2": ids_2.to(torch.int32),
                      f"text.{k}.ids_2_256": ids_2_256.to(torch.int32)})
            if k not in ("p0", "p1", "p2"):
                continue
            out_1 = dev.text_encoder(ids_1, output_hidden_states=False)
            t5 = dev.text_encoder_2(ids_2, output_hidden_states=False)[0]
            pooled = out_1.pooler_output
            # pooler_output: the final-layer-normed state at the first EOS (590).
            first_eos = (ids_1[0] == 590).nonzero()[0].item()
            assert torch.equal(pooled, out_1.last_hidden_state[:, first_eos]), k
            t.update({f"text.{k}.pooled": pooled, f"text.{k}.t5": t5})
            pe, ppe, tids = encode(dev, text)
            assert torch.equal(pe, t5) and torch.equal(ppe, pooled), k
            assert tids.shape == (1, 512, 3) and not tids.any() and tids.dtype == torch.float32
        assert 2 in t["text.p2.ids_2"][0].tolist()
        n_long = (t["text.long.ids_2"][0] != 0).sum().item()
        assert 77 < n_long <= 256, n_long
        for tag, msl in (("long", 512), ("long256", 256)):
            pe, ppe, tids = encode(dev, LONG_PROMPT, max_sequence_length=msl)
            assert pe.shape == (1, msl, 96) and tids.shape == (1, msl, 3) and not tids.any()
            t.update({f"encode.{tag}.prompt_embeds": pe, f"encode.{tag}.pooled_prompt_embeds": ppe,
                      f"encode.{tag}.text_ids": tids})
        assert torch.equal(t["encode.long.pooled_prompt_embeds"], t["encode.long256.pooled_prompt_embeds"])
        # No attention mask in T5: the padding attends and is attended to, so the first 256 rows differ.
        assert not torch.equal(t["encode.long.prompt_embeds"][:, :256], t["encode.long256.prompt_embeds"])
        # The schnell pipeline shares both encoders.
        pe_s, ppe_s, _ = encode(sch, LONG_PROMPT, max_sequence_length=256)
        assert torch.equal(pe_s, t["encode.long256.prompt_embeds"]) and \
            torch.equal(ppe_s, t["encode.long256.pooled_prompt_embeds"])

    g = torch.Generator().manual_seed(IO_SEED)
    for tag, (h, w, n_ctx) in (("sq", (16, 16, 512)), ("wide", (16, 24, 256))):
        latent = torch.randn((1, 16, h, w), generator=g)
        ctx = torch.randn((1, n_ctx, 96), generator=g)
        pooled = torch.randn((1, 32), generator=g)
        x = dev._pack_latents(latent, 1, 16, h, w)
        img_ids = dev._prepare_latent_image_ids(1, h, w, torch.device("cpu"), torch.float32)
        txt_ids = torch.zeros(1, n_ctx, 3)
        assert x.shape == (1, (h // 2) * (w // 2), 64) and img_ids.shape == (1, (h // 2) * (w // 2), 3)
        p = f"transformer.{tag}"
        t.update({f"{p}.latent": latent, f"{p}.hidden_states": x, f"{p}.img_ids": img_ids, f"{p}.txt_ids": txt_ids,
                  f"{p}.encoder_hidden_states": ctx, f"{p}.pooled_projections": pooled})
        ids = torch.cat((txt_ids, img_ids), dim=1)
        freqs = dev.transformer.pos_embed(ids)
        assert freqs.shape == (1, 1, n_ctx + x.shape[1], 8, 2, 2) and freqs.dtype == torch.float32
        cos, sin = rope_tables(freqs)
        check_rope(freqs, cos, sin)
        check_rope_formula(ids, cos, sin)
        rows, cols = torch.meshgrid(torch.arange(h // 2), torch.arange(w // 2), indexing="ij")
        want_ids = torch.stack([torch.zeros_like(rows), rows, cols], dim=-1).reshape(1, -1, 3).float()
        assert torch.equal(img_ids, want_ids)
        t.update({f"rope.{tag}.ids": ids, f"rope.{tag}.freqs": freqs, f"rope.{tag}.cos": cos,
                  f"rope.{tag}.sin": sin})
        with torch.no_grad():
            for tv, gs in CALLS:
                ck = f"t{str(tv).replace('.0', '').replace('.', '_')}"
                # As the pipeline passes them: t (float32) / 1000; guidance tensor([scale]) (float32).
                timestep = torch.tensor([tv], dtype=torch.float32) / 1000
                guidance = torch.tensor([gs])
                out = dev.transformer(hidden_states=x, timestep=timestep, guidance=guidance,
                                      pooled_projections=pooled, encoder_hidden_states=ctx, txt_ids=txt_ids,
                                      img_ids=img_ids, return_dict=False)[0]
                out_s = sch.transformer(hidden_states=x, timestep=timestep, guidance=None,
                                        pooled_projections=pooled, encoder_hidden_states=ctx, txt_ids=txt_ids,
                                        img_ids=img_ids, return_dict=False)[0]
                assert out.shape == x.shape and out_s.shape == x.shape
                t.update({f"{p}.{ck}.timestep": timestep, f"{p}.{ck}.guidance": guidance, f"{p}.{ck}.out": out,
                          f"transformer_schnell.{tag}.{ck}.out": out_s})

    for tag, n, seq in (("dev_seq64_n4", 4, 64), ("dev_seq64_n28", 28, 64), ("dev_seq96_n4", 4, 96),
                        ("dev_seq96_n28", 28, 96), ("dev_seq4096_n28", 28, 4096), ("schnell_n4", 4, 64)):
        cfg = SCHNELL_SCHEDULER if tag.startswith("schnell") else DEV_SCHEDULER
        s = FlowMatchEulerDiscreteScheduler(**cfg)
        in_sigmas = np.linspace(1.0, 1 / n, n)
        mu = calculate_shift(seq, cfg["base_image_seq_len"], cfg["max_image_seq_len"], cfg["base_shift"],
                             cfg["max_shift"])
        s.set_timesteps(sigmas=in_sigmas, mu=mu)
        assert s.timesteps.dtype == torch.float32 and s.sigmas.dtype == torch.float32 and s.sigmas[-1] == 0
        # The formulas of the docstring, restated.
        m = (cfg["max_shift"] - cfg["base_shift"]) / (cfg["max_image_seq_len"] - cfg["base_image_seq_len"])
        assert mu == seq * m + (cfg["base_shift"] - m * cfg["base_image_seq_len"])
        if cfg["use_dynamic_shifting"]:
            want = math.exp(mu) / (math.exp(mu) + (1 / in_sigmas - 1) ** 1.0)
        else:
            want = cfg["shift"] * in_sigmas / (1 + (cfg["shift"] - 1) * in_sigmas)
        want = torch.from_numpy(want).to(torch.float32)
        assert torch.equal(s.sigmas[:-1], want) and torch.equal(s.timesteps, want * 1000), tag
        t.update({f"sched.{tag}.timesteps": s.timesteps.clone(), f"sched.{tag}.sigmas": s.sigmas.clone(),
                  f"sched.{tag}.mu": torch.tensor([mu], dtype=torch.float64),
                  f"sched.{tag}.input_sigmas": torch.from_numpy(in_sigmas.copy())})
        meta[f"sched.{tag}.mu"] = repr(mu)

    vae = dev.vae
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

    latent = torch.randn((1, 16, 16, 24), generator=g)
    packed = FluxPipeline._pack_latents(latent, 1, 16, 16, 24)
    unpacked = FluxPipeline._unpack_latents(packed, 32, 48, dev.vae_scale_factor)
    assert torch.equal(unpacked, latent)
    # Token (r, c) holds channels c0 (2x2: (0,0) (0,1) (1,0) (1,1)), then c1, ...
    assert torch.equal(packed[0, 1 * 12 + 2, 4 * 5 + 2], latent[0, 5, 2 * 1 + 1, 2 * 2 + 0])
    t.update({"pack.latent": latent, "pack.packed": packed, "pack.unpacked": unpacked})

    meta.update(transformer_config=json.dumps(dict(dev.transformer.config)),
                transformer_schnell_config=json.dumps(dict(sch.transformer.config)),
                vae_config=json.dumps(dict(dev.vae.config)),
                scheduler_config=json.dumps(dict(dev.scheduler.config)),
                scheduler_schnell_config=json.dumps(dict(sch.scheduler.config)),
                text_encoder_config=dev.text_encoder.config.to_json_string(),
                text_encoder_2_config=dev.text_encoder_2.config.to_json_string())
    for k, v in t.items():
        if k.startswith("text.case"):
            continue
        print(f"  {k:42s} {str(v.dtype).replace('torch.', ''):8s} {list(v.shape)}"
              + (f"  std {v.float().std().item():.4f}" if v.is_floating_point() and v.numel() > 1 else ""))
    print("  T5 ids p0:", t["text.p0.ids_2"][0, :20].tolist())
    print("  long prompt T5 length:", n_long)
    for k in ("dev_seq64_n4", "dev_seq96_n4", "schnell_n4"):
        print(f"  {k}: mu {meta['sched.' + k + '.mu']} timesteps {t['sched.' + k + '.timesteps'].tolist()}")
    return t, meta


# ---------------------------------------------------------------------------------------------------------
# Pipeline cases

class TransformerRecorder:
    """A forward hook on the transformer: every call's timestep, guidance, latent input and output, and the first
    call's conditioning."""

    def __init__(self):
        self.timesteps, self.guidance, self.inputs, self.outputs, self.first = [], [], [], [], None

    def __call__(self, module, args, kwargs, output):
        t = kwargs["timestep"]
        assert t.shape == (1,) and t.dtype == torch.float32
        self.timesteps.append(t.clone())
        g = kwargs["guidance"]
        self.guidance.append(None if g is None else g.clone())
        self.inputs.append(kwargs["hidden_states"].detach().clone())
        self.outputs.append(output[0].detach().clone())
        if self.first is None:
            self.first = {k: kwargs[k].detach().clone() for k in ("hidden_states", "encoder_hidden_states",
                                                                  "pooled_projections", "txt_ids", "img_ids")}


def replay(rec, sigmas, latent):
    """The denoising loop restated on the recorded transformer outputs: x + (sigma[i + 1] - sigma[i]) * v. Every
    transformer input and the final latent must match bit for bit."""
    x = rec.inputs[0]
    for i, (x_in, out) in enumerate(zip(rec.inputs, rec.outputs)):
        assert torch.equal(x_in, x), ("transformer input", i)
        x = x + (sigmas[i + 1] - sigmas[i]) * out
    assert torch.equal(x, latent), "replayed loop differs"


def decode_as_pipeline(pipe, packed, h, w):
    vae = pipe.vae
    latent = pipe._unpack_latents(packed, h, w, pipe.vae_scale_factor)
    with torch.no_grad():
        image = vae.decode(latent / vae.config.scaling_factor + vae.config.shift_factor, return_dict=False)[0]
    pil = pipe.image_processor.postprocess(image, output_type="pil")[0]
    return latent, torch.from_numpy(np.asarray(pil).copy())


def run_case(pipes, case):
    pipe = pipes[case["model"]]
    sched_cfg = DEV_SCHEDULER if case["model"] == "dev" else SCHNELL_SCHEDULER
    pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(sched_cfg)
    h, w, n = case["height"], case["width"], case["steps"]
    call = dict(prompt=case["prompt"], height=h, width=w, num_inference_steps=n, guidance_scale=case["guidance"],
                max_sequence_length=case["max_sequence_length"])
    rec = TransformerRecorder()
    handle = pipe.transformer.register_forward_hook(rec, with_kwargs=True)
    gen = torch.Generator("cpu").manual_seed(case["seed"])
    try:
        with torch.no_grad():
            packed = pipe(**call, generator=gen, output_type="latent").images
    finally:
        handle.remove()
    lh, lw = 2 * (h // pipe.vae_scale_factor), 2 * (w // pipe.vae_scale_factor)
    shape = (1, 16, lh, lw)
    n_tok = (lh // 2) * (lw // 2)
    assert packed.shape == (1, n_tok, 64), packed.shape
    sched = pipe.scheduler
    sigmas = sched.sigmas.clone()
    timesteps = sched.timesteps.clone()
    mu = calculate_shift(n_tok, 256, 4096, 0.5, 1.15)
    first = rec.first
    msl = case["max_sequence_length"]
    assert first["encoder_hidden_states"].shape == (1, msl, 96) and first["txt_ids"].shape == (1, msl, 3)
    assert torch.equal(first["img_ids"], pipe._prepare_latent_image_ids(1, lh, lw, "cpu", torch.float32))
    pe, ppe, _ = encode(pipe, case["prompt"], max_sequence_length=msl)
    assert torch.equal(first["encoder_hidden_states"], pe) and torch.equal(first["pooled_projections"], ppe)
    check_draws(gen, case["seed"], shape, 1, (case["name"], "generator draws"))
    noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(case["seed"]))
    noise_packed = pipe._pack_latents(noise, 1, 16, lh, lw)
    assert torch.equal(first["hidden_states"], noise_packed), case["name"]
    assert len(rec.timesteps) == n
    for i in range(n):
        # The pipeline passes t / 1000 (float32); the transformer multiplies by 1000 again.
        assert torch.equal(rec.timesteps[i], timesteps[i:i + 1] / 1000), i
        if case["model"] == "dev":
            assert torch.equal(rec.guidance[i], torch.tensor([case["guidance"]])), i
        else:
            assert rec.guidance[i] is None
    replay(rec, sigmas, packed)
    latent, image = decode_as_pipeline(pipe, packed, h, w)
    assert latent.shape == shape
    pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(sched_cfg)
    with torch.no_grad():
        pil = pipe(**call, generator=torch.Generator("cpu").manual_seed(case["seed"]), output_type="pil").images[0]
    assert torch.equal(torch.from_numpy(np.asarray(pil).copy()), image), "decode differs from the pipeline's"
    passed = torch.cat(rec.timesteps)
    t_roundtrip = passed * 1000
    params = dict(name=case["name"], pipeline_class=type(pipe).__name__, model=case["model"], prompt=case["prompt"],
                  negative=None, steps=n, guidance=case["guidance"],
                  guidance_used=case["model"] == "dev", seed=case["seed"], width=w, height=h,
                  max_sequence_length=msl, timesteps=timesteps.tolist(), transformer_timesteps=passed.tolist(),
                  sigmas=sigmas.tolist(), mu=mu, image_seq_len=n_tok)
    tensors = dict(latent_packed=packed.contiguous(), latent=latent.contiguous(), image=image.contiguous(),
                   timesteps=timesteps, transformer_timesteps=passed, sigmas=sigmas,
                   mu=torch.tensor([mu], dtype=torch.float64))
    if case["name"] == "a":
        tensors.update(noise=noise, noise_packed=noise_packed)
    return tensors, params, (t_roundtrip != timesteps).sum().item()


def pipeline_cases(pipes):
    tensors, meta = {}, dict(versions(), seed=str(SEED), scheduler_config=json.dumps(DEV_SCHEDULER),
                             scheduler_schnell_config=json.dumps(SCHNELL_SCHEDULER))
    latents = {}
    for case in CASES:
        t, params, n_off = run_case(pipes, case)
        name = case["name"]
        latent, image = t["latent"], t["image"]
        assert torch.isfinite(latent).all(), name
        assert image.shape == (case["height"], case["width"], 3) and image.dtype == torch.uint8, name
        for k, v in t.items():
            tensors[f"{name}.{k}"] = v
        meta[f"{name}.params"] = json.dumps(params)
        latents[name] = latent
        sat = ((image == 0) | (image == 255)).float().mean().item()
        print(f"  {name} {case['model']:7s} h{case['height']} w{case['width']} steps {case['steps']} guidance "
              f"{case['guidance']} msl {case['max_sequence_length']}: latent std {latent.std().item():.3f} mean "
              f"{latent.mean().item():.3f}  image mean {image.float().mean().item():.1f} std "
              f"{image.float().std().item():.1f} saturated {sat:.0%}; t/1000*1000 != t at {n_off} steps")
        print(f"    mu {params['mu']!r} timesteps {params['timesteps']}")
    assert_all_differ(latents)
    return tensors, meta


def save(path, tensors, meta):
    for k, v in tensors.items():
        if v.is_floating_point():
            assert v.dtype == torch.float32 or k.endswith(".mu") or k.endswith(".input_sigmas"), k
            assert torch.isfinite(v).all(), k
    tensors = {k: v.detach().clone().contiguous() for k, v in tensors.items()}
    safetensors_io.save_file(tensors, path, dict(sorted(meta.items())))
    back = load_file(path)
    assert back.keys() == tensors.keys() and all(torch.equal(back[k], v) for k, v in tensors.items())
    print(f"wrote {os.path.relpath(path, ROOT)}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


def main():
    torch.set_num_threads(1)
    check_prompts()
    rounded = write_folders()
    for folder in (FOLDER, SCHNELL_FOLDER):
        total = 0
        for dirpath, _, files in sorted(os.walk(folder)):
            for f in sorted(files):
                size = os.path.getsize(os.path.join(dirpath, f))
                total += size
                print(f"  {os.path.relpath(os.path.join(dirpath, f), ROOT)}: {size} bytes")
        print(f"wrote {os.path.relpath(folder, ROOT)}: {total} bytes")
    dev = load_fp32(FOLDER, rounded[FOLDER])
    sch = load_fp32(SCHNELL_FOLDER, rounded[SCHNELL_FOLDER])
    print("component goldens:")
    save(MODEL_GOLDEN, *component_goldens(dev, sch))
    print("pipeline cases:")
    save(CASES_GOLDEN, *pipeline_cases({"dev": dev, "schnell": sch}))


if __name__ == "__main__":
    main()
