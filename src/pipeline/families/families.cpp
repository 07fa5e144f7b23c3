#include "pipeline/families/families.h"

#include "pipeline/families/sd.h"
#include "pipeline/families/sdxl.h"

namespace easel {

// SDXL first: its folders also hold what SD 1.x/2.x's detection reads.
std::vector<Family> builtin_families() { return {sdxl_family(), sd_family()}; }

}  // namespace easel
