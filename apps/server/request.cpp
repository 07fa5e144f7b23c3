#include "request.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <fmt/format.h>

#include "io/image.h"

namespace easel::server {

namespace {

// AUTOMATIC1111 v1.10's k-diffusion sampler table, restricted to what easel implements: the display name, its
// aliases, and the scheduler that "automatic" means for it.
struct SamplerEntry {
    const char* name;
    SamplerKind kind;
    std::vector<const char*> aliases;
    const char* automatic_scheduler;  // A1111's per-sampler default ("karras" for DPM++ 2M)
};

const std::vector<SamplerEntry>& sampler_table() {
    static const std::vector<SamplerEntry> t = {
        {"DPM++ 2M", SamplerKind::DpmPP2M, {"k_dpmpp_2m"}, "karras"},
        {"DPM++ SDE", SamplerKind::DpmPPSde, {"k_dpmpp_sde"}, "karras"},
        {"DPM++ 2M SDE", SamplerKind::DpmPP2MSde, {"k_dpmpp_2m_sde"}, "exponential"},
        {"Euler a", SamplerKind::EulerAncestral, {"k_euler_a", "k_euler_ancestral"}, "automatic"},
        {"Euler", SamplerKind::Euler, {"k_euler"}, "automatic"},
        {"LMS", SamplerKind::Lms, {"k_lms"}, "automatic"},
        {"Heun", SamplerKind::Heun, {"k_heun"}, "automatic"},
        {"DPM2", SamplerKind::Dpm2, {"k_dpm_2"}, "automatic"},
        {"DDIM", SamplerKind::Ddim, {"ddim"}, "automatic"},
        {"LCM", SamplerKind::Lcm, {"k_lcm"}, "automatic"},
    };
    return t;
}

struct SchedulerEntry {
    const char* name;
    const char* label;
    ScheduleKind kind;
    std::vector<const char*> aliases;
};

const std::vector<SchedulerEntry>& scheduler_table() {
    static const std::vector<SchedulerEntry> t = {
        {"uniform", "Uniform", ScheduleKind::Default, {}},
        {"karras", "Karras", ScheduleKind::Karras, {}},
        {"exponential", "Exponential", ScheduleKind::Exponential, {}},
        {"sgm_uniform", "SGM Uniform", ScheduleKind::SgmUniform, {"SGMUniform"}},
        {"align_your_steps", "Align Your Steps", ScheduleKind::AlignYourSteps, {"AYS"}},
        {"simple", "Simple", ScheduleKind::Simple, {}},
        {"normal", "Normal", ScheduleKind::Default, {}},
        {"ddim", "DDIM", ScheduleKind::DdimUniform, {"ddim_uniform"}},
    };
    return t;
}

std::string lower(std::string_view s) {
    std::string o;
    for (char c : s) o.push_back(char(std::tolower(static_cast<unsigned char>(c))));
    return o;
}

const SamplerEntry* find_sampler(std::string_view name) {
    const std::string n = lower(name);
    for (const SamplerEntry& e : sampler_table()) {
        if (lower(e.name) == n) return &e;
        for (const char* a : e.aliases)
            if (lower(a) == n) return &e;
    }
    return nullptr;
}

const SchedulerEntry* find_scheduler(std::string_view name) {
    const std::string n = lower(name);
    for (const SchedulerEntry& e : scheduler_table()) {
        if (lower(e.name) == n || lower(e.label) == n) return &e;
        for (const char* a : e.aliases)
            if (lower(a) == n) return &e;
    }
    return nullptr;
}

std::string type_name(const json& v) {
    switch (v.type()) {
        case json::value_t::null: return "null";
        case json::value_t::boolean: return "a boolean";
        case json::value_t::string: return "a string";
        case json::value_t::array: return "an array";
        case json::value_t::object: return "an object";
        case json::value_t::number_float: return "a number";
        case json::value_t::number_integer:
        case json::value_t::number_unsigned: return "an integer";
        default: return "something else";
    }
}

Status check_range(const char* field, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi) return Error::invalid_argument(fmt::format("must be between {} and {}, got {}", lo, hi, v), field);
    return ok();
}

}  // namespace

// Images over the largest output size (`max_pixels`) are refused from their header, before decoding: an init image
// or mask must match the output size anyway, and a decoded 8192x8192 picture would take 200 MB per request.
Result<Image> decode_b64_image(const json& v, const std::string& field, int64_t max_pixels) {
    if (!v.is_string()) return Error::invalid_argument(fmt::format("expected a base64 image string, got {}", type_name(v)), field);
    EASEL_TRY_ASSIGN(std::string bytes, base64_decode(v.get_ref<const std::string&>(), field));
    auto img = decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), field, max_pixels);
    if (!img) return img.error().within(field);
    return img;
}

RequestDefaults a1111_defaults() { return {}; }

Result<std::optional<std::string>> get_string(const json& o, const char* key) {
    auto it = o.find(key);
    if (it == o.end() || it->is_null()) return std::optional<std::string>();
    if (!it->is_string()) return Error::invalid_argument(fmt::format("expected a string, got {}", type_name(*it)), key);
    return std::optional<std::string>(it->get<std::string>());
}

Result<std::optional<int64_t>> get_int(const json& o, const char* key) {
    auto it = o.find(key);
    if (it == o.end() || it->is_null()) return std::optional<int64_t>();
    if (it->is_number_integer()) return std::optional<int64_t>(it->get<int64_t>());
    if (it->is_number_unsigned()) {
        const uint64_t u = it->get<uint64_t>();
        if (u > uint64_t(INT64_MAX)) return Error::invalid_argument(fmt::format("{} is too large", u), key);
        return std::optional<int64_t>(int64_t(u));
    }
    if (it->is_number_float()) {  // pydantic accepts 20.0 for an int field
        const double d = it->get<double>();
        if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) return std::optional<int64_t>(int64_t(d));
        return Error::invalid_argument(fmt::format("expected an integer, got {}", d), key);
    }
    return Error::invalid_argument(fmt::format("expected an integer, got {}", type_name(*it)), key);
}

Result<std::optional<double>> get_number(const json& o, const char* key) {
    auto it = o.find(key);
    if (it == o.end() || it->is_null()) return std::optional<double>();
    if (!it->is_number()) return Error::invalid_argument(fmt::format("expected a number, got {}", type_name(*it)), key);
    const double d = it->get<double>();
    if (!std::isfinite(d)) return Error::invalid_argument("expected a finite number", key);
    return std::optional<double>(d);
}

Result<std::optional<bool>> get_bool(const json& o, const char* key) {
    auto it = o.find(key);
    if (it == o.end() || it->is_null()) return std::optional<bool>();
    if (!it->is_boolean()) return Error::invalid_argument(fmt::format("expected true or false, got {}", type_name(*it)), key);
    return std::optional<bool>(it->get<bool>());
}

json samplers_json() {
    json out = json::array();
    for (const SamplerEntry& e : sampler_table()) {
        json aliases = json::array();
        for (const char* a : e.aliases) aliases.push_back(a);
        json options = json::object();
        if (std::string(e.automatic_scheduler) != "automatic") options["scheduler"] = e.automatic_scheduler;
        out.push_back({{"name", e.name}, {"aliases", aliases}, {"options", options}});
    }
    return out;
}

json schedulers_json() {
    json out = json::array();
    out.push_back({{"name", "automatic"}, {"label", "Automatic"}, {"aliases", nullptr}, {"default_rho", -1}, {"need_inner_model", false}});
    for (const SchedulerEntry& e : scheduler_table()) {
        json aliases = nullptr;
        if (!e.aliases.empty()) {
            aliases = json::array();
            for (const char* a : e.aliases) aliases.push_back(a);
        }
        out.push_back({{"name", e.name}, {"label", e.label}, {"aliases", aliases},
                       {"default_rho", e.kind == ScheduleKind::Karras ? 7.0 : -1.0}, {"need_inner_model", false}});
    }
    return out;
}

namespace {

}  // namespace

int ip_adapter_module_width(const std::string& m) {
    if (m == "ip-adapter_clip_h" || m == "ip-adapter_clip_sd15" || m == "ip-adapter_clip_sdxl_plus_vith") return 1280;
    if (m == "ip-adapter_clip_g" || m == "ip-adapter_clip_sdxl" || m == "ip-adapter_clip_bigg") return 1664;
    if (m == "ip-adapter-auto") return 0;
    return -1;
}

std::vector<std::string> ip_adapter_modules() {
    return {"ip-adapter-auto", "ip-adapter_clip_h", "ip-adapter_clip_g", "ip-adapter_clip_sd15", "ip-adapter_clip_sdxl",
            "ip-adapter_clip_sdxl_plus_vith"};
}

namespace {

// AUTOMATIC1111's ControlNet extension units: enabled ones with a model (A1111's "None" leaves a unit off).
Status parse_controlnet_units(const json& args, const Image* init, int64_t width, int64_t height, const Limits& limits,
                              std::vector<ControlRequest>& out) {
    if (args.size() > 8) return Error::invalid_argument(fmt::format("{} units; easel takes at most 8", args.size()), "alwayson_scripts.controlnet.args");
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string where = fmt::format("alwayson_scripts.controlnet.args[{}]", i);
        const json& u = args[i];
        if (!u.is_object()) return Error::invalid_argument("expected an object (a ControlNet unit)", where);
        auto field = [&](const char* k) { return where + "." + k; };
        auto within = [&](const Error& e) { return Error(e.code(), e.message(), where + "." + e.where()); };
        auto enabled = get_bool(u, "enabled");
        if (!enabled) return within(enabled.error());
        auto model = get_string(u, "model");
        if (!model) return within(model.error());
        if (!enabled->value_or(true) || !*model || model->value().empty() || model->value() == "None") continue;
        ControlRequest c;
        c.model = **model;
        auto module = get_string(u, "module");
        if (!module) return within(module.error());
        c.module = module->value_or("none");
        c.ip_adapter = ip_adapter_module_width(c.module) >= 0;
        if (!c.ip_adapter) {
            // The module's sliders and its processor_res (set below, once the image is known).
            c.preprocessor.module = c.module;
            auto ta = get_number(u, "threshold_a");
            auto tb = get_number(u, "threshold_b");
            auto res = get_number(u, "processor_res");
            for (const auto* r : {&ta, &tb, &res})
                if (!*r) return within(r->error());
            // A1111 clients send -1 or a slider's generic default for modules without sliders.
            if (*ta && **ta >= 0) c.preprocessor.threshold_a = **ta;
            if (*tb && **tb >= 0) c.preprocessor.threshold_b = **tb;
            c.preprocessor.resolution = extension_resolution(c.module, *res);
            if (Status st = validate_preprocessor(c.preprocessor); !st) {
                if (st.error().code() == ErrorCode::Unsupported)
                    return Error::unsupported(st.error().message() + " (IP-Adapter units: module ip-adapter_clip_h, "
                                              "ip-adapter_clip_g or ip-adapter-auto)", field("module"));
                return Error(st.error().code(), st.error().message(), where + "." + st.error().where());
            }
        }
        // The image: "input_image" (a base64 string), or "image" as a string or {"image": ..., "mask": ...}; none
        // in img2img: the init image (as A1111 does).
        const json* img = nullptr;
        const json* mask = nullptr;  // the inpaint preprocessor's: "mask", or the image object's "mask"
        if (auto it = u.find("mask"); it != u.end() && !it->is_null() && !(it->is_string() && it->get_ref<const std::string&>().empty()))
            mask = &*it;
        for (const char* k : {"input_image", "image"})
            if (auto it = u.find(k); it != u.end() && !it->is_null() &&
                                     !(it->is_string() && it->get_ref<const std::string&>().empty())) {
                img = &*it;
                if (img->is_object()) {
                    auto inner = img->find("image");
                    if (inner == img->end() || !inner->is_string())
                        return Error::invalid_argument("expected {\"image\": base64, ...}", field(k));
                    if (auto m = img->find("mask"); m != img->end() && m->is_string() && !m->get_ref<const std::string&>().empty())
                        mask = &*m;
                    img = &*inner;
                }
                break;
            }
        if (mask) {
            EASEL_TRY_ASSIGN(c.mask, decode_b64_image(*mask, field("mask"), int64_t(limits.max_width) * limits.max_height));
        }
        if (img) {
            EASEL_TRY_ASSIGN(c.image, decode_b64_image(*img, field("input_image"), int64_t(limits.max_width) * limits.max_height));
        } else if (init) {
            c.image = *init;
        } else {
            return Error::invalid_argument("no control image (input_image)", where);
        }
        auto weight = get_number(u, "weight");
        auto start = get_number(u, "guidance_start");
        auto end = get_number(u, "guidance_end");
        for (const auto* r : {&weight, &start, &end})
            if (!*r) return within(r->error());
        c.weight = weight->value_or(1.0);
        c.start = start->value_or(0.0);
        c.end = end->value_or(1.0);
        if (!(c.weight >= -10 && c.weight <= 10)) return Error::invalid_argument(fmt::format("must be between -10 and 10, got {}", c.weight), field("weight"));
        if (!(c.start >= 0 && c.start < c.end && c.end <= 1))
            return Error::invalid_argument(fmt::format("guidance_start {} and guidance_end {}: expected 0 <= start < end <= 1", c.start, c.end), where);
        // control_mode and resize_mode: A1111 takes the index or the name.
        auto mode_of = [&](const char* k, std::initializer_list<const char*> names, int def) -> Result<int> {
            auto it = u.find(k);
            if (it == u.end() || it->is_null()) return def;
            if (it->is_number_integer()) {
                const int64_t v = it->get<int64_t>();
                if (v >= 0 && v < int64_t(names.size())) return int(v);
            } else if (it->is_string()) {
                int idx = 0;
                for (const char* n : names) {
                    if (it->get<std::string>() == n) return idx;
                    ++idx;
                }
            }
            std::string all;
            int idx = 0;
            for (const char* n : names) all += fmt::format("{}{} or \"{}\"", idx ? ", " : "", idx, n), ++idx;
            return Error::invalid_argument(fmt::format("expected {}", all), field(k));
        };
        EASEL_TRY_ASSIGN(const int control_mode, mode_of("control_mode", {"Balanced", "My prompt is more important", "ControlNet is more important"}, 0));
        c.mode = control_mode == 0 ? ControlMode::Balanced
                 : control_mode == 1 ? ControlMode::PromptMoreImportant : ControlMode::ControlNetMoreImportant;
        EASEL_TRY_ASSIGN(const int resize_mode, mode_of("resize_mode", {"Just Resize", "Crop and Resize", "Resize and Fill"}, 1));
        c.resize = resize_mode == 0 ? ControlResize::Stretch : resize_mode == 1 ? ControlResize::Crop : ControlResize::Fill;
        if (c.ip_adapter) c.mode = ControlMode::Balanced;  // the extension has no control mode for IP-Adapter units
        // "Pixel Perfect": the resolution that maps the image onto the generation's size in the unit's resize mode.
        auto pixel_perfect = get_bool(u, "pixel_perfect");
        if (!pixel_perfect) return within(pixel_perfect.error());
        if (pixel_perfect->value_or(false) && c.preprocessor.resolution > 0)
            c.preprocessor.resolution = std::clamp(pixel_perfect_resolution(c.image.width, c.image.height, int(width), int(height),
                                                                            c.resize == ControlResize::Fill),
                                                   1, kMaxPreprocessorResolution);
        if (c.mask && (c.mask->width != c.image.width || c.mask->height != c.image.height))
            return Error::invalid_argument(fmt::format("is {}x{}, the unit's image {}x{}", c.mask->width, c.mask->height,
                                                       c.image.width, c.image.height), field("mask"));
        out.push_back(std::move(c));
    }
    return ok();
}

}  // namespace

Result<GenerationRequest> parse_generation_request(const json& body, RequestKind kind, const RequestDefaults& d,
                                                   const Limits& limits) {
    if (!body.is_object()) return Error::invalid_argument(fmt::format("expected a JSON object, got {}", type_name(body)), "body");
    GenerationRequest r;
    r.kind = kind;
    GenerateParams& p = r.params;
    json& out = r.parameters;

    EASEL_TRY_ASSIGN(auto prompt, get_string(body, "prompt"));
    EASEL_TRY_ASSIGN(auto negative, get_string(body, "negative_prompt"));
    p.prompt = prompt.value_or("");
    p.negative_prompt = negative.value_or("");
    if (p.prompt.size() > 65536 || p.negative_prompt.size() > 65536)
        return Error::invalid_argument("is longer than 65536 bytes", p.prompt.size() > 65536 ? "prompt" : "negative_prompt");

    // Features A1111 has and easel does not: refused when asked for, so nobody gets a silently different image.
    for (const char* key : {"enable_hr", "restore_faces", "tiling"}) {
        EASEL_TRY_ASSIGN(auto v, get_bool(body, key));
        if (v.value_or(false)) return Error::unsupported("is not implemented by easel; send false or leave it out", key);
    }
    EASEL_TRY_ASSIGN(auto subseed_strength, get_number(body, "subseed_strength"));
    if (subseed_strength.value_or(0.0) != 0.0)
        return Error::unsupported("variation seeds are not implemented by easel; send 0 or leave it out", "subseed_strength");
    // alwayson_scripts: AUTOMATIC1111's ControlNet extension (its units parsed below, once the image size is known);
    // no other script.
    const json* controlnet_args = nullptr;
    if (auto it = body.find("alwayson_scripts"); it != body.end() && !it->is_null()) {
        if (!it->is_object()) return Error::invalid_argument("expected an object", "alwayson_scripts");
        for (const auto& [name, v] : it->items()) {
            if (name != "controlnet" && name != "ControlNet")
                return Error::unsupported(fmt::format("easel has no script '{}' (it runs the ControlNet extension's API "
                                                      "only); leave it out", name), "alwayson_scripts");
            if (!v.is_object() || !v.contains("args") || !v["args"].is_array())
                return Error::invalid_argument("expected {\"args\": [unit, ...]}", "alwayson_scripts.controlnet");
            controlnet_args = &v["args"];
        }
    }
    if (auto it = body.find("script_name"); it != body.end() && !it->is_null() && !(it->is_string() && it->get<std::string>().empty()))
        return Error::unsupported("easel has no scripts", "script_name");

    EASEL_TRY_ASSIGN(auto seed, get_int(body, "seed"));
    int64_t s = seed.value_or(-1);
    if (s < -1 || s > (int64_t(1) << 53)) return Error::invalid_argument(fmt::format("must be -1 (random) or 0..2^53, got {}", s), "seed");
    if (s == -1) {
        std::random_device rd;
        s = int64_t((uint64_t(rd()) << 32 | rd()) % 4294967296ull);
    }
    p.seed = s;

    EASEL_TRY_ASSIGN(auto steps, get_int(body, "steps"));
    const int64_t st = steps.value_or(d.steps);
    EASEL_TRY(check_range("steps", st, 1, limits.max_steps));
    p.steps = int(st);
    EASEL_TRY_ASSIGN(auto cfg, get_number(body, "cfg_scale"));
    p.cfg_scale = cfg.value_or(d.cfg_scale);
    if (p.cfg_scale < 0 || p.cfg_scale > 100)
        return Error::invalid_argument(fmt::format("must be between 0 and 100, got {}", p.cfg_scale), "cfg_scale");
    // The guidance a guidance-distilled model (Flux dev) takes as an input: easel's "guidance", Forge's
    // "distilled_cfg_scale"; other models ignore it.
    for (const char* key : {"distilled_cfg_scale", "guidance"}) {
        EASEL_TRY_ASSIGN(auto g, get_number(body, key));
        if (!g) continue;
        if (!(*g >= 0 && *g <= 100)) return Error::invalid_argument(fmt::format("must be between 0 and 100, got {}", *g), key);
        p.guidance = *g;
    }
    EASEL_TRY_ASSIGN(auto msl, get_int(body, "max_sequence_length"));
    if (msl) {
        EASEL_TRY(check_range("max_sequence_length", *msl, 1, 512));
        p.max_sequence_length = int(*msl);
    }

    // SD3 and Flux: the flow shift instead of the model's, and SD3's skip-layer guidance (easel's names, as its CLI
    // flags: slg_layers as [7, 8, 9] or "7,8,9"; the model's diffusion model checks them before any work).
    EASEL_TRY_ASSIGN(auto shift, get_number(body, "shift"));
    if (shift) {
        if (!(*shift > 0 && *shift <= 100)) return Error::invalid_argument(fmt::format("must be in (0, 100], got {}", *shift), "shift");
        p.shift = *shift;
    }
    if (auto it = body.find("slg_layers"); it != body.end() && !it->is_null()) {
        std::vector<json> items;
        if (it->is_array()) {
            items.assign(it->begin(), it->end());
        } else if (it->is_string()) {
            EASEL_TRY_ASSIGN(const std::vector<int> parsed, parse_slg_layers(it->get_ref<const std::string&>()));
            items.assign(parsed.begin(), parsed.end());
        } else {
            return Error::invalid_argument("expected a list of block numbers, e.g. [7, 8, 9]", "slg_layers");
        }
        if (items.size() > 64) return Error::invalid_argument("at most 64 blocks", "slg_layers");
        for (const json& v : items) {
            if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 1000)
                return Error::invalid_argument(fmt::format("expected block numbers from 0, got {}", v.dump()), "slg_layers");
            p.slg.layers.push_back(int(v.get<int64_t>()));
        }
    }
    for (auto [key, field] : {std::pair{"slg_scale", &p.slg.scale}, std::pair{"slg_start", &p.slg.start},
                              std::pair{"slg_stop", &p.slg.stop}}) {
        EASEL_TRY_ASSIGN(auto v, get_number(body, key));
        if (!v) continue;
        if (p.slg.layers.empty()) return Error::invalid_argument("goes with slg_layers", key);
        *field = *v;
    }

    EASEL_TRY_ASSIGN(auto bs, get_int(body, "batch_size"));
    EASEL_TRY_ASSIGN(auto ni, get_int(body, "n_iter"));
    EASEL_TRY(check_range("batch_size", bs.value_or(1), 1, limits.max_images));
    EASEL_TRY(check_range("n_iter", ni.value_or(1), 1, limits.max_images));
    p.batch_size = int(bs.value_or(1));
    p.batch_count = int(ni.value_or(1));
    if (r.images() > limits.max_images)
        return Error::invalid_argument(fmt::format("batch_size x n_iter = {} images; this server allows {} per request",
                                                   r.images(), limits.max_images), "batch_size");

    // Sampler: sampler_name (A1111 also reads its older alias sampler_index); a legacy "X Karras" name sets the
    // scheduler when none is given, as A1111's get_sampler_and_scheduler does.
    EASEL_TRY_ASSIGN(auto sampler_name, get_string(body, "sampler_name"));
    EASEL_TRY_ASSIGN(auto sampler_index, get_string(body, "sampler_index"));
    std::string sname = sampler_name && !sampler_name->empty() ? *sampler_name
                        : sampler_index && !sampler_index->empty() ? *sampler_index : d.sampler;
    EASEL_TRY_ASSIGN(auto scheduler, get_string(body, "scheduler"));
    std::string sched = scheduler && !scheduler->empty() ? lower(*scheduler) : "automatic";
    const SamplerEntry* se = find_sampler(sname);
    if (!se) {
        for (const char* suffix : {" karras", " exponential"}) {
            const std::string n = lower(sname), suf = suffix;
            if (n.size() > suf.size() && n.compare(n.size() - suf.size(), suf.size(), suf) == 0) {
                se = find_sampler(sname.substr(0, n.size() - suf.size()));
                if (se && sched == "automatic") sched = suf.substr(1);
                break;
            }
        }
    }
    if (!se) {
        std::string names;
        for (const SamplerEntry& e : sampler_table()) names += (names.empty() ? "" : ", ") + std::string(e.name);
        return Error::invalid_argument(fmt::format("unknown sampler '{}'; this server has {}", sname, names), "sampler_name");
    }
    p.sampler = se->kind;
    r.sampler_name = se->name;
    const std::string effective = sched == "automatic" ? se->automatic_scheduler : sched;
    if (effective == "automatic") {
        p.schedule = ScheduleKind::Default;
    } else {
        const SchedulerEntry* sc = find_scheduler(effective);
        if (!sc) {
            std::string names = "automatic";
            for (const SchedulerEntry& e : scheduler_table()) names += ", " + std::string(e.name);
            return Error::invalid_argument(fmt::format("unknown scheduler '{}'; this server has {}", sched, names), "scheduler");
        }
        p.schedule = sc->kind;
    }
    r.scheduler = sched;

    // Settings A1111 takes through override_settings: the model and clip skip.
    if (auto it = body.find("override_settings"); it != body.end() && !it->is_null()) {
        if (!it->is_object()) return Error::invalid_argument(fmt::format("expected an object, got {}", type_name(*it)), "override_settings");
        EASEL_TRY_ASSIGN(auto ck, get_string(*it, "sd_model_checkpoint"));
        if (ck) r.model = *ck;
        EASEL_TRY_ASSIGN(auto cs, get_int(*it, "CLIP_stop_at_last_layers"));
        if (cs) {
            EASEL_TRY(check_range("override_settings.CLIP_stop_at_last_layers", *cs, 1, 12));
            p.clip_skip = int(*cs);
        }
    }
    EASEL_TRY_ASSIGN(auto model, get_string(body, "model"));
    if (model && !model->empty()) r.model = *model;
    // A1111's refiner (SDXL): refiner_checkpoint names a served model ("" or "None": none), refiner_switch_at the
    // fraction of the schedule the base runs (A1111's default 0.8).
    EASEL_TRY_ASSIGN(auto refiner, get_string(body, "refiner_checkpoint"));
    if (refiner && !refiner->empty() && *refiner != "None") r.refiner = *refiner;
    EASEL_TRY_ASSIGN(auto switch_at, get_number(body, "refiner_switch_at"));
    if (switch_at) {
        if (!(*switch_at > 0.0 && *switch_at < 1.0))
            return Error::invalid_argument(fmt::format("must be between 0 and 1 (exclusive), got {}", *switch_at),
                                           "refiner_switch_at");
        p.refiner_switch_at = *switch_at;
    }
    EASEL_TRY_ASSIGN(auto send, get_bool(body, "send_images"));
    r.send_images = send.value_or(true);

    EASEL_TRY_ASSIGN(auto w, get_int(body, "width"));
    EASEL_TRY_ASSIGN(auto h, get_int(body, "height"));
    int64_t width = w.value_or(d.width), height = h.value_or(d.height);

    if (kind == RequestKind::Img2Img) {
        auto it = body.find("init_images");
        if (it == body.end() || !it->is_array() || it->empty())
            return Error::invalid_argument("img2img needs init_images: an array with one base64 image", "init_images");
        if (it->size() > 1) return Error::unsupported("easel takes one init image per request", "init_images");
        EASEL_TRY_ASSIGN(Image init, decode_b64_image((*it)[0], "init_images[0]", int64_t(limits.max_width) * limits.max_height));
        // Without width/height the output takes the init image's size (A1111 would resize it to 512x512).
        if (!w) width = init.width;
        if (!h) height = init.height;
        // A1111's "Only masked" (inpaint_full_res, with a mask): width x height is the size the masked area is
        // inpainted at, the output the init image's size.
        EASEL_TRY_ASSIGN(auto full_res, get_bool(body, "inpaint_full_res"));
        const bool only_masked = full_res.value_or(false) && body.contains("mask") && !body["mask"].is_null();
        if (!only_masked && (init.width != width || init.height != height))
            return Error::unsupported(fmt::format("the init image is {}x{} but the request asks for {}x{}; easel does not "
                                                  "resize init images, so send them at the output size",
                                                  init.width, init.height, width, height), "init_images[0]");
        EASEL_TRY_ASSIGN(auto strength, get_number(body, "denoising_strength"));
        p.denoising_strength = strength.value_or(0.75);
        if (p.denoising_strength < 0 || p.denoising_strength > 1)
            return Error::invalid_argument(fmt::format("must be between 0 and 1, got {}", p.denoising_strength), "denoising_strength");
        p.init_image = std::move(init);
        if (auto m = body.find("mask"); m != body.end() && !m->is_null()) {
            EASEL_TRY_ASSIGN(Image mask, decode_b64_image(*m, "mask", int64_t(limits.max_width) * limits.max_height));
            if (mask.width != p.init_image->width || mask.height != p.init_image->height)
                return Error::invalid_argument(fmt::format("is {}x{}, the init image {}x{}", mask.width, mask.height,
                                                           p.init_image->width, p.init_image->height), "mask");
            EASEL_TRY_ASSIGN(auto invert, get_int(body, "inpainting_mask_invert"));
            if (invert.value_or(0) == 1)
                for (uint8_t& v : mask.pixels) v = uint8_t(255 - v);
            EASEL_TRY_ASSIGN(auto blur, get_int(body, "mask_blur"));
            EASEL_TRY(check_range("mask_blur", blur.value_or(4), 0, 64));
            p.mask_blur = int(blur.value_or(4));
            // A1111's "Masked content": 0 fill, 1 original (its API's default), 2 latent noise, 3 latent nothing.
            EASEL_TRY_ASSIGN(auto fill, get_int(body, "inpainting_fill"));
            EASEL_TRY(check_range("inpainting_fill", fill.value_or(1), 0, 3));
            p.masked_content = MaskedContent(fill.value_or(1));
            p.inpaint_only_masked = only_masked;
            EASEL_TRY_ASSIGN(auto padding, get_int(body, "inpaint_full_res_padding"));
            EASEL_TRY(check_range("inpaint_full_res_padding", padding.value_or(32), 0, 256));
            p.inpaint_padding = int(padding.value_or(32));
            p.mask = std::move(mask);
        }
    }
    EASEL_TRY(check_range("width", width, 8, limits.max_width));
    EASEL_TRY(check_range("height", height, 8, limits.max_height));
    if (width % 8 || height % 8)
        return Error::invalid_argument(fmt::format("{}x{} is not a multiple of 8", width, height), "width");
    if (controlnet_args)
        EASEL_TRY(parse_controlnet_units(*controlnet_args, p.init_image ? &*p.init_image : nullptr, width, height, limits,
                                         r.controlnets));
    p.width = int(width);
    p.height = int(height);

    // The request as it will run: A1111's "parameters" (what a restart re-parses, so the seed is resolved).
    out = body;
    out["prompt"] = p.prompt;
    out["negative_prompt"] = p.negative_prompt;
    out["seed"] = p.seed;
    out["steps"] = p.steps;
    out["cfg_scale"] = p.cfg_scale;
    if (p.guidance) out["guidance"] = *p.guidance;
    if (p.max_sequence_length) out["max_sequence_length"] = p.max_sequence_length;
    out["width"] = p.width;
    out["height"] = p.height;
    out["batch_size"] = p.batch_size;
    out["n_iter"] = p.batch_count;
    out["sampler_name"] = r.sampler_name;
    out["scheduler"] = r.scheduler;
    out.erase("sampler_index");
    if (!r.model.empty()) out["model"] = r.model;
    if (!r.refiner.empty()) {
        out["refiner_checkpoint"] = r.refiner;
        out["refiner_switch_at"] = p.refiner_switch_at;
    }
    if (kind == RequestKind::Img2Img) {
        out["denoising_strength"] = p.denoising_strength;
        if (p.mask) {
            out["mask_blur"] = p.mask_blur;
            out["inpainting_fill"] = int(p.masked_content);
            out["inpaint_full_res"] = p.inpaint_only_masked;
            out["inpaint_full_res_padding"] = p.inpaint_padding;
        }
    }
    if (p.clip_skip != 1) out["override_settings"]["CLIP_stop_at_last_layers"] = p.clip_skip;
    return r;
}

std::optional<std::string> read_whole_file(const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) return std::nullopt;  // reading a folder throws
    std::ifstream f(path, std::ios::binary);
    if (!f) return std::nullopt;
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::string base64_encode(const uint8_t* data, size_t n) {
    static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((n + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        const uint32_t v = uint32_t(data[i]) << 16 | uint32_t(data[i + 1]) << 8 | data[i + 2];
        out.push_back(tbl[v >> 18]);
        out.push_back(tbl[(v >> 12) & 63]);
        out.push_back(tbl[(v >> 6) & 63]);
        out.push_back(tbl[v & 63]);
    }
    if (i < n) {
        uint32_t v = uint32_t(data[i]) << 16;
        if (i + 1 < n) v |= uint32_t(data[i + 1]) << 8;
        out.push_back(tbl[v >> 18]);
        out.push_back(tbl[(v >> 12) & 63]);
        out.push_back(i + 1 < n ? tbl[(v >> 6) & 63] : '=');
        out.push_back('=');
    }
    return out;
}

std::string base64_encode(const std::string& bytes) {
    return base64_encode(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

Result<std::string> base64_decode(std::string_view text, const std::string& field) {
    if (text.substr(0, 5) == "data:") {
        const size_t comma = text.find(',');
        if (comma == std::string_view::npos) return Error::invalid_argument("a data: URL without a comma", field);
        text.remove_prefix(comma + 1);
    }
    std::string out;
    out.reserve(text.size() / 4 * 3);
    uint32_t acc = 0;
    int bits = 0;
    size_t pad = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        int v;
        if (c >= 'A' && c <= 'Z') v = c - 'A';
        else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
        else if (c >= '0' && c <= '9') v = c - '0' + 52;
        else if (c == '+' || c == '-') v = 62;
        else if (c == '/' || c == '_') v = 63;
        else if (c == '=') {
            ++pad;
            continue;
        } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
            continue;
        } else {
            return Error::invalid_argument(fmt::format("invalid base64 character at offset {}", i), field);
        }
        if (pad) return Error::invalid_argument(fmt::format("base64 data after '=' padding at offset {}", i), field);
        acc = (acc << 6) | uint32_t(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(char((acc >> bits) & 0xFF));
        }
    }
    if (bits >= 6) return Error::invalid_argument("truncated base64 data", field);
    return out;
}

}  // namespace easel::server
