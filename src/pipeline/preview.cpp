#include "pipeline/preview.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "io/model_file.h"
#include "pipeline/generate.h"

namespace easel {

namespace {

namespace fs = std::filesystem;

// "12.conv.0.weight" -> (12, ".conv.0.weight"); nullopt when the name does not start with an index.
std::optional<std::pair<int, std::string>> split_index(const std::string& name) {
    size_t i = 0;
    while (i < name.size() && i < 4 && std::isdigit(static_cast<unsigned char>(name[i]))) ++i;
    if (i == 0 || i >= name.size() || name[i] != '.') return std::nullopt;
    return std::pair{std::stoi(name.substr(0, i)), name.substr(i)};
}

Result<std::string> resolve_file(const std::string& path) {
    std::error_code ec;
    if (!fs::is_directory(path, ec)) return path;
    for (const char* name : {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"})
        if (fs::is_regular_file(fs::path(path) / name, ec)) return (fs::path(path) / name).string();
    return Error::not_found(fmt::format("{}: a folder without diffusion_pytorch_model.safetensors (a diffusers "
                                        "AutoencoderTiny folder has one)", path));
}

}  // namespace

Result<std::shared_ptr<const TinyAutoencoder>> load_preview_decoder(const std::string& path) {
    EASEL_TRY_ASSIGN(const std::string file, resolve_file(path));
    EASEL_TRY_ASSIGN(WeightSet w, read_weights(file));
    WeightSet named;
    if (!w.contains("decoder.layers.0.weight")) {
        // madebyollin's layout: a bare nn.Sequential. The decoder's starts with its Clamp (no weights) at 0, so
        // its first conv is "1.weight" over the latent channels; the encoder's first conv is "0.weight" over RGB.
        const Tensor* first = w.find("1.weight");
        if (!first && w.contains("0.weight"))
            return Error::invalid_argument(fmt::format("{} is a TAESD encoder (its first layer reads RGB); previews need "
                                                       "the decoder (taesd_decoder.safetensors, or a diffusers "
                                                       "AutoencoderTiny)", file));
        if (!first)
            return Error::invalid_argument(fmt::format("{} is not a tiny autoencoder: expected decoder.layers.0.weight "
                                                       "(diffusers AutoencoderTiny) or 1.weight (madebyollin's "
                                                       "taesd_decoder)", file));
        for (const std::string& n : w.names()) {
            auto idx = split_index(n);
            if (!idx || idx->first < 1)
                return Error::invalid_argument(fmt::format("{}: unexpected tensor '{}' in a TAESD decoder file", file, n));
            EASEL_TRY(named.add(fmt::format("decoder.layers.{}{}", idx->first - 1, idx->second), *w.find(n)));
        }
    } else {
        named = std::move(w);
    }
    const Tensor* conv_in = named.find("decoder.layers.0.weight");
    if (!conv_in || conv_in->rank() != 4 || conv_in->size(2) != 3 || conv_in->size(3) != 3)
        return Error::invalid_argument(fmt::format("{}: the decoder's first conv should be [C, latent, 3, 3], got {}", file,
                                                   conv_in ? conv_in->shape().to_string() : "none"));
    TAESDConfig cfg;
    cfg.channels = conv_in->size(0);
    cfg.latent_channels = int(conv_in->size(1));
    if (Status st = cfg.validate(); !st) return st.error().within(file);
    ParamLoader loader(named, Precision::F32);
    auto t = std::make_shared<TinyAutoencoder>(TinyAutoencoder::declare(ParamScope(loader, ""), cfg, /*with_encoder=*/false));
    if (Status st = loader.finish(); !st) return st.error().within(file);
    return std::shared_ptr<const TinyAutoencoder>(std::move(t));
}

Image image_grid(const std::vector<Image>& items) {
    if (items.empty()) return {};
    const int n = int(items.size());
    const int rows = std::max(1, int(std::sqrt(double(n)))), cols = (n + rows - 1) / rows;
    const int w = items[0].width, h = items[0].height;
    for (const Image& i : items)
        if (i.width != w || i.height != h || i.channels != 3) return {};
    Image grid{cols * w, rows * h, 3, std::vector<uint8_t>(size_t(cols * w) * size_t(rows * h) * 3, 0)};
    for (int k = 0; k < n; ++k) {
        const int gx = (k % cols) * w, gy = (k / cols) * h;
        for (int y = 0; y < h; ++y)
            std::copy_n(&items[size_t(k)].pixels[size_t(y) * size_t(w) * 3], size_t(w) * 3,
                        &grid.pixels[(size_t(gy + y) * size_t(grid.width) + size_t(gx)) * 3]);
    }
    return grid;
}

namespace {

// One item of a batch, the linear map.
Image approx_one(const Tensor& x) {
    static const float coef[4][3] = {{0.298f, 0.207f, 0.208f}, {0.187f, 0.286f, 0.173f},
                                     {-0.158f, 0.189f, 0.264f}, {-0.184f, -0.271f, -0.473f}};
    const int h = int(x.size(2)), w = int(x.size(3));
    const Tensor xc = x.contiguous();
    const float* p = xc.data<float>();
    Image img{w, h, 3, std::vector<uint8_t>(size_t(w) * size_t(h) * 3)};
    for (int i = 0; i < h * w; ++i)
        for (int c = 0; c < 3; ++c) {
            float v = 0;
            for (int l = 0; l < 4; ++l) v += p[l * h * w + i] * coef[l][c];
            v = std::clamp((v + 1.0f) * 0.5f, 0.0f, 1.0f);
            img.pixels[size_t(i) * 3 + size_t(c)] = uint8_t(v * 255.0f + 0.5f);
        }
    return img;
}

}  // namespace

Image latent_preview_approx(const Tensor& x) {
    if (x.rank() != 4 || x.size(1) != 4 || x.size(0) < 1) return {};
    if (x.size(0) == 1) return approx_one(x);
    std::vector<Image> items;
    for (int64_t j = 0; j < x.size(0); ++j) items.push_back(approx_one(x.slice(0, j, j + 1)));
    return image_grid(items);
}

Image preview_image(const Ctx& c, const TinyAutoencoder* taesd, const Tensor& latent) {
    if (taesd && latent.rank() == 4 && latent.size(1) == taesd->config().latent_channels && latent.size(0) >= 1)
        return batch_picture(taesd->decode(c, latent.contiguous()));
    return latent_preview_approx(latent);
}

Image batch_picture(const Tensor& rgb) {
    if (rgb.size(0) == 1) return tensor_to_image(rgb);
    std::vector<Image> items;
    for (int64_t j = 0; j < rgb.size(0); ++j) items.push_back(tensor_to_image(rgb, int(j)));
    return image_grid(items);
}

Status PreviewWriter::on_event(const ProgressEvent& e) {
    if (path_.empty() || e.phase != "sampling") return ok();
    const Clock::time_point now = Clock::now();
    if (e.step == 0) {  // an image's sampling starts
        last_ = now;
        return ok();
    }
    sampling_s_ += std::chrono::duration<double>(now - last_).count();
    ++steps_;
    if (e.latent && (e.step % every_ == 0 || e.step == e.total)) {
        Ctx c{&pool_};
        const Image img = preview_image(c, taesd_, *e.latent);
        if (!img.pixels.empty()) {
            EASEL_TRY_ASSIGN(auto png, encode_image(img, ImageFormat::Png));
            if (Status st = write_file_atomically(path_, png); !st) return st.error().within("--preview");
            width_ = img.width;
            height_ = img.height;
            ++written_;
        }
        pool_.trim();
    }
    last_ = Clock::now();
    preview_s_ += std::chrono::duration<double>(last_ - now).count();
    return ok();
}

std::string PreviewWriter::summary() const {
    if (written_ == 0) return "previews: none written (no sampling step reached, or no preview for this latent)";
    const double each = preview_s_ / written_, step = steps_ ? sampling_s_ / steps_ : 0.0;
    return fmt::format("previews: {} ({} {}x{}), {:.2f} s in all, {:.0f} ms each: {:.1f}% of a sampling step ({:.2f} s)",
                       written_, taesd_ ? "tiny autoencoder" : "linear approximation", width_, height_, preview_s_,
                       each * 1000.0, step > 0 ? 100.0 * each / step : 0.0, step);
}

}  // namespace easel
