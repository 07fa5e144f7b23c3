#include "pipeline/families/checkpoint.h"

#include <algorithm>
#include <map>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "io/diffusers_folder.h"
#include "io/keymap_config_doc.h"
#include "io/keymap_dit.h"
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
    if (folder.path.empty()) {
        auto it = configs.find(std::string(component));
        if (it == configs.end()) return std::nullopt;
        return it->second;
    }
    auto t = component_config(folder, component, file);
    if (t) return std::move(t).value();
    return std::nullopt;
}

std::string ComponentSet::subfolder(std::string_view name) const {
    if (folder.path.empty()) return {};
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

namespace {

// The tensors of `w` under `prefix`, prefix removed; they leave `w`.
WeightSet take_prefix(WeightSet& w, std::string_view prefix) {
    WeightSet out;
    std::vector<std::string> names;
    for (const std::string& n : w.names())
        if (n.compare(0, prefix.size(), prefix) == 0) names.push_back(n);
    for (const std::string& n : names) {
        (void)out.add(n.substr(prefix.size()), *w.find(n));
        w.erase(n);
    }
    out.source = w.source;
    return out;
}

bool has_any_prefix(const WeightSet& w, std::string_view prefix) {
    for (const std::string& n : w.names())
        if (n.compare(0, prefix.size(), prefix) == 0) return true;
    return false;
}

// An autoencoder in LDM names (encoder.down.0.block.0.*, Stability's first_stage_model.* and BFL's ae) or
// diffusers names, as "vae.".
Result<WeightSet> vae_to_diffusers(WeightSet vae) {
    WeightSet out;
    if (vae.contains("encoder.down_blocks.0.resnets.0.norm1.weight") || vae.contains("decoder.up_blocks.0.resnets.0.norm1.weight")) {
        EASEL_TRY(out.merge(std::move(vae), "vae."));
        return out;
    }
    WeightSet prefixed;
    for (const std::string& n : vae.names()) EASEL_TRY(prefixed.add(std::string(kLdmVAEPrefix) + n, *vae.find(n)));
    prefixed.source = vae.source;
    LdmKeymapOptions opt;
    EASEL_TRY_ASSIGN(out, ldm_to_diffusers(std::move(prefixed), opt));
    return out;
}

}  // namespace

std::string quantized_weights_note(const WeightSet& w) {
    std::map<std::string, std::map<std::string, size_t>> counts;  // component -> type -> tensors
    for (const std::string& n : w.names())
        if (const Tensor* t = w.find(n); t->quantized())
            ++counts[n.substr(0, n.find('.'))][std::string(quant_info(t->quant()).name)];
    std::string s;
    for (const auto& [comp, types] : counts) {
        s += s.empty() ? "quantized, multiplied as stored: " : "; ";
        s += comp;
        bool first = true;
        for (const auto& [type, k] : types) {
            s += fmt::format("{}{} {}", first ? " " : " + ", k, type);
            first = false;
        }
    }
    return s;
}

Result<ComponentSet> read_dit_single_file(const std::string& path, DiTFamily family, const LoadOptions& options) {
    ComponentSet r;
    EASEL_TRY_ASSIGN(WeightSet w, read_weights(path));
    for (const char* comp : {"transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3"})
        if (auto it = w.metadata.find(std::string("easel.config.") + comp); it != w.metadata.end()) r.configs[comp] = it->second;
    const bool flux = family == DiTFamily::Flux;
    const std::string t5_slot = flux ? "text_encoder_2" : "text_encoder_3";
    auto add = [&](WeightSet part, const std::string& comp, const std::string& from) -> Status {
        if (r.has(comp))
            return Error::invalid_argument(fmt::format("two sources for the {} ({} and an earlier one)", comp, from), path);
        EASEL_TRY(r.weights.merge(std::move(part), comp + "."));
        r.present.push_back(comp);
        r.sources[comp] = from;
        return ok();
    };
    // The transformer.
    if (flux) {
        const std::string prefix = has_any_prefix(w, "model.diffusion_model.double_blocks.") ? "model.diffusion_model." : "";
        WeightSet t = prefix.empty() ? WeightSet{} : take_prefix(w, prefix);
        if (prefix.empty()) {
            for (const char* p : {"double_blocks.", "single_blocks.", "img_in.", "txt_in.", "time_in.", "vector_in.",
                                  "guidance_in.", "final_layer."}) {
                WeightSet part = take_prefix(w, p);
                EASEL_TRY(t.merge(std::move(part), p));
            }
        }
        t.source = path;
        EASEL_TRY_ASSIGN(WeightSet renamed, flux_transformer_to_diffusers(std::move(t), "", ""));
        EASEL_TRY(add(std::move(renamed), "transformer", path));
    } else {
        // Stability's files put it under model.diffusion_model.; ComfyUI-GGUF's have its names bare (joint_blocks.*,
        // x_embedder.*, ...): then it is every tensor outside the other parts' prefixes.
        WeightSet t;
        if (has_any_prefix(w, "model.diffusion_model.")) {
            t = take_prefix(w, "model.diffusion_model.");
        } else {
            std::vector<std::string> bare;
            for (const std::string& n : w.names())
                if (n.rfind("first_stage_model.", 0) != 0 && n.rfind("vae.", 0) != 0 && n.rfind("text_encoders.", 0) != 0)
                    bare.push_back(n);
            for (const std::string& n : bare) {
                EASEL_TRY(t.add(n, *w.find(n)));
                w.erase(n);
            }
        }
        t.source = path;
        EASEL_TRY_ASSIGN(WeightSet renamed, sd3_transformer_to_diffusers(std::move(t), "", ""));
        EASEL_TRY(add(std::move(renamed), "transformer", path));
    }
    // What else the file carries.
    for (const char* p : {"first_stage_model.", "vae."})
        if (has_any_prefix(w, p)) {
            WeightSet v = take_prefix(w, p);
            v.source = path;
            EASEL_TRY_ASSIGN(WeightSet renamed, vae_to_diffusers(std::move(v)));
            EASEL_TRY(add(take_prefix(renamed, "vae."), "vae", path));
        }
    for (auto [p, comp] : {std::pair<std::string, std::string>{"text_encoders.clip_l.transformer.", "text_encoder"},
                           {"text_encoders.clip_g.transformer.", "text_encoder_2"},
                           {"text_encoders.t5xxl.transformer.", t5_slot}})
        if (has_any_prefix(w, p)) EASEL_TRY(add(take_prefix(w, p), comp, path));
    if (w.size() > 0)
        return Error::bad_file(path, fmt::format("{} tensor(s) of no known part of a {} checkpoint, e.g. {}", w.size(),
                                                 flux ? "Flux" : "SD3", w.names().front()));
    // Component files, told apart by their names and shapes.
    std::vector<std::pair<int64_t, WeightSet>> clips;
    // A component file's own config (easel's metadata key easel.config.<component>, whatever it is named there).
    auto config_of = [](const WeightSet& c) -> std::optional<std::string> {
        for (const auto& [k, v] : c.metadata)
            if (k.rfind("easel.config.", 0) == 0) return v;
        return std::nullopt;
    };
    auto add_file = [&](WeightSet part, const std::string& comp, const std::string& from) -> Status {
        std::optional<std::string> cfg = config_of(part);
        EASEL_TRY(add(std::move(part), comp, from));
        if (cfg) r.configs[comp] = *cfg;
        return ok();
    };
    for (const std::string& f : options.component_files) {
        WeightSet c;
        std::optional<std::string> folder_config;
        std::error_code ec;
        if (fs::is_directory(f, ec)) {
            // A diffusers component folder (vae/, text_encoder_2/, ...): its weights (one file, shards, a variant)
            // and its config.json, which then counts as the file's own config.
            fs::path dir = fs::path(f).lexically_normal();
            if (!dir.has_filename()) dir = dir.parent_path();  // "vae/"
            if (fs::exists(dir / "model_index.json", ec))
                return Error::bad_file(f, "is a whole diffusers pipeline folder; pass it with -m, or one component's "
                                          "subfolder (such as its vae/) as a component");
            DiffusersFolder one;
            one.path = dir.parent_path().string();
            DiffusersComponent comp;
            comp.name = dir.filename().string();
            comp.enabled = comp.on_disk = true;
            comp.library = "diffusers";
            comp.path = dir.string();
            one.components.push_back(comp);
            EASEL_TRY_ASSIGN(c, load_component_weights(one, comp.name, options.variant));
            if (fs::exists(dir / "config.json", ec)) {
                EASEL_TRY_ASSIGN(folder_config, component_config(one, comp.name));
            }
        } else {
            EASEL_TRY_ASSIGN(c, read_weights(f));
        }
        // One component per file. A whole checkpoint given as a component would otherwise lend one of its parts
        // (the first of the prefixes below) and drop the rest without a word.
        if (has_any_prefix(c, "model.diffusion_model.") || has_any_prefix(c, "double_blocks.") ||
            has_any_prefix(c, "joint_blocks.") || has_any_prefix(c, "transformer_blocks.") || has_any_prefix(c, "unet."))
            return Error::bad_file(f, "is a whole checkpoint (it holds a diffusion model); --vae, --t5, --clip-l and "
                                      "--clip-g take one component's file (BFL's ae.safetensors, clip_l.safetensors, "
                                      "t5xxl_fp16.safetensors) or a diffusers component folder");
        std::vector<std::string> parts;
        for (const char* p : {"text_encoders.clip_l.transformer.", "text_encoders.clip_g.transformer.",
                              "text_encoders.t5xxl.transformer.", "first_stage_model.", "vae."})
            if (has_any_prefix(c, p)) parts.push_back(p);
        if (parts.size() > 1)
            return Error::bad_file(f, fmt::format("holds {} components ({}); pass each component's own file",
                                                  parts.size(), fmt::join(parts, ", ")));
        if (!parts.empty()) {
            auto md = c.metadata;
            c = take_prefix(c, parts.front());
            c.metadata = std::move(md);
        }
        if (folder_config) c.metadata["easel.config.component"] = *folder_config;
        c.source = f;
        if (const Tensor* e = c.find("text_model.embeddings.token_embedding.weight")) {
            clips.emplace_back(e->size(1), std::move(c));
        } else if (c.contains("encoder.block.0.layer.0.SelfAttention.q.weight")) {
            EASEL_TRY(add_file(std::move(c), t5_slot, f));
        } else if (c.contains("encoder.conv_in.weight") || c.contains("decoder.conv_in.weight")) {
            const std::optional<std::string> cfg = config_of(c);
            EASEL_TRY_ASSIGN(WeightSet renamed, vae_to_diffusers(std::move(c)));
            EASEL_TRY(add(take_prefix(renamed, "vae."), "vae", f));
            if (cfg) r.configs["vae"] = *cfg;
        } else {
            return Error::bad_file(f, "neither a CLIP text encoder, a T5 encoder nor an autoencoder (by its tensor names)");
        }
    }
    std::sort(clips.begin(), clips.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [width, c] : clips) {
        std::string slot = "text_encoder";
        if (!flux && (r.has("text_encoder") || (clips.size() == 2 && &c == &clips.back().second))) slot = "text_encoder_2";
        const std::string from = c.source;
        EASEL_TRY(add_file(std::move(c), slot, from));
    }
    r.weights.source = path;
    return r;
}

Result<VAEConfig> component_vae_config(const ComponentSet& f, const std::string& path, float scaling, float shift,
                                       std::string_view family) {
    EASEL_TRY_ASSIGN(VAEConfig vae, VAEConfig::detect_from_weights(f.weights, "vae."));
    if (auto j = f.config("vae")) {
        EASEL_TRY_ASSIGN(VAEConfig fc, VAEConfig::from_diffusers_json(*j));
        if (fc.latent_channels != vae.latent_channels || fc.block_out_channels != vae.block_out_channels)
            return Error::bad_file(path + " vae config", "does not match the VAE's weights");
        // A single file's autoencoder (its own or a --vae) whose config scales and shifts latents otherwise than
        // the family's transformer was trained on is another model's: SD3's and FLUX.1's share every layer and
        // name and differ only there. A folder's own config is the model's, and is taken as it is.
        const bool same = std::fabs(fc.scaling_factor - scaling) <= 1e-4f * scaling && std::fabs(fc.shift_factor - shift) <= 1e-4f;
        if (f.folder.path.empty() && !same)
            return Error::bad_file(f.sources.count("vae") ? f.sources.at("vae") : path,
                                   fmt::format("the autoencoder's config scales latents by {} and shifts them by {}, but {}'s "
                                               "transformer works on latents scaled by {} and shifted by {}: this is another "
                                               "model's autoencoder (SD3's and FLUX.1's have the same layers); pass {}'s own",
                                               fc.scaling_factor, fc.shift_factor, family, scaling, shift, family));
        vae.norm_num_groups = fc.norm_num_groups;
        vae.scaling_factor = fc.scaling_factor;
        vae.shift_factor = fc.shift_factor;
    } else {
        vae.scaling_factor = scaling;
        vae.shift_factor = shift;
    }
    EASEL_TRY(vae.validate());
    return vae;
}

Result<CLIPTextConfig> component_clip_config(const ComponentSet& f, const std::string& component, const std::string& path) {
    EASEL_TRY_ASSIGN(CLIPTextConfig c, CLIPTextConfig::detect_from_weights(f.weights, component + "."));
    if (auto json = f.config(component)) {
        EASEL_TRY_ASSIGN(const CLIPTextConfig j, CLIPTextConfig::from_diffusers_json(*json));
        if (j.hidden_size != c.hidden_size || j.vocab_size != c.vocab_size || j.num_layers > c.num_layers)
            return Error::bad_file(path + " " + component,
                                   fmt::format("config.json says hidden {} / vocab {} / {} layers but the weights have {} / {} / {}",
                                               j.hidden_size, j.vocab_size, j.num_layers, c.hidden_size, c.vocab_size,
                                               c.num_layers));
        c.num_heads = j.num_heads;
        c.hidden_act = j.hidden_act;
        c.layer_norm_eps = j.layer_norm_eps;
        c.num_layers = j.num_layers;
        c.bos_token_id = j.bos_token_id;
        c.eos_token_id = j.eos_token_id;
        c.pad_token_id = j.pad_token_id;
    }
    EASEL_TRY(c.validate());
    return c;
}

Result<FlowSchedulerConfig> parse_flow_scheduler_config(std::string_view json, const std::string& source) {
    auto parsed = parse_json_config(json, source);
    if (!parsed) return parsed.error().within(source);
    const ConfigNode& cfg = *parsed;
    if (!cfg.is_map()) return Error::bad_file(source, "expected a JSON object");
    EASEL_TRY_ASSIGN(const std::string cls, cfg.get_string_or("_class_name", "FlowMatchEulerDiscreteScheduler"));
    if (cls != "FlowMatchEulerDiscreteScheduler")
        return Error::unsupported(fmt::format("_class_name '{}': flow models sample with FlowMatchEulerDiscreteScheduler", cls),
                                  source);
    EASEL_TRY_ASSIGN(std::optional<int64_t> train, cfg.get_int("num_train_timesteps"));
    if (train && *train != 1000)
        return Error::unsupported(fmt::format("num_train_timesteps {}: easel's flow schedules have 1000", *train), source);
    FlowSchedulerConfig r;
    EASEL_TRY_ASSIGN(std::optional<double> shift, cfg.get_double("shift"));
    r.shift = shift.value_or(1.0);  // the class default
    if (!(r.shift > 0.0 && r.shift < 1000.0)) return Error::bad_file(source, fmt::format("shift must be in (0, 1000), got {}", r.shift));
    EASEL_TRY_ASSIGN(std::optional<bool> dynamic, cfg.get_bool("use_dynamic_shifting"));
    if (dynamic.value_or(false)) {
        DynamicShift d;
        EASEL_TRY_ASSIGN(std::optional<double> bs, cfg.get_double("base_shift"));
        EASEL_TRY_ASSIGN(std::optional<double> ms, cfg.get_double("max_shift"));
        EASEL_TRY_ASSIGN(std::optional<int64_t> bl, cfg.get_int("base_image_seq_len"));
        EASEL_TRY_ASSIGN(std::optional<int64_t> ml, cfg.get_int("max_image_seq_len"));
        d.base_shift = bs.value_or(0.5);
        d.max_shift = ms.value_or(1.15);
        d.base_seq_len = int(bl.value_or(256));
        d.max_seq_len = int(ml.value_or(4096));
        if (d.base_seq_len < 1 || d.max_seq_len <= d.base_seq_len || d.max_seq_len > (1 << 24) || std::fabs(d.base_shift) > 20 ||
            std::fabs(d.max_shift) > 20)
            return Error::bad_file(source, "base/max_image_seq_len or base/max_shift out of range");
        r.dynamic = d;
    }
    return r;
}

Family::Claim claim_dit(const std::string& path, bool (*is_mine)(const DiffusersFolder&), std::string_view single_file_part) {
    Family::Claim c;
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        if (!fs::exists(fs::path(path) / "model_index.json", ec)) return c;
        auto folder = open_diffusers_folder(path);
        c.mine = folder && is_mine(*folder);
        return c;
    }
    auto w = read_weights(path);
    if (!w) return c;
    for (const std::string& name : w->names())
        if (name.find(single_file_part) != std::string::npos) {
            c.mine = true;
            break;
        }
    return c;
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
