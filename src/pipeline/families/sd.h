// The Stable Diffusion 1.x / 2.x family: CLIP (SD 1.x) or OpenCLIP (SD 2.x) text encoder with A1111's prompt
// syntax and 75-token chunks, a UNet2DConditionModel (4 channels, or 9 for inpainting models) predicting eps or v
// on the DDPM training schedule, and the KL VAE. Loads a diffusers folder or a single-file checkpoint
// (.safetensors, .ckpt/.pt, .gguf) in the original LDM layout; the same code path loads easel's own embedded model.
// The driver reaches it only through pipeline/model.h (sd_family(), registered in families/families.cpp).
//
//   LoadOptions o;  o.precision = Precision::F32;
//   EASEL_TRY_ASSIGN(std::unique_ptr<SDModel> m, load_sd_model("v1-5-pruned-emaonly.safetensors", o));
//   EASEL_TRY_ASSIGN(Tensor ctx, encode_prompt(c, *m, "a (red:1.2) cat", /*clip_skip=*/1));   // [1, 77, 768]
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/clip/text_encoder.h"
#include "models/clip/prompt_parser.h"
#include "models/clip/tokenizer.h"
#include "models/unet/unet.h"
#include "models/vae/vae.h"
#include "pipeline/families/vae_autoencoder.h"
#include "pipeline/model.h"

namespace easel {

struct SDModel;

// SD's conditioner: both prompts through the CLIP text encoder, A1111's emphasis, the shorter padded with empty
// chunks to the longer's length. Conditioning::context only.
class SDConditioner : public Conditioner {
public:
    explicit SDConditioner(const SDModel& m) : m_(m) {}
    Result<ConditioningPair> encode(const Ctx& c, const PromptRequest& p) const override;

private:
    const SDModel& m_;
};

class SDDiffusionModel : public DiffusionModel {
public:
    explicit SDDiffusionModel(const UNet& unet) : unet_(unet) {}
    Result<Tensor> predict(const Ctx& c, const Tensor& x, float t, const DiffusionInputs& in) const override;

private:
    const UNet& unet_;
};

struct SDModel : Model {
    clip::CLIPTokenizer tokenizer;
    int32_t pad_id = 0;  // SD 1.x pads prompts with <|endoftext|>, SD 2.x with 0
    CLIPTextEncoder text_encoder;
    UNet unet;
    VAE vae;

    SDModel() : conditioner_(*this), diffusion_(unet), autoencoder_(vae) {}
    SDModel(const SDModel&) = delete;
    SDModel& operator=(const SDModel&) = delete;

    const Conditioner& conditioner() const override { return conditioner_; }
    const DiffusionModel& diffusion_model() const override { return diffusion_; }
    const Autoencoder& autoencoder() const override { return autoencoder_; }
    void release_conditioner() override { text_encoder = CLIPTextEncoder{}; }
    void release_diffusion_model() override { unet = UNet{}; }
    std::string describe() const override;

private:
    SDConditioner conditioner_;
    SDDiffusionModel diffusion_;
    VAEAutoencoder autoencoder_;
};

// Text conditioning for a prompt: [1, 77 * chunks, hidden], A1111's emphasis applied.
// With `embeddings`, their vectors where the prompt names them (the names used are added to `used`).
Result<Tensor> encode_prompt(const Ctx& c, const SDModel& m, const std::string& prompt, int clip_skip, int min_chunks = 1,
                             const std::vector<clip::Embedding>* embeddings = nullptr, std::vector<std::string>* used = nullptr);

// What `easel info` shows: configs and weight names read without building the networks, and where the tokenizer
// would come from (load_sd_model's choice for the same --vocab; empty when the file has no text encoder).
struct ModelInspection {
    ModelInfo info;
    std::vector<std::string> notes;
    std::string tokenizer;
};
Result<ModelInspection> inspect_model(const std::string& path, const std::string& vocab_flag = {});
// The tokenizer load_sd_model would give the model at `path` for the same --vocab (for `easel tokenize`).
Result<clip::CLIPTokenizer> load_model_tokenizer(const std::string& path, const std::string& vocab_flag = {});

Result<std::unique_ptr<SDModel>> load_sd_model(const std::string& path, const LoadOptions& options);
Result<ModelSpec> load_sd_model_spec(const std::string& path, const LoadOptions& options);

// The family entry: claims SD 1.x / 2.x checkpoints (models/detect.h), loads them with load_sd_model.
Family sd_family();

}  // namespace easel
