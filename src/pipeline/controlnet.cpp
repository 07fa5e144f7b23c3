#include "pipeline/controlnet.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>

#include "io/image_resize.h"
#include "io/keymap_ldm.h"
#include "io/model_file.h"
#include "pipeline/guidance.h"
#include "runtime/ops.h"
#include "runtime/param.h"

namespace easel {

namespace fs = std::filesystem;

namespace {

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// "7" -> 7; anything else -> -1.
int index_of(std::string_view s) {
    if (s.empty() || s.size() > 6) return -1;
    int v = 0;
    for (char ch : s) {
        if (ch < '0' || ch > '9') return -1;
        v = v * 10 + (ch - '0');
    }
    return v;
}

}  // namespace

Result<WeightSet> controlnet_to_diffusers(WeightSet&& w) {
    // The original layout: input_hint_block.* with or without control_model. in front.
    std::string prefix;
    bool ldm = false;
    for (const std::string& n : w.names()) {
        if (starts_with(n, "control_model.input_hint_block.")) {
            prefix = "control_model.";
            ldm = true;
            break;
        }
        if (starts_with(n, "input_hint_block.")) ldm = true;
    }
    if (!ldm) return std::move(w);
    WeightSet unet_part, out;
    out.metadata = w.metadata;
    out.source = w.source;
    std::map<int, std::string> hint;  // input_hint_block index -> its conv's name stem
    int max_in = -1, first_down = -1;
    for (const std::string& n : w.names()) {
        if (!starts_with(n, prefix)) continue;  // e.g. a full checkpoint's model.diffusion_model.*: not this net
        const std::string rest = n.substr(prefix.size());
        Tensor t = *w.find(n);
        if (starts_with(rest, "input_hint_block.")) {
            const std::string tail = rest.substr(17);
            const size_t dot = tail.find('.');
            const int i = index_of(tail.substr(0, dot));
            if (i < 0 || dot == std::string::npos)
                return Error::bad_file(n, "input_hint_block entries are numbered convolutions");
            hint[i];
            continue;
        }
        if (starts_with(rest, "zero_convs.")) {
            const std::string tail = rest.substr(11);
            const size_t dot = tail.find('.');
            const int i = index_of(tail.substr(0, dot));
            if (i < 0 || tail.compare(dot, 3, ".0.") != 0) return Error::bad_file(n, "expected zero_convs.N.0.weight/bias");
            EASEL_TRY(out.add(fmt::format("controlnet_down_blocks.{}.{}", i, tail.substr(dot + 3)), t));
            continue;
        }
        if (starts_with(rest, "middle_block_out.0.")) {
            EASEL_TRY(out.add("controlnet_mid_block." + rest.substr(19), t));
            continue;
        }
        if (starts_with(rest, "input_blocks.")) {
            const std::string tail = rest.substr(13);
            const size_t dot = tail.find('.');
            const int i = index_of(tail.substr(0, dot));
            if (i >= 0) {
                max_in = std::max(max_in, i);
                if (dot != std::string::npos && tail.compare(dot, 6, ".0.op.") == 0 && (first_down < 0 || i < first_down)) first_down = i;
            }
        }
        EASEL_TRY(unet_part.add(std::string(kLdmUNetPrefix) + rest, t));
    }
    // The control image encoder: convs at the even indices (SiLU between them); the first is conv_in, the last
    // conv_out, the ones between blocks.0, 1, ...
    if (hint.size() < 2) return Error::bad_file(w.source, "input_hint_block has fewer than two convolutions");
    int k = 0;
    for (auto it = hint.begin(); it != hint.end(); ++it, ++k) {
        const std::string to = it == hint.begin() ? "conv_in" : std::next(it) == hint.end() ? "conv_out" : fmt::format("blocks.{}", k - 1);
        for (const char* part : {"weight", "bias"}) {
            const std::string from = fmt::format("{}input_hint_block.{}.{}", prefix, it->first, part);
            const Tensor* t = w.find(from);
            if (!t) return Error::not_found("tensor is missing", from);
            EASEL_TRY(out.add(fmt::format("controlnet_cond_embedding.{}.{}", to, part), *t));
        }
    }
    // The UNet half in LDM names -> diffusers', its layout read off input_blocks (a ControlNet has no output blocks).
    if (max_in < 1) return Error::not_found("no input_blocks: not a ControlNet", prefix + "input_blocks");
    LdmKeymapOptions o;
    LdmUNetLayout layout;
    layout.layers_per_block = first_down > 0 ? first_down - 1 : max_in;
    if (layout.layers_per_block < 1 || (max_in + 1) % (layout.layers_per_block + 1) != 0)
        return Error::bad_file(prefix + "input_blocks", fmt::format("input blocks 0..{} with the first downsampler at {} fit "
                                                                    "no UNet layout", max_in, first_down));
    layout.num_levels = (max_in + 1) / (layout.layers_per_block + 1);
    o.unet = layout;
    EASEL_TRY_ASSIGN(WeightSet conv, ldm_to_diffusers(std::move(unet_part), o));
    for (const std::string& n : conv.names()) {
        if (!starts_with(n, "unet.")) return Error::bad_file(n, "not a part of the ControlNet's UNet half");
        EASEL_TRY(out.add(n.substr(5), *conv.find(n)));
    }
    return out;
}

namespace {

// The config of a ControlNet in diffusers names (`config_text`: its config.json, else read off the tensors with
// the model's heads), checked against the model it is to steer.
Result<ControlNetConfig> fit_controlnet(const WeightSet& w, std::string config_text, const ModelInfo& base,
                                        const std::string& weights_path) {
    if (config_text.empty())
        if (auto it = w.metadata.find("easel.config.controlnet"); it != w.metadata.end()) config_text = it->second;
    if (!w.contains("controlnet_cond_embedding.conv_in.weight"))
        return Error::bad_file(weights_path, w.contains("model.diffusion_model.input_blocks.0.0.weight") ||
                                                     w.contains("conv_out.weight")
                                                 ? "this is a Stable Diffusion model, not a ControlNet"
                                                 : "no ControlNet tensors (controlnet_cond_embedding.*, or input_hint_block.* "
                                                   "in the original layout)");
    ControlNetConfig config;
    if (!config_text.empty()) {
        auto cfg = ControlNetConfig::from_diffusers_json(config_text);
        if (!cfg) return cfg.error().within(weights_path);
        config = *cfg;
    } else {
        // Heads, norm groups and eps are not in the shapes: the model's own (a ControlNet copies its UNet).
        auto detected = ControlNetConfig::detect_from_weights(w, "");
        if (!detected) return detected.error().within(weights_path);
        config = *detected;
        if (base.unet.num_levels() == config.unet.num_levels()) config.unet.num_heads = base.unet.num_heads;
        config.unet.upcast_attention = base.unet.upcast_attention;
        config.unet.norm_num_groups = base.unet.norm_num_groups;
        config.unet.norm_eps = base.unet.norm_eps;
        if (Status st = config.validate(); !st) return st.error().within(weights_path);
    }
    const UNetConfig& u = config.unet;
    const UNetConfig& b = base.unet;
    auto what = [](const UNetConfig& c) {
        return fmt::format("widths {}, {} resnets per level, cross-attention width {}{}", fmt::join(c.block_out_channels, "/"),
                           c.layers_per_block, c.cross_attention_dim, c.has_added_conditioning() ? ", SDXL's added conditioning" : "");
    };
    if (u.block_out_channels != b.block_out_channels || u.layers_per_block != b.layers_per_block ||
        u.cross_attention_dim != b.cross_attention_dim || u.has_added_conditioning() != b.has_added_conditioning() ||
        (u.has_added_conditioning() && u.addition_embed_input_dim != b.addition_embed_input_dim))
        return Error::invalid_argument(fmt::format("this ControlNet ({}) does not fit the model ({}, {}): a ControlNet is "
                                                   "made for one base model family", what(u), model_kind_name(base), what(b)),
                                       weights_path);
    // It reads the sampler's latent (4 channels, also beside a 9-channel inpainting UNet) and an RGB control image:
    // anything else would reach a convolution of another width.
    if (u.in_channels != 4)
        return Error::unsupported(fmt::format("a ControlNet with {} input channels (expected the latent's 4)", u.in_channels),
                                  weights_path);
    if (config.conditioning_channels != 3)
        return Error::unsupported(fmt::format("a ControlNet whose control image has {} channels (expected RGB, 3)",
                                              config.conditioning_channels), weights_path);
    return config;
}

// A path's weights file and config text (a diffusers folder: its config.json and model file).
struct ControlNetSource {
    std::string name, weights_path, config_text;
};

Result<ControlNetSource> controlnet_source(const std::string& path) {
    std::error_code ec;
    ControlNetSource s;
    s.weights_path = path;
    if (fs::is_directory(path, ec)) {
        s.name = fs::path(path).filename().string();
        s.config_text = read_small_text_file((fs::path(path) / "config.json").string()).value_or("");
        if (s.config_text.empty())
            return Error::not_found("a ControlNet folder needs a config.json (diffusers' ControlNetModel)", path);
        s.weights_path.clear();
        for (const char* file : {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                                 "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin"})
            if (fs::is_regular_file(fs::path(path) / file, ec)) {
                s.weights_path = (fs::path(path) / file).string();
                break;
            }
        if (s.weights_path.empty())
            return Error::not_found("no diffusion_pytorch_model[.fp16].safetensors or .bin in the ControlNet folder", path);
    } else {
        s.name = fs::path(path).stem().string();
    }
    return s;
}

}  // namespace

Result<std::shared_ptr<const ControlNetFile>> controlnet_from_weights(WeightSet&& raw, std::string config_text,
                                                                      const ModelInfo& base, Precision precision,
                                                                      const std::string& weights_path) {
    auto f = std::make_shared<ControlNetFile>();
    f->path = weights_path;
    f->name = fs::path(weights_path).stem().string();
    if (config_text.empty())
        if (auto it = raw.metadata.find("easel.config.controlnet"); it != raw.metadata.end()) config_text = it->second;
    EASEL_TRY_ASSIGN(WeightSet w, controlnet_to_diffusers(std::move(raw)));
    EASEL_TRY_ASSIGN(f->config, fit_controlnet(w, config_text, base, weights_path));
    ParamLoader loader(w, precision);
    f->net = ControlNet::declare(ParamScope(loader, ""), f->config);
    if (Status st = loader.finish(""); !st) return st.error().within(weights_path);
    return std::shared_ptr<const ControlNetFile>(std::move(f));
}

Result<std::shared_ptr<const ControlNetFile>> load_controlnet(const std::string& path, const ModelInfo& base,
                                                              Precision precision) {
    EASEL_TRY_ASSIGN(ControlNetSource s, controlnet_source(path));
    EASEL_TRY_ASSIGN(WeightSet raw, read_weights(s.weights_path));
    EASEL_TRY_ASSIGN(auto net, controlnet_from_weights(std::move(raw), s.config_text, base, precision, s.weights_path));
    auto out = std::const_pointer_cast<ControlNetFile>(net);
    out->path = path;
    out->name = s.name;
    return std::shared_ptr<const ControlNetFile>(out);
}

Result<ControlNetConfig> check_controlnet(const std::string& path, const ModelInfo& base) {
    EASEL_TRY_ASSIGN(ControlNetSource s, controlnet_source(path));
    EASEL_TRY_ASSIGN(WeightSet raw, read_weights(s.weights_path));
    std::string config_text = s.config_text;
    if (config_text.empty())
        if (auto it = raw.metadata.find("easel.config.controlnet"); it != raw.metadata.end()) config_text = it->second;
    EASEL_TRY_ASSIGN(WeightSet w, controlnet_to_diffusers(std::move(raw)));
    return fit_controlnet(w, config_text, base, s.weights_path);
}

std::vector<std::pair<std::string, std::string>> list_controlnets(const std::string& dir) {
    std::vector<std::pair<std::string, std::string>> out;
    std::error_code ec;
    if (dir.empty() || !fs::is_directory(dir, ec)) return out;
    for (auto it = fs::directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::directory_iterator(); it.increment(ec)) {
        const fs::path p = it->path();
        if (it->is_directory(ec)) {
            // A diffusers ControlNetModel folder (not another model's folder kept beside, such as an image encoder).
            const std::string cfg = read_small_text_file((p / "config.json").string()).value_or("");
            if (cfg.find("\"ControlNetModel\"") != std::string::npos) out.emplace_back(p.filename().string(), p.string());
            continue;
        }
        std::string ext = p.extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
        if (ext == ".safetensors" || ext == ".pth" || ext == ".pt" || ext == ".ckpt" || ext == ".bin")
            out.emplace_back(p.stem().string(), p.string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<std::string> list_controlnet_names(const std::string& dir) {
    std::vector<std::string> names;
    for (const auto& [name, path] : list_controlnets(dir))
        if (names.empty() || names.back() != name) names.push_back(name);
    return names;
}

std::string default_controlnet_dir(const std::string& model_path) {
    std::error_code ec;
    const fs::path m = fs::absolute(model_path, ec);
    const fs::path here = fs::is_directory(m, ec) ? m : m.parent_path();
    for (const fs::path& d : {here / "ControlNet", here.parent_path() / "ControlNet"})
        if (fs::is_directory(d, ec)) return d.string();
    return {};
}

Result<std::string> find_controlnet(const std::string& dir, const std::string& name_in) {
    std::string name = name_in;
    // A1111's model list gives "control_v11p_sd15_canny [d14c016b]".
    if (const size_t b = name.rfind(" ["); b != std::string::npos && !name.empty() && name.back() == ']') name = name.substr(0, b);
    if (name.empty() || name.find('/') != std::string::npos || name.find("..") != std::string::npos)
        return Error::invalid_argument(fmt::format("'{}': a ControlNet is named by its file or folder name in the server's "
                                                   "ControlNet folder", name_in));
    if (dir.empty()) return Error::not_found(fmt::format("'{}': this server has no ControlNet folder (easel serve --controlnet-dir)", name));
    std::vector<std::string> found;
    for (const auto& [stem, path] : list_controlnets(dir))
        if (stem == name) found.push_back(path);
    if (found.empty()) return Error::not_found(fmt::format("no ControlNet named '{}' in {}", name, dir));
    if (found.size() > 1) {
        // The same weights saved twice (ip-adapter-plus_sd15.bin and .safetensors, as h94 ships them): the
        // .safetensors file, which holds nothing but tensors. A folder beside a file stays ambiguous.
        std::error_code ec;
        const auto st = std::find_if(found.begin(), found.end(), [&](const std::string& f) {
            return fs::path(f).extension() == ".safetensors" && fs::is_regular_file(f, ec);
        });
        const bool all_files = std::all_of(found.begin(), found.end(), [&](const std::string& f) { return fs::is_regular_file(f, ec); });
        if (st != found.end() && all_files) return *st;
    }
    if (found.size() > 1)
        return Error::invalid_argument(fmt::format("'{}' names {} files in {}; rename one", name, found.size(), dir));
    return found.front();
}

Status validate_control(const std::vector<ControlUnit>& units) {
    for (size_t i = 0; i < units.size(); ++i) {
        const ControlUnit& u = units[i];
        const std::string where = fmt::format("ControlNet unit {}", i);
        if (!u.net) return Error::invalid_argument("no ControlNet model", where);
        if (Status st = validate_preprocessor(u.preprocessor); !st) return st.error().within(where);
        if (u.image.width < 1 || u.image.height < 1 || u.image.pixels.empty())
            return Error::invalid_argument("no control image", where);
        if (!std::isfinite(u.scale) || std::fabs(u.scale) > 100)
            return Error::invalid_argument(fmt::format("scale {} is out of range (-100..100)", u.scale), where);
        if (!(u.start >= 0 && u.start < u.end && u.end <= 1))
            return Error::invalid_argument(fmt::format("guidance start {} and end {}: expected 0 <= start < end <= 1", u.start, u.end),
                                           where);
    }
    return ok();
}

Tensor prepare_control_image(const Image& image_in, int width, int height, ControlResize resize, bool a1111) {
    // diffusers VaeImageProcessor(do_convert_rgb=True, do_normalize=False): RGB, resized with PIL LANCZOS, / 255.
    Image rgb = to_rgb(image_in);
    const bool other_shape = int64_t(rgb.width) * height != int64_t(rgb.height) * width;
    if (a1111) {
        rgb = fit_control_map_a1111(rgb, width, height, resize);
    } else if (resize == ControlResize::Fill && other_shape) {
        uint8_t fill[3];
        border_median_colour(rgb, fill);
        const double s = std::min(double(width) / rgb.width, double(height) / rgb.height);
        const int fw = std::clamp(int(std::nearbyint(rgb.width * s)), 1, width);
        const int fh = std::clamp(int(std::nearbyint(rgb.height * s)), 1, height);
        rgb = centred_on(resize_pillow(rgb, fw, fh, ResampleFilter::Lanczos), width, height, fill);
    }
    if (!a1111 && resize == ControlResize::Crop && other_shape) {
        // Scaled to cover the output, then its middle cut out.
        const double s = std::max(double(width) / rgb.width, double(height) / rgb.height);
        const int cw = std::max(width, int(std::lround(rgb.width * s))), ch = std::max(height, int(std::lround(rgb.height * s)));
        const Image big = resize_pillow(rgb, cw, ch, ResampleFilter::Lanczos);
        rgb = crop_image(big, (cw - width) / 2, (ch - height) / 2, width, height);
    }
    if (rgb.width != width || rgb.height != height) rgb = resize_pillow(rgb, width, height, ResampleFilter::Lanczos);
    Tensor t = Tensor::empty({1, 3, height, width});
    float* o = t.data<float>();
    const size_t plane = size_t(width) * size_t(height);
    for (size_t p = 0; p < plane; ++p)
        for (size_t k = 0; k < 3; ++k) o[k * plane + p] = float(rgb.pixels[p * 3 + k]) / 255.0f;
    return t;
}

Result<Tensor> control_hint(const ControlUnit& u, int width, int height, const std::optional<Image>& generation_mask,
                            bool a1111) {
    if (!is_inpaint_preprocessor(u.preprocessor)) {
        EASEL_TRY_ASSIGN(const Image map, run_preprocessor(u.preprocessor, u.image));
        return prepare_control_image(map, width, height, u.resize, a1111);
    }
    Image mask;
    if (u.mask) {
        mask = *u.mask;
    } else if (u.image.channels == 4) {
        // The extension's canvas: the transparent part is what is repainted.
        mask.width = u.image.width;
        mask.height = u.image.height;
        mask.channels = 1;
        mask.pixels.resize(size_t(mask.width) * size_t(mask.height));
        for (size_t p = 0; p < mask.pixels.size(); ++p) mask.pixels[p] = u.image.pixels[p * 4 + 3] > 127 ? 0 : 255;
    } else if (generation_mask) {
        mask = *generation_mask;
    } else {
        return Error::invalid_argument("the inpaint preprocessor needs a mask: the unit's, a transparent part of its image, "
                                       "or the inpainting mask of the generation", "module");
    }
    if (mask.width != u.image.width || mask.height != u.image.height)
        return Error::invalid_argument(fmt::format("the inpaint mask is {}x{}, its image {}x{}; they must be the same size",
                                                   mask.width, mask.height, u.image.width, u.image.height), "mask");
    Tensor hint = prepare_control_image(u.image, width, height, u.resize);
    const Tensor m = prepare_control_image(mask, width, height, u.resize);  // gray, replicated to 3 channels
    const size_t plane = size_t(width) * size_t(height);
    for (size_t p = 0; p < plane; ++p)
        if (m.data<float>()[p] > 0.5f)
            for (size_t k = 0; k < 3; ++k) hint.data<float>()[k * plane + p] = -1.0f;
    return hint;
}

std::string_view control_mode_name(ControlMode m) {
    switch (m) {
    case ControlMode::Balanced: return "Balanced";
    case ControlMode::PromptMoreImportant: return "My prompt is more important";
    case ControlMode::ControlNetMoreImportant: return "ControlNet is more important";
    }
    return "Balanced";
}

Result<ControlFn> make_control_fn(const std::vector<ControlUnit>& units, int width, int height, std::vector<float> sigmas,
                                  const std::optional<Image>& generation_mask, bool a1111) {
    if (units.empty()) return ControlFn{};
    struct Unit {
        ControlUnit u;
        Tensor image;                         // [1, 3, H, W]
        std::map<int64_t, Tensor> embedded;   // by batch size
    };
    auto state = std::make_shared<std::vector<Unit>>();
    for (size_t i = 0; i < units.size(); ++i) {
        if (!a1111 && units[i].mode == ControlMode::PromptMoreImportant)
            return Error::unsupported("\"My prompt is more important\" is AUTOMATIC1111's; diffusers has no such mode "
                                      "(use k-diffusion mode, or Balanced / ControlNet is more important)",
                                      fmt::format("ControlNet unit {}", i));
        Result<Tensor> hint = control_hint(units[i], width, height, generation_mask, a1111);
        if (!hint) return hint.error().within(fmt::format("ControlNet unit {}", i));
        state->push_back({units[i], *hint, {}});
    }
    return ControlFn([state, sigmas = std::move(sigmas), a1111](const Ctx& c, const Tensor& x, float t, const Conditioning& cond,
                                                                float sigma) -> Result<std::vector<Tensor>> {
        const int64_t N = x.size(0);
        // Items of the batch from the prompt (a guess-mode unit leaves the negative prompt's items alone): the
        // conditioner's pair is batched prompt first.
        int64_t positive = N;
        if (!cond.negative.empty()) {
            positive = 0;
            while (positive < N && !cond.negative[size_t(positive)]) ++positive;
        }
        std::vector<Tensor> sum;
        for (Unit& s : *state) {
            if (!in_guidance_window(sigmas, sigma, s.u.start, s.u.end, a1111)) continue;
            const bool cond_only = s.u.mode == ControlMode::ControlNetMoreImportant;
            const int64_t items = cond_only ? positive : N;
            if (items == 0) continue;
            auto it = s.embedded.find(items);
            if (it == s.embedded.end()) {
                const Tensor img = items == 1 ? s.image : ops::concat(c, std::vector<Tensor>(size_t(items), s.image), 0);
                it = s.embedded.emplace(items, s.u.net->net.embed_condition(c, img)).first;
            }
            const Tensor xs = items == N ? x : x.slice(0, 0, items).contiguous();
            const Tensor ctx = items == N ? cond.context : cond.context.slice(0, 0, items).contiguous();
            std::optional<AddedConditioning> added;
            if (s.u.net->config.unet.has_added_conditioning()) {
                if (!cond.pooled || !cond.ids)
                    return Error::invalid_argument("this ControlNet needs SDXL's pooled text embedding and size ids");
                added = AddedConditioning{items == N ? *cond.pooled : cond.pooled->slice(0, 0, items).contiguous(),
                                          items == N ? *cond.ids : cond.ids->slice(0, 0, items).contiguous()};
            }
            const bool soft = a1111 && s.u.mode != ControlMode::Balanced;
            ControlResiduals r = s.u.net->net.forward(c, xs, t, ctx, it->second, added ? &*added : nullptr,
                                                      soft ? 1.0f : float(s.u.scale), !a1111 && cond_only);
            std::vector<Tensor> parts = std::move(r.down);
            parts.push_back(std::move(r.mid));
            if (soft)  // the extension's soft injection: residual i times weight x 0.825^(12 - i)
                for (size_t k = 0; k < parts.size(); ++k)
                    parts[k] = ops::scale(c, parts[k], float(s.u.scale * std::pow(0.825, 12.0 - double(k))));
            if (items < N)  // zeros for the negative prompt's items (diffusers: torch.cat([zeros, d]) after chunking)
                for (Tensor& p : parts) {
                    Shape zs = p.shape();
                    zs[0] = N - items;
                    p = ops::concat(c, {p, Tensor::zeros(zs)}, 0);
                }
            if (sum.empty()) {
                sum = std::move(parts);
            } else {
                for (size_t k = 0; k < sum.size(); ++k) sum[k] = ops::add(c, sum[k], parts[k]);
            }
        }
        return sum;
    });
}

Result<std::optional<ControlResiduals>> control_residuals(const std::vector<Tensor>& control, const UNetConfig& cfg) {
    if (control.empty()) return std::optional<ControlResiduals>();
    const size_t skips = size_t(1 + cfg.num_levels() * cfg.layers_per_block + (cfg.num_levels() - 1));
    if (control.size() != skips + 1)
        return Error::invalid_argument(fmt::format("{} control residuals for a UNet with {} skip connections and a mid block",
                                                   control.size(), skips));
    ControlResiduals r;
    r.down.assign(control.begin(), control.end() - 1);
    r.mid = control.back();
    return std::optional<ControlResiduals>(std::move(r));
}

}  // namespace easel
