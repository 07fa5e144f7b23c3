// Full-size SD 2.1 768 (v-prediction, OpenCLIP ViT-H penultimate layer): see fullsize_common.h.
#define EASEL_FULLSIZE_VARIANT "sd21"
#define EASEL_FULLSIZE_V_PREDICTION true
#include "fullsize_common.h"
