// WeightSet: the named tensors of a model file, as every reader returns them (safetensors, .ckpt/.pt/.bin,
// GGUF, diffusers folders). Tensors are views: zero-copy over a mapping where the format allows, and each
// view keeps its file mapping alive, so a WeightSet may be dropped once the model has taken what it needs.
//
//   EASEL_TRY_ASSIGN(WeightSet w, read_safetensors("v1-5.safetensors"));
//   if (const Tensor* t = w.find("model.diffusion_model.input_blocks.0.0.weight")) ...
//   for (const std::string& name : w.names()) ...            // file order
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace easel {

class WeightSet {
public:
    // Fails on a duplicate name (a malformed or malicious file may repeat one).
    Status add(std::string name, Tensor tensor);
    const Tensor* find(std::string_view name) const;
    bool contains(std::string_view name) const { return find(name) != nullptr; }
    const std::vector<std::string>& names() const { return order_; }
    size_t size() const { return order_.size(); }
    // Removes a tensor (e.g. after it was renamed into another set); no-op if absent.
    void erase(std::string_view name);
    // Moves every tensor of `other` in, prefixing names with `prefix`.
    Status merge(WeightSet&& other, std::string_view prefix = {});

    std::map<std::string, std::string> metadata;  // safetensors __metadata__, GGUF key/values as text, ...
    std::string source;                           // the path it came from, for messages

private:
    std::vector<std::string> order_;
    std::unordered_map<std::string, Tensor> map_;
};

}  // namespace easel
