#include "io/weights.h"

#include <algorithm>

namespace easel {

Status WeightSet::add(std::string name, Tensor tensor) {
    if (map_.count(name))
        return Error::bad_file(source, "tensor '" + name + "' appears more than once");
    order_.push_back(name);
    map_.emplace(std::move(name), std::move(tensor));
    return ok();
}

const Tensor* WeightSet::find(std::string_view name) const {
    auto it = map_.find(std::string(name));
    return it == map_.end() ? nullptr : &it->second;
}

void WeightSet::erase(std::string_view name) {
    auto it = map_.find(std::string(name));
    if (it == map_.end()) return;
    map_.erase(it);
    order_.erase(std::find(order_.begin(), order_.end(), name));
}

Status WeightSet::merge(WeightSet&& other, std::string_view prefix) {
    for (const std::string& n : other.order_) {
        EASEL_TRY(add(std::string(prefix) + n, std::move(other.map_.at(n))));
    }
    for (auto& [k, v] : other.metadata) metadata.emplace(k, v);
    other.order_.clear();
    other.map_.clear();
    return ok();
}

}  // namespace easel
