#include "pipeline/ip_adapter.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "io/image_resize.h"
#include "io/model_file.h"
#include "pipeline/guidance.h"
#include "runtime/ops.h"
#include "runtime/param.h"

namespace easel {

namespace fs = std::filesystem;

namespace {

constexpr int kMaxImagesPerUnit = 16;

struct EncoderSource {
    std::string weights_path;
    std::string config_text;  // config.json of a folder; empty for a single file
    std::string name;
};

Result<EncoderSource> encoder_source(const std::string& path) {
    std::error_code ec;
    EncoderSource s;
    s.weights_path = path;
    s.name = fs::path(path).stem().string();
    if (!fs::is_directory(path, ec)) return s;
    s.name = fs::path(path).filename().string();
    s.config_text = read_small_text_file((fs::path(path) / "config.json").string()).value_or("");
    if (s.config_text.empty())
        return Error::not_found("an image encoder folder needs a config.json (transformers' CLIPVisionModelWithProjection)",
                                path);
    s.weights_path.clear();
    for (const char* file : {"model.safetensors", "model.fp16.safetensors", "pytorch_model.bin", "pytorch_model.fp16.bin"})
        if (fs::is_regular_file(fs::path(path) / file, ec)) {
            s.weights_path = (fs::path(path) / file).string();
            break;
        }
    if (s.weights_path.empty())
        return Error::not_found("no model[.fp16].safetensors or pytorch_model[.fp16].bin in the image encoder folder", path);
    return s;
}

Result<CLIPVisionConfig> encoder_config(const EncoderSource& s, const WeightSet& w) {
    if (!w.contains("vision_model.embeddings.patch_embedding.weight")) {
        if (w.contains("visual.conv1.weight") || w.contains("visual.transformer.resblocks.0.attn.in_proj_weight"))
            return Error::unsupported("an OpenCLIP-layout image encoder (visual.*): easel reads transformers' "
                                      "CLIPVisionModelWithProjection (vision_model.*, visual_projection.weight)",
                                      s.weights_path);
        if (w.contains("image_proj.proj.weight") || w.contains("image_proj.latents"))
            return Error::invalid_argument("this is an IP-Adapter, not its image encoder", s.weights_path);
        return Error::not_found("no vision_model.embeddings.patch_embedding.weight: not a CLIP image encoder",
                                s.weights_path);
    }
    Result<CLIPVisionConfig> c = CLIPVisionConfig::detect_from_weights(w, "");
    if (!c) return c.error().within(s.weights_path);
    return c;
}

// The config of an encoder: the folder's config.json, else read off the tensors (which must agree).
Result<CLIPVisionConfig> read_encoder_config(const EncoderSource& s, const WeightSet& w) {
    if (s.config_text.empty()) return encoder_config(s, w);
    return CLIPVisionConfig::from_json(s.config_text, s.name + "/config.json");
}

}  // namespace

Tensor ImageEncoderFile::zeros_penultimate(const Ctx& c) const {
    std::lock_guard<std::mutex> lock(mu_);
    if (!zeros_) {
        const int S = config.image_size;
        Tensor zero = Tensor::empty({1, 3, S, S});
        std::fill_n(zero.data<float>(), zero.numel(), 0.0f);
        zeros_ = encoder.encode(c, zero, {.penultimate = true}).penultimate->contiguous().clone();
    }
    return *zeros_;
}

Result<std::shared_ptr<const ImageEncoderFile>> image_encoder_from_weights(WeightSet&& w, const std::string& config_text,
                                                                           Precision precision, const std::string& path) {
    const EncoderSource s{.weights_path = path, .config_text = config_text, .name = fs::path(path).stem().string()};
    EASEL_TRY_ASSIGN(CLIPVisionConfig cfg, read_encoder_config(s, w));
    auto f = std::make_shared<ImageEncoderFile>();
    f->path = path;
    f->name = s.name;
    f->config = cfg;
    ParamLoader loader(w, precision);
    f->encoder = CLIPVisionEncoder::declare(ParamScope(loader, ""), cfg);
    if (Status st = loader.finish("vision_model."); !st) return st.error().within(path);
    return std::shared_ptr<const ImageEncoderFile>(std::move(f));
}

Result<std::shared_ptr<const ImageEncoderFile>> load_image_encoder(const std::string& path, Precision precision) {
    EASEL_TRY_ASSIGN(EncoderSource s, encoder_source(path));
    EASEL_TRY_ASSIGN(WeightSet w, read_weights(s.weights_path));
    EASEL_TRY_ASSIGN(auto enc, image_encoder_from_weights(std::move(w), s.config_text, precision, s.weights_path));
    auto out = std::const_pointer_cast<ImageEncoderFile>(enc);
    out->path = path;
    out->name = s.name;
    return std::shared_ptr<const ImageEncoderFile>(out);
}

Result<CLIPVisionConfig> check_image_encoder(const std::string& path) {
    EASEL_TRY_ASSIGN(EncoderSource s, encoder_source(path));
    if (!s.config_text.empty()) return CLIPVisionConfig::from_json(s.config_text, s.name + "/config.json");
    EASEL_TRY_ASSIGN(WeightSet w, read_weights(s.weights_path));
    return encoder_config(s, w);
}

namespace {

Result<IPAdapterConfig> fit_ip_adapter(const WeightSet& w, const ModelInfo& base, const std::string& path) {
    Result<IPAdapterConfig> detected = IPAdapterConfig::detect_from_weights(w);
    if (!detected) return detected.error().within(path);
    const IPAdapterConfig& cfg = *detected;
    const UNetConfig& u = base.unet;
    const std::vector<int64_t> blocks = u.cross_attention_blocks();
    auto widths = [](std::vector<int64_t> v) {  // the distinct widths, smallest first
        std::sort(v.begin(), v.end());
        v.erase(std::unique(v.begin(), v.end()), v.end());
        std::string s;
        for (int64_t x : v) s += fmt::format("{}{}", s.empty() ? "" : "/", x);
        return s;
    };
    if (cfg.cross_attention_dim != u.cross_attention_dim || cfg.block_widths != blocks)
        return Error::invalid_argument(
            fmt::format("this {} (context width {}, {} cross-attention blocks of widths {}) does not fit the model ({}: "
                        "context width {}, {} blocks of widths {}); it was made for another model family",
                        cfg.kind_name(), cfg.cross_attention_dim, cfg.block_widths.size(), widths(cfg.block_widths),
                        model_kind_name(base), u.cross_attention_dim, blocks.size(), widths(blocks)),
            path);
    return cfg;
}

Result<WeightSet> read_ip_adapter(const std::string& path) {
    std::error_code ec;
    if (fs::is_directory(path, ec))
        return Error::invalid_argument("a folder; an IP-Adapter is one file (.safetensors, or .bin as h94/IP-Adapter "
                                       "ships it)", path);
    return read_weights(path);
}

}  // namespace

Result<std::shared_ptr<const IPAdapterFile>> ip_adapter_from_weights(WeightSet&& w, const ModelInfo& base,
                                                                     Precision precision, const std::string& path) {
    auto f = std::make_shared<IPAdapterFile>();
    f->path = path;
    f->name = fs::path(path).stem().string();
    EASEL_TRY_ASSIGN(f->config, fit_ip_adapter(w, base, path));
    ParamLoader loader(w, precision);
    f->adapter = IPAdapter::declare(ParamScope(loader, ""), f->config);
    if (Status st = loader.finish(""); !st) return st.error().within(path);
    return std::shared_ptr<const IPAdapterFile>(std::move(f));
}

Result<std::shared_ptr<const IPAdapterFile>> load_ip_adapter(const std::string& path, const ModelInfo& base,
                                                             Precision precision) {
    EASEL_TRY_ASSIGN(WeightSet w, read_ip_adapter(path));
    return ip_adapter_from_weights(std::move(w), base, precision, path);
}

Result<IPAdapterConfig> check_ip_adapter(const std::string& path, const ModelInfo& base) {
    EASEL_TRY_ASSIGN(WeightSet w, read_ip_adapter(path));
    return fit_ip_adapter(w, base, path);
}

Status check_encoder_fits(const IPAdapterConfig& a, const CLIPVisionConfig& e, const std::string& where) {
    const bool plus = a.reads_penultimate();
    const int64_t gives = plus ? e.hidden_size : e.projection_dim;
    if (gives == a.embed_dim) return ok();
    auto known = [](int64_t width, bool hidden) -> std::string {
        if (width == (hidden ? 1280 : 1024)) return " (OpenCLIP ViT-H/14)";
        if (width == (hidden ? 1664 : 1280)) return " (OpenCLIP ViT-bigG/14)";
        if (width == (hidden ? 1024 : 768)) return " (OpenAI ViT-L/14)";
        return "";
    };
    return Error::invalid_argument(
        fmt::format("this {} reads {} {} wide, from an image encoder{}; the image encoder given has {} {}", a.kind_name(),
                    plus ? "hidden states" : "image embeddings", a.embed_dim, known(a.embed_dim, plus),
                    plus ? "hidden states" : "image embeddings", gives),
        where);
}

std::string find_image_encoder(const std::string& adapter_path, const IPAdapterConfig& adapter,
                               const std::string& first_dir, int hidden_width) {
    std::error_code ec;
    const fs::path dir = fs::absolute(adapter_path, ec).parent_path();
    std::vector<fs::path> candidates;
    auto add_inside = [&](const fs::path& d) {
        if (!fs::is_directory(d, ec)) return;
        std::vector<fs::path> inside;
        for (auto it = fs::directory_iterator(d, fs::directory_options::skip_permission_denied, ec);
             !ec && it != fs::directory_iterator(); it.increment(ec))
            inside.push_back(it->path());
        std::sort(inside.begin(), inside.end());
        candidates.insert(candidates.end(), inside.begin(), inside.end());
    };
    if (!first_dir.empty()) add_inside(first_dir);
    candidates.push_back(dir / "image_encoder");
    candidates.push_back(dir.parent_path() / "image_encoder");
    add_inside(dir / "clip_vision");
    add_inside(dir.parent_path() / "clip_vision");
    for (const fs::path& p : candidates) {
        if (!fs::exists(p, ec)) continue;
        Result<CLIPVisionConfig> cfg = check_image_encoder(p.string());
        if (cfg && check_encoder_fits(adapter, *cfg, p.string()) && (hidden_width <= 0 || cfg->hidden_size == hidden_width))
            return p.string();
    }
    return {};
}

Status validate_ip_adapters(const std::vector<IPAdapterUnit>& units) {
    for (size_t i = 0; i < units.size(); ++i) {
        const IPAdapterUnit& u = units[i];
        const std::string where = fmt::format("IP-Adapter unit {}", i);
        if (!u.adapter) return Error::invalid_argument("no IP-Adapter model", where);
        if (!u.encoder) return Error::invalid_argument("no image encoder", where);
        EASEL_TRY(check_encoder_fits(u.adapter->config, u.encoder->config, where));
        if (u.images.empty()) return Error::invalid_argument("no reference image", where);
        if (u.images.size() > size_t(kMaxImagesPerUnit))
            return Error::invalid_argument(fmt::format("{} reference images; at most {}", u.images.size(), kMaxImagesPerUnit),
                                           where);
        for (const Image& im : u.images)
            if (im.width < 1 || im.height < 1 || im.pixels.size() != size_t(im.width) * size_t(im.height) * size_t(im.channels))
                return Error::invalid_argument("an empty reference image", where);
        if (!std::isfinite(u.scale) || std::fabs(u.scale) > 100)
            return Error::invalid_argument(fmt::format("scale {} is out of range (-100..100)", u.scale), where);
        if (!(u.start >= 0 && u.start < u.end && u.end <= 1))
            return Error::invalid_argument(fmt::format("guidance start {} and end {}: expected 0 <= start < end <= 1", u.start,
                                                       u.end), where);
    }
    return ok();
}

Tensor prepare_clip_image(const Image& image, int S) {
    Image rgb = to_rgb(image);
    // transformers get_resize_output_image_size(default_to_square=False): the short side to S, the long one to
    // int(S * long / short).
    const bool wide = rgb.width > rgb.height;
    const int64_t shorter = wide ? rgb.height : rgb.width, longer = wide ? rgb.width : rgb.height;
    const int other = int(int64_t(S) * longer / shorter);
    const int w = wide ? other : S, h = wide ? S : other;
    if (rgb.width != w || rgb.height != h) rgb = resize_pillow(rgb, w, h, ResampleFilter::Bicubic);
    rgb = crop_image(rgb, (w - S) / 2, (h - S) / 2, S, S);
    // rescale: float32(u8 * (1/255) in double); normalize: (x - mean) / std in float32.
    static constexpr double kMean[3] = {0.48145466, 0.4578275, 0.40821073};
    static constexpr double kStd[3] = {0.26862954, 0.26130258, 0.27577711};
    Tensor t = Tensor::empty({1, 3, S, S});
    float* o = t.data<float>();
    const size_t plane = size_t(S) * size_t(S);
    for (size_t k = 0; k < 3; ++k) {
        const float mean = float(kMean[k]), std = float(kStd[k]);
        for (size_t p = 0; p < plane; ++p) {
            const float x = float(double(rgb.pixels[p * 3 + k]) * (1.0 / 255.0));
            o[k * plane + p] = (x - mean) / std;
        }
    }
    return t;
}

std::string ip_adapter_module_name(const IPAdapterUnit& u) {
    switch (u.encoder->config.hidden_size) {
    case 1280: return "ip-adapter_clip_h";
    case 1664: return "ip-adapter_clip_g";
    case 1024: return "ip-adapter_clip_l";
    default: return fmt::format("ip-adapter_clip ({})", u.encoder->name);
    }
}

Status add_image_prompts(const Ctx& c, const std::vector<IPAdapterUnit>& units, ConditioningPair& conds) {
    if (units.empty()) return ok();
    EASEL_TRY(validate_ip_adapters(units));
    for (const IPAdapterUnit& u : units) {
        const IPAdapterConfig& cfg = u.adapter->config;
        const ImageEncoderFile& enc = *u.encoder;
        const int S = enc.config.image_size;
        const int64_t n = int64_t(u.images.size());
        std::vector<Tensor> pixels;
        for (const Image& im : u.images) pixels.push_back(prepare_clip_image(im, S));
        const Tensor batch = n == 1 ? pixels[0] : ops::concat(c, pixels, 0);
        Tensor embeds, negative;
        if (cfg.reads_penultimate()) {
            embeds = *enc.encoder.encode(c, batch, {.penultimate = true}).penultimate;
            const Tensor z = enc.zeros_penultimate(c);
            negative = n == 1 ? z : ops::concat(c, std::vector<Tensor>(size_t(n), z), 0);
        } else {
            embeds = *enc.encoder.encode(c, batch, {.image_embeds = true}).image_embeds;
            negative = c.empty(embeds.shape());
            std::fill_n(negative.data<float>(), negative.numel(), 0.0f);
        }
        // Each image's tokens one after another: [1, n * tokens, width].
        auto tokens = [&](const Tensor& e) {
            const Tensor t = u.adapter->adapter.project(c, e).contiguous();
            return t.reshape({1, t.size(0) * t.size(1), t.size(2)});
        };
        const std::vector<ExtraKV> pos = u.adapter->adapter.keys_values(c, tokens(embeds), float(u.scale));
        const std::vector<ExtraKV> neg = u.adapter->adapter.keys_values(c, tokens(negative), float(u.scale));
        for (Conditioning* cond : {&conds.cond, &conds.uncond}) {
            const std::vector<ExtraKV>& kv = cond == &conds.cond ? pos : neg;
            if (cond->extra_kv.empty()) cond->extra_kv.resize(kv.size());
            if (cond->extra_kv.size() != kv.size())
                return Error::invalid_argument("IP-Adapters for UNets of different depths", "ip_adapter");
            for (size_t b = 0; b < kv.size(); ++b) cond->extra_kv[b].push_back(kv[b]);
        }
    }
    return ok();
}

std::function<std::vector<bool>(float sigma)> image_prompt_windows(const std::vector<IPAdapterUnit>& units,
                                                                   std::vector<float> sigmas, bool a1111) {
    if (std::all_of(units.begin(), units.end(), [](const IPAdapterUnit& u) { return u.start == 0.0 && u.end == 1.0; }))
        return {};
    std::vector<std::pair<double, double>> windows;
    for (const IPAdapterUnit& u : units) windows.emplace_back(u.start, u.end);
    return [windows = std::move(windows), sigmas = std::move(sigmas), a1111](float sigma) {
        std::vector<bool> active;
        for (const auto& [start, end] : windows) active.push_back(in_guidance_window(sigmas, sigma, start, end, a1111));
        return active;
    };
}

Status check_image_prompts(const Conditioning& cond, const UNetConfig& cfg) {
    if (cond.extra_kv.empty()) return ok();
    const std::vector<int64_t> blocks = cfg.cross_attention_blocks();
    if (cond.extra_kv.size() != blocks.size())
        return Error::invalid_argument(fmt::format("image prompts for {} cross-attention blocks; this UNet has {}",
                                                   cond.extra_kv.size(), blocks.size()), "ip_adapter");
    const int64_t N = cond.context.size(0);
    for (size_t b = 0; b < blocks.size(); ++b)
        for (const ExtraKV& e : cond.extra_kv[b])
            if (e.k.rank() != 3 || e.k.size(0) != N || e.k.size(2) != blocks[b] || e.v.shape() != e.k.shape())
                return Error::invalid_argument(fmt::format("image prompt keys {} for block {} of width {} (batch {})",
                                                           e.k.shape().to_string(), b, blocks[b], N), "ip_adapter");
    return ok();
}

}  // namespace easel
