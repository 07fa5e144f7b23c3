// CPU feature detection and the ISA cap. Kernels pick their variant at run time from these; nothing is
// compiled with -march=native.
//
//   const CpuFeatures& f = cpu_features();
//   if (isa_usable(Isa::Avx512, f, isa_cap())) ...   // EASEL_CPU_ISA=ref|avx2|avx512|avx512bf16 caps it
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace easel {

// Ordered: each level implies the ones before it.
enum class Isa { Ref = 0, Avx2 = 1, Avx512 = 2, Avx512Bf16 = 3 };

struct CpuFeatures {
    bool avx2 = false, fma = false, f16c = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
    bool avx512_bf16 = false, avx512_vnni = false;
    bool os_avx = false, os_avx512 = false;  // XSAVE/OSXSAVE: the OS saves the wider registers
    std::string brand;
};

CpuFeatures detect_cpu_features();
const CpuFeatures& cpu_features();  // detected once

// The highest ISA this CPU and OS support.
Isa best_isa(const CpuFeatures& f);
// The cap from EASEL_CPU_ISA (or set_isa_cap); Avx512Bf16 (no cap) if unset.
Isa isa_cap();
void set_isa_cap(Isa cap);  // for --cpu-isa; call before the first kernel runs
std::optional<Isa> isa_from_name(std::string_view s);
std::string_view isa_name(Isa isa);

// True if `isa` is supported here and not above the cap.
bool isa_usable(Isa isa, const CpuFeatures& f, Isa cap);
inline bool isa_usable(Isa isa) { return isa_usable(isa, cpu_features(), isa_cap()); }
// The ISA the dispatcher will use: min(best_isa, cap).
Isa active_isa();

}  // namespace easel
