// Concatenation along a dim: for each outer index, each part contributes one contiguous run of
// part.shape[dim] * inner floats, copied with memcpy (libc's copy is already vectorised for every ISA, so this
// op has no per-ISA variants). Memory-bound: 8 bytes moved per element.
#include <algorithm>
#include <cstring>

#include "core/thread_pool.h"
#include "kernels/elementwise.h"

namespace easel {

void concat_f32(const std::vector<ConcatPart>& parts, int dim, float* out) {
    auto out_shape = concat_shape(parts, dim);
    EASEL_ASSERT(out_shape.has_value(), out_shape.error().to_string());
    const Shape& os = *out_shape;
    const int d = dim < 0 ? dim + os.rank() : dim;
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < d; ++i) outer *= os[i];
    for (int i = d + 1; i < os.rank(); ++i) inner *= os[i];
    const int64_t out_run = os[d] * inner;
    const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, out_run));
    parallel_for(outer, [&](int64_t begin, int64_t end) {
        for (int64_t o = begin; o < end; ++o) {
            float* dst = out + o * out_run;
            for (const ConcatPart& part : parts) {
                const int64_t run = part.shape[d] * inner;
                if (run > 0) std::memcpy(dst, part.data + o * run, size_t(run) * sizeof(float));
                dst += run;
            }
        }
    }, grain);
}

}  // namespace easel
