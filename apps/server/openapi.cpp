#include "openapi.h"

namespace easel::server {

using json = nlohmann::json;

namespace {

json ref(const char* name) { return {{"$ref", std::string("#/components/schemas/") + name}}; }

json json_body(const json& schema) { return {{"required", true}, {"content", {{"application/json", {{"schema", schema}}}}}}; }

json reply(const char* description, const json& schema) {
    return {{"description", description}, {"content", {{"application/json", {{"schema", schema}}}}}};
}

json errors() {
    json e = reply("the error envelope", ref("Error"));
    return {{"400", e}, {"401", e}, {"404", e}, {"413", e}, {"429", e}, {"500", e}};
}

json op(const char* summary, json responses, json extra = json::object()) {
    json o = {{"summary", summary}, {"responses", std::move(responses)}};
    const json errs = errors();  // a named object: items() of a temporary would dangle in the loop
    for (auto& [k, v] : errs.items())
        if (!o["responses"].contains(k)) o["responses"][k] = v;
    for (auto& [k, v] : extra.items()) o[k] = v;
    return o;
}

json path_param(const char* name, const char* description) {
    return {{"name", name}, {"in", "path"}, {"required", true}, {"description", description}, {"schema", {{"type", "string"}}}};
}

}  // namespace

json openapi_json() {
    json generation = {
        {"type", "object"},
        {"description", "AUTOMATIC1111's txt2img/img2img fields. /sdapi/v1 uses A1111's defaults (512x512, 50 steps, "
                        "Euler, CFG 7); /v1/jobs the model's native size, its recommended CFG scale (7 when it has none), 20 steps "
                        "and Euler a."},
        {"properties",
         {{"prompt", {{"type", "string"}, {"default", ""}, {"description", "A1111 syntax; <lora:NAME:MULTIPLIER> (or <lora:NAME:te=A:unet=B>) applies a LoRA file of the server's LoRA folder (GET /sdapi/v1/loras) and is taken out of the text"}}},
          {"negative_prompt", {{"type", "string"}, {"default", ""}}},
          {"seed", {{"type", "integer"}, {"default", -1}, {"description", "-1 picks a random seed"}}},
          {"sampler_name", {{"type", "string"}, {"description", "A1111 name (\"Euler a\", \"DPM++ 2M\", legacy \"DPM++ 2M Karras\") or alias"}}},
          {"scheduler", {{"type", "string"}, {"default", "automatic"}}},
          {"steps", {{"type", "integer"}, {"minimum", 1}}},
          {"cfg_scale", {{"type", "number"}, {"default", 7.0}, {"description", "/v1/jobs: default the model's recommended scale (GET /v1/models)"}}},
          {"width", {{"type", "integer"}, {"multipleOf", 8}}},
          {"height", {{"type", "integer"}, {"multipleOf", 8}}},
          {"batch_size", {{"type", "integer"}, {"default", 1}}},
          {"n_iter", {{"type", "integer"}, {"default", 1}}},
          {"model", {{"type", "string"}, {"description", "model name or title (also override_settings.sd_model_checkpoint)"}}},
          {"override_settings", {{"type", "object"}}},
          {"refiner_checkpoint", {{"type", "string"}, {"description", "a served model (an SDXL refiner) that finishes each image; \"\" or \"None\": none"}}},
          {"refiner_switch_at", {{"type", "number"}, {"default", 0.8}, {"description", "the fraction of the schedule the base runs (A1111's Switch at)"}}},
          {"send_images", {{"type", "boolean"}, {"default", true}}},
          {"init_images", {{"type", "array"}, {"items", {{"type", "string"}, {"format", "byte"}}}, {"description", "img2img: one base64 image"}}},
          {"denoising_strength", {{"type", "number"}, {"default", 0.75}}},
          {"mask", {{"type", "string"}, {"format", "byte"}, {"description", "inpainting: white = repaint"}}},
          {"mask_blur", {{"type", "integer"}, {"default", 4}}},
          {"inpainting_mask_invert", {{"type", "integer"}, {"default", 0}}},
          {"inpainting_fill", {{"type", "integer"}, {"minimum", 0}, {"maximum", 3}, {"default", 1},
                               {"description", "masked content: 0 fill, 1 original, 2 latent noise, 3 latent nothing"}}},
          {"inpaint_full_res", {{"type", "boolean"}, {"default", false},
                                {"description", "only masked: the mask's box is inpainted at width x height and pasted back"}}},
          {"inpaint_full_res_padding", {{"type", "integer"}, {"minimum", 0}, {"maximum", 256}, {"default", 32}}}}}};
    json job = {
        {"type", "object"},
        {"properties",
         {{"id", {{"type", "string"}}},
          {"status", {{"type", "string"}, {"enum", {"queued", "running", "done", "failed", "cancelled"}}}},
          {"model", {{"type", "string"}}},
          {"queue_position", {{"type", "integer"}}},
          {"step", {{"type", "integer"}}},
          {"total_steps", {{"type", "integer"}}},
          {"progress", {{"type", "number"}}},
          {"eta_s", {{"type", "number"}, {"nullable", true}}},
          {"error", {{"type", "string"}, {"nullable", true}}},
          {"images", {{"type", "array"}, {"items", {{"type", "object"}, {"properties", {{"url", {{"type", "string"}}}, {"seed", {{"type", "integer"}}}}}}}}},
          {"params", {{"type", "object"}}},
          {"preview", {{"type", "string"}, {"description", "data: URL of a PNG, while running, with ?preview=1"}}},
          {"created", {{"type", "string"}, {"format", "date-time"}}}}}};
    json error = {{"type", "object"},
                  {"properties",
                   {{"error", {{"type", "object"}, {"properties", {{"code", {{"type", "string"}}}, {"message", {{"type", "string"}}}}}}},
                    {"detail", {{"type", "string"}}}}}};
    json a1111_result = {{"type", "object"},
                         {"properties",
                          {{"images", {{"type", "array"}, {"items", {{"type", "string"}, {"format", "byte"}}}}},
                           {"parameters", {{"type", "object"}}},
                           {"info", {{"type", "string"}, {"description", "a JSON object, as a string"}}}}}};
    json any = {{"type", "object"}};
    json id = path_param("id", "job id");

    json paths;
    paths["/v1/models"]["get"] = op("Models this server serves: name, title, default, loaded, family, width, height, cfg_scale, license",
                                    {{"200", reply("models", any)}});
    paths["/healthz"]["get"] = op("Liveness: the HTTP side answers (no key needed)", {{"200", reply("ok", any)}});
    paths["/readyz"]["get"] = op("Readiness: the default model's worker is up (no key needed)",
                                 {{"200", reply("ready", any)}, {"503", reply("not ready, with the reason", any)}});
    paths["/metrics"]["get"] = op("Prometheus metrics: queue depth, jobs by outcome, latency histogram, workers, "
                                  "per-key usage (for callers who see every job)",
                                  {{"200", {{"description", "text/plain; version=0.0.4"}}}});
    paths["/v1/jobs"]["post"] = op("Queue a generation (txt2img; img2img when init_images is given)",
                                   {{"202", reply("queued", {{"type", "object"}, {"properties", {{"id", {{"type", "string"}}}, {"queue_position", {{"type", "integer"}}}}}})}},
                                   {{"requestBody", json_body(ref("Generation"))}});
    paths["/v1/jobs"]["get"] = op(
        "Recent jobs, newest first (a key sees its own); q: the prompt contains it (case-insensitive), model: ran it",
        {{"200", reply("jobs", any)}},
        {{"parameters", {{{"name", "limit"}, {"in", "query"}, {"schema", {{"type", "integer"}, {"default", 50}}}},
                         {{"name", "q"}, {"in", "query"}, {"schema", {{"type", "string"}, {"maxLength", 1000}}}},
                         {{"name", "model"}, {"in", "query"}, {"schema", {{"type", "string"}, {"maxLength", 1000}}}}}}});
    paths["/v1/usage"]["get"] = op(
        "The caller's key today: images used, its daily quota and what is left (null: unlimited), when the day resets "
        "(UTC), its rate limit; key null on an open server",
        {{"200", reply("usage", any)}});
    paths["/v1/jobs/{id}"]["get"] = op("A job's status", {{"200", reply("the job", ref("Job"))}},
                                       {{"parameters", {id, {{"name", "preview"}, {"in", "query"}, {"schema", {{"type", "integer"}}}}}}});
    paths["/v1/jobs/{id}"]["delete"] = op(
        "Cancel a job; with purge=1, remove a finished job and its images from the history (409 while it runs)",
        {{"200", reply("the job, or {id, deleted: true} with purge", any)}},
        {{"parameters", {id, {{"name", "purge"}, {"in", "query"}, {"schema", {{"type", "integer"}}}}}}});
    paths["/v1/jobs/{id}/images/{n}"]["get"] =
        op("An image of a finished job (PNG with its infotext)",
           {{"200", {{"description", "PNG"}, {"content", {{"image/png", {{"schema", {{"type", "string"}, {"format", "binary"}}}}}}}}}},
           {{"parameters", {id, path_param("n", "image index")}}});
    paths["/v1/jobs/{id}/events"]["get"] =
        op("Server-Sent Events: 'progress' with the job object, then 'done', 'failed' or 'cancelled'",
           {{"200", {{"description", "event stream"}, {"content", {{"text/event-stream", {{"schema", {{"type", "string"}}}}}}}}}},
           {{"parameters", {id}}});
    paths["/sdapi/v1/txt2img"]["post"] = op("A1111 txt2img (synchronous)", {{"200", reply("result", a1111_result)}},
                                            {{"requestBody", json_body(ref("Generation"))}});
    paths["/sdapi/v1/img2img"]["post"] = op("A1111 img2img and inpainting (synchronous)", {{"200", reply("result", a1111_result)}},
                                            {{"requestBody", json_body(ref("Generation"))}});
    paths["/sdapi/v1/progress"]["get"] = op("A1111 progress of the running job", {{"200", reply("progress", any)}});
    paths["/sdapi/v1/interrupt"]["post"] = op("Stop the running jobs and keep what they made", {{"200", reply("null", any)}});
    paths["/sdapi/v1/skip"]["post"] = op("Skip the current image of the running jobs", {{"200", reply("null", any)}});
    paths["/sdapi/v1/sd-models"]["get"] = op("A1111 model list", {{"200", reply("models", {{"type", "array"}})}});
    paths["/sdapi/v1/loras"]["get"] = op("A1111 LoRA list: name, alias, path and training metadata of each file in the LoRA folder",
                                         {{"200", reply("loras", {{"type", "array"}})}});
    paths["/sdapi/v1/samplers"]["get"] = op("A1111 sampler list", {{"200", reply("samplers", {{"type", "array"}})}});
    paths["/sdapi/v1/schedulers"]["get"] = op("A1111 scheduler list", {{"200", reply("schedulers", {{"type", "array"}})}});
    paths["/sdapi/v1/options"]["get"] = op("A1111 options (the subset easel has)", {{"200", reply("options", any)}});
    paths["/sdapi/v1/options"]["post"] = op("Set options; sd_model_checkpoint loads and selects a model",
                                            {{"200", reply("null", any)}}, {{"requestBody", json_body(any)}});
    const json binary = {{"schema", {{"type", "string"}, {"format", "binary"}}}};
    json verify_body = json_body({{"type", "object"}, {"properties", {{"image", {{"type", "string"}}}}}});
    for (const char* type : {"image/png", "image/jpeg", "image/webp", "application/octet-stream"}) verify_body["content"][type] = binary;
    paths["/v1/verify"]["post"] = op(
        "Check where an image came from: its AI-generated label (XMP), invisible watermarks and C2PA content credential "
        "(assertions, hard binding, signature, chain, trust). The body is the image itself or JSON {\"image\": base64 or "
        "a data: URL}. verdict: signed, labelled, watermark-only, none or tampered",
        {{"200", reply("the report", any)}}, {{"requestBody", verify_body}});
    paths["/sdapi/v1/png-info"]["post"] = op("Read a PNG's generation parameters", {{"200", reply("info", any)}},
                                             {{"requestBody", json_body({{"type", "object"}, {"properties", {{"image", {{"type", "string"}}}}}})}});
    return {{"openapi", "3.0.3"},
            {"info", {{"title", "easel"}, {"version", "0.1.0"},
                      {"description", "Stable Diffusion text-to-image: AUTOMATIC1111-compatible /sdapi/v1 and an async job API"}}},
            {"components", {{"schemas", {{"Generation", generation}, {"Job", job}, {"Error", error}}},
                            {"securitySchemes", {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}},
                                                 {"basic", {{"type", "http"}, {"scheme", "basic"}}}}}}},
            {"security", {{{"bearer", json::array()}}, {{"basic", json::array()}}}},
            {"paths", paths}};
}

}  // namespace easel::server
