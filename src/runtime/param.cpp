#include "runtime/param.h"

#include <fmt/format.h>

#include "io/mapped_file.h"

namespace easel {

Tensor ParamLoader::take(const std::string& name, const Shape& expected) { return take_impl(name, expected, false); }

Tensor ParamLoader::take_stored(const std::string& name, const Shape& expected) {
    return take_impl(name, expected, true);
}

Tensor ParamLoader::take_impl(const std::string& name, const Shape& expected, bool keep_quantized) {
    const Tensor* t = weights_.find(name);
    if (!t) {
        missing_.push_back(fmt::format("{} (expected {})", name, expected.to_string()));
        return {};
    }
    taken_.insert(name);
    if (t->shape() != expected) {
        wrong_shape_.push_back(fmt::format("{} is {}, expected {}", name, t->shape().to_string(), expected.to_string()));
        return {};
    }
    if (!t->quantized() && !dtype_is_float(t->dtype())) {
        other_.push_back(fmt::format("{} has dtype {}, expected a floating-point type", name, dtype_name(t->dtype())));
        return {};
    }
    Tensor adapted;
    for (const auto& a : adapters_) {
        if (!a->touches(name)) continue;
        // A copy of its own in f32: the stored tensor may be a read-only mapping of the file.
        if (!adapted.storage()) adapted = t->to(DType::F32).contiguous().clone();
        if (Status st = a->apply(name, adapted); !st) {
            other_.push_back(fmt::format("{}: adapter '{}': {}", name, a->identity(), st.error().message()));
            return {};
        }
        if (adapted.shape() != expected) {
            other_.push_back(fmt::format("{}: adapter '{}' made it {}, expected {}", name, a->identity(),
                                         adapted.shape().to_string(), expected.to_string()));
            return {};
        }
    }
    if (adapted.storage()) {
        adapted_.insert(name);
        return adapted;
    }
    if (t->quantized() && !keep_quantized) return t->to(DType::F32);
    return *t;
}

Status ParamLoader::check_adapters_used() const {
    std::vector<std::string> unknown;
    for (const auto& a : adapters_)
        for (const std::string& n : a->targets())
            if (!taken_.count(n)) unknown.push_back(fmt::format("{} (adapter '{}')", n, a->identity()));
    if (unknown.empty()) return ok();
    std::string list;
    for (size_t i = 0; i < unknown.size() && i < 12; ++i) list += (i ? ", " : "") + unknown[i];
    if (unknown.size() > 12) list += fmt::format(", and {} more", unknown.size() - 12);
    return Error::bad_file(weights_.source, fmt::format("{} adapter target(s) are not parameters of this model: {}",
                                                        unknown.size(), list));
}

Tensor ParamLoader::take_f32(const std::string& name, const Shape& expected) {
    Tensor t = take(name, expected);
    if (t.numel() == 0 && !t.storage()) return t;
    Tensor f = t.to(DType::F32).contiguous();
    if (f.raw() != t.raw()) release(t);  // converted: the file's bytes are no longer needed
    return f;
}

void ParamLoader::release(const Tensor& t) const {
    if (t.storage() && t.is_contiguous()) MappedFile::release_pages(t.raw(), t.nbytes());
}

Status ParamLoader::finish(std::string_view unused_prefix) const {
    std::vector<std::string> unused;
    if (!unused_prefix.empty()) {
        for (const std::string& n : weights_.names())
            if (n.compare(0, unused_prefix.size(), unused_prefix) == 0 && !taken_.count(n)) unused.push_back(n);
    }
    if (missing_.empty() && wrong_shape_.empty() && other_.empty() && unused.empty()) return ok();
    auto list = [](const std::vector<std::string>& v) {
        std::string s;
        const size_t show = std::min<size_t>(v.size(), 12);
        for (size_t i = 0; i < show; ++i) s += (i ? ", " : "") + v[i];
        if (v.size() > show) s += fmt::format(", and {} more", v.size() - show);
        return s;
    };
    std::string msg = "the weights do not fit the model's config:";
    if (!missing_.empty()) msg += fmt::format(" {} tensor(s) missing: {}.", missing_.size(), list(missing_));
    if (!wrong_shape_.empty()) msg += fmt::format(" {} with the wrong shape: {}.", wrong_shape_.size(), list(wrong_shape_));
    if (!other_.empty()) msg += fmt::format(" {}.", list(other_));
    if (!unused.empty()) msg += fmt::format(" {} unexpected tensor(s): {}.", unused.size(), list(unused));
    return Error::bad_file(weights_.source, msg);
}

}  // namespace easel
