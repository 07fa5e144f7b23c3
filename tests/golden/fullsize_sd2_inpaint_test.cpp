// Full-size SD 2 inpainting (stable-diffusion-2-inpainting's layout: SD 2's network, OpenCLIP-H and eps prediction,
// with a 9-channel conv_in) against the reference: A1111 inpainting through k-diffusion and diffusers'
// StableDiffusionInpaintPipeline, at 64x64 (tools/reference/make_fullsize_goldens.py sd2_inpaint). See
// fullsize_common.h.
#define EASEL_FULLSIZE_VARIANT "sd2_inpaint"
#define EASEL_FULLSIZE_V_PREDICTION false
#define EASEL_FULLSIZE_INPAINT true
#include "fullsize_common.h"
