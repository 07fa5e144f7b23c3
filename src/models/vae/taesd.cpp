#include "models/vae/taesd.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace easel {

namespace {

constexpr Conv2dSpec k3{.kernel = 3, .stride = 1, .padding = 1};

// In place: x = max(x, 0). x is a fresh, contiguous f32 output of the layer before.
void relu_inplace(Tensor& x) {
    float* p = x.data<float>();
    for (int64_t i = 0, n = x.numel(); i < n; ++i) p[i] = std::max(p[i], 0.0f);
}

}  // namespace

Status TAESDConfig::validate() const {
    if (latent_channels < 1 || latent_channels > 64)
        return Error::invalid_argument(fmt::format("latent channels must be 1..64, got {}", latent_channels));
    if (channels < 1 || channels > 1024) return Error::invalid_argument(fmt::format("channels must be 1..1024, got {}", channels));
    if (encoder_blocks.empty() || decoder_blocks.empty())
        return Error::invalid_argument("a tiny autoencoder needs at least one encoder and one decoder level");
    for (int b : encoder_blocks)
        if (b < 0 || b > 16) return Error::invalid_argument(fmt::format("encoder blocks per level must be 0..16, got {}", b));
    for (int b : decoder_blocks)
        if (b < 0 || b > 16) return Error::invalid_argument(fmt::format("decoder blocks per level must be 0..16, got {}", b));
    return ok();
}

TinyBlock TinyBlock::declare(const ParamScope& s, int64_t channels) {
    TinyBlock b;
    b.conv0 = Conv2d::declare(s / "conv" / 0, channels, channels, k3);
    b.conv1 = Conv2d::declare(s / "conv" / 2, channels, channels, k3);
    b.conv2 = Conv2d::declare(s / "conv" / 4, channels, channels, k3);
    return b;
}

Tensor TinyBlock::forward(const Ctx& c, const Tensor& x) const {
    Tensor h = conv0(c, x);
    relu_inplace(h);
    h = conv1(c, h);
    relu_inplace(h);
    h = conv2(c, h, &x);  // + skip (the identity), fused
    relu_inplace(h);      // fuse
    return h;
}

TinyAutoencoder TinyAutoencoder::declare(const ParamScope& s, const TAESDConfig& cfg, bool with_encoder, bool with_decoder) {
    TinyAutoencoder t;
    t.cfg_ = cfg;
    t.has_encoder_ = with_encoder;
    t.has_decoder_ = with_decoder;
    const int64_t ch = cfg.channels;
    if (with_encoder) {
        // EncoderTiny: conv(3 -> C); per level i > 0 a stride-2 conv without bias; the level's blocks; conv(C -> latent).
        const ParamScope e = s / "encoder" / "layers";
        int at = 0;
        for (size_t i = 0; i < cfg.encoder_blocks.size(); ++i) {
            Layer l;
            l.conv = i == 0 ? Conv2d::declare(e / at, 3, ch, k3)
                            : Conv2d::declare(e / at, ch, ch, {.kernel = 3, .stride = 2, .padding = 1}, /*bias=*/false);
            t.encoder_.push_back(std::move(l));
            ++at;
            for (int b = 0; b < cfg.encoder_blocks[i]; ++b) t.encoder_.push_back({.block = TinyBlock::declare(e / at++, ch)});
        }
        t.encoder_.push_back({.conv = Conv2d::declare(e / at, ch, cfg.latent_channels, k3)});
    }
    if (with_decoder) {
        // DecoderTiny: conv(latent -> C), ReLU; per level the blocks, a 2x upsample (not after the last), a conv
        // (without bias, except the last: C -> 3).
        const ParamScope d = s / "decoder" / "layers";
        t.decoder_.push_back({.conv = Conv2d::declare(d / 0, cfg.latent_channels, ch, k3), .relu = true});
        int at = 2;  // index 1 is the ReLU
        for (size_t i = 0; i < cfg.decoder_blocks.size(); ++i) {
            const bool last = i + 1 == cfg.decoder_blocks.size();
            for (int b = 0; b < cfg.decoder_blocks[i]; ++b) t.decoder_.push_back({.block = TinyBlock::declare(d / at++, ch)});
            if (!last) {
                t.decoder_.push_back({.upsample = true});
                ++at;
            }
            t.decoder_.push_back({.conv = Conv2d::declare(d / at++, ch, last ? 3 : ch, k3, /*bias=*/last)});
        }
    }
    return t;
}

Tensor TinyAutoencoder::run(const Ctx& c, const std::vector<Layer>& layers, Tensor x) {
    for (const Layer& l : layers) {
        if (l.upsample) {
            x = ops::upsample_nearest2x(c, x);
        } else if (l.block) {
            x = l.block->forward(c, x);
        } else {
            x = (*l.conv)(c, x);
            if (l.relu) relu_inplace(x);
        }
    }
    return x;
}

Tensor TinyAutoencoder::decode(const Ctx& c, const Tensor& latent) const {
    EASEL_ASSERT(has_decoder_, "TinyAutoencoder::decode without its decoder");
    Tensor z = ops::f32_contiguous(c, latent).clone();
    const float m = cfg_.latent_magnitude;
    float* p = z.data<float>();
    for (int64_t i = 0, n = z.numel(); i < n; ++i) p[i] = std::tanh(p[i] / m) * m;
    Tensor x = run(c, decoder_, z);
    float* q = x.data<float>();
    for (int64_t i = 0, n = x.numel(); i < n; ++i) q[i] = q[i] * 2.0f - 1.0f;
    return x;
}

Tensor TinyAutoencoder::encode(const Ctx& c, const Tensor& image) const {
    EASEL_ASSERT(has_encoder_, "TinyAutoencoder::encode without its encoder");
    Tensor x = ops::f32_contiguous(c, image).clone();
    float* p = x.data<float>();
    for (int64_t i = 0, n = x.numel(); i < n; ++i) p[i] = (p[i] + 1.0f) / 2.0f;
    return run(c, encoder_, x);
}

}  // namespace easel
