// C2PA content credentials (`easel verify`, the server's /v1/verify: images from anyone): a PNG or JPEG with a
// manifest store, the JUMBF boxes, the CBOR claims, assertions and COSE signatures inside must give a report or an
// error, never a crash, a hang or an unbounded allocation. The input is tried as a whole file, and as a bare JUMBF
// store and bare CBOR.
#include <cstddef>
#include <cstdint>

#include "io/c2pa.h"
#include "io/cbor.h"
#include "io/jumbf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    (void)easel::verify_c2pa(data, size, {}, "fuzz");
    (void)easel::parse_jumbf(data, size, "fuzz");
    if (auto c = easel::cbor_decode(data, size, "fuzz")) (void)easel::cbor_encode(*c);
    return 0;
}
