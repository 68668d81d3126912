// EXIF orientation: reading the tag and applying it like Pillow's ImageOps.exif_transpose.
#pragma once

#include <cstdint>
#include <span>

#include "io/image.h"

namespace plm {

// The IFD0 Orientation tag (1..8) of a raw EXIF block ("Exif\0\0" + TIFF, or bare TIFF);
// 1 when absent, unreadable or out of range (a broken EXIF block never fails a decode).
int ReadExifOrientation(std::span<const uint8_t> exif);

// Transposes `image` for EXIF `orientation` (2..8; 1 and others are a no-op), like Pillow:
// 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse,
// 8 rotate 90 counter-clockwise.
Image ApplyExifOrientation(Image image, int orientation);

}  // namespace plm
