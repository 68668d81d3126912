#include "io/image_exif.h"

#include <cstring>
#include <memory>
#include <vector>

#include <libexif/exif-data.h>

namespace plm {

namespace {

struct ExifDataDeleter {
  void operator()(ExifData* d) const { exif_data_unref(d); }
};

}  // namespace

int ReadExifOrientation(std::span<const uint8_t> exif) {
  if (exif.size() < 8) return 1;
  // libexif wants the "Exif\0\0" header in front of the TIFF structure.
  static const uint8_t kHeader[6] = {'E', 'x', 'i', 'f', 0, 0};
  std::vector<uint8_t> block;
  if (std::memcmp(exif.data(), kHeader, 6) != 0) {
    block.assign(kHeader, kHeader + 6);
  }
  block.insert(block.end(), exif.begin(), exif.end());
  std::unique_ptr<ExifData, ExifDataDeleter> data(exif_data_new());
  if (!data) return 1;
  exif_data_unset_option(data.get(), EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
  exif_data_load_data(data.get(), block.data(), static_cast<unsigned int>(block.size()));
  ExifEntry* entry = exif_content_get_entry(data->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
  if (entry == nullptr || entry->format != EXIF_FORMAT_SHORT || entry->components < 1 ||
      entry->data == nullptr || entry->size < 2) {
    return 1;
  }
  const int v = exif_get_short(entry->data, exif_data_get_byte_order(data.get()));
  return v >= 1 && v <= 8 ? v : 1;
}

Image ApplyExifOrientation(Image image, int orientation) {
  if (orientation < 2 || orientation > 8) return image;
  const int w = image.width, h = image.height;
  const bool swap = orientation >= 5;
  Image out;
  out.width = swap ? h : w;
  out.height = swap ? w : h;
  out.rgb.resize(image.rgb.size());
  for (int yo = 0; yo < out.height; ++yo) {
    for (int xo = 0; xo < out.width; ++xo) {
      int xi = xo, yi = yo;
      switch (orientation) {
        case 2:
          xi = w - 1 - xo;
          break;
        case 3:
          xi = w - 1 - xo;
          yi = h - 1 - yo;
          break;
        case 4:
          yi = h - 1 - yo;
          break;
        case 5:
          xi = yo;
          yi = xo;
          break;
        case 6:
          xi = yo;
          yi = h - 1 - xo;
          break;
        case 7:
          xi = w - 1 - yo;
          yi = h - 1 - xo;
          break;
        case 8:
          xi = w - 1 - yo;
          yi = xo;
          break;
      }
      const uint8_t* s = &image.rgb[(static_cast<size_t>(yi) * w + xi) * 3];
      uint8_t* d = &out.rgb[(static_cast<size_t>(yo) * out.width + xo) * 3];
      d[0] = s[0];
      d[1] = s[1];
      d[2] = s[2];
    }
  }
  return out;
}

}  // namespace plm
