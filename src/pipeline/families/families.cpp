#include "pipeline/families/families.h"

#include "pipeline/families/flux.h"
#include "pipeline/families/sd.h"
#include "pipeline/families/sd3.h"
#include "pipeline/families/sdxl.h"

namespace easel {

// SD3 and Flux first (their folders have no UNet, which the others' reading requires), then SDXL: its folders also hold
// what SD 1.x/2.x's detection reads.
std::vector<Family> builtin_families() { return {sd3_family(), flux_family(), sdxl_family(), sd_family()}; }

}  // namespace easel
