#include "models/unet/controlnet.h"

#include <cmath>

#include <fmt/format.h>

#include "io/keymap_config_doc.h"

namespace easel {

namespace {

constexpr int kMaxEmbeddingLevels = 6;
constexpr int64_t kMaxChannels = 8192;

// The width of each skip connection of a UNet half, in order: conv_in's, one per resnet, one per downsampler.
std::vector<int64_t> skip_channels(const UNetConfig& u) {
    std::vector<int64_t> ch{u.block_out_channels[0]};
    for (int l = 0; l < u.num_levels(); ++l) {
        for (int j = 0; j < u.layers_per_block; ++j) ch.push_back(u.block_out_channels[size_t(l)]);
        if (l + 1 < u.num_levels()) ch.push_back(u.block_out_channels[size_t(l)]);
    }
    return ch;
}

}  // namespace

Result<ControlNetConfig> ControlNetConfig::from_diffusers_json(const std::string& json_text) {
    ControlNetConfig c;
    EASEL_TRY_ASSIGN(c.unet, UNetConfig::from_diffusers_json(json_text, "ControlNetModel"));
    EASEL_TRY_ASSIGN(ConfigNode cfg, parse_json_config(json_text, "controlnet config.json"));
    EASEL_TRY_ASSIGN(std::optional<int64_t> cc, cfg.get_int("conditioning_channels"));
    if (cc) {
        if (*cc < 1 || *cc > 64)
            return Error::invalid_argument(fmt::format("conditioning_channels {} is out of range", *cc), "controlnet config.json");
        c.conditioning_channels = int(*cc);
    }
    EASEL_TRY_ASSIGN(std::optional<std::vector<int64_t>> emb, cfg.get_int_list("conditioning_embedding_out_channels"));
    if (emb) {
        c.embedding_channels.clear();
        for (int64_t v : *emb) {
            if (v < 1 || v > kMaxChannels)
                return Error::invalid_argument(fmt::format("conditioning_embedding_out_channels has {}", v),
                                               "controlnet config.json");
            c.embedding_channels.push_back(int(v));
        }
    }
    EASEL_TRY_ASSIGN(std::optional<bool> pool, cfg.get_bool("global_pool_conditions"));
    c.global_pool = pool.value_or(false);
    EASEL_TRY_ASSIGN(const std::string order, cfg.get_string_or("controlnet_conditioning_channel_order", "rgb"));
    if (order != "rgb" && order != "bgr")
        return Error::invalid_argument(fmt::format("controlnet_conditioning_channel_order '{}'; expected rgb or bgr", order),
                                       "controlnet config.json");
    c.bgr = order == "bgr";
    EASEL_TRY(c.validate());
    return c;
}

Result<ControlNetConfig> ControlNetConfig::detect_from_weights(const WeightSet& w, std::string_view prefix_sv) {
    const std::string prefix(prefix_sv);
    ControlNetConfig c;
    EASEL_TRY_ASSIGN(c.unet, UNetConfig::detect_from_weights(w, prefix, /*encoder_only=*/true));
    const std::string e = prefix + "controlnet_cond_embedding.";
    const Tensor* in = w.find(e + "conv_in.weight");
    if (!in || in->rank() != 4)
        return Error::not_found("the control image encoder's first conv is missing", e + "conv_in.weight");
    c.conditioning_channels = int(in->size(1));
    c.embedding_channels = {int(in->size(0))};
    // blocks.2k: a same-width conv, blocks.2k+1: the stride-2 one to the next width.
    for (int k = 1;; k += 2) {
        const Tensor* b = w.find(fmt::format("{}blocks.{}.weight", e, k));
        if (!b) break;
        if (b->rank() != 4 || int(c.embedding_channels.size()) > kMaxEmbeddingLevels)
            return Error::bad_file(fmt::format("{}blocks.{}.weight", e, k), "unexpected control image encoder layout");
        c.embedding_channels.push_back(int(b->size(0)));
    }
    c.unet.prediction = Prediction::Unknown;
    return c;
}

Status ControlNetConfig::validate() const {
    EASEL_TRY(unet.validate());
    if (embedding_channels.empty() || int(embedding_channels.size()) > kMaxEmbeddingLevels)
        return Error::invalid_argument(fmt::format("ControlNet: {} control image encoder widths; expected 1..{}",
                                                   embedding_channels.size(), kMaxEmbeddingLevels));
    if (conditioning_channels < 1) return Error::invalid_argument("ControlNet: no control image channels");
    return ok();
}

ControlNet ControlNet::declare(const ParamScope& s, const ControlNetConfig& cfg) {
    ControlNet n;
    n.cfg_ = cfg;
    n.enc_ = UNetEncoder::declare(s, cfg.unet);
    const ParamScope e = s / "controlnet_cond_embedding";
    const auto& ch = cfg.embedding_channels;
    n.hint_in_ = Conv2d::declare(e / "conv_in", cfg.conditioning_channels, ch[0], {.kernel = 3, .stride = 1, .padding = 1});
    for (size_t i = 0; i + 1 < ch.size(); ++i) {
        n.hint_blocks_.push_back(Conv2d::declare(e / "blocks" / int(2 * i), ch[i], ch[i], {.kernel = 3, .stride = 1, .padding = 1}));
        n.hint_blocks_.push_back(Conv2d::declare(e / "blocks" / int(2 * i + 1), ch[i], ch[i + 1], {.kernel = 3, .stride = 2, .padding = 1}));
    }
    n.hint_out_ = Conv2d::declare(e / "conv_out", ch.back(), cfg.unet.block_out_channels[0], {.kernel = 3, .stride = 1, .padding = 1});
    const std::vector<int64_t> skips = skip_channels(cfg.unet);
    for (size_t i = 0; i < skips.size(); ++i)
        n.zero_convs_.push_back(Conv2d::declare(s / "controlnet_down_blocks" / int(i), skips[i], skips[i], {.kernel = 1, .stride = 1, .padding = 0}));
    const int64_t top = cfg.unet.block_out_channels.back();
    n.mid_out_ = Conv2d::declare(s / "controlnet_mid_block", top, top, {.kernel = 1, .stride = 1, .padding = 0});
    return n;
}

Tensor ControlNet::embed_condition(const Ctx& c, const Tensor& image_in) const {
    Tensor image = image_in.to(DType::F32).contiguous();
    if (cfg_.bgr) {  // diffusers: torch.flip(controlnet_cond, dims=[1])
        const int64_t N = image.size(0), C = image.size(1), plane = image.size(2) * image.size(3);
        Tensor flipped = Tensor::empty(image.shape());
        for (int64_t b = 0; b < N; ++b)
            for (int64_t ch = 0; ch < C; ++ch)
                std::copy_n(image.data<float>() + (b * C + ch) * plane, plane, flipped.data<float>() + (b * C + (C - 1 - ch)) * plane);
        image = flipped;
    }
    // diffusers ControlNetConditioningEmbedding: conv_in, SiLU, (conv, SiLU) per block, conv_out.
    Tensor h = ops::silu(c, hint_in_(c, image));
    for (const Conv2d& b : hint_blocks_) h = ops::silu(c, b(c, h));
    return hint_out_(c, h);
}

ControlResiduals ControlNet::forward(const Ctx& c, const Tensor& x, float timestep, const Tensor& context,
                                     const Tensor& hint, const AddedConditioning* added, float scale,
                                     bool guess_mode) const {
    const Tensor temb = enc_.time_embedding(c, x.size(0), timestep, added);
    // diffusers ControlNetModel.forward: conv_in's output plus the control image's embedding, then the down
    // levels and the mid block, each skip through its zero conv.
    const Tensor h0 = enc_.conv_in(c, x, &hint);
    std::vector<Tensor> skips;
    const Tensor mid = enc_.down_and_mid(c, h0, temb, context, skips);
    ControlResiduals r;
    const size_t n = skips.size();
    for (size_t i = 0; i < n; ++i) r.down.push_back(zero_convs_[i](c, skips[i]));
    r.mid = mid_out_(c, mid);
    // Scales: guess mode (unless pooled) torch.logspace(-1, 0, n + 1) * scale, one per skip and the last for mid.
    auto scale_of = [&](size_t i) -> float {
        if (!guess_mode || cfg_.global_pool) return scale;
        const float e = -1.0f + float(i) * (1.0f / float(n));
        return std::pow(10.0f, e) * scale;
    };
    for (size_t i = 0; i < n; ++i) r.down[i] = ops::scale(c, r.down[i], scale_of(i));
    r.mid = ops::scale(c, r.mid, scale_of(n));
    if (cfg_.global_pool) {  // torch.mean(sample, dim=(2, 3), keepdim=True), added to the UNet's by broadcasting
        auto pool = [](const Tensor& t) {
            const int64_t N = t.size(0), C = t.size(1), plane = t.size(2) * t.size(3);
            Tensor out = Tensor::empty(Shape{N, C, 1, 1});
            for (int64_t i = 0; i < N * C; ++i) {
                double s = 0;
                for (int64_t k = 0; k < plane; ++k) s += t.data<float>()[i * plane + k];
                out.data<float>()[i] = float(s / double(plane));
            }
            return out;
        };
        for (Tensor& d : r.down) d = pool(d);
        r.mid = pool(r.mid);
    }
    return r;
}

}  // namespace easel
