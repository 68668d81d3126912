// Pillow-compatible conversion of decoded pixels to 8-bit RGB.
#pragma once

#include "io/image.h"
#include "io/image_decode.h"
#include "io/image_decoders.h"

namespace plm {

// convert("RGB") (AlphaHandling::kDrop) or alpha_composite over white, then RGB
// (kCompositeOverWhite; RGB input is returned unchanged as transformers does).
Image ConvertToRgb(const RawImage& raw, AlphaHandling alpha);

}  // namespace plm
