// The KL autoencoder (models/vae) as the driver's Autoencoder: what SD 1.x/2.x and SDXL share.
#pragma once

#include "models/vae/vae.h"
#include "pipeline/interfaces.h"

namespace easel {

class VAEAutoencoder : public Autoencoder {
public:
    explicit VAEAutoencoder(const VAE& vae) : vae_(vae) {}
    std::pair<Tensor, Tensor> encode_moments(const Ctx& c, const Tensor& image, int tile) const override {
        return tile > 0 ? vae_.encode_moments_tiled(c, image, tile) : vae_.encode_moments(c, image);
    }
    Tensor decode(const Ctx& c, const Tensor& z, int tile) const override {
        return tile > 0 ? vae_.decode_tiled(c, z, tile) : vae_.decode(c, z);
    }
    bool has_encoder() const override { return vae_.has_encoder(); }

private:
    const VAE& vae_;
};

}  // namespace easel
