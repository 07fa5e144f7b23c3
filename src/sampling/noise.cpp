#include "sampling/noise.h"

#include <cstring>

namespace easel {

Tensor PerSampleNoise::draw(const Tensor& x, float sigma, float sigma_next, bool sde) {
    // The batch size is fixed by the caller when it builds the sources; a latent of another batch size is a bug.
    EASEL_ASSERT(x.rank() >= 1 && x.size(0) == int64_t(sources_.size()),
                 "PerSampleNoise: latent batch size differs from the number of generators");
    Tensor out = Tensor::empty(x.shape(), DType::F32);
    std::vector<int64_t> item_dims = x.shape().to_vector();
    item_dims[0] = 1;
    const Shape item_shape(item_dims);
    const Tensor like = Tensor::empty(item_shape, DType::F32);
    const int64_t per = item_shape.numel();
    for (size_t i = 0; i < sources_.size(); ++i) {
        Tensor n = sde ? sources_[i]->sde_noise(like, sigma, sigma_next) : sources_[i]->randn_like(like);
        Tensor c = n.contiguous();
        EASEL_ASSERT(c.numel() == per && c.dtype() == DType::F32, "PerSampleNoise: a source returned another shape");
        std::memcpy(out.data<float>() + int64_t(i) * per, c.data<float>(), size_t(per) * sizeof(float));
    }
    return out;
}

}  // namespace easel
