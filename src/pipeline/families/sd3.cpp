// SD3 behind the family interfaces: three text encoders into one context, the MMDiT, flow sampling, loading a
// diffusers folder.
#include "pipeline/families/sd3.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "io/diffusers_folder.h"
#include "io/keymap_config_doc.h"
#include "io/model_file.h"
#include "models/clip/prompt_parser.h"
#include "pipeline/families/checkpoint.h"
#include "pipeline/families/clip_prompt.h"
#include "runtime/ops.h"

namespace easel {
namespace fs = std::filesystem;

namespace {

struct EncodedPrompt {
    Tensor context;  // [1, 77 * chunks + T5 tokens, joint width]
    Tensor pooled;   // [1, P1 + P2]
};

Result<EncodedPrompt> encode_text(const Ctx& c, const SD3Model& m, const std::string& text, const std::string& text_2,
                                  int clip_skip, int min_chunks, int t5_tokens) {
    clip::ChunkOptions o1, o2;
    o1.pad_id = m.pad_id;
    o2.pad_id = m.pad_id_2;
    EASEL_TRY_ASSIGN(clip::WeightedPrompt w1, clip::tokenize_weighted(m.tokenizer, text, o1));
    EASEL_TRY_ASSIGN(clip::WeightedPrompt w2, clip::tokenize_weighted(m.tokenizer_2, text_2.empty() ? text : text_2, o2));
    const int chunks = std::max({min_chunks, int(w1.chunks.size()), int(w2.chunks.size())});
    EASEL_TRY(pad_chunks(w1, m.tokenizer, o1, chunks));
    EASEL_TRY(pad_chunks(w2, m.tokenizer_2, o2, chunks));
    const int64_t joint = m.transformer_config.joint_attention_dim;
    const int64_t d1 = m.text_config.hidden_size, d2 = m.text_2_config.hidden_size;
    // diffusers _get_clip_prompt_embeds (clip_skip None): hidden_states[-2], no final norm; pooled = text_embeds.
    const int layer = clip_skip + 1;
    std::vector<Tensor> parts;
    EncodedPrompt out;
    for (size_t k = 0; k < w1.chunks.size(); ++k) {
        CLIPTextEncoder::Output a = m.text_encoder.encode(c, {w1.chunks[k].ids},
                                                          {.clip_skip = layer, .final_norm = false, .pooled = k == 0});
        CLIPTextEncoder::Output g = m.text_encoder_2.encode(c, {w2.chunks[k].ids},
                                                            {.clip_skip = layer, .final_norm = false, .pooled = k == 0});
        apply_a1111_emphasis(a.hidden, w1.chunks[k].weights);
        apply_a1111_emphasis(g.hidden, w2.chunks[k].weights);
        // cat(L, G) along features, zero-padded to the T5 width (torch.nn.functional.pad).
        Tensor block = Tensor::zeros({1, 77, joint});
        const Tensor ah = a.hidden.contiguous(), gh = g.hidden.contiguous();
        for (int64_t t = 0; t < 77; ++t) {
            float* row = block.data<float>() + t * joint;
            std::memcpy(row, ah.data<float>() + t * d1, size_t(d1) * sizeof(float));
            std::memcpy(row + d1, gh.data<float>() + t * d2, size_t(d2) * sizeof(float));
        }
        parts.push_back(block);
        if (k == 0) out.pooled = ops::concat(c, {a.pooled->contiguous(), g.pooled->contiguous()}, 1).clone();
    }
    // T5: the plain text, max_sequence_length tokens; without T5, diffusers' 77 rows of zeros.
    if (m.tokenizer_3) {
        EASEL_TRY_ASSIGN(const std::string plain, prompt_plain_text(text));
        const std::vector<int32_t> ids = m.tokenizer_3->encode(plain, t5_tokens);
        parts.push_back(m.text_encoder_3.encode(c, {ids}));
    } else {
        parts.push_back(Tensor::zeros({1, 77, joint}));
    }
    out.context = ops::concat(c, parts, 1).clone();
    return out;
}

}  // namespace

Result<ConditioningPair> SD3Conditioner::encode(const Ctx& c, const PromptRequest& p) const {
    const int t5 = p.max_sequence_length > 0 ? p.max_sequence_length : m_.t5_tokens;
    EASEL_TRY_ASSIGN(EncodedPrompt pos, encode_text(c, m_, p.prompt, p.prompt_2, p.clip_skip, 1, t5));
    const int64_t t5_rows = m_.tokenizer_3 ? t5 : 77;  // without T5: diffusers' 77 zero rows whatever the length
    const int pos_chunks = int((pos.context.size(1) - t5_rows) / 77);
    EASEL_TRY_ASSIGN(EncodedPrompt neg, encode_text(c, m_, p.negative, p.negative_2, p.clip_skip, pos_chunks, t5));
    if (neg.context.size(1) > pos.context.size(1)) {
        EASEL_TRY_ASSIGN(pos, encode_text(c, m_, p.prompt, p.prompt_2, p.clip_skip, int((neg.context.size(1) - t5_rows) / 77), t5));
    }
    ConditioningPair r;
    r.cond = {.context = pos.context, .pooled = pos.pooled};
    r.uncond = {.context = neg.context, .pooled = neg.pooled};
    return r;
}

Result<Tensor> SD3DiffusionModel::predict(const Ctx& c, const Tensor& x, float t, const DiffusionInputs& in) const {
    if (in.concat) return Error::unsupported("inpainting models: SD3 has no inpainting transformer", "mask");
    if (!in.control.empty()) return Error::unsupported("ControlNets on an SD3 model", "control");
    if (!in.cond->extra_kv.empty()) return Error::unsupported("IP-Adapters on an SD3 model", "ip_adapter");
    EASEL_ASSERT(in.cond->pooled, "SD3DiffusionModel: conditioning without a pooled vector");
    for (int b : in.cond->skip_layers)
        if (b < 0 || b >= dit_.num_blocks())
            return Error::invalid_argument(fmt::format("block {} to skip; this transformer has blocks 0 to {}", b,
                                                       dit_.num_blocks() - 1), "skip_layers");
    return dit_.forward(c, x, t, in.cond->context, *in.cond->pooled, in.cond->skip_layers);
}

std::string SD3Model::describe() const {
    std::string s = fmt::format("{}: sd3 ({}), weights {}\n  text encoder: {}\n  text encoder 2: {}\n  text encoder 3: {}"
                                "\n  transformer: {}\n  vae: {}",
                                path, layout_name(info.layout), dtype_name(info.weight_dtype), text_config.summary(), text_2_config.summary(),
                                t5_config ? t5_config->summary() : std::string("none (zeros in its place)"),
                                transformer_config.summary(), info.vae.summary());
    for (const auto& n : notes) s += "\n  note: " + n;
    return s;
}

namespace {

// SD3's CLIP configs: CLIP-G must have its projection (the pooled vector is projected); CLIP-L may lack it, and then
// pools unprojected (diffusers' single-file loader puts an identity in its place, as Stability's and ComfyUI's code
// take it).
Result<CLIPTextConfig> sd3_clip_config(const ComponentSet& f, const std::string& component, const std::string& path,
                                       bool projection_optional) {
    EASEL_TRY_ASSIGN(CLIPTextConfig c, component_clip_config(f, component, path));
    if (!c.has_projection && !projection_optional)
        return Error::bad_file(path + " " + component, "no text_projection: SD3's pooled vector needs CLIPTextModelWithProjection");
    if (!c.has_projection) c.projection_dim = c.hidden_size;
    return c;
}

bool is_sd3_folder(const DiffusersFolder& f) {
    if (f.pipeline_class.rfind("StableDiffusion3", 0) == 0) return true;
    const DiffusersComponent* t = f.component("transformer");
    return t && t->class_name == "SD3Transformer2DModel";
}

Result<ComponentSet> read_sd3_folder(const std::string& path, const LoadOptions& options) {
    std::error_code ec;
    if (!fs::is_directory(path, ec)) {
        EASEL_TRY_ASSIGN(ComponentSet f, read_dit_single_file(path, DiTFamily::SD3, options));
        // A single file's CLIP-L pools unprojected: diffusers' single-file loader puts an identity in place of any
        // text_projection, ComfyUI and Stability's sd3_infer.py take CLIP-L's pooled output as it is.
        f.weights.erase("text_encoder.text_projection.weight");
        for (const char* comp : {"vae", "text_encoder", "text_encoder_2"})
            if (!f.has(comp))
                return Error::invalid_argument(fmt::format("this SD3 single file has no {}: give it with {}", comp,
                                                           std::string_view(comp) == "vae" ? "--vae FILE"
                                                                                           : "--text-encoder FILE (ComfyUI's clip_l / clip_g)"),
                                               path);
        return f;
    }
    if (!options.component_files.empty())
        return Error::invalid_argument("--text-encoder / --vae files are for single-file checkpoints; a folder has its own", path);
    return read_component_set(path, {"transformer", "vae", "text_encoder", "text_encoder_2"}, {"text_encoder_3"},
                              options.variant, "an SD3 folder");
}

Status fill_sd3_spec(ModelSpec& m, SD3Model* full, const ComponentSet& f, const std::string& path, const LoadOptions& options) {
    auto config = [&](const char* comp, const char* file = "config.json") { return f.config(comp, file); };
    const std::string where = path;
    // Transformer.
    EASEL_TRY_ASSIGN(MMDiTConfig dit, MMDiTConfig::detect_from_weights(f.weights, "transformer."));
    if (auto j = config("transformer")) {
        EASEL_TRY_ASSIGN(MMDiTConfig fc, MMDiTConfig::from_diffusers_json(*j));
        EASEL_TRY(check_mmdit_agrees(dit, fc, (fs::path(path) / "transformer" / "config.json").string()));
        dit = fc;
    }
    // VAE.
    EASEL_TRY_ASSIGN(const VAEConfig vae, component_vae_config(f, path, 1.5305f, 0.0609f, "SD3"));  // SD3's VAE
    if (vae.latent_channels != dit.in_channels || dit.out_channels != dit.in_channels)
        return Error::bad_file(where, fmt::format("the transformer takes {} channels and gives {}, the VAE's latent has {}",
                                                  dit.in_channels, dit.out_channels, vae.latent_channels));
    // Text encoders.
    EASEL_TRY_ASSIGN(CLIPTextConfig t1, sd3_clip_config(f, "text_encoder", path, /*projection_optional=*/true));
    EASEL_TRY_ASSIGN(CLIPTextConfig t2, sd3_clip_config(f, "text_encoder_2", path, /*projection_optional=*/false));
    if (t1.hidden_size + t2.hidden_size > dit.joint_attention_dim)
        return Error::bad_file(where, fmt::format("the CLIP states ({} + {}) are wider than the transformer's context ({})",
                                                  t1.hidden_size, t2.hidden_size, dit.joint_attention_dim));
    if (t1.projection_dim + t2.projection_dim != dit.pooled_projection_dim)
        return Error::bad_file(where, fmt::format("the pooled CLIP vectors ({} + {}) do not fit the transformer's {}",
                                                  t1.projection_dim, t2.projection_dim, dit.pooled_projection_dim));
    std::optional<T5Config> t5;
    if (f.has("text_encoder_3") && !options.skip_t5) {
        EASEL_TRY_ASSIGN(T5Config c, T5Config::detect_from_weights(f.weights, "text_encoder_3."));
        if (auto j = config("text_encoder_3")) {
            EASEL_TRY_ASSIGN(T5Config fc, T5Config::from_diffusers_json(*j));
            EASEL_TRY(check_t5_agrees(c, fc, (fs::path(path) / "text_encoder_3" / "config.json").string()));
            c = fc;
        }
        if (c.d_model != dit.joint_attention_dim)
            return Error::bad_file(where, fmt::format("T5 is {} wide but the transformer's context is {}", c.d_model,
                                                      dit.joint_attention_dim));
        t5 = c;
    }
    // Scheduler.
    double shift = 3.0;  // SD3 medium's scheduler_config.json
    if (auto j = config("scheduler", "scheduler_config.json")) {
        const std::string source = (fs::path(path) / "scheduler" / "scheduler_config.json").string();
        EASEL_TRY_ASSIGN(const FlowSchedulerConfig sc, parse_flow_scheduler_config(*j, source));
        if (sc.dynamic) return Error::unsupported("use_dynamic_shifting (Flux's resolution-dependent shift) for an SD3 model", source);
        shift = sc.shift;
    } else {
        m.notes.push_back("no scheduler/scheduler_config.json: flow shift 3.0 (SD3 medium's)");
    }

    m.path = path;
    m.name = fs::path(path).filename().string();
    if (m.name.empty()) m.name = fs::path(path).parent_path().filename().string();
    m.family = "sd3";
    m.info = ModelInfo{};
    m.info.family = ModelFamily::SD3;
    m.info.layout = f.folder.path.empty() ? CheckpointLayout::LdmSingleFile : CheckpointLayout::Diffusers;
    if (const Tensor* probe = f.weights.find("transformer.context_embedder.weight")) m.info.weight_dtype = probe->dtype();
    if (std::string q = quantized_weights_note(f.weights); !q.empty()) m.notes.push_back(std::move(q));
    m.info.has_vae = true;
    m.info.vae = vae;
    m.info.has_text_encoder = m.info.has_text_encoder_2 = true;
    m.info.text = t1;
    m.info.text_2 = t2;
    m.latent.channels = vae.latent_channels;
    m.latent.scaling_factor = vae.scaling_factor;
    m.latent.shift_factor = vae.shift_factor;
    m.latent.downscale = vae.downscale();
    m.latent.side_multiple = dit.patch_size;
    m.latent.native_side = dit.sample_size;
    m.latent.max_side = dit.pos_embed_max_size * dit.patch_size;
    m.sampling = std::make_shared<FlowModelSampling>(shift);
    m.has_vae_encoder = options.with_vae_encoder;
    m.notes.push_back(fmt::format("flow matching, shift {}", shift));
    if (!t5) m.notes.push_back("no text_encoder_3 (T5): its part of the context is zeros, as diffusers does");

    // Tokenizers.
    auto dir = [&](const char* name) { return f.subfolder(name); };
    EASEL_TRY_ASSIGN(ClipTokenizerAndPad k1, load_clip_tokenizer(dir("tokenizer"), false, options.vocab_path));
    EASEL_TRY_ASSIGN(ClipTokenizerAndPad k2, load_clip_tokenizer(dir("tokenizer_2"), true, options.vocab_path));
    for (auto [tok, cfg, name] : {std::tuple{&k1, &t1, "text_encoder"}, std::tuple{&k2, &t2, "text_encoder_2"}})
        if (int64_t(tok->tokenizer.id_limit()) > cfg->vocab_size)
            return Error::invalid_argument(fmt::format("the tokenizer ({}) gives ids up to {}, but {}'s token embedding has {} "
                                                       "rows: this model needs its own vocabulary", tok->describe,
                                                       tok->tokenizer.id_limit() - 1, name, cfg->vocab_size), path);
    std::optional<T5Tokenizer> k3;
    if (t5) {
        EASEL_TRY_ASSIGN(T5Tokenizer t, load_t5_tokenizer(dir("tokenizer_3"), options, path, t5->vocab_size, "text_encoder_3"));
        k3 = std::move(t);
    }
    m.notes.push_back(fmt::format("tokenizers: {}; {}{}", k1.describe, k2.describe, k3 ? "; " + k3->source() : std::string()));
    // transformers splits a tokenizer's special tokens out of the text before BPE (diffusers and ComfyUI both
    // tokenize that way): BOS and EOS, and tokenizer_2's "!" pad, so every "!" of a prompt is id 0 there.
    for (ClipTokenizerAndPad* k : {&k1, &k2}) {
        k->tokenizer.split_out("<|startoftext|>", k->tokenizer.bos_id());
        k->tokenizer.split_out("<|endoftext|>", k->tokenizer.eos_id());
        if (k->tokenizer.token_to_id("!") == k->pad_id) k->tokenizer.split_out("!", k->pad_id);
    }
    if (full) {
        full->tokenizer = std::move(k1.tokenizer);
        full->pad_id = k1.pad_id;
        full->tokenizer_2 = std::move(k2.tokenizer);
        full->pad_id_2 = k2.pad_id;
        full->tokenizer_3 = std::move(k3);
        full->text_config = t1;
        full->text_2_config = t2;
        full->t5_config = t5;
        full->transformer_config = dit;
    }
    m.skippable_blocks = dit.num_layers;
    return ok();
}

}  // namespace

Result<ModelSpec> load_sd3_model_spec(const std::string& path, const LoadOptions& options) {
    EASEL_TRY_ASSIGN(ComponentSet f, read_sd3_folder(path, options));
    ModelSpec m;
    EASEL_TRY(fill_sd3_spec(m, nullptr, f, path, options));
    return m;
}

Result<std::unique_ptr<SD3Model>> load_sd3_model(const std::string& path, const LoadOptions& options) {
    EASEL_TRY_ASSIGN(ComponentSet f, read_sd3_folder(path, options));
    auto m = std::make_unique<SD3Model>();
    EASEL_TRY(fill_sd3_spec(*m, m.get(), f, path, options));
    SD3Model& s = *m;
    EASEL_TRY(load_networks(f.weights, path, options, s, [&s](ParamLoader& loader) {
        s.text_encoder = CLIPTextEncoder::declare(ParamScope(loader, "text_encoder"), s.text_config);
        s.text_encoder_2 = CLIPTextEncoder::declare(ParamScope(loader, "text_encoder_2"), s.text_2_config);
        if (s.t5_config) s.text_encoder_3 = T5Encoder::declare(ParamScope(loader, "text_encoder_3"), *s.t5_config);
        s.transformer = MMDiT::declare(ParamScope(loader, "transformer"), s.transformer_config);
        s.vae = VAE::declare(ParamScope(loader, "vae"), s.info.vae, s.has_vae_encoder);
    }, "transformer."));
    return m;
}

Family sd3_family() {
    Family f;
    f.name = "sd3";
    f.claim = [](const std::string& path) -> Result<Family::Claim> { return claim_dit(path, is_sd3_folder, "joint_blocks."); };
    f.load = [](const std::string& path, const LoadOptions& o) -> Result<std::unique_ptr<Model>> {
        EASEL_TRY_ASSIGN(std::unique_ptr<SD3Model> m, load_sd3_model(path, o));
        return std::unique_ptr<Model>(std::move(m));
    };
    f.load_spec = load_sd3_model_spec;
    return f;
}

}  // namespace easel
