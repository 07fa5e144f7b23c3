// Fuzzes what an HTTP client controls in `easel serve`: the JSON body of txt2img/img2img (both kinds, through
// the same parser the server uses, including base64 images) and base64 decoding. Nothing may crash, hang or
// throw; every rejection is an Error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace easel::server;
    const std::string text(reinterpret_cast<const char*>(data), size);
    (void)base64_decode(text, "fuzz");
    json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) return 0;
    Limits lim;
    lim.max_width = lim.max_height = 256;
    for (RequestKind kind : {RequestKind::Txt2Img, RequestKind::Img2Img}) {
        auto r = parse_generation_request(body, kind, a1111_defaults(), lim);
        if (r) (void)safe_dump(r->parameters);
    }
    return 0;
}
