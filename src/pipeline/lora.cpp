#include "pipeline/lora.h"

#include <algorithm>
#include <cstring>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <set>
#include <unordered_map>

#include <fmt/format.h>

#include "core/allocator.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "io/file_hash.h"
#include "io/mapped_file.h"
#include "io/keymap_ldm.h"
#include "io/model_file.h"
#include "kernels/convert.h"
#include "kernels/matmul.h"

namespace easel {

namespace fs = std::filesystem;

namespace {

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool ends_with(std::string_view s, std::string_view p) {
    return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

// ---------------------------------------------------------------------------------------------------------
// Prompt tags

bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Finds the next `<word:args>` at or after `from` (A1111's `<(\w+):([^>]+)>`): the tag's begin and end
// (one past '>'), its type and its argument text.
struct Tag {
    size_t begin = std::string_view::npos, end = 0;
    std::string_view type, args;
};
Tag next_tag(std::string_view s, size_t from) {
    for (size_t i = s.find('<', from); i != std::string_view::npos; i = s.find('<', i + 1)) {
        size_t j = i + 1;
        while (j < s.size() && is_word_char(s[j])) ++j;
        if (j == i + 1 || j >= s.size() || s[j] != ':') continue;
        const size_t close = s.find('>', j + 1);
        if (close == std::string_view::npos || close == j + 1) continue;
        return {i, close + 1, s.substr(i + 1, j - i - 1), s.substr(j + 1, close - j - 1)};
    }
    return {};
}

Result<double> parse_multiplier(std::string_view v, std::string_view tag) {
    std::string t(v);
    while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
    while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.erase(t.begin());
    double d = 0;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), d);
    if (t.empty() || ec != std::errc() || end != t.data() + t.size() || !std::isfinite(d) || std::fabs(d) > 1000)
        return Error::invalid_argument(fmt::format("'{}' in {} is not a multiplier (a number, e.g. 0.8)", v, tag),
                                       "prompt");
    return d;
}

// ---------------------------------------------------------------------------------------------------------
// Module names

// Turns an underscored module path ("down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q") back into
// the dotted one, keeping the multi-word names of diffusers, LDM and transformers modules whole.
std::string dotted(std::string_view underscored) {
    static const std::set<std::string, std::less<>> k3 = {"final_layer_norm", "conv_norm_out", "time_emb_proj"};
    static const std::set<std::string, std::less<>> k2 = {
        // diffusers UNet
        "down_blocks", "up_blocks", "mid_block", "transformer_blocks", "to_q", "to_k", "to_v", "to_out", "proj_in",
        "proj_out", "conv_shortcut", "conv_in", "conv_out", "time_embedding", "linear_1",
        "linear_2", "add_embedding",
        // LDM UNet
        "input_blocks", "middle_block", "output_blocks", "in_layers", "out_layers", "emb_layers", "skip_connection",
        "time_embed", "label_emb",
        // transformers CLIP
        "text_model", "self_attn", "q_proj", "k_proj", "v_proj", "out_proj", "layer_norm1", "layer_norm2",
        "token_embedding", "position_embedding", "text_projection"};
    std::vector<std::string_view> tok;
    for (size_t i = 0;;) {
        const size_t u = underscored.find('_', i);
        tok.push_back(underscored.substr(i, u == std::string_view::npos ? std::string_view::npos : u - i));
        if (u == std::string_view::npos) break;
        i = u + 1;
    }
    std::string out;
    for (size_t i = 0; i < tok.size();) {
        size_t take = 1;
        if (i + 2 < tok.size() && k3.count(fmt::format("{}_{}_{}", tok[i], tok[i + 1], tok[i + 2]))) take = 3;
        else if (i + 1 < tok.size() && k2.count(fmt::format("{}_{}", tok[i], tok[i + 1]))) take = 2;
        if (!out.empty()) out += '.';
        for (size_t k = 0; k < take; ++k) {
            if (k) out += '_';
            out += tok[i + k];
        }
        i += take;
    }
    return out;
}

bool is_ldm_unet_path(std::string_view p) {
    for (std::string_view s : {"input_blocks_", "middle_block_", "output_blocks_", "time_embed_", "label_emb_", "out_"})
        if (starts_with(p, s)) return true;
    return false;
}

// A part name as stored after the module name, normalised: "lora_down.weight" -> "down", "lora_A.weight" ->
// "down"; LyCORIS names ("hada_w1_a", "lokr_w1") as they are. nullopt for unknown parts.
std::optional<std::string> normalise_part(std::string_view p) {
    static const std::pair<std::string_view, std::string_view> kParts[] = {
        {"lora_down.weight", "down"}, {"lora_up.weight", "up"},   {"lora_mid.weight", "mid"},
        {"lora_A.weight", "down"},    {"lora_B.weight", "up"},    {"lora.down.weight", "down"},
        {"lora.up.weight", "up"},     {"down.weight", "down"},    {"up.weight", "up"},
        {"lora_linear_layer.down.weight", "down"}, {"lora_linear_layer.up.weight", "up"},
        {"alpha", "alpha"},           {"diff", "diff"},           {"diff_b", "diff_b"},
        {"dora_scale", "dora_scale"},
    };
    static const std::string_view kLycoris[] = {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1",
                                                "hada_t2",   "lokr_w1",   "lokr_w2",   "lokr_w1_a", "lokr_w1_b",
                                                "lokr_w2_a", "lokr_w2_b", "lokr_t2"};
    for (std::string_view l : kLycoris)
        if (p == l) return std::string(l);
    for (const auto& [from, to] : kParts)
        if (p == from) return std::string(to);
    return std::nullopt;
}

// Splits a stored name into (module, part). kohya-ss and LyCORIS names have no dot inside the module
// ("lora_unet_mid_block_attentions_0_proj_in.lora_down.weight"); diffusers ones do, so their known part
// suffixes are cut off the end ("unet.mid_block.attentions.0.proj_in.lora_A.weight", and the older
// attention-processor form "unet....attn1.processor.to_q_lora.down.weight").
std::optional<std::pair<std::string, std::string>> split_name(std::string_view n) {
    if (starts_with(n, "lora_")) {
        const size_t dot = n.find('.');
        if (dot == std::string_view::npos) return std::nullopt;
        auto part = normalise_part(n.substr(dot + 1));
        if (!part) return std::nullopt;
        return std::make_pair(std::string(n.substr(0, dot)), *part);
    }
    static const std::string_view kSuffixes[] = {".lora_A.weight", ".lora_B.weight", ".lora.down.weight",
                                                 ".lora.up.weight", ".lora_down.weight", ".lora_up.weight",
                                                 ".lora_linear_layer.down.weight", ".lora_linear_layer.up.weight",
                                                 ".alpha"};
    for (std::string_view s : kSuffixes)
        if (ends_with(n, s)) {
            auto part = normalise_part(s.substr(1));
            return std::make_pair(std::string(n.substr(0, n.size() - s.size())), *part);
        }
    // diffusers' attention processors: "...attn1.processor.to_q_lora.down.weight".
    for (std::string_view s : {".down.weight", ".up.weight"})
        if (ends_with(n, s) && n.find(".processor.") != std::string_view::npos)
            return std::make_pair(std::string(n.substr(0, n.size() - s.size())), *normalise_part(s.substr(1)));
    return std::nullopt;
}

struct Target {
    std::string param;  // without ".weight"
    bool text_encoder = false;
};

// The parameter a module changes, or an error saying why the name matches nothing in this model.
Result<Target> resolve_module(const std::string& module, const ModelInfo& info) {
    auto text = [&](std::string_view component, std::string_view path) -> Result<Target> {
        const bool have = component == "text_encoder" ? info.has_text_encoder : info.has_text_encoder_2;
        if (!have)
            return Error::invalid_argument(fmt::format("{} changes {}, which this model ({}) does not have: a LoRA for "
                                                       "another architecture", module, component,
                                                       model_kind_name(info)));
        return Target{fmt::format("{}.{}", component, path), true};
    };
    std::string_view m = module;
    if (starts_with(m, "lora_unet_")) {
        const std::string_view rest = m.substr(10);
        const std::string d = dotted(rest);
        if (is_ldm_unet_path(rest)) {
            auto name = ldm_unet_name_to_diffusers(d + ".weight", ldm_layout_of(info.unet));
            if (!name)
                return Error::invalid_argument(fmt::format("{}: no layer {} in this model's UNet ({})", module, d,
                                                           model_kind_name(info)));
            return Target{"unet." + name->substr(0, name->size() - 7), false};
        }
        return Target{"unet." + d, false};
    }
    for (auto [prefix, component] : {std::pair<std::string_view, std::string_view>{"lora_te1_", "text_encoder"},
                                     {"lora_te2_", "text_encoder_2"}, {"lora_te_", "text_encoder"}})
        if (starts_with(m, prefix)) return text(component, dotted(m.substr(prefix.size())));
    // diffusers names: "unet.<path>", "text_encoder.<path>", "text_encoder_2.<path>"; attention processors.
    std::string d(m);
    if (const size_t p = d.find(".processor."); p != std::string::npos) {
        std::string proj = d.substr(p + 11);  // "to_q_lora", "to_out_lora"
        if (!ends_with(proj, "_lora")) return Error::invalid_argument(fmt::format("{}: unknown attention-processor module", module));
        proj.resize(proj.size() - 5);
        if (proj == "to_out") proj = "to_out.0";
        d = d.substr(0, p) + "." + proj;
    }
    if (starts_with(d, "unet.")) return Target{d, false};
    if (starts_with(d, "text_encoder_2.")) return text("text_encoder_2", d.substr(15));
    if (starts_with(d, "text_encoder.")) return text("text_encoder", d.substr(13));
    return Error::invalid_argument(fmt::format("{}: not a module name of any known LoRA layout (kohya-ss lora_unet_/"
                                               "lora_te_/lora_te1_/lora_te2_, diffusers unet./text_encoder.)", module));
}

// ---------------------------------------------------------------------------------------------------------
// Deltas

Tensor f32(const Tensor& t) { return t.to(DType::F32).contiguous(); }

// C[m, n] (+)= alpha A[m, k] B[k, n], all contiguous f32.
void gemm(const float* a, const float* b, float* c, int64_t m, int64_t k, int64_t n, float alpha, bool accumulate) {
    MatmulArgs g;
    g.m = m;
    g.n = n;
    g.k = k;
    g.a = a;
    g.a_row_stride = k;
    g.b = b;
    g.b_row_stride = n;
    g.c = c;
    g.alpha = alpha;
    g.accumulate = accumulate;
    matmul_f32(g);
}

Tensor product(const Tensor& a, const Tensor& b, int64_t m, int64_t k, int64_t n) {
    Tensor out = Tensor::empty(Shape{m, n});
    gemm(f32(a).data<float>(), f32(b).data<float>(), out.data<float>(), m, k, n, 1.0f, false);
    return out;
}

std::string shapes(const LoraModule& m) {
    std::string s;
    for (const auto& [name, t] : m.parts)
        if (name != "alpha") s += fmt::format("{}{} {}", s.empty() ? "" : ", ", name, t.shape().to_string());
    return s;
}

Error misfit(const LoraModule& m, const Shape& shape, std::string_view why) {
    return Error::invalid_argument(fmt::format("{} does not fit {} {}: {} ({})", m.key, m.target, shape.to_string(), why,
                                               shapes(m)));
}

// CP rebuild: out[p, q, k, l] = sum_ij t[i, j, k, l] a[i, p] b[j, q], a [r, P] and b [r, Q] (LyCORIS
// make_weight_cp), for LoHa's hada_t and LoKr's lokr_t2.
Tensor cp_rebuild(const Tensor& t_in, const Tensor& a_in, const Tensor& b_in) {
    const Tensor t = f32(t_in), a = f32(a_in).reshape(Shape{a_in.size(0), -1}), b = f32(b_in).reshape(Shape{b_in.size(0), -1});
    const int64_t r1 = t.size(0), r2 = t.size(1), kk = t.numel() / (r1 * r2), P = a.size(1), Q = b.size(1);
    // tmp[i, q, kk] = sum_j t[i, j, kk] b[j, q]
    Tensor tmp = Tensor::zeros(Shape{r1, Q, kk});
    const float* tp = t.data<float>();
    const float* bp = b.data<float>();
    float* mp = tmp.data<float>();
    for (int64_t i = 0; i < r1; ++i)
        for (int64_t j = 0; j < r2; ++j)
            for (int64_t q = 0; q < Q; ++q) {
                const float bv = bp[j * Q + q];
                for (int64_t x = 0; x < kk; ++x) mp[(i * Q + q) * kk + x] += tp[(i * r2 + j) * kk + x] * bv;
            }
    // out[p, q kk] = sum_i a[i, p] tmp[i, q kk]
    Tensor at = a.transpose(0, 1).contiguous();
    Tensor out = Tensor::empty(Shape{P, Q * kk});
    gemm(at.data<float>(), tmp.data<float>(), out.data<float>(), P, r1, Q * kk, 1.0f, false);
    std::vector<int64_t> dims = {P, Q};
    for (int d = 2; d < t.rank(); ++d) dims.push_back(t.size(d));
    return out.reshape(Shape(dims));
}

const Tensor* part(const LoraModule& m, const char* name) {
    auto it = m.parts.find(name);
    return it == m.parts.end() ? nullptr : &it->second;
}

// w (contiguous f32, a layer of `shape`) += mult (alpha / rank) up . down, for a LoRA/LoCon module without
// lora_mid: into the weight itself (LoraAdapter), or into zeros for the delta alone (lora_updown).
Status lora_accumulate(const LoraModule& m, const Shape& shape, float* w, float mult) {
    const Tensor& up = *part(m, "up");
    const Tensor& down = *part(m, "down");
    const int64_t out = shape[0], numel = shape.numel(), r = down.size(0);
    if (up.size(0) != out) return misfit(m, shape, fmt::format("lora_up has {} outputs, the layer {}", up.size(0), out));
    if (up.numel() != out * r) return misfit(m, shape, "lora_up's rank differs from lora_down's");
    if (down.numel() / r * out != numel) return misfit(m, shape, "lora_down's input size differs from the layer's");
    gemm(f32(up).data<float>(), f32(down).data<float>(), w, out, r, numel / out, float(m.scale()) * mult, true);
    return ok();
}

// Buffers for the f32 copies of LoRA parts (reused from one layer to the next: fresh pages cost the kernel a
// clear each).
BufferPool& part_pool() {
    static BufferPool* pool = new BufferPool;  // never destroyed: tensors from it may outlive static destruction
    return *pool;
}

// `t` (contiguous f16, bf16 or f32, any shape) as f32 [rows, numel / rows] in pooled memory.
Tensor pooled_f32(const Tensor& t, int64_t rows);

// A LoRA/LoCon module without lora_mid, ready to add its delta to any block of rows of a layer of `shape`:
// up in f32 with mult (alpha / rank) folded in, and down packed once as a Linear weight ([K, rank]: down
// transposed; K the layer's inputs x taps), so that rows [r0, r0 + n) gain one linear() of up's rows:
// delta[r0:r0 + n] = up[r0:r0 + n] . down.
struct LoraRows {
    Tensor up;          // [out, rank] f32, scaled
    PackedWeight down;  // n = K, k = rank, in pooled memory
    void add(int64_t row0, int64_t rows, float* w) const {
        linear(up.data<float>() + row0 * down.k, rows, down, w, {.residual = w});
    }
};

Result<LoraRows> lora_rows(const LoraModule& m, const Shape& shape, float mult) {
    const Tensor& up = *part(m, "up");
    const Tensor& down = *part(m, "down");
    const int64_t out = shape[0], numel = shape.numel(), r = down.size(0), K = numel / out;
    if (up.size(0) != out) return misfit(m, shape, fmt::format("lora_up has {} outputs, the layer {}", up.size(0), out));
    if (up.numel() != out * r) return misfit(m, shape, "lora_up's rank differs from lora_down's");
    if (down.numel() / r * out != numel) return misfit(m, shape, "lora_down's input size differs from the layer's");
    LoraRows lr;
    lr.up = pooled_f32(up, out);
    const float s = float(m.scale()) * mult;
    float* u = lr.up.data<float>();
    for (int64_t i = 0; i < lr.up.numel(); ++i) u[i] *= s;
    const Tensor d = pooled_f32(down, r);
    Tensor dt = Tensor::empty(Shape{K, r}, DType::F32, &part_pool());
    const float* dp = d.data<float>();
    float* tp = dt.data<float>();
    for (int64_t i = 0; i < r; ++i)
        for (int64_t j = 0; j < K; ++j) tp[j * r + i] = dp[i * K + j];
    EASEL_TRY_ASSIGN(lr.down, packed_linear_layout(K, r, Precision::F32));
    const size_t bytes = lr.down.isa == Isa::Ref ? size_t(K * r) * 4 : lr.down.layout_bytes();
    Tensor mem = Tensor::empty(Shape{int64_t(bytes)}, DType::U8, &part_pool());
    std::memset(mem.raw(), 0, bytes);  // the layout's padding words are zero
    EASEL_TRY(pack_linear_weight_into(dt.raw(), DType::F32, lr.down, mem.raw()));
    lr.down.data = std::shared_ptr<const void>(mem.storage(), mem.raw());
    return lr;
}

Result<Tensor> lora_updown(const LoraModule& m, const Shape& shape);

// DoRA as AUTOMATIC1111 (v1.10, after its PR 16151) and LyCORIS's default (wd_on_output false) define it: with
// delta = (alpha / rank) up . down, merged = W + delta, and dora_scale [1, in(, 1, 1)] the magnitude of each
// input column, W += mult (merged * dora_scale / ||merged column|| - W), the norm over every output (and tap)
// of an input column.
Status dora_apply(const LoraModule& m, Tensor& w, float mult) {
    const Shape& shape = w.shape();
    if (shape.rank() < 2) return misfit(m, shape, "DoRA needs a weight of rank 2 or more");
    const int64_t out = shape[0], in = shape[1], inner = shape.numel() / (out * in);
    const Tensor& ds_in = *part(m, "dora_scale");
    if (ds_in.numel() != in)
        return misfit(m, shape, fmt::format("dora_scale has {} values; this layer has {} input columns (a magnitude per "
                                            "output, PEFT's layout, is not what AUTOMATIC1111 reads)", ds_in.numel(), in));
    EASEL_TRY_ASSIGN(Tensor d, lora_updown(m, shape));
    const Tensor ds = f32(ds_in);
    const float* dsp = ds.data<float>();
    float* wp = w.data<float>();
    float* dp = d.data<float>();  // becomes merged
    for (int64_t i = 0; i < shape.numel(); ++i) dp[i] += wp[i];
    std::vector<double> norm(size_t(in), 0.0);
    for (int64_t o = 0; o < out; ++o)
        for (int64_t j = 0; j < in; ++j)
            for (int64_t k = 0; k < inner; ++k) {
                const double v = dp[(o * in + j) * inner + k];
                norm[size_t(j)] += v * v;
            }
    for (int64_t o = 0; o < out; ++o)
        for (int64_t j = 0; j < in; ++j) {
            const float f = float(double(dsp[j]) / std::sqrt(norm[size_t(j)]));
            for (int64_t k = 0; k < inner; ++k) {
                const int64_t i = (o * in + j) * inner + k;
                wp[i] += mult * (dp[i] * f - wp[i]);
            }
        }
    return ok();
}

// The delta of a LoRA/LoCon module as [out, in * kh * kw].
Result<Tensor> lora_updown(const LoraModule& m, const Shape& shape) {
    const Tensor& up = *part(m, "up");
    const Tensor& down = *part(m, "down");
    const int64_t out = shape[0], numel = shape.numel(), r = down.size(0);
    const Tensor* mid = part(m, "mid");
    if (!mid) {
        Tensor d = Tensor::zeros(Shape{out, numel / out});
        EASEL_TRY(lora_accumulate(m, shape, d.data<float>(), 1.0f));
        return d;
    }
    if (up.size(0) != out) return misfit(m, shape, fmt::format("lora_up has {} outputs, the layer {}", up.size(0), out));
    if (up.numel() != out * r) return misfit(m, shape, "lora_up's rank differs from lora_down's");
    // CP: down [r, in, 1, 1], mid [r, r, kh, kw], up [out, r, 1, 1]: rebuild(mid, up^T, down).
    if (mid->rank() < 2 || mid->size(0) != r || mid->size(1) != r)
        return misfit(m, shape, "lora_mid must be [rank, rank, kh, kw]");
    if ((down.numel() / r) * (mid->numel() / (r * r)) * out != numel)
        return misfit(m, shape, "lora_down and lora_mid do not make the layer's size");
    Tensor upt = f32(up).reshape(Shape{out, r}).transpose(0, 1).contiguous();
    Tensor full = cp_rebuild(*mid, upt, down);
    if (full.numel() != numel) return misfit(m, shape, "the CP rebuild has another size");
    Tensor d = full.reshape(Shape{out, numel / out}).clone();
    const float s = float(m.scale());
    float* p = d.data<float>();
    for (int64_t i = 0; i < numel; ++i) p[i] *= s;
    return d;
}

// w_a . w_b (or the CP rebuild from t), as [P, rest].
Result<Tensor> factor(const LoraModule& m, const Shape& shape, const char* a, const char* b, const char* t) {
    const Tensor* ta = part(m, a);
    const Tensor* tb = part(m, b);
    if (!ta || !tb) return misfit(m, shape, fmt::format("{} needs both {} and {}", m.key, a, b));
    if (const Tensor* tt = part(m, t)) {
        if (tt->rank() < 2 || tt->size(0) != ta->size(0) || tt->size(1) != tb->size(0))
            return misfit(m, shape, fmt::format("{} must be [{}'s rank, {}'s rank, ...]", t, a, b));
        const int64_t kk = tt->numel() / (tt->size(0) * tt->size(1));
        if ((ta->numel() / ta->size(0)) * (tb->numel() / tb->size(0)) * kk > shape.numel())
            return misfit(m, shape, fmt::format("{}'s CP rebuild is larger than the layer", t));
        return cp_rebuild(*tt, *ta, *tb);
    }
    const int64_t P = ta->size(0), r = ta->numel() / P;
    if (tb->size(0) != r) return misfit(m, shape, fmt::format("{} has rank {}, {} {}", a, r, b, tb->size(0)));
    if (P * (tb->numel() / r) > shape.numel()) return misfit(m, shape, fmt::format("{} . {} is larger than the layer", a, b));
    return product(f32(*ta).reshape(Shape{P, r}), f32(*tb).reshape(Shape{r, -1}), P, r, tb->numel() / r);
}

Tensor kron(const Tensor& a_in, const Tensor& b_in) {
    // torch.kron; A1111's make_kron first gives a 2-D w1 trailing 1s when w2 is 4-D (torch would prepend them,
    // as it does here for a lower-rank w2).
    Tensor a = f32(a_in), b = f32(b_in);
    while (a.rank() < b.rank()) a = a.unsqueeze(a.rank());
    while (b.rank() < a.rank()) b = b.unsqueeze(0);
    const int rank = a.rank();
    std::vector<int64_t> dims;
    for (int d = 0; d < rank; ++d) dims.push_back(a.size(d) * b.size(d));
    Tensor out = Tensor::empty(Shape(dims));
    const float* ap = a.data<float>();
    const float* bp = b.data<float>();
    float* op = out.data<float>();
    for (int64_t x = 0; x < out.numel(); ++x) {
        int64_t rem = x, oa = 0, ob = 0, sa = 1, sb = 1;
        for (int d = rank - 1; d >= 0; --d) {
            const int64_t o = rem % dims[size_t(d)];
            rem /= dims[size_t(d)];
            oa += (o / b.size(d)) * sa;
            ob += (o % b.size(d)) * sb;
            sa *= a.size(d);
            sb *= b.size(d);
        }
        op[x] = ap[oa] * bp[ob];
    }
    return out;
}

void scale_in_place(Tensor& t, double s) {
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = float(p[i] * s);
}

// Every value finite; the first bad one named.
Status check_finite(const std::string& key, const Tensor& t) {
    if (!dtype_is_float(t.dtype())) return Error::invalid_argument(fmt::format("{} has dtype {}, expected a float", key, dtype_name(t.dtype())));
    // f16, bf16 and f32 by their exponent bits, where they lie (a LoRA's 34 M halves in a few milliseconds);
    // the first non-finite element, if any, is then found and named through f32.
    if (t.is_contiguous() && (t.dtype() == DType::F16 || t.dtype() == DType::BF16 || t.dtype() == DType::F32)) {
        bool finite = true;
        if (t.dtype() == DType::F32) {
            const uint32_t* u = static_cast<const uint32_t*>(t.raw());
            uint32_t all = 0;  // an OR of one test per element, no early exit: the loop vectorises
            for (int64_t i = 0; i < t.numel(); ++i) all |= uint32_t((u[i] & 0x7f800000u) == 0x7f800000u);
            finite = all == 0;
        } else {
            const uint16_t mask = t.dtype() == DType::F16 ? 0x7c00 : 0x7f80;
            const uint16_t* u = static_cast<const uint16_t*>(t.raw());
            uint32_t all = 0;
            for (int64_t i = 0; i < t.numel(); ++i) all |= uint32_t((u[i] & mask) == mask);
            finite = all == 0;
        }
        if (finite) return ok();
    }
    const Tensor f = f32(t);
    const float* p = f.data<float>();
    for (int64_t i = 0; i < f.numel(); ++i)
        if (!std::isfinite(p[i])) return Error::invalid_argument(fmt::format("{} holds {} at element {}", key, p[i], i));
    return ok();
}

class LoraAdapter : public WeightAdapter {
public:
    LoraAdapter(std::shared_ptr<const LoraFile> f, double unet, double te) : f_(std::move(f)), unet_(unet), te_(te) {
        for (size_t i = 0; i < f_->modules.size(); ++i) {
            const LoraModule& m = f_->modules[i];
            if ((m.text_encoder ? te_ : unet_) == 0.0) continue;
            by_target_[m.target].push_back(i);
        }
    }
    std::string identity() const override {
        return fmt::format("lora {} sha256 {} unet {} te {}", f_->name, f_->sha256, unet_, te_);
    }
    bool touches(const std::string& name) const override { return by_target_.count(name) > 0; }
    std::vector<std::string> targets() const override {
        std::vector<std::string> t;
        for (const auto& [name, _] : by_target_) t.push_back(name);
        std::sort(t.begin(), t.end());
        return t;
    }
    Status apply(const std::string& name, Tensor& w) const override {
        auto it = by_target_.find(name);
        if (it == by_target_.end()) return ok();
        for (size_t i : it->second) {
            const LoraModule& m = f_->modules[i];
            const float mult = float(m.text_encoder ? te_ : unet_);
            if (part(m, "dora_scale")) {
                EASEL_TRY(dora_apply(m, w, mult));
                continue;
            }
            if (plain(m)) {
                // W += mult (alpha / rank) up . down, accumulated in place (no delta tensor); the same linear()
                // as row_apply's, so that a model loaded with the LoRA and one patched live agree bit for bit.
                EASEL_TRY_ASSIGN(LoraRows lr, lora_rows(m, w.shape(), mult));
                lr.add(0, w.size(0), w.data<float>());
                continue;
            }
            EASEL_TRY_ASSIGN(Tensor d, lora_delta(m, w.shape()));
            float* wp = w.data<float>();
            const float* dp = d.data<float>();
            parallel_for((w.numel() + 65535) / 65536, [&](int64_t b, int64_t e) {
                for (int64_t k = b * 65536, end = std::min(w.numel(), e * 65536); k < end; ++k) wp[k] += mult * dp[k];
            });
        }
        return ok();
    }

    Result<RowApply> row_apply(const std::string& name, const Shape& shape) const override {
        auto it = by_target_.find(name);
        if (it == by_target_.end()) return RowApply{};
        for (size_t i : it->second)
            if (!plain(f_->modules[i])) return RowApply{};
        auto rows = std::make_shared<std::vector<LoraRows>>();
        for (size_t i : it->second) {
            const LoraModule& m = f_->modules[i];
            EASEL_TRY_ASSIGN(LoraRows lr, lora_rows(m, shape, float(m.text_encoder ? te_ : unet_)));
            rows->push_back(std::move(lr));
        }
        return RowApply([rows](int64_t row0, int64_t n, float* w) {
            for (const LoraRows& lr : *rows) lr.add(row0, n, w);
        });
    }

private:
    // A LoRA/LoCon module that is up . down alone (no lora_mid, no DoRA): what row_apply handles.
    static bool plain(const LoraModule& m) {
        return m.kind == LoraModule::Kind::LoRA && !part(m, "mid") && !part(m, "dora_scale");
    }

    std::shared_ptr<const LoraFile> f_;
    double unet_, te_;
    std::unordered_map<std::string, std::vector<size_t>> by_target_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------------------

Result<ExtraNetworks> parse_extra_networks(std::string_view prompt) {
    ExtraNetworks x;
    size_t pos = 0;
    for (Tag t = next_tag(prompt, 0); t.begin != std::string_view::npos; t = next_tag(prompt, t.end)) {
        x.prompt += prompt.substr(pos, t.begin - pos);
        pos = t.end;
        const std::string whole(prompt.substr(t.begin, t.end - t.begin));
        if (t.type != "lora") {
            x.other.push_back(whole);
            continue;
        }
        // A1111's ExtraNetworkParams: items split on ':', "k=v" items are named.
        std::vector<std::string_view> positional;
        std::map<std::string, std::string_view> named;
        for (size_t i = 0;;) {
            const size_t c = t.args.find(':', i);
            std::string_view item = t.args.substr(i, c == std::string_view::npos ? std::string_view::npos : c - i);
            if (const size_t eq = item.find('='); eq != std::string_view::npos) named[std::string(item.substr(0, eq))] = item.substr(eq + 1);
            else positional.push_back(item);
            if (c == std::string_view::npos) break;
            i = c + 1;
        }
        LoraTag tag;
        if (positional.empty() || positional[0].empty())
            return Error::invalid_argument(fmt::format("{} names no LoRA (expected <lora:NAME:MULTIPLIER>)", whole), "prompt");
        tag.name = std::string(positional[0]);
        if (positional.size() > 1) { EASEL_TRY_ASSIGN(tag.te, parse_multiplier(positional[1], whole)); }
        if (auto it = named.find("te"); it != named.end()) { EASEL_TRY_ASSIGN(tag.te, parse_multiplier(it->second, whole)); }
        tag.unet = tag.te;
        if (positional.size() > 2) { EASEL_TRY_ASSIGN(tag.unet, parse_multiplier(positional[2], whole)); }
        if (auto it = named.find("unet"); it != named.end()) { EASEL_TRY_ASSIGN(tag.unet, parse_multiplier(it->second, whole)); }
        x.loras.push_back(std::move(tag));
    }
    x.prompt += prompt.substr(std::min(pos, prompt.size()));
    return x;
}

std::string strip_extra_networks(std::string_view prompt) {
    std::string out;
    size_t pos = 0;
    for (Tag t = next_tag(prompt, 0); t.begin != std::string_view::npos; t = next_tag(prompt, t.end)) {
        out += prompt.substr(pos, t.begin - pos);
        pos = t.end;
    }
    out += prompt.substr(std::min(pos, prompt.size()));
    return out;
}

int64_t LoraModule::rank() const {
    // A1111's LoKr takes lokr_w2_b's rank over lokr_w1_b's when both are there.
    for (const char* p : {"down", "hada_w1_b", "lokr_w2_b", "lokr_w1_b"}) {
        auto it = parts.find(p);
        if (it != parts.end()) return it->second.rank() ? it->second.size(0) : 0;
    }
    return 0;
}

double LoraModule::scale() const {
    if (kind == Kind::Full) return 1.0;
    const int64_t r = rank();
    if (!alpha || r == 0) return 1.0;
    return *alpha / double(r);
}

Result<Tensor> lora_delta(const LoraModule& m, const Shape& shape) {
    const int64_t numel = shape.numel();
    if (shape.rank() < 1 || numel == 0) return misfit(m, shape, "an empty layer");
    for (const auto& [name, t] : m.parts)
        if (t.rank() == 0 || t.numel() == 0) return misfit(m, shape, fmt::format("{} is empty", name));
    Tensor d;
    switch (m.kind) {
    case LoraModule::Kind::LoRA: {
        EASEL_TRY_ASSIGN(d, lora_updown(m, shape));
        break;
    }
    case LoraModule::Kind::LoHa: {
        EASEL_TRY_ASSIGN(Tensor w1, factor(m, shape, "hada_w1_a", "hada_w1_b", "hada_t1"));
        EASEL_TRY_ASSIGN(Tensor w2, factor(m, shape, "hada_w2_a", "hada_w2_b", "hada_t2"));
        if (w1.numel() != numel || w2.numel() != numel)
            return misfit(m, shape, fmt::format("the Hadamard factors are {} and {}", w1.shape().to_string(), w2.shape().to_string()));
        d = w1.contiguous().clone();
        const float* b = w2.contiguous().data<float>();
        float* p = d.data<float>();
        for (int64_t i = 0; i < numel; ++i) p[i] *= b[i];
        scale_in_place(d, m.scale());
        break;
    }
    case LoraModule::Kind::LoKr: {
        Tensor w1, w2;
        if (const Tensor* t = part(m, "lokr_w1")) w1 = f32(*t);
        else { EASEL_TRY_ASSIGN(w1, factor(m, shape, "lokr_w1_a", "lokr_w1_b", "lokr_t1")); }
        if (const Tensor* t = part(m, "lokr_w2")) w2 = f32(*t);
        else { EASEL_TRY_ASSIGN(w2, factor(m, shape, "lokr_w2_a", "lokr_w2_b", "lokr_t2")); }
        if (w1.numel() * w2.numel() != numel)
            return misfit(m, shape, fmt::format("kron({}, {}) has {} elements, the layer {}", w1.shape().to_string(),
                                                w2.shape().to_string(), w1.numel() * w2.numel(), numel));
        Tensor k = kron(w1, w2);
        if (k.numel() != numel)
            return misfit(m, shape, fmt::format("kron({}, {}) has {} elements, the layer {}", w1.shape().to_string(),
                                                w2.shape().to_string(), k.numel(), numel));
        d = k;
        // A1111's LoKr: alpha / dim only when a factor is decomposed.
        if (part(m, "lokr_w1_b") || part(m, "lokr_w2_b")) scale_in_place(d, m.scale());
        break;
    }
    case LoraModule::Kind::Full: {
        const Tensor* diff = part(m, "diff");
        if (diff->numel() != numel) return misfit(m, shape, "diff has another size");
        d = f32(*diff).clone();
        break;
    }
    }
    return d.reshape(shape);
}

Result<std::shared_ptr<const LoraFile>> read_lora(const WeightSet& w, const ModelInfo& info, const std::string& path,
                                                  const std::string& sha256) {
    auto f = std::make_shared<LoraFile>();
    f->path = path;
    f->name = fs::path(path).stem().string();
    if (auto it = w.metadata.find("ss_output_name"); it != w.metadata.end()) f->alias = it->second;
    f->sha256 = sha256;
    std::map<std::string, LoraModule> modules;
    std::vector<std::string> order, unknown;
    for (const std::string& n : w.names()) {
        auto split = split_name(n);
        if (!split) {
            unknown.push_back(n);
            continue;
        }
        auto [module, p] = *split;
        auto [it, fresh] = modules.try_emplace(module);
        if (fresh) order.push_back(module);
        const Tensor& t = *w.find(n);
        if (Status st = check_finite(n, t); !st) return st.error().within(path);
        if (p == "alpha") {
            if (t.numel() != 1) return Error::bad_file(path, fmt::format("{} has {} values, expected one", n, t.numel()));
            it->second.alpha = f32(t).data<float>()[0];
            continue;
        }
        if (it->second.parts.count(p)) return Error::bad_file(path, fmt::format("{}: a second {} for {}", n, p, module));
        it->second.parts[p] = t;
    }
    if (!unknown.empty()) {
        std::string list;
        for (size_t i = 0; i < unknown.size() && i < 8; ++i) list += (i ? ", " : "") + unknown[i];
        if (unknown.size() > 8) list += fmt::format(", and {} more", unknown.size() - 8);
        return Error::bad_file(path, fmt::format("{} tensor(s) belong to no LoRA / LyCORIS module: {}", unknown.size(), list));
    }
    if (modules.empty()) return Error::bad_file(path, "no LoRA modules in the file");
    std::set<std::string> targets;
    for (const std::string& key : order) {
        LoraModule& m = modules[key];
        m.key = key;
        auto has = [&](const char* p) { return m.parts.count(p) > 0; };
        if (has("dora_scale") && !(has("up") && has("down")))
            return Error::bad_file(path, fmt::format("{}: dora_scale without lora_up and lora_down", key));
        if (has("up") || has("down")) {
            m.kind = LoraModule::Kind::LoRA;
            if (!has("up") || !has("down")) return Error::bad_file(path, fmt::format("{} has {} without {}", key, has("up") ? "an up" : "a down", has("up") ? "its down" : "its up"));
        } else if (has("hada_w1_a") || has("hada_w1_b") || has("hada_w2_a") || has("hada_w2_b")) {
            m.kind = LoraModule::Kind::LoHa;
            for (const char* p : {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"})
                if (!has(p)) return Error::bad_file(path, fmt::format("{}: LoHa needs {}", key, p));
        } else if (has("lokr_w1") || has("lokr_w2") || has("lokr_w1_a") || has("lokr_w2_a")) {
            m.kind = LoraModule::Kind::LoKr;
            if (!has("lokr_w1") && !(has("lokr_w1_a") && has("lokr_w1_b")))
                return Error::bad_file(path, fmt::format("{}: LoKr needs lokr_w1, or lokr_w1_a and lokr_w1_b", key));
            if (!has("lokr_w2") && !(has("lokr_w2_a") && has("lokr_w2_b")))
                return Error::bad_file(path, fmt::format("{}: LoKr needs lokr_w2, or lokr_w2_a and lokr_w2_b", key));
        } else if (has("diff")) {
            m.kind = LoraModule::Kind::Full;
        } else {
            return Error::bad_file(path, fmt::format("{}: only {} (no weights)", key, m.parts.empty() ? "an alpha" : shapes(m)));
        }
        for (const auto& [p, t] : m.parts)
            if (t.rank() == 0 || t.numel() == 0)
                return Error::bad_file(path, fmt::format("{}.{} is {}: a rank of 0", key, p, t.shape().to_string()));
        if (m.rank() <= 0 && m.kind != LoraModule::Kind::Full && m.kind != LoraModule::Kind::LoKr)
            return Error::bad_file(path, fmt::format("{}: a rank of 0", key));
        auto target = resolve_module(key, info);
        if (!target) return target.error().within(path);
        m.target = target->param + ".weight";
        m.text_encoder = target->text_encoder;
        if (!targets.insert(m.target).second)
            return Error::bad_file(path, fmt::format("{}: a second module for {}", key, m.target));
        (m.text_encoder ? f->touches_text_encoder : f->touches_unet) = true;
        // diff_b changes the bias: a module of its own (a Full one) so that the adapter finds it by name.
        if (auto b = m.parts.find("diff_b"); b != m.parts.end()) {
            LoraModule bias;
            bias.kind = LoraModule::Kind::Full;
            bias.key = key + ".diff_b";
            bias.target = target->param + ".bias";
            bias.text_encoder = m.text_encoder;
            bias.parts["diff"] = b->second;
            m.parts.erase(b);
            f->modules.push_back(std::move(bias));
        }
        f->modules.push_back(std::move(m));
    }
    return std::shared_ptr<const LoraFile>(std::move(f));
}

Result<std::shared_ptr<const LoraFile>> read_lora(const std::string& path, const ModelInfo& info) {
    EASEL_TRY_ASSIGN(WeightSet w, read_weights(path));
    EASEL_TRY_ASSIGN(std::string hash, addnet_hash(path));
    return read_lora(w, info, path, hash);
}

std::shared_ptr<const WeightAdapter> lora_adapter(std::shared_ptr<const LoraFile> file, double unet, double te) {
    return std::make_shared<LoraAdapter>(std::move(file), unet, te);
}

namespace {

// Elements [i0, i1) of a contiguous f16, bf16 or f32 buffer as f32 (out[0] is element i0), on this thread.
void to_f32_range(const void* raw, DType d, int64_t i0, int64_t i1, float* out) {
    if (d == DType::F16) f16_to_f32_n(static_cast<const uint16_t*>(raw) + i0, i1 - i0, out);
    else if (d == DType::BF16) bf16_to_f32_n(static_cast<const uint16_t*>(raw) + i0, i1 - i0, out);
    else std::memcpy(out, static_cast<const float*>(raw) + i0, size_t(i1 - i0) * 4);
}

Tensor pooled_f32(const Tensor& t_in, int64_t rows) {
    const Tensor t = t_in.is_contiguous() ? t_in : t_in.contiguous();
    Tensor out = Tensor::empty(Shape{rows, t.numel() / rows}, DType::F32, &part_pool());
    if (t.dtype() == DType::F16 || t.dtype() == DType::BF16 || t.dtype() == DType::F32)
        to_f32_range(t.raw(), t.dtype(), 0, t.numel(), out.data<float>());
    else
        std::memcpy(out.raw(), t.to(DType::F32).contiguous().raw(), out.nbytes());
    return out;
}

// `t` (any float dtype, contiguous or not) as f32 into `out`, on every thread.
void to_f32_parallel(const Tensor& t_in, float* out) {
    Tensor t = t_in.is_contiguous() ? t_in : t_in.contiguous();
    if (t.dtype() != DType::F16 && t.dtype() != DType::BF16 && t.dtype() != DType::F32) t = t.to(DType::F32);
    const int64_t n = t.numel(), chunk = 1 << 16;
    parallel_for((n + chunk - 1) / chunk, [&](int64_t b, int64_t e) {
        const int64_t i0 = b * chunk, i1 = std::min(n, e * chunk);
        to_f32_range(t.raw(), t.dtype(), i0, i1, out + i0);
    });
}

// The bytes a packed parameter occupies, and where.
std::pair<void*, size_t> packed_bytes(const PackedParam& p) {
    switch (p.kind) {
    case PackedParam::Kind::Linear:
        return {const_cast<void*>(p.linear.data.get()),
                p.linear.isa == Isa::Ref ? size_t(p.linear.n * p.linear.k) * 4 : p.linear.layout_bytes()};
    case PackedParam::Kind::Conv2d: return {const_cast<void*>(p.conv.data.get()), p.conv.layout_bytes()};
    case PackedParam::Kind::Bias: return {p.bias.raw(), p.bias.nbytes()};
    }
    return {nullptr, 0};
}

}  // namespace

namespace {

// The bytes of one parameter merged in f32.
size_t merge_bytes(const PackedParam& p) {
    return size_t((p.kind == PackedParam::Kind::Bias ? p.bias : p.source).numel()) * sizeof(float);
}

// The f32 buffer a weight is merged in, grown to `bytes` and written once, so that its pages are faulted in
// here and not while a request waits (fresh pages cost the kernel a clear each: about 0.5 s for SD 1.5's
// largest weight on the 2-core development VM).
Status reserve_scratch(ParamRegistry& reg, size_t bytes) {
    if (bytes <= reg.scratch_bytes) return ok();
    reg.scratch.reset();
    reg.scratch_bytes = 0;
    reg.scratch = allocate_zeroed_pages(bytes);
    if (!reg.scratch) return Error::exhausted(fmt::format("cannot allocate {} bytes for merging a weight", bytes));
    auto* p = static_cast<float*>(reg.scratch.get());
    const int64_t n = int64_t(bytes / sizeof(float));
    parallel_for(n, [&](int64_t b, int64_t e) { std::fill(p + b, p + e, 0.0f); }, int64_t(1) << 20);
    reg.scratch_bytes = bytes;
    return ok();
}

// A weight (Linear or Conv2d; `src` its contiguous f16/bf16/f32 tensor from the file) merged with `fns` and
// packed into `dst`, a block of rows at a time (whole panels of a Linear's layout), the
// blocks shared among the threads: each block is converted, merged and packed while it sits in cache, instead
// of three passes over the whole weight in memory.
Status merge_rows(const PackedParam& p, const Tensor& src, const std::vector<WeightAdapter::RowApply>& fns, void* dst) {
    const int64_t out = src.size(0), K = src.numel() / out;
    const int64_t step = p.kind == PackedParam::Kind::Linear ? std::max(1, p.linear.nr) : 1;
    // Rows per block: about 512 KB of f32 (a LoRA's down matrix, K x rank, is read once per block, so more rows
    // per block read it fewer times), but at least two blocks per thread, whole panels.
    const int64_t by_cache = (int64_t(1) << 17) / std::max<int64_t>(K, 1);
    const int64_t by_threads = (out + 2 * num_threads() - 1) / (2 * num_threads());
    const int64_t R = std::max<int64_t>(step, std::min(by_cache, by_threads) / step * step);
    const int64_t blocks = (out + R - 1) / R;
    std::mutex mu;
    Status first = ok();
    parallel_for(blocks, [&](int64_t b, int64_t e) {
        thread_local std::vector<float> buf;
        if (buf.size() < size_t(R * K)) buf.resize(size_t(R * K));
        for (int64_t blk = b; blk < e; ++blk) {
            const int64_t row0 = blk * R, rows = std::min(R, out - row0);
            to_f32_range(src.raw(), src.dtype(), row0 * K, (row0 + rows) * K, buf.data());
            for (const auto& f : fns) f(row0, rows, buf.data());
            const Status st = p.kind == PackedParam::Kind::Linear
                                  ? pack_linear_rows_into(buf.data(), DType::F32, p.linear, row0, rows, dst)
                                  : pack_conv2d_rows_into(buf.data(), DType::F32, p.conv, row0, rows, dst);
            if (!st) {
                std::lock_guard<std::mutex> lk(mu);
                if (first) first = st;
            }
        }
    });
    return first;
}

}  // namespace

namespace {
// memcpy on every thread, in 4 MiB pieces (one thread copies about 7 GB/s on the 2-core development VM; a weight
// set back is up to 3.3 GB).
void parallel_copy(void* dst, const void* src, size_t bytes) {
    const size_t piece = size_t(4) << 20;
    if (bytes < 2 * piece) {
        std::memcpy(dst, src, bytes);
        return;
    }
    parallel_for(int64_t((bytes + piece - 1) / piece), [&](int64_t b, int64_t e) {
        const size_t from = size_t(b) * piece, to = std::min(bytes, size_t(e) * piece);
        std::memcpy(static_cast<std::byte*>(dst) + from, static_cast<const std::byte*>(src) + from, to - from);
    });
}
}  // namespace

Status LivePatch::reserve(Model& m) {
    if (!m.packed_params)
        return Error::unsupported("the model was loaded without a parameter registry (LoadOptions::keep_param_registry)");
    ParamRegistry& reg = *m.packed_params;
    size_t largest = 0;
    for (const auto& [name, p] : reg.params)
        if (p.kind == PackedParam::Kind::Bias || p.source.storage()) largest = std::max(largest, merge_bytes(p));
    return reserve_scratch(reg, largest);
}

Result<std::unique_ptr<LivePatch>> LivePatch::apply(Model& m, const std::vector<std::shared_ptr<const WeightAdapter>>& adapters) {
    if (!m.packed_params)
        return Error::unsupported("the model was loaded without a parameter registry (LoadOptions::keep_param_registry)");
    ParamRegistry& reg = *m.packed_params;
    if (reg.patched) return Error::internal("the model is already patched");
    // Every target, checked before anything is written.
    std::vector<std::string> names;
    for (const auto& a : adapters)
        for (const std::string& n : a->targets()) names.push_back(n);
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    size_t total = 0;
    std::vector<std::string> missing, fixed;
    for (const std::string& n : names) {
        auto it = reg.params.find(n);
        if (it == reg.params.end()) {
            missing.push_back(n);
            continue;
        }
        const PackedParam& p = it->second;
        if (p.kind != PackedParam::Kind::Bias && !p.source.storage()) fixed.push_back(n);
        if (!p.original) total += packed_bytes(p).second;  // kept in the arena (else written back from the cache file)
    }
    auto list = [](const std::vector<std::string>& v) {
        std::string s;
        for (size_t i = 0; i < v.size() && i < 8; ++i) s += (i ? ", " : "") + v[i];
        if (v.size() > 8) s += fmt::format(", and {} more", v.size() - 8);
        return s;
    };
    if (!missing.empty())
        return Error::invalid_argument(fmt::format("{} adapter target(s) are not parameters of this model: {}", missing.size(), list(missing)));
    if (!fixed.empty())
        return Error::unsupported(fmt::format("{} weight(s) cannot be rebuilt in place (changed at load, or not a view "
                                              "of the model file): {}", fixed.size(), list(fixed)));
    if (total > 0 && total > reg.backup_bytes) {
        reg.backup.reset();
        reg.backup = allocate_zeroed_pages(total);
        if (!reg.backup) return Error::exhausted(fmt::format("cannot allocate {} bytes to keep the base weights", total));
        reg.backup_bytes = total;
    }
    size_t largest = 0;
    for (const std::string& n : names) largest = std::max(largest, merge_bytes(reg.params.at(n)));
    EASEL_TRY(reserve_scratch(reg, largest));
    std::unique_ptr<LivePatch> patch(new LivePatch());
    patch->registry_ = m.packed_params;
    reg.patched = true;
    auto* backup = static_cast<std::byte*>(reg.backup.get());
    size_t offset = 0;
    for (const std::string& n : names) {
        const PackedParam& p = reg.params.at(n);
        auto [dst, bytes] = packed_bytes(p);
        // The merged weight, as the loader would make it: the file's tensor in f32, each adapter in order.
        const Tensor& src = p.kind == PackedParam::Kind::Bias ? p.bias : p.source;
        // Where every adapter on it has a row form (LoRA and LoCon without lora_mid or DoRA), a block of rows
        // at a time, merged and packed while it is in cache; else the whole weight in the scratch buffer.
        std::vector<WeightAdapter::RowApply> row_fns;
        bool by_rows = p.kind != PackedParam::Kind::Bias && src.is_contiguous() &&
                       (src.dtype() == DType::F16 || src.dtype() == DType::BF16 || src.dtype() == DType::F32);
        for (const auto& a : adapters) {
            if (!by_rows) break;
            if (!a->touches(n)) continue;
            auto f = a->row_apply(n, src.shape());
            if (!f) return Error(f.error().code(), fmt::format("{}: {}", n, f.error().message()));
            if (!*f) by_rows = false;
            row_fns.push_back(std::move(f).value());
        }
        MappedFile::prefault(src.raw(), src.nbytes());  // the file's pages left at load: one call, not a fault each
        Tensor w;
        if (!by_rows) {
            w = Tensor::wrap(reg.scratch.get(), src.shape(), DType::F32, reg.scratch);
            to_f32_parallel(src, w.data<float>());
            // The file's pages of it leave the resident set again (they stay in the page cache for the next patch).
            if (p.kind != PackedParam::Kind::Bias) MappedFile::release_pages(src.raw(), src.nbytes());
            for (const auto& a : adapters) {
                if (!a->touches(n)) continue;
                if (Status st = a->apply(n, w); !st) return Error(st.error().code(), fmt::format("{}: {}", n, st.error().message()));
            }
        }
        EASEL_TRY(MappedFile::make_writable(dst, bytes));
        if (p.original) {
            patch->saved_.push_back({dst, 0, bytes, p.original});  // from here on the destructor restores it
        } else {
            parallel_copy(backup + offset, dst, bytes);
            patch->saved_.push_back({dst, offset, bytes, nullptr});
            offset += bytes;
        }
        patch->bytes_ += bytes;
        if (by_rows) {
            const Status st = merge_rows(p, src, row_fns, dst);
            MappedFile::release_pages(src.raw(), src.nbytes());
            if (!st) return Error(st.error().code(), fmt::format("{}: {}", n, st.error().message()));
            continue;
        }
        switch (p.kind) {
        case PackedParam::Kind::Linear: EASEL_TRY(pack_linear_weight_into(w.raw(), DType::F32, p.linear, dst)); break;
        case PackedParam::Kind::Conv2d: EASEL_TRY(pack_conv2d_weight_into(w.raw(), DType::F32, p.conv, dst)); break;
        case PackedParam::Kind::Bias:
            if (w.nbytes() != bytes) return Error::internal(fmt::format("{}: the bias changed size", n));
            std::memcpy(dst, w.raw(), bytes);
            break;
        }
    }
    return patch;
}

void LivePatch::restore() {
    if (!registry_) return;
    const auto* backup = static_cast<const std::byte*>(registry_->backup.get());
    for (const Saved& s : saved_) {
        if (s.original) {
            // From the weight cache file: mapped in at once, copied, and let go of again.
            MappedFile::prefault(s.original.get(), s.bytes);
            parallel_copy(s.dst, s.original.get(), s.bytes);
            MappedFile::release_pages(s.original.get(), s.bytes);
        } else {
            parallel_copy(s.dst, backup + s.offset, s.bytes);
        }
    }
    saved_.clear();
    registry_->patched = false;
    registry_.reset();
}

LivePatch::~LivePatch() { restore(); }

std::vector<std::pair<std::string, std::string>> list_lora_files(const std::string& dir) {
    std::vector<std::pair<std::string, std::string>> out;
    std::error_code ec;
    if (dir.empty() || !fs::is_directory(dir, ec)) return out;
    auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (!it->is_regular_file(ec)) continue;
        std::string ext = it->path().extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
        if (ext == ".safetensors" || ext == ".pt" || ext == ".ckpt") out.emplace_back(it->path().stem().string(), it->path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string default_lora_dir(const std::string& model_path) {
    std::error_code ec;
    const fs::path m = fs::absolute(model_path, ec);
    const fs::path here = fs::is_directory(m, ec) ? m : m.parent_path();
    for (const fs::path& d : {here / "Lora", here.parent_path() / "Lora"})
        if (fs::is_directory(d, ec)) return d.string();
    return {};
}

Result<std::string> find_lora_file(const std::string& dir, const std::string& name, bool allow_path) {
    std::error_code ec;
    if (allow_path && fs::is_regular_file(name, ec)) return name;
    std::vector<std::string> found;
    const auto files = list_lora_files(dir);
    for (const auto& [stem, path] : files)
        if (stem == name) found.push_back(path);
    if (found.empty()) {
        // kohya-ss's ss_output_name, as A1111's "Alias from file".
        for (const auto& [stem, path] : files) {
            if (!ends_with(path, ".safetensors")) continue;
            auto w = read_weights(path);
            if (!w) continue;
            if (auto it = w->metadata.find("ss_output_name"); it != w->metadata.end() && it->second == name) found.push_back(path);
        }
    }
    if (found.size() == 1) return found[0];
    if (found.empty())
        return Error::not_found(fmt::format("no LoRA named '{}' in {} ({} LoRA file(s) there)", name,
                                            dir.empty() ? "(no LoRA folder)" : dir, files.size()), "--lora-dir");
    return Error::invalid_argument(fmt::format("'{}' names {} LoRA files in {}: {} and {}", name, found.size(), dir,
                                               found[0], found[1]), "--lora-dir");
}

}  // namespace easel
