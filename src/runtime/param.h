// Parameter loading for models built from a config (STYLE.md section 4). A model's `declare` functions walk
// a ParamScope; each asks for a tensor by its diffusers name and expected shape. Problems are collected, not
// returned one by one, so a wrong checkpoint reports every missing or mis-shaped tensor at once.
//
//   ParamLoader loader(weights, Precision::F32);
//   UNet unet = UNet::declare(ParamScope(loader, "unet"), cfg);   // takes "unet.conv_in.weight", ...
//   EASEL_TRY(loader.finish());   // "3 tensors missing: unet.x (expected [320]), ...; 1 has the wrong shape: ..."
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "io/weights.h"
#include "kernels/conv2d.h"
#include "kernels/matmul.h"

namespace easel {

class PackCache;

// A change to a model's weights applied while it loads, before anything is packed (LoRA, LoHa, LoKr and kin:
// W' = W + delta). The loader hands each parameter the adapter touches to apply() as contiguous f32 of its own;
// what apply() leaves there is what gets packed (and what the weight cache stores, under a key that includes
// identity()).
//
//   struct Scale2 : WeightAdapter {  // doubles one weight
//       std::string identity() const override { return "x2 unet.conv_in"; }
//       bool touches(const std::string& n) const override { return n == "unet.conv_in.weight"; }
//       Status apply(const std::string&, Tensor& w) const override { ...; return ok(); }
//   };
class WeightAdapter {
public:
    virtual ~WeightAdapter() = default;
    // What it is and with which strength, stable across runs (a file's content hash and the scale): part of
    // the weight-cache key.
    virtual std::string identity() const = 0;
    // Whether it changes parameter `name` (the full diffusers name, e.g. "unet.down_blocks.0.attentions.0....").
    virtual bool touches(const std::string& name) const = 0;
    // Changes `w` (contiguous f32, the parameter's shape) in place. Errors (a delta of another shape) are
    // collected by the loader like a missing tensor.
    virtual Status apply(const std::string& name, Tensor& w) const = 0;
    // The same change, a block of rows at a time: rows [row0, row0 + rows) of the weight as contiguous f32
    // [rows, shape.numel() / shape[0]], changed exactly as apply() changes them. What applying adapters to a
    // loaded model in place uses (pipeline/lora.h LivePatch), so that a weight is merged and packed while its
    // rows are in cache.
    using RowApply = std::function<void(int64_t row0, int64_t rows, float* w)>;
    // The row form for `name` (a weight of `shape`), or a null function where this adapter changes only whole
    // tensors there (apply() runs instead). Errors (a delta of another shape) come here, before any row changes.
    virtual Result<RowApply> row_apply(const std::string& name, const Shape& shape) const {
        (void)name;
        (void)shape;
        return RowApply{};
    }
    // The names it would touch, for the check that each was found in the model (empty: not checked).
    virtual std::vector<std::string> targets() const { return {}; }
};

// A packed parameter of a loaded model, kept so that its packed bytes can be rewritten in place and written
// back later (LoRAs applied per request without reloading: pipeline/lora.h LivePatch). The packed structs share
// their data with the model's Linear / Conv2d (a copy of a PackedWeight aliases the same bytes).
struct PackedParam {
    enum class Kind { Linear, Conv2d, Bias };
    Kind kind = Kind::Linear;
    // The weight as the file holds it (a view into a mapping of the model file; any float dtype), or undefined
    // when it was not a view of a file (an adapter changed it at load, a GGUF weight was dequantized): such a
    // parameter cannot be patched.
    Tensor source;
    PackedWeight linear;        // Kind::Linear: [out, in] (a 1x1 conv's weight too)
    PackedConv2dWeight conv;    // Kind::Conv2d
    Tensor bias;                // Kind::Bias: the model's f32 bias tensor itself (shares its storage)
    // The packed bytes as the weight cache file holds them, when the weight was copied from it: a patched weight
    // is written back from there instead of from a copy kept in memory. Null otherwise.
    std::shared_ptr<const void> original;
};

// Every packed parameter of a model by its full diffusers name ("unet.conv_in.weight"), filled while loading
// when ParamLoader::set_registry() is given one.
struct ParamRegistry {
    std::map<std::string, PackedParam> params;
    // The original bytes of patched weights (pipeline/lora.h LivePatch), kept between patches so that a second
    // one does not fault in fresh memory again.
    std::shared_ptr<void> backup;
    size_t backup_bytes = 0;
    std::shared_ptr<void> scratch;  // one weight in f32 while it is merged
    size_t scratch_bytes = 0;
    bool patched = false;  // one LivePatch at a time
};

class ParamLoader {
public:
    ParamLoader(const WeightSet& weights, Precision precision) : weights_(weights), precision_(precision) {}

    // The tensor `name` as stored (any float dtype, zero-copy), or an undefined Tensor after recording a problem.
    // A quantized tensor (GGUF blocks, fp8) comes decoded to f32.
    Tensor take(const std::string& name, const Shape& expected);
    // Like take, but a quantized tensor comes as stored (Linear weights, multiplied as they are), unless an
    // adapter changes it.
    Tensor take_stored(const std::string& name, const Shape& expected);
    // Like take, converted to contiguous f32 (norm scales, biases, embeddings: small tensors).
    Tensor take_f32(const std::string& name, const Shape& expected);
    // True if `name` exists (for optional parameters such as conv_shortcut).
    bool has(const std::string& name) const { return weights_.contains(name); }

    Precision precision() const { return precision_; }
    // Called once a weight from take() has been converted or packed into memory of its own: its pages of a
    // mapped model file leave the process's resident set (MappedFile::release_pages), so that loading never
    // holds the file and the packed copy at once. A no-op for tensors that are not in a mapping.
    void release(const Tensor& t) const;
    // Optional (not owned): Linear/Conv2d::declare take packed weights from it and add what they pack.
    void set_pack_cache(PackCache* cache) { pack_cache_ = cache; }
    PackCache* pack_cache() const { return pack_cache_; }
    // Keep f16/bf16 Linear weights as stored (kernels/matmul.h stored_linear_weight: widened per call) where the
    // kernels would pack them into f32 panels of twice the size; their pages of a mapped file leave the resident
    // set when the last layer using them goes. Off: every weight is packed.
    void set_keep_half_weights(bool on) { keep_half_ = on; }
    bool keep_half_weights() const { return keep_half_; }
    // Records a problem found while packing or checking (e.g. an unsupported dtype).
    void add_problem(std::string message) { other_.push_back(std::move(message)); }
    // Optional (not owned): Linear/Conv2d::declare record what they packed (and biases) there.
    void set_registry(ParamRegistry* r) { registry_ = r; }
    ParamRegistry* registry() const { return registry_; }
    // Whether take() handed out an adapter-changed copy of `name` rather than the file's tensor.
    bool adapted(const std::string& name) const { return adapted_.count(name) > 0; }
    // Adapters applied in take() to the parameters they touch, in the order added.
    void add_adapter(std::shared_ptr<const WeightAdapter> a) { adapters_.push_back(std::move(a)); }
    // After loading: an error naming every adapter target no declare() asked for (a LoRA for another model).
    Status check_adapters_used() const;

    // OK when every requested tensor was present with its shape. With `unused_prefix` set, tensors under it
    // that no declare() took are reported too (a checkpoint for a bigger or different model).
    Status finish(std::string_view unused_prefix = {}) const;

private:
    const WeightSet& weights_;
    Precision precision_;
    PackCache* pack_cache_ = nullptr;
    bool keep_half_ = false;
    ParamRegistry* registry_ = nullptr;
    std::set<std::string> adapted_;
    std::vector<std::shared_ptr<const WeightAdapter>> adapters_;
    Tensor take_impl(const std::string& name, const Shape& expected, bool keep_quantized);
    std::vector<std::string> missing_, wrong_shape_, other_;
    std::set<std::string> taken_;
};

class ParamScope {
public:
    ParamScope(ParamLoader& loader, std::string path) : loader_(&loader), path_(std::move(path)) {}

    ParamScope operator/(std::string_view child) const { return {*loader_, join(std::string(child))}; }
    ParamScope operator/(int index) const { return {*loader_, join(std::to_string(index))}; }

    Tensor take(std::string_view leaf, const Shape& shape) const { return loader_->take(join(std::string(leaf)), shape); }
    Tensor take_stored(std::string_view leaf, const Shape& shape) const {
        return loader_->take_stored(join(std::string(leaf)), shape);
    }
    Tensor take_f32(std::string_view leaf, const Shape& shape) const {
        return loader_->take_f32(join(std::string(leaf)), shape);
    }
    bool has(std::string_view leaf) const { return loader_->has(join(std::string(leaf))); }
    const std::string& path() const { return path_; }
    std::string name(std::string_view leaf) const { return join(std::string(leaf)); }
    ParamLoader& loader() const { return *loader_; }

private:
    std::string join(const std::string& child) const { return path_.empty() ? child : path_ + "." + child; }
    ParamLoader* loader_;
    std::string path_;
};

}  // namespace easel
