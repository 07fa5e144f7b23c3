#!/work/refvenv/bin/python
"""The tiny SD3 / SD3.5 medium / FLUX.1 golden models (diffusers folders) in the SINGLE-FILE layouts people download:
Stability's sd3_medium*.safetensors and sd3.5_medium.safetensors, BFL's flux1-dev / flux1-schnell / ae.safetensors,
and the separate text-encoder files (clip_l / clip_g / t5xxl_fp16.safetensors) that go beside them.

Run from the repository root with the pip venv (tools/reference/README.md, "The pip venv"), offline, after
make_sd3_goldens.py, make_sd35_goldens.py and make_flux_goldens.py have written the folders:

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/make_dit_single_files.py

It runs under the venv's diffusers 0.30.3 and then runs itself again, as `make_dit_single_files.py check031`, with
PYTHONPATH=/work/refvenv-diffusers031 (diffusers 0.31.0; make_sd3_key_lists.py says how it was installed) for the
SD3.5 medium file, which 0.30.3 cannot read (qk-norm, attn2). About 11 s, 620 MB peak RSS, one torch thread. Every run
writes the same bytes (safetensors_io.py, not the safetensors library; checked with two runs). Versions: torch 2.4.1
(CPU), transformers 4.40.2, diffusers 0.30.3 (0.31.0 for the check031 pass), accelerate 0.33.0 (diffusers' single-
file loaders then build models on the meta device and load with load_model_dict_into_meta).

Every weight is the folder's fp16 tensor with the same bits, only renamed, fused along dim 0 (q|k|v rows, Flux's
single-block q|k|v|mlp rows), half-swapped along dim 0 ([scale; shift] -> [shift; scale]) or reshaped (the VAE's
mid-block attention q/k/v/proj_out: [C, C] -> [C, C, 1, 1]); no transposes anywhere, no dtype change. The
transformer mappings are make_sd3_key_lists.py's sd3_to_original / flux_to_original (its docstring lists the rules
and how they were proven on full-size key lists); the VAE mapping is make_sdxl_key_lists.ldm_vae_names.

Outputs (tests/golden/data/):
  sd3_single/tiny-sd3-incl-clips-t5.safetensors   pipeline_sd3/ as Stability's sd3_medium_incl_clips_t5xxlfp16:
      model.diffusion_model.*              the MMDiT, original names (joint_blocks.N.x_block / context_block ...,
                                           pos_embed buffer [1, 256, 32] included, as Stability's files carry it)
      first_stage_model.*                  the VAE in LDM names (encoder.down.N.block.M.*, decoder.up.N.*,
                                           mid.attn_1.{norm,q,k,v,proj_out}: q/k/v/proj_out weights [C, C, 1, 1]).
                                           NO quant_conv / post_quant_conv: SD3's VAE has neither (sd3_impls.py's
                                           VAEEncoder/Decoder; the folder's config use_quant_conv false)
      text_encoders.clip_l.transformer.*   CLIP-L in transformers CLIPTextModel names (text_model.*). NO
                                           text_projection.weight, see "CLIP-L's text projection" below
      text_encoders.clip_g.transformer.*   CLIP-G in transformers CLIPTextModelWithProjection names: text_model.*
                                           and text_projection.weight in nn.Linear orientation [projection_dim,
                                           hidden] (NOT transposed: diffusers only strips the prefix and loads it
                                           into CLIPTextModelWithProjection; open_clip's transposed
                                           "text_projection" is the SDXL layout, not this one)
      text_encoders.t5xxl.transformer.*    T5EncoderModel names: encoder.block.N.layer.{0,1}.*,
                                           encoder.final_layer_norm.weight, shared.weight AND
                                           encoder.embed_tokens.weight (the same tensor twice, as Stability's file
                                           holds it: stable-diffusion.cpp lists text_encoders.t5xxl.transformer.
                                           encoder.embed_tokens.weight among the tensors it ignores, A1111's SD3 code
                                           looks for it, diffusers' is_t5_in_single_file for shared.weight; not
                                           checkable offline). Redundant for diffusers: transformers' T5 encoder
                                           embeds with the module `shared` itself, so the file less that name loads
                                           to the same model (checked); a loader must accept both names
      No position_ids, no logit_scale anywhere.
  sd3_single/tiny-sd3.safetensors          the same model.diffusion_model.* and first_stage_model.* only
                                           (sd3_medium.safetensors: no text encoders)
  sd3_single/tiny-sd35-medium.safetensors  pipeline_sd35_medium's transformer (qk rms-norm: attn.ln_q/ln_k of both
                                           streams; attn2 in blocks 0 and 1: x_block.attn2.qkv/proj/ln_q/ln_k) and
                                           its VAE (pipeline_sd3's, a symlink), the sd3.5_medium.safetensors layout
  sd3_single/clip_l.safetensors            text_model.* (CLIP-L, no text_projection)  } Stability's
  sd3_single/clip_g.safetensors            text_model.* + text_projection.weight       } text_encoders/*.safetensors,
  sd3_single/t5xxl.safetensors             encoder.* + shared.weight                   } the three prefixes removed
  flux_single/tiny-flux-dev.safetensors    pipeline_flux's transformer in BFL's names, no prefix: img_in, txt_in,
                                           time_in, vector_in, guidance_in, double_blocks.N.*, single_blocks.N.*,
                                           final_layer.* (flux1-dev.safetensors)
  flux_single/tiny-flux-schnell.safetensors  pipeline_flux_schnell's (no guidance_in)
  flux_single/ae.safetensors               the Flux VAE as BFL's ae.safetensors: LDM names with no prefix
                                           (encoder.down.0.block.0.norm1.weight, ...), attention weights [C, C, 1, 1]
                                           (flux/modules/autoencoder.py's AttnBlock is 1x1 convs), no quant convs
  flux_single/clip_l.safetensors           pipeline_flux's CLIPTextModel: text_model.* (ComfyUI's clip_l.safetensors)
  flux_single/t5xxl.safetensors            pipeline_flux's T5: encoder.* + shared.weight (t5xxl_fp16.safetensors)
pipeline_flux_schnell's vae, text_encoder and text_encoder_2 files are byte-identical to pipeline_flux's (checked),
so flux_single's ae / clip_l / t5xxl serve both.

Metadata of every file: {"format": "pt", "easel.description": <one line>, "easel.source": <this script, versions,
the folder>, "easel.config.<component>": the folder's config.json text of each component the file holds} (the
tiny widths need the configs; read_dit_single_file reads easel.config.transformer / vae / text_encoder /
text_encoder_2 / text_encoder_3). Component names: SD3 CLIP-L text_encoder, CLIP-G text_encoder_2, T5
text_encoder_3; Flux CLIP-L text_encoder, T5 text_encoder_2; the autoencoder vae.

CLIP-L's text projection. Stability's SD3 files store CLIP-L as a plain CLIPTextModel: no text_projection.weight
(the evidence, not checkable offline: diffusers' SD3 CLIP-L route, create_diffusers_clip_model_from_ldm, never
reads one and sets text_projection.weight = torch.eye(hidden); Stability's sd3_infer.py and ComfyUI build SD3's
CLIP-L with return_projected_pooled=False; kohya's sd3 loader adds the key when the file lacks it; ComfyUI-GGUF
notes it "is just missing in some SAI checkpoints"). The tiny folder's text_encoder is a
CLIPTextModelWithProjection with a RANDOM text_projection [32, 32], which diffusers' folder pipeline uses. So the
SD3 single files leave it out (CLIP_L_TEXT_PROJECTION below), and what diffusers builds from them differs from the
folder in that one tensor: identity instead of random (checked). An engine that reads these files and matches
diffusers' from_single_file must pool CLIP-L through identity, and will not reproduce pipeline_sd3's goldens,
which used the random projection. Flux's CLIP-L is a CLIPTextModel in the folder too, so flux_single/clip_l is
complete.

Validation (the script fails unless all of it holds; "equal" = same names, every tensor the same values: fp16 bit
for bit; T5's wo weights, which transformers keeps in fp32 under torch_dtype=float16, value for value):
  1. every file read back with the safetensors library equals what was built; all fp16.
  2. diffusers 0.30.3:
     - infer_diffusers_model_type: "sd3" for both SD3 files, "flux-dev" / "flux-schnell" for BFL's;
       is_clip_sd3_model, is_open_clip_sd3_model, is_t5_in_single_file say yes for the incl file.
     - convert_sd3_transformer_checkpoint_to_diffusers consumes every model.diffusion_model.* name;
       convert_ldm_vae_checkpoint reads every first_stage_model.* (and every ae.safetensors) name.
     - SD3Transformer2DModel.from_single_file(file, config=pipeline_sd3, subfolder="transformer") and
       AutoencoderKL.from_single_file(file, config=pipeline_sd3, subfolder="vae") equal the folder's (both SD3 files,
       pos_embed buffer included; no tensor left on the meta device).
     - StableDiffusion3Pipeline.from_single_file(incl file, config=pipeline_sd3, local_files_only=True,
       torch_dtype=float16): transformer, vae, text_encoder_2, text_encoder_3 equal the folder's (T5: plus
       encoder.embed_tokens.weight = shared.weight); text_encoder equals it except text_projection.weight, which is
       the identity; component configs equal the folder's. StableDiffusion3Pipeline.from_single_file(tiny-sd3
       .safetensors, ...) too (transformer and VAE), with the three text encoders passed in: diffusers 0.30.3 and
       0.31.0 will not take a transformers component from a local config folder (_is_model_weights_in_cached_folder
       looks for diffusion_pytorch_model.* only and raises SingleFileComponentError).
     - AutoencoderKL.from_single_file(ae.safetensors, config=pipeline_flux, subfolder="vae") equals the folder's.
     - FluxTransformer2DModel.from_single_file(file, config=pipeline_flux(_schnell), subfolder="transformer")
       FAILS on these tiny files: 0.30.3's (and 0.31.0's) convert_flux_transformer_checkpoint_to_diffusers
       hard-codes inner_dim = 3072 and splits single_blocks.N.linear1 by (3072, 3072, 3072, 12288); the tiny
       model is 32 wide. The script checks that it fails so, then runs from_single_file with that converter's own
       source with the one literal replaced by the tiny width (inner_dim = 32; mlp_ratio 4.0 holds), and the result
       equals the folder's. Every other line of the converter is diffusers'.
     - the separate encoder files load with load_state_dict(strict=True) into transformers models built from the
       folder configs (sd3 clip_l: CLIPTextModel, since it has no projection; clip_g: CLIPTextModelWithProjection;
       T5EncoderModel), equal the folder's, and equal the incl file's tensors under its prefixes.
  3. diffusers 0.31.0 (check031): SD3Transformer2DModel.from_single_file(tiny-sd35-medium.safetensors,
     config=pipeline_sd35_medium, subfolder="transformer") and AutoencoderKL.from_single_file of it equal the
     folder's; the converter consumes every name; StableDiffusion3Pipeline.from_single_file of it (text encoders
     passed in) too. 0.31.0 also reads both SD3 files' transformers and VAEs correctly.
     (0.31.0's infer_diffusers_model_type calls the tiny SD3 files "v1", since it wants SD3 medium's 9216-wide
     context adaLN, and the SD3.5 medium file "v1" too; with config= nothing depends on it.)
"""
import inspect
import json
import os
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import diffusers  # noqa: E402
import safetensors.torch  # noqa: E402
import transformers  # noqa: E402
from diffusers import AutoencoderKL, SD3Transformer2DModel  # noqa: E402
from diffusers.loaders import single_file_model as sfm  # noqa: E402
from diffusers.loaders import single_file_utils as sfu  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel  # noqa: E402

import make_sd3_key_lists as sd3kl  # noqa: E402  (sd3_to_original, flux_to_original)
import make_sdxl_key_lists as sdxlkl  # noqa: E402  (ldm_vae_names, Recorder)
import safetensors_io  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(ROOT, "tests", "golden", "data")
SD3 = os.path.join(DATA, "pipeline_sd3")
SD35 = os.path.join(DATA, "pipeline_sd35_medium")
FLUX = os.path.join(DATA, "pipeline_flux")
FLUX_S = os.path.join(DATA, "pipeline_flux_schnell")
SD3_DIR = os.path.join(DATA, "sd3_single")
FLUX_DIR = os.path.join(DATA, "flux_single")
SCRIPT = "tools/reference/make_dit_single_files.py"
OVERLAY = "/work/refvenv-diffusers031"

INCL = os.path.join(SD3_DIR, "tiny-sd3-incl-clips-t5.safetensors")
SD3_FILE = os.path.join(SD3_DIR, "tiny-sd3.safetensors")
SD35_FILE = os.path.join(SD3_DIR, "tiny-sd35-medium.safetensors")
SD3_CLIP_L = os.path.join(SD3_DIR, "clip_l.safetensors")
SD3_CLIP_G = os.path.join(SD3_DIR, "clip_g.safetensors")
SD3_T5 = os.path.join(SD3_DIR, "t5xxl.safetensors")
FLUX_DEV = os.path.join(FLUX_DIR, "tiny-flux-dev.safetensors")
FLUX_SCHNELL = os.path.join(FLUX_DIR, "tiny-flux-schnell.safetensors")
FLUX_AE = os.path.join(FLUX_DIR, "ae.safetensors")
FLUX_CLIP_L = os.path.join(FLUX_DIR, "clip_l.safetensors")
FLUX_T5 = os.path.join(FLUX_DIR, "t5xxl.safetensors")

TRANSFORMER_PREFIX = sd3kl.SD3_PREFIX  # model.diffusion_model.
VAE_PREFIX = "first_stage_model."
CLIP_L_PREFIX = "text_encoders.clip_l.transformer."
CLIP_G_PREFIX = "text_encoders.clip_g.transformer."
T5_PREFIX = "text_encoders.t5xxl.transformer."
CLIP_L_TEXT_PROJECTION = False  # Stability's SD3 CLIP-L has none (docstring); True would keep the folder's
T5_EMBED = "encoder.embed_tokens.weight"

WEIGHTS = {"transformer": "diffusion_pytorch_model.safetensors", "vae": "diffusion_pytorch_model.safetensors",
           "text_encoder": "model.safetensors", "text_encoder_2": "model.safetensors",
           "text_encoder_3": "model.safetensors"}


def versions():
    return f"diffusers {diffusers.__version__}, transformers {transformers.__version__}, torch {torch.__version__}"


def rel(p):
    return os.path.relpath(p, ROOT)


def config(folder, comp):
    with open(os.path.join(folder, comp, "config.json")) as f:
        return json.load(f)


def config_text(folder, comp):
    with open(os.path.join(folder, comp, "config.json")) as f:
        return f.read()


def load(folder, comp):
    sd = safetensors.torch.load_file(os.path.join(folder, comp, WEIGHTS[comp]))
    bad = [k for k, v in sd.items() if v.dtype != torch.float16]
    if bad:
        sys.exit(f"{rel(folder)}/{comp}: not float16: {bad[:5]}")
    return sd


def same_values(got, want):
    """want is fp16. got: the same bits (fp16), or (a wider float, e.g. T5's fp32 wo) exactly the same values."""
    if got.shape != want.shape or got.is_meta:
        return False
    if got.dtype == torch.float16:
        return torch.equal(got.view(torch.int16), want.view(torch.int16))
    return got.dtype.is_floating_point and torch.equal(got, want.to(got.dtype))


def compare(tag, got, want):
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        sys.exit(f"{tag}: missing {missing[:8]} ({len(missing)}), extra {extra[:8]} ({len(extra)})")
    bad = [k for k in want if not same_values(got[k], want[k])]
    if bad:
        sys.exit(f"{tag}: {len(bad)} tensors differ, e.g. {bad[:5]}")


def prefixed(prefix, sd):
    return {prefix + k: v for k, v in sd.items()}


def strip(prefix, sd):
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


# --- building ------------------------------------------------------------------------------------------------
def vae_ldm(sd, cfg):
    """diffusers VAE -> LDM names (make_sdxl_key_lists.ldm_vae_names maps name -> shape one to one, in order)."""
    shapes = {k: list(v.shape) for k, v in sd.items()}
    ldm = sdxlkl.ldm_vae_names(shapes, len(cfg["block_out_channels"]))
    if len(ldm) != len(shapes):
        sys.exit(f"ldm_vae_names: {len(shapes)} names became {len(ldm)}")
    out = {}
    for (d, t), (n, s) in zip(sd.items(), ldm.items()):
        if list(t.shape) != s:
            assert s == list(t.shape) + [1, 1] and ".mid.attn_1." in n, (d, n, s)
            t = t.reshape(s)
        out[n] = t
    if any("quant_conv" in k for k in out):
        sys.exit("the VAE has quant convs; SD3's and Flux's have none")
    return out


def clip_l_sd3(sd):
    out = dict(sd)
    if not CLIP_L_TEXT_PROJECTION:
        del out["text_projection.weight"]
    return out


def t5_file(sd):
    """T5EncoderModel's names as Stability / ComfyUI files hold them: save_pretrained's (shared.weight) plus the tied
    encoder.embed_tokens.weight, the same values."""
    assert T5_EMBED not in sd and "shared.weight" in sd
    out = dict(sd)
    out[T5_EMBED] = sd["shared.weight"].clone()
    return out


def sd3_transformer(folder):
    cfg = config(folder, "transformer")
    out = sd3kl.sd3_to_original(load(folder, "transformer"), cfg)  # model.diffusion_model.* (Mapper checks all used)
    return out


def meta(description, folder, comps):
    m = {"format": "pt", "easel.description": description,
         "easel.source": f"{SCRIPT} from {rel(folder)}/; {versions()}"}
    for comp in comps:
        m[f"easel.config.{comp}"] = config_text(folder, comp)
    return m


def build():
    """{path: (tensors, metadata)}"""
    files = {}
    vae_sd3 = prefixed(VAE_PREFIX, vae_ldm(load(SD3, "vae"), config(SD3, "vae")))
    tr_sd3 = sd3_transformer(SD3)
    clip_l = clip_l_sd3(load(SD3, "text_encoder"))
    clip_g = load(SD3, "text_encoder_2")
    t5 = t5_file(load(SD3, "text_encoder_3"))
    incl = dict(tr_sd3)
    incl.update(vae_sd3)
    incl.update(prefixed(CLIP_L_PREFIX, clip_l))
    incl.update(prefixed(CLIP_G_PREFIX, clip_g))
    incl.update(prefixed(T5_PREFIX, t5))
    files[INCL] = (incl, meta("tiny SD3 (medium layout) with CLIP-L, CLIP-G and T5, as Stability's "
                              "sd3_medium_incl_clips_t5xxlfp16.safetensors", SD3,
                              ["transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3"]))
    files[SD3_FILE] = ({**tr_sd3, **vae_sd3}, meta("tiny SD3 (medium layout), transformer and VAE, as Stability's "
                                                   "sd3_medium.safetensors", SD3, ["transformer", "vae"]))
    vae35 = prefixed(VAE_PREFIX, vae_ldm(load(SD35, "vae"), config(SD35, "vae")))
    files[SD35_FILE] = ({**sd3_transformer(SD35), **vae35},
                        meta("tiny SD3.5 medium (qk-norm, attn2 in blocks 0-1), transformer and VAE, as Stability's "
                             "sd3.5_medium.safetensors", SD35, ["transformer", "vae"]))
    files[SD3_CLIP_L] = (clip_l, meta("tiny CLIP-L of pipeline_sd3 (transformers CLIPTextModel names, no "
                                      "text_projection), as Stability's text_encoders/clip_l.safetensors", SD3,
                                      ["text_encoder"]))
    files[SD3_CLIP_G] = (clip_g, meta("tiny CLIP-G of pipeline_sd3 (transformers CLIPTextModelWithProjection names), "
                                      "as Stability's text_encoders/clip_g.safetensors", SD3, ["text_encoder_2"]))
    files[SD3_T5] = (t5, meta("tiny T5 encoder of pipeline_sd3 (T5EncoderModel names, shared.weight and "
                              "encoder.embed_tokens.weight), as Stability's text_encoders/t5xxl_fp16.safetensors", SD3,
                              ["text_encoder_3"]))
    for path, folder, what in ((FLUX_DEV, FLUX, "FLUX.1 dev, as BFL's flux1-dev.safetensors"),
                               (FLUX_SCHNELL, FLUX_S, "FLUX.1 schnell, as BFL's flux1-schnell.safetensors")):
        tr = sd3kl.flux_to_original(load(folder, "transformer"), config(folder, "transformer"))
        files[path] = (tr, meta(f"tiny {what} (transformer only, no prefix)", folder, ["transformer"]))
    files[FLUX_AE] = (vae_ldm(load(FLUX, "vae"), config(FLUX, "vae")),
                      meta("tiny Flux autoencoder in LDM names without prefix, as BFL's ae.safetensors", FLUX, ["vae"]))
    files[FLUX_CLIP_L] = (load(FLUX, "text_encoder"),
                          meta("tiny CLIP-L of pipeline_flux (transformers CLIPTextModel names), as ComfyUI's "
                               "clip_l.safetensors", FLUX, ["text_encoder"]))
    files[FLUX_T5] = (t5_file(load(FLUX, "text_encoder_2")),
                      meta("tiny T5 encoder of pipeline_flux (T5EncoderModel names, shared.weight and "
                           "encoder.embed_tokens.weight), as ComfyUI's t5xxl_fp16.safetensors", FLUX,
                           ["text_encoder_2"]))
    return files


# --- validation, diffusers 0.30.3 ----------------------------------------------------------------------------
def check_loaded(tag, model, want, allow=None):
    sd = model.state_dict()
    metas = [k for k, v in sd.items() if v.is_meta]
    if metas:
        sys.exit(f"{tag}: left on the meta device: {metas[:5]}")
    if allow:
        for k, fn in allow.items():
            if not fn(sd.pop(k)):
                sys.exit(f"{tag}: {k} is not what diffusers should make of it")
            want = {n: v for n, v in want.items() if n != k}
    compare(tag, sd, want)


def check_config(tag, model, ref):
    cfg = model.config.to_dict() if hasattr(model.config, "to_dict") else dict(model.config)
    diff = sorted(k for k in ref if not k.startswith("_") and k not in ("transformers_version", "torch_dtype")
                  and k in cfg and cfg[k] != ref[k] and not (isinstance(ref[k], list) and list(cfg[k]) == ref[k]))
    if diff:
        sys.exit(f"{tag}: config differs from the folder's in {diff}")


def converters_read_all(path, folder, vae_prefix, transformer=True):
    ck = safetensors.torch.load_file(path)
    rec = sdxlkl.Recorder({k: v for k, v in ck.items()})
    vae = sfu.convert_ldm_vae_checkpoint(rec, config(folder, "vae"))
    compare(f"{rel(path)}: convert_ldm_vae_checkpoint", vae, load(folder, "vae"))
    vae_names = {k for k in ck if k.startswith(vae_prefix)} if vae_prefix else set(ck)
    unread = sorted(vae_names - rec.read)
    if unread:
        sys.exit(f"{rel(path)}: convert_ldm_vae_checkpoint never reads {unread[:5]}")
    if transformer:
        left = dict(ck)
        sfu.convert_sd3_transformer_checkpoint_to_diffusers(left)
        rest = [k for k in left if not k.startswith((VAE_PREFIX, "text_encoders."))]
        if rest:
            sys.exit(f"{rel(path)}: convert_sd3_transformer_checkpoint_to_diffusers leaves {rest[:5]}")


def folder_text_encoders(folder):
    return {"text_encoder": CLIPTextModelWithProjection.from_pretrained(folder, subfolder="text_encoder",
                                                                        local_files_only=True),
            "text_encoder_2": CLIPTextModelWithProjection.from_pretrained(folder, subfolder="text_encoder_2",
                                                                          local_files_only=True),
            "text_encoder_3": T5EncoderModel.from_pretrained(folder, subfolder="text_encoder_3", local_files_only=True)}


def check_sd3_files_030():
    from diffusers import StableDiffusion3Pipeline
    want = {c: load(SD3, c) for c in WEIGHTS}
    want_t5 = t5_file(want["text_encoder_3"])
    for path in (INCL, SD3_FILE):
        ck = safetensors.torch.load_file(path)
        mt = sfu.infer_diffusers_model_type(ck)
        if mt != "sd3":
            sys.exit(f"{rel(path)}: infer_diffusers_model_type says {mt}")
        converters_read_all(path, SD3, VAE_PREFIX)
        tr = SD3Transformer2DModel.from_single_file(path, config=SD3, subfolder="transformer", local_files_only=True,
                                                    torch_dtype=torch.float16)
        check_loaded(f"{rel(path)}: SD3Transformer2DModel.from_single_file", tr, want["transformer"])
        vae = AutoencoderKL.from_single_file(path, config=SD3, subfolder="vae", local_files_only=True,
                                             torch_dtype=torch.float16)
        check_loaded(f"{rel(path)}: AutoencoderKL.from_single_file", vae, want["vae"])
    ck = safetensors.torch.load_file(INCL)
    if not (sfu.is_clip_sd3_model(ck) and sfu.is_open_clip_sd3_model(ck) and sfu.is_t5_in_single_file(ck)):
        sys.exit("diffusers does not see the incl file's text encoders")

    hidden_l = config(SD3, "text_encoder")["hidden_size"]
    eye = lambda t: torch.equal(t.float(), torch.eye(hidden_l))  # noqa: E731
    if eye(want["text_encoder"]["text_projection.weight"]):
        sys.exit("the folder's CLIP-L projection is the identity: the text_encoder check proves nothing")
    pipe = StableDiffusion3Pipeline.from_single_file(INCL, config=SD3, local_files_only=True,
                                                     torch_dtype=torch.float16)
    tag = f"{rel(INCL)}: StableDiffusion3Pipeline.from_single_file"
    check_loaded(f"{tag} transformer", pipe.transformer, want["transformer"])
    check_loaded(f"{tag} vae", pipe.vae, want["vae"])
    # diffusers builds SD3's CLIP-L with an identity projection, whatever the file holds.
    check_loaded(f"{tag} text_encoder", pipe.text_encoder, want["text_encoder"],
                 allow={"text_projection.weight": eye} if not CLIP_L_TEXT_PROJECTION else None)
    check_loaded(f"{tag} text_encoder_2", pipe.text_encoder_2, want["text_encoder_2"])
    check_loaded(f"{tag} text_encoder_3", pipe.text_encoder_3, want_t5)
    for comp in ("transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3"):
        check_config(f"{tag} {comp}", getattr(pipe, comp), config(SD3, comp))
    del pipe
    # tiny-sd3.safetensors has no text encoders; they are passed in (diffusers 0.30.3 / 0.31.0 will not load a
    # transformers component from the config folder: _is_model_weights_in_cached_folder looks for
    # diffusion_pytorch_model.* only, so from_single_file raises SingleFileComponentError without them).
    pipe = StableDiffusion3Pipeline.from_single_file(SD3_FILE, config=SD3, local_files_only=True,
                                                     torch_dtype=torch.float16, **folder_text_encoders(SD3))
    tag = f"{rel(SD3_FILE)}: StableDiffusion3Pipeline.from_single_file"
    check_loaded(f"{tag} transformer", pipe.transformer, want["transformer"])
    check_loaded(f"{tag} vae", pipe.vae, want["vae"])
    del pipe

    # encoder.embed_tokens.weight is redundant for diffusers (transformers' T5 encoder embeds with the very module
    # `shared`, so loading shared.weight fills both names); a file without it loads to the same model.
    no_embed = {k: v for k, v in ck.items() if k != T5_PREFIX + T5_EMBED}
    t5 = sfu.create_diffusers_t5_model_from_checkpoint(T5EncoderModel, no_embed, config=SD3,
                                                       subfolder="text_encoder_3", local_files_only=True,
                                                       torch_dtype=torch.float16)
    if t5.encoder.embed_tokens is not t5.shared:
        sys.exit("T5EncoderModel no longer embeds with `shared` itself: revisit t5_file")
    check_loaded("T5 from the incl file less encoder.embed_tokens.weight", t5, want_t5)


def check_encoder_files():
    """The separate text-encoder files: strict loads into transformers models built from the folder configs."""
    def strict(cls, cfg_cls, folder, comp, path, want):
        cfg = config(folder, comp)
        with torch.device("meta"):
            model = cls(cfg_cls(**{k: v for k, v in cfg.items() if k != "architectures"}))
        sd = safetensors.torch.load_file(path)
        model.load_state_dict(sd, strict=True, assign=True)
        check_loaded(f"{rel(path)}: {cls.__name__}.load_state_dict(strict=True)", model, want)

    sd3_l = load(SD3, "text_encoder")
    strict(CLIPTextModel, CLIPTextConfig, SD3, "text_encoder", SD3_CLIP_L, clip_l_sd3(sd3_l))
    strict(CLIPTextModelWithProjection, CLIPTextConfig, SD3, "text_encoder_2", SD3_CLIP_G,
           load(SD3, "text_encoder_2"))
    strict(T5EncoderModel, T5Config, SD3, "text_encoder_3", SD3_T5, t5_file(load(SD3, "text_encoder_3")))
    strict(CLIPTextModel, CLIPTextConfig, FLUX, "text_encoder", FLUX_CLIP_L, load(FLUX, "text_encoder"))
    strict(T5EncoderModel, T5Config, FLUX, "text_encoder_2", FLUX_T5, t5_file(load(FLUX, "text_encoder_2")))
    incl = safetensors.torch.load_file(INCL)
    for prefix, path in ((CLIP_L_PREFIX, SD3_CLIP_L), (CLIP_G_PREFIX, SD3_CLIP_G), (T5_PREFIX, SD3_T5)):
        compare(f"{rel(path)} vs the incl file's {prefix}*", safetensors.torch.load_file(path), strip(prefix, incl))
    sd3_file = safetensors.torch.load_file(SD3_FILE)
    compare("tiny-sd3 vs the incl file's transformer and VAE", sd3_file,
            {k: v for k, v in incl.items() if k.startswith((TRANSFORMER_PREFIX, VAE_PREFIX))})


def patched_flux_converter(inner_dim):
    """diffusers' convert_flux_transformer_checkpoint_to_diffusers with its one literal `inner_dim = 3072` replaced."""
    src = inspect.getsource(sfu.convert_flux_transformer_checkpoint_to_diffusers)
    if src.count("inner_dim = 3072") != 1 or "mlp_ratio = 4.0" not in src:
        sys.exit("convert_flux_transformer_checkpoint_to_diffusers changed: revisit patched_flux_converter")
    ns = dict(vars(sfu))
    exec(compile(src.replace("inner_dim = 3072", f"inner_dim = {inner_dim}"), sfu.__file__, "exec"), ns)
    return ns["convert_flux_transformer_checkpoint_to_diffusers"]


def check_flux_030():
    from diffusers import FluxTransformer2DModel
    errors = {}
    for path, folder, kind in ((FLUX_DEV, FLUX, "flux-dev"), (FLUX_SCHNELL, FLUX_S, "flux-schnell")):
        ck = safetensors.torch.load_file(path)
        mt = sfu.infer_diffusers_model_type(ck)
        if mt != kind:
            sys.exit(f"{rel(path)}: infer_diffusers_model_type says {mt}")
        cfg = config(folder, "transformer")
        want = load(folder, "transformer")
        try:
            FluxTransformer2DModel.from_single_file(path, config=folder, subfolder="transformer",
                                                    local_files_only=True, torch_dtype=torch.float16)
        except RuntimeError as e:
            errors[kind] = str(e).split("\n")[0]
        else:
            sys.exit(f"{rel(path)}: diffusers' own Flux converter now reads a 32-wide model: drop the patch")
        inner = cfg["num_attention_heads"] * cfg["attention_head_dim"]
        entry = sfm.SINGLE_FILE_LOADABLE_CLASSES["FluxTransformer2DModel"]
        real = entry["checkpoint_mapping_fn"]
        entry["checkpoint_mapping_fn"] = patched_flux_converter(inner)
        try:
            model = FluxTransformer2DModel.from_single_file(path, config=folder, subfolder="transformer",
                                                            local_files_only=True, torch_dtype=torch.float16)
            left = dict(ck)
            entry["checkpoint_mapping_fn"](left)
            if left:
                sys.exit(f"{rel(path)}: the converter leaves {sorted(left)[:5]}")
        finally:
            entry["checkpoint_mapping_fn"] = real
        check_loaded(f"{rel(path)}: FluxTransformer2DModel.from_single_file (inner_dim {inner})", model, want)
    converters_read_all(FLUX_AE, FLUX, None, transformer=False)
    vae = AutoencoderKL.from_single_file(FLUX_AE, config=FLUX, subfolder="vae", local_files_only=True,
                                         torch_dtype=torch.float16)
    check_loaded(f"{rel(FLUX_AE)}: AutoencoderKL.from_single_file", vae, load(FLUX, "vae"))
    return errors


def check_schnell_shares():
    for comp in ("vae", "text_encoder", "text_encoder_2"):
        with open(os.path.join(FLUX, comp, WEIGHTS[comp]), "rb") as a, open(os.path.join(FLUX_S, comp, WEIGHTS[comp]),
                                                                             "rb") as b:
            if a.read() != b.read():
                sys.exit(f"pipeline_flux_schnell/{comp} differs from pipeline_flux's: flux_single needs its own")


def main_030():
    assert diffusers.__version__ == "0.30.3", diffusers.__version__
    torch.set_num_threads(1)
    check_schnell_shares()
    files = build()
    os.makedirs(SD3_DIR, exist_ok=True)
    os.makedirs(FLUX_DIR, exist_ok=True)
    for path, (tensors, m) in files.items():
        bad = [k for k, v in tensors.items() if v.dtype != torch.float16]
        if bad:
            sys.exit(f"{rel(path)}: not float16: {bad[:5]}")
        safetensors_io.save_file(tensors, path, m)
        compare(f"{rel(path)} read back", safetensors.torch.load_file(path), tensors)
    check_sd3_files_030()
    check_encoder_files()
    flux_errors = check_flux_030()

    if not os.path.isdir(os.path.join(OVERLAY, "diffusers")):
        sys.exit(f"{OVERLAY} is missing: pip install --no-deps --target {OVERLAY} diffusers==0.31.0")
    env = dict(os.environ, PYTHONPATH=OVERLAY + (os.pathsep + os.environ["PYTHONPATH"]
                                                 if os.environ.get("PYTHONPATH") else ""))
    subprocess.run([sys.executable, os.path.abspath(__file__), "check031"], env=env, check=True)

    total = 0
    for path, (tensors, _) in files.items():
        size = os.path.getsize(path)
        total += size
        tops = sorted({k.split(".")[0] if not k.startswith(("model.", "text_encoders.")) else
                       ".".join(k.split(".")[:3 if k.startswith("text_encoders.") else 2]) for k in tensors})
        print(f"{rel(path)}: {size} bytes, {len(tensors)} tensors; top-level: {', '.join(tops)}")
    print(f"total {total} bytes")
    for kind, msg in flux_errors.items():
        print(f"unpatched FluxTransformer2DModel.from_single_file ({kind}) fails as expected: {msg}")
    print("diffusers 0.30.3 and 0.31.0 single-file loaders: every tensor equal to the folders' "
          "(SD3 CLIP-L text_projection: identity, by diffusers' design)")


# --- validation, diffusers 0.31.0 ----------------------------------------------------------------------------
def main_031():
    assert diffusers.__version__ == "0.31.0", f"run with PYTHONPATH={OVERLAY} (diffusers {diffusers.__version__})"
    from diffusers import StableDiffusion3Pipeline
    torch.set_num_threads(1)
    for path, folder in ((SD35_FILE, SD35), (SD3_FILE, SD3), (INCL, SD3)):
        ck = safetensors.torch.load_file(path)
        left = dict(ck)
        sfu.convert_sd3_transformer_checkpoint_to_diffusers(left)
        rest = [k for k in left if not k.startswith((VAE_PREFIX, "text_encoders."))]
        if rest:
            sys.exit(f"{rel(path)}: 0.31's convert_sd3_transformer_checkpoint_to_diffusers leaves {rest[:5]}")
        tr = SD3Transformer2DModel.from_single_file(path, config=folder, subfolder="transformer",
                                                    local_files_only=True, torch_dtype=torch.float16)
        check_loaded(f"{rel(path)}: 0.31 SD3Transformer2DModel.from_single_file", tr, load(folder, "transformer"))
        check_config(f"{rel(path)}: 0.31 transformer", tr, config(folder, "transformer"))
        vae = AutoencoderKL.from_single_file(path, config=folder, subfolder="vae", local_files_only=True,
                                             torch_dtype=torch.float16)
        check_loaded(f"{rel(path)}: 0.31 AutoencoderKL.from_single_file", vae, load(folder, "vae"))
    pipe = StableDiffusion3Pipeline.from_single_file(SD35_FILE, config=SD35, local_files_only=True,
                                                     torch_dtype=torch.float16, **folder_text_encoders(SD35))
    for comp in ("transformer", "vae"):
        check_loaded(f"{rel(SD35_FILE)}: 0.31 StableDiffusion3Pipeline.from_single_file {comp}", getattr(pipe, comp),
                     load(SD35, comp))
    print(f"diffusers {diffusers.__version__}: SD3.5 medium and SD3 files read back equal; "
          f"infer_diffusers_model_type: sd35 file {sfu.infer_diffusers_model_type(safetensors.torch.load_file(SD35_FILE))}, "
          f"sd3 file {sfu.infer_diffusers_model_type(safetensors.torch.load_file(SD3_FILE))}")


if __name__ == "__main__":
    if sys.argv[1:] == ["check031"]:
        main_031()
    elif not sys.argv[1:]:
        main_030()
    else:
        sys.exit(f"usage: {sys.argv[0]} [check031]")
