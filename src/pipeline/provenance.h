// What every image easel writes says about itself (beside AUTOMATIC1111's `parameters` text): an XMP packet with
// IPTC's digital source type "trained algorithmic media", the generator, the model's name, its short hash
// (AUTOMATIC1111's "Model hash") and its licence, and the LoRAs' hashes. And where a model's licence and hash
// come from.
//
//   Provenance p{.model = "v1-5-pruned-emaonly", .model_hash = "6ce0161689", .license = "creativeml-openrail-m"};
//   EASEL_TRY(write_image("out.png", img, image_metadata(infotext, p)));
#pragma once

#include <string>

#include "core/error.h"
#include "io/c2pa.h"
#include "io/image.h"

namespace easel {

inline constexpr const char* kEaselGenerator = "easel 0.1.0";

struct Provenance {
    std::string model;        // the model's name (A1111's "Model")
    std::string model_hash;   // A1111's short hash: the first 10 hex digits of the file's SHA-256; "" for folders
    std::string license;      // "" = the model does not say
    std::string lora_hashes;  // A1111's "Lora hashes" value ("name: 0123456789ab, ..."); "" = none
    std::string generator = kEaselGenerator;
    std::string watermark;    // what invisible watermark the image carries, or why none ("" = not said)
};

std::string provenance_xmp(const Provenance& p);
// A1111's `parameters` text and the XMP packet (io/xmp.h kXmpKey), for write_image / encode_image.
TextChunks image_metadata(const std::string& infotext, const Provenance& p);

// The C2PA assertions of an image easel made: c2pa.actions.v2 with one c2pa.created action (IPTC's
// trainedAlgorithmicMedia, easel as the software agent) and easel.generation (model, hash, licence, LoRA hashes,
// watermark, and A1111's `parameters` text).
std::vector<C2paAssertion> provenance_assertions(const Provenance& p, const std::string& infotext);
// The encoded file of an image easel made: `text` (image_metadata) in the file, and with a signer a C2PA manifest
// signed by it (PNG and JPEG; a WebP with a signer is refused).
Result<std::vector<uint8_t>> encode_provenance_image(const Image& img, ImageFormat fmt, const TextChunks& text, const Provenance& p,
                                                     const std::string& infotext, const C2paSigner* signer,
                                                     const std::string& title);
// encode_provenance_image into `path` (format from its extension), through a temporary file and a rename.
Status write_provenance_image(const std::string& path, const Image& img, const TextChunks& text, const Provenance& p,
                              const std::string& infotext, const C2paSigner* signer);

// The licence a model names, or "" when it names none:
//  - safetensors: __metadata__ "modelspec.license" (Stability's model spec), else "license";
//  - GGUF: "general.license";
//  - a diffusers folder (or the folder of a single file): the model card's (README.md) front matter, `license:`,
//    or its `license_name:` when `license: other`.
std::string detect_model_license(const std::string& path);

// AUTOMATIC1111's short model hash of a file (first 10 hex digits of its SHA-256); "" for a folder. The full
// hash is remembered in `cache_file` (lines "sha256 size mtime path"; "" = no cache), so a multi-GB checkpoint
// is read once, not at every load.
Result<std::string> model_short_hash(const std::string& path, const std::string& cache_file);
// ~/.cache/easel/model-hashes.tsv ($XDG_CACHE_HOME honoured).
std::string default_hash_cache_file();

}  // namespace easel
