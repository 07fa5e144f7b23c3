// GEMM dispatch and the blocked driver shared by linear(), matmul_f32() and conv2d() (see gemm_kernels.h).
//
// Blocking (BLIS-style, with B panels packed once for weights): the output is cut into tiles of mc rows x np
// panels, claimed by threads. Per tile and per k block of 256 words: the A block is used in place (f32) or
// converted once (bf16), the B panels are either pre-packed or built, then for each 6-row A sliver (L1
// resident, 6 KiB) the microkernel sweeps the tile's panels (a 256-word x 384-column B block = 384 KiB, L2).
// Plain C++: no intrinsics here (STYLE.md section 5).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/allocator.h"
#include "core/half.h"
#include "kernels/convert.h"
#include "core/thread_pool.h"
#include "kernels/cpu/gemm_kernels.h"
#include "kernels/matmul.h"

namespace easel {
namespace gemm {
namespace {

constexpr int64_t kKcWords = 256;       // k block, in words (256 f32 or 512 bf16 values)
constexpr int64_t kMaxTileCols = 384;   // columns per tile: the k block of B stays in L2
constexpr int64_t kMaxTileRows = 480;   // rows per tile (bounds the converted A block: 480 KiB)
constexpr int64_t kBuildRows = 2048;    // rows per tile when B blocks are decoded from stored weights
constexpr int64_t kMinBuildRows = 256;  // ... and no fewer when splitting for threads
constexpr int64_t kSerialFlops = 4'000'000;  // below this, threading costs more than it saves

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

struct AlignedFree {
    void operator()(uint32_t* p) const { std::free(p); }
};

uint32_t* aligned_words(size_t words) {
    const size_t bytes = std::max<size_t>(64, (words * 4 + 63) / 64 * 64);
    void* p = std::aligned_alloc(64, bytes);
    EASEL_ASSERT(p != nullptr, fmt::format("out of memory allocating {} bytes of GEMM scratch", bytes));
    return static_cast<uint32_t*>(p);
}

}  // namespace

uint32_t* thread_scratch(int slot, size_t words) {
    struct Slot {
        std::unique_ptr<uint32_t, AlignedFree> p;
        size_t words = 0;
    };
    thread_local Slot slots[7];
    EASEL_ASSERT(slot >= 0 && slot < 7, "thread_scratch: slot out of range");
    Slot& s = slots[slot];
    if (s.words < words) {
        s.p.reset(aligned_words(words));
        s.words = words;
    }
    return s.p.get();
}

float load_as_f32(const void* src, DType dtype, int64_t index) {
    switch (dtype) {
        case DType::F32: return static_cast<const float*>(src)[index];
        case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(src)[index]);
        case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(src)[index]);
        default: EASEL_ASSERT(false, "load_as_f32: dtype must be f32, f16 or bf16"); return 0.0f;
    }
}

void load_row_as_f32(const void* src, DType dtype, int64_t index, int64_t n, float* dst) {
    switch (dtype) {
        case DType::F32: std::memcpy(dst, static_cast<const float*>(src) + index, size_t(n) * 4); return;
        case DType::F16: f16_to_f32_n(static_cast<const uint16_t*>(src) + index, n, dst); return;
        case DType::BF16: bf16_to_f32_n(static_cast<const uint16_t*>(src) + index, n, dst); return;
        default: EASEL_ASSERT(false, "load_row_as_f32: dtype must be f32, f16 or bf16");
    }
}

void pack_b_row(const GemmKernel& kern, const float* row0, const float* row1, int64_t nc, uint32_t* row_base,
                int64_t panel_stride) {
    const int64_t nr = kern.nr;
    for (int64_t p0 = 0, panel = 0; p0 < nc; p0 += nr, ++panel) {
        const int64_t lanes = std::min(nr, nc - p0);
        uint32_t* d = row_base + panel * panel_stride;
        if (kern.pack_row) {
            kern.pack_row(row0 + p0, row1 ? row1 + p0 : nullptr, lanes, d);
        } else {
            std::memcpy(d, row0 + p0, size_t(lanes) * 4);
        }
        for (int64_t j = lanes; j < nr; ++j) d[j] = 0;
    }
}

namespace {
// Set by fast_precision() where its timing found the AMX tiles slower than the AVX512-BF16 dot products.
std::atomic<bool> g_amx_slower{false};
}  // namespace

const GemmKernel* gemm_kernel_for(Isa isa, Precision p) {
    switch (isa) {
        case Isa::Ref: return nullptr;
        case Isa::Avx2: return gemm_kernel_avx2(p);
        case Isa::Avx512: return gemm_kernel_avx512(p);
        case Isa::Amx:
            if (!g_amx_slower.load()) {
                if (const GemmKernel* k = gemm_kernel_amx(p)) return k;
            }
            [[fallthrough]];
        case Isa::Avx512Bf16: {
            const GemmKernel* k = gemm_kernel_avx512bf16(p);
            return k ? k : gemm_kernel_avx512(p);
        }
    }
    return nullptr;
}

void gemm_run(const GemmKernel& kern, int64_t M, int64_t N, int64_t K, const GemmA& a, const GemmB& b, float* c,
              int64_t ldc, const GemmEpilogue& ep) {
    if (M <= 0 || N <= 0) return;
    const int64_t mr = kern.mr, nr = kern.nr, kp = kern.kpack;
    EASEL_ASSERT(!b.rows || (kern.ukernel_rows && N % nr == 0),
                 "gemm_run: B rows in place need ukernel_rows and whole panels");
    EASEL_ASSERT(!a.half || kp == 1, "gemm_run: an A kept as f16/bf16 needs a kernel of f32 words");
    // Equal k blocks (K = 320 runs as 2 x 160, not 256 + 64: a short block still pays a full C reload).
    const int64_t k_blocks = std::max<int64_t>(1, ceil_div(K, kKcWords * kp));
    const int64_t kc_max = round_up(ceil_div(std::max<int64_t>(K, 1), k_blocks), kern.kw_align * kp);
    const int64_t panels = ceil_div(N, nr);
    const bool a_in_place = a.words != nullptr || (a.half == nullptr && kern.convert_rows == nullptr && a.col_stride == 1);

    // Tile shape: as large as the caches allow, then split until every thread has a few tiles to claim.
    int64_t np = std::min(panels, std::max<int64_t>(1, kMaxTileCols / nr));
    // A in kernel words already (conv weights) needs no scratch: take all rows, so each B block (an im2col
    // tile) is built once, not once per row block. A conv weight kept as f16 is tiled like an f32 A instead: each
    // tile widens its own rows' block, so a tile of every row at a small image (the UNet's 1280-channel levels,
    // split into narrow column tiles for the threads) would widen the whole weight once per tile (10% slower at
    // 1280 channels, 16x16, than packed, on Zen 3), while a B block built once per row tile costs less.
    // A B that is costly to build (weights decoded per block: quantized, or f16 kept as stored) takes tall row
    // tiles, so that each block is built at most once per kMinBuildRows rows: splitting columns instead would
    // stream all of A once per narrow column tile (35% slower at 8192 x 640 x 640 on Zen 3).
    int64_t mc = a.words ? M : std::min(M, round_up(b.build_once ? kBuildRows : kMaxTileRows, mr));
    const int threads = num_threads();
    const bool serial = 2.0 * double(M) * double(N) * double(K) < double(kSerialFlops) || threads == 1;
    auto tile_count = [&] { return ceil_div(M, mc) * ceil_div(panels, np); };
    while (!serial && tile_count() < 4 * threads) {
        const bool can_m = mc > (b.build_once ? kMinBuildRows : mr), can_n = np > 1;
        if (can_m && (!can_n || mc >= np * nr)) {
            mc = round_up(ceil_div(mc, 2), mr);
        } else if (can_n) {
            np = ceil_div(np, 2);
        } else {
            break;
        }
    }
    // Column tiles share the panels evenly (widths differ by at most one panel), and with A in words (a conv's
    // weight: a single row tile) their count is a multiple of the thread count: 256 panels in tiles of up to 24
    // made 10 tiles of 24 and one of 16, which two threads claimed in chunks of 2 as 144 and 112 panels.
    int64_t tiles_n = ceil_div(panels, np);
    if (!serial && a.words && ceil_div(M, mc) % threads != 0) tiles_n = std::min(panels, round_up(tiles_n, threads));
    // Equal shares: with 2 threads, 9 row tiles of 480 rows (M = 4096) left one thread 5 tiles and the other 4
    // (or 6 and 3, as chunks were claimed), ~10% of a linear layer idle. Spread the rows evenly over a tile
    // count that is a multiple of the thread count, and hand each thread a fixed run of tiles (below). Conv
    // weights (A in words, all rows in one tile so that each B block is built once) keep their single row tile.
    if (!serial && !a.words) {
        int64_t row_tiles = ceil_div(M, mc);
        const int64_t most = ceil_div(M, mr);
        while ((row_tiles * tiles_n) % threads != 0 && row_tiles < most) ++row_tiles;
        const int64_t even_mc = round_up(ceil_div(M, row_tiles), mr);
        if ((ceil_div(M, even_mc) * tiles_n) % threads == 0) mc = even_mc;
    }
    const int64_t tiles = ceil_div(M, mc) * tiles_n;

    auto run_tile = [&](int64_t t) {
        const int64_t m0 = (t / tiles_n) * mc, m1 = std::min(M, m0 + mc);
        const int64_t p0 = (t % tiles_n) * panels / tiles_n, p1 = (t % tiles_n + 1) * panels / tiles_n;
        const int64_t n0 = p0 * nr, n1 = std::min(N, p1 * nr);
        const int64_t rows = m1 - m0;
        int64_t k0 = 0;
        do {
            const int64_t kc = std::min(kc_max, K - k0);
            const int64_t kw = ceil_div(kc, kp);

            const uint32_t* ablk;
            int64_t lda;
            if (a.words) {
                ablk = a.words + m0 * a.ld_words + k0 / kp;
                lda = a.ld_words;
            } else if (a.half) {
                // Widened into f32 words (exact), then rounded where the kernel rounds, as packing would.
                lda = round_up(kw, 16) + 16;
                uint32_t* dst = thread_scratch(0, size_t(rows * lda));
                float* wide = kern.convert_rows ? reinterpret_cast<float*>(thread_scratch(2, size_t(rows * kc)))
                                                : reinterpret_cast<float*>(dst);
                const int64_t ldw = kern.convert_rows ? kc : lda;
                for (int64_t i = 0; i < rows; ++i)
                    load_row_as_f32(a.half, a.half_dtype, (m0 + i) * a.half_ld + k0, kc, wide + i * ldw);
                if (kern.convert_rows) kern.convert_rows(wide, kc, rows, kc, dst, lda);
                ablk = dst;
                // The next k block's rows, fetched while the microkernels run on this one: the widening reads
                // the weight from memory (a 1280-channel 3x3 weight is 29 MB of f16), and without this its
                // reads did not overlap any compute (17% of a conv at 8x8, 1280 channels, on Zen 3).
                if (k0 + kc < K) {
                    const int64_t next = std::min(kc_max, K - k0 - kc) * int64_t(dtype_size(a.half_dtype));
                    const char* base = static_cast<const char*>(a.half);
                    for (int64_t i = 0; i < rows; ++i) {
                        const char* row = base + ((m0 + i) * a.half_ld + k0 + kc) * int64_t(dtype_size(a.half_dtype));
                        for (int64_t off = 0; off < next; off += 64) __builtin_prefetch(row + off);
                    }
                }
            } else if (a_in_place) {
                ablk = reinterpret_cast<const uint32_t*>(a.f32 + m0 * a.row_stride + k0);
                lda = a.row_stride;
            } else {
                lda = round_up(kw, 16) + 16;  // padded: rows 4 KiB apart alias in L1
                uint32_t* dst = thread_scratch(0, size_t(rows * lda));
                const float* src = a.f32 + m0 * a.row_stride + k0 * a.col_stride;
                int64_t lds = a.row_stride;
                if (a.col_stride != 1) {  // transposed A: gather into f32 rows first
                    float* tmp = reinterpret_cast<float*>(thread_scratch(2, size_t(rows * kc)));
                    for (int64_t i = 0; i < rows; ++i)
                        for (int64_t kk = 0; kk < kc; ++kk) tmp[i * kc + kk] = src[i * a.row_stride + kk * a.col_stride];
                    src = tmp;
                    lds = kc;
                }
                if (kern.convert_rows) {
                    kern.convert_rows(src, lds, rows, kc, dst, lda);
                } else {
                    for (int64_t i = 0; i < rows; ++i) std::memcpy(dst + i * lda, src + i * lds, size_t(kc) * 4);
                }
                ablk = dst;
            }

            const uint32_t* bblk = nullptr;
            int64_t bstride = 0;
            const uint32_t** brows = nullptr;
            if (b.rows) {
                thread_local std::vector<const uint32_t*> ptrs;
                ptrs.resize(size_t((p1 - p0) * kw));
                for (int64_t p = p0; p < p1; ++p) b.rows(k0 / kp, kw, p * nr, ptrs.data() + (p - p0) * kw);
                brows = ptrs.data();
            } else if (b.packed) {
                bblk = b.packed + p0 * b.panel_stride + (k0 / kp) * nr;
                bstride = b.panel_stride;
            } else {
                bstride = kw * nr;
                uint32_t* dst = thread_scratch(1, size_t((p1 - p0) * bstride));
                b.build(k0, kc, n0, n1 - n0, dst);
                bblk = dst;
            }

            UkernelArgs u;
            u.kw = kw;
            u.lda = lda;
            u.ldc = ldc;
            u.alpha = ep.alpha;
            // The first k block adds cin and the biases; later ones add onto C itself.
            const bool first = k0 == 0;
            u.ldcin = first ? ep.ldcin : ldc;
            for (int64_t i = m0; i < m1; i += mr) {
                u.mr = int(std::min(mr, m1 - i));
                u.a = ablk + (i - m0) * lda;
                u.bias_row = first && ep.bias_row ? ep.bias_row + i : nullptr;
                for (int64_t p = p0; p < p1; ++p) {
                    const int64_t j = p * nr;
                    u.nc = int(std::min(nr, N - j));
                    if (brows) u.b_rows = brows + (p - p0) * kw;
                    else u.b = bblk + (p - p0) * bstride;
                    u.c = c + i * ldc + j;
                    u.bias_col = first && ep.bias_col ? ep.bias_col + j : nullptr;
                    const float* cin_base = first ? ep.cin : c;
                    u.cin = cin_base ? cin_base + i * u.ldcin + j : nullptr;
                    (brows ? kern.ukernel_rows : kern.ukernel)(u);
                }
            }
            k0 += kc;
        } while (k0 < K);
    };

    if (serial) {
        for (int64_t t = 0; t < tiles; ++t) run_tile(t);
    } else if (tiles % threads == 0) {
        // Tiles of equal work: a fixed, contiguous run per thread (dynamic claiming in chunks of 2 split 10
        // tiles 6:4).
        parallel_run([&](int ti, int nt) {
            for (int64_t t = tiles * ti / nt; t < tiles * (ti + 1) / nt; ++t) run_tile(t);
        });
    } else {
        parallel_for(tiles, [&](int64_t begin, int64_t end) {
            for (int64_t t = begin; t < end; ++t) run_tile(t);
        });
    }
}

}  // namespace gemm

using gemm::GemmKernel;

std::string_view precision_name(Precision p) { return p == Precision::F32 ? "f32" : "bf16"; }

size_t PackedWeight::layout_bytes() const {
    if (quant != QuantType::None) return size_t(n) * quant_bytes(quant, k);
    if (stored != DType::F32) return size_t(n * k) * dtype_size(stored);
    if (nr == 0) return size_t(n * k) * 4;
    return size_t((n + nr - 1) / nr * nr * k_words) * 4;
}

size_t PackedWeight::bytes() const { return data ? layout_bytes() : 0; }

Precision fast_precision(std::string* why) {
    struct Choice {
        Precision precision;
        std::string why;
    };
    static const Choice choice = []() -> Choice {
        if (const char* e = std::getenv("EASEL_FAST_PRECISION")) {
            const std::string v = e;
            if (v == "bf16") return {Precision::BF16, "bf16 kernels (EASEL_FAST_PRECISION=bf16)"};
            if (v == "f32") return {Precision::F32, "f32 kernels (EASEL_FAST_PRECISION=f32)"};
        }
        const Isa isa = active_isa();
        if (int(isa) < int(Isa::Avx512Bf16))
            return {Precision::F32, fmt::format("f32 kernels: {} has no bf16 dot product, so bf16 would only round the "
                                                "operands", isa_name(isa))};
        constexpr int64_t m = 256, n = 1024, k = 1024;
        std::vector<float> x(size_t(m * k)), w(size_t(n * k)), y(size_t(m * n));
        for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i * 2654435761u % 2001) - 1000) * 1e-3f;
        for (size_t i = 0; i < w.size(); ++i) w[i] = float(int(i * 40503u % 2001) - 1000) * 1e-3f;
        // Candidates: f32, the AVX512-BF16 dot products, and where the CPU has them (and they passed their
        // start-up check) the AMX tiles.
        struct Candidate {
            Precision precision;
            Isa isa;
            double seconds = 1e30;
        };
        std::vector<Candidate> cands = {{Precision::F32, isa}, {Precision::BF16, Isa::Avx512Bf16}};
        if (isa == Isa::Amx && gemm::gemm_kernel_amx(Precision::BF16)) cands.push_back({Precision::BF16, Isa::Amx});
        for (Candidate& c : cands) {
            auto pw = pack_linear_weight(w.data(), DType::F32, n, k, c.precision, c.isa);
            if (!pw) return {Precision::F32, "f32 kernels (the bf16 timing could not pack its weight)"};
            for (int rep = 0; rep < 3; ++rep) {
                const auto t0 = std::chrono::steady_clock::now();
                linear(x.data(), m, *pw, y.data());
                c.seconds = std::min(c.seconds, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            }
        }
        const double gf = 2.0 * double(m) * double(n) * double(k) * 1e-9;
        std::string timing = fmt::format("f32 {:.0f} GFLOP/s, avx512bf16 {:.0f} GFLOP/s", gf / cands[0].seconds,
                                         gf / cands[1].seconds);
        const Candidate* bf16 = &cands[1];
        if (cands.size() == 3) {
            timing += fmt::format(", amx {:.0f} GFLOP/s", gf / cands[2].seconds);
            // The AMX tiles run for Isa::Amx only where they beat the AVX512-BF16 dot products.
            if (cands[2].seconds <= cands[1].seconds) {
                bf16 = &cands[2];
            } else {
                gemm::g_amx_slower.store(true);
            }
        }
        timing += fmt::format(" on a {}x{}x{} GEMM", m, k, n);
        if (bf16->seconds < 0.95 * cands[0].seconds)
            return {Precision::BF16, fmt::format("bf16 kernels ({}): {}", isa_name(bf16->isa), timing)};
        return {Precision::F32, "f32 kernels, the faster here: " + timing};
    }();
    if (why) *why = choice.why;
    return choice.precision;
}

std::vector<Isa> gemm_supported_isas(Precision precision) {
    std::vector<Isa> out;
    const Isa best = best_isa(cpu_features());
    for (Isa isa : {Isa::Ref, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16, Isa::Amx}) {
        if (int(isa) > int(best)) break;
        if (precision == Precision::F32 && isa == Isa::Avx512Bf16) break;
        out.push_back(isa);
    }
    return out;
}

Result<PackedWeight> packed_linear_layout(int64_t n, int64_t k, Precision precision, Isa isa) {
    // 2^34 elements (64 GiB as f32) is far above any SD weight and keeps n*k*4 from overflowing.
    if (n <= 0 || k <= 0 || n > (int64_t(1) << 34) / k)
        return Error::invalid_argument(fmt::format("weight shape [{}, {}] is empty or too large to pack", n, k));
    if (int(isa) > int(best_isa(cpu_features())))
        return Error::unsupported(fmt::format("this CPU cannot run the {} GEMM kernel", isa_name(isa)));
    PackedWeight pw;
    pw.n = n;
    pw.k = k;
    pw.precision = precision;
    const GemmKernel* kern = gemm::gemm_kernel_for(isa, precision);
    if (kern == nullptr) {  // the reference: row-major f32, exact values (the reference rounds in BF16 mode)
        pw.isa = Isa::Ref;
        return pw;
    }
    pw.isa = kern->isa;
    pw.nr = kern->nr;
    pw.kpack = kern->kpack;
    pw.k_words = (k + kern->kpack - 1) / kern->kpack;
    return pw;
}

namespace {
// Fills rows [row0, row1) of `mem` (pw.layout_bytes(), its padding words zero) in pw's layout from w, which holds
// those rows ([row1 - row0, k] row-major). row0 is a multiple of pw.nr; row1 too, or n.
void fill_linear(const void* w, DType src_dtype, const PackedWeight& pw, void* mem, int64_t row0, int64_t row1) {
    const int64_t k = pw.k;
    if (pw.isa == Isa::Ref) {
        float* d = static_cast<float*>(mem);
        parallel_for(row1 - row0, [&](int64_t b, int64_t e) {
            gemm::load_row_as_f32(w, src_dtype, b * k, (e - b) * k, d + (row0 + b) * k);
        });
        return;
    }
    const GemmKernel* kern = gemm::gemm_kernel_for(pw.isa, pw.precision);
    const int64_t first = row0 / pw.nr, panels = (row1 - row0 + pw.nr - 1) / pw.nr;
    const int64_t panel_stride = pw.k_words * pw.nr;
    uint32_t* d = static_cast<uint32_t*>(mem);
    // Transposes [n, k] into panels one block of rows at a time; each B row is a column of w. The panel's
    // rows of w are converted to f32 first (contiguous reads), then gathered column by column.
    parallel_for(panels, [&](int64_t pb, int64_t pe) {
        std::vector<float> rows(size_t(2 * pw.nr));
        std::vector<float> src(size_t(pw.nr * k));
        for (int64_t p = first + pb; p < first + pe; ++p) {
            const int64_t j0 = p * pw.nr, cols = std::min<int64_t>(pw.nr, row1 - j0);
            gemm::load_row_as_f32(w, src_dtype, (j0 - row0) * k, cols * k, src.data());
            if (pw.kpack == 1 && kern->panel_f32) {  // the whole panel transposed at once, then rounded in place
                uint32_t* panel = d + p * panel_stride;
                kern->panel_f32(src.data(), k, cols, k, pw.nr, reinterpret_cast<float*>(panel));
                if (kern->round_bf16) kern->convert_rows(reinterpret_cast<const float*>(panel), panel_stride, 1, panel_stride, panel, panel_stride);
                continue;
            }
            for (int64_t kk = 0; kk < k; kk += pw.kpack) {
                const bool two = pw.kpack == 2 && kk + 1 < k;
                for (int64_t j = 0; j < cols; ++j) {
                    rows[size_t(j)] = src[size_t(j * k + kk)];
                    if (two) rows[size_t(pw.nr + j)] = src[size_t(j * k + kk + 1)];
                }
                gemm::pack_b_row(*kern, rows.data(), two ? rows.data() + pw.nr : nullptr, cols,
                                 d + p * panel_stride + (kk / pw.kpack) * pw.nr, panel_stride);
            }
        }
    });
}

Status check_pack_source(const void* w, DType src_dtype) {
    if (src_dtype != DType::F32 && src_dtype != DType::F16 && src_dtype != DType::BF16)
        return Error::unsupported(
            fmt::format("weight dtype is {}; matmul weights must be float32, float16 or bfloat16", dtype_name(src_dtype)));
    if (w == nullptr) return Error::invalid_argument("weight data is null");
    return ok();
}
}  // namespace

Result<PackedWeight> pack_linear_weight(const void* w, DType src_dtype, int64_t n, int64_t k, Precision precision,
                                        Isa isa) {
    EASEL_TRY(check_pack_source(w, src_dtype));
    EASEL_TRY_ASSIGN(PackedWeight pw, packed_linear_layout(n, k, precision, isa));
    const size_t bytes = pw.isa == Isa::Ref ? size_t(n * k) * 4 : pw.layout_bytes();
    std::shared_ptr<void> mem = allocate_zeroed_pages(bytes);
    if (!mem) return Error::exhausted(fmt::format("cannot allocate {} bytes for a packed weight", bytes));
    fill_linear(w, src_dtype, pw, mem.get(), 0, n);
    pw.data = std::move(mem);
    return pw;
}

Status pack_linear_weight_into(const void* w, DType src_dtype, const PackedWeight& layout, void* into) {
    return pack_linear_rows_into(w, src_dtype, layout, 0, layout.n, into);
}

Status pack_linear_rows_into(const void* rows, DType src_dtype, const PackedWeight& layout, int64_t row0, int64_t nrows,
                             void* into) {
    EASEL_TRY(check_pack_source(rows, src_dtype));
    if (into == nullptr) return Error::invalid_argument("destination is null");
    EASEL_TRY_ASSIGN(PackedWeight pw, packed_linear_layout(layout.n, layout.k, layout.precision, layout.isa));
    if (pw.isa != layout.isa || pw.nr != layout.nr || pw.kpack != layout.kpack || pw.k_words != layout.k_words)
        return Error::invalid_argument("the layout is not the one this build packs for its sizes, precision and ISA");
    const int64_t step = std::max(1, pw.nr);
    if (row0 < 0 || nrows <= 0 || row0 + nrows > pw.n || row0 % step != 0 || (nrows % step != 0 && row0 + nrows != pw.n))
        return Error::invalid_argument(fmt::format("rows [{}, {}) of a {}-row weight: the block must start on a panel "
                                                   "({} rows) and end on one or at the last row", row0, row0 + nrows,
                                                   pw.n, step));
    fill_linear(rows, src_dtype, pw, into, row0, row0 + nrows);
    return ok();
}

Result<PackedWeight> quantized_linear_weight(std::shared_ptr<const void> blocks, QuantType type, int64_t n, int64_t k,
                                             Precision precision, Isa isa) {
    if (type == QuantType::None) return Error::invalid_argument("quantized_linear_weight: the type is not quantized");
    if (blocks == nullptr) return Error::invalid_argument("weight data is null");
    const QuantInfo& q = quant_info(type);
    if (k % q.block_elems != 0)
        return Error::invalid_argument(fmt::format("a {} weight's rows ({} elements) must be whole blocks of {}", q.name,
                                                   k, q.block_elems));
    EASEL_TRY_ASSIGN(PackedWeight pw, packed_linear_layout(n, k, precision, isa));
    pw.quant = type;
    pw.data = std::move(blocks);
    return pw;
}

Result<PackedWeight> stored_linear_weight(std::shared_ptr<const void> rows, DType dtype, int64_t n, int64_t k,
                                          Precision precision, Isa isa) {
    if (dtype != DType::F16 && dtype != DType::BF16)
        return Error::invalid_argument(fmt::format("stored_linear_weight: {} rows; expected f16 or bf16", dtype_name(dtype)));
    if (rows == nullptr) return Error::invalid_argument("weight data is null");
    EASEL_TRY_ASSIGN(PackedWeight pw, packed_linear_layout(n, k, precision, isa));
    pw.stored = dtype;
    pw.data = std::move(rows);
    return pw;
}

namespace {
// How a weight kept as stored decodes: `elems` elements per unit of `unit_bytes` bytes (a quantized block, or one
// f16/bf16 value), rows of `row_bytes`.
struct StoredRows {
    const uint8_t* base = nullptr;
    size_t row_bytes = 0, unit_bytes = 0;
    int64_t elems = 1;
    QuantType quant = QuantType::None;
    DType dtype = DType::F32;

    explicit StoredRows(const PackedWeight& w) : base(static_cast<const uint8_t*>(w.data.get())) {
        if (w.quant != QuantType::None) {
            const QuantInfo& q = quant_info(w.quant);
            quant = w.quant;
            elems = q.block_elems;
            unit_bytes = q.block_bytes;
        } else {
            dtype = w.stored;
            unit_bytes = dtype_size(dtype);
        }
        row_bytes = size_t(w.k / elems) * unit_bytes;
    }
    // Units [u0, u0 + count) of row r, as count * elems floats.
    void decode(int64_t r, int64_t u0, int64_t count, float* dst) const {
        const uint8_t* src = base + size_t(r) * row_bytes + size_t(u0) * unit_bytes;
        if (quant != QuantType::None) {
            dequantize(quant, src, dst, size_t(count));
            return;
        }
        gemm::load_row_as_f32(src, dtype, 0, count, dst);
    }
};

// y = x · Wᵀ for a W kept as stored (quantized blocks, or f16/bf16 rows): each B block (k0..k0+kc, columns
// n0..n0+nc) is decoded from the stored rows into scratch, one panel of nr rows at a time, and laid out as the
// kernel's panels; gemm_run builds each block once.
void linear_stored(const float* x, int64_t m, const PackedWeight& w, float* y, const LinearOptions& options) {
    const StoredRows stored(w);
    if (w.isa == Isa::Ref) {
        std::vector<float> f(size_t(w.n * w.k));
        parallel_for(w.n, [&](int64_t b, int64_t e) {
            for (int64_t r = b; r < e; ++r) stored.decode(r, 0, w.k / stored.elems, f.data() + r * w.k);
        });
        linear_f32_ref(x, m, f.data(), w.n, w.k, y, options, w.precision);
        return;
    }
    const GemmKernel* kern = gemm::gemm_kernel_for(w.isa, w.precision);
    EASEL_ASSERT(kern != nullptr && kern->nr == w.nr && kern->kpack == w.kpack, "PackedWeight layout mismatch");
    const int64_t nr = kern->nr, kp = kern->kpack, be = stored.elems;
    gemm::GemmB b;
    b.build_once = true;
    b.build = [&](int64_t k0, int64_t kc, int64_t n0, int64_t nc, uint32_t* dst) {
        const int64_t blk0 = k0 / be, blk1 = (k0 + kc + be - 1) / be;
        const int64_t span = (blk1 - blk0) * be, off = k0 - blk0 * be;
        const int64_t kw = (kc + kp - 1) / kp;
        if (w.stored == DType::F16 && kern->panel_f16) {  // straight from the stored rows into each panel
            const uint16_t* h = static_cast<const uint16_t*>(w.data.get());
            for (int64_t p0 = 0; p0 < nc; p0 += nr)
                kern->panel_f16(h + (n0 + p0) * w.k + k0, w.k, std::min(nr, nc - p0), kc, nr,
                                reinterpret_cast<float*>(dst + (p0 / nr) * kw * nr));
            return;
        }
        float* rows = reinterpret_cast<float*>(gemm::thread_scratch(5, size_t(nr * span + 2 * nr)));
        float* g = rows + nr * span;
        for (int64_t p0 = 0; p0 < nc; p0 += nr) {
            const int64_t cols = std::min(nr, nc - p0);
            for (int64_t j = 0; j < cols; ++j) stored.decode(n0 + p0 + j, blk0, blk1 - blk0, rows + j * span);
            uint32_t* panel = dst + (p0 / nr) * kw * nr;
            if (kern->pack_row == nullptr) {  // f32 words as they are: a plain transpose of the decoded rows
                float* out = reinterpret_cast<float*>(panel);
                for (int64_t j = 0; j < cols; ++j) {
                    const float* src = rows + j * span + off;
                    for (int64_t kk = 0; kk < kc; ++kk) out[kk * nr + j] = src[kk];
                }
                for (int64_t j = cols; j < nr; ++j)
                    for (int64_t kk = 0; kk < kc; ++kk) out[kk * nr + j] = 0.0f;
                continue;
            }
            for (int64_t kk = 0; kk < kc; kk += kp) {
                const bool two = kp == 2 && kk + 1 < kc;
                for (int64_t j = 0; j < cols; ++j) {
                    g[j] = rows[j * span + off + kk];
                    if (two) g[nr + j] = rows[j * span + off + kk + 1];
                }
                gemm::pack_b_row(*kern, g, two ? g + nr : nullptr, cols, panel + (kk / kp) * nr, kw * nr);
            }
        }
    };
    gemm::GemmA a;
    a.f32 = x;
    a.row_stride = options.ldx ? options.ldx : w.k;
    gemm::GemmEpilogue ep;
    ep.cin = options.residual;
    ep.ldcin = options.ld_residual ? options.ld_residual : w.n;
    ep.bias_col = options.bias;
    gemm::gemm_run(*kern, m, w.n, w.k, a, b, y, options.ldy ? options.ldy : w.n, ep);
}
}  // namespace

void linear(const float* x, int64_t m, const PackedWeight& w, float* y, const LinearOptions& options) {
    EASEL_ASSERT(!w.empty(), "linear() called with an empty PackedWeight");
    if (m <= 0) return;
    if (w.quant != QuantType::None || w.stored != DType::F32) {
        linear_stored(x, m, w, y, options);
        return;
    }
    if (w.isa == Isa::Ref) {
        linear_f32_ref(x, m, static_cast<const float*>(w.data.get()), w.n, w.k, y, options, w.precision);
        return;
    }
    const GemmKernel* kern = gemm::gemm_kernel_for(w.isa, w.precision);
    EASEL_ASSERT(kern != nullptr && kern->nr == w.nr && kern->kpack == w.kpack, "PackedWeight layout mismatch");
    gemm::GemmA a;
    a.f32 = x;
    a.row_stride = options.ldx ? options.ldx : w.k;
    gemm::GemmB b;
    b.packed = static_cast<const uint32_t*>(w.data.get());
    b.panel_stride = w.k_words * w.nr;
    gemm::GemmEpilogue ep;
    ep.cin = options.residual;
    ep.ldcin = options.ld_residual ? options.ld_residual : w.n;
    ep.bias_col = options.bias;
    gemm::gemm_run(*kern, m, w.n, w.k, a, b, y, options.ldy ? options.ldy : w.n, ep);
}

void matmul_f32(const MatmulArgs& g, Isa isa) {
    if (g.batch <= 0 || g.m <= 0 || g.n <= 0) return;
    const GemmKernel* kern =
        int(isa) <= int(best_isa(cpu_features())) ? gemm::gemm_kernel_for(isa, g.precision) : nullptr;
    if (kern == nullptr) {
        matmul_f32_ref(g);
        return;
    }
    const int64_t c_bs = g.c_batch_stride ? g.c_batch_stride : g.m * g.n;
    const int64_t c_rs = g.c_row_stride ? g.c_row_stride : g.n;
    auto one = [&](int64_t bi) {
        gemm::GemmA a;
        a.f32 = g.a + bi * g.a_batch_stride;
        a.row_stride = g.a_row_stride;
        a.col_stride = g.a_col_stride;
        const float* bsrc = g.b + bi * g.b_batch_stride;
        gemm::GemmB b;
        b.build = [&](int64_t k0, int64_t kc, int64_t n0, int64_t nc, uint32_t* dst) {
            const int64_t kw = (kc + kern->kpack - 1) / kern->kpack;
            float* rows = reinterpret_cast<float*>(gemm::thread_scratch(3, size_t(2 * nc)));
            for (int64_t kk = 0; kk < kc; kk += kern->kpack) {
                const bool two = kern->kpack == 2 && kk + 1 < kc;
                for (int r = 0; r < (two ? 2 : 1); ++r) {
                    const float* src = bsrc + (k0 + kk + r) * g.b_row_stride + n0 * g.b_col_stride;
                    for (int64_t j = 0; j < nc; ++j) rows[r * nc + j] = src[j * g.b_col_stride];
                }
                gemm::pack_b_row(*kern, rows, two ? rows + nc : nullptr, nc, dst + (kk / kern->kpack) * kern->nr,
                                 kw * kern->nr);
            }
        };
        gemm::GemmEpilogue ep;
        ep.alpha = g.alpha;
        float* c = g.c + bi * c_bs;
        if (g.accumulate) {
            ep.cin = c;
            ep.ldcin = c_rs;
        }
        gemm::gemm_run(*kern, g.m, g.n, g.k, a, b, c, c_rs, ep);
    };
    // Small products (per-head attention) are spread over the batch; big ones are threaded inside.
    if (g.batch > 1 && 2.0 * double(g.m) * double(g.n) * double(g.k) < 4e6) {
        parallel_for(g.batch, [&](int64_t b0, int64_t b1) {
            for (int64_t bi = b0; bi < b1; ++bi) one(bi);
        });
    } else {
        for (int64_t bi = 0; bi < g.batch; ++bi) one(bi);
    }
}

}  // namespace easel
