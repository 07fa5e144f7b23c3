// CPU feature detection and the ISA cap. Kernels pick their variant at run time from these; nothing is
// compiled with -march=native.
//
//   const CpuFeatures& f = cpu_features();
//   if (isa_usable(Isa::Avx512, f, isa_cap())) ...   // EASEL_CPU_ISA=ref|avx2|avx512|avx512bf16|amx caps it
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace easel {

// Ordered: each level implies the ones before it. Amx: AMX-BF16 tile units (Intel Xeon 4th generation and later),
// used by the bf16 GEMM only; every other op runs its AVX-512 code there.
enum class Isa { Ref = 0, Avx2 = 1, Avx512 = 2, Avx512Bf16 = 3, Amx = 4 };

struct CpuFeatures {
    bool avx2 = false, fma = false, f16c = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
    bool avx512_bf16 = false, avx512_vnni = false;
    bool amx_tile = false, amx_bf16 = false;
    bool os_avx = false, os_avx512 = false;  // XSAVE/OSXSAVE: the OS saves the wider registers
    // The OS saves the tile state (XCR0 bits 17, 18) and granted this process the tile data (Linux 5.16+:
    // arch_prctl(ARCH_REQ_XCOMP_PERM), asked once by detect_cpu_features when the CPU has AMX).
    bool os_amx = false;
    std::string brand;
};

CpuFeatures detect_cpu_features();
const CpuFeatures& cpu_features();  // detected once

// The highest ISA this CPU and OS support.
Isa best_isa(const CpuFeatures& f);
// The cap from EASEL_CPU_ISA (or set_isa_cap); Amx (no cap) if unset.
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
