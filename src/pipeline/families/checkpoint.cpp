#include "pipeline/families/checkpoint.h"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "io/diffusers_folder.h"
#include "io/keymap_config_doc.h"
#include "io/keymap_ldm.h"
#include "io/model_file.h"

namespace easel {
namespace fs = std::filesystem;

namespace {

constexpr const char* kDefaultsFile = "easel_defaults.json";
constexpr const char* kDefaultCfgKey = "easel.default_cfg_scale";

Status read_defaults(Checkpoint& g, const std::string& path, bool folder) {
    if (folder) {
        const fs::path f = fs::path(path) / kDefaultsFile;
        std::error_code ec;
        if (!fs::exists(f, ec)) return ok();
        auto text = read_small_text_file(f.string());
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

}  // namespace

Result<Checkpoint> read_checkpoint(const std::string& path) {
    Checkpoint g;
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        EASEL_TRY_ASSIGN(DiffusersFolder folder, open_diffusers_folder(path));
        for (const char* comp : {"unet", "vae", "text_encoder", "text_encoder_2"}) {
            // text_encoder_2: SDXL only. A component listed as [null, null] is absent on purpose (the SDXL refiner
            // has no CLIP-L text encoder): detection then sees it missing.
            const DiffusersComponent* dc = folder.component(comp);
            if (std::string_view(comp) == "text_encoder_2" && !dc) continue;
            if (dc && dc->library.empty()) continue;
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
        if (const DiffusersComponent* dc = folder.component("text_encoder_2"); dc && !dc->library.empty())
            g.sources.text_encoder_2_json = cfg("text_encoder_2", "config.json");
        g.sources.scheduler_json = cfg("scheduler", "scheduler_config.json");
        if (fs::is_directory(fs::path(path) / "tokenizer", ec)) g.tokenizer_dir = (fs::path(path) / "tokenizer").string();
        if (fs::is_directory(fs::path(path) / "tokenizer_2", ec)) g.tokenizer_2_dir = (fs::path(path) / "tokenizer_2").string();
        g.pipeline_options = folder.options;
        auto info = detect_model(g.weights, g.sources);
        if (!info) return info.error().within(path);
        g.info = std::move(info).value();
        EASEL_TRY(read_defaults(g, path, true));
        return g;
    }
    if (!fs::exists(path, ec)) return Error::not_found("no such model file or folder", path);
    EASEL_TRY_ASSIGN(WeightSet w, read_weights(path));
    // What the weights cannot tell travels beside a single file as an LDM yaml (as AUTOMATIC1111 reads it).
    g.sources.ldm_yaml = read_small_text_file(fs::path(path).replace_extension(".yaml").string());
    if (g.sources.ldm_yaml) g.notes.push_back("config: " + fs::path(path).replace_extension(".yaml").string());
    // easel's own single files may carry each component's diffusers config.json as metadata
    // (easel.config.unet, .vae, .text_encoder, .text_encoder_2): what a folder's configs would say.
    for (auto [key, slot] : {std::pair{"easel.config.unet", &g.sources.unet_json}, std::pair{"easel.config.vae", &g.sources.vae_json},
                             std::pair{"easel.config.text_encoder", &g.sources.text_encoder_json},
                             std::pair{"easel.config.text_encoder_2", &g.sources.text_encoder_2_json}})
        if (auto it = w.metadata.find(key); it != w.metadata.end()) {
            *slot = it->second;
            g.notes.push_back(fmt::format("config: {} metadata {}", path, key));
        }
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


bool ComponentSet::has(std::string_view name) const {
    return std::find(present.begin(), present.end(), name) != present.end();
}

std::optional<std::string> ComponentSet::config(std::string_view component, std::string_view file) const {
    auto t = component_config(folder, component, file);
    if (t) return std::move(t).value();
    return std::nullopt;
}

std::string ComponentSet::subfolder(std::string_view name) const {
    std::error_code ec;
    const fs::path d = fs::path(folder.path) / name;
    return fs::is_directory(d, ec) ? d.string() : std::string();
}

Result<ComponentSet> read_component_set(const std::string& path, const std::vector<std::string>& required,
                                        const std::vector<std::string>& optional, const std::string& variant,
                                        const std::string& what) {
    ComponentSet r;
    EASEL_TRY_ASSIGN(r.folder, open_diffusers_folder(path));
    auto read = [&](const std::string& comp, bool needed) -> Status {
        const DiffusersComponent* dc = r.folder.component(comp);
        if (!dc || !dc->enabled) {
            if (!needed) return ok();
            return Error::bad_file(path, fmt::format("{} without {} (model_index.json lists {})", what, comp,
                                                     dc ? "it as null" : "no such component"));
        }
        if (!dc->on_disk) return Error::bad_file(path, fmt::format("model_index.json lists {} but the folder has no {}/", comp, comp));
        EASEL_TRY_ASSIGN(WeightSet w, load_component_weights(r.folder, comp, variant));
        EASEL_TRY(r.weights.merge(std::move(w), comp + "."));
        r.present.push_back(comp);
        return ok();
    };
    for (const std::string& c : required) EASEL_TRY(read(c, true));
    for (const std::string& c : optional) EASEL_TRY(read(c, false));
    r.weights.source = path;
    return r;
}

Status fill_unet_vae_spec(ModelSpec& m, const ModelInfo& info, const LoadOptions& options, const std::string& path) {
    const int c = info.unet.out_channels;
    const int expected_in = c + (info.inpainting ? 1 + c : 0);
    if (info.unet.in_channels != expected_in || info.vae.latent_channels != c)
        return Error::unsupported(fmt::format("a {} UNet with {} input and {} output channels over a {}-channel VAE "
                                              "(expected the VAE's latent channels in and out, or 2 x latent + 1 in "
                                              "for inpainting models)",
                                              family_name(info.family), info.unet.in_channels, c, info.vae.latent_channels),
                                  path);
    m.latent.channels = c;
    m.latent.scaling_factor = info.vae.scaling_factor;
    m.latent.shift_factor = 0.0f;
    m.latent.downscale = info.vae.downscale();
    m.latent.side_multiple = info.unet.latent_multiple();
    m.latent.native_side = info.unet.sample_size;
    m.inpainting = info.inpainting;
    m.sampling = std::make_shared<DiscreteModelSampling>(DiscreteSchedule::stable_diffusion(), info.unet.prediction);
    m.has_vae_encoder = options.with_vae_encoder || info.inpainting;
    return ok();
}

}  // namespace easel
