#!/work/refvenv/bin/python
"""LoRA (kohya, PEFT), LoHa, LoKr, DoRA and textual-inversion goldens on the FULL-SIZE random SD 1.5, SD 2.1 (768-v)
and SDXL base networks: the
full-size counterpart of make_lora_goldens.py / make_lycoris_goldens.py / make_ti_goldens.py (tiny models), on the
checkpoints of make_fullsize_goldens.py and make_fullsize_sdxl_goldens.py (weights a pure function of the published
key lists tests/data/keys/{sd15,sd21,sdxl_base}.ldm.json.gz: make_fullsize_goldens.weight), in diffusers mode at
64x64 (8x8 latents): small images, full-size networks, real module names and shapes.

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline, one model or all
three (`all` runs each model in a child process, one after the other, so each frees everything before the next):

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_fullsize_lora_goldens.py [sd15|sd21|sdxl|all]
    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_fullsize_lora_goldens.py files   # files only, ~4 s

Versions (requirements-pip.txt): torch 2.4.1 (CPU), diffusers 0.30.3, transformers 4.40.2, peft 0.12.0; float32 on
the CPU, ONE torch thread (THREADS; make_fullsize_sdxl_goldens' docstring: the last bits depend on it).
Measured on the shared 2-core machine (peak resident set size as getrusage / /usr/bin/time -v report it): sd15
3.9 min, 5.2 GiB (5.49 million KB; 7 cases); sd21 2.1 min, 5.9 GiB (6.20 million KB; 2 cases); sdxl 4.5 to 5 min,
15.5 GiB (16.2 million KB; the fp32 SDXL models alone are 13.9 GB, built in 2 to 2.5 min); `all` about 11 min
(estimated: 7 min 50 s before the sd15_lokr ... sd21_ti cases, not rerun since).

Writes
------
tests/golden/data/lora/ (11 files, 3.37 MB; every value from torch.Generators with fixed seeds, drawn from the
models' shapes only (meta-device models; DoRA's dora_scale also from the base weights, computed from the key list),
written by safetensors_io (fixed header order, sorted metadata) or torch.save (the .pt files: fixed record names and
timestamps): the same bytes on every run, checked across runs):
  fullsize_sd15.safetensors       540,650 B. kohya-ss (sd-scripts LoRANetwork) layout, diffusers module naming,
      F16, rank 2, alpha 1 (0-dim F16 ".alpha" on every module: scale 0.5), 57 modules:
      UNet: every 5th of the 192 attention modules (mlg.ATTN_RE in named_modules order: proj_in, attn1.to_q/k/v/
      to_out.0, attn2.to_q/k/v/to_out.0, ff.net.0.proj, ff.net.2, proj_out of each of the 16 attentions), the 1st,
      6th, 11th, ... (12 modules per attention, so the kinds rotate: every kind at several levels; proj_in/proj_out
      are 1x1 convs here: lora_down [2, in, 1, 1], lora_up [out, 2, 1, 1]); 39 modules.
      Text encoder (CLIP-L, 12 layers): self_attn q/k/v/out_proj and mlp fc1/fc2 of layers 0, 5 and 11; 18 modules.
      e.g. lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight [2, 320, 1, 1],
      lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight [2, 768],
      lora_unet_up_blocks_1_attentions_2_transformer_blocks_0_ff_net_0_proj.lora_up.weight [10240, 2],
      lora_unet_mid_block_attentions_0_transformer_blocks_0_ff_net_2.alpha [],
      lora_te_text_model_encoder_layers_11_mlp_fc2.lora_down.weight [2, 3072].
      Values (make_lora_goldens.Mod): lora_down = randn / sqrt(in), lora_up = randn * GAIN / sqrt(rank) (GAIN 2),
      so merged at multiplier 1 the delta's mean |.| is about 0.9 of W's (W: randn / sqrt(in) by the weight
      rule); ss_* metadata as make_lora_goldens' kohya files.
  fullsize_sd21.safetensors       602,122 B. The same for SD 2.1 (GAIN 2): linear proj_in/proj_out ([2, in]);
      attn2 to_k/to_v from the 1024-wide context; text encoder = diffusers' 23-layer OpenCLIP-H (the single file's
      24th layer is dropped, SD 2's penultimate-layer output), transformers naming lora_te_text_model_encoder_
      layers_N_..., layers 0, 11 and 22 (22 = the last layer diffusers has; q/k/v come from the checkpoint's fused
      attn.in_proj_weight, so a loader of the single file must add them to its row blocks 0-1023 / 1024-2047 /
      2048-3071); ss_v2 "True", ss_base_model_version "sd_v2". 57 modules.
      e.g. lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight [2, 320],
      lora_te_text_model_encoder_layers_22_self_attn_v_proj.lora_up.weight [1024, 2].
  fullsize_sdxl.safetensors     1,339,652 B. kohya SDXL as sd-scripts writes it: UNet in sgm/LDM naming
      (make_lora_goldens.ldm_name: input_blocks.{4,5,7,8}.1, middle_block.1, output_blocks.{0..5}.1), F16,
      alpha 1 everywhere; UNet rank 1 (scale 1) on every 7th of the 722 attention modules (the 1st, 8th, ...: every
      kind, transformer_blocks 0-9, all 11 attentions but down_blocks.1.attentions.1's proj_in; 104 modules);
      lora_te1_ (CLIP-L) rank 2 (scale 0.5) on all six Linears of layers 0, 5 and 10 (10 = the last one SDXL uses:
      it takes CLIP-L's penultimate hidden state); lora_te2_ (OpenCLIP bigG, transformers naming) rank 2 on layers
      0, 15, 30 (the last feeding the context) and 31 (feeds only the pooled embedding). 146 modules. GAIN 1.
      e.g. lora_unet_input_blocks_4_1_proj_in.lora_down.weight [1, 640],
      lora_unet_input_blocks_4_1_transformer_blocks_1_attn1_to_out_0.lora_up.weight [640, 1],
      lora_unet_middle_block_1_transformer_blocks_5_attn1_to_k.alpha [],
      lora_unet_output_blocks_0_1_transformer_blocks_3_ff_net_0_proj.lora_up.weight [10240, 1],
      lora_te1_text_model_encoder_layers_5_mlp_fc1.lora_down.weight [2, 768],
      lora_te2_text_model_encoder_layers_30_self_attn_k_proj.lora_up.weight [1280, 2].
      Not every attention module nor every text-encoder layer: the whole of it would be 10.6 MB (UNet, rank 2) +
      0.7 + 3.0 MB (text encoders), far over the ~4 MB budget for all new data.
  fullsize_sd15_loha.safetensors  358,744 B. LyCORIS LoHa (lycoris.kohya layout, make_lycoris_goldens.draw_loha,
      GAIN 3), F16, rank 2, alpha 1 (scale 0.5): hada_w1_a [out, 2], hada_w1_b [2, in], hada_w2_a, hada_w2_b on
      attn1/attn2 to_q, to_k, to_v, to_out.0 of down_blocks.0.attentions.0, down_blocks.1.attentions.1,
      mid_block.attentions.0 and up_blocks.3.attentions.2 (32 modules), diffusers naming,
      e.g. lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k.hada_w1_b [2, 768].
  fullsize_sd15_lokr.safetensors  116,384 B. LyCORIS LoKr (lycoris.kohya layout, make_lycoris_goldens.lokr_mod /
      draw_lokr, GAIN 3), F16, rank 10, alpha 5, factor -1 (320 = 16 x 20, 640 = 20 x 32, 768 = 24 x 32,
      1280 = 32 x 40), no decompose_both (lokr_w1 always full), on attn1/attn2 to_q, to_k, to_v, to_out.0 of
      down_blocks.0.attentions.1, down_blocks.2.attentions.0, mid_block.attentions.0, up_blocks.2.attentions.1 and
      up_blocks.3.attentions.1 (40 modules). LyCORIS's rule picks per module: lokr_w2 full where rank >= max(b, d) / 2
      (the 320 x 320 Linears: lokr_w1 [16, 16], lokr_w2 [20, 20]; 12 modules; alpha stored 10 = rank as LyCORIS does,
      A1111 has no dim: scale 1), else lokr_w2_a [b, 10] @ lokr_w2_b [10, d] (28 modules, scale 0.5), e.g.
      lora_unet_down_blocks_0_attentions_1_transformer_blocks_0_attn2_to_k: lokr_w1 [16, 24], lokr_w2_a [20, 10],
      lokr_w2_b [10, 32]; ss_network_args {algo lokr, conv_dim 10, conv_alpha 5.0, factor -1}.
  fullsize_sd15_dora.safetensors  159,698 B. LoRA + dora_scale as LyCORIS writes it (dora_wd, wd_on_output False;
      make_lycoris_goldens' sd1_dora: draw_lora, then dora_scale = (the base weight's input-column norms) *
      exp(0.25 * randn), [1, in] / [1, in, 1, 1]), lycoris.kohya layout, F16, rank 2, alpha 1 (scale 0.5), GAIN 4:
      attn1/attn2 to_q, to_k, to_v, to_out.0 of down_blocks.1.attentions.0, down_blocks.0.attentions.1.proj_in (1x1
      conv: lora_down [2, 320, 1, 1], dora_scale [1, 320, 1, 1]), text encoder self_attn q/k/v/out_proj of layers
      0, 5 and 11 (21 modules); e.g. lora_te_text_model_encoder_layers_5_self_attn_v_proj.dora_scale [1, 768].
      The base weights dora_scale is drawn from come from the key list (real_weights: make_fullsize_goldens.weight
      of the LDM tensor), checked equal to the pipeline's.
  fullsize_sd15_peft.safetensors  197,824 B. diffusers/PEFT layout as StableDiffusionPipeline.save_lora_weights
      writes it (write_peft: make_lora_goldens.make_peft on the meta-device models, add_adapter(LoraConfig(r=2,
      lora_alpha=2, target_modules=the modules' full names)), get_peft_model_state_dict's keys and shapes, values
      drawn as make_lora_goldens.Mod draws them, GAIN 2), F16, no alpha (scale 1), metadata {"format": "pt"}: UNet
      every 11th of the 192 attention modules (ATTN_RE order; 11 is prime to the 12 kinds, so every kind occurs;
      18 modules), text encoder layer 0 self_attn q/k/v/out_proj and layer 11 mlp fc1/fc2 (6 modules), e.g.
      unet.down_blocks.0.attentions.0.proj_in.lora_A.weight [2, 320, 1, 1],
      unet.up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_q.lora_B.weight [1280, 2],
      text_encoder.text_model.encoder.layers.11.mlp.fc1.lora_A.weight [2, 768].
  fullsize_sd15_ti.pt  16,777 B. AUTOMATIC1111's textual inversion (make_ti_goldens' sd1_style layout: torch.save of
      {string_to_token {"*": 265}, string_to_param {"*": float32 [5, 768], requires_grad}, name, step 500,
      sd_checkpoint, sd_checkpoint_name}), 5 vectors randn * 6 / sqrt(768) (6 times the weight rule's standard
      deviation of the token-embedding table: at 1 times the prompt embedding moved these images by under 1.6
      levels). Name: 8 BPE tokens (full, size</w>, _</w>, sd</w>, 1</w>, 5</w>, _</w>, ti</w>).
  fullsize_sd15_neg.safetensors  8,104 B. kohya's "emb_params" F16 [5, 768] (sd-scripts' model-spec metadata,
      architecture stable-diffusion-v1/textual-inversion), randn * 6 / sqrt(768); name 9 tokens.
  fullsize_sd21_ti.pt  17,801 B. A1111 .pt as fullsize_sd15_ti for SD 2.1: float32 [4, 1024], randn * 6 / sqrt(1024).
  fullsize_sdxl_emb.safetensors     8,696 B. An SDXL textual inversion (kohya sdxl_train_textual_inversion /
      CivitAI layout, make_ti_goldens' model-spec metadata): clip_l F16 [2, 768], clip_g F16 [2, 1280], randn *
      1 / sqrt(width) (the weight rule's standard deviation of the token-embedding tables). Its name is
      "fullsize_sdxl_emb": 8 tokens of CLIP's BPE (full, size</w>, _</w>, sd, xl</w>, _</w>, em, b</w>; checked).

tests/golden/data/fullsize_lora_cases.safetensors (shared by the three models: a run replaces only its model's
entries, see owner()):
  <case>.latent  float32 [1, 4, 8, 8]   the pipeline's final latent (output_type="latent")
  <case>.image   uint8 [1, 3, 64, 64]   CHW RGB: SD: round(clamp(vae.decode(latent / 0.18215) / 2 + 0.5) * 255);
                                        SDXL: make_sdxl_goldens.decode_as_pipeline, permuted from HWC
  metadata <case>.params (JSON): model ("sd15" | "sd21" | "sdxl"), loras ([{file, unet, te}]), embeddings_loaded
      ([file names], in tests/golden/data/lora/; the embedding's name is the file stem), mode "diffusers",
      scheduler "euler", spacing (the scheduler's timestep_spacing: "linspace" for the SD single-file config,
      "leading" for SDXL's), steps, cfg, seed, prompt,
      negative, width, height, mean_abs_image_diff_vs_without (levels of 255); sdxl_emb also embedding_positions,
      text_encoder_2_pooled_position, first_eos_position, max_abs_latent_diff_if_pooled_at_eos,
      mean_abs_image_diff_if_pooled_at_eos (see below); sd15_ti / sd21_ti also embeddings ([{name, prompt
      "positive" | "negative", start, count}]: position of the vectors in the 77 ids, BOS = 0) and sd15_ti
      mean_abs_image_diff_without_each ({file stem: mean |image - the run with only the other file loaded|}).
  fused.<stem>.<component>.<module>.weight  float32  rows [0, FUSED_ROWS) = [0, 8) of the weight with the file
      merged at the case's multipliers (LoRA: as diffusers' fuse_lora makes it, peft's merge W + get_delta_weight,
      checked against W + multiplier * alpha / rank * up @ down (1e-5 relative) and against the layer's own merge
      (bit for bit); LoHa, LoKr, DoRA: make_lycoris_goldens.merge, A1111's arithmetic. DoRA only: a merged row
      depends on every row of W (the input-column norms), so its rows are those of the merge of W' = W's rows
      [0, 8) with every other row zero (lycoris_fused; metadata merged_from), what a test holding only the stored
      base rows rebuilds; on these weights they differ from the rows of the real merge by 0.35 to 0.47 of the
      delta. Checked: the DoRA merge differs from A1111 v1.9's order (alpha / dim and multiplier outside) by 0.41
      of the delta and from the multiplier taken inside the decomposition by 0.16)
  base.<model>.<component>.<module>.weight  float32  the same rows of the base weight
  metadata fused.<stem>.params (JSON): {file, model, unet, te, params: [<component>.<module>.weight, ...],
      rows: [0, 8], shapes: {param: the whole weight's shape}}. Only rows, because whole weights are big (one SDXL
      640x640 weight fused + base is 3.3 MB): row i of a merged LoRA / LoHa weight depends only on row i of W, so
      a test can put the base rows into a zero tensor of the whole shape, merge, and compare those rows (DoRA:
      see above).
      Params: fullsize_sd15: unet down_blocks.0.attentions.0.proj_in (1x1 conv), down_blocks.1.attentions.0
      ...attn2.to_k (768-wide context), text_encoder layers.0.self_attn.q_proj; fullsize_sd15_loha: down_blocks.0
      ...attn1.to_q, ...attn2.to_k, mid_block...attn1.to_out.0; fullsize_sd21: down_blocks.0.attentions.0.proj_in
      (Linear), up_blocks.3...attn2.to_k, text_encoder layers.22.self_attn.v_proj (in_proj rows 2048+);
      fullsize_sdxl: unet down_blocks.1.attentions.0.proj_in (input_blocks.4.1), mid_block...transformer_blocks.5
      .attn1.to_k, text_encoder layers.5.mlp.fc1, text_encoder_2 layers.30.self_attn.k_proj (in_proj rows 1280+);
      fullsize_sd15_lokr: down_blocks.0.attentions.1...attn1.to_q (lokr_w2 full), ...attn2.to_k (lokr_w2 split),
      mid_block...attn2.to_out.0; fullsize_sd15_dora: down_blocks.0.attentions.1.proj_in (1x1 conv),
      down_blocks.1.attentions.0...attn2.to_k, text_encoder layers.11.self_attn.out_proj; fullsize_sd15_peft:
      down_blocks.0.attentions.0.proj_in (1x1 conv), text_encoder layers.0.self_attn.k_proj.
  metadata also: script, git, torch, diffusers, transformers, peft, cases (names in order), fused_rows, weights,
      files.<stem> (JSON: format, dtype, modules, ranks/rank, alpha, scale(s), selection, keys, bytes, sha256;
      the embedding's name_tokens), scheduler_config.<model> (what each case's EulerDiscreteScheduler.from_config
      got), sibling_check.<model>, notes.<model> (what diffusers did with the files).

Pipelines (the siblings' diffusers-mode cases, rebuilt; checked: each reproduces its sibling's diffusers_euler
latent: sd15 to 1.1e-5 and sd21 to 1.1e-6 (make_fullsize_goldens.py runs torch's default thread count), sdxl bit
for bit)
  sd15 / sd21: make_fullsize_goldens.main's model (the same weights, converters, configs; here one component at a
      time, loaded with assign=True), mg.ZeroedAttnProcessor on UNet and VAE, StableDiffusionPipeline without
      safety checker, CLIP's real BPE vocabulary padded with <|endoftext|> (sd15) or "!" = id 0 (sd21),
      EulerDiscreteScheduler.from_config(make_fullsize_goldens.sd_scheduler_config(v)) (the single-file config
      easel assumes: PNDM's fields, steps_offset 1; v_prediction for sd21; Euler's default "linspace" spacing).
  sdxl: make_fullsize_sdxl_goldens.build_models("sdxl_base") and its StableDiffusionXLPipeline (tokenizer_2 pads
      with "!", force_zeros_for_empty_prompt, no watermark), EulerDiscreteScheduler of make_sdxl_goldens'
      SCHEDULER_CONFIG ("leading", steps_offset 1), diffusers' default attention processor.
LoRAs: pipe.load_lora_weights(LORA_DIR, weight_name=file, adapter_name="case") (the SDXL pipeline maps the sgm names
itself), make_lora_goldens.fix_alphas (every module of the file became a PEFT layer with its rank; alpha / scale
checked, corrected where diffusers chose another alpha), pipe.set_adapters at the multipliers
(make_lora_goldens.set_weights), the run, unload_lora_weights (no PEFT layer left, every touched weight's bytes
unchanged). The PEFT file goes the same way (its keys already PEFT's; no alpha: diffusers takes lora_alpha = r, scale
1, checked). LoHa, LoKr, DoRA: diffusers 0.30.3 cannot load them; the touched weights are replaced by
make_lycoris_goldens.merge's result (A1111 v1.10's arithmetic: LoHa W + m * alpha / rank * (w1_a @ w1_b) *
(w2_a @ w2_b); LoKr W + m * scale * kron(w1, w2) (scale alpha / dim, dim from lokr_w2_b, 1 where both are full);
DoRA W + m * (M * dora_scale / ||M||_col - W), M = W + alpha / rank * up @ down, the norm of each input column),
the unchanged pipeline runs, the weights are put back (checked); make_lycoris_goldens.check_conventions runs on the
LoKr and DoRA modules (Kronecker layout; a DoRA module alone at multiplier 1 leaves each input column with norm
dora_scale). SD textual inversions: as make_ti_goldens.py, pipe.load_textual_inversion(file, token=stem) per file
(tokens NAME, NAME_1, ... at the next ids from 49408, their rows the file's vectors: checked), the ids the text
encoder received checked against AUTOMATIC1111's rule (make_ti_goldens.check_ids: the name's BPE ids replaced by
the vectors' positions), unload_textual_inversion afterwards (tokenizer and table back, checked). SDXL embedding: as
make_ti_goldens.py, load_textual_inversion(clip_l, token=name, text_encoder, tokenizer) and (clip_g,
text_encoder_2, tokenizer_2): tokens NAME, NAME_1 = ids 49408, 49409 in both tokenizers (checked, with the rows),
maybe_convert_prompt turns NAME in the prompt into "NAME NAME_1"; unload_textual_inversion afterwards (tokenizers and
tables back, checked).

Cases (64x64, Euler, cfg 7; the without-run: the same seed and prompt with nothing loaded)
  sd15_lora   fullsize_sd15 at 0.8 (unet and te), 8 steps, seed 601, negative "blurry"
  sd15_loha   fullsize_sd15_loha at 1.0, 8 steps, seed 602
  sd21_lora   fullsize_sd21 at 1.0, 8 steps, seed 603
  sdxl_lora   fullsize_sdxl at 1.0, 6 steps, seed 604, negative "blurry, low quality"
  sdxl_emb    fullsize_sdxl_emb loaded, prompt "a fullsize_sdxl_emb" (the vectors at positions 2-3), negative
              "ugly", 6 steps, seed 605. (Text matters little to these random networks: two unrelated prompts give
              images 3.3 levels apart; with the name inside a longer prompt the embedding moved the image by only
              1.6 levels, so the prompt is short.)
  sd15_lokr   fullsize_sd15_lokr at 1.0, 8 steps, seed 606, negative "blurry"
  sd15_dora   fullsize_sd15_dora at 0.8 (unet and te), 8 steps, seed 607, negative "dark"
  sd15_peft   fullsize_sd15_peft at unet 1.0, text encoder 0.7, 8 steps, seed 608, negative "low quality"
  sd15_ti     fullsize_sd15_ti.pt and fullsize_sd15_neg.safetensors loaded (ids 49408-49412, 49413-49417), prompt
              "a portrait, fullsize_sd15_ti" (vectors at positions 4-8), negative "fullsize_sd15_neg, blurry"
              (positions 1-5), 8 steps, seed 609
  sd21_ti     fullsize_sd21_ti.pt loaded, prompt "a fullsize_sd21_ti" (positions 2-5; "!" padding), negative
              "ugly", 8 steps, seed 610
  Mean |image - without| (levels of 255; max in brackets), measured: sd15_lora 3.6 (23), sd15_loha 3.2 (19),
  sd21_lora 6.7 (48), sdxl_lora 6.1 (39), sdxl_emb 2.6 (16), sd15_lokr 4.6 (38), sd15_dora 4.2 (24), sd15_peft 3.6
  (25), sd15_ti 2.6 (20; without fullsize_sd15_ti only 1.7, without fullsize_sd15_neg only 2.6: checked >
  MIN_EACH_DIFF = 1), sd21_ti 4.8 (34) (checked > MIN_MEAN_DIFF = 2; saturation rises by under MAX_SAT_RISE; every
  latent finite and all pairwise different). The SD 1.5 network reacts least: GAIN 1 gave 3.1 for fullsize_sd15;
  DoRA at GAIN 2 on two attentions and text encoder layer 11 gave 1.2 (its column norms stay dora_scale whatever the
  gain: text-encoder modules moved it most); the SD 1.5 embeddings at 3 times the table's deviation gave 2.1.
  The sd15_lokr ... sd21_ti cases were added by a later run on a machine where the siblings' check gave 1.9e-5 (sd15)
  and 1.5e-6 (sd21), and where the older cases came out up to 1.7e-5 (sd15) / 1.1e-6 (sd21) apart in the latent and
  1 level in 2 / 1 pixels (the script at its previous commit gave the same there, so the environment, not the new
  cases); the older cases' tensors and sibling_check entries were kept as committed.
  Pooling quirk (sdxl_emb): text_encoder_2's published config has eos_token_id 2, so transformers 4.40 pools at
  input_ids.argmax(): the largest id, here the embedding's second token (position 3), not the end token (position
  4) that AUTOMATIC1111 / sgm pool at (their ids keep the name's own BPE ids). Pooling at the end token instead
  moves this case's latent by 2.2e-3 at most (about the C++ tests' latent tolerance) and its image by 0.01 levels;
  the golden is what diffusers does.

Alpha semantics: kohya's (scale = alpha / rank, and every module here has an alpha key); diffusers 0.30.3 kept every
rank and alpha as the files have them (uniform per component), so fix_alphas corrected nothing (notes.<model>).
"""
import collections
import contextlib
import copy
import gc
import gzip
import hashlib
import io
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import types

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_fullsize_sdxl_goldens as fsx  # noqa: E402  (first: its kd import stubs `clip` before k_diffusion)
import make_fullsize_goldens as fg  # noqa: E402  (the weight rule, SD scheduler config, pipeline tokenizer)
import make_key_lists as mk  # noqa: E402  (SD 1.5 / 2.1 published configs)
import make_lora_goldens as mlg  # noqa: E402  (Mod, kohya keys and files, fix_alphas, set_weights)
import make_lycoris_goldens as mly  # noqa: E402  (LoHa / LoKr / DoRA drawing and A1111's merge)
import make_model_goldens as mg  # noqa: E402  (git_hash, ZeroedAttnProcessor)
import make_sdxl_goldens as sx  # noqa: E402  (SDXL scheduler config, decode_as_pipeline, versions)
import make_sdxl_key_lists as kl  # noqa: E402  (meta-device builders)
import make_ti_goldens as mti  # noqa: E402  (sd-scripts' textual-inversion metadata, A1111's token rule)
import make_tokenizer_goldens as tg  # noqa: E402  (CLIP's vocabulary as vocab.json + merges.txt)
import safetensors_io  # noqa: E402

import diffusers  # noqa: E402
import peft  # noqa: E402
import transformers  # noqa: E402
from diffusers import (AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline,  # noqa: E402
                       StableDiffusionXLPipeline, UNet2DConditionModel)
from diffusers.loaders import single_file_utils as sfu  # noqa: E402
from peft import LoraConfig  # noqa: E402
from peft.tuners.tuners_utils import BaseTunerLayer  # noqa: E402
from peft.utils import get_peft_model_state_dict  # noqa: E402
from safetensors import safe_open  # noqa: E402
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer  # noqa: E402

ROOT, OUT, LORA_DIR = mlg.ROOT, mlg.OUT, mlg.LORA_DIR
GOLDEN = os.path.join(OUT, "fullsize_lora_cases.safetensors")
SCRIPT = "tools/reference/make_fullsize_lora_goldens.py"
KEYS = os.path.join(ROOT, "tests", "data", "keys")
VOCAB = os.path.join(ROOT, "data", "clip", "bpe_simple_vocab_16e6.txt.gz")
THREADS = 1
MODELS = ("sd15", "sd21", "sdxl")
MIN_MEAN_DIFF = 2.0  # levels of 255: each file must change its case's image at least this much on average
MAX_SAT_RISE = 0.05  # fraction of pixels newly at 0 or 255
MIN_EACH_DIFF = 1.0  # levels: each embedding of a case with several, against the run with all the others loaded
FUSED_ROWS = 8  # fused.* / base.* hold rows [0, FUSED_ROWS) of each weight (None: whole weights, 85 MB)

SD_SPECS = {
    "sd15": dict(keys="sd15", unet=mk.SD15_UNET, text=mk.CLIP_L, open_clip=False, v=False),
    "sd21": dict(keys="sd21", unet=mk.SD21_UNET, text=mk.OPEN_CLIP_H, open_clip=True, v=True),
}
SD_PREFIXES = {"text_encoder": "cond_stage_model.", "vae": "first_stage_model.", "unet": "model.diffusion_model."}

TE_RE = mlg.TE_RE
ATTN_RE = mlg.ATTN_RE
LOHA_RE = re.compile(r"transformer_blocks\.0\.attn[12]\.(to_q|to_k|to_v|to_out\.0)$")

# LoRA / LoHa / embedding files: model, format, seed, values.
#   unet_every: every unet_every-th attention module (ATTN_RE, named_modules order) gets a module, from the first;
#   te_layers: {text encoder: layers whose q/k/v/out_proj and fc1/fc2 all get one}.
FILES = {
    "fullsize_sd15": dict(model="sd15", format="kohya", seed=1301, gain=2.0, unet_rank=2, te_rank=2, alpha=1.0,
                          unet_every=5, te_layers={"text_encoder": (0, 5, 11)}),
    "fullsize_sd21": dict(model="sd21", format="kohya", seed=1302, gain=2.0, unet_rank=2, te_rank=2, alpha=1.0,
                          unet_every=5, te_layers={"text_encoder": (0, 11, 22)}),
    "fullsize_sdxl": dict(model="sdxl", format="kohya_ldm", seed=1303, gain=1.0, unet_rank=1, te_rank=2, alpha=1.0,
                          unet_every=7, te_layers={"text_encoder": (0, 5, 10), "text_encoder_2": (0, 15, 30, 31)}),
    "fullsize_sd15_loha": dict(model="sd15", format="loha", seed=1304, gain=3.0, rank=2, alpha=1.0,
                               attentions=("down_blocks.0.attentions.0.", "down_blocks.1.attentions.1.",
                                           "mid_block.attentions.0.", "up_blocks.3.attentions.2.")),
    "fullsize_sdxl_emb": dict(model="sdxl", format="sdxl_embedding", seed=1305, scale=1.0, vectors=2),
    "fullsize_sd15_lokr": dict(model="sd15", format="lokr", seed=1306, gain=3.0, rank=10, alpha=5.0, factor=-1,
                               attentions=("down_blocks.0.attentions.1.", "down_blocks.2.attentions.0.",
                                           "mid_block.attentions.0.", "up_blocks.2.attentions.1.",
                                           "up_blocks.3.attentions.1.")),
    "fullsize_sd15_dora": dict(model="sd15", format="dora", seed=1307, gain=4.0, rank=2, alpha=1.0,
                               attentions=("down_blocks.1.attentions.0.",),
                               convs=("down_blocks.0.attentions.1.proj_in",), te_layers=(0, 5, 11)),
    "fullsize_sd15_peft": dict(model="sd15", format="peft", seed=1308, gain=2.0, rank=2, unet_every=11,
                               te_modules=("text_model.encoder.layers.0.self_attn.q_proj",
                                           "text_model.encoder.layers.0.self_attn.k_proj",
                                           "text_model.encoder.layers.0.self_attn.v_proj",
                                           "text_model.encoder.layers.0.self_attn.out_proj",
                                           "text_model.encoder.layers.11.mlp.fc1",
                                           "text_model.encoder.layers.11.mlp.fc2")),
    "fullsize_sd15_ti": dict(model="sd15", format="a1111_pt", seed=1309, scale=6.0, vectors=5),
    "fullsize_sd15_neg": dict(model="sd15", format="emb_params", seed=1310, scale=6.0, vectors=5),
    "fullsize_sd21_ti": dict(model="sd21", format="a1111_pt", seed=1311, scale=6.0, vectors=4),
}
EXT = {"a1111_pt": ".pt"}  # file extension by format (the rest: .safetensors)
LYCORIS = ("loha", "lokr", "dora")  # formats diffusers 0.30.3 cannot load: merged by make_lycoris_goldens.merge
STEMS = {m: [s for s, f in FILES.items() if f["model"] == m] for m in MODELS}

# Weights stored fused (component.module.weight), rows [0, FUSED_ROWS).
FUSED_PARAMS = {
    "fullsize_sd15": ["unet.down_blocks.0.attentions.0.proj_in.weight",
                      "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                      "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.weight"],
    "fullsize_sd15_loha": ["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
                           "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                           "unet.mid_block.attentions.0.transformer_blocks.0.attn1.to_out.0.weight"],
    "fullsize_sd21": ["unet.down_blocks.0.attentions.0.proj_in.weight",
                      "unet.up_blocks.3.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                      "text_encoder.text_model.encoder.layers.22.self_attn.v_proj.weight"],
    "fullsize_sdxl": ["unet.down_blocks.1.attentions.0.proj_in.weight",
                      "unet.mid_block.attentions.0.transformer_blocks.5.attn1.to_k.weight",
                      "text_encoder.text_model.encoder.layers.5.mlp.fc1.weight",
                      "text_encoder_2.text_model.encoder.layers.30.self_attn.k_proj.weight"],
    "fullsize_sd15_lokr": ["unet.down_blocks.0.attentions.1.transformer_blocks.0.attn1.to_q.weight",
                           "unet.down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k.weight",
                           "unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_out.0.weight"],
    "fullsize_sd15_dora": ["unet.down_blocks.0.attentions.1.proj_in.weight",
                           "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                           "text_encoder.text_model.encoder.layers.11.self_attn.out_proj.weight"],
    "fullsize_sd15_peft": ["unet.down_blocks.0.attentions.0.proj_in.weight",
                           "text_encoder.text_model.encoder.layers.0.self_attn.k_proj.weight"],
}

# Cases: name, model, [(file, unet multiplier, te multiplier)], [embedding files], steps, seed, prompt, negative.
CASES = [
    ("sd15_lora", "sd15", [("fullsize_sd15", 0.8, 0.8)], [], 8, 601, "a photo of a red fox in the snow", "blurry"),
    ("sd15_loha", "sd15", [("fullsize_sd15_loha", 1.0, 1.0)], [], 8, 602, "a watercolor painting of a harbor", ""),
    ("sd21_lora", "sd21", [("fullsize_sd21", 1.0, 1.0)], [], 8, 603, "an old stone bridge over a river", ""),
    ("sdxl_lora", "sdxl", [("fullsize_sdxl", 1.0, 1.0)], [], 6, 604, "a cozy cabin in a pine forest",
     "blurry, low quality"),
    ("sdxl_emb", "sdxl", [], ["fullsize_sdxl_emb"], 6, 605, "a fullsize_sdxl_emb", "ugly"),
    ("sd15_lokr", "sd15", [("fullsize_sd15_lokr", 1.0, 1.0)], [], 8, 606, "a lighthouse on a rocky coast",
     "blurry"),
    ("sd15_dora", "sd15", [("fullsize_sd15_dora", 0.8, 0.8)], [], 8, 607, "a bowl of fruit on a wooden table",
     "dark"),
    ("sd15_peft", "sd15", [("fullsize_sd15_peft", 1.0, 0.7)], [], 8, 608, "a castle on a hill at sunset",
     "low quality"),
    ("sd15_ti", "sd15", [], ["fullsize_sd15_ti", "fullsize_sd15_neg"], 8, 609, "a portrait, fullsize_sd15_ti",
     "fullsize_sd15_neg, blurry"),
    ("sd21_ti", "sd21", [], ["fullsize_sd21_ti"], 8, 610, "a fullsize_sd21_ti", "ugly"),
]
CFG, SIZE = 7.0, 64
# The sibling goldens' first diffusers case, rerun on the rebuilt pipeline (same model, scheduler config, tokenizer).
SIBLINGS = {"sd15": "fullsize_sd15_cases.safetensors", "sd21": "fullsize_sd21_cases.safetensors",
            "sdxl": "fullsize_sdxl_base_cases.safetensors"}


def peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def fingerprint(t):
    return hashlib.sha256(t.detach().contiguous().numpy().tobytes()).hexdigest()


def tokenizers(tmp):
    """CLIP's real BPE vocabulary: (tokenizer padding with <|endoftext|>, tokenizer padding with "!" = id 0)."""
    files = tg.vocab_from_gz(VOCAB, tmp)
    eos, bang = CLIPTokenizer(*files), CLIPTokenizer(*files)
    fg.pipeline_tokenizer(eos, None)
    fg.pipeline_tokenizer(bang, 0)
    return eos, bang


# ---------------------------------------------------------------------------------------------------------
# Models

def meta_components(model):
    """{component: model on the meta device} (shapes and names only): what the files are drawn from."""
    if model == "sdxl":
        return {"unet": kl.build_diffusers(UNet2DConditionModel, kl.SDXL_BASE_UNET),
                "text_encoder": kl.build_text(CLIPTextModel, kl.CLIP_L),
                "text_encoder_2": kl.build_text(CLIPTextModelWithProjection, kl.OPEN_CLIP_BIGG)}
    spec = SD_SPECS[model]
    return {"unet": kl.build_diffusers(UNet2DConditionModel, spec["unet"]),
            "text_encoder": kl.build_text(CLIPTextModel, spec["text"])}


def build_sd(model):
    """SD 1.5 / 2.1 as make_fullsize_goldens.main builds them (the same weights, converters and configs), one
    component generated, converted and loaded (assign=True into a meta-device model) at a time to keep the peak low.
    Returns {component: fp32 model}."""
    spec = SD_SPECS[model]
    with gzip.open(os.path.join(KEYS, f"{spec['keys']}.ldm.json.gz"), "rt") as f:
        names = json.load(f)["tensors"]
    models = {}
    for comp in ("text_encoder", "vae", "unet"):
        t0 = time.time()
        ck = {n: fg.weight(i, n, s) for i, (n, s, _) in enumerate(names) if n.startswith(SD_PREFIXES[comp])}
        with contextlib.redirect_stdout(io.StringIO()):
            if comp == "text_encoder":
                m = kl.build_text(CLIPTextModel, spec["text"])
                sd = (sfu.convert_open_clip_checkpoint(m, ck) if spec["open_clip"]
                      else sfu.convert_ldm_clip_checkpoint(ck))
            elif comp == "vae":
                m = kl.build_diffusers(AutoencoderKL, mk.SD_VAE)
                sd = sfu.convert_ldm_vae_checkpoint(ck, dict(mk.SD_VAE))
            else:
                m = kl.build_diffusers(UNet2DConditionModel, spec["unet"])
                sd = sfu.convert_ldm_unet_checkpoint(ck, dict(spec["unet"]))
        sd.pop("text_model.embeddings.position_ids", None)
        missing, unexpected = m.load_state_dict({k: v.contiguous() for k, v in sd.items()}, strict=False,
                                                assign=True)
        assert not missing, (comp, missing[:5])
        assert all(k.startswith("text_projection") for k in unexpected), (comp, unexpected[:5])
        if comp == "text_encoder":
            m.text_model.embeddings.register_buffer("position_ids", torch.arange(77).expand((1, -1)),
                                                    persistent=False)
        left = [n for n, t in list(m.named_parameters()) + list(m.named_buffers()) if t.is_meta]
        assert not left, (comp, left[:5])
        models[comp] = m.eval()
        print(f"{model} {comp}: {len(ck)} tensors -> {len(sd)} in {time.time() - t0:.0f} s; peak RSS "
              f"{peak_rss_gb():.1f} GB", flush=True)
        del ck, sd, m
        gc.collect()
    models["unet"].set_attn_processor(mg.ZeroedAttnProcessor())  # as make_fullsize_goldens.py
    models["vae"].set_attn_processor(mg.ZeroedAttnProcessor())
    return models


def build_pipeline(model, tmp):
    """(pipeline, scheduler config) as the siblings' diffusers-mode cases build it."""
    eos_tok, bang_tok = tokenizers(tmp)
    if model == "sdxl":
        models = fsx.build_models("sdxl_base")
        sched_cfg = dict(sx.SCHEDULER_CONFIG)
        pipe = StableDiffusionXLPipeline(
            vae=models["vae"], text_encoder=models["text_encoder"], text_encoder_2=models["text_encoder_2"],
            tokenizer=eos_tok, tokenizer_2=bang_tok, unet=models["unet"],
            scheduler=EulerDiscreteScheduler.from_config(sched_cfg), force_zeros_for_empty_prompt=True,
            add_watermarker=False)
        sched_cfg = fsx.scheduler_config(pipe)  # every key, checked equal to the tiny SDXL folder's
    else:
        spec = SD_SPECS[model]
        models = build_sd(model)
        sched_cfg = fg.sd_scheduler_config(spec["v"])
        tok = bang_tok if spec["open_clip"] else eos_tok
        pipe = StableDiffusionPipeline(vae=models["vae"], text_encoder=models["text_encoder"], tokenizer=tok,
                                       unet=models["unet"], scheduler=EulerDiscreteScheduler.from_config(sched_cfg),
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe, sched_cfg


def encoders(pipe):
    out = [("text_encoder", pipe.tokenizer, pipe.text_encoder)]
    if isinstance(pipe, StableDiffusionXLPipeline):
        out.append(("text_encoder_2", pipe.tokenizer_2, pipe.text_encoder_2))
    return out


# ---------------------------------------------------------------------------------------------------------
# Files

def kohya_mods(stem, comps):
    spec = FILES[stem]
    gen = torch.Generator().manual_seed(spec["seed"])
    mods = []
    for i, (name, m) in enumerate(mlg.select(comps["unet"], ATTN_RE)):
        if i % spec["unet_every"] == 0:
            mods.append(mlg.Mod("unet", name, m, spec["unet_rank"], spec["alpha"], gen, spec["gain"], torch.float16))
    for comp, layers in spec["te_layers"].items():
        for name, m in mlg.select(comps[comp], TE_RE):
            if int(name.split(".")[3]) in layers:
                mods.append(mlg.Mod(comp, name, m, spec["te_rank"], spec["alpha"], gen, spec["gain"], torch.float16))
    return mods


def write_kohya(stem, mods, comps):
    spec = FILES[stem]
    model = spec["model"]
    ldm = spec["format"] == "kohya_ldm"
    sd = mlg.kohya_state(mods, comps["unet"], "sdxl" if model == "sdxl" else "sd1", ldm, torch.float16)
    extra = {"ss_v2": "True", "ss_base_model_version": "sd_v2"} if model == "sd21" else {}
    meta = mlg.kohya_metadata(stem, mods, "sdxl" if model == "sdxl" else "sd1", extra)
    path = os.path.join(LORA_DIR, f"{stem}.safetensors")
    safetensors_io.save_file(sd, path, dict(sorted(meta.items())))
    return path, sd


def file_name(stem):
    return stem + EXT.get(FILES[stem]["format"], ".safetensors")


def real_weights(model, comps, wanted):
    """{(component, module): float32 weight} of the full-size checkpoint for the modules in `wanted`, from the key
    list alone (make_fullsize_goldens.weight of the LDM tensor; SD 1.5's converters copy these unchanged, checked
    against the pipeline in run_model): what DoRA's dora_scale is drawn from."""
    assert model == "sd15", model
    with gzip.open(os.path.join(KEYS, f"{SD_SPECS[model]['keys']}.ldm.json.gz"), "rt") as f:
        index = {n: (i, s) for i, (n, s, _) in enumerate(json.load(f)["tensors"])}
    out = {}
    for comp, name in wanted:
        ldm = ("model.diffusion_model." + mlg.ldm_name(name, comps["unet"]) if comp == "unet"
               else "cond_stage_model.transformer." + name) + ".weight"
        i, shape = index[ldm]
        out[(comp, name)] = fg.weight(i, ldm, shape)
        assert out[(comp, name)].shape == comps[comp].get_submodule(name).weight.shape, (comp, name)
    return out


def lycoris_mods(stem, comps):
    """LoHa / LoKr / DoRA modules drawn as make_lycoris_goldens draws its tiny files (draw_loha, lokr_mod,
    draw_lora + dora_scale), in named_modules order, unet then text encoder."""
    spec = FILES[stem]
    d = mly.Drawer(dict(seed=spec["seed"], dtype=torch.float16, gain=spec["gain"]))
    mods = []
    if spec["format"] == "loha":
        for name, m in mlg.select(comps["unet"], LOHA_RE):
            if name.startswith(spec["attentions"]):
                mods.append(mly.LyMod("unet", name, m, "loha", mly.draw_loha(d, m, spec["rank"], False),
                                      spec["alpha"]))
    elif spec["format"] == "lokr":
        for name, m in mlg.select(comps["unet"], LOHA_RE):
            if name.startswith(spec["attentions"]):
                mods.append(mly.lokr_mod("unet", name, m, d, spec, decompose_both=False))
    else:
        pairs = [("unet", n, m) for n, m in mlg.select(comps["unet"], re.compile(".*"))
                 if (LOHA_RE.search(n) and n.startswith(spec["attentions"])) or n in spec["convs"]]
        pairs += [("text_encoder", n, m) for n, m in mlg.select(comps["text_encoder"], mly.TE_ATTN_RE)
                  if int(n.split(".")[3]) in spec["te_layers"]]
        base = real_weights(spec["model"], comps, [(c, n) for c, n, _ in pairs])
        for comp, n, m in pairs:
            t = mly.draw_lora(d, m, spec["rank"])
            t["dora_scale"] = mly.dora_scale(d, types.SimpleNamespace(weight=base[(comp, n)]))
            mod = mly.LyMod(comp, n, m, "dora", t, spec["alpha"])
            mod.base = base[(comp, n)]  # the weight dora_scale was drawn from (checked against the pipeline's)
            mods.append(mod)
    return mods


def write_lycoris(stem, mods, comps):
    spec = FILES[stem]
    sd = {}
    for mod in mods:
        key = mlg.kohya_key(mod, comps["unet"], "sd1", False)
        for suffix, v in mod.t.items():
            sd[f"{key}.{suffix}"] = v.to(torch.float16).contiguous()
        sd[f"{key}.alpha"] = torch.tensor(mod.alpha, dtype=torch.float16)
    args = {"algo": "lora" if spec["format"] == "dora" else spec["format"], "conv_dim": str(spec["rank"]),
            "conv_alpha": str(spec["alpha"])}
    if "factor" in spec:
        args["factor"] = str(spec["factor"])
    if spec["format"] == "dora":
        args["dora_wd"] = "True"
    meta = {"ss_network_module": "lycoris.kohya", "ss_network_dim": str(spec["rank"]),
            "ss_network_alpha": str(spec["alpha"]), "ss_network_args": json.dumps(args, sort_keys=True),
            "ss_base_model_version": "sd_v1", "ss_output_name": stem}
    path = os.path.join(LORA_DIR, f"{stem}.safetensors")
    safetensors_io.save_file(sd, path, dict(sorted(meta.items())))
    back = mly.read_back(path)
    assert set(back) == set(sd) and all(torch.equal(back[k], v) for k, v in sd.items()), stem
    return path, sd


def write_peft(stem, comps):
    """A diffusers/PEFT LoRA as make_lora_goldens.make_peft writes one: LoraConfig(r, lora_alpha=r,
    init_lora_weights=False, target_modules=the selected modules' full names) added with add_adapter to copies of
    the (meta-device) models, get_peft_model_state_dict's keys and shapes filled with values drawn as
    make_lora_goldens.Mod draws them (named_modules order, down then up), written by
    StableDiffusionPipeline.save_lora_weights (keys prefixed unet. / text_encoder., metadata {"format": "pt"})."""
    spec = FILES[stem]
    gen = torch.Generator().manual_seed(spec["seed"])
    rank = spec["rank"]
    unet_names = [n for n, _ in mlg.select(comps["unet"], ATTN_RE)]
    targets = {"unet": unet_names[::spec["unet_every"]], "text_encoder": list(spec["te_modules"])}
    mods, layers = [], {}
    for comp, names in targets.items():
        model = copy.deepcopy(comps[comp])
        model.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False, target_modules=names))
        keys = get_peft_model_state_dict(model, save_embedding_layers=False)
        drawn = {}
        for name, m in model.named_modules():
            if isinstance(m, BaseTunerLayer):
                mod = mlg.Mod(comp, name, m.get_base_layer(), rank, None, gen, spec["gain"], torch.float16)
                drawn[f"{name}.lora_A.weight"], drawn[f"{name}.lora_B.weight"] = mod.down, mod.up
                mods.append(mod)
        assert sorted(m.name for m in mods if m.comp == comp) == sorted(names), comp
        assert set(keys) == set(drawn) and all(keys[k].shape == drawn[k].shape for k in keys), comp
        layers[comp] = {k: drawn[k].to(torch.float16).contiguous() for k in keys}
        del model
    save = lambda weights, filename: safetensors_io.save_file(weights, filename, {"format": "pt"})  # noqa: E731
    StableDiffusionPipeline.save_lora_weights(LORA_DIR, weight_name=f"{stem}.safetensors", save_function=save,
                                              safe_serialization=True, unet_lora_layers=layers["unet"],
                                              text_encoder_lora_layers=layers["text_encoder"])
    path = os.path.join(LORA_DIR, f"{stem}.safetensors")
    sd = {k: torch.from_numpy(v) for k, v in safetensors_io.load_file(path).items()}
    want = {f"{c}.{k}": v for c, lay in layers.items() for k, v in lay.items()}
    assert set(sd) == set(want) and all(torch.equal(sd[k].float(), want[k].float()) for k in sd), stem
    return mods, path, sd


def write_ti(stem, comps):
    """An SD 1.x / 2.x textual inversion: vectors randn * scale / sqrt(width) (width: the text encoder's, 768 or
    1024), as AUTOMATIC1111's .pt (make_ti_goldens' layout: torch.save of {string_to_token, string_to_param {"*":
    float32 [n, width], requires_grad}, name, step, sd_checkpoint, sd_checkpoint_name}) or kohya's .safetensors
    (one F16 tensor "emb_params", sd-scripts' model-spec metadata). Returns (path, {key: float32 vectors})."""
    spec = FILES[stem]
    gen = torch.Generator().manual_seed(spec["seed"])
    width = comps["text_encoder"].get_input_embeddings().weight.shape[1]
    vec = torch.randn((spec["vectors"], width), generator=gen) * (spec["scale"] / width ** 0.5)
    path = os.path.join(LORA_DIR, file_name(stem))
    if spec["format"] == "a1111_pt":
        torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": vec.clone().requires_grad_(True)},
                    "name": stem, "step": 500, "sd_checkpoint": "5c3e9a1f7b", "sd_checkpoint_name": spec["model"]},
                   path)
        back = torch.load(path, weights_only=True)["string_to_param"]["*"]
        assert torch.equal(back, vec), stem
        return path, {"string_to_param.*": vec}
    vec = vec.half()
    arch = {"sd15": "stable-diffusion-v1", "sd21": "stable-diffusion-v2-768-v"}[spec["model"]]
    meta = dict(mti.KOHYA_TI_META, **{"modelspec.architecture": f"{arch}/textual-inversion", "modelspec.title": stem,
                                       "modelspec.resolution": "512x512"})
    safetensors_io.save_file({"emb_params": vec}, path, dict(sorted(meta.items())))
    return path, {"emb_params": vec.float()}


def embedding_vectors(stem, comps):
    """{"clip_l": [n, 768], "clip_g": [n, 1280]} float16: randn * scale / sqrt(width), the weight rule's standard
    deviation of the token-embedding tables (make_fullsize_goldens.weight: randn / sqrt(width))."""
    spec = FILES[stem]
    gen = torch.Generator().manual_seed(spec["seed"])
    out = {}
    for key, comp in (("clip_l", "text_encoder"), ("clip_g", "text_encoder_2")):
        width = comps[comp].get_input_embeddings().weight.shape[1]
        out[key] = (torch.randn((spec["vectors"], width), generator=gen) * (spec["scale"] / width ** 0.5)).half()
    return out


def write_embedding(stem, vecs):
    meta = dict(mti.KOHYA_TI_META, **{"modelspec.architecture": "stable-diffusion-xl-v1-base/textual-inversion",
                                       "modelspec.title": stem, "modelspec.resolution": "1024x1024"})
    path = os.path.join(LORA_DIR, f"{stem}.safetensors")
    safetensors_io.save_file(vecs, path, dict(sorted(meta.items())))
    return path, vecs


def write_files(model):
    """Draws and writes the model's files from meta-device models (the values depend on shapes only).
    Returns ({stem: mods or vectors}, {stem: info})."""
    os.makedirs(LORA_DIR, exist_ok=True)
    comps = meta_components(model)
    drawn, infos = {}, {}
    for stem in STEMS[model]:
        spec = FILES[stem]
        if spec["format"].startswith("kohya"):
            mods = kohya_mods(stem, comps)
            path, sd = write_kohya(stem, mods, comps)
            ranks = {c: sorted({m.rank for m in mods if m.comp == c}) for c in dict.fromkeys(m.comp for m in mods)}
            info = dict(format=spec["format"], dtype="float16", modules=len(mods), ranks=ranks, alpha=spec["alpha"],
                        scales={c: [spec["alpha"] / r for r in rs] for c, rs in ranks.items()},
                        selection=dict(unet_every=spec["unet_every"], te_layers=spec["te_layers"]))
        elif spec["format"] in LYCORIS:
            mods = lycoris_mods(stem, comps)
            path, sd = write_lycoris(stem, mods, comps)
            fmt = spec["format"]
            info = dict(format="lycoris_" + fmt, dtype="float16", modules=len(mods), rank=spec["rank"],
                        alpha=spec["alpha"])
            if fmt == "loha":
                info.update(scale=spec["alpha"] / spec["rank"],
                            selection=dict(attentions=spec["attentions"], modules="transformer_blocks.0 attn1/attn2 "
                                                                                  "to_q, to_k, to_v, to_out.0"))
            elif fmt == "lokr":
                info.update(factor=spec["factor"], scales=dict(sorted(collections.Counter(
                                str(m.scale) for m in mods).items())),
                            kinds=dict(sorted(collections.Counter(
                                "+".join(sorted(m.t)) for m in mods).items())),
                            selection=dict(attentions=spec["attentions"], modules="transformer_blocks.0 attn1/attn2 "
                                                                                  "to_q, to_k, to_v, to_out.0"))
            else:
                info.update(scale=spec["alpha"] / spec["rank"], dora_spread=mly.DORA_SPREAD,
                            selection=dict(attentions=spec["attentions"], convs=spec["convs"],
                                           te_layers=spec["te_layers"]))
        elif spec["format"] == "peft":
            mods, path, sd = write_peft(stem, comps)
            info = dict(format="peft", dtype="float16", modules=len(mods), rank=spec["rank"], alpha=None, scale=1.0,
                        selection=dict(unet_every=spec["unet_every"], te_modules=spec["te_modules"]))
        elif spec["format"] == "sdxl_embedding":
            mods = embedding_vectors(stem, comps)
            path, sd = write_embedding(stem, mods)
            info = dict(format="sdxl_clip_l_clip_g", dtype="float16", vectors=FILES[stem]["vectors"])
        else:
            path, mods = write_ti(stem, comps)
            sd = mods
            info = dict(format=spec["format"], dtype="float32" if spec["format"] == "a1111_pt" else "float16",
                        vectors=spec["vectors"], width=next(iter(mods.values())).shape[1], scale=spec["scale"])
        drawn[stem] = mods
        info.update(keys=len(sd), bytes=os.path.getsize(path), sha256=sha256(path))
        infos[stem] = info
        print(f"{os.path.relpath(path, ROOT)}: {info.get('modules', '-')} modules, {len(sd)} tensors, "
              f"{info['bytes']} bytes, sha256 {info['sha256']}", flush=True)
        kinds = {}  # one example module per kind (prefix and module type), with its tensors
        def module_of(k):  # PEFT keys: unet.<module path>.lora_A.weight
            return k.rsplit(".lora_", 1)[0] if spec["format"] == "peft" else k.split(".", 1)[0]
        for k in sorted(sd):
            module = module_of(k)
            kind = re.sub(r"[_.]\d+", "_N", module.replace("to_out_0", "to_out").replace("ff_net_0_proj", "ff_net0proj")
                          .replace("to_out.0", "to_out").replace("ff.net.0.proj", "ff_net0proj"))
            kinds.setdefault(kind, module)
        for _, module in sorted(kinds.items()):
            parts = [f"{k[len(module) + 1:] if '.' in k else k} {list(sd[k].shape)}" for k in sorted(sd)
                     if module_of(k) == module]
            print(f"    {module}: {', '.join(parts)}")
    return drawn, infos


# ---------------------------------------------------------------------------------------------------------
# Runs

def run(pipe, model, sched_cfg, steps, seed, prompt, negative):
    """The pipeline's latent and the uint8 [1, 3, H, W] image, decoded as the siblings decode."""
    pipe.scheduler = EulerDiscreteScheduler.from_config(sched_cfg)
    with torch.no_grad():
        lat = pipe(prompt, negative_prompt=negative, height=SIZE, width=SIZE, num_inference_steps=steps,
                   guidance_scale=CFG, generator=torch.Generator("cpu").manual_seed(seed), output_type="latent").images
        if model == "sdxl":
            img = sx.decode_as_pipeline(pipe, lat).permute(2, 0, 1)[None]
        else:
            dec = pipe.vae.decode(lat / pipe.vae.config.scaling_factor).sample
            img = ((dec / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    assert torch.isfinite(lat).all(), prompt
    return lat.contiguous(), img.contiguous()


def check_sibling(pipe, model, sched_cfg):
    """The rebuilt pipeline reproduces the sibling full-size goldens' diffusers_euler latent."""
    path = os.path.join(OUT, SIBLINGS[model])
    with safe_open(path, "pt") as f:
        want = f.get_tensor("diffusers_euler.latent")
        p = json.loads(f.metadata()["diffusers_euler.params"])
        sib_cfg = json.loads(f.metadata()["scheduler_config"])
    assert sib_cfg == sched_cfg, (model, "scheduler config differs from the sibling's")
    pipe.scheduler = EulerDiscreteScheduler.from_config(sched_cfg)
    with torch.no_grad():
        kw = dict(prompt_2=p.get("prompt_2"), negative_prompt_2=p.get("negative_2")) if model == "sdxl" else {}
        lat = pipe(p["prompt"], negative_prompt=p["negative"], height=p.get("height", 64), width=p.get("width", 64),
                   num_inference_steps=p["steps"], guidance_scale=p["cfg"],
                   generator=torch.Generator("cpu").manual_seed(p["seed"]), output_type="latent", **kw).images
    err = (lat - want).abs().max().item()
    print(f"{model}: sibling {SIBLINGS[model]} diffusers_euler reproduced, max |latent diff| {err:.2e}", flush=True)
    assert err < 1e-4, err
    return err


def lora_layer(pipe, comp, name):
    m = mlg.components(pipe)[comp].get_submodule(name)
    assert isinstance(m, BaseTunerLayer), (comp, name)
    return m


def fused_lora_params(pipe, stem, adapter, mods, unet_w, te_w):
    """{param: fused weight} for FUSED_PARAMS[stem] as diffusers' fuse_lora makes it (peft's merge: W +
    get_delta_weight), checked against W + multiplier * alpha / rank * up @ down and against the layer's own merge."""
    out = {}
    by_name = {f"{m.comp}.{m.name}.weight": m for m in mods}
    for p in FUSED_PARAMS[stem]:
        mod = by_name[p]
        layer = lora_layer(pipe, mod.comp, mod.name)
        w = layer.get_base_layer().weight
        saved = w.detach().clone()
        with torch.no_grad():
            fused = saved + layer.get_delta_weight(adapter)
        mult = unet_w if mod.comp == "unet" else te_w
        ref = saved + mult * mod.scale * mod.delta()
        err = (fused - ref).abs().max().item()
        assert err <= 1e-5 * ref.abs().max().item(), (stem, p, err)
        layer.merge(adapter_names=[adapter])  # what fuse_lora does per layer
        assert torch.equal(w.detach(), fused), (stem, p, "peft merge differs")
        layer.unmerge()
        with torch.no_grad():
            w.copy_(saved)
        out[p] = fused
    return out


def lycoris_weights(pipe, mods, unet_w, te_w):
    """({comp: {param: base weight}}, {comp: {param: merged weight}}) of every LoHa / LoKr / DoRA module, A1111's
    arithmetic (make_lycoris_goldens.merge)."""
    weights = {}
    for mod in mods:
        weights.setdefault(mod.comp, {})[mod.name + ".weight"] = \
            mlg.components(pipe)[mod.comp].get_submodule(mod.name).weight.detach().clone()
    merged = {c: dict(sd) for c, sd in weights.items()}
    mly.merge(mods, merged, unet_w, te_w)
    return weights, merged


def lycoris_fused(stem, mods, base_w, merged, unet_w, te_w):
    """{param: merged weight} of FUSED_PARAMS[stem]. LoHa, LoKr: the merge above (row i of it depends on row i of W
    alone). DoRA: a merged row depends on every row of W (the input-column norms), so the rows stored are those of
    the same merge of W' = W's rows [0, FUSED_ROWS) with every other row zero: what a test holding only the stored
    base rows rebuilds (the case's run uses the real merge)."""
    by_param = {f"{m.comp}.{m.name}.weight": m for m in mods}
    out = {}
    for p in FUSED_PARAMS[stem]:
        comp, k = p.split(".", 1)
        if FILES[stem]["format"] != "dora" or FUSED_ROWS is None:
            out[p] = merged[comp][k]
            continue
        w = torch.zeros_like(base_w[comp][k])
        w[:FUSED_ROWS] = base_w[comp][k][:FUSED_ROWS]
        part = {comp: {k: w}}
        mly.merge([by_param[p]], part, unet_w, te_w)
        out[p] = part[comp][k]
        rel = (out[p][:FUSED_ROWS] - merged[comp][k][:FUSED_ROWS]).abs().mean() / \
            (merged[comp][k][:FUSED_ROWS] - base_w[comp][k][:FUSED_ROWS]).abs().mean()
        print(f"    {stem} {p}: rows [0, {FUSED_ROWS}) merged from W' vs from W: mean |diff| / mean |delta| = "
              f"{rel.item():.3f}")
    return out


def check_dora(stem, mods, base_w, unet_w, te_w):
    """dora_scale was drawn from the pipeline's own weights; a module alone at multiplier 1 leaves each input
    column of W with norm dora_scale (make_lycoris_goldens.check_conventions); the fused params' merge differs
    clearly from A1111 v1.9's order (alpha / dim and the multiplier both outside: make_lycoris_goldens
    .check_dora_order) and from the multiplier taken inside the decomposition."""
    for mod in mods:
        assert torch.equal(mod.base, base_w[mod.comp][mod.name + ".weight"]), (stem, mod.comp, mod.name)
    mly.check_conventions({stem: mods}, base_w)
    for mod in mods:
        p = f"{mod.comp}.{mod.name}.weight"
        if p not in FUSED_PARAMS[stem]:
            continue
        m = te_w if mod.comp.startswith("text_encoder") else unet_w
        w = base_w[mod.comp][mod.name + ".weight"]
        got = {mod.comp: {mod.name + ".weight": w}}
        mly.merge([mod], got, unet_w, te_w)
        got = got[mod.comp][mod.name + ".weight"]

        def wd(merged):
            n_in = merged.shape[1]
            norm = merged.transpose(0, 1).reshape(n_in, -1).norm(dim=1).reshape(1, n_in, *[1] * (w.dim() - 2))
            return merged * (mod.t["dora_scale"] / norm)
        others = {"v1.9": w + (wd(w + mod.delta()) - w) * mod.scale * m,
                  "multiplier inside": wd(w + mod.delta() * mod.scale * m)}
        for label, other in others.items():
            rel = (got - other).abs().mean().item() / (got - w).abs().mean().item()
            print(f"    {stem} {p}: mean |v1.10 - {label}| / mean |v1.10 delta| = {rel:.3f}")
            assert rel > 0.05, (stem, p, label)


def set_module_weights(pipe, weights):
    with torch.no_grad():
        for comp, sd in weights.items():
            for k, v in sd.items():
                mlg.components(pipe)[comp].get_submodule(k[:-len(".weight")]).weight.copy_(v)


def load_embedding(pipe, stem):
    sd = safetensors_io.load_file(os.path.join(LORA_DIR, f"{stem}.safetensors"))
    sd = {k: torch.from_numpy(v) for k, v in sd.items()}
    pipe.load_textual_inversion(sd["clip_l"], token=stem, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer)
    pipe.load_textual_inversion(sd["clip_g"], token=stem, text_encoder=pipe.text_encoder_2,
                                tokenizer=pipe.tokenizer_2)
    for (label, tok, te), key in zip(encoders(pipe), ("clip_l", "clip_g")):
        names = [stem] + [f"{stem}_{i}" for i in range(1, sd[key].shape[0])]
        ids = tok.convert_tokens_to_ids(names)
        assert ids == list(range(49408, 49408 + len(names))), (label, ids)
        assert torch.equal(te.get_input_embeddings().weight[ids].detach(), sd[key].float()), label


def load_sd_embeddings(pipe, stems, drawn):
    """SD 1.x / 2.x: load_textual_inversion(file, token=stem) as make_ti_goldens loads its files; checks that the
    new tokens NAME, NAME_1, ... got the next ids and the file's vectors as their rows."""
    tok, te = pipe.tokenizer, pipe.text_encoder
    for stem in stems:
        first = len(tok)
        pipe.load_textual_inversion(os.path.join(LORA_DIR, file_name(stem)), token=stem)
        vec = next(iter(drawn[stem].values()))
        names = [stem] + [f"{stem}_{i}" for i in range(1, vec.shape[0])]
        ids = tok.convert_tokens_to_ids(names)
        assert ids == list(range(first, first + len(names))) and len(tok) == first + len(names), (stem, ids)
        assert torch.equal(te.get_input_embeddings().weight[ids].detach(), vec), stem


def unload_embeddings(pipe, snap):
    for (label, tok, te), (n, fp) in zip(encoders(pipe), snap):
        pipe.unload_textual_inversion(tokenizer=tok, text_encoder=te)
        assert len(tok) == n and fingerprint(te.get_input_embeddings().weight) == fp, label


class IdsRecorder:
    def __init__(self):
        self.seen = []

    def __call__(self, module, args, kwargs):
        self.seen.append((args[0] if args else kwargs["input_ids"]).clone())


def embedding_ids(pipe, run_fn):
    """Runs run_fn with the text encoders' input ids recorded: [(prompt ids, negative ids)] per encoder."""
    recs = [IdsRecorder() for _ in encoders(pipe)]
    handles = [te.register_forward_pre_hook(r, with_kwargs=True) for (_, _, te), r in zip(encoders(pipe), recs)]
    try:
        result = run_fn()
    finally:
        for h in handles:
            h.remove()
    return result, [(r.seen[0][0].tolist(), r.seen[1][0].tolist()) for r in recs]


# ---------------------------------------------------------------------------------------------------------
# The cases file (shared by the three models: a run replaces its own model's entries)

def owner(key):
    """The model an entry of the cases file belongs to."""
    head, rest = key.split(".", 1) if "." in key else (key, "")
    if head in ("fused", "files"):
        return FILES[rest.split(".")[0]]["model"]
    if head in ("base", "scheduler_config", "notes", "sibling_check"):
        return rest.split(".")[0]
    return head.split("_")[0] if head.split("_")[0] in MODELS else None


def save_cases(model, tensors, meta):
    old_t, old_m = {}, {}
    if os.path.exists(GOLDEN):
        with safe_open(GOLDEN, "pt") as f:
            old_m = dict(f.metadata())
            old_t = {k: f.get_tensor(k) for k in f.keys() if owner(k) not in (model, None)}
        old_m = {k: v for k, v in old_m.items() if owner(k) not in (model, None)}
    tensors = dict(old_t, **tensors)
    meta = dict(old_m, **meta)
    names = [c[0] for c in CASES if f"{c[0]}.latent" in tensors]
    meta.update({"script": SCRIPT, "git": mg.git_hash(), "torch": torch.__version__,
                 "diffusers": diffusers.__version__, "transformers": transformers.__version__,
                 "peft": peft.__version__, "cases": json.dumps(names), "fused_rows": str(FUSED_ROWS),
                 "weights": "make_fullsize_goldens.weight(i, name, shape) over tests/data/keys/<model>.ldm.json.gz "
                            "(sdxl: sdxl_base), fp16-rounded, used in fp32"})
    for k, v in tensors.items():
        if v.is_floating_point():
            assert v.dtype == torch.float32 and torch.isfinite(v).all(), k
    safetensors_io.save_file({k: v.detach().clone().contiguous() for k, v in sorted(tensors.items())}, GOLDEN,
                             dict(sorted(meta.items())))
    print(f"wrote {os.path.relpath(GOLDEN, ROOT)}: {len(tensors)} tensors, {os.path.getsize(GOLDEN)} bytes "
          f"(cases {names})", flush=True)


def rows(t):
    return t if FUSED_ROWS is None else t[:FUSED_ROWS]


# ---------------------------------------------------------------------------------------------------------

def run_model(model):
    torch.set_num_threads(THREADS)
    diffusers.utils.logging.disable_progress_bar()
    start = time.time()
    vocab_dir = tempfile.mkdtemp()
    tok, _ = tokenizers(vocab_dir)
    vocab = tok.get_vocab()
    cases = [c for c in CASES if c[1] == model]
    fsx.check_prompts([dict(name=c[0], prompt=" ".join(w for w in c[6].replace(",", " ").split() if w not in FILES),
                            negative=" ".join(w for w in c[7].replace(",", " ").split() if w not in FILES))
                       for c in cases], vocab)

    # 1. Files (from meta-device models: shapes only).
    drawn, infos = write_files(model)
    for stem in STEMS[model]:
        if FILES[stem]["format"] in ("sdxl_embedding", "a1111_pt", "emb_params"):
            ids = tok(stem, add_special_tokens=False).input_ids
            print(f"    name {stem!r} -> {len(ids)} tokens {tok.convert_ids_to_tokens(ids)}")
            assert len(ids) > 1, stem
            infos[stem]["name_tokens"] = tok.convert_ids_to_tokens(ids)
    print(f"files written in {time.time() - start:.0f} s", flush=True)

    # 2. The pipeline, checked against the sibling goldens.
    pipe, sched_cfg = build_pipeline(model, vocab_dir)
    print(f"{model}: pipeline built in {time.time() - start:.0f} s; peak RSS {peak_rss_gb():.1f} GB", flush=True)
    sibling_err = check_sibling(pipe, model, sched_cfg)
    processors = {type(p).__name__ for p in pipe.unet.attn_processors.values()}

    tensors, notes = {}, []
    meta = {f"scheduler_config.{model}": json.dumps(sched_cfg),
            f"sibling_check.{model}": json.dumps(dict(file=SIBLINGS[model], case="diffusers_euler",
                                                      max_abs_latent_diff=sibling_err))}
    for stem, info in infos.items():
        meta[f"files.{stem}"] = json.dumps(info)
    latents = {}
    for name, _, loras, embs, steps, seed, prompt, negative in cases:
        t0 = time.time()
        extra = {}
        fmt = FILES[loras[0][0]]["format"] if loras else None
        if fmt and (fmt.startswith("kohya") or fmt == "peft"):
            (stem, uw, tw), = loras
            mods = drawn[stem]
            prints = {(m.comp, m.name): fingerprint(mlg.components(pipe)[m.comp].get_submodule(m.name).weight)
                      for m in mods}
            pipe.load_lora_weights(LORA_DIR, weight_name=f"{stem}.safetensors", adapter_name="case")
            before = len(notes)
            mlg.fix_alphas(pipe, "case", mods, notes, stem)
            layers = mlg.peft_layers(pipe, "case")
            per = collections.Counter(c for c, _ in layers)
            if len(notes) == before:
                notes.append(f"{stem}: load_lora_weights made {len(layers)} PEFT layers {dict(per)} (every module "
                             f"of the file), each with the file's rank and alpha: nothing to correct")
            mlg.set_weights(pipe, ["case"], [(stem, uw, tw)])
            fused = fused_lora_params(pipe, stem, "case", mods, uw, tw)
            assert {type(p).__name__ for p in pipe.unet.attn_processors.values()} == processors
            lat, img = run(pipe, model, sched_cfg, steps, seed, prompt, negative)
            pipe.unload_lora_weights()
            for c, m in mlg.components(pipe).items():
                assert not any(isinstance(x, BaseTunerLayer) for x in m.modules()), c
            for (c, n), fp in prints.items():
                assert fingerprint(mlg.components(pipe)[c].get_submodule(n).weight) == fp, (c, n)
        elif fmt in LYCORIS:
            (stem, uw, tw), = loras
            base_w, merged = lycoris_weights(pipe, drawn[stem], uw, tw)
            if fmt == "dora":
                check_dora(stem, drawn[stem], base_w, uw, tw)
            elif fmt == "lokr":
                mly.check_conventions({stem: drawn[stem]}, base_w)
            fused = lycoris_fused(stem, drawn[stem], base_w, merged, uw, tw)
            set_module_weights(pipe, merged)
            lat, img = run(pipe, model, sched_cfg, steps, seed, prompt, negative)
            set_module_weights(pipe, base_w)
            for c, sd in base_w.items():
                for k, v in sd.items():
                    assert torch.equal(mlg.components(pipe)[c].get_submodule(k[:-7]).weight, v), (c, k)
        elif model != "sdxl":
            snap = [(len(t), fingerprint(te.get_input_embeddings().weight)) for _, t, te in encoders(pipe)]
            base_tok = copy.deepcopy(pipe.tokenizer)
            load_sd_embeddings(pipe, embs, drawn)
            (lat, img), ids = embedding_ids(pipe, lambda: run(pipe, model, sched_cfg, steps, seed, prompt,
                                                              negative))
            found = mti.check_ids(pipe, "sd1", [base_tok], embs, prompt, negative,
                                  [tuple(torch.tensor(x) for x in ids[0])])
            unload_embeddings(pipe, snap)
            extra = dict(embeddings=found)
            if len(embs) > 1:  # each file matters: the run with every file but that one loaded
                extra["mean_abs_image_diff_without_each"] = {}
                for stem in embs:
                    load_sd_embeddings(pipe, [s for s in embs if s != stem], drawn)
                    _, img_o = run(pipe, model, sched_cfg, steps, seed, prompt, negative)
                    unload_embeddings(pipe, snap)
                    d = (img.float() - img_o.float()).abs().mean().item()
                    extra["mean_abs_image_diff_without_each"][stem] = round(d, 3)
                    assert d > MIN_EACH_DIFF, (name, stem, d)
            notes.append(f"{name}: load_textual_inversion(file, token=stem) added " + ", ".join(
                f"{stem} ({next(iter(drawn[stem].values())).shape[0]} tokens)" for stem in embs) + "; the ids the "
                f"text encoder got are AUTOMATIC1111's (make_ti_goldens.check_ids): {found}")
            print(f"    ids {ids[0][0][:12]} / {ids[0][1][:12]}; {extra}", flush=True)
            fused = {}
        else:
            stem, = embs
            snap = [(len(t), fingerprint(te.get_input_embeddings().weight)) for _, t, te in encoders(pipe)]
            load_embedding(pipe, stem)
            (lat, img), ids = embedding_ids(pipe, lambda: run(pipe, model, sched_cfg, steps, seed, prompt,
                                                              negative))
            # text_encoder_2's config has eos_token_id 2 (the legacy rule): transformers pools at the largest id,
            # which is the embedding's last added token here, not the end token.
            p_ids = ids[1][0]
            pooled_at, first_eos = max(range(77), key=lambda i: (p_ids[i], -i)), p_ids.index(49407)
            te2 = pipe.text_encoder_2.text_model
            assert te2.eos_token_id == 2
            te2.eos_token_id = 49407  # pool at the first end token instead (what the newer configs do)
            lat_eos, img_eos = run(pipe, model, sched_cfg, steps, seed, prompt, negative)
            te2.eos_token_id = 2
            unload_embeddings(pipe, snap)
            added = [i for i, x in enumerate(p_ids) if x >= 49408]
            assert ids[0][0] == p_ids[:first_eos + 1] + [49407] * (76 - first_eos)  # tokenizer pads with the end
            assert p_ids[first_eos + 1:] == [0] * (76 - first_eos)  # tokenizer_2 with "!"
            extra = dict(embedding_positions=added, text_encoder_2_pooled_position=pooled_at,
                         first_eos_position=first_eos,
                         max_abs_latent_diff_if_pooled_at_eos=(lat - lat_eos).abs().max().item(),
                         mean_abs_image_diff_if_pooled_at_eos=round(
                             (img.float() - img_eos.float()).abs().mean().item(), 3))
            notes.append(f"{stem}: load_textual_inversion added tokens {stem}, {stem}_1 (ids 49408, 49409) to both "
                         f"tokenizers; text_encoder_2 (config eos_token_id 2: transformers' legacy argmax pooling) "
                         f"pools the prompt at position {pooled_at} (id 49409), not at its end token ({first_eos}); "
                         f"pooling at the end token moves the latent by "
                         f"{extra['max_abs_latent_diff_if_pooled_at_eos']:.2e} (max) and the image by "
                         f"{extra['mean_abs_image_diff_if_pooled_at_eos']:.2f} levels (mean)")
            print(f"    ids {p_ids[:first_eos + 1]}; embedding at {added}; " + notes[-1], flush=True)
            fused = {}
        ref_lat, ref_img = run(pipe, model, sched_cfg, steps, seed, prompt, negative)  # the same run without
        diff = (img.float() - ref_img.float()).abs().mean().item()
        sat = ((img == 0) | (img == 255)).float().mean().item()
        sat0 = ((ref_img == 0) | (ref_img == 255)).float().mean().item()
        print(f"{name:10s} {loras or embs}: mean |image - without| {diff:.2f} levels (max "
              f"{(img.float() - ref_img.float()).abs().max().item():.0f}), image mean {img.float().mean().item():.1f} "
              f"std {img.float().std().item():.1f}, saturated {sat:.1%} (without {sat0:.1%}), latent std "
              f"{lat.std().item():.3f}; {time.time() - t0:.0f} s, peak RSS {peak_rss_gb():.1f} GB", flush=True)
        assert diff > MIN_MEAN_DIFF and sat - sat0 < MAX_SAT_RISE, (name, diff, sat, sat0)
        tensors[f"{name}.latent"] = lat
        tensors[f"{name}.image"] = img
        params = dict(model=model, loras=[dict(file=file_name(s), unet=u, te=t) for s, u, t in loras],
                      embeddings_loaded=[file_name(s) for s in embs], mode="diffusers", scheduler="euler",
                      spacing=pipe.scheduler.config.timestep_spacing, steps=steps, cfg=CFG, seed=seed, prompt=prompt,
                      negative=negative, width=SIZE, height=SIZE, mean_abs_image_diff_vs_without=round(diff, 3))
        params.update(extra)
        meta[f"{name}.params"] = json.dumps(params)
        latents[name] = lat
        for (stem, uw, tw) in loras:
            shapes = {}
            for p, w in fused.items():
                comp, mod = p.split(".", 1)
                base = mlg.components(pipe)[comp].get_submodule(mod[:-7]).weight.detach()
                tensors[f"fused.{stem}.{p}"] = rows(w).clone()
                tensors[f"base.{model}.{p}"] = rows(base).clone()
                shapes[p] = list(w.shape)
                rel = (w - base).abs().mean().item() / base.abs().mean().item()
                print(f"    fused.{stem}.{p} {list(w.shape)}: mean |delta| / mean |W| = {rel:.3f}")
            assert sorted(fused) == sorted(FUSED_PARAMS[stem]), (stem, sorted(fused))
            fparams = dict(file=file_name(stem), model=model, unet=uw, te=tw, params=FUSED_PARAMS[stem],
                           rows=None if FUSED_ROWS is None else [0, FUSED_ROWS], shapes=shapes)
            if FILES[stem]["format"] == "dora" and FUSED_ROWS is not None:
                fparams["merged_from"] = f"base rows [0, {FUSED_ROWS}), every other row zero (lycoris_fused)"
            meta[f"fused.{stem}.params"] = json.dumps(fparams)
    sx.assert_all_differ(latents)
    meta[f"notes.{model}"] = json.dumps(list(dict.fromkeys(notes)))
    for n in dict.fromkeys(notes):
        print("  note: " + n)
    del pipe
    gc.collect()
    save_cases(model, tensors, meta)
    print(f"{model}: {time.time() - start:.0f} s in all; peak RSS {peak_rss_gb():.1f} GB", flush=True)


def main():
    arg = sys.argv[1] if len(sys.argv) > 1 else "all"
    assert arg in MODELS + ("all", "files"), f"usage: {SCRIPT} [sd15|sd21|sdxl|all|files]"
    if arg == "all":  # one process per model: each frees everything before the next
        for model in MODELS:
            subprocess.run([sys.executable, os.path.abspath(__file__), model], check=True)
    elif arg == "files":
        for model in MODELS:
            write_files(model)
    else:
        run_model(arg)


if __name__ == "__main__":
    main()
