#include "pipeline/model.h"

#include <filesystem>
#include "pipeline/provenance.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "io/keymap_config_doc.h"
#include "pipeline/families/families.h"
#include "runtime/pack_cache.h"

namespace easel {

Status check_default_cfg_scale(double v, const std::string& source) {
    if (!std::isfinite(v) || v < 0 || v > 100)
        return Error::bad_file(source, fmt::format("cfg_scale must be a number between 0 and 100, got {}", v));
    return ok();
}

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
        EASEL_TRY(check_default_cfg_scale(**cfg, source));
        d.cfg_scale = **cfg;
    }
    return d;
}

Model::~Model() = default;

std::string Model::describe() const {
    std::string s = fmt::format("{}: {} ({})", path, model_kind_name(info), family);
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

std::string Model::wait_for_weight_cache() {
    if (!weight_cache_write.valid()) return {};
    auto [written, note] = weight_cache_write.get();
    weight_cache = written ? WeightCacheUse::Written : WeightCacheUse::Failed;
    weight_cache_note = note;
    return note;
}

std::string_view weight_layout_name(WeightLayout w) {
    switch (w) {
        case WeightLayout::Auto: return "auto";
        case WeightLayout::Packed: return "packed";
        case WeightLayout::Stored: return "stored";
    }
    return "?";
}

std::optional<WeightLayout> weight_layout_from_name(std::string_view s) {
    for (WeightLayout w : {WeightLayout::Auto, WeightLayout::Packed, WeightLayout::Stored})
        if (s == weight_layout_name(w)) return w;
    return std::nullopt;
}

std::string adapters_key(const LoadOptions& options) {
    std::string k;
    for (const auto& a : options.adapters) k += fmt::format(" adapter '{}'", a->identity());
    return k;
}

WeightCacheSession open_weight_cache(const std::string& path, const LoadOptions& options, ParamLoader& loader) {
    WeightCacheSession s;
    if (options.weight_cache_dir.empty()) return s;
    // The key covers what decides the packed bytes: the files, the precision, the kernel variant, the variant
    // of a diffusers folder's weights and the adapters applied before packing. A model that cannot be keyed is
    // simply packed.
    // Weights kept as stored are not in the file: a key of their own, so that the two uses do not rewrite
    // each other's file.
    auto key = PackCache::model_key(path, fmt::format("precision {} isa {} variant '{}'{}{}", precision_name(options.precision),
                                                      isa_name(active_isa()), options.variant, adapters_key(options),
                                                      loader.keep_half_weights() ? " linear and conv weights stored" : ""));
    if (key && key->total_bytes >= options.weight_cache_min_bytes) {
        // A model whose weights get LoRAs applied in place (keep_param_registry: a server's worker) copies its
        // cached weights into memory of its own: writing to a mapped file's pages would copy each 4 KiB page on
        // its first write (seconds for SD 1.5).
        s.cache = PackCache::open(options.weight_cache_dir, key->key, options.weight_cache_max_bytes,
                                  options.keep_param_registry ? PackCache::Use::Copy : PackCache::Use::Auto);
        if (!s.cache->note().empty()) s.rebuilt = "the weight cache file was not used and is rebuilt: " + s.cache->note();
        loader.set_pack_cache(s.cache.get());
    }
    return s;
}

void finish_weight_cache(WeightCacheSession session, const LoadOptions& options, Model& m) {
    std::unique_ptr<PackCache>& cache = session.cache;
    if (!cache) return;
    if (cache->hits()) {
        m.weight_cache = cache->copies() ? WeightCacheUse::Copied : WeightCacheUse::Mapped;
        m.weight_cache_note = fmt::format("{} packed weights ({:.2f} GB) {} from the weight cache {}{}", cache->hits(),
                                          double(cache->hit_bytes()) / 1e9, cache->copies() ? "copied" : "mapped",
                                          cache->path(),
                                          cache->copies() ? " into huge pages (the file is mapped in 4 KiB pages here)" : "");
    }
    if (cache->added()) {
        if (options.weight_cache_write_in_background) {
            m.weight_cache = WeightCacheUse::Writing;
            m.weight_cache_note = fmt::format("{} packed weights ({:.2f} GB) are being written to the weight cache {} "
                                              "in the background", cache->added(),
                                              double(cache->added_bytes()) / 1e9, cache->path());
            m.weight_cache_write = std::async(std::launch::async, [c = std::move(cache)] { return commit_weight_cache(*c); });
        } else {
            auto [written, note] = commit_weight_cache(*cache);
            m.weight_cache = written ? WeightCacheUse::Written : WeightCacheUse::Failed;
            m.weight_cache_note = note;
        }
    }
    if (!session.rebuilt.empty()) m.weight_cache_note = session.rebuilt + "; " + m.weight_cache_note;
    if (!m.weight_cache_note.empty()) m.notes.push_back(m.weight_cache_note);
}

Status load_networks(const WeightSet& weights, const std::string& path, const LoadOptions& options, Model& m,
                     const std::function<void(ParamLoader&)>& declare, std::string_view strict_prefix) {
    m.precision = options.precision;
    ParamLoader loader(weights, options.precision);
    loader.set_keep_half_weights(options.weights == WeightLayout::Stored ||
                                 (options.weights == WeightLayout::Auto && !options.keep_param_registry));
    for (const auto& a : options.adapters) loader.add_adapter(a);
    if (options.keep_param_registry) {
        m.packed_params = std::make_shared<ParamRegistry>();
        loader.set_registry(m.packed_params.get());
    }
    WeightCacheSession cache = open_weight_cache(path, options, loader);
    declare(loader);
    EASEL_TRY(loader.finish(strict_prefix));
    EASEL_TRY(loader.check_adapters_used());
    finish_weight_cache(std::move(cache), options, m);
    return ok();
}

namespace {
std::mutex& registry_mutex() {
    static std::mutex mu;
    return mu;
}
std::vector<Family>& registered() {
    static std::vector<Family> v;
    return v;
}

// The family that claims `path`, or an error saying what was recognised.
Result<Family> find_family(const std::string& path) {
    std::vector<std::string> recognised;
    for (const Family& f : families()) {
        EASEL_TRY_ASSIGN(Family::Claim claim, f.claim(path));
        if (claim.mine) return f;
        if (!claim.what.empty()) recognised.push_back(claim.what);
    }
    if (!recognised.empty())
        return Error::unsupported(fmt::format("{}: no family easel can run takes it yet", fmt::join(recognised, "; ")), path);
    return Error::unsupported("no model family easel knows recognises these weights", path);
}
}  // namespace

std::vector<Family> families() {
    std::vector<Family> all;
    {
        std::lock_guard<std::mutex> lock(registry_mutex());
        all = registered();
    }
    for (Family& f : builtin_families()) all.push_back(std::move(f));
    return all;
}

void register_family(Family f) {
    std::lock_guard<std::mutex> lock(registry_mutex());
    registered().insert(registered().begin(), std::move(f));
}

namespace {
// The licence and hash that images made with the model carry (pipeline/provenance.h).
Status describe_provenance(ModelSpec& m, const std::string& path, const LoadOptions& options) {
    m.license = options.license.empty() ? detect_model_license(path) : options.license;
    if (options.model_hash) {
        EASEL_TRY_ASSIGN(m.short_hash, model_short_hash(path, options.hash_cache_file));
    }
    return ok();
}
}  // namespace

uint64_t model_weight_bytes(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::is_regular_file(path, ec)) return fs::file_size(path, ec);
    uint64_t total = 0;
    if (!fs::is_directory(path, ec)) return 0;
    for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::end(it); it.increment(ec))
        if (it->is_regular_file(ec)) total += it->file_size(ec);
    return total;
}

Precision auto_precision(const std::string& path, std::string* why) {
    const uint64_t bytes = model_weight_bytes(path);
    if (bytes < (uint64_t(64) << 20)) {
        if (why) *why = fmt::format("fp32 (auto: the model's weights are {:.1f} MiB, under 64)", double(bytes) / 1048576.0);
        return Precision::F32;
    }
    std::string how;
    const Precision p = fast_precision(&how);
    if (why) *why = "fast (auto): " + how;
    return p;
}

Result<std::unique_ptr<Model>> load_model(const std::string& path, const LoadOptions& options) {
    EASEL_TRY_ASSIGN(Family f, find_family(path));
    EASEL_TRY_ASSIGN(std::unique_ptr<Model> m, f.load(path, options));
    EASEL_TRY(describe_provenance(*m, path, options));
    return m;
}

Result<ModelSpec> load_model_spec(const std::string& path, const LoadOptions& options) {
    EASEL_TRY_ASSIGN(Family f, find_family(path));
    EASEL_TRY_ASSIGN(ModelSpec spec, f.load_spec(path, options));
    LoadOptions no_hash = options;  // a spec is for checking requests: no file read in full
    no_hash.model_hash = false;
    EASEL_TRY(describe_provenance(spec, path, no_hash));
    return spec;
}

}  // namespace easel
