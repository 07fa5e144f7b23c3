#include "io/keymap_dit.h"

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace easel {
namespace {

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// The rows [n/2, n) then [0, n/2) of t, in a copy of t's dtype (or quantized type: rows are whole blocks).
Tensor swap_row_halves(const Tensor& t) {
    const int64_t n = t.size(0);
    const Tensor a = t.slice(0, n / 2, n).contiguous(), b = t.slice(0, 0, n / 2).contiguous();
    Tensor out = t.quantized() ? t.clone() : Tensor::empty(t.shape(), t.dtype());  // quantized rows stay so
    std::memcpy(out.raw(), a.raw(), a.nbytes());
    std::memcpy(static_cast<std::byte*>(out.raw()) + a.nbytes(), b.raw(), b.nbytes());
    return out;
}

struct Renamer {
    const WeightSet& in;
    std::string_view from, to;
    WeightSet out;
    std::vector<std::string> errors;
    std::map<std::string, bool> used;

    const Tensor* get(const std::string& name) {
        const Tensor* t = in.find(std::string(from) + name);
        if (t) used[std::string(from) + name] = true;
        return t;
    }
    void put(const std::string& name, Tensor t) {
        if (Status s = out.add(std::string(to) + name, std::move(t)); !s) errors.push_back(s.error().to_string());
    }
    // weight and bias (when present) of `src` as `dst`.
    void rename(const std::string& src, const std::string& dst) {
        for (const char* leaf : {".weight", ".bias", ".scale"}) {
            if (const Tensor* t = get(src + leaf)) put(dst + (std::string_view(leaf) == ".scale" ? ".weight" : leaf), *t);
        }
    }
    // A fused [sum(parts), ...] weight/bias split into rows of `sizes` (0: an equal share).
    void split(const std::string& src, const std::vector<std::string>& dst, std::vector<int64_t> sizes = {}) {
        for (const char* leaf : {".weight", ".bias"}) {
            const Tensor* t = get(src + leaf);
            if (!t) continue;
            const int64_t rows = t->size(0);
            std::vector<int64_t> s = sizes;
            if (s.empty()) {
                if (rows % int64_t(dst.size()) != 0) {
                    errors.push_back(fmt::format("{}{}{} has {} rows, not {} equal parts", from, src, leaf, rows, dst.size()));
                    continue;
                }
                s.assign(dst.size(), rows / int64_t(dst.size()));
            }
            int64_t total = 0;
            for (int64_t v : s) total += v;
            if (total != rows) {
                errors.push_back(fmt::format("{}{}{} has {} rows, expected {}", from, src, leaf, rows, total));
                continue;
            }
            int64_t at = 0;
            for (size_t i = 0; i < dst.size(); ++i) {
                put(dst[i] + leaf, t->slice(0, at, at + s[i]));
                at += s[i];
            }
        }
    }
    void swapped(const std::string& src, const std::string& dst) {
        for (const char* leaf : {".weight", ".bias"})
            if (const Tensor* t = get(src + leaf)) put(dst + leaf, swap_row_halves(*t));
    }
    bool has(const std::string& name) const { return in.contains(std::string(from) + name); }

    Result<WeightSet> finish() {
        std::vector<std::string> unknown;
        for (const std::string& name : in.names()) {
            if (!starts_with(name, from)) {
                if (Status s = out.add(name, *in.find(name)); !s) errors.push_back(s.error().to_string());
            } else if (!used.count(name)) {
                unknown.push_back(name);
            }
        }
        if (!unknown.empty())
            errors.push_back(fmt::format("{} tensor(s) the layout does not have, e.g. {}", unknown.size(), unknown.front()));
        if (!errors.empty()) return Error::bad_file(in.source, fmt::format("{}", fmt::join(errors, "; ")));
        out.metadata = in.metadata;
        out.source = in.source;
        return std::move(out);
    }
};

}  // namespace

Result<WeightSet> sd3_transformer_to_diffusers(WeightSet w, std::string_view from, std::string_view to) {
    Renamer r{w, from, to, {}, {}, {}};
    if (const Tensor* t = r.get("pos_embed")) r.put("pos_embed.pos_embed", *t);
    r.rename("x_embedder.proj", "pos_embed.proj");
    r.rename("t_embedder.mlp.0", "time_text_embed.timestep_embedder.linear_1");
    r.rename("t_embedder.mlp.2", "time_text_embed.timestep_embedder.linear_2");
    r.rename("y_embedder.mlp.0", "time_text_embed.text_embedder.linear_1");
    r.rename("y_embedder.mlp.2", "time_text_embed.text_embedder.linear_2");
    r.rename("context_embedder", "context_embedder");
    int blocks = 0;
    while (blocks < 4096 && r.has(fmt::format("joint_blocks.{}.x_block.attn.qkv.weight", blocks))) ++blocks;
    for (int i = 0; i < blocks; ++i) {
        const std::string o = fmt::format("joint_blocks.{}.", i), d = fmt::format("transformer_blocks.{}.", i);
        const bool last = i == blocks - 1;
        r.rename(o + "x_block.adaLN_modulation.1", d + "norm1.linear");
        r.split(o + "x_block.attn.qkv", {d + "attn.to_q", d + "attn.to_k", d + "attn.to_v"});
        r.rename(o + "x_block.attn.proj", d + "attn.to_out.0");
        r.rename(o + "x_block.attn.ln_q", d + "attn.norm_q");
        r.rename(o + "x_block.attn.ln_k", d + "attn.norm_k");
        r.rename(o + "x_block.mlp.fc1", d + "ff.net.0.proj");
        r.rename(o + "x_block.mlp.fc2", d + "ff.net.2");
        r.split(o + "x_block.attn2.qkv", {d + "attn2.to_q", d + "attn2.to_k", d + "attn2.to_v"});
        r.rename(o + "x_block.attn2.proj", d + "attn2.to_out.0");
        r.rename(o + "x_block.attn2.ln_q", d + "attn2.norm_q");
        r.rename(o + "x_block.attn2.ln_k", d + "attn2.norm_k");
        if (last) r.swapped(o + "context_block.adaLN_modulation.1", d + "norm1_context.linear");
        else r.rename(o + "context_block.adaLN_modulation.1", d + "norm1_context.linear");
        r.split(o + "context_block.attn.qkv", {d + "attn.add_q_proj", d + "attn.add_k_proj", d + "attn.add_v_proj"});
        r.rename(o + "context_block.attn.ln_q", d + "attn.norm_added_q");
        r.rename(o + "context_block.attn.ln_k", d + "attn.norm_added_k");
        r.rename(o + "context_block.attn.proj", d + "attn.to_add_out");
        r.rename(o + "context_block.mlp.fc1", d + "ff_context.net.0.proj");
        r.rename(o + "context_block.mlp.fc2", d + "ff_context.net.2");
    }
    r.rename("final_layer.linear", "proj_out");
    r.swapped("final_layer.adaLN_modulation.1", "norm_out.linear");
    return r.finish();
}

Result<WeightSet> flux_transformer_to_diffusers(WeightSet w, std::string_view from, std::string_view to) {
    Renamer r{w, from, to, {}, {}, {}};
    r.rename("time_in.in_layer", "time_text_embed.timestep_embedder.linear_1");
    r.rename("time_in.out_layer", "time_text_embed.timestep_embedder.linear_2");
    r.rename("vector_in.in_layer", "time_text_embed.text_embedder.linear_1");
    r.rename("vector_in.out_layer", "time_text_embed.text_embedder.linear_2");
    r.rename("guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1");
    r.rename("guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2");
    r.rename("txt_in", "context_embedder");
    r.rename("img_in", "x_embedder");
    int doubles = 0, singles = 0;
    while (doubles < 4096 && r.has(fmt::format("double_blocks.{}.img_attn.qkv.weight", doubles))) ++doubles;
    while (singles < 4096 && r.has(fmt::format("single_blocks.{}.linear1.weight", singles))) ++singles;
    for (int i = 0; i < doubles; ++i) {
        const std::string o = fmt::format("double_blocks.{}.", i), d = fmt::format("transformer_blocks.{}.", i);
        r.rename(o + "img_mod.lin", d + "norm1.linear");
        r.rename(o + "txt_mod.lin", d + "norm1_context.linear");
        r.split(o + "img_attn.qkv", {d + "attn.to_q", d + "attn.to_k", d + "attn.to_v"});
        r.split(o + "txt_attn.qkv", {d + "attn.add_q_proj", d + "attn.add_k_proj", d + "attn.add_v_proj"});
        r.rename(o + "img_attn.norm.query_norm", d + "attn.norm_q");
        r.rename(o + "img_attn.norm.key_norm", d + "attn.norm_k");
        r.rename(o + "txt_attn.norm.query_norm", d + "attn.norm_added_q");
        r.rename(o + "txt_attn.norm.key_norm", d + "attn.norm_added_k");
        r.rename(o + "img_attn.proj", d + "attn.to_out.0");
        r.rename(o + "txt_attn.proj", d + "attn.to_add_out");
        r.rename(o + "img_mlp.0", d + "ff.net.0.proj");
        r.rename(o + "img_mlp.2", d + "ff.net.2");
        r.rename(o + "txt_mlp.0", d + "ff_context.net.0.proj");
        r.rename(o + "txt_mlp.2", d + "ff_context.net.2");
    }
    for (int i = 0; i < singles; ++i) {
        const std::string o = fmt::format("single_blocks.{}.", i), d = fmt::format("single_transformer_blocks.{}.", i);
        r.rename(o + "modulation.lin", d + "norm.linear");
        // linear1 = q | k | v | mlp: three widths, then the rest (mlp_ratio x width).
        if (const Tensor* l1 = w.find(std::string(from) + o + "linear1.weight")) {
            const int64_t width = l1->size(1), mlp = l1->size(0) - 3 * width;
            if (mlp > 0) r.split(o + "linear1", {d + "attn.to_q", d + "attn.to_k", d + "attn.to_v", d + "proj_mlp"}, {width, width, width, mlp});
        }
        r.rename(o + "norm.query_norm", d + "attn.norm_q");
        r.rename(o + "norm.key_norm", d + "attn.norm_k");
        r.rename(o + "linear2", d + "proj_out");
    }
    r.rename("final_layer.linear", "proj_out");
    r.swapped("final_layer.adaLN_modulation.1", "norm_out.linear");
    return r.finish();
}

}  // namespace easel
