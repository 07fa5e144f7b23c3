// conv2d as one GEMM per image (kernels/conv2d.h): Y[Cout, P] = W[Cout, K] · im2col(X)[K, P], P = Ho*Wo,
// K = Cin*kh*kw in PyTorch's weight order (ci, ky, kx) for f32 words, or (ky, kx, channel pair) for bf16 pair
// words (so a pair word is two channels at one pixel, see conv2d()). The packed weight is the microkernel's
// broadcast (A) operand; the im2col columns are written straight into B panels by the driver's build
// callback, one (k block) x (tile of output pixels) at a time, so no full im2col is ever held.
//
// Napkin maths, 3x3 320->320 at 64x64: 2*320*4096*2880 = 7.5 GFLOP per image; each im2col value is built once
// per tile and used by all 320 output channels (640 FLOP per 4-byte copy), so the build is a few percent.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "core/allocator.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "kernels/conv2d.h"
#include "kernels/cpu/gemm_kernels.h"

namespace easel {
namespace {

// The largest im2col (B) that conv2d builds whole, once per image, rather than per tile (see conv2d()).
constexpr size_t kPrebuildBytes = size_t(8) << 20;
// The largest zero-bordered f32 copy of an image conv2d makes for the implicit GEMM of the f32 kernels (bigger
// images, the VAE's 128 and 256 channels at 512x512 and 256x256, build im2col tiles instead).
constexpr size_t kDirectF32Bytes = size_t(64) << 20;
// The largest f16/bf16 weight kept as stored that conv2d widens whole, once per call, into the packed f32 words
// (then it runs exactly as a packed weight); a larger one is widened per tile, a k block of a row tile at a time.
constexpr size_t kWidenWholeBytes = size_t(16) << 20;

// One im2col row of 32-bit words for output pixels [p0, p0 + count). Word row k reads plane `plane` at tap
// (ky, kx): f32 layout (PyTorch weight order): k = plane * taps + tap; bf16 pair layout (planes are channel
// pairs): k = tap * planes + plane. Out-of-image taps are zero words.
struct Im2col {
    const uint32_t* planes;  // [num_planes, h, w]
    int64_t num_planes, h, w, kh, kw, wo, stride, pad;
    bool tap_major;

    void row(int64_t k, int64_t p0, int64_t count, uint32_t* out) const {
        const int64_t taps = kh * kw;
        const int64_t plane = tap_major ? k % num_planes : k / taps;
        const int64_t tap = tap_major ? k / num_planes : k % taps;
        const int64_t ky = tap / kw, kx = tap % kw;
        int64_t p = p0;
        const int64_t end = p0 + count;
        while (p < end) {
            const int64_t oy = p / wo, ox0 = p % wo;
            const int64_t seg = std::min(wo - ox0, end - p);
            const int64_t iy = oy * stride + ky - pad;
            if (iy < 0 || iy >= h) {
                std::fill(out, out + seg, 0u);
            } else {
                const uint32_t* src = planes + (plane * h + iy) * w;
                if (stride == 1) {
                    // Input columns ix0 .. ix0 + seg; zeros where they fall outside [0, w).
                    const int64_t ix0 = ox0 + kx - pad;
                    const int64_t lo = std::clamp<int64_t>(-ix0, 0, seg);
                    const int64_t hi = std::clamp<int64_t>(w - ix0, lo, seg);
                    std::fill(out, out + lo, 0u);
                    std::memcpy(out + lo, src + ix0 + lo, size_t(hi - lo) * 4);
                    std::fill(out + hi, out + seg, 0u);
                } else {
                    for (int64_t i = 0; i < seg; ++i) {
                        const int64_t ix = (ox0 + i) * stride + kx - pad;
                        // memcpy: the planes may be f32 objects read as words.
                        if (ix >= 0 && ix < w) {
                            std::memcpy(out + i, src + ix, 4);
                        } else {
                            out[i] = 0u;
                        }
                    }
                }
            }
            out += seg;
            p += seg;
        }
    }

    // Row k for output pixels [p0, p0 + nc), p0 a multiple of nr, written into panels of nr words (the part of
    // panel j at out + j * panel_stride), zeros past nc. A whole panel in one output row and inside the image
    // (stride 1) is one copy of nr words; the others go through row(). One row() call per panel (a division, the
    // clamps, two fills and a library memcpy for 64 bytes) was 8% of an SD 1.5 step and decode on Zen 3.
    void panel_row(int64_t k, int64_t p0, int64_t nc, int64_t nr, uint32_t* out, int64_t panel_stride) const {
        const int64_t taps = kh * kw;
        const int64_t plane = tap_major ? k % num_planes : k / taps;
        const int64_t tap = tap_major ? k / num_planes : k % taps;
        const int64_t ky = tap / kw, kx = tap % kw;
        int64_t oy = p0 / wo, ox0 = p0 % wo;
        for (int64_t j0 = 0; j0 < nc; j0 += nr, out += panel_stride) {
            const int64_t lanes = std::min(nr, nc - j0);
            const int64_t iy = oy * stride + ky - pad, ix0 = ox0 + kx - pad;
            if (stride == 1 && lanes == nr && ox0 + nr <= wo && iy >= 0 && iy < h && ix0 >= 0 && ix0 + nr <= w) {
                const uint32_t* src = planes + (plane * h + iy) * w + ix0;
                if (nr == 16) std::memcpy(out, src, 64);  // a constant size: inlined as vector moves
                else std::memcpy(out, src, size_t(nr) * 4);
            } else {
                row(k, p0 + j0, lanes, out);
                std::fill(out + lanes, out + nr, 0u);
            }
            for (ox0 += nr; ox0 >= wo; ox0 -= wo) ++oy;
        }
    }
};

}  // namespace

Result<PackedConv2dWeight> packed_conv2d_layout(int64_t cout, int64_t cin, int64_t kh, int64_t kw, Precision precision,
                                                Isa isa) {
    const int64_t lim = int64_t(1) << 20;  // per dimension; the product is bounded below
    if (cout <= 0 || cin <= 0 || kh <= 0 || kw <= 0 || cout > lim || cin > lim || kh > 64 || kw > 64 ||
        cout * cin * kh * kw > (int64_t(1) << 34))
        return Error::invalid_argument(
            fmt::format("conv2d weight shape [{}, {}, {}, {}] is empty or too large", cout, cin, kh, kw));
    if (int(isa) > int(best_isa(cpu_features())))
        return Error::unsupported(fmt::format("this CPU cannot run the {} conv2d kernel", isa_name(isa)));
    PackedConv2dWeight pw;
    pw.cout = cout;
    pw.cin = cin;
    pw.kh = kh;
    pw.kw = kw;
    pw.precision = precision;
    const int64_t K = pw.k(), taps = kh * kw;
    const gemm::GemmKernel* kern = gemm::gemm_kernel_for(isa, precision);
    pw.isa = kern ? kern->isa : Isa::Ref;
    pw.kpack = kern ? kern->kpack : 1;
    const int64_t cpairs = (cin + 1) / 2;
    pw.k_words = pw.kpack == 2 ? taps * cpairs : K;
    // Rows padded to 16 words (64 bytes); padding words (and the odd channel's missing partner) are zero.
    pw.ld_words = kern ? (pw.k_words + 15) / 16 * 16 : K;
    return pw;
}

namespace {
// Fills rows (output channels) [row0, row1) of `mem` (pw.layout_bytes(), its padding words zero) in pw's layout
// from w, which holds those rows ([row1 - row0, cin, kh, kw]).
void fill_conv2d(const void* w, DType src_dtype, const PackedConv2dWeight& pw, void* mem, int64_t row0, int64_t row1) {
    const int64_t K = pw.k(), taps = pw.kh * pw.kw, cin = pw.cin;
    const gemm::GemmKernel* kern = gemm::gemm_kernel_for(pw.isa, pw.precision);
    const int64_t cpairs = (cin + 1) / 2;
    uint32_t* words = static_cast<uint32_t*>(mem);
    const bool round = kern && kern->round_bf16;
    const bool plain = pw.kpack == 1 && !round;  // f32 words in PyTorch order: widened straight into the row
    parallel_for(row1 - row0, [&](int64_t b, int64_t e) {
        std::vector<float> src(plain ? 0 : static_cast<size_t>(K));
        for (int64_t i = b; i < e; ++i) {
            uint32_t* row = words + (row0 + i) * pw.ld_words;
            if (plain) {
                gemm::load_row_as_f32(w, src_dtype, i * K, K, reinterpret_cast<float*>(row));
                std::fill(row + K, row + pw.ld_words, 0u);  // zero already, except in scratch
                continue;
            }
            gemm::load_row_as_f32(w, src_dtype, i * K, K, src.data());  // k = ci * taps + tap, PyTorch order
            if (pw.kpack == 2) {  // word (tap, channel pair) = bf16(2c) | bf16(2c + 1) << 16; odd cin: partner 0
                for (int64_t c = 0; c < cpairs; ++c) {
                    const float* even = src.data() + 2 * c * taps;
                    const float* odd = 2 * c + 1 < cin ? even + taps : nullptr;
                    for (int64_t tap = 0; tap < taps; ++tap)
                        row[tap * cpairs + c] = uint32_t(f32_to_bf16(even[tap])) |
                                                (odd ? uint32_t(f32_to_bf16(odd[tap])) << 16 : 0u);
                }
            } else if (round && kern->convert_rows) {  // the kernel's own rounding (SIMD), bit for bit f32_to_bf16's
                kern->convert_rows(src.data(), K, 1, K, row, pw.ld_words);
            } else {
                for (int64_t k = 0; k < K; ++k) row[k] = uint32_t(f32_to_bf16(src[size_t(k)])) << 16;
            }
            if (pw.kpack == 1) std::fill(row + K, row + pw.ld_words, 0u);
        }
    });
}

Status check_conv_source(const void* w, DType src_dtype) {
    if (src_dtype != DType::F32 && src_dtype != DType::F16 && src_dtype != DType::BF16)
        return Error::unsupported(
            fmt::format("weight dtype is {}; conv2d weights must be float32, float16 or bfloat16", dtype_name(src_dtype)));
    if (w == nullptr) return Error::invalid_argument("conv2d weight data is null");
    return ok();
}
}  // namespace

Result<PackedConv2dWeight> pack_conv2d_weight(const void* w, DType src_dtype, int64_t cout, int64_t cin,
                                              int64_t kh, int64_t kw, Precision precision, Isa isa) {
    EASEL_TRY(check_conv_source(w, src_dtype));
    EASEL_TRY_ASSIGN(PackedConv2dWeight pw, packed_conv2d_layout(cout, cin, kh, kw, precision, isa));
    const size_t bytes = pw.layout_bytes();
    std::shared_ptr<void> mem = allocate_zeroed_pages(bytes);  // zero: the padding words stay so
    if (!mem) return Error::exhausted(fmt::format("cannot allocate {} bytes for a conv2d weight", bytes));
    fill_conv2d(w, src_dtype, pw, mem.get(), 0, cout);
    pw.data = std::move(mem);
    return pw;
}

Result<PackedConv2dWeight> stored_conv2d_weight(std::shared_ptr<const void> w, DType dtype, int64_t cout, int64_t cin,
                                                int64_t kh, int64_t kw, Precision precision, Isa isa) {
    if (dtype != DType::F16 && dtype != DType::BF16)
        return Error::invalid_argument(
            fmt::format("stored_conv2d_weight: {} values; expected float16 or bfloat16", dtype_name(dtype)));
    if (w == nullptr) return Error::invalid_argument("conv2d weight data is null");
    EASEL_TRY_ASSIGN(PackedConv2dWeight pw, packed_conv2d_layout(cout, cin, kh, kw, precision, isa));
    if (pw.kpack != 1)
        return Error::unsupported(fmt::format("the {} conv2d kernel takes bf16 channel pairs; pack the weight instead",
                                              isa_name(pw.isa)));
    pw.stored = dtype;
    pw.data = std::move(w);
    return pw;
}

Status pack_conv2d_weight_into(const void* w, DType src_dtype, const PackedConv2dWeight& layout, void* into) {
    return pack_conv2d_rows_into(w, src_dtype, layout, 0, layout.cout, into);
}

Status pack_conv2d_rows_into(const void* rows, DType src_dtype, const PackedConv2dWeight& layout, int64_t row0,
                             int64_t nrows, void* into) {
    EASEL_TRY(check_conv_source(rows, src_dtype));
    if (into == nullptr) return Error::invalid_argument("destination is null");
    EASEL_TRY_ASSIGN(PackedConv2dWeight pw, packed_conv2d_layout(layout.cout, layout.cin, layout.kh, layout.kw,
                                                                 layout.precision, layout.isa));
    if (pw.isa != layout.isa || pw.kpack != layout.kpack || pw.k_words != layout.k_words || pw.ld_words != layout.ld_words)
        return Error::invalid_argument("the layout is not the one this build packs for its sizes, precision and ISA");
    if (row0 < 0 || nrows <= 0 || row0 + nrows > pw.cout)
        return Error::invalid_argument(fmt::format("output channels [{}, {}) of a conv2d weight with {}", row0,
                                                   row0 + nrows, pw.cout));
    fill_conv2d(rows, src_dtype, pw, into, row0, row0 + nrows);
    return ok();
}

void conv2d(const float* x, int64_t batch, int64_t h, int64_t w, const PackedConv2dWeight& wt, float* y,
            const Conv2dOptions& o) {
    EASEL_ASSERT(!wt.empty(), "conv2d() called with an empty PackedConv2dWeight");
    const auto hw = conv2d_output_hw(h, w, wt.kh, wt.kw, o);
    EASEL_ASSERT(hw.has_value(), "conv2d: " + hw.error().to_string());
    if (wt.isa == Isa::Ref) {
        const float* wf = static_cast<const float*>(wt.data.get());
        std::vector<float> wide;
        if (wt.stored != DType::F32) {  // the reference runs on the whole weight, widened
            wide.resize(size_t(wt.cout * wt.k()));
            gemm::load_row_as_f32(wt.data.get(), wt.stored, 0, wt.cout * wt.k(), wide.data());
            wf = wide.data();
        }
        conv2d_f32_ref(x, batch, wt.cin, h, w, wf, wt.cout, wt.kh, wt.kw, y, o, wt.precision);
        return;
    }
    const gemm::GemmKernel* kern = gemm::gemm_kernel_for(wt.isa, wt.precision);
    EASEL_ASSERT(kern != nullptr, "PackedConv2dWeight has no kernel");
    const int64_t ho = hw->first, wo = hw->second;
    const int64_t P = ho * wo, plane = h * w;
    const int kp = kern->kpack;
    const int64_t nr = kern->nr;

    // BF16 pairs: the image is converted once per call into channel-pair planes (word = bf16 of channels 2c and
    // 2c+1 at one pixel), half the size of the f32 input, so that every im2col row is again a plain copy.
    // Slot 4 of the calling thread's scratch (gemm_run's workers use 0-3): reused across calls, never zeroed
    // (pack_row writes every word), so a 512x512 VAE conv does not fault in 64 MiB of fresh pages each time.
    //
    // Implicit GEMM (no im2col at all): for a stride-1 3x3 (padding 1) or 1x1 (padding 0) convolution whose output
    // rows are whole panels (wo a multiple of nr: the VAE's 64..512 and the UNet's 64-wide level), the pair planes
    // get a one-pixel zero border, and B row (tap, pair) of a panel is then simply nr consecutive words of a pair
    // plane, shifted by the tap: the microkernel reads them where they are.
    // The f32 kernels (kpack 1, AVX2) do the same on f32 planes: a zero-bordered copy of the image for a 3x3 (up to
    // kDirectF32Bytes), the image itself for a 1x1; B row (channel, tap) in PyTorch's order. This took the im2col
    // tiles' building out: 12.7% of the samples of SD 1.5's 320x64x64 and 640x32x32 convs (perf, Zen 3).
    const bool shape_ok = kern->ukernel_rows && o.stride == 1 && wt.kh == wt.kw &&
                          ((wt.kh == 3 && o.padding == 1) || (wt.kh == 1 && o.padding == 0)) &&
                          o.extra_pad_bottom == 0 && o.extra_pad_right == 0 && wo % nr == 0;
    const bool bordered = !(kp == 1 && wt.kh == 1);  // a 1x1 f32 conv reads the image where it is
    const bool direct = shape_ok && (kp == 2 || (kern->pack_row == nullptr &&
                                                 (!bordered || size_t(wt.cin * (h + 2) * (w + 2)) * 4 <= kDirectF32Bytes)));
    const int64_t pw = direct && bordered ? w + 2 : w, plane_p = direct && bordered ? (h + 2) * (w + 2) : plane;
    const int64_t cpairs = (wt.cin + 1) / 2;
    uint32_t* pairs = kp == 2                 ? gemm::thread_scratch(4, size_t(cpairs * plane_p))
                      : direct && bordered ? gemm::thread_scratch(4, size_t(wt.cin * plane_p))
                                           : nullptr;

    // Small images (the UNet's 16x16 and 8x8 levels, the stride-2 downsamplers) have few output pixels, so
    // gemm_run splits the output channels into several row tiles to keep every thread busy, and each row tile
    // built its own copy of each B block: at 8x8, 1280 channels, 8 copies of every im2col row, ~35% of the
    // conv's time (perf). When the whole B (every word row, every panel) is small, it is built once per image
    // instead, shared by all row tiles. Slot 5 of the calling thread's scratch, read by every worker.
    const int64_t panels = (P + nr - 1) / nr, panel_words = wt.k_words * nr;
    const bool prebuild = !direct && size_t(panels * panel_words) * 4 <= kPrebuildBytes;
    uint32_t* full_b = prebuild ? gemm::thread_scratch(5, size_t(panels * panel_words)) : nullptr;

    // A weight kept as f16/bf16: a small one (the VAE's, most of the UNet's) is widened whole into the packed
    // words once per call, slot 6 of the calling thread's scratch (a 16 MiB weight costs 1/(2 * pixels) of the
    // conv's FLOPs); per tile, with the im2col tiles beside it in L2, it was 0.78x packed at the VAE's 128
    // channels at 512x512 (Zen 3). A larger one (the 1280-channel levels) is widened per tile by gemm_run.
    uint32_t* widened = nullptr;
    if (wt.stored != DType::F32 && wt.layout_bytes() * 2 <= kWidenWholeBytes) {
        widened = gemm::thread_scratch(6, size_t(wt.cout * wt.ld_words));
        fill_conv2d(wt.data.get(), wt.stored, wt, widened, 0, wt.cout);
    }

    for (int64_t n = 0; n < batch; ++n) {
        const float* xn = x + n * wt.cin * plane;
        Im2col im{reinterpret_cast<const uint32_t*>(xn), wt.cin, h, w, wt.kh, wt.kw, wo, o.stride, o.padding, false};
        if (kp == 2) {
            parallel_for(cpairs, [&](int64_t b, int64_t e) {
                for (int64_t c = b; c < e; ++c) {
                    const float* even = xn + 2 * c * plane;
                    const float* odd = 2 * c + 1 < wt.cin ? xn + (2 * c + 1) * plane : nullptr;
                    if (!direct) {
                        kern->pack_row(even, odd, plane, pairs + c * plane);
                        continue;
                    }
                    uint32_t* dst = pairs + c * plane_p;
                    std::fill(dst, dst + pw, 0u);                      // top border row
                    std::fill(dst + (h + 1) * pw, dst + (h + 2) * pw, 0u);  // bottom border row
                    for (int64_t iy = 0; iy < h; ++iy) {
                        uint32_t* row = dst + (iy + 1) * pw;
                        row[0] = row[w + 1] = 0u;
                        kern->pack_row(even + iy * w, odd ? odd + iy * w : nullptr, w, row + 1);
                    }
                }
            });
            im = Im2col{pairs, cpairs, h, w, wt.kh, wt.kw, wo, o.stride, o.padding, true};
        } else if (direct && bordered) {  // f32 planes with a one-pixel zero border
            parallel_for(wt.cin, [&](int64_t b, int64_t e) {
                for (int64_t c = b; c < e; ++c) {
                    uint32_t* dst = pairs + c * plane_p;
                    std::fill(dst, dst + pw, 0u);
                    std::fill(dst + (h + 1) * pw, dst + (h + 2) * pw, 0u);
                    for (int64_t iy = 0; iy < h; ++iy) {
                        uint32_t* row = dst + (iy + 1) * pw;
                        row[0] = row[w + 1] = 0u;
                        std::memcpy(row + 1, xn + (c * h + iy) * w, size_t(w) * 4);
                    }
                }
            });
        }
        gemm::GemmA a;
        if (wt.stored != DType::F32 && !widened) {  // kpack 1: the stored (ci, ky, kx) rows are the words' order
            a.half = wt.data.get();
            a.half_dtype = wt.stored;
            a.half_ld = wt.k();
        } else {
            a.words = widened ? widened : static_cast<const uint32_t*>(wt.data.get());
            a.ld_words = wt.ld_words;
        }
        // BF16 mode without bf16 hardware: one im2col row's f32 words (nc columns across its panels) rounded in place.
        auto round_row = [&](uint32_t* row_base, int64_t nc, int64_t panel_stride) {
            if (kp != 1 || !kern->pack_row) return;
            for (int64_t j0 = 0; j0 < nc; j0 += nr) {
                uint32_t* d = row_base + (j0 / nr) * panel_stride;
                kern->pack_row(reinterpret_cast<const float*>(d), nullptr, std::min(nr, nc - j0), d);
            }
        };
        gemm::GemmB b;
        if (prebuild) {
            parallel_for(wt.k_words, [&](int64_t r0, int64_t r1) {
                for (int64_t r = r0; r < r1; ++r) {
                    im.panel_row(r, 0, P, nr, full_b + r * nr, panel_words);
                    round_row(full_b + r * nr, P, panel_words);
                }
            });
            b.packed = full_b;
            b.panel_stride = panel_words;
        } else if (direct && kp == 1) {
            // Word row k = channel * taps + tap (PyTorch's order, the weight's); panel column n0 = output pixel
            // (oy, ox); input pixel (oy + ky - pad + bo, ox + kx - pad + bo), bo the border (0 for a 1x1 read in
            // place from the image).
            const int64_t pad = o.padding, kdim = wt.kw, taps = wt.kh * wt.kw, bo = bordered ? 1 : 0;
            const uint32_t* planes = bordered ? pairs : reinterpret_cast<const uint32_t*>(xn);
            b.rows = [=](int64_t kw0, int64_t kwn, int64_t n0, const uint32_t** out) {
                const int64_t oy = n0 / wo, ox = n0 % wo;
                int64_t c = kw0 / taps, tap = kw0 % taps;
                for (int64_t r = 0; r < kwn; ++r) {
                    const int64_t ky = tap / kdim, kx = tap % kdim;
                    out[r] = planes + c * plane_p + (oy + ky - pad + bo) * pw + (ox + kx - pad + bo);
                    if (++tap == taps) {
                        tap = 0;
                        ++c;
                    }
                }
            };
        } else if (direct) {
            // Word row k = tap * cpairs + pair (the packed weight's order); panel column n0 = output pixel
            // (oy, ox); padded input pixel (oy + ky - pad + 1, ox + kx - pad + 1).
            const int64_t pad = o.padding, kdim = wt.kw;
            b.rows = [=](int64_t kw0, int64_t kwn, int64_t n0, const uint32_t** out) {
                const int64_t oy = n0 / wo, ox = n0 % wo;
                int64_t tap = kw0 / cpairs, c = kw0 % cpairs;
                for (int64_t r = 0; r < kwn; ++r) {
                    const int64_t ky = tap / kdim, kx = tap % kdim;
                    out[r] = pairs + c * plane_p + (oy + ky - pad + 1) * pw + (ox + kx - pad + 1);
                    if (++c == cpairs) {
                        c = 0;
                        ++tap;
                    }
                }
            };
        } else {
            b.build = [&](int64_t k0, int64_t kc, int64_t n0, int64_t nc, uint32_t* dst) {
                const int64_t rows = (kc + kp - 1) / kp, panel_stride = rows * nr;
                for (int64_t r = 0; r < rows; ++r) {
                    im.panel_row(k0 / kp + r, n0, nc, nr, dst + r * nr, panel_stride);
                    round_row(dst + r * nr, nc, panel_stride);
                }
            };
        }
        gemm::GemmEpilogue ep;
        ep.bias_row = o.bias;
        if (o.residual) {
            ep.cin = o.residual + n * wt.cout * P;
            ep.ldcin = P;
        }
        gemm::gemm_run(*kern, wt.cout, P, wt.k_words * kp, a, b, y + n * wt.cout * P, P, ep);
    }
}

}  // namespace easel
