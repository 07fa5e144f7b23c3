#!/work/refvenv/bin/python
"""Textual-inversion fixtures and goldens: small random embedding files in the formats found in the wild
(AUTOMATIC1111 .pt, kohya "emb_params" .safetensors, diffusers' learned_embeds .bin, the SDXL clip_l / clip_g
.safetensors), two files an embedding loader must skip, and what diffusers' pipelines make with them on the tiny
SD 1.x and SDXL models.

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline, after
make_pipeline_goldens.py and make_sdxl_goldens.py (it reads their model folders and changes nothing in them):

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_ti_goldens.py

It takes about 10 s on an idle two-core machine. Every value is drawn from torch.Generators with fixed
seeds; the .safetensors files go through safetensors_io.py (header in a fixed order, metadata keys sorted) and
the .pt / .bin files through torch.save (its zip archive has fixed timestamps and names the records after the
file stem), so every run writes the same bytes. Versions used (requirements-pip.txt): torch 2.4.1 (CPU),
diffusers 0.30.3, transformers 4.40.2, huggingface_hub 0.36.2. All computation is float32 on the CPU.

The models are make_lora_goldens.py's (imported for its helpers: build_sd1, build_sdxl, run): sd1 =
tests/golden/data/pipeline_sd1/ as StableDiffusionPipeline (32x32 images; CLIP text encoder 32 wide), sdxl =
tests/golden/data/pipeline_sdxl/ as StableDiffusionXLPipeline (64x64 images; text_encoder 32 wide,
text_encoder_2 48 wide), both with EulerDiscreteScheduler.from_config(the folder's scheduler config). The
three tiny tokenizers (sd1 tokenizer, sdxl tokenizer and tokenizer_2) have the same vocabulary and merges:
591 tokens (the 256 byte symbols, their "</w>" forms, 77 merges of the prompt words, <|startoftext|> 589,
<|endoftext|> 590); pad id 590 (sd1, sdxl tokenizer) or 0 (sdxl tokenizer_2, pad token "!").

1. Embedding files: tests/golden/data/embeddings/
-------------------------------------------------
The embedding's name is the file stem. Vectors: randn * SCALE * (the standard deviation of the target text
encoder's token-embedding table: 0.200 for all three tiny encoders, i.e. the magnitude of the model's own
token embeddings; rows of norm about 1.1 (32 wide) / 1.4 (48 wide)), one torch.Generator per file seeded with
the file's seed (FILES), rounded to the file's dtype. Each name is several tokens of the tiny vocabulary
(printed on every run; the names share the prefix "sd1_", so a matcher must compare whole id sequences):
    sd1_style   [82 s, 323 d</w>, 272 1</w>, 318 _</w>, 82 s, 83 t, 88 y, 514 le</w>]   (8 tokens)
    sd1_neg     [82, 323, 272, 318, 77 n, 68 e, 326 g</w>]                                (7 tokens)
    sd1_one     [82, 323, 272, 318, 78 o, 77 n, 324 e</w>]                                (7 tokens)
    sdxl_style  [82 s, 67 d, 87 x, 331 l</w>, 318 _</w>, 82 s, 83 t, 88 y, 514 le</w>]    (9 tokens)

  sd1_style.pt               AUTOMATIC1111's format, as its textual-inversion trainer saves it
                             (modules/textual_inversion/textual_inversion.py, Embedding.save): torch.save (zip
                             format, torch's default) of a plain dict {"string_to_token": {"*": 265},
                             "string_to_param": {"*": float32 [3, 32] with requires_grad=True (as during
                             training)}, "name": "sd1_style", "step": 500, "sd_checkpoint": "8a2c1d0f3e",
                             "sd_checkpoint_name": "model_sd1_tiny"} (made-up checkpoint hash and name). 3 vectors.
  sd1_neg.safetensors        kohya sd-scripts' format (train_textual_inversion.py save_weights; AUTOMATIC1111
                             reads it but writes no .safetensors embeddings itself, and ignores the metadata):
                             one tensor "emb_params" F16 [2, 32]; metadata the sai model-spec keys sd-scripts
                             writes for a TI (modelspec.sai_model_spec, .architecture
                             "stable-diffusion-v1/textual-inversion", .implementation, .title, .date,
                             .resolution, .prediction_type). 2 vectors.
  sd1_one.bin                diffusers' format as the sd-concepts-library learned_embeds.bin files hold it
                             (examples/textual_inversion/textual_inversion.py: torch.save({placeholder_token:
                             vector})): {"sd1_one": float32 [32]} (one vector, 1-D; the current diffusers script
                             saves [n, 32] slices instead). 1 vector.
  sdxl_style.safetensors     the SDXL format (kohya sdxl_train_textual_inversion.py, CivitAI): "clip_l" F16 [2, 32]
                             (for text_encoder) and "clip_g" F16 [2, 48] (for text_encoder_2); sd-scripts'
                             model-spec metadata (architecture "stable-diffusion-xl-v1-base/textual-inversion").
  not_an_embedding.safetensors  a kohya LoRA (two modules, lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_
                             attn1_to_{q,k}: .lora_down.weight F16 [4, 16], .lora_up.weight F16 [16, 4], .alpha
                             F16 0-dim; ss_* metadata) lying beside the embeddings: not an embedding, to be skipped.
  sd2_dim.safetensors        "emb_params" F32 [1, 64]: a width no tiny model has (as an SD 2.x embedding, 1024
                             wide, beside an SD 1.x model): to be skipped.

2. How diffusers 0.30.3 applies them (TextualInversionLoaderMixin)
------------------------------------------------------------------
SD 1.x: pipe.load_textual_inversion(path, token=stem) for each file. Its loader takes a state dict with
  "string_to_param" (A1111: the vector is string_to_param["*"], the token state_dict["name"] unless token= is
  given), or any dict with exactly one entry (kohya "emb_params", diffusers {token: vector}: that entry's
  tensor; its key is the token unless token= is given), or a bare tensor (token= required). It refuses a
  dict of several entries without "string_to_param" (ValueError "Loaded state dictionary is incorrect":
  not_an_embedding, sdxl_style) and vectors whose width is not the text encoder's (ValueError "Loaded embeddings
  are of incorrect shape": sd2_dim), both before changing anything. A 1-D vector is one vector; an [n, d] one
  adds tokens NAME, NAME_1, ..., NAME_{n-1} to the tokenizer (ids 591, 592, ... in load order) and their rows
  to the resized token-embedding table (rounded from F16 to float32 as stored). At generation, encode_prompt
  runs maybe_convert_prompt on prompt and negative: every added token found in the text is replaced (plain
  string replace) by "NAME NAME_1 ... NAME_{n-1}", so the tokenizer (which splits added tokens out before BPE)
  gives the n new ids where NAME was.
SDXL: the file's tensors loaded one per encoder, as diffusers' documentation shows:
  load_textual_inversion(clip_l, token=stem, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer) and
  load_textual_inversion(clip_g, token=stem, text_encoder=pipe.text_encoder_2, tokenizer=pipe.tokenizer_2).
  Both prompts (prompt_2 = prompt, negative_prompt_2 = negative_prompt) go through maybe_convert_prompt with
  each tokenizer. Pooling of text_encoder_2 is at the first id equal to eos_token_id (590; not the legacy
  argmax rule), so the added ids (> 590) do not move it. (The SD 1.x files would load on the SDXL pipeline
  too: its plain load_textual_inversion(path) fills text_encoder / tokenizer only, and the tiny clip_l is as
  wide as the SD 1.x encoder. AUTOMATIC1111 instead skips them on SDXL, whose expected width is 32 + 48. No case
  uses that.)
Each SD 1.x case runs with sd1_style, sd1_neg and sd1_one loaded (in that order: ids 591-593, 594-595, 596) and
the SDXL cases with sdxl_style (591-592 in both tokenizers); a pipeline.unload_textual_inversion() (per
encoder for SDXL) after every run, and the script checks that tokenizers and token-embedding tables are back
to the base model's before the next.

Tokenization (checked on every run, printed): for every prompt and negative and every tokenizer, the ids the
text encoder receives equal AUTOMATIC1111's rule applied to the plain tokenization of the same text: in the
ids of the text tokenized without any embedding, each occurrence of a loaded embedding's name ids (the name
tokenized alone, no BOS/EOS; longest name first) is replaced by its n vector positions (here: the n new ids),
then padded to 77. The names found that way are exactly the names present in the text as whole words.

3. Goldens: tests/golden/data/ti_cases.safetensors
--------------------------------------------------
Per case (CASES; 12 steps, cfg 7, Euler, the model's native size):
    <case>.latent        float32 [1, 4, H/2, W/2]  the pipeline's final latent (output_type="latent")
    <case>.image         uint8 [1, 3, H, W]        decoded as make_lora_goldens.run decodes
    <case>.ids           int32 [77]  the input ids text_encoder received for the prompt
    <case>.neg_ids       int32 [77]  ... for the negative prompt
    <case>.ids_2 / <case>.neg_ids_2  (sdxl) the same for text_encoder_2 (pad id 0)
    metadata <case>.params (JSON): model, embeddings_loaded (file names), scheduler ("euler"), steps, cfg,
        seed, prompt, negative, width, height, embeddings ([{name, prompt: "positive" | "negative", start,
        count}]: the embedding's first position in the 77 ids (BOS is position 0) and its number of vectors;
        for sdxl the same positions in ids and ids_2), mean_abs_image_diff_vs_none (mean |image - the same run
        with no embedding loaded|, levels of 255; there every name is plain text) and
        mean_abs_image_diff_without ({name: mean |image - the same run with every loaded file but that one|}).
Text-encoder outputs, from pipe.encode_prompt (checked equal to what the UNet received in the run):
    sd1_both.prompt_embeds, sd1_both.negative_prompt_embeds              float32 [1, 77, 32]
    sdxl_style.prompt_embeds, sdxl_style.negative_prompt_embeds          float32 [1, 77, 80]
    sdxl_style.pooled_prompt_embeds, sdxl_style.negative_pooled_prompt_embeds  float32 [1, 40]
Metadata also: script, git, torch, diffusers, transformers, huggingface_hub, cases (names in order),
scheduler_config.sd1 / .sdxl, notes (JSON list: what diffusers accepted and refused), and files.<stem> (JSON per
embedding file: file, format, dtype, tensors {key: shape}, vectors, width {key: width}, bytes, sha256 of the whole
file, diffusers {model: "loaded" or what diffusers did instead}).
Cases:
    sd1_base       control: no name in prompt or negative (embeddings loaded; latent bit-identical to no
                   embeddings loaded)
    sd1_pt_prompt  sd1_style (A1111 .pt) at the end of the prompt
    sd1_neg        sd1_neg (kohya .safetensors) at the start of the negative, directly followed by a comma
    sd1_both       sd1_style in the prompt; sd1_neg and sd1_one next to each other in the negative
    sd1_bin        sd1_one (diffusers .bin) at the start of the prompt
    sdxl_base      control (sdxl_style loaded)
    sdxl_style     sdxl_style in the prompt (non-empty negative, so force_zeros_for_empty_prompt plays no part)

Checks (asserted on every run): the refusals above; tokenization as above; each case's image differs from the
same run without each of its embeddings by more than MIN_MEAN_DIFF levels on average; the controls are
bit-identical with and without embeddings loaded; all latents pairwise different; no NaN.
"""
import hashlib
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402
import make_model_goldens as mg  # noqa: E402  (git_hash)
import make_sdxl_goldens as sg  # noqa: E402  (assert_all_differ, check_words)
import make_lora_goldens as lg  # noqa: E402  (build_sd1, build_sdxl, run, SIZES, STEPS, CFG)

import diffusers  # noqa: E402
import huggingface_hub  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import CLIPTokenizer  # noqa: E402

OUT = os.path.join(ROOT, "tests", "golden", "data")
EMB_DIR = os.path.join(OUT, "embeddings")
GOLDEN = os.path.join(OUT, "ti_cases.safetensors")
SCRIPT = "tools/reference/make_ti_goldens.py"

SCALE = 1.0          # embedding vectors: randn * SCALE * std of the model's token-embedding table
MIN_MEAN_DIFF = 2.0  # levels of 255: each embedding must change its case's image at least this much on average

# Embedding files: stem -> file, format, dtype, seed, tensors {key: (shape, encoder the width comes from)}.
FILES = {
    "sd1_style": dict(file="sd1_style.pt", format="a1111_pt", dtype=torch.float32, seed=1201,
                      tensors={"*": ((3, 32), "sd1.text_encoder")}),
    "sd1_neg": dict(file="sd1_neg.safetensors", format="kohya_emb_params", dtype=torch.float16, seed=1202,
                    tensors={"emb_params": ((2, 32), "sd1.text_encoder")}),
    "sd1_one": dict(file="sd1_one.bin", format="diffusers_bin", dtype=torch.float32, seed=1203,
                    tensors={"sd1_one": ((32,), "sd1.text_encoder")}),
    "sdxl_style": dict(file="sdxl_style.safetensors", format="sdxl_clip_l_clip_g", dtype=torch.float16, seed=1204,
                       tensors={"clip_l": ((2, 32), "sdxl.text_encoder"), "clip_g": ((2, 48), "sdxl.text_encoder_2")}),
    "not_an_embedding": dict(file="not_an_embedding.safetensors", format="kohya_lora", dtype=torch.float16,
                             seed=1205, tensors={}),
    "sd2_dim": dict(file="sd2_dim.safetensors", format="kohya_emb_params", dtype=torch.float32, seed=1206,
                    tensors={"emb_params": ((1, 64), None)}),
}
LOADED = {"sd1": ["sd1_style", "sd1_neg", "sd1_one"], "sdxl": ["sdxl_style"]}
REFUSED = {"sd1": ["not_an_embedding", "sd2_dim", "sdxl_style"], "sdxl": ["not_an_embedding", "sd2_dim"]}

# Cases: name, model, seed, prompt, negative.
CASES = [
    ("sd1_base", "sd1", 401, "a blue circle on a green background", "a red square"),
    ("sd1_pt_prompt", "sd1", 402, "a red circle, sd1_style", "a blue square"),
    ("sd1_neg", "sd1", 403, "a green triangle on the left", "sd1_neg, a blue square"),
    ("sd1_both", "sd1", 404, "photo of a cat, sd1_style, masterpiece", "sd1_neg sd1_one dog"),
    ("sd1_bin", "sd1", 405, "sd1_one a small red square on the right", "green"),
    ("sdxl_base", "sdxl", 406, "a large blue circle on the top", "a red triangle"),
    ("sdxl_style", "sdxl", 407, "photo of a dog, sdxl_style, on the bottom", "a green square"),
]
ENCODE_CASES = ("sd1_both", "sdxl_style")

KOHYA_TI_META = {  # the sai model-spec keys sd-scripts writes for a textual inversion (fixed date)
    "modelspec.sai_model_spec": "1.0.0",
    "modelspec.implementation": "https://github.com/Stability-AI/generative-models",
    "modelspec.date": "2024-05-01T12:00:00", "modelspec.prediction_type": "epsilon"}


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def encoders(pipe, model):
    """[(label, tokenizer, text_encoder)] of a pipeline."""
    out = [("text_encoder", pipe.tokenizer, pipe.text_encoder)]
    if model == "sdxl":
        out.append(("text_encoder_2", pipe.tokenizer_2, pipe.text_encoder_2))
    return out


# ---------------------------------------------------------------------------------------------------------
# Files

def draw(gen, shape, std, dtype):
    return (torch.randn(shape, generator=gen) * (SCALE * std)).to(dtype)


def write_files(stds):
    os.makedirs(EMB_DIR, exist_ok=True)
    vectors = {}
    for stem, spec in FILES.items():
        gen = torch.Generator().manual_seed(spec["seed"])
        path = os.path.join(EMB_DIR, spec["file"])
        dtype = spec["dtype"]
        t = {k: draw(gen, shape, stds.get(enc, 0.2), dtype) for k, (shape, enc) in spec["tensors"].items()}
        fmt = spec["format"]
        if fmt == "a1111_pt":
            vec = t["*"].clone().requires_grad_(True)
            torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": vec}, "name": stem, "step": 500,
                        "sd_checkpoint": "8a2c1d0f3e", "sd_checkpoint_name": "model_sd1_tiny"}, path)
        elif fmt == "diffusers_bin":
            torch.save({stem: t[stem]}, path)
        elif fmt == "kohya_emb_params":
            width = t["emb_params"].shape[-1]
            arch = "stable-diffusion-v1" if width != 64 else "stable-diffusion-v2-512"
            meta = dict(KOHYA_TI_META, **{"modelspec.architecture": f"{arch}/textual-inversion",
                                           "modelspec.title": stem, "modelspec.resolution": "512x512"})
            safetensors_io.save_file(t, path, dict(sorted(meta.items())))
        elif fmt == "sdxl_clip_l_clip_g":
            meta = dict(KOHYA_TI_META, **{"modelspec.architecture": "stable-diffusion-xl-v1-base/textual-inversion",
                                           "modelspec.title": stem, "modelspec.resolution": "1024x1024"})
            safetensors_io.save_file(t, path, dict(sorted(meta.items())))
        elif fmt == "kohya_lora":
            sd = {}
            for mod in ("to_q", "to_k"):
                key = f"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_{mod}"
                sd[key + ".lora_down.weight"] = (torch.randn(4, 16, generator=gen) / 4.0).to(dtype)
                sd[key + ".lora_up.weight"] = (torch.randn(16, 4, generator=gen) / 2.0).to(dtype)
                sd[key + ".alpha"] = torch.tensor(2.0, dtype=dtype)
            meta = {"ss_network_module": "networks.lora", "ss_network_dim": "4", "ss_network_alpha": "2.0",
                    "ss_base_model_version": "sd_v1", "ss_output_name": stem}
            safetensors_io.save_file(sd, path, dict(sorted(meta.items())))
            t = sd
        else:
            raise ValueError(fmt)
        vectors[stem] = {k: v.detach().float() for k, v in t.items()}
    return vectors


def file_info(stem, vectors):
    spec = FILES[stem]
    path = os.path.join(EMB_DIR, spec["file"])
    tensors = {k: list(v.shape) for k, v in vectors[stem].items()}
    info = dict(file=spec["file"], format=spec["format"], dtype=str(spec["dtype"]).replace("torch.", ""),
                tensors=tensors, bytes=os.path.getsize(path), sha256=sha256(path))
    if spec["tensors"]:
        first = next(iter(vectors[stem].values()))
        info["vectors"] = 1 if first.dim() == 1 else first.shape[0]
        info["width"] = {k: v.shape[-1] for k, v in vectors[stem].items()}
    return info


# ---------------------------------------------------------------------------------------------------------
# Loading into diffusers

def load(pipe, model, stem):
    path = os.path.join(EMB_DIR, FILES[stem]["file"])
    if model == "sd1" or FILES[stem]["format"] != "sdxl_clip_l_clip_g":
        pipe.load_textual_inversion(path, token=stem)
    else:
        sd = load_file(path)
        pipe.load_textual_inversion(sd["clip_l"], token=stem, text_encoder=pipe.text_encoder,
                                    tokenizer=pipe.tokenizer)
        pipe.load_textual_inversion(sd["clip_g"], token=stem, text_encoder=pipe.text_encoder_2,
                                    tokenizer=pipe.tokenizer_2)


def unload(pipe, model):
    for _, tok, te in encoders(pipe, model):
        pipe.unload_textual_inversion(tokenizer=tok, text_encoder=te)


def snapshot(pipe, model):
    return [(len(tok), dict(tok.added_tokens_encoder), te.get_input_embeddings().weight.detach().clone())
            for _, tok, te in encoders(pipe, model)]


def assert_base(pipe, model, base):
    for (label, tok, te), (n, added, w) in zip(encoders(pipe, model), base):
        assert len(tok) == n and dict(tok.added_tokens_encoder) == added, (model, label, len(tok))
        assert torch.equal(te.get_input_embeddings().weight, w), (model, label)


def check_loaded(pipe, model, stem, vectors):
    """The rows diffusers wrote are the file's vectors (as float32), under tokens NAME, NAME_1, ..."""
    keys = {"text_encoder": "clip_l", "text_encoder_2": "clip_g"} if model == "sdxl" else None
    for label, tok, te in encoders(pipe, model):
        vec = vectors[stem][keys[label]] if keys else next(iter(vectors[stem].values()))
        vec = vec.reshape(-1, vec.shape[-1])
        names = [stem] + [f"{stem}_{i}" for i in range(1, vec.shape[0])]
        ids = tok.convert_tokens_to_ids(names)
        assert all(i >= 591 for i in ids), (stem, ids)
        assert f"{stem}_{vec.shape[0]}" not in tok.added_tokens_encoder
        assert torch.equal(te.get_input_embeddings().weight[ids].detach(), vec), (model, label, stem)


def try_refused(pipe, model, stem, base):
    try:
        load(pipe, model, stem)
    except ValueError as e:
        msg = str(e).splitlines()[0]
        assert_base(pipe, model, base)  # refused before changing anything
        # the first sentence (diffusers' shape message has an unformatted "{...}" after it)
        return "refused: ValueError: " + msg.split(": {")[0].split(". ")[0]
    raise AssertionError(f"diffusers loaded {stem} into {model}")


# ---------------------------------------------------------------------------------------------------------
# Runs

class Recorder:
    """Forward pre-hook: keeps the first positional argument (or one keyword) of every call."""

    def __init__(self, kw=None):
        self.kw, self.seen = kw, []

    def __call__(self, module, args, kwargs):
        self.seen.append(dict(kwargs) if self.kw == "all" else (args[0] if args else kwargs["input_ids"]).clone())


def run(pipe, model, seed, prompt, negative):
    recs = [Recorder() for _ in encoders(pipe, model)]
    unet_rec = Recorder("all")
    handles = [te.register_forward_pre_hook(r, with_kwargs=True) for (_, _, te), r in zip(encoders(pipe, model), recs)]
    handles.append(pipe.unet.register_forward_pre_hook(unet_rec, with_kwargs=True))
    try:
        lat, img = lg.run(pipe, model, seed, prompt, negative)
    finally:
        for h in handles:
            h.remove()
    ids = []
    for r in recs:
        assert len(r.seen) == 2 and all(s.shape == (1, 77) for s in r.seen), [s.shape for s in r.seen]
        ids.append((r.seen[0][0].clone(), r.seen[1][0].clone()))  # (prompt, negative)
    assert len(unet_rec.seen) == lg.STEPS
    return lat, img, ids, unet_rec.seen[0]


def name_ids(tok, name):
    ids = tok(name).input_ids
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    return ids[1:-1]


def a1111_ids(base_tok, text, table):
    """AUTOMATIC1111's rule on the plain tokenization: table = {name: (name ids, replacement ids)}. Returns the
    77 ids and [(name, start, count)]."""
    ids = base_tok(text).input_ids
    assert len(ids) <= 77, text
    order = sorted(table.items(), key=lambda kv: -len(kv[1][0]))
    out, found, i = [], [], 0
    while i < len(ids):
        for name, (nids, repl) in order:
            if ids[i:i + len(nids)] == nids:
                found.append((name, len(out), len(repl)))
                out += repl
                i += len(nids)
                break
        else:
            out.append(ids[i])
            i += 1
    assert len(out) <= 77, text
    return out + [base_tok.pad_token_id] * (77 - len(out)), found


def check_ids(pipe, model, base_toks, loaded, prompt, negative, ids):
    """Diffusers' ids against AUTOMATIC1111's rule; returns the params' embeddings list."""
    per_encoder = []
    for (label, tok, _), base_tok, (pid, nid) in zip(encoders(pipe, model), base_toks, ids):
        table = {}
        for stem in loaded:
            n = len([t for t in tok.added_tokens_encoder if t == stem or t.startswith(stem + "_")])
            repl = tok.convert_tokens_to_ids([stem] + [f"{stem}_{i}" for i in range(1, n)])
            table[stem] = (name_ids(base_tok, stem), repl)
        found = []
        for which, text, got in (("positive", prompt, pid), ("negative", negative, nid)):
            want, hits = a1111_ids(base_tok, text, table)
            assert got.tolist() == want, (model, label, which, text, got.tolist(), want)
            words = set(text.replace(",", " ").split())
            assert sorted(h[0] for h in hits) == sorted(w for w in words if w in table), (text, hits)
            found += [dict(name=h[0], prompt=which, start=h[1], count=h[2]) for h in hits]
        per_encoder.append(found)
    assert all(f == per_encoder[0] for f in per_encoder), per_encoder
    return per_encoder[0]


def run_with(pipe, model, stems, seed, prompt, negative, base):
    for stem in stems:
        load(pipe, model, stem)
    try:
        return run(pipe, model, seed, prompt, negative)
    finally:
        unload(pipe, model)
        assert_base(pipe, model, base)


def encode(pipe, model, prompt, negative, unet_kwargs):
    with torch.no_grad():
        if model == "sd1":
            pe, npe = pipe.encode_prompt(prompt, torch.device("cpu"), 1, True, negative)
            out = dict(prompt_embeds=pe, negative_prompt_embeds=npe)
        else:
            pe, npe, ppe, nppe = pipe.encode_prompt(prompt=prompt, device=torch.device("cpu"),
                                                    num_images_per_prompt=1, do_classifier_free_guidance=True,
                                                    negative_prompt=negative)
            out = dict(prompt_embeds=pe, negative_prompt_embeds=npe, pooled_prompt_embeds=ppe,
                       negative_pooled_prompt_embeds=nppe)
            assert torch.equal(unet_kwargs["added_cond_kwargs"]["text_embeds"], torch.cat([nppe, ppe]))
    assert torch.equal(unet_kwargs["encoder_hidden_states"], torch.cat([npe, pe]))
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def main():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    diffusers.utils.logging.disable_progress_bar()
    sg.check_words([dict(name=c[0], prompt=" ".join(w for w in c[3].replace(",", " ").split() if w not in FILES),
                         negative=" ".join(w for w in c[4].replace(",", " ").split() if w not in FILES))
                    for c in CASES])
    pipes = {"sd1": lg.build_sd1(), "sdxl": lg.build_sdxl()}
    bases = {m: snapshot(p, m) for m, (p, _) in pipes.items()}
    base_toks = {
        "sd1": [CLIPTokenizer.from_pretrained(os.path.join(lg.SD1_FOLDER, "tokenizer"))],
        "sdxl": [CLIPTokenizer.from_pretrained(os.path.join(lg.SDXL_FOLDER, s)) for s in ("tokenizer", "tokenizer_2")],
    }
    stds = {f"{m}.{label}": te.get_input_embeddings().weight.std().item()
            for m, (p, _) in pipes.items() for label, _, te in encoders(p, m)}
    notes = []

    # 1. Files.
    vectors = write_files(stds)
    infos = {stem: file_info(stem, vectors) for stem in FILES}
    tok = base_toks["sd1"][0]
    for stem, info in infos.items():
        print(f"{os.path.relpath(os.path.join(EMB_DIR, info['file']), ROOT)}: {info['bytes']} bytes, "
              f"{info['format']}, {info['dtype']}, {info['tensors']}")
        if FILES[stem]["tensors"]:
            nid = name_ids(tok, stem)
            print(f"    name {stem!r} -> ids {nid} {tok.convert_ids_to_tokens(nid)}")
            for name, v in vectors[stem].items():
                print(f"    {name}: row norms {[round(x, 3) for x in v.reshape(-1, v.shape[-1]).norm(dim=1).tolist()]}")
    print("token-embedding table std: " + ", ".join(f"{k} {v:.4f}" for k, v in stds.items()))

    # 2. What diffusers accepts.
    for model, (pipe, _) in pipes.items():
        for stem in LOADED[model]:
            load(pipe, model, stem)
            check_loaded(pipe, model, stem, vectors)
            infos[stem].setdefault("diffusers", {})[model] = "loaded"
            notes.append(f"{model}: {FILES[stem]['file']} loaded as tokens "
                         f"{[t for t in encoders(pipe, model)[0][1].added_tokens_encoder if t.startswith(stem)]}")
        loaded_state = snapshot(pipe, model)
        for stem in REFUSED[model]:  # refused with the others loaded, changing nothing
            try_refused(pipe, model, stem, loaded_state)
        unload(pipe, model)
        assert_base(pipe, model, bases[model])
        for stem in REFUSED[model]:  # and on the bare model
            why = try_refused(pipe, model, stem, bases[model])
            infos[stem].setdefault("diffusers", {})[model] = why
            notes.append(f"{model}: {FILES[stem]['file']} {why}")
    # The sd1 files on the SDXL pipeline's default load_textual_inversion (text_encoder / tokenizer only).
    pipe = pipes["sdxl"][0]
    for stem in LOADED["sd1"]:
        load(pipe, "sdxl", stem)
        n2 = len(pipe.tokenizer_2)
        assert n2 == bases["sdxl"][1][0]
        why = "loaded into text_encoder only by pipe.load_textual_inversion(path) (32 wide, like clip_l); not used"
        infos[stem]["diffusers"]["sdxl"] = why
        notes.append(f"sdxl: {FILES[stem]['file']} {why}; tokenizer_2 unchanged ({n2} tokens)")
        unload(pipe, "sdxl")
        assert_base(pipe, "sdxl", bases["sdxl"])
    for n in notes:
        print("  " + n)

    # 3. Cases.
    meta = {"script": SCRIPT, "git": mg.git_hash(), "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "huggingface_hub": huggingface_hub.__version__,
            "scheduler_config.sd1": json.dumps(pipes["sd1"][1]),
            "scheduler_config.sdxl": json.dumps(pipes["sdxl"][1]),
            "cases": json.dumps([c[0] for c in CASES]), "notes": json.dumps(notes)}
    tensors, latents = {}, {}
    for name, model, seed, prompt, negative in CASES:
        pipe, base = pipes[model][0], bases[model]
        loaded = LOADED[model]
        for stem in loaded:
            load(pipe, model, stem)
        lat, img, ids, unet_kwargs = run(pipe, model, seed, prompt, negative)
        embs = check_ids(pipe, model, base_toks[model], loaded, prompt, negative, ids)
        if name in ENCODE_CASES:
            for k, v in encode(pipe, model, prompt, negative, unet_kwargs).items():
                tensors[f"{name}.{k}"] = v
        unload(pipe, model)
        assert_base(pipe, model, base)

        ref_lat, ref_img, ref_ids, _ = run(pipe, model, seed, prompt, negative)  # nothing loaded
        diff = (img.float() - ref_img.float()).abs().mean().item()
        used = list(dict.fromkeys(e["name"] for e in embs))
        without = {}
        for stem in used:
            _, w_img, _, _ = run_with(pipe, model, [s for s in loaded if s != stem], seed, prompt, negative, base)
            without[stem] = round((img.float() - w_img.float()).abs().mean().item(), 3)
            assert without[stem] > MIN_MEAN_DIFF, (name, stem, without[stem])
        if not used:
            assert torch.equal(lat, ref_lat) and torch.equal(img, ref_img), name
            assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(ids, ref_ids)), name
        else:
            assert diff > MIN_MEAN_DIFF, (name, diff)
        print(f"{name:14s} {model:4s} prompt {prompt!r} negative {negative!r}")
        for (label, _, _), (pid, nid) in zip(encoders(pipe, model), ids):
            n_p, n_n = pid.tolist().index(590) + 1, nid.tolist().index(590) + 1  # up to the first EOS
            print(f"    {label} ids {pid[:n_p].tolist()}  neg {nid[:n_n].tolist()}")
        print(f"    embeddings {[(e['name'], e['prompt'], e['start'], e['count']) for e in embs]}; mean |image - no "
              f"embeddings| {diff:.2f}, without each {without}; image mean {img.float().mean().item():.1f}, "
              f"latent std {lat.std().item():.3f}")
        w, h = lg.SIZES[model]
        tensors[f"{name}.latent"] = lat
        tensors[f"{name}.image"] = img
        suffixes = [""] if model == "sd1" else ["", "_2"]
        for sfx, (pid, nid) in zip(suffixes, ids):
            tensors[f"{name}.ids{sfx}"] = pid.to(torch.int32).contiguous()
            tensors[f"{name}.neg_ids{sfx}"] = nid.to(torch.int32).contiguous()
        meta[f"{name}.params"] = json.dumps(dict(
            model=model, embeddings_loaded=[FILES[s]["file"] for s in loaded], scheduler="euler", steps=lg.STEPS,
            cfg=lg.CFG, seed=seed, prompt=prompt, negative=negative, width=w, height=h, embeddings=embs,
            mean_abs_image_diff_vs_none=round(diff, 3), mean_abs_image_diff_without=without))
        latents[name] = lat
    sg.assert_all_differ(latents)

    for stem, info in infos.items():
        meta[f"files.{stem}"] = json.dumps(info)
    lg.save_goldens(tensors, meta, GOLDEN)


if __name__ == "__main__":
    main()
