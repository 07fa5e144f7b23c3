#include "models/unet/ip_adapter.h"

#include <algorithm>
#include <cstring>
#include <map>

#include <fmt/format.h>

namespace easel {

namespace {

constexpr int64_t kMaxWidth = 1 << 16;
constexpr int64_t kMaxTokens = 1 << 12;

Result<const Tensor*> need(const WeightSet& w, const std::string& name, int rank) {
    const Tensor* t = w.find(name);
    if (!t) return Error::not_found("tensor is missing; an IP-Adapter of this kind has it", name);
    if (t->rank() != rank)
        return Error::bad_file(name, fmt::format("has shape {}, expected rank {}", t->shape().to_string(), rank));
    for (int i = 0; i < rank; ++i)
        if (t->size(i) < 1 || t->size(i) > kMaxWidth * 4)
            return Error::bad_file(name, fmt::format("has shape {}, out of range", t->shape().to_string()));
    return t;
}

Status expect(const Tensor* t, const std::string& name, const Shape& s) {
    if (t->shape() == s) return ok();
    return Error::bad_file(name, fmt::format("has shape {}, expected {}", t->shape().to_string(), s.to_string()));
}

}  // namespace

std::string IPAdapterConfig::kind_name() const {
    return projection == Projection::Resampler ? "IP-Adapter Plus" : "IP-Adapter";
}

std::string IPAdapterConfig::summary() const {
    std::string s = fmt::format("{}: {} image tokens of width {} from {}-wide image features, {} cross-attention blocks",
                                kind_name(), tokens, cross_attention_dim, embed_dim, block_widths.size());
    if (projection == Projection::Resampler)
        s += fmt::format("; resampler {} wide, {} layers, {} heads", hidden, depth, heads);
    return s;
}

Result<IPAdapterConfig> IPAdapterConfig::detect_from_weights(const WeightSet& w) {
    IPAdapterConfig c;
    if (w.contains("image_proj.proj.weight")) {
        c.projection = Projection::Linear;
        EASEL_TRY_ASSIGN(const Tensor* proj, need(w, "image_proj.proj.weight", 2));
        EASEL_TRY_ASSIGN(const Tensor* norm, need(w, "image_proj.norm.weight", 1));
        c.cross_attention_dim = norm->size(0);
        c.embed_dim = proj->size(1);
        if (proj->size(0) % c.cross_attention_dim != 0 || proj->size(0) / c.cross_attention_dim > kMaxTokens)
            return Error::bad_file("image_proj.proj.weight",
                                   fmt::format("has {} rows: not a whole number of tokens of the norm's width {}",
                                               proj->size(0), c.cross_attention_dim));
        c.tokens = proj->size(0) / c.cross_attention_dim;
    } else if (w.contains("image_proj.latents")) {
        c.projection = Projection::Resampler;
        EASEL_TRY_ASSIGN(const Tensor* lat, need(w, "image_proj.latents", 3));
        EASEL_TRY_ASSIGN(const Tensor* pin, need(w, "image_proj.proj_in.weight", 2));
        EASEL_TRY_ASSIGN(const Tensor* pout, need(w, "image_proj.proj_out.weight", 2));
        if (lat->size(0) != 1 || lat->size(1) > kMaxTokens)
            return Error::bad_file("image_proj.latents", fmt::format("has shape {}, expected [1, queries, width]",
                                                                     lat->shape().to_string()));
        c.tokens = lat->size(1);
        c.hidden = lat->size(2);
        c.embed_dim = pin->size(1);
        EASEL_TRY(expect(pin, "image_proj.proj_in.weight", {c.hidden, c.embed_dim}));
        c.cross_attention_dim = pout->size(0);
        EASEL_TRY(expect(pout, "image_proj.proj_out.weight", {c.cross_attention_dim, c.hidden}));
        while (c.depth < 64 && w.contains(fmt::format("image_proj.layers.{}.0.to_q.weight", c.depth))) ++c.depth;
        if (c.depth == 0) return Error::not_found("the resampler has no layers", "image_proj.layers.0.0.to_q.weight");
        EASEL_TRY_ASSIGN(const Tensor* q, need(w, "image_proj.layers.0.0.to_q.weight", 2));
        if (q->size(0) % c.dim_head != 0 || q->size(1) != c.hidden)
            return Error::bad_file("image_proj.layers.0.0.to_q.weight",
                                   fmt::format("has shape {}, expected [heads x 64, {}]", q->shape().to_string(), c.hidden));
        c.heads = q->size(0) / c.dim_head;
        EASEL_TRY_ASSIGN(const Tensor* ff, need(w, "image_proj.layers.0.1.1.weight", 2));
        c.ff_inner = ff->size(0);
    } else if (w.contains("image_proj.proj.0.weight") || w.contains("image_proj.perceiver_resampler.proj_in.weight") ||
               w.contains("image_proj.norm.weight")) {
        return Error::unsupported("this IP-Adapter's image projection (Full / FaceID: image_proj.proj.0, "
                                  "perceiver_resampler) is not supported yet; easel runs IP-Adapter and IP-Adapter Plus",
                                  "image_proj");
    } else {
        return Error::not_found("no IP-Adapter image projection (image_proj.proj.weight or image_proj.latents): not an "
                                "IP-Adapter file", "image_proj");
    }
    // ip_adapter.1, .3, ...: the cross-attention blocks' key and value projections.
    std::map<int64_t, const Tensor*> keys;
    for (const std::string& n : w.names()) {
        if (n.rfind("ip_adapter.", 0) != 0) continue;
        const size_t dot = n.find('.', 11);
        const std::string num = n.substr(11, dot == std::string::npos ? std::string::npos : dot - 11);
        if (num.empty() || num.size() > 6 || !std::all_of(num.begin(), num.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
            return Error::bad_file(n, "expected ip_adapter.<number>.to_k_ip.weight or .to_v_ip.weight");
        if (n.substr(dot + 1) == "to_k_ip.weight") keys[std::stoll(num)] = w.find(n);
    }
    if (keys.empty()) return Error::not_found("no key projections (ip_adapter.1.to_k_ip.weight, ...)", "ip_adapter");
    int64_t expected = 1;
    for (const auto& [k, t] : keys) {
        const std::string name = fmt::format("ip_adapter.{}.to_k_ip.weight", k);
        if (k != expected)
            return Error::bad_file(name, fmt::format("the cross-attention blocks are numbered 1, 3, 5, ...; expected "
                                                     "ip_adapter.{} here", expected));
        if (t->rank() != 2 || t->size(1) != c.cross_attention_dim || t->size(0) < 1 || t->size(0) > kMaxWidth)
            return Error::bad_file(name, fmt::format("has shape {}, expected [width, {}]", t->shape().to_string(),
                                                     c.cross_attention_dim));
        c.block_widths.push_back(t->size(0));
        expected += 2;
    }
    return c;
}

IPAdapter IPAdapter::declare(const ParamScope& s, const IPAdapterConfig& cfg) {
    IPAdapter a;
    a.cfg_ = cfg;
    const ParamScope p = s / "image_proj";
    const int64_t X = cfg.cross_attention_dim;
    if (cfg.projection == IPAdapterConfig::Projection::Linear) {
        a.proj_ = Linear::declare(p / "proj", cfg.embed_dim, cfg.tokens * X);
        a.norm_ = LayerNorm::declare(p / "norm", X, 1e-5f);
    } else {
        const int64_t H = cfg.hidden, inner = cfg.heads * cfg.dim_head;
        a.latents_ = p.take_f32("latents", {1, cfg.tokens, H});
        a.proj_in_ = Linear::declare(p / "proj_in", cfg.embed_dim, H);
        for (int64_t i = 0; i < cfg.depth; ++i) {
            const ParamScope l = p / "layers" / int(i);
            ResamplerLayer r;
            r.norm1 = LayerNorm::declare(l / 0 / "norm1", H, 1e-5f);
            r.norm2 = LayerNorm::declare(l / 0 / "norm2", H, 1e-5f);
            r.to_q = Linear::declare(l / 0 / "to_q", H, inner, false);
            r.to_kv = Linear::declare(l / 0 / "to_kv", H, 2 * inner, false);
            r.to_out = Linear::declare(l / 0 / "to_out", inner, H, false);
            r.ff_norm = LayerNorm::declare(l / 1 / 0, H, 1e-5f);
            r.ff_in = Linear::declare(l / 1 / 1, H, cfg.ff_inner, false);
            r.ff_out = Linear::declare(l / 1 / 3, cfg.ff_inner, H, false);
            a.layers_.push_back(std::move(r));
        }
        a.proj_out_ = Linear::declare(p / "proj_out", H, X);
        a.norm_out_ = LayerNorm::declare(p / "norm_out", X, 1e-5f);
    }
    for (size_t i = 0; i < cfg.block_widths.size(); ++i) {
        const ParamScope b = s / "ip_adapter" / int(2 * i + 1);
        a.to_k_.push_back(Linear::declare(b / "to_k_ip", X, cfg.block_widths[i], false));
        a.to_v_.push_back(Linear::declare(b / "to_v_ip", X, cfg.block_widths[i], false));
    }
    return a;
}

Tensor IPAdapter::project(const Ctx& c, const Tensor& embeds) const {
    const int64_t N = embeds.size(0), X = cfg_.cross_attention_dim;
    if (cfg_.projection == IPAdapterConfig::Projection::Linear) {
        EASEL_ASSERT(embeds.rank() == 2 && embeds.size(1) == cfg_.embed_dim, "IPAdapter: image embeds of another width");
        // diffusers ImageProjection: Linear, reshape to [N, tokens, X], LayerNorm.
        return norm_(c, proj_(c, embeds).reshape({N, cfg_.tokens, X}));
    }
    EASEL_ASSERT(embeds.rank() == 3 && embeds.size(2) == cfg_.embed_dim, "IPAdapter: image features of another width");
    // IPAdapterPlusImageProjection: the learned queries attend over the image features and themselves.
    const int64_t H = cfg_.hidden, Q = cfg_.tokens, inner = cfg_.heads * cfg_.dim_head;
    Tensor lat = c.empty({N, Q, H});
    for (int64_t n = 0; n < N; ++n)
        std::memcpy(lat.data<float>() + n * Q * H, latents_.data<float>(), size_t(Q * H) * sizeof(float));
    const Tensor x = proj_in_(c, embeds);
    for (const ResamplerLayer& l : layers_) {
        const Tensor xs = l.norm1(c, x);
        const Tensor ls = l.norm2(c, lat);
        const Tensor q = l.to_q(c, ls);
        const Tensor kv = l.to_kv(c, ops::concat(c, {xs, ls}, 1)).contiguous();  // [N, L + Q, 2 * inner]
        const int64_t rows = kv.size(0) * kv.size(1);
        Tensor k = c.empty({kv.size(0), kv.size(1), inner}), v = c.empty({kv.size(0), kv.size(1), inner});
        for (int64_t r = 0; r < rows; ++r) {  // to_kv's output chunked in two: keys, then values
            std::memcpy(k.data<float>() + r * inner, kv.data<float>() + r * 2 * inner, size_t(inner) * sizeof(float));
            std::memcpy(v.data<float>() + r * inner, kv.data<float>() + r * 2 * inner + inner, size_t(inner) * sizeof(float));
        }
        lat = l.to_out(c, ops::attention(c, q, k, v, int(cfg_.heads)), &lat);
        lat = l.ff_out(c, ops::gelu(c, l.ff_in(c, l.ff_norm(c, lat))), &lat);
    }
    return norm_out_(c, proj_out_(c, lat));
}

std::vector<ExtraKV> IPAdapter::keys_values(const Ctx& c, const Tensor& tokens, float scale) const {
    EASEL_ASSERT(tokens.rank() == 3 && tokens.size(2) == cfg_.cross_attention_dim, "IPAdapter: tokens of another width");
    std::vector<ExtraKV> r;
    for (size_t i = 0; i < to_k_.size(); ++i) r.push_back({to_k_[i](c, tokens), to_v_[i](c, tokens), scale});
    return r;
}

}  // namespace easel
