#include "common/random_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/thread_pool.h"
#include "io/keymap_key_list.h"
#include "io/safetensors.h"
#include "sampling/rng_torch_cpu.h"

namespace easel::testing {

Tensor random_checkpoint_weight(size_t i, const std::string& name, const Shape& shape) {
    const int64_t n = shape.numel();
    const std::string suffix = "embeddings.position_ids";
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        Tensor t = Tensor::empty(shape, DType::I64);
        for (int64_t k = 0; k < n; ++k) t.data<int64_t>()[k] = k;
        return t;
    }
    TorchCpuGenerator g(1000 + i);
    Tensor x = g.randn(shape);
    float* p = x.data<float>();
    const bool norm_weight = shape.rank() == 1 &&
                             (name.find("norm") != std::string::npos || name.find(".ln_") != std::string::npos) &&
                             name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0;
    if (shape.rank() <= 1) {
        for (int64_t k = 0; k < n; ++k) p[k] = norm_weight ? 1.0f + 0.1f * p[k] : 0.05f * p[k];
    } else {
        const float s = float(std::min(0.2, 1.0 / std::sqrt(double(n) / double(shape.dim(0)))));
        for (int64_t k = 0; k < n; ++k) p[k] *= s;
    }
    return x.to(DType::F16);
}

Result<WeightSet> random_checkpoint(const std::string& key_list_path, DType dtype) {
    EASEL_TRY_ASSIGN(auto keys, read_key_list_file(key_list_path));
    // Each tensor is a function of its index alone: generate them on every core (a minute for SD 1.5 on one).
    const std::vector<std::string>& names = keys.names();
    std::vector<Tensor> made(names.size());
    parallel_for(int64_t(names.size()), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
            Tensor t = random_checkpoint_weight(size_t(i), names[size_t(i)], keys.find(names[size_t(i)])->shape());
            if (t.dtype() == DType::F16 && dtype != DType::F16) t = t.to(dtype);
            made[size_t(i)] = std::move(t);
        }
    });
    WeightSet w;
    for (size_t i = 0; i < names.size(); ++i) EASEL_TRY(w.add(names[i], std::move(made[i])));
    return w;
}

WeightSet component_weights(const WeightSet& diffusers_names, const std::string& component) {
    const std::string prefix = component + ".";
    WeightSet part;
    part.metadata["format"] = "pt";
    for (const std::string& n : diffusers_names.names())
        if (n.rfind(prefix, 0) == 0) {
            const bool added = bool(part.add(n.substr(prefix.size()), *diffusers_names.find(n)));
            EASEL_ASSERT(added, "component_weights: " + n);
        }
    return part;
}

Status write_random_checkpoint(const std::string& key_list_path, const std::string& out, double gain,
                               const std::vector<std::string>& scaled) {
    EASEL_TRY_ASSIGN(WeightSet built, random_checkpoint(key_list_path));
    WeightSet w;
    int changed = 0;
    for (const std::string& n : built.names()) {
        Tensor t = *built.find(n);
        for (const std::string& prefix : scaled)
            if (n.rfind(prefix, 0) == 0) {
                Tensor f = t.to(DType::F32).contiguous().clone();
                for (int64_t i = 0; i < f.numel(); ++i) f.data<float>()[i] *= float(gain);
                t = f.to(DType::F16);
                ++changed;
                break;
            }
        EASEL_TRY(w.add(n, t));
    }
    if (!scaled.empty() && changed == 0)
        return Error::invalid_argument("no tensor of the key list is under the prefixes to scale", key_list_path);
    return write_safetensors(out, w);
}

}  // namespace easel::testing
