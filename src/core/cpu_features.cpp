#include "core/cpu_features.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace easel {
namespace {

uint64_t xgetbv0() {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (uint64_t(edx) << 32) | eax;
}

std::atomic<int> g_cap{-1};

// Linux's opt-in for AMX's 8 KiB of tile data (arch/x86/include/uapi/asm/prctl.h; xfeature 18 is XTILEDATA).
// Without it the first tile instruction raises SIGILL. The permission is the whole process's.
bool request_amx_permission() {
    constexpr long kArchReqXcompPerm = 0x1023;
    constexpr long kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

}  // namespace

CpuFeatures detect_cpu_features() {
    CpuFeatures f;
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
    const unsigned max_leaf = a;
    __get_cpuid(1, &a, &b, &c, &d);
    const bool osxsave = c & (1u << 27);
    f.fma = c & (1u << 12);
    f.f16c = c & (1u << 29);
    const bool avx = c & (1u << 28);
    uint64_t xcr0 = 0;
    if (osxsave && avx) {
        xcr0 = xgetbv0();
        f.os_avx = (xcr0 & 0x6) == 0x6;            // SSE and AVX state
        f.os_avx512 = (xcr0 & 0xe6) == 0xe6;       // plus opmask, ZMM_Hi256, Hi16_ZMM
    }
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        f.avx2 = b & (1u << 5);
        f.avx512f = b & (1u << 16);
        f.avx512dq = b & (1u << 17);
        f.avx512bw = b & (1u << 30);
        f.avx512vl = b & (1u << 31);
        f.avx512_vnni = c & (1u << 11);
        f.amx_bf16 = d & (1u << 22);
        f.amx_tile = d & (1u << 24);
        __cpuid_count(7, 1, a, b, c, d);
        f.avx512_bf16 = a & (1u << 5);
    }
    if (f.amx_tile && f.amx_bf16 && (xcr0 & 0x60000) == 0x60000) f.os_amx = request_amx_permission();
    unsigned regs[12] = {};
    if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
        for (unsigned i = 0; i < 3; ++i) __get_cpuid(0x80000002 + i, &regs[i * 4], &regs[i * 4 + 1], &regs[i * 4 + 2], &regs[i * 4 + 3]);
        char buf[49] = {};
        std::memcpy(buf, regs, 48);
        f.brand = buf;
        while (!f.brand.empty() && f.brand.back() == ' ') f.brand.pop_back();
    }
    return f;
}

const CpuFeatures& cpu_features() {
    static const CpuFeatures f = detect_cpu_features();
    return f;
}

Isa best_isa(const CpuFeatures& f) {
    const bool avx2 = f.os_avx && f.avx2 && f.fma && f.f16c;
    const bool avx512 = avx2 && f.os_avx512 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
    const bool bf16 = avx512 && f.avx512_bf16 && f.avx512_vnni;
    if (bf16 && f.amx_tile && f.amx_bf16 && f.os_amx) return Isa::Amx;
    if (bf16) return Isa::Avx512Bf16;
    if (avx512) return Isa::Avx512;
    if (avx2) return Isa::Avx2;
    return Isa::Ref;
}

std::optional<Isa> isa_from_name(std::string_view s) {
    if (s == "ref" || s == "scalar") return Isa::Ref;
    if (s == "avx2") return Isa::Avx2;
    if (s == "avx512") return Isa::Avx512;
    if (s == "avx512bf16" || s == "avx512_bf16") return Isa::Avx512Bf16;
    if (s == "amx" || s == "native" || s == "auto") return Isa::Amx;
    return std::nullopt;
}

std::string_view isa_name(Isa isa) {
    switch (isa) {
        case Isa::Ref: return "ref";
        case Isa::Avx2: return "avx2";
        case Isa::Avx512: return "avx512";
        case Isa::Avx512Bf16: return "avx512bf16";
        case Isa::Amx: return "amx";
    }
    return "?";
}

Isa isa_cap() {
    int c = g_cap.load();
    if (c < 0) {
        Isa cap = Isa::Amx;
        if (const char* e = std::getenv("EASEL_CPU_ISA")) {
            // An unknown value caps at the reference: the safe reading of a typo while bisecting.
            cap = isa_from_name(e).value_or(Isa::Ref);
        }
        c = int(cap);
        g_cap.store(c);
    }
    return Isa(c);
}

void set_isa_cap(Isa cap) { g_cap.store(int(cap)); }

bool isa_usable(Isa isa, const CpuFeatures& f, Isa cap) {
    return int(isa) <= int(best_isa(f)) && int(isa) <= int(cap);
}

Isa active_isa() {
    const Isa b = best_isa(cpu_features());
    const Isa c = isa_cap();
    return int(b) < int(c) ? b : c;
}

}  // namespace easel
