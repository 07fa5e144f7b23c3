// SDXL behind the family interfaces: conditioning, the UNet's added conditioning, loading a diffusers folder.
#include "pipeline/families/sdxl.h"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "io/keymap_config_doc.h"
#include "io/model_file.h"
#include "models/clip/prompt_parser.h"
#include "pipeline/families/checkpoint.h"
#include "pipeline/controlnet.h"
#include "pipeline/ip_adapter.h"
#include "pipeline/families/clip_prompt.h"
#include "runtime/ops.h"
#include "runtime/pack_cache.h"

namespace easel {
namespace fs = std::filesystem;

namespace {

struct EncodedPrompt {
    Tensor context;  // [1, 77 * chunks, D1 + D2]
    Tensor pooled;   // [1, projection_dim]
};

// A prompt through both encoders (`text_2` for the second; empty: `text`), in at least `min_chunks` chunks of
// 75 tokens, the shorter side padded with empty chunks.
// SDXL embeddings (clip_l and clip_g vectors) for each encoder.
struct XLEmbeddings {
    std::vector<clip::Embedding> l, g;
};

Result<EncodedPrompt> encode_text(const Ctx& c, const SDXLModel& m, const std::string& text, const std::string& text_2,
                                  int clip_skip, int min_chunks, const XLEmbeddings* emb = nullptr,
                                  std::vector<std::string>* used = nullptr) {
    clip::ChunkOptions o1, o2;
    o1.pad_id = m.pad_id;
    o2.pad_id = m.pad_id_2;
    if (emb) {
        o1.embeddings = &emb->l;
        o2.embeddings = &emb->g;
    }
    EASEL_TRY_ASSIGN(clip::WeightedPrompt w1, clip::tokenize_weighted(m.tokenizer, text, o1));
    // The refiner's one tokenizer takes the first prompt: diffusers pairs [prompt, prompt_2] with its tokenizers
    // and so never reads prompt_2 there.
    const std::string& second = m.refiner || text_2.empty() ? text : text_2;
    EASEL_TRY_ASSIGN(clip::WeightedPrompt w2, clip::tokenize_weighted(m.tokenizer_2, second, o2));
    if (used) {
        note_embeddings(w1, *used);
        note_embeddings(w2, *used);
    }
    const int chunks = std::max({min_chunks, int(w1.chunks.size()), int(w2.chunks.size())});
    EASEL_TRY(pad_chunks(w1, m.tokenizer, o1, chunks));
    EASEL_TRY(pad_chunks(w2, m.tokenizer_2, o2, chunks));
    // diffusers encode_prompt (clip_skip None): hidden_states[-2] of each encoder, no final layer norm; A1111's
    // "Clip skip" k takes k - 1 layers more off. The pooled vector: bigG's text_embeds.
    const int layer = clip_skip + 1;
    std::vector<Tensor> parts;
    EncodedPrompt out;
    for (size_t k = 0; k < w1.chunks.size(); ++k) {
        CLIPTextEncoder::Output g = m.text_encoder_2.encode(
            c, {w2.chunks[k].ids},
            {.clip_skip = layer, .final_norm = false, .pooled = k == 0, .fixes = chunk_fixes(w2.chunks[k])});
        apply_a1111_emphasis(g.hidden, w2.chunks[k].weights);
        if (m.refiner) {
            parts.push_back(g.hidden);  // the refiner cross-attends to bigG alone
        } else {
            Tensor a = m.text_encoder.encode(c, {w1.chunks[k].ids},
                                             {.clip_skip = layer, .final_norm = false, .fixes = chunk_fixes(w1.chunks[k])})
                           .hidden;
            apply_a1111_emphasis(a, w1.chunks[k].weights);
            parts.push_back(ops::concat(c, {a, g.hidden}, 2));
        }
        if (k == 0) out.pooled = g.pooled->contiguous().clone();  // A1111: the first chunk's
    }
    out.context = parts.size() == 1 ? parts[0] : ops::concat(c, parts, 1);
    return out;
}

Tensor zeros_like(const Tensor& t) { return Tensor::zeros(t.shape()); }

}  // namespace

Result<ConditioningPair> SDXLConditioner::encode(const Ctx& c, const PromptRequest& p) const {
    // SDXL embeddings carry clip_l and clip_g vectors (A1111 skips one-encoder ones on SDXL); the refiner uses clip_g.
    XLEmbeddings emb;
    if (!m_.refiner) emb.l = clip_embeddings(p.embeddings.get(), m_.tokenizer, "clip_l", "clip_g", m_.text_encoder.config().hidden_size);
    emb.g = clip_embeddings(p.embeddings.get(), m_.tokenizer_2, "clip_g", m_.refiner ? "" : "clip_l",
                            m_.text_encoder_2.config().hidden_size);
    std::vector<std::string> used;
    EASEL_TRY_ASSIGN(EncodedPrompt pos, encode_text(c, m_, p.prompt, p.prompt_2, p.clip_skip, 1, &emb, &used));
    EncodedPrompt neg;
    if (p.negative.empty() && p.negative_2.empty() && p.zero_empty_negative.value_or(m_.zero_empty_negative)) {
        neg.context = zeros_like(pos.context);
        neg.pooled = zeros_like(pos.pooled);
    } else {
        const int chunks = int(pos.context.size(1) / 77);
        EASEL_TRY_ASSIGN(neg, encode_text(c, m_, p.negative, p.negative_2, p.clip_skip, chunks, &emb, &used));
        if (neg.context.size(1) > pos.context.size(1)) {
            EASEL_TRY_ASSIGN(pos, encode_text(c, m_, p.prompt, p.prompt_2, p.clip_skip, int(neg.context.size(1) / 77), &emb));
        }
    }
    // diffusers _get_add_time_ids: original_size + crops_coords_top_left + target_size, (height, width) order, the
    // negative's defaults being the positive's; the refiner (requires_aesthetics_score): original_size +
    // crops_coords_top_left + (aesthetic_score,), the negative with its own score.
    const SizeConditioning& s = p.size;
    auto ids = [&](double aesthetic) {
        std::vector<float> v = {float(s.original_height ? s.original_height : p.height),
                                float(s.original_width ? s.original_width : p.width), float(s.crop_top), float(s.crop_left)};
        if (m_.refiner) {
            v.push_back(float(aesthetic));
        } else {
            v.push_back(float(s.target_height ? s.target_height : p.height));
            v.push_back(float(s.target_width ? s.target_width : p.width));
        }
        Tensor t = Tensor::empty({1, int64_t(v.size())});
        std::copy(v.begin(), v.end(), t.data<float>());
        return t;
    };
    ConditioningPair r;
    r.cond = {.context = pos.context, .pooled = pos.pooled, .ids = ids(s.aesthetic_score)};
    r.uncond = {.context = neg.context, .pooled = neg.pooled, .ids = ids(s.negative_aesthetic_score)};
    r.embeddings_used = std::move(used);
    return r;
}

Result<Tensor> SDXLDiffusionModel::predict(const Ctx& c, const Tensor& x, float t, const DiffusionInputs& in) const {
    EASEL_ASSERT(in.cond->pooled && in.cond->ids, "SDXLDiffusionModel: conditioning without pooled vector or ids");
    const Tensor xin = in.concat ? ops::concat(c, {x, *in.concat}, 1) : x;
    const UNet::Added added{*in.cond->pooled, *in.cond->ids};
    EASEL_TRY_ASSIGN(const auto control, control_residuals(in.control, unet_.config()));
    EASEL_TRY(check_image_prompts(*in.cond, unet_.config()));
    return unet_.forward(c, xin, t, in.cond->context, &added, control ? &*control : nullptr, in.cond->extra_kv);
}

std::string SDXLModel::describe() const {
    std::string s = fmt::format("{}: {} ({}), weights {}\n  text encoder: {}\n  text encoder 2: {}\n  unet: {}\n  vae: {}",
                                path, model_kind_name(info), layout_name(info.layout), dtype_name(info.weight_dtype),
                                info.text.summary(), info.text_2.summary(), info.unet.summary(), info.vae.summary());
    for (const auto& n : info.notes) s += "\n  note: " + n;
    for (const auto& n : notes) s += "\n  note: " + n;
    return s;
}

namespace {

// Everything but the weights: checks, configs, tokenizers (into `full` when given).
Status fill_sdxl_spec(ModelSpec& m, SDXLModel* full, const Checkpoint& ck, const std::string& path,
                      const LoadOptions& options) {
    ModelInfo info = ck.info;
    if (!options.component_files.empty())
        return Error::unsupported("--text-encoder / --vae files: easel reads them for single-file SD3 and Flux checkpoints", path);
    if (info.family != ModelFamily::SDXL)
        return Error::invalid_argument(fmt::format("a {} model, not SDXL", family_name(info.family)), path);
    if (!info.has_unet || !info.has_vae || !info.has_text_encoder_2)
        return Error::bad_file(path, fmt::format("an SDXL folder without {}{}{}", info.has_unet ? "" : "unet ",
                                                 info.has_vae ? "" : "vae ", info.has_text_encoder_2 ? "" : "text_encoder_2"));
    if (!info.text_2.has_projection)
        return Error::bad_file(path, "text_encoder_2 has no text_projection (SDXL's pooled vector needs it)");
    if (options.prediction) info.unet.prediction = *options.prediction;
    EASEL_TRY(fill_unet_vae_spec(m, info, options, path));
    // The added conditioning's width says which: the base takes 6 ids (sizes and crop), the refiner 5 (crop and
    // an aesthetic score) and no CLIP-L.
    const int pooled = info.text_2.projection_dim;
    const int id_width = info.unet.addition_embed_input_dim - pooled;
    const int num_ids = id_width % info.unet.addition_time_embed_dim == 0 ? id_width / info.unet.addition_time_embed_dim : -1;
    if (num_ids != 6 && num_ids != 5)
        return Error::unsupported(fmt::format("the UNet's added conditioning takes {} numbers: the pooled {} and {} of "
                                              "width {}; SDXL takes 6 ids (base) or 5 (refiner)",
                                              info.unet.addition_embed_input_dim, pooled, id_width,
                                              info.unet.addition_time_embed_dim),
                                  path);
    const bool refiner = num_ids == 5;
    if (!refiner && !info.has_text_encoder)
        return Error::bad_file(path, "an SDXL base without text_encoder (CLIP ViT-L)");

    m.path = path;
    m.name = fs::path(path).filename().replace_extension("").string();
    m.family = "sdxl";
    m.notes = ck.notes;
    m.defaults = ck.defaults;
    if (ck.sources.scheduler_json) {
        EASEL_TRY_ASSIGN(m.scheduler_config, parse_scheduler_config(*ck.sources.scheduler_json,
                                                                    (fs::path(path) / "scheduler" / "scheduler_config.json").string()));
    } else {
        // A single file carries none: diffusers' from_single_file takes the SDXL repository's (base and refiner
        // alike: EulerDiscreteScheduler, "leading" spacing, steps_offset 1), not a scheduler class's defaults.
        EASEL_TRY_ASSIGN(m.scheduler_config,
                         parse_scheduler_config(R"({"_class_name": "EulerDiscreteScheduler", "beta_end": 0.012,
                                                    "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                                                    "interpolation_type": "linear", "num_train_timesteps": 1000,
                                                    "prediction_type": "epsilon", "sample_max_value": 1.0,
                                                    "set_alpha_to_one": false, "skip_prk_steps": true,
                                                    "steps_offset": 1, "timestep_spacing": "leading",
                                                    "trained_betas": null, "use_karras_sigmas": false})",
                                                "stabilityai/stable-diffusion-xl-base-1.0 scheduler_config.json "
                                                "(assumed for a single file)"));
    }
    // The refiner has no tokenizer/: its first tokenizer is never used (a copy of the second stands in).
    EASEL_TRY_ASSIGN(ClipTokenizerAndPad t1, load_clip_tokenizer(refiner ? ck.tokenizer_2_dir : ck.tokenizer_dir, false,
                                                                options.vocab_path));
    EASEL_TRY_ASSIGN(ClipTokenizerAndPad t2, load_clip_tokenizer(ck.tokenizer_2_dir, true, options.vocab_path));
    for (auto [tok, cfg, name] : {std::tuple{&t1, &info.text, "text_encoder"}, std::tuple{&t2, &info.text_2, "text_encoder_2"}})
        if ((name != std::string_view("text_encoder") || !refiner) && int64_t(tok->tokenizer.id_limit()) > cfg->vocab_size)
            return Error::invalid_argument(
                fmt::format("the tokenizer ({}) gives ids up to {}, but {}'s token embedding has {} rows: this model needs "
                            "its own vocabulary (--vocab PATH)", tok->describe, tok->tokenizer.id_limit() - 1, name,
                            cfg->vocab_size), path);
    m.notes.push_back(fmt::format("tokenizers: {}; {}", t1.describe, t2.describe));
    if (refiner) m.notes.push_back("SDXL refiner: OpenCLIP bigG conditioning, aesthetic score ids");
    if (full) {
        full->refiner = refiner;
        full->tokenizer = std::move(t1.tokenizer);
        full->pad_id = t1.pad_id;
        full->tokenizer_2 = std::move(t2.tokenizer);
        full->pad_id_2 = t2.pad_id;
        if (auto it = ck.pipeline_options.find("force_zeros_for_empty_prompt"); it != ck.pipeline_options.end())
            full->zero_empty_negative = it->second != "false";
    }
    m.info = std::move(info);
    return ok();
}

}  // namespace

Result<ModelSpec> load_sdxl_model_spec(const std::string& path, const LoadOptions& options) {
    EASEL_TRY_ASSIGN(Checkpoint ck, read_checkpoint(path));
    ModelSpec m;
    EASEL_TRY(fill_sdxl_spec(m, nullptr, ck, path, options));
    return m;
}

Result<std::unique_ptr<SDXLModel>> load_sdxl_model(const std::string& path, const LoadOptions& options) {
    EASEL_TRY_ASSIGN(Checkpoint ck, read_checkpoint(path));
    auto m = std::make_unique<SDXLModel>();
    EASEL_TRY(fill_sdxl_spec(*m, m.get(), ck, path, options));
    SDXLModel& s = *m;
    EASEL_TRY(load_networks(ck.weights, path, options, s, [&s](ParamLoader& loader) {
        if (!s.refiner) s.text_encoder = CLIPTextEncoder::declare(ParamScope(loader, "text_encoder"), s.info.text);
        s.text_encoder_2 = CLIPTextEncoder::declare(ParamScope(loader, "text_encoder_2"), s.info.text_2);
        s.unet = UNet::declare(ParamScope(loader, "unet"), s.info.unet);
        s.vae = VAE::declare(ParamScope(loader, "vae"), s.info.vae, s.has_vae_encoder);
    }));
    return m;
}

Family sdxl_family() {
    return checkpoint_family<SDXLModel>(
        "sdxl", [](const ModelInfo& i) { return i.family == ModelFamily::SDXL; }, load_sdxl_model, load_sdxl_model_spec);
}

}  // namespace easel
