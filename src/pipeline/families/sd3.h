// The SD3 family (Stable Diffusion 3 medium): CLIP ViT-L and OpenCLIP ViT-bigG (penultimate hidden states side
// by side, zero-padded to T5's width, their projected end-of-text embeddings concatenated as the pooled vector),
// T5-XXL (256 tokens after the CLIP context; 77 zero rows when the model comes without it, as diffusers does), the
// MMDiT transformer (models/mmdit), the 16-channel KL VAE (scaling 1.5305, shift 0.0609) and rectified-flow
// sampling with shift 3 (FlowModelSampling). Loads diffusers folders (StableDiffusion3Pipeline); single files are
// recognised and refused for now.
// The driver reaches it only through pipeline/model.h (sd3_family(), registered in families/families.cpp).
//
//   EASEL_TRY_ASSIGN(std::unique_ptr<Model> m, load_model("stable-diffusion-3-medium-diffusers", LoadOptions{}));
//   GenerateParams p;  p.width = p.height = 1024;  p.cfg_scale = 7;  p.sampler = SamplerKind::Euler;  generate(*m, p);
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "models/clip/text_encoder.h"
#include "models/clip/tokenizer.h"
#include "models/mmdit/mmdit.h"
#include "models/t5/encoder.h"
#include "models/t5/tokenizer.h"
#include "models/vae/vae.h"
#include "pipeline/families/vae_autoencoder.h"
#include "pipeline/model.h"

namespace easel {

struct SD3Model;

// Both prompts through the three encoders. CLIP: A1111's emphasis and 75-token chunks (for at most 75 tokens the
// ids are diffusers' exactly; longer prompts give one 77-row block per chunk, as ComfyUI does), pooled from the
// first chunk; T5: the prompt's text without emphasis markup, 256 tokens (diffusers' max_sequence_length). The
// negative prompt is encoded, never zeroed (diffusers' SD3 pipelines encode "").
class SD3Conditioner : public Conditioner {
public:
    explicit SD3Conditioner(const SD3Model& m) : m_(m) {}
    Result<ConditioningPair> encode(const Ctx& c, const PromptRequest& p) const override;

private:
    const SD3Model& m_;
};

class SD3DiffusionModel : public DiffusionModel {
public:
    explicit SD3DiffusionModel(const MMDiT& dit) : dit_(dit) {}
    Result<Tensor> predict(const Ctx& c, const Tensor& x, float t, const DiffusionInputs& in) const override;

private:
    const MMDiT& dit_;
};

struct SD3Model : Model {
    clip::CLIPTokenizer tokenizer, tokenizer_2;
    int32_t pad_id = 0, pad_id_2 = 0;
    std::optional<T5Tokenizer> tokenizer_3;  // absent: a model without T5 (zeros in its place)
    int t5_tokens = 256;                     // diffusers' max_sequence_length
    CLIPTextConfig text_config, text_2_config;
    std::optional<T5Config> t5_config;
    MMDiTConfig transformer_config;
    CLIPTextEncoder text_encoder, text_encoder_2;
    T5Encoder text_encoder_3;
    MMDiT transformer;
    VAE vae;

    SD3Model() : conditioner_(*this), diffusion_(transformer), autoencoder_(vae) {}
    SD3Model(const SD3Model&) = delete;
    SD3Model& operator=(const SD3Model&) = delete;

    const Conditioner& conditioner() const override { return conditioner_; }
    const DiffusionModel& diffusion_model() const override { return diffusion_; }
    const Autoencoder& autoencoder() const override { return autoencoder_; }
    void release_conditioner() override {
        text_encoder = CLIPTextEncoder{};
        text_encoder_2 = CLIPTextEncoder{};
        text_encoder_3 = T5Encoder{};
    }
    void release_diffusion_model() override { transformer = MMDiT{}; }
    std::string describe() const override;

private:
    SD3Conditioner conditioner_;
    SD3DiffusionModel diffusion_;
    VAEAutoencoder autoencoder_;
};

Result<std::unique_ptr<SD3Model>> load_sd3_model(const std::string& path, const LoadOptions& options);
Result<ModelSpec> load_sd3_model_spec(const std::string& path, const LoadOptions& options);

Family sd3_family();

}  // namespace easel
