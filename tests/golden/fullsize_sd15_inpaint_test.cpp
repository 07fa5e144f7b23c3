// Full-size SD 1.5 inpainting (sd-v1-5-inpainting's layout: SD 1.5 with a 9-channel conv_in) against the
// reference: A1111 inpainting through k-diffusion and diffusers' StableDiffusionInpaintPipeline, at 64x64
// (tools/reference/make_fullsize_goldens.py sd15_inpaint). See fullsize_common.h.
#define EASEL_FULLSIZE_VARIANT "sd15_inpaint"
#define EASEL_FULLSIZE_V_PREDICTION false
#define EASEL_FULLSIZE_INPAINT true
#include "fullsize_common.h"
