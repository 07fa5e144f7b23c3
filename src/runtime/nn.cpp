#include "runtime/nn.h"

#include "io/mapped_file.h"
#include "runtime/pack_cache.h"


#include <fmt/format.h>


namespace easel {

namespace {
// Records a packed weight in the loader's registry (if any), with its source when that is the file's own tensor.
void record(const ParamScope& s, const std::string& leaf, const Tensor& w, PackedParam p) {
    ParamRegistry* r = s.loader().registry();
    if (!r) return;
    const std::string name = s.name(leaf);
    // A quantized weight is multiplied as stored: there is nothing packed to rebuild in place.
    // A weight kept as stored has no packed bytes to rebuild either.
    const bool packed = p.linear.stored == DType::F32 && p.conv.stored == DType::F32;
    if (w.storage() && !w.quantized() && packed && !s.loader().adapted(name) && MappedFile::is_mapped(w.raw(), w.nbytes()))
        p.source = w;
    if (PackCache* cache = s.loader().pack_cache()) p.original = cache->original(name);
    r->params[name] = std::move(p);
}

void record_bias(const ParamScope& s, const Tensor& b) {
    if (!b.storage() || !s.loader().registry()) return;
    PackedParam p;
    p.kind = PackedParam::Kind::Bias;
    p.bias = b;
    s.loader().registry()->params[s.name("bias")] = std::move(p);
}

// Whether `w` stays as the file stores it (f16/bf16, contiguous) where the kernels would widen it to f32 words.
bool keeps_half(const ParamScope& s, const Tensor& w) {
    return w.storage() && s.loader().keep_half_weights() && (w.dtype() == DType::F16 || w.dtype() == DType::BF16) &&
           w.is_contiguous();
}

// A weight's values where they are (usually the mapped file); when the last layer holding them goes, their pages
// leave the resident set.
std::shared_ptr<const void> stored_data(const Tensor& w) {
    return std::shared_ptr<const void>(w.raw(), [keep = w.storage(), n = w.nbytes()](const void* p) {
        MappedFile::release_pages(p, n);
    });
}

// Packs a weight tensor viewed as [rows, cols]; records a problem (and returns an empty weight) on failure.
PackedWeight pack(const ParamScope& s, const Tensor& w, int64_t rows, int64_t cols) {
    if (!w.storage()) return {};  // missing or mis-shaped: the loader has recorded it
    // A weight kept as stored, or the problem recorded and an empty weight.
    auto kept = [&s](Result<PackedWeight> p) -> PackedWeight {
        if (p) return std::move(p).value();
        s.loader().add_problem(fmt::format("{}: {}", s.name("weight"), p.error().message()));
        return {};
    };
    if (w.quantized())  // kept as stored (a view of the file): nothing to pack, cache or release
        return kept(quantized_linear_weight(std::shared_ptr<const void>(w.storage(), w.raw()), w.quant(), rows, cols,
                                            s.loader().precision()));
    if (keeps_half(s, w)) {
        auto layout = packed_linear_layout(rows, cols, s.loader().precision());
        if (layout && layout->nr > 0 && layout->kpack == 1)  // f32 panels: twice what is stored
            return kept(stored_linear_weight(stored_data(w), w.dtype(), rows, cols, s.loader().precision()));
    }
    PackCache* cache = s.loader().pack_cache();
    if (cache) {
        // A hit never touches the file's bytes of this weight. Any layout error is left to pack_linear_weight.
        if (auto layout = packed_linear_layout(rows, cols, s.loader().precision()))
            if (auto hit = cache->linear(s.name("weight"), *layout)) return std::move(*hit);
    }
    Tensor wc = w.is_contiguous() ? w : w.contiguous();
    auto p = pack_linear_weight(wc.raw(), wc.dtype(), rows, cols, s.loader().precision());
    if (!p) {
        s.loader().add_problem(fmt::format("{}: {}", s.name("weight"), p.error().message()));
        return {};
    }
    s.loader().release(w);  // packed: the mapped file's pages of it can go
    if (cache) cache->add(s.name("weight"), *p);
    return std::move(p).value();
}
}  // namespace

Linear Linear::declare(const ParamScope& s, int64_t in, int64_t out, bool bias) {
    Linear l;
    l.in = in;
    l.out = out;
    Tensor w = s.take_stored("weight", {out, in});
    l.weight = pack(s, w, out, in);
    if (!l.weight.empty()) record(s, "weight", w, {.kind = PackedParam::Kind::Linear, .linear = l.weight});
    if (bias) {
        l.bias = s.take_f32("bias", {out});
        record_bias(s, l.bias);
    }
    return l;
}

Linear Linear::declare_conv1x1(const ParamScope& s, int64_t in, int64_t out, bool bias) {
    Linear l;
    l.in = in;
    l.out = out;
    Tensor w = s.take("weight", {out, in, 1, 1});
    l.weight = pack(s, w, out, in);
    if (!l.weight.empty()) record(s, "weight", w, {.kind = PackedParam::Kind::Linear, .linear = l.weight});
    if (bias) {
        l.bias = s.take_f32("bias", {out});
        record_bias(s, l.bias);
    }
    return l;
}

Tensor Linear::operator()(const Ctx& c, const Tensor& x0, const Tensor* residual) const {
    Tensor x = ops::f32_contiguous(c, x0);
    EASEL_ASSERT(x.size(-1) == in, fmt::format("linear: input has {} features, expected {}", x.size(-1), in));
    Shape s = x.shape();
    s[s.rank() - 1] = out;
    Tensor y = c.empty(s);
    LinearOptions o;
    o.bias = bias.storage() ? bias.data<float>() : nullptr;
    Tensor r;
    if (residual) {
        r = ops::f32_contiguous(c, *residual);
        EASEL_ASSERT(r.shape() == s, "linear: residual shape differs from the output's");
        o.residual = r.data<float>();
    }
    linear(x.data<float>(), x.numel() / in, weight, y.data<float>(), o);
    return y;
}

Conv2d Conv2d::declare(const ParamScope& s, int64_t in, int64_t out, Conv2dSpec spec, bool bias) {
    Conv2d c;
    c.in = in;
    c.out = out;
    c.spec = spec;
    Tensor w = s.take("weight", {out, in, spec.kernel, spec.kernel});
    if (keeps_half(s, w)) {  // f32 words (kpack 1): twice what is stored; bf16 pairs are refused, and packed below
        if (auto kept = stored_conv2d_weight(stored_data(w), w.dtype(), out, in, spec.kernel, spec.kernel,
                                             s.loader().precision()))
            c.weight = std::move(kept).value();
    }
    PackCache* cache = s.loader().pack_cache();
    if (w.storage() && cache && c.weight.empty()) {
        if (auto layout = packed_conv2d_layout(out, in, spec.kernel, spec.kernel, s.loader().precision()))
            if (auto hit = cache->conv2d(s.name("weight"), *layout)) c.weight = std::move(*hit);
    }
    if (w.storage() && c.weight.empty()) {
        Tensor wc = w.is_contiguous() ? w : w.contiguous();
        auto p = pack_conv2d_weight(wc.raw(), wc.dtype(), out, in, spec.kernel, spec.kernel, s.loader().precision());
        if (p) {
            c.weight = std::move(p).value();
            s.loader().release(w);  // packed: the mapped file's pages of it can go
            if (cache) cache->add(s.name("weight"), c.weight);
        } else {
            s.loader().add_problem(fmt::format("{}: {}", s.name("weight"), p.error().message()));
        }
    }
    if (!c.weight.empty()) record(s, "weight", w, {.kind = PackedParam::Kind::Conv2d, .conv = c.weight});
    if (bias) {
        c.bias = s.take_f32("bias", {out});
        record_bias(s, c.bias);
    }
    return c;
}

Tensor Conv2d::operator()(const Ctx& c, const Tensor& x0, const Tensor* residual) const {
    Tensor x = ops::f32_contiguous(c, x0);
    EASEL_ASSERT(x.rank() == 4 && x.size(1) == in, fmt::format("conv2d: input {} does not have {} channels",
                                                                 x.shape().to_string(), in));
    Conv2dOptions o;
    o.stride = spec.stride;
    o.padding = spec.padding;
    if (spec.pad_bottom_right) o.extra_pad_bottom = o.extra_pad_right = 1;
    o.bias = bias.storage() ? bias.data<float>() : nullptr;
    auto hw = conv2d_output_hw(x.size(2), x.size(3), spec.kernel, spec.kernel, o);
    EASEL_ASSERT(hw.has_value(), hw ? "" : hw.error().to_string());
    Tensor y = c.empty({x.size(0), out, hw->first, hw->second});
    Tensor r;
    if (residual) {
        r = ops::f32_contiguous(c, *residual);
        EASEL_ASSERT(r.shape() == y.shape(), "conv2d: residual shape differs from the output's");
        o.residual = r.data<float>();
    }
    conv2d(x.data<float>(), x.size(0), x.size(2), x.size(3), weight, y.data<float>(), o);
    return y;
}

GroupNorm GroupNorm::declare(const ParamScope& s, int groups, int64_t channels, float eps) {
    GroupNorm g;
    g.groups = groups;
    g.eps = eps;
    g.gamma = s.take_f32("weight", {channels});
    g.beta = s.take_f32("bias", {channels});
    return g;
}

Tensor GroupNorm::operator()(const Ctx& c, const Tensor& x, bool fuse_silu) const {
    return ops::group_norm(c, x, groups, gamma, beta, eps, fuse_silu);
}

LayerNorm LayerNorm::declare(const ParamScope& s, int64_t dim, float eps) {
    LayerNorm l;
    l.eps = eps;
    l.gamma = s.take_f32("weight", {dim});
    l.beta = s.take_f32("bias", {dim});
    return l;
}

RMSNorm RMSNorm::declare(const ParamScope& s, int64_t dim, float eps) {
    RMSNorm l;
    l.eps = eps;
    l.gamma = s.take_f32("weight", {dim});
    return l;
}

Tensor LayerNorm::operator()(const Ctx& c, const Tensor& x) const { return ops::layer_norm(c, x, gamma, beta, eps); }

}  // namespace easel
