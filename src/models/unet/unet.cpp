#include "models/unet/unet.h"

#include <fmt/format.h>

namespace easel {

namespace {

// The transformer of a level (down order), `channels` wide, as diffusers names it under `s`.
SpatialTransformer level_transformer(const ParamScope& s, const UNetConfig& cfg, int level, int64_t channels) {
    return SpatialTransformer::declare(s, channels, cfg.cross_attention_dim, cfg.num_heads[size_t(level)],
                                       cfg.transformer_depth[size_t(level)], cfg.norm_num_groups, cfg.use_linear_projection);
}

// The next `t.blocks.size()` entries of `extras` (none when it is empty), moving `at` past them.
std::span<const BlockExtras> take_extras(std::span<const BlockExtras> extras, size_t& at, const SpatialTransformer& t) {
    if (extras.empty()) return {};
    EASEL_ASSERT(at + t.blocks.size() <= extras.size(), "UNet: fewer extras than transformer blocks");
    const auto r = extras.subspan(at, t.blocks.size());
    at += t.blocks.size();
    return r;
}

}  // namespace

UNetEncoder UNetEncoder::declare(const ParamScope& s, const UNetConfig& cfg) {
    UNetEncoder u;
    u.cfg_ = cfg;
    const auto& ch = cfg.block_out_channels;
    const int L = cfg.num_levels();
    const int64_t temb = cfg.time_embed_dim();
    const int g = cfg.norm_num_groups;
    const float eps = cfg.norm_eps;

    u.time_linear_1 = Linear::declare(s / "time_embedding" / "linear_1", ch[0], temb);
    u.time_linear_2 = Linear::declare(s / "time_embedding" / "linear_2", temb, temb);
    if (cfg.has_added_conditioning()) {
        u.add_linear_1 = Linear::declare(s / "add_embedding" / "linear_1", cfg.addition_embed_input_dim, temb);
        u.add_linear_2 = Linear::declare(s / "add_embedding" / "linear_2", temb, temb);
    }
    u.conv_in_ = Conv2d::declare(s / "conv_in", cfg.in_channels, ch[0], {.kernel = 3, .stride = 1, .padding = 1});

    // Down levels: resnets (+ transformers), then a stride-2 conv on all but the last level.
    int64_t prev = ch[0];
    for (int i = 0; i < L; ++i) {
        const ParamScope b = s / "down_blocks" / i;
        Level lv;
        const int64_t out = ch[size_t(i)];
        for (int j = 0; j < cfg.layers_per_block; ++j) {
            lv.resnets.push_back(ResBlock::declare(b / "resnets" / j, j == 0 ? prev : out, out, temb, g, eps));
            if (cfg.down_attention[size_t(i)]) lv.attentions.push_back(level_transformer(b / "attentions" / j, cfg, i, out));
        }
        if (i < L - 1)
            lv.sampler = Conv2d::declare(b / "downsamplers" / 0 / "conv", out, out, {.kernel = 3, .stride = 2, .padding = 1});
        u.down_.push_back(std::move(lv));
        prev = out;
    }

    // Mid: resnet, (transformer, resnet).
    const int64_t top = ch[size_t(L - 1)];
    u.mid_resnets_.push_back(ResBlock::declare(s / "mid_block" / "resnets" / 0, top, top, temb, g, eps));
    if (cfg.mid_attention) {
        u.mid_attentions_.push_back(level_transformer(s / "mid_block" / "attentions" / 0, cfg, L - 1, top));
        u.mid_resnets_.push_back(ResBlock::declare(s / "mid_block" / "resnets" / 1, top, top, temb, g, eps));
    }
    return u;
}

Tensor UNetEncoder::time_embedding(const Ctx& c, int64_t N, float timestep, const AddedConditioning* added) const {
    // Sinusoidal [N, C0] -> linear_1 -> SiLU -> linear_2.
    std::vector<float> ts(size_t(N), timestep);
    Tensor temb = ops::timestep_embedding(c, ts, cfg_.block_out_channels[0], cfg_.time_flip_sin_to_cos,
                                          float(cfg_.time_freq_shift));
    temb = time_linear_2(c, ops::silu(c, time_linear_1(c, temb)));
    if (add_linear_1) {
        // diffusers UNet2DConditionModel.get_aug_embed ("text_time"): add_time_proj(time_ids.flatten()) reshaped to
        // [N, K * dim], after text_embeds; add_embedding (linear_1, SiLU, linear_2) added to the time embedding.
        EASEL_ASSERT(added && added->text_embeds.size(0) == N && added->time_ids.size(0) == N,
                     "UNet: added conditioning missing or of another batch");
        const Tensor ids = added->time_ids.to(DType::F32).contiguous();
        std::vector<float> flat(ids.data<float>(), ids.data<float>() + ids.numel());
        Tensor tproj = ops::timestep_embedding(c, flat, cfg_.addition_time_embed_dim, cfg_.time_flip_sin_to_cos,
                                               float(cfg_.time_freq_shift));
        tproj = tproj.reshape({N, ids.size(1) * cfg_.addition_time_embed_dim});
        Tensor in = ops::concat(c, {added->text_embeds.to(DType::F32).contiguous(), tproj}, 1);
        EASEL_ASSERT(in.size(1) == cfg_.addition_embed_input_dim, "UNet: added conditioning of the wrong width");
        temb = ops::add(c, temb, (*add_linear_2)(c, ops::silu(c, (*add_linear_1)(c, in))));
    }
    return temb;
}

size_t UNetEncoder::down_blocks() const {
    size_t n = 0;
    for (const Level& lv : down_)
        for (const SpatialTransformer& t : lv.attentions) n += t.blocks.size();
    return n;
}

size_t UNetEncoder::mid_blocks() const {
    size_t n = 0;
    for (const SpatialTransformer& t : mid_attentions_) n += t.blocks.size();
    return n;
}

Tensor UNetEncoder::down_and_mid(const Ctx& c, Tensor h, const Tensor& temb, const Tensor& context,
                                 std::vector<Tensor>& skips, std::span<const BlockExtras> down_extras,
                                 std::span<const BlockExtras> mid_extras) const {
    size_t at = 0, mid_at = 0;
    skips.push_back(h);
    for (const Level& lv : down_) {
        for (size_t j = 0; j < lv.resnets.size(); ++j) {
            h = lv.resnets[j].forward(c, h, temb);
            if (!lv.attentions.empty())
                h = lv.attentions[j].forward(c, h, context, take_extras(down_extras, at, lv.attentions[j]));
            skips.push_back(h);
        }
        if (lv.sampler) {
            h = (*lv.sampler)(c, h);
            skips.push_back(h);
        }
    }
    h = mid_resnets_[0].forward(c, h, temb);
    for (size_t j = 0; j < mid_attentions_.size(); ++j) {
        h = mid_attentions_[j].forward(c, h, context, take_extras(mid_extras, mid_at, mid_attentions_[j]));
        h = mid_resnets_[j + 1].forward(c, h, temb);
    }
    return h;
}

UNet UNet::declare(const ParamScope& s, const UNetConfig& cfg) {
    UNet u;
    u.enc_ = UNetEncoder::declare(s, cfg);
    const auto& ch = cfg.block_out_channels;
    const int L = cfg.num_levels();
    const int64_t temb = cfg.time_embed_dim();
    const int g = cfg.norm_num_groups;
    const float eps = cfg.norm_eps;

    // Up levels, lowest resolution first: layers_per_block + 1 resnets, each fed the concat of the running
    // tensor and one skip; an upsampler on all but the last (diffusers UNet2DConditionModel.__init__).
    int64_t prev_out = ch[size_t(L - 1)];
    for (int i = 0; i < L; ++i) {
        const int level = L - 1 - i;
        const int64_t out = ch[size_t(level)];
        const int64_t in_ch = ch[size_t(std::max(level - 1, 0))];  // reversed[min(i + 1, L - 1)]
        const ParamScope b = s / "up_blocks" / i;
        Level lv;
        for (int j = 0; j <= cfg.layers_per_block; ++j) {
            const int64_t skip = (j == cfg.layers_per_block) ? in_ch : out;
            const int64_t res_in = (j == 0) ? prev_out : out;
            lv.resnets.push_back(ResBlock::declare(b / "resnets" / j, res_in + skip, out, temb, g, eps));
            if (cfg.up_attention[size_t(i)]) lv.attentions.push_back(level_transformer(b / "attentions" / j, cfg, level, out));
        }
        if (i < L - 1)
            lv.sampler = Conv2d::declare(b / "upsamplers" / 0 / "conv", out, out, {.kernel = 3, .stride = 1, .padding = 1});
        u.up_.push_back(std::move(lv));
        prev_out = out;
    }

    u.conv_norm_out = GroupNorm::declare(s / "conv_norm_out", g, ch[0], eps);
    u.conv_out = Conv2d::declare(s / "conv_out", ch[0], cfg.out_channels, {.kernel = 3, .stride = 1, .padding = 1});
    return u;
}

Tensor UNet::forward(const Ctx& c, const Tensor& x, float timestep, const Tensor& context, const Added* added,
                     const ControlResiduals* control, std::span<const BlockExtras> extras) const {
    // validate_params refuses image sizes that break this (LatentFormat::image_multiple), so no request reaches it.
    const int m = config().latent_multiple();
    EASEL_ASSERT(x.size(2) % m == 0 && x.size(3) % m == 0,
                 fmt::format("UNet: latent {} must be a multiple of {} per side", x.shape().to_string(), m));
    const Tensor temb = enc_.time_embedding(c, x.size(0), timestep, added);
    // extras in diffusers' order: the down levels' blocks, the up levels', the mid block's.
    const size_t nd = enc_.down_blocks(), nm = enc_.mid_blocks();
    EASEL_ASSERT(extras.empty() || extras.size() >= nd + nm, "UNet: extras for fewer transformer blocks");
    const auto down_x = extras.empty() ? extras : extras.first(nd);
    const auto mid_x = extras.empty() ? extras : extras.last(nm);
    const auto up_x = extras.empty() ? extras : extras.subspan(nd, extras.size() - nd - nm);
    size_t up_at = 0;
    std::vector<Tensor> skips;
    Tensor h = enc_.down_and_mid(c, enc_.conv_in(c, x), temb, context, skips, down_x, mid_x);
    if (control) {
        // diffusers UNet2DConditionModel.forward: each skip plus its residual, the mid block's output plus mid.
        EASEL_ASSERT(control->down.size() == skips.size(), "UNet: control residuals do not match the skips");
        for (size_t i = 0; i < skips.size(); ++i) skips[i] = ops::add(c, skips[i], control->down[i]);
        h = ops::add(c, h, control->mid);
    }

    for (const Level& lv : up_) {
        for (size_t j = 0; j < lv.resnets.size(); ++j) {
            Tensor skip = skips.back();
            skips.pop_back();
            h = lv.resnets[j].forward(c, ops::concat(c, {h, skip}, 1), temb);
            if (!lv.attentions.empty()) h = lv.attentions[j].forward(c, h, context, take_extras(up_x, up_at, lv.attentions[j]));
        }
        if (lv.sampler) h = (*lv.sampler)(c, ops::upsample_nearest2x(c, h));
    }

    EASEL_ASSERT(up_at == up_x.size(), "UNet: more extras than transformer blocks");
    return conv_out(c, conv_norm_out(c, h, /*silu=*/true));
}

}  // namespace easel
