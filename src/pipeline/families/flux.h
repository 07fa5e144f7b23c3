// The Flux.1 family (dev and schnell): CLIP-L's pooled output and T5-XXL's states (512 tokens) condition the Flux
// transformer (models/flux) on 2x2-packed 16-channel latents of the Flux VAE (scaling 0.3611, shift 0.1159);
// rectified-flow sampling whose shift grows with the image (diffusers' dynamic shifting: exp(mu)) over FluxPipeline's
// sigma list; dev takes a guidance scale as an input (--guidance, 3.5), and both run without CFG (scale 1: no
// negative prompt) unless a CFG scale is asked for.
// Loads diffusers folders (FluxPipeline). Prompt emphasis markup is removed, not applied.
// The driver reaches it only through pipeline/model.h (flux_family(), registered in families/families.cpp).
//
//   EASEL_TRY_ASSIGN(std::unique_ptr<Model> m, load_model("FLUX.1-schnell", LoadOptions{}));
//   GenerateParams p;  p.steps = 4;  p.sampler = SamplerKind::Euler;  generate(*m, p);
#pragma once

#include <memory>
#include <string>

#include "models/clip/text_encoder.h"
#include "models/clip/tokenizer.h"
#include "models/flux/flux.h"
#include "models/t5/encoder.h"
#include "models/t5/tokenizer.h"
#include "models/vae/vae.h"
#include "pipeline/families/vae_autoencoder.h"
#include "pipeline/model.h"

namespace easel {

struct FluxModel;

// FluxPipeline.encode_prompt: CLIP-L's pooler_output of the prompt (77 tokens, truncated) and T5's last hidden
// states (max_sequence_length tokens). The negative prompt is encoded the same way only when CFG runs
// (PromptRequest::unconditional); otherwise uncond is cond, as FluxPipeline has no CFG pass.
class FluxConditioner : public Conditioner {
public:
    explicit FluxConditioner(const FluxModel& m) : m_(m) {}
    Result<ConditioningPair> encode(const Ctx& c, const PromptRequest& p) const override;

private:
    const FluxModel& m_;
};

// Packs the latent, runs the transformer with (0, row, column) image ids and zero text ids, unpacks.
class FluxDiffusionModel : public DiffusionModel {
public:
    explicit FluxDiffusionModel(const FluxTransformer& f) : f_(f) {}
    Result<Tensor> predict(const Ctx& c, const Tensor& x, float t, const DiffusionInputs& in) const override;

private:
    const FluxTransformer& f_;
};

struct FluxModel : Model {
    clip::CLIPTokenizer tokenizer;
    int32_t pad_id = 0;
    T5Tokenizer tokenizer_2;
    int t5_tokens = 512;  // FluxPipeline's max_sequence_length
    CLIPTextConfig text_config;
    T5Config t5_config;
    FluxConfig transformer_config;
    CLIPTextEncoder text_encoder;
    T5Encoder text_encoder_2;
    FluxTransformer transformer;
    VAE vae;

    FluxModel() : conditioner_(*this), diffusion_(transformer), autoencoder_(vae) {}
    FluxModel(const FluxModel&) = delete;
    FluxModel& operator=(const FluxModel&) = delete;

    const Conditioner& conditioner() const override { return conditioner_; }
    const DiffusionModel& diffusion_model() const override { return diffusion_; }
    const Autoencoder& autoencoder() const override { return autoencoder_; }
    void release_conditioner() override {
        text_encoder = CLIPTextEncoder{};
        text_encoder_2 = T5Encoder{};
    }
    void release_diffusion_model() override { transformer = FluxTransformer{}; }
    std::string describe() const override;

private:
    FluxConditioner conditioner_;
    FluxDiffusionModel diffusion_;
    VAEAutoencoder autoencoder_;
};

Result<std::unique_ptr<FluxModel>> load_flux_model(const std::string& path, const LoadOptions& options);
Result<ModelSpec> load_flux_model_spec(const std::string& path, const LoadOptions& options);

Family flux_family();

}  // namespace easel
