// Flux behind the family interfaces: CLIP pooled + T5 context, the packed transformer, dynamic-shift flow
// sampling, guidance as an input; loading a diffusers folder.
#include "pipeline/families/flux.h"

#include <filesystem>

#include <fmt/format.h>

#include "io/keymap_config_doc.h"
#include "io/model_file.h"
#include "models/clip/prompt_parser.h"
#include "pipeline/families/checkpoint.h"
#include "pipeline/families/clip_prompt.h"
#include "runtime/ops.h"

namespace easel {
namespace fs = std::filesystem;

Result<ConditioningPair> FluxConditioner::encode(const Ctx& c, const PromptRequest& p) const {
    EASEL_TRY_ASSIGN(const std::string text, prompt_plain_text(p.prompt));
    EASEL_TRY_ASSIGN(const std::string text_2, prompt_plain_text(p.prompt_2.empty() ? p.prompt : p.prompt_2));
    EASEL_TRY_ASSIGN(std::vector<int32_t> ids, m_.tokenizer.encode_padded(text, m_.pad_id));
    const CLIPTextEncoder::Output o = m_.text_encoder.encode(c, {ids}, {.pooled = true});
    const int t5 = p.max_sequence_length > 0 ? p.max_sequence_length : m_.t5_tokens;
    const Tensor ctx = m_.text_encoder_2.encode(c, {m_.tokenizer_2.encode(text_2, t5)});
    ConditioningPair r;
    r.cond = {.context = ctx, .pooled = o.pooled->contiguous().clone()};
    if (!p.unconditional) {
        r.uncond = r.cond;  // never evaluated: FluxPipeline's way (no negative prompt, no CFG pass)
        return r;
    }
    // True CFG, when asked for (--cfg-scale other than 1): the negative prompt through both encoders.
    EASEL_TRY_ASSIGN(const std::string neg, prompt_plain_text(p.negative));
    EASEL_TRY_ASSIGN(const std::string neg_2, prompt_plain_text(p.negative_2.empty() ? p.negative : p.negative_2));
    EASEL_TRY_ASSIGN(std::vector<int32_t> nids, m_.tokenizer.encode_padded(neg, m_.pad_id));
    const CLIPTextEncoder::Output no = m_.text_encoder.encode(c, {nids}, {.pooled = true});
    r.uncond = {.context = m_.text_encoder_2.encode(c, {m_.tokenizer_2.encode(neg_2, t5)}), .pooled = no.pooled->contiguous().clone()};
    return r;
}

Result<Tensor> FluxDiffusionModel::predict(const Ctx& c, const Tensor& x, float t, const DiffusionInputs& in) const {
    if (in.concat) return Error::unsupported("inpainting models on Flux", "mask");
    if (!in.control.empty()) return Error::unsupported("ControlNets on a Flux model", "control");
    if (!in.cond->extra_kv.empty()) return Error::unsupported("IP-Adapters on a Flux model", "ip_adapter");
    EASEL_ASSERT(in.cond->pooled, "FluxDiffusionModel: conditioning without a pooled vector");
    const FluxConfig& cfg = f_.config();
    std::optional<float> guidance;
    if (cfg.guidance_embeds) guidance = in.cond->guidance.value_or(3.5f);  // the driver sets it
    const int64_t h = x.size(2), w = x.size(3), L = in.cond->context.size(1);
    const std::vector<std::array<float, 3>> txt_ids(size_t(L), {0.0f, 0.0f, 0.0f});
    const Tensor out = f_.forward(c, flux_pack(x), t, guidance, in.cond->context, *in.cond->pooled, flux_image_ids(h, w), txt_ids);
    return flux_unpack(out, h, w);
}

std::string FluxModel::describe() const {
    std::string s = fmt::format("{}: flux ({}), weights {}\n  text encoder: {}\n  text encoder 2: {}\n  transformer: {}\n  vae: {}",
                                path, layout_name(info.layout), dtype_name(info.weight_dtype), text_config.summary(), t5_config.summary(),
                                transformer_config.summary(), info.vae.summary());
    for (const auto& n : notes) s += "\n  note: " + n;
    return s;
}

namespace {

bool is_flux_folder(const DiffusersFolder& f) {
    if (f.pipeline_class.rfind("Flux", 0) == 0) return true;
    const DiffusersComponent* t = f.component("transformer");
    return t && t->class_name == "FluxTransformer2DModel";
}

Status fill_flux_spec(ModelSpec& m, FluxModel* full, const ComponentSet& f, const std::string& path, const LoadOptions& options) {
    if (options.skip_t5) return Error::invalid_argument("--no-t5: Flux has no context without T5 (its CLIP gives the pooled vector only)", path);
    EASEL_TRY_ASSIGN(FluxConfig fx, FluxConfig::detect_from_weights(f.weights, "transformer."));
    if (auto j = f.config("transformer")) {
        EASEL_TRY_ASSIGN(FluxConfig fc, FluxConfig::from_diffusers_json(*j));
        EASEL_TRY(check_flux_agrees(fx, fc, (fs::path(path) / "transformer" / "config.json").string()));
        fx = fc;
    }
    EASEL_TRY(fx.validate());
    EASEL_TRY_ASSIGN(const VAEConfig vae, component_vae_config(f, path, 0.3611f, 0.1159f, "FLUX.1"));  // FLUX.1's ae
    if (vae.latent_channels * 4 != fx.in_channels)
        return Error::bad_file(path, fmt::format("the transformer takes {} packed channels, the VAE's latent has {} (x 4 = {})",
                                                 fx.in_channels, vae.latent_channels, vae.latent_channels * 4));
    EASEL_TRY_ASSIGN(const CLIPTextConfig t1, component_clip_config(f, "text_encoder", path));
    const int pooled = t1.has_projection ? t1.projection_dim : t1.hidden_size;
    if (t1.has_projection || pooled != fx.pooled_projection_dim)
        return Error::bad_file(path, fmt::format("the transformer takes a {}-wide pooled vector; text_encoder gives {}{}",
                                                 fx.pooled_projection_dim, pooled,
                                                 t1.has_projection ? " through a projection (Flux uses CLIPTextModel's pooler output)" : ""));
    EASEL_TRY_ASSIGN(T5Config t5, T5Config::detect_from_weights(f.weights, "text_encoder_2."));
    if (auto j = f.config("text_encoder_2")) {
        EASEL_TRY_ASSIGN(T5Config c, T5Config::from_diffusers_json(*j));
        EASEL_TRY(check_t5_agrees(t5, c, (fs::path(path) / "text_encoder_2" / "config.json").string()));
        t5 = c;
    }
    if (t5.d_model != fx.joint_attention_dim)
        return Error::bad_file(path, fmt::format("T5 is {} wide but the transformer's context is {}", t5.d_model, fx.joint_attention_dim));
    FlowSchedulerConfig sched;
    if (auto j = f.config("scheduler", "scheduler_config.json")) {
        EASEL_TRY_ASSIGN(sched, parse_flow_scheduler_config(*j, (fs::path(path) / "scheduler" / "scheduler_config.json").string()));
    } else if (fx.guidance_embeds) {
        sched.dynamic = DynamicShift{};  // FLUX.1-dev's scheduler_config.json
        m.notes.push_back("no scheduler config: FLUX.1-dev's (resolution-dependent shift)");
    } else {
        sched.shift = 1.0;  // FLUX.1-schnell's: shift 1, no dynamic shifting
        m.notes.push_back("no scheduler config: FLUX.1-schnell's (shift 1)");
    }

    m.path = path;
    m.name = fs::path(path).filename().string();
    if (m.name.empty()) m.name = fs::path(path).parent_path().filename().string();
    m.family = "flux";
    m.info = ModelInfo{};
    m.info.family = ModelFamily::Flux;
    m.info.layout = f.folder.path.empty() ? CheckpointLayout::LdmSingleFile : CheckpointLayout::Diffusers;
    if (const Tensor* probe = f.weights.find("transformer.x_embedder.weight")) m.info.weight_dtype = probe->dtype();
    if (std::string q = quantized_weights_note(f.weights); !q.empty()) m.notes.push_back(std::move(q));
    m.info.has_vae = true;
    m.info.vae = vae;
    m.info.has_text_encoder = true;
    m.info.text = t1;
    m.latent.channels = vae.latent_channels;
    m.latent.scaling_factor = vae.scaling_factor;
    m.latent.shift_factor = vae.shift_factor;
    m.latent.downscale = vae.downscale();
    m.latent.side_multiple = 2;  // 2x2 packing
    m.latent.native_side = std::max(2, 1024 / m.latent.downscale / 2 * 2);  // FLUX.1 is trained at 1024 px
    m.sampling = std::make_shared<FlowModelSampling>(sched.shift, /*linear_sigmas=*/true, sched.dynamic);
    m.guidance = fx.guidance_embeds ? GuidanceMode::Distilled : GuidanceMode::None;
    m.default_guidance = 3.5;  // FLUX.1-dev's model card, FluxPipeline's examples and ComfyUI's FluxGuidance default
    if (!m.defaults.cfg_scale) {
        m.defaults.cfg_scale = 1.0;  // both were distilled to run without CFG (FluxPipeline has no CFG pass)
        m.defaults.source = "Flux runs without classifier-free guidance";
    }
    m.has_vae_encoder = options.with_vae_encoder;
    m.notes.push_back(sched.dynamic ? fmt::format("flow matching, resolution-dependent shift (mu {}..{} over {}..{} tokens)",
                                                  sched.dynamic->base_shift, sched.dynamic->max_shift,
                                                  sched.dynamic->base_seq_len, sched.dynamic->max_seq_len)
                                    : fmt::format("flow matching, shift {}", sched.shift));
    m.notes.push_back(fx.guidance_embeds ? "guidance-distilled (dev): --guidance is an input (3.5); CFG 1 (no negative prompt) unless asked"
                                         : "distilled to run unguided (schnell): CFG 1 (no negative prompt) unless asked");

    EASEL_TRY_ASSIGN(ClipTokenizerAndPad k1, load_clip_tokenizer(f.subfolder("tokenizer"), false, options.vocab_path));
    if (int64_t(k1.tokenizer.id_limit()) > t1.vocab_size)
        return Error::invalid_argument(fmt::format("the tokenizer ({}) gives ids up to {}, but text_encoder's embedding has {} rows",
                                                   k1.describe, k1.tokenizer.id_limit() - 1, t1.vocab_size), path);
    k1.tokenizer.split_out("<|startoftext|>", k1.tokenizer.bos_id());
    k1.tokenizer.split_out("<|endoftext|>", k1.tokenizer.eos_id());
    EASEL_TRY_ASSIGN(T5Tokenizer k2, load_t5_tokenizer(f.subfolder("tokenizer_2"), options, path, t5.vocab_size, "text_encoder_2"));
    m.notes.push_back(fmt::format("tokenizers: {}; {}", k1.describe, k2.source()));
    if (full) {
        full->tokenizer = std::move(k1.tokenizer);
        full->pad_id = k1.pad_id;
        full->tokenizer_2 = std::move(k2);
        full->text_config = t1;
        full->t5_config = t5;
        full->transformer_config = fx;
    }
    return ok();
}

Result<ComponentSet> read_flux_folder(const std::string& path, const LoadOptions& options) {
    std::error_code ec;
    if (!fs::is_directory(path, ec)) {
        EASEL_TRY_ASSIGN(ComponentSet f, read_dit_single_file(path, DiTFamily::Flux, options));
        for (auto [comp, how] : {std::pair{"vae", "--vae FILE (BFL's ae.safetensors)"},
                                 std::pair{"text_encoder", "--text-encoder FILE (ComfyUI's clip_l)"},
                                 std::pair{"text_encoder_2", "--text-encoder FILE (ComfyUI's t5xxl)"}})
            if (!f.has(comp))
                return Error::invalid_argument(fmt::format("this Flux single file has no {}: give it with {}", comp, how), path);
        return f;
    }
    if (!options.component_files.empty())
        return Error::invalid_argument("--text-encoder / --vae files are for single-file checkpoints; a folder has its own", path);
    return read_component_set(path, {"transformer", "vae", "text_encoder", "text_encoder_2"}, {}, options.variant,
                              "a Flux folder");
}

}  // namespace

Result<ModelSpec> load_flux_model_spec(const std::string& path, const LoadOptions& options) {
    EASEL_TRY_ASSIGN(ComponentSet f, read_flux_folder(path, options));
    ModelSpec m;
    EASEL_TRY(fill_flux_spec(m, nullptr, f, path, options));
    return m;
}

Result<std::unique_ptr<FluxModel>> load_flux_model(const std::string& path, const LoadOptions& options) {
    EASEL_TRY_ASSIGN(ComponentSet f, read_flux_folder(path, options));
    auto m = std::make_unique<FluxModel>();
    EASEL_TRY(fill_flux_spec(*m, m.get(), f, path, options));
    FluxModel& s = *m;
    EASEL_TRY(load_networks(f.weights, path, options, s, [&s](ParamLoader& loader) {
        s.text_encoder = CLIPTextEncoder::declare(ParamScope(loader, "text_encoder"), s.text_config);
        s.text_encoder_2 = T5Encoder::declare(ParamScope(loader, "text_encoder_2"), s.t5_config);
        s.transformer = FluxTransformer::declare(ParamScope(loader, "transformer"), s.transformer_config);
        s.vae = VAE::declare(ParamScope(loader, "vae"), s.info.vae, s.has_vae_encoder);
    }, "transformer."));
    return m;
}

Family flux_family() {
    Family f;
    f.name = "flux";
    f.claim = [](const std::string& path) -> Result<Family::Claim> { return claim_dit(path, is_flux_folder, "double_blocks."); };
    f.load = [](const std::string& path, const LoadOptions& o) -> Result<std::unique_ptr<Model>> {
        EASEL_TRY_ASSIGN(std::unique_ptr<FluxModel> m, load_flux_model(path, o));
        return std::unique_ptr<Model>(std::move(m));
    };
    f.load_spec = load_flux_model_spec;
    return f;
}

}  // namespace easel
