// The SDXL family (base and its fine-tunes, the 9-channel inpainting UNet, the refiner): CLIP ViT-L and OpenCLIP
// ViT-bigG, whose penultimate hidden states are concatenated into the context (the refiner: bigG's alone) and
// whose bigG projected end-of-text embedding is the pooled vector; the UNet's added "text_time" conditioning
// (pooled vector + original size, crop, target size; the refiner: original size, crop, aesthetic score); the KL
// VAE with scaling 0.13025. Loads diffusers folders (single files: not yet).
// The driver reaches it only through pipeline/model.h (sdxl_family(), registered in families/families.cpp).
//
//   EASEL_TRY_ASSIGN(std::unique_ptr<Model> m, load_model("stable-diffusion-xl-base-1.0", LoadOptions{}));
//   GenerateParams p;  p.width = p.height = 1024;  p.cfg_scale = 5;  ...;  generate(*m, p);
#pragma once

#include <memory>
#include <string>

#include "models/clip/text_encoder.h"
#include "models/clip/tokenizer.h"
#include "models/unet/unet.h"
#include "models/vae/vae.h"
#include "pipeline/families/vae_autoencoder.h"
#include "pipeline/model.h"

namespace easel {

struct SDXLModel;

// Both prompts through both encoders, A1111's emphasis and 75-token chunks on each (for a prompt of at most 75
// tokens the ids are diffusers' exactly); the pooled vector from the first chunk. An empty negative prompt is
// all zeros (context and pooled) where the model says force_zeros_for_empty_prompt (SDXL base: diffusers'
// negative_prompt=None; AUTOMATIC1111 zeroes an empty negative the same way). ids: [N, 6] = original size (h, w),
// crop (top, left), target size (h, w).
class SDXLConditioner : public Conditioner {
public:
    explicit SDXLConditioner(const SDXLModel& m) : m_(m) {}
    Result<ConditioningPair> encode(const Ctx& c, const PromptRequest& p) const override;

private:
    const SDXLModel& m_;
};

class SDXLDiffusionModel : public DiffusionModel {
public:
    explicit SDXLDiffusionModel(const UNet& unet) : unet_(unet) {}
    Result<Tensor> predict(const Ctx& c, const Tensor& x, float t, const DiffusionInputs& in) const override;

private:
    const UNet& unet_;
};

struct SDXLModel : Model {
    clip::CLIPTokenizer tokenizer, tokenizer_2;
    int32_t pad_id = 0, pad_id_2 = 0;  // tokenizer pads with <|endoftext|>, tokenizer_2 with "!" (id 0 in CLIP's vocabulary)
    bool zero_empty_negative = true;   // model_index.json force_zeros_for_empty_prompt (the refiner's: false)
    bool refiner = false;              // bigG alone, 5 ids ending in the aesthetic score
    CLIPTextEncoder text_encoder, text_encoder_2;
    UNet unet;
    VAE vae;

    SDXLModel() : conditioner_(*this), diffusion_(unet), autoencoder_(vae) {}
    SDXLModel(const SDXLModel&) = delete;
    SDXLModel& operator=(const SDXLModel&) = delete;

    const Conditioner& conditioner() const override { return conditioner_; }
    const DiffusionModel& diffusion_model() const override { return diffusion_; }
    const Autoencoder& autoencoder() const override { return autoencoder_; }
    void release_conditioner() override {
        text_encoder = CLIPTextEncoder{};
        text_encoder_2 = CLIPTextEncoder{};
    }
    void release_diffusion_model() override { unet = UNet{}; }
    std::string describe() const override;

private:
    SDXLConditioner conditioner_;
    SDXLDiffusionModel diffusion_;
    VAEAutoencoder autoencoder_;
};

Result<std::unique_ptr<SDXLModel>> load_sdxl_model(const std::string& path, const LoadOptions& options);
Result<ModelSpec> load_sdxl_model_spec(const std::string& path, const LoadOptions& options);

Family sdxl_family();

}  // namespace easel
