// NoiseSource: where samplers get fresh Gaussian noise after the initial latent (ancestral and SDE steps).
//
//   TorchCpuGenerator gen(seed);
//   Tensor x = gen.randn({1, 4, 64, 64});    // initial noise: the same stream ...
//   TorchCpuNoise noise(gen);                // ... continues here, as torch.randn_like(x) after manual_seed
//   EASEL_TRY_ASSIGN(x, sample(SamplerKind::EulerAncestral, denoise, scale(x, sigmas[0]), sigmas, noise));
//
// Every draw is a plain randn of the latent's shape from one generator, in the order the sampler asks. That is
// what k-diffusion's default_noise_sampler (torch.randn_like) gives with a seeded global generator, and what
// AUTOMATIC1111 does for ancestral samplers. For the SDE samplers (dpm++2m_sde, dpm++sde) k-diffusion defaults to
// a torchsde BrownianTreeNoiseSampler instead; we do not reproduce that tree. sde_noise() is the hook where one
// would go: it receives the interval (sigma, sigma_next) the tree is queried on, and today returns randn_like.
// Our golden scripts pass k-diffusion a noise_sampler that draws randn from the same torch generator, so
// reference and engine agree draw for draw.
//
// Batches: AUTOMATIC1111 (ImageRNG) and diffusers (a list of generators) give every image of a batch its own
// generator and stack one draw per image. PerSampleNoise does that over any per-image sources; a single
// TorchCpuNoise over a [N, ...] latent instead draws one randn of the whole batch shape (what torch.randn_like
// does with one generator) and so gives other images for N > 1.
#pragma once

#include <vector>

#include "core/tensor.h"
#include "sampling/rng_philox.h"
#include "sampling/rng_torch_cpu.h"

namespace easel {

class NoiseSource {
public:
    virtual ~NoiseSource() = default;
    // Standard normal noise with x's shape (F32, contiguous).
    virtual Tensor randn_like(const Tensor& x) = 0;
    // Noise for an SDE step over (sigma, sigma_next): a Brownian-tree sampler would condition on the interval.
    virtual Tensor sde_noise(const Tensor& x, float sigma, float sigma_next) { return randn_like(x); }
};

// torch CPU generator ("--rng cpu"): continues `gen`, which the caller keeps alive.
class TorchCpuNoise final : public NoiseSource {
public:
    explicit TorchCpuNoise(TorchCpuGenerator& gen) : gen_(gen) {}
    Tensor randn_like(const Tensor& x) override { return gen_.randn(x.shape()); }

private:
    TorchCpuGenerator& gen_;
};

// AUTOMATIC1111's "GPU" Philox generator ("--rng cuda"): each draw advances the offset by one.
class PhiloxNoise final : public NoiseSource {
public:
    explicit PhiloxNoise(PhiloxGenerator& gen) : gen_(gen) {}
    Tensor randn_like(const Tensor& x) override { return gen_.randn(x.shape()); }

private:
    PhiloxGenerator& gen_;
};

// One source per batch item: draw i of shape [1, ...] fills item i of a [N, ...] latent (N = number of sources).
class PerSampleNoise final : public NoiseSource {
public:
    explicit PerSampleNoise(std::vector<NoiseSource*> per_sample) : sources_(std::move(per_sample)) {}
    Tensor randn_like(const Tensor& x) override { return draw(x, 0.0f, 0.0f, false); }
    Tensor sde_noise(const Tensor& x, float sigma, float sigma_next) override { return draw(x, sigma, sigma_next, true); }

private:
    Tensor draw(const Tensor& x, float sigma, float sigma_next, bool sde);
    std::vector<NoiseSource*> sources_;
};

}  // namespace easel
