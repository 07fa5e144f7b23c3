// Full-size SD 1.5 (eps): see fullsize_common.h.
#define EASEL_FULLSIZE_VARIANT "sd15"
#define EASEL_FULLSIZE_V_PREDICTION false
#include "fullsize_common.h"
