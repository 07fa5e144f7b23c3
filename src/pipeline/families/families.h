// The built-in model families, in the order load_model() asks them (pipeline/model.h). Adding a family: its
// entry here, its file under pipeline/families, its folder under models (docs/adding-a-model.md).
#pragma once

#include <vector>

#include "pipeline/model.h"

namespace easel {

std::vector<Family> builtin_families();

}  // namespace easel
