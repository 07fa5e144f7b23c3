// Live previews of a latent while it is sampled: a tiny autoencoder (TAESD, TAESDXL, TAESD3, TAEF1: the files
// people use for previews, models/vae/taesd.h) when one is given, else AUTOMATIC1111's "Approx cheap" linear map
// from SD's four latent channels to RGB.
//
//   EASEL_TRY_ASSIGN(auto taesd, load_preview_decoder("taesd_decoder.safetensors"));
//   Image img = preview_image(ctx, taesd.get(), latent);     // taesd null: the linear map
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "io/image.h"
#include "models/vae/taesd.h"
#include "pipeline/generate.h"
#include "runtime/nn.h"

namespace easel {

// A TAESD decoder from a file or folder: diffusers' AutoencoderTiny (diffusion_pytorch_model.safetensors, or a
// folder with it; "decoder.layers.*", with or without the encoder) or madebyollin's decoder-only files
// (taesd_decoder.safetensors / .pth, taesdxl_decoder..., taesd3_decoder..., taef1_decoder...: "1.weight",
// "3.conv.0.weight", ..., one index above diffusers' because of its Clamp module at 0). Its latent channels come
// from the first conv. Errors name the file and what was expected (an encoder-only file, a missing tensor).
Result<std::shared_ptr<const TinyAutoencoder>> load_preview_decoder(const std::string& path);

// latent: [N, C, h, w] in the model's units, as the sampler holds it (N images sampled together). With a decoder
// whose latent channels are C: its picture ([8h, 8w]); otherwise, for C == 4, A1111's linear map at the latent's
// size (h x w); otherwise an empty Image. N > 1: the items' pictures in a grid (image_grid).

Image preview_image(const Ctx& c, const TinyAutoencoder* taesd, const Tensor& latent);

// A1111's "Approx cheap": RGB = latent channels x a fixed 4x3 matrix, mapped from [-1, 1] to 8 bits; a batch as a
// grid. C != 4: empty.
Image latent_preview_approx(const Tensor& latent);

// RGB images of one size in a grid as AUTOMATIC1111 lays out a batch's: floor(sqrt(n)) rows, as many columns as
// that takes, filled row by row (a missing last tile black). Empty, or of other sizes: an empty Image.
Image image_grid(const std::vector<Image>& items);
// A decoder's [N, 3, H, W] output in [-1, 1] as one picture: the image itself for N = 1, else the items' grid.
Image batch_picture(const Tensor& rgb);

// The CLI's --preview: on every `every`-th sampling step of each image, and its last, the preview of the
// current latent replaces the PNG at `path` (written to a temporary file and renamed). Times what it spends
// against the sampling around it.
class PreviewWriter {
public:
    PreviewWriter(std::string path, int every, const TinyAutoencoder* taesd)
        : path_(std::move(path)), every_(every), taesd_(taesd) {}
    // A ProgressFn's work; a no-op without a path. Errors: the file cannot be written.
    Status on_event(const ProgressEvent& e);
    // "previews: 4 (TAESD 64x64), 0.21 s in all, 52 ms each: 1.9% of a sampling step (2.71 s)".
    std::string summary() const;

private:
    using Clock = std::chrono::steady_clock;
    std::string path_;
    int every_ = 5;
    const TinyAutoencoder* taesd_ = nullptr;
    BufferPool pool_;
    int written_ = 0, steps_ = 0;
    double preview_s_ = 0, sampling_s_ = 0;
    int width_ = 0, height_ = 0;
    Clock::time_point last_{};
};

}  // namespace easel
