#include "common/golden.h"

#include <cstdio>
#include <map>
#include <mutex>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "io/safetensors.h"

namespace easel::testing {

const WeightSet& golden_file(const std::string& name) {
    static std::mutex mu;
    static std::map<std::string, WeightSet> loaded;
    std::lock_guard<std::mutex> lock(mu);
    auto it = loaded.find(name);
    if (it == loaded.end()) {
        const std::string path = std::string(EASEL_GOLDEN_DIR) + "/" + name;
        auto r = read_safetensors(path);
        EASEL_ASSERT(r.has_value(), fmt::format("golden {} cannot be read ({}); its tools/reference script writes it",
                                                path, r ? "" : r.error().to_string()));
        it = loaded.emplace(name, std::move(r).value()).first;
    }
    return it->second;
}

const Tensor& golden_tensor(const WeightSet& golden, const std::string& name) {
    static const Tensor kEmpty;
    const Tensor* t = golden.find(name);
    if (!t) {
        const auto script = golden.metadata.find("script");
        ADD_FAILURE() << golden.source << " has no tensor " << name
                      << (script != golden.metadata.end() ? " (written by " + script->second + ")" : std::string());
        return kEmpty;
    }
    return *t;
}

bool expect_close(const Tensor& got, const Tensor& ref, Tolerance tol, const std::string& label) {
    if (got.shape() != ref.shape()) {
        ADD_FAILURE() << label << ": shape " << got.shape().to_string() << ", expected " << ref.shape().to_string();
        return false;
    }
    const CompareReport r = compare(got, ref, tol);
    std::printf("%-28s %s\n", label.c_str(), r.summary().c_str());
    EXPECT_TRUE(r.passed()) << label << ": " << r.summary();
    return r.passed();
}

}  // namespace easel::testing
