#include "pipeline/families/sd.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <chrono>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "io/diffusers_folder.h"
#include "io/keymap_config_doc.h"
#include "io/keymap_ldm.h"
#include "io/model_file.h"
#include "runtime/pack_cache.h"

namespace easel {
namespace fs = std::filesystem;

namespace {

std::optional<std::string> read_text_if_exists(const fs::path& p) {
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) return std::nullopt;
    if (fs::file_size(p, ec) > (16u << 20)) return std::nullopt;
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

struct Gathered {
    WeightSet weights;  // diffusers names: unet.*, vae.*, text_encoder.*
    ModelInfo info;     // detected on the weights as the file holds them (layout, family, configs)
    ModelConfigSources sources;
    std::string tokenizer_dir;  // diffusers tokenizer/ folder, if any
    ModelDefaults defaults;
    std::vector<std::string> notes;
};

constexpr const char* kDefaultsFile = "easel_defaults.json";
constexpr const char* kDefaultCfgKey = "easel.default_cfg_scale";

Status read_defaults(Gathered& g, const std::string& path, bool folder) {
    if (folder) {
        const fs::path f = fs::path(path) / kDefaultsFile;
        std::error_code ec;
        if (!fs::exists(f, ec)) return ok();
        auto text = read_text_if_exists(f);
        if (!text) return Error::bad_file(f.string(), "cannot be read as a file of at most 16 MiB");
        EASEL_TRY_ASSIGN(g.defaults, parse_model_defaults(*text, f.string()));
    } else {
        const auto it = g.weights.metadata.find(kDefaultCfgKey);
        if (it == g.weights.metadata.end()) return ok();
        const std::string source = fmt::format("{} metadata {}", path, kDefaultCfgKey);
        auto node = parse_json_config(it->second, source);
        if (!node || !node->is_scalar()) return Error::bad_file(source, fmt::format("expected a number, got '{}'", it->second.substr(0, 40)));
        auto v = node->as_double(kDefaultCfgKey);
        if (!v) return Error::bad_file(source, fmt::format("expected a number, got '{}'", it->second.substr(0, 40)));
        EASEL_TRY(check_default_cfg_scale(*v, source));
        g.defaults.cfg_scale = *v;
        g.defaults.source = source;
    }
    if (g.defaults.cfg_scale)
        g.notes.push_back(fmt::format("recommended CFG scale {} ({}), used when none is given", *g.defaults.cfg_scale,
                                      g.defaults.source));
    return ok();
}

Result<Gathered> gather(const std::string& path) {
    Gathered g;
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        EASEL_TRY_ASSIGN(DiffusersFolder folder, open_diffusers_folder(path));
        for (const char* comp : {"unet", "vae", "text_encoder"}) {
            EASEL_TRY_ASSIGN(WeightSet w, load_component_weights(folder, comp));
            EASEL_TRY(g.weights.merge(std::move(w), std::string(comp) + "."));
        }
        g.weights.source = path;
        auto cfg = [&](const char* comp, const char* file) -> std::optional<std::string> {
            auto r = component_config(folder, comp, file);
            if (r) return std::move(r).value();
            return std::nullopt;
        };
        g.sources.unet_json = cfg("unet", "config.json");
        g.sources.vae_json = cfg("vae", "config.json");
        g.sources.text_encoder_json = cfg("text_encoder", "config.json");
        g.sources.scheduler_json = cfg("scheduler", "scheduler_config.json");
        if (fs::is_directory(fs::path(path) / "tokenizer", ec)) g.tokenizer_dir = (fs::path(path) / "tokenizer").string();
        auto info = detect_model(g.weights, g.sources);
        if (!info) return info.error().within(path);
        g.info = std::move(info).value();
        EASEL_TRY(read_defaults(g, path, true));
        return g;
    }
    if (!fs::exists(path, ec)) return Error::not_found("no such model file or folder", path);
    EASEL_TRY_ASSIGN(WeightSet w, read_weights(path));
    // What the weights cannot tell travels beside a single file as an LDM yaml (as AUTOMATIC1111 reads it).
    g.sources.ldm_yaml = read_text_if_exists(fs::path(path).replace_extension(".yaml"));
    if (g.sources.ldm_yaml) g.notes.push_back("config: " + fs::path(path).replace_extension(".yaml").string());
    // Detect on the names as stored (the layout, and for LDM files the layer counts the rename needs), then
    // rename an LDM file to diffusers names with the detected layout.
    auto info = detect_model(w, g.sources);
    if (!info) return info.error().within(path);
    g.info = std::move(info).value();
    if (g.info.layout == CheckpointLayout::LdmSingleFile) {
        LdmKeymapOptions opt;
        if (g.info.has_unet) opt.unet = ldm_layout_of(g.info.unet);
        if (g.info.has_vae) opt.vae_levels = g.info.vae.num_levels();
        if (g.info.has_text_encoder) opt.open_clip_layers = g.info.text.num_layers;
        KeymapReport report;
        EASEL_TRY_ASSIGN(g.weights, ldm_to_diffusers(std::move(w), opt, &report));
        if (!report.ignored.empty())
            g.notes.push_back(fmt::format("ignored {} non-model tensors (EMA copies, buffers)", report.ignored.size()));
    } else {
        g.weights = std::move(w);
    }
    g.weights.source = path;
    EASEL_TRY(read_defaults(g, path, false));
    return g;
}

}  // namespace

namespace {
// Which CLIP vocabulary a model gets: --vocab; else the model's own (a diffusers tokenizer/ folder, or the
// vocabulary easel's own single files carry in their metadata); else $EASEL_VOCAB; else the built-in one.
struct TokenizerChoice {
    std::optional<clip::VocabSource> vocab;  // unset: the easel.tokenizer.* metadata of the file
    std::string describe;                    // for `easel info` and the model's notes
};

Result<TokenizerChoice> choose_tokenizer(const Gathered& g, const std::string& path, const std::string& vocab_flag) {
    if (vocab_flag.empty() && !g.tokenizer_dir.empty()) {
        clip::VocabSource own{g.tokenizer_dir, "the model's tokenizer/ folder"};
        return TokenizerChoice{own, own.describe()};
    }
    if (vocab_flag.empty() && g.weights.metadata.count("easel.tokenizer.vocab_json") &&
        g.weights.metadata.count("easel.tokenizer.merges_txt"))
        return TokenizerChoice{std::nullopt, fmt::format("the vocabulary in {}'s metadata (easel.tokenizer.*)", path)};
    EASEL_TRY_ASSIGN(clip::VocabSource v, clip::find_vocab(vocab_flag));
    return TokenizerChoice{v, v.describe()};
}

Result<clip::CLIPTokenizer> load_tokenizer(const TokenizerChoice& c, const Gathered& g, const std::string& path) {
    if (c.vocab) return c.vocab->load();
    return clip::CLIPTokenizer::from_vocab_json_text(g.weights.metadata.at("easel.tokenizer.vocab_json"),
                                                     g.weights.metadata.at("easel.tokenizer.merges_txt"),
                                                     path + " metadata");
}
}  // namespace

Result<ModelInspection> inspect_model(const std::string& path, const std::string& vocab_flag) {
    EASEL_TRY_ASSIGN(Gathered g, gather(path));
    ModelInspection r;
    r.info = g.info;
    r.notes = g.notes;
    if (g.info.has_text_encoder) {
        EASEL_TRY_ASSIGN(TokenizerChoice t, choose_tokenizer(g, path, vocab_flag));
        r.tokenizer = t.describe;
    }
    return r;
}

Result<clip::CLIPTokenizer> load_model_tokenizer(const std::string& path, const std::string& vocab_flag) {
    EASEL_TRY_ASSIGN(Gathered g, gather(path));
    EASEL_TRY_ASSIGN(TokenizerChoice t, choose_tokenizer(g, path, vocab_flag));
    return load_tokenizer(t, g, path);
}

namespace {
// What load_sd_model and load_sd_model_spec share: detection, the checks, the tokenizer, the configs (no weights).
// The tokenizer goes to `tokenizer` (a spec only checks it).
Status fill_spec(ModelSpec& m, clip::CLIPTokenizer& tokenizer, int32_t& pad_id, const Gathered& g,
                 const std::string& path, const LoadOptions& options) {
    ModelInfo info = g.info;
    if (info.family != ModelFamily::SD1 && info.family != ModelFamily::SD2)
        return Error::unsupported(fmt::format("{} models are not supported yet", family_name(info.family)), path);
    if (!info.has_unet || !info.has_vae || !info.has_text_encoder)
        return Error::bad_file(path, fmt::format("the checkpoint lacks a component (unet: {}, vae: {}, text encoder: {})",
                                                 info.has_unet ? "yes" : "no", info.has_vae ? "yes" : "no",
                                                 info.has_text_encoder ? "yes" : "no"));
    if (options.prediction) info.unet.prediction = *options.prediction;
    if (info.unet.prediction == Prediction::Unknown)
        return Error::invalid_argument(
            "this SD 2.x checkpoint does not say whether it predicts noise (512-base) or velocity (768-v); "
            "pass --prediction eps or --prediction v, or put the model's yaml beside it",
            path);
    // The UNet's input: the latent alone, or for inpainting models the latent, the mask and the masked image's
    // latent (detect_model sets `inpainting` from the input channels).
    const int expected_in = info.unet.out_channels + (info.inpainting ? 1 + info.unet.out_channels : 0);
    if (info.unet.in_channels != expected_in || info.vae.latent_channels != info.unet.out_channels)
        return Error::unsupported(fmt::format("a UNet with {} input and {} output channels over a {}-channel VAE "
                                              "(expected 4 in and out, or 9 in for inpainting models, over 4)",
                                              info.unet.in_channels, info.unet.out_channels, info.vae.latent_channels),
                                  path);

    m.path = path;
    m.name = fs::path(path).filename().replace_extension("").string();
    m.family = "sd";
    m.notes = g.notes;
    m.defaults = g.defaults;
    if (g.sources.scheduler_json) {
        EASEL_TRY_ASSIGN(m.scheduler_config, parse_scheduler_config(*g.sources.scheduler_json,
                                                                    (fs::path(path) / "scheduler" / "scheduler_config.json").string()));
    }

    EASEL_TRY_ASSIGN(TokenizerChoice choice, choose_tokenizer(g, path, options.vocab_path));
    EASEL_TRY_ASSIGN(tokenizer, load_tokenizer(choice, g, path));
    m.notes.push_back("tokenizer: " + choice.describe);
    if (int64_t(tokenizer.id_limit()) > info.text.vocab_size)
        return Error::invalid_argument(
            fmt::format("the tokenizer ({}) gives ids up to {}, but the text encoder's token embedding has {} rows: this "
                        "model needs its own vocabulary (--vocab PATH, e.g. its diffusers tokenizer/ folder)",
                        choice.describe, tokenizer.id_limit() - 1, info.text.vocab_size), path);
    pad_id = info.family == ModelFamily::SD2 ? 0 : tokenizer.eos_id();
    m.latent.channels = info.unet.out_channels;
    m.latent.scaling_factor = info.vae.scaling_factor;
    m.latent.shift_factor = 0.0f;
    m.latent.downscale = info.vae.downscale();
    m.latent.side_multiple = info.unet.latent_multiple();
    m.latent.native_side = info.unet.sample_size;
    m.inpainting = info.inpainting;
    m.sampling = std::make_shared<DiscreteModelSampling>(DiscreteSchedule::stable_diffusion(), info.unet.prediction);
    // An inpainting UNet's txt2img still encodes a picture (all grey) for its extra input.
    m.has_vae_encoder = options.with_vae_encoder || info.inpainting;
    m.info = std::move(info);
    return ok();
}
}  // namespace

Result<ModelSpec> load_sd_model_spec(const std::string& path, const LoadOptions& options) {
    EASEL_TRY_ASSIGN(Gathered g, gather(path));
    ModelSpec m;
    clip::CLIPTokenizer tokenizer;
    int32_t pad_id = 0;
    EASEL_TRY(fill_spec(m, tokenizer, pad_id, g, path, options));
    return m;
}

Result<std::unique_ptr<SDModel>> load_sd_model(const std::string& path, const LoadOptions& options) {
    EASEL_TRY_ASSIGN(Gathered g, gather(path));
    auto m = std::make_unique<SDModel>();
    EASEL_TRY(fill_spec(*m, m->tokenizer, m->pad_id, g, path, options));
    const ModelInfo& info = m->info;

    ParamLoader loader(g.weights, options.precision);
    for (const auto& a : options.adapters) loader.add_adapter(a);
    WeightCacheSession cache = open_weight_cache(path, options, loader);
    m->text_encoder = CLIPTextEncoder::declare(ParamScope(loader, "text_encoder"), info.text);
    m->unet = UNet::declare(ParamScope(loader, "unet"), info.unet);
    m->vae = VAE::declare(ParamScope(loader, "vae"), info.vae, m->has_vae_encoder);
    EASEL_TRY(loader.finish());
    EASEL_TRY(loader.check_adapters_used());
    finish_weight_cache(std::move(cache), options, *m);
    return m;
}

Family sd_family() {
    Family f;
    f.name = "sd";
    f.claim = [](const std::string& path) -> Result<Family::Claim> {
        EASEL_TRY_ASSIGN(Gathered g, gather(path));
        Family::Claim c;
        c.mine = g.info.family == ModelFamily::SD1 || g.info.family == ModelFamily::SD2;
        if (!c.mine) c.what = fmt::format("a {} model", family_name(g.info.family));
        return c;
    };
    f.load = [](const std::string& path, const LoadOptions& o) -> Result<std::unique_ptr<Model>> {
        EASEL_TRY_ASSIGN(std::unique_ptr<SDModel> m, load_sd_model(path, o));
        return std::unique_ptr<Model>(std::move(m));
    };
    f.load_spec = load_sd_model_spec;
    return f;
}

}  // namespace easel
