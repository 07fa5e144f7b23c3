#include "pipeline/families/families.h"

#include "pipeline/families/sd.h"

namespace easel {

std::vector<Family> builtin_families() { return {sd_family()}; }

}  // namespace easel
