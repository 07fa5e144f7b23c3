// Model config documents from untrusted model folders: the LDM-yaml subset reader and the JSON reader, then
// every *Config reader on whatever parsed. Any input must yield a value or an Error (no crash, hang, or
// unbounded allocation). Seeds: tests/fuzz/corpus/config_doc/ (published SD yaml/config.json shapes).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "io/keymap_config_doc.h"
#include "models/clip/config.h"
#include "models/unet/config.h"
#include "models/vae/config.h"
#include "pipeline/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    if (auto yaml = easel::parse_yaml_subset(text, "fuzz.yaml")) {
        (void)easel::UNetConfig::from_ldm_yaml(*yaml);
        (void)easel::VAEConfig::from_ldm_yaml(*yaml);
        (void)easel::CLIPTextConfig::from_ldm_yaml(*yaml);
    }
    (void)easel::UNetConfig::from_diffusers_json(text);
    (void)easel::VAEConfig::from_diffusers_json(text);
    (void)easel::CLIPTextConfig::from_diffusers_json(text);
    // The JSON files a model folder carries beside the configs: scheduler/scheduler_config.json (and what each
    // diffusers scheduler class then refuses) and easel_defaults.json.
    if (auto sc = easel::parse_scheduler_config(text, "fuzz/scheduler_config.json")) {
        for (int k = 0; k <= int(easel::DiffusersScheduler::Lcm); ++k)
            (void)sc->check_supported(easel::DiffusersScheduler(k));
    }
    (void)easel::parse_model_defaults(text, "fuzz/easel_defaults.json");
    return 0;
}
