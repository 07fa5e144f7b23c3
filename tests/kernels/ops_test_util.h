// Shared by the tests of the non-GEMM kernels (activation, norm, softmax, attention, elementwise, upsample):
// which variants to run, and one printed line per comparison.
//
//   for (const OpsVariant& v : ops_variants()) {
//       auto fn = silu_f32_variant(v.isa);                  // v.dispatched: call silu_f32 instead
//       ...
//       report(case_name, v, compare(got, expect, tol));    // prints and EXPECTs
//   }
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "common/compare.h"
#include "core/cpu_features.h"

namespace easel::testing {

struct OpsVariant {
    std::string name;
    Isa isa;
    bool dispatched = false;  // the plain entry point, which picks its own variant under the ISA cap
};

// Every SIMD variant usable here under the cap (EASEL_CPU_ISA), then the dispatcher when it picks something
// other than the reference. The reference itself is the yardstick, so it is not in the list; with the cap at
// `ref` the list is empty and only the reference's own property tests run.
inline std::vector<OpsVariant> ops_variants() {
    std::vector<OpsVariant> v;
    if (isa_usable(Isa::Avx2)) v.push_back({"avx2", Isa::Avx2});
    if (isa_usable(Isa::Avx512)) v.push_back({"avx512", Isa::Avx512});
    if (active_isa() != Isa::Ref) v.push_back({"dispatch", active_isa(), true});
    return v;
}

inline void report(const std::string& case_name, const OpsVariant& v, const CompareReport& r) {
    std::printf("%-58s %-8s %s\n", case_name.c_str(), v.name.c_str(), r.summary().c_str());
    EXPECT_TRUE(r.passed()) << case_name << " [" << v.name << "] " << r.summary();
}

}  // namespace easel::testing
