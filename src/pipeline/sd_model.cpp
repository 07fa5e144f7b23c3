#include "pipeline/sd_model.h"

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

// A recommended cfg_scale's bounds, the same in easel_defaults.json and in the single-file metadata key.
Status check_cfg_scale(double v, const std::string& source) {
    if (!std::isfinite(v) || v < 0 || v > 100)
        return Error::bad_file(source, fmt::format("cfg_scale must be a number between 0 and 100, got {}", v));
    return ok();
}

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
        EASEL_TRY(check_cfg_scale(*v, source));
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

DiffusersSchedulerConfig SchedulerFileConfig::for_scheduler(DiffusersScheduler scheduler) const {
    DiffusersSchedulerConfig c = base;
    if (!spacing_given)
        c.timestep_spacing = (scheduler == DiffusersScheduler::Ddim || scheduler == DiffusersScheduler::Pndm)
                                 ? TimestepSpacing::Leading
                                 : TimestepSpacing::Linspace;
    return c;
}

Status SchedulerFileConfig::check_supported(DiffusersScheduler scheduler) const {
    for (const Departure& d : departures)
        if (std::find(d.classes.begin(), d.classes.end(), scheduler) != d.classes.end())
            return Error::unsupported(fmt::format("{} {} for {}: easel implements {} {} only", d.field, d.value,
                                                  diffusers_scheduler_class(scheduler), d.field, d.expected),
                                      source);
    return ok();
}

namespace {
// The fields of diffusers 0.30's scheduler classes that change what a step does, at the values easel implements
// (each class's default, and SD's scheduler_config.json), and the classes that read each one.
Status collect_departures(const ConfigNode& cfg, SchedulerFileConfig& out) {
    using DS = DiffusersScheduler;
    const std::vector<DS> all = {DS::Euler, DS::EulerAncestral, DS::Heun, DS::Lms, DS::DpmSolverMultistep,
                                 DS::Ddim, DS::Pndm, DS::UniPC, DS::Lcm};
    auto flag = [&](const char* field, bool expected, std::vector<DS> classes) -> Status {
        EASEL_TRY_ASSIGN(auto v, cfg.get_bool(field));
        if (v && *v != expected)
            out.departures.push_back({field, *v ? "true" : "false", expected ? "true" : "false", std::move(classes)});
        return ok();
    };
    auto text = [&](const char* field, std::vector<std::string> accepted, std::vector<DS> classes) -> Status {
        EASEL_TRY_ASSIGN(auto v, cfg.get_string(field));
        if (v && std::find(accepted.begin(), accepted.end(), *v) == accepted.end())
            out.departures.push_back({field, "'" + *v + "'", accepted.empty() ? "null" : "'" + accepted.front() + "'",
                                      std::move(classes)});
        return ok();
    };
    auto number = [&](const char* field, double expected, std::vector<DS> classes) -> Status {
        EASEL_TRY_ASSIGN(auto v, cfg.get_double(field));
        if (v && *v != expected)
            out.departures.push_back({field, fmt::format("{}", *v), fmt::format("{}", expected), std::move(classes)});
        return ok();
    };
    EASEL_TRY(flag("thresholding", false, {DS::Ddim, DS::DpmSolverMultistep, DS::UniPC, DS::Lcm}));
    EASEL_TRY(flag("rescale_betas_zero_snr", false, all));
    EASEL_TRY(flag("use_exponential_sigmas", false, all));
    EASEL_TRY(flag("use_beta_sigmas", false, all));
    EASEL_TRY(flag("clip_sample", false, {DS::Ddim, DS::Lcm}));
    EASEL_TRY(flag("set_alpha_to_one", false, {DS::Ddim, DS::Pndm}));
    EASEL_TRY(flag("skip_prk_steps", true, {DS::Pndm}));
    EASEL_TRY(text("timestep_type", {"discrete"}, {DS::Euler}));
    EASEL_TRY(text("interpolation_type", {"linear"}, {DS::Euler}));
    EASEL_TRY(number("solver_order", 2, {DS::DpmSolverMultistep, DS::UniPC}));
    EASEL_TRY(flag("lower_order_final", true, {DS::DpmSolverMultistep, DS::UniPC}));
    EASEL_TRY(text("final_sigmas_type", {"zero"}, {DS::DpmSolverMultistep, DS::UniPC}));
    EASEL_TRY(text("algorithm_type", {"dpmsolver++"}, {DS::DpmSolverMultistep}));
    // DPM-Solver turns UniPC's solver types into midpoint, and UniPC turns DPM-Solver's into bh2.
    EASEL_TRY(text("solver_type", {"midpoint", "bh1", "bh2"}, {DS::DpmSolverMultistep}));
    EASEL_TRY(text("solver_type", {"bh2", "midpoint", "heun", "logrho"}, {DS::UniPC}));
    EASEL_TRY(flag("euler_at_final", false, {DS::DpmSolverMultistep}));
    EASEL_TRY(flag("use_lu_lambdas", false, {DS::DpmSolverMultistep}));
    EASEL_TRY(text("variance_type", {}, {DS::DpmSolverMultistep}));  // null only ("learned_range": DeepFloyd)
    // Default -inf, which diffusers writes as -Infinity (read as the scalar -inf, see parse_json_config).
    if (const ConfigNode* l = cfg.get("lambda_min_clipped"); !l || l->is_null() || !(l->is_scalar() && l->scalar() == "-inf"))
        EASEL_TRY(number("lambda_min_clipped", -INFINITY, {DS::DpmSolverMultistep}));
    EASEL_TRY(flag("predict_x0", true, {DS::UniPC}));
    if (const ConfigNode* dc = cfg.get("disable_corrector"); dc && !dc->is_null()) {
        EASEL_TRY_ASSIGN(auto steps, dc->as_int_list("disable_corrector"));
        if (!steps.empty())
            out.departures.push_back({"disable_corrector", fmt::format("[{}]", fmt::join(steps, ", ")), "[]", {DS::UniPC}});
    }
    EASEL_TRY(number("original_inference_steps", 50, {DS::Lcm}));
    EASEL_TRY(number("timestep_scaling", 10.0, {DS::Lcm}));
    return ok();
}

Result<SchedulerFileConfig> parse_scheduler_config_fields(std::string_view json, const std::string& source) {
    EASEL_TRY_ASSIGN(ConfigNode cfg, parse_json_config(json, source));
    SchedulerFileConfig out;
    DiffusersSchedulerConfig& c = out.base;
    EASEL_TRY_ASSIGN(auto n, cfg.get_int("num_train_timesteps"));
    if (n) {
        if (*n < 2 || *n > 100000)
            return Error::bad_file(source, fmt::format("num_train_timesteps must be between 2 and 100000, got {}", *n));
        c.num_train_timesteps = int(*n);
    }
    EASEL_TRY_ASSIGN(auto bs, cfg.get_double("beta_start"));
    EASEL_TRY_ASSIGN(auto be, cfg.get_double("beta_end"));
    if (bs) c.beta_start = *bs;
    if (be) c.beta_end = *be;
    if (!(c.beta_start > 0 && c.beta_start < c.beta_end && c.beta_end < 1))
        return Error::bad_file(source, fmt::format("expected 0 < beta_start < beta_end < 1, got {} and {}", c.beta_start, c.beta_end));
    EASEL_TRY_ASSIGN(const std::string schedule, cfg.get_string_or("beta_schedule", "scaled_linear"));
    if (schedule != "scaled_linear")
        return Error::unsupported(fmt::format("beta_schedule '{}' (only scaled_linear, SD's, is supported)", schedule), source);
    if (const ConfigNode* tb = cfg.get("trained_betas"); tb && !tb->is_null())
        return Error::unsupported("trained_betas (a custom beta list) is not supported", source);
    EASEL_TRY_ASSIGN(auto spacing, cfg.get_string("timestep_spacing"));
    if (spacing) {
        out.spacing_given = true;
        if (*spacing == "leading") c.timestep_spacing = TimestepSpacing::Leading;
        else if (*spacing == "linspace") c.timestep_spacing = TimestepSpacing::Linspace;
        else if (*spacing == "trailing") c.timestep_spacing = TimestepSpacing::Trailing;
        else return Error::bad_file(source, fmt::format("timestep_spacing must be leading, linspace or trailing, got '{}'", *spacing));
    }
    EASEL_TRY_ASSIGN(auto off, cfg.get_int("steps_offset"));
    if (off && (*off < 0 || *off > 100)) return Error::bad_file(source, fmt::format("steps_offset must be 0..100, got {}", *off));
    c.steps_offset = off ? int(*off) : 0;  // every class's default is 0
    EASEL_TRY_ASSIGN(auto karras, cfg.get_bool("use_karras_sigmas"));
    c.use_karras_sigmas = karras.value_or(false);
    out.source = source;
    EASEL_TRY(collect_departures(cfg, out));
    return out;
}
}  // namespace

Result<SchedulerFileConfig> parse_scheduler_config(std::string_view json, const std::string& source) {
    auto r = parse_scheduler_config_fields(json, source);
    if (!r && r.error().to_string().find(source) == std::string::npos) return r.error().within(source);
    return r;
}

Result<ModelDefaults> parse_model_defaults(std::string_view json, const std::string& source) {
    auto named = [&](const Error& e) { return e.to_string().find(source) == std::string::npos ? e.within(source) : e; };
    auto parsed = parse_json_config(json, source);
    if (!parsed) return named(parsed.error());
    const ConfigNode& root = *parsed;
    if (!root.is_map()) return Error::bad_file(source, "expected a JSON object such as {\"cfg_scale\": 3}");
    ModelDefaults d;
    d.source = source;
    for (const auto& [key, value] : root.entries()) {
        if (!key.empty() && key[0] == '_') continue;
        if (key != "cfg_scale")
            return Error::bad_file(source, fmt::format("unknown setting '{}' (easel reads cfg_scale; keys starting with _ "
                                                       "are comments)", key));
    }
    auto cfg = root.get_double("cfg_scale");
    if (!cfg) return named(cfg.error());
    if (*cfg) {
        EASEL_TRY(check_cfg_scale(**cfg, source));
        d.cfg_scale = **cfg;
    }
    return d;
}

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

std::string SDModel::describe() const {
    std::string s = fmt::format("{}: {} ({}), weights {}\n  text encoder: {}\n  unet: {}\n  vae: {}", path,
                                family_name(info.family), layout_name(info.layout), dtype_name(info.weight_dtype),
                                info.text.summary(), info.unet.summary(), info.vae.summary());
    for (const auto& n : info.notes) s += "\n  note: " + n;
    for (const auto& n : notes) s += "\n  note: " + n;
    return s;
}

namespace {
// Writes what the load added to the cache: whether it worked, and a note that says how it went (or why not).
std::pair<bool, std::string> commit_weight_cache(PackCache& cache) {
    const auto t0 = std::chrono::steady_clock::now();
    const uint64_t bytes = cache.added_bytes();
    const size_t n = cache.added();
    Status st = cache.commit();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!st) return {false, "the weight cache could not be written (loading goes on without it): " + st.error().to_string()};
    return {true, fmt::format("{} packed weights ({:.2f} GB) written to the weight cache {} in {:.1f} s; later loads "
                              "map them", n, double(bytes) / 1e9, cache.path(), secs)};
}
}  // namespace

std::string SDModel::wait_for_weight_cache() {
    if (!weight_cache_write.valid()) return {};
    auto [written, note] = weight_cache_write.get();
    weight_cache = written ? WeightCacheUse::Written : WeightCacheUse::Failed;
    weight_cache_note = note;
    return note;
}

namespace {
// What load_sd_model and load_model_spec share: detection, the checks, the tokenizer, the configs (no weights).
Status fill_spec(ModelSpec& m, const Gathered& g, const std::string& path, const LoadOptions& options) {
    ModelInfo info = g.info;
    if (info.family != ModelFamily::SD1 && info.family != ModelFamily::SD2 && info.family != ModelFamily::SD1Inpaint &&
        info.family != ModelFamily::SD2Inpaint)
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

    m.path = path;
    m.name = fs::path(path).filename().replace_extension("").string();
    m.notes = g.notes;
    m.defaults = g.defaults;
    if (g.sources.scheduler_json) {
        EASEL_TRY_ASSIGN(m.scheduler_config, parse_scheduler_config(*g.sources.scheduler_json,
                                                                    (fs::path(path) / "scheduler" / "scheduler_config.json").string()));
    }

    EASEL_TRY_ASSIGN(TokenizerChoice tokenizer, choose_tokenizer(g, path, options.vocab_path));
    EASEL_TRY_ASSIGN(m.tokenizer, load_tokenizer(tokenizer, g, path));
    m.notes.push_back("tokenizer: " + tokenizer.describe);
    if (int64_t(m.tokenizer.id_limit()) > info.text.vocab_size)
        return Error::invalid_argument(
            fmt::format("the tokenizer ({}) gives ids up to {}, but the text encoder's token embedding has {} rows: this "
                        "model needs its own vocabulary (--vocab PATH, e.g. its diffusers tokenizer/ folder)",
                        tokenizer.describe, m.tokenizer.id_limit() - 1, info.text.vocab_size), path);
    const bool sd2 = info.family == ModelFamily::SD2 || info.family == ModelFamily::SD2Inpaint;
    m.pad_id = sd2 ? 0 : m.tokenizer.eos_id();
    // An inpainting (9-channel) UNet's txt2img still encodes a picture (all grey) for its extra input.
    m.has_vae_encoder = options.with_vae_encoder || info.unet.in_channels == 9;
    m.info = std::move(info);
    return ok();
}
}  // namespace

Result<ModelSpec> load_model_spec(const std::string& path, const LoadOptions& options) {
    EASEL_TRY_ASSIGN(Gathered g, gather(path));
    ModelSpec m;
    EASEL_TRY(fill_spec(m, g, path, options));
    return m;
}

Result<std::unique_ptr<SDModel>> load_sd_model(const std::string& path, const LoadOptions& options) {
    EASEL_TRY_ASSIGN(Gathered g, gather(path));
    auto m = std::make_unique<SDModel>();
    EASEL_TRY(fill_spec(*m, g, path, options));
    const ModelInfo& info = m->info;

    ParamLoader loader(g.weights, options.precision);
    std::unique_ptr<PackCache> cache;
    std::string rebuilt;  // why an existing cache file was not used
    if (!options.weight_cache_dir.empty()) {
        // The key covers what decides the packed bytes: the files, the precision, the kernel variant, the
        // variant of a diffusers folder's weights. A model that cannot be keyed is simply packed.
        auto key = PackCache::model_key(path, fmt::format("precision {} isa {} variant '{}'", precision_name(options.precision),
                                                          isa_name(active_isa()), options.variant));
        if (key && key->total_bytes >= options.weight_cache_min_bytes) {
            cache = PackCache::open(options.weight_cache_dir, key->key, options.weight_cache_max_bytes);
            if (!cache->note().empty()) rebuilt = "the weight cache file was not used and is rebuilt: " + cache->note();
            loader.set_pack_cache(cache.get());
        }
    }
    m->text_encoder = CLIPTextEncoder::declare(ParamScope(loader, "text_encoder"), info.text);
    m->unet = UNet::declare(ParamScope(loader, "unet"), info.unet);
    m->vae = VAE::declare(ParamScope(loader, "vae"), info.vae, m->has_vae_encoder);
    EASEL_TRY(loader.finish());
    if (cache) {
        if (cache->hits()) {
            m->weight_cache = cache->copies() ? WeightCacheUse::Copied : WeightCacheUse::Mapped;
            m->weight_cache_note = fmt::format("{} packed weights ({:.2f} GB) {} from the weight cache {}{}", cache->hits(),
                                               double(cache->hit_bytes()) / 1e9, cache->copies() ? "copied" : "mapped",
                                               cache->path(),
                                               cache->copies() ? " into huge pages (the file is mapped in 4 KiB pages here)" : "");
        }
        if (cache->added()) {
            if (options.weight_cache_write_in_background) {
                m->weight_cache = WeightCacheUse::Writing;
                m->weight_cache_note = fmt::format("{} packed weights ({:.2f} GB) are being written to the weight cache {} "
                                                   "in the background", cache->added(),
                                                   double(cache->added_bytes()) / 1e9, cache->path());
                m->weight_cache_write = std::async(std::launch::async, [c = std::move(cache)] { return commit_weight_cache(*c); });
            } else {
                auto [written, note] = commit_weight_cache(*cache);
                m->weight_cache = written ? WeightCacheUse::Written : WeightCacheUse::Failed;
                m->weight_cache_note = note;
            }
        }
        if (!rebuilt.empty()) m->weight_cache_note = rebuilt + "; " + m->weight_cache_note;
        if (!m->weight_cache_note.empty()) m->notes.push_back(m->weight_cache_note);
    }
    return m;
}

}  // namespace easel
