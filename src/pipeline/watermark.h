// The invisible watermark Stable Diffusion's scripts and diffusers' SDXL pipeline put in their images: the
// `invisible-watermark` library's "dwtDct" method, re-implemented from its description
// (tools/reference/WATERMARK_NOTES.md) and checked against the library bit for bit
// (tests/golden/data/watermark_cases.safetensors). The library's own decoder reads easel's marks.
//
// The method marks one colour channel of OpenCV's YUV (U: what the library marks; easel also marks V with its own
// message, which the library never reads): one level of a Haar wavelet transform, and in each 4x4 block of the
// low band the largest coefficient (after the first) is moved to the 1/4 (bit 0) or 3/4 (bit 1) point of its
// 36-wide cell. The message repeats over the blocks; a decoder takes each bit's majority. Images need at least
// 256x256 pixels.
//
//   Image img = ...;                                             // 8-bit RGB, as SD 1.x/2.x scripts mark them
//   EASEL_TRY(embed_watermark(img, watermark_bits("StableDiffusionV1")));
//   auto bits = decode_watermark(img, 136);                      // 8 x 17 bits
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "io/image.h"

namespace easel {

using WatermarkBits = std::vector<uint8_t>;  // 0/1, in message order

// A text's bytes as bits, most significant bit first (the library's 'bytes' type).
WatermarkBits watermark_bits(std::string_view bytes);
// Stable Diffusion 1.x/2.x scripts' message ("StableDiffusionV1", 136 bits) and diffusers' SDXL message (48 bits,
// 0xB3EC907BB19E), and easel's own ("easel", 40 bits, in the V channel).
const WatermarkBits& sd_watermark_bits();
const WatermarkBits& sdxl_watermark_bits();
const WatermarkBits& easel_watermark_bits();

constexpr int kWatermarkMinPixels = 256 * 256;
enum class WatermarkChannel { U = 1, V = 2 };

// Marks an 8-bit RGB image in place as the SD scripts do (RGB -> BGR -> YUV, the channel, back; every pixel goes
// through OpenCV's integer colour conversion). Fails on fewer than 256x256 pixels or no 3-channel RGB.
Status embed_watermark(Image& rgb, const WatermarkBits& bits, WatermarkChannel channel = WatermarkChannel::U);
// Both channels in one colour round trip: `u` (the library's channel; null: unmarked) and `v` (null: unmarked).
Status embed_watermarks(Image& rgb, const WatermarkBits* u, const WatermarkBits* v);
// The bits a decoder reads from an 8-bit RGB image (`length` of them; any image decodes to some bits).
Result<WatermarkBits> decode_watermark(const Image& rgb, size_t length, WatermarkChannel channel = WatermarkChannel::U);

// diffusers' StableDiffusionXLWatermarker on one decoded image, planar RGB float32 [3, h, w] in [-1, 1] (the VAE's
// output, before postprocessing): the float path of the library (U offset 0.5 on a 0..255 scale), clamped to
// [-1, 1] after. Images narrower than 256 px are left as they are (diffusers' rule); fails when the width is
// enough but h*w is under 256x256 (where the library raises).
Status embed_watermark_sdxl(float* chw, int h, int w);
// What the library's float decoder reads from such an image (before postprocessing), for tests.
Result<WatermarkBits> decode_watermark_sdxl(const float* chw, int h, int w, size_t length);

}  // namespace easel
