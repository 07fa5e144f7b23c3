#include "models/vae/vae.h"

#include <algorithm>

namespace easel {

VAEAttention VAEAttention::declare(const ParamScope& s, int64_t channels, int groups, float eps) {
    VAEAttention a;
    a.group_norm = GroupNorm::declare(s / "group_norm", groups, channels, eps);
    a.to_q = Linear::declare(s / "to_q", channels, channels);
    a.to_k = Linear::declare(s / "to_k", channels, channels);
    a.to_v = Linear::declare(s / "to_v", channels, channels);
    a.to_out = Linear::declare(s / "to_out" / 0, channels, channels);
    return a;
}

Tensor VAEAttention::forward(const Ctx& c, const Tensor& x) const {
    const int64_t h = x.size(2), w = x.size(3);
    Tensor t = nchw_to_nlc(c, group_norm(c, x));
    Tensor o = ops::attention(c, to_q(c, t), to_k(c, t), to_v(c, t), /*num_heads=*/1);
    o = to_out(c, o);
    return ops::add(c, nlc_to_nchw(c, o, h, w), x);
}

Tensor VAE::Mid::forward(const Ctx& c, const Tensor& x) const {
    Tensor h = resnets[0].forward(c, x, Tensor());
    if (attention) h = attention->forward(c, h);
    return resnets[1].forward(c, h, Tensor());
}

VAE VAE::declare(const ParamScope& s, const VAEConfig& cfg, bool with_encoder) {
    VAE v;
    v.cfg_ = cfg;
    v.has_encoder_ = with_encoder;
    const auto& ch = cfg.block_out_channels;
    const int L = cfg.num_levels();
    const int g = cfg.norm_num_groups;
    const float eps = cfg.norm_eps;
    const int64_t top = ch[size_t(L - 1)];
    const int64_t lat = cfg.latent_channels;

    auto declare_mid = [&](const ParamScope& m) {
        Mid mid;
        mid.resnets.push_back(ResBlock::declare(m / "resnets" / 0, top, top, 0, g, eps));
        if (cfg.mid_attention) mid.attention = VAEAttention::declare(m / "attentions" / 0, top, g, eps);
        mid.resnets.push_back(ResBlock::declare(m / "resnets" / 1, top, top, 0, g, eps));
        return mid;
    };

    if (with_encoder) {
        const ParamScope e = s / "encoder";
        v.enc_conv_in_ = Conv2d::declare(e / "conv_in", cfg.in_channels, ch[0], {.kernel = 3, .stride = 1, .padding = 1});
        int64_t prev = ch[0];
        for (int i = 0; i < L; ++i) {
            Level lv;
            const int64_t out = ch[size_t(i)];
            for (int j = 0; j < cfg.layers_per_block; ++j)
                lv.resnets.push_back(ResBlock::declare(e / "down_blocks" / i / "resnets" / j, j == 0 ? prev : out, out, 0, g, eps));
            // Downsample2D with padding 0: the input is padded (0, 1, 0, 1) first (asymmetric), then stride 2.
            if (i < L - 1)
                lv.sampler = Conv2d::declare(e / "down_blocks" / i / "downsamplers" / 0 / "conv", out, out,
                                             {.kernel = 3, .stride = 2, .padding = 0, .pad_bottom_right = true});
            v.enc_down_.push_back(std::move(lv));
            prev = out;
        }
        v.enc_mid_ = declare_mid(e / "mid_block");
        v.enc_norm_out_ = GroupNorm::declare(e / "conv_norm_out", g, top, eps);
        v.enc_conv_out_ = Conv2d::declare(e / "conv_out", top, 2 * lat, {.kernel = 3, .stride = 1, .padding = 1});
        if (cfg.use_quant_conv)
            v.quant_conv_ = Conv2d::declare(s / "quant_conv", 2 * lat, 2 * lat, {.kernel = 1, .stride = 1, .padding = 0});
    }

    if (cfg.use_post_quant_conv)
        v.post_quant_conv_ = Conv2d::declare(s / "post_quant_conv", lat, lat, {.kernel = 1, .stride = 1, .padding = 0});
    const ParamScope d = s / "decoder";
    v.dec_conv_in_ = Conv2d::declare(d / "conv_in", lat, top, {.kernel = 3, .stride = 1, .padding = 1});
    v.dec_mid_ = declare_mid(d / "mid_block");
    int64_t prev = top;
    for (int i = 0; i < L; ++i) {
        const int64_t out = ch[size_t(L - 1 - i)];
        Level lv;
        for (int j = 0; j <= cfg.layers_per_block; ++j)
            lv.resnets.push_back(ResBlock::declare(d / "up_blocks" / i / "resnets" / j, j == 0 ? prev : out, out, 0, g, eps));
        if (i < L - 1)
            lv.sampler = Conv2d::declare(d / "up_blocks" / i / "upsamplers" / 0 / "conv", out, out,
                                         {.kernel = 3, .stride = 1, .padding = 1});
        v.dec_up_.push_back(std::move(lv));
        prev = out;
    }
    v.dec_norm_out_ = GroupNorm::declare(d / "conv_norm_out", g, ch[0], eps);
    v.dec_conv_out_ = Conv2d::declare(d / "conv_out", ch[0], cfg.out_channels, {.kernel = 3, .stride = 1, .padding = 1});
    return v;
}

Tensor VAE::decode(const Ctx& c, const Tensor& z) const {
    Tensor h = post_quant_conv_ ? (*post_quant_conv_)(c, z) : z;
    h = dec_conv_in_(c, h);
    h = dec_mid_.forward(c, h);
    for (const Level& lv : dec_up_) {
        for (const ResBlock& r : lv.resnets) h = r.forward(c, h, Tensor());
        if (lv.sampler) h = (*lv.sampler)(c, ops::upsample_nearest2x(c, h));
    }
    return dec_conv_out_(c, dec_norm_out_(c, h, /*silu=*/true));
}

namespace {

// b[..., y, :] = a[..., a_h - e + y, :] * (1 - y/e) + b[..., y, :] * (y/e), in place, as diffusers' blend_v/h.
void blend_v(const Tensor& a, Tensor& b, int64_t extent) {
    const int64_t e = std::min({a.size(2), b.size(2), extent});
    const int64_t N = b.size(0) * b.size(1), ah = a.size(2), bh = b.size(2), w = b.size(3);
    const float* pa = a.data<float>();
    float* pb = b.data<float>();
    for (int64_t n = 0; n < N; ++n)
        for (int64_t y = 0; y < e; ++y) {
            const float wa = float(1.0 - double(y) / double(e)), wb = float(double(y) / double(e));
            const float* ra = pa + (n * ah + (ah - e + y)) * w;
            float* rb = pb + (n * bh + y) * w;
            for (int64_t x = 0; x < w; ++x) {
                const float u = ra[x] * wa, v = rb[x] * wb;
                rb[x] = u + v;
            }
        }
}

void blend_h(const Tensor& a, Tensor& b, int64_t extent) {
    const int64_t e = std::min({a.size(3), b.size(3), extent});
    const int64_t N = b.size(0) * b.size(1), h = b.size(2), aw = a.size(3), bw = b.size(3);
    const float* pa = a.data<float>();
    float* pb = b.data<float>();
    for (int64_t n = 0; n < N; ++n)
        for (int64_t y = 0; y < h; ++y)
            for (int64_t x = 0; x < e; ++x) {
                const float wa = float(1.0 - double(x) / double(e)), wb = float(double(x) / double(e));
                const float u = pa[(n * h + y) * aw + (aw - e + x)] * wa, v = pb[(n * h + y) * bw + x] * wb;
                pb[(n * h + y) * bw + x] = u + v;
            }
}

// diffusers' tiled_decode / tiled_encode second half: each tile blended in place with its (already blended) upper
// and left neighbours over `blend` rows/columns, cropped to `limit`, and the crops stitched together.
Tensor stitch_tiles(const Ctx& c, std::vector<std::vector<Tensor>>& rows, int64_t blend, int64_t limit) {
    std::vector<Tensor> out_rows;
    for (size_t i = 0; i < rows.size(); ++i) {
        std::vector<Tensor> parts;
        for (size_t j = 0; j < rows[i].size(); ++j) {
            Tensor& t = rows[i][j];
            if (i > 0) blend_v(rows[i - 1][j], t, blend);
            if (j > 0) blend_h(rows[i][j - 1], t, blend);
            parts.push_back(t.slice(2, 0, std::min(limit, t.size(2))).slice(3, 0, std::min(limit, t.size(3))).contiguous());
        }
        out_rows.push_back(ops::concat(c, parts, 3));
    }
    return ops::concat(c, out_rows, 2);
}

}  // namespace

Tensor VAE::decode_tiled(const Ctx& c, const Tensor& z, int tile_latent) const {
    const int64_t H = z.size(2), W = z.size(3);
    if (tile_latent < 1 || (H <= tile_latent && W <= tile_latent)) return decode(c, z);
    const int f = cfg_.downscale();
    const int64_t tile_sample = int64_t(tile_latent) * f;
    const int64_t step = int64_t(double(tile_latent) * (1.0 - 0.25));  // int(tile_latent_min_size * (1 - overlap))
    const int64_t blend = int64_t(double(tile_sample) * 0.25);         // int(tile_sample_min_size * overlap)
    const int64_t limit = tile_sample - blend;
    EASEL_ASSERT(step >= 1, "tile too small");
    std::vector<std::vector<Tensor>> rows;
    for (int64_t i = 0; i < H; i += step) {
        std::vector<Tensor> row;
        for (int64_t j = 0; j < W; j += step) {
            const Tensor tile = z.slice(2, i, std::min(H, i + tile_latent)).slice(3, j, std::min(W, j + tile_latent)).contiguous();
            row.push_back(decode(c, tile).contiguous().clone());  // owns its memory: blended in place below
        }
        rows.push_back(std::move(row));
    }
    return stitch_tiles(c, rows, blend, limit);
}

std::pair<Tensor, Tensor> VAE::encode_moments(const Ctx& c, const Tensor& x) const {
    return split_moments(encode_raw(c, x));
}

std::pair<Tensor, Tensor> VAE::split_moments(const Tensor& h) const {
    const int64_t lat = cfg_.latent_channels;
    return {h.slice(1, 0, lat).contiguous(), h.slice(1, lat, 2 * lat).contiguous()};
}

std::pair<Tensor, Tensor> VAE::encode_moments_tiled(const Ctx& c, const Tensor& x, int tile_sample) const {
    const int64_t H = x.size(2), W = x.size(3);
    if (tile_sample < 1 || (H <= tile_sample && W <= tile_sample)) return encode_moments(c, x);
    const int64_t tile_latent = tile_sample / cfg_.downscale();
    const int64_t step = int64_t(double(tile_sample) * (1.0 - 0.25));  // int(tile_sample_min_size * (1 - overlap))
    const int64_t blend = int64_t(double(tile_latent) * 0.25);         // int(tile_latent_min_size * overlap)
    const int64_t limit = tile_latent - blend;
    EASEL_ASSERT(step >= 1 && tile_latent >= 1, "tile too small");
    std::vector<std::vector<Tensor>> rows;
    for (int64_t i = 0; i < H; i += step) {
        std::vector<Tensor> row;
        for (int64_t j = 0; j < W; j += step) {
            const Tensor tile =
                x.slice(2, i, std::min(H, i + tile_sample)).slice(3, j, std::min(W, j + tile_sample)).contiguous();
            row.push_back(encode_raw(c, tile).contiguous().clone());  // owns its memory: blended in place
        }
        rows.push_back(std::move(row));
    }
    return split_moments(stitch_tiles(c, rows, blend, limit));
}

Tensor VAE::encode_raw(const Ctx& c, const Tensor& x) const {
    EASEL_ASSERT(has_encoder_, "VAE::encode_moments on a VAE declared without its encoder");
    Tensor h = enc_conv_in_(c, x);
    for (const Level& lv : enc_down_) {
        for (const ResBlock& r : lv.resnets) h = r.forward(c, h, Tensor());
        if (lv.sampler) h = (*lv.sampler)(c, h);
    }
    h = enc_mid_.forward(c, h);
    h = enc_conv_out_(c, enc_norm_out_(c, h, /*silu=*/true));
    if (quant_conv_) h = (*quant_conv_)(c, h);
    return h;
}

}  // namespace easel
