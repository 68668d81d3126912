// GIF via giflib: the first frame only, on the logical screen like Pillow (area outside the frame
// filled with the transparent index, else index 0), as palette indices.
#include <algorithm>
#include <cstring>
#include <string>

#include <gif_lib.h>

#include "io/image_decoders.h"
#include "plm/error.h"

namespace plm {

namespace {

struct GifSource {
  std::span<const uint8_t> bytes;
  size_t offset = 0;
};

int ReadFromMemory(GifFileType* gif, GifByteType* buf, int n) {
  auto* src = static_cast<GifSource*>(gif->UserData);
  const size_t take =
      std::min(static_cast<size_t>(std::max(n, 0)), src->bytes.size() - src->offset);
  std::memcpy(buf, src->bytes.data() + src->offset, take);
  src->offset += take;
  return static_cast<int>(take);
}

struct GifCloser {
  GifFileType* gif;
  ~GifCloser() {
    int err = 0;
    if (gif != nullptr) DGifCloseFile(gif, &err);
  }
};

[[noreturn]] void Fail(const std::string& name, GifFileType* gif, int code = 0) {
  const int err = code != 0 ? code : (gif != nullptr ? gif->Error : 0);
  const char* msg = GifErrorString(err);
  throw Error(ErrorCode::kCorrupt, name + ": bad GIF: " + (msg != nullptr ? msg : "unreadable"));
}

}  // namespace

RawImage DecodeGif(std::span<const uint8_t> bytes, const std::string& name,
                   const DecodeLimits& limits, bool header_only) {
  GifSource src{bytes, 0};
  int err = 0;
  GifFileType* gif = DGifOpen(&src, ReadFromMemory, &err);
  if (gif == nullptr) Fail(name, nullptr, err);
  GifCloser closer{gif};
  CheckImageSize(gif->SWidth, gif->SHeight, limits, name);
  RawImage out;
  out.width = gif->SWidth;
  out.height = gif->SHeight;
  out.mode = PixelMode::kP;
  if (header_only) return out;
  int transparent = -1;
  for (;;) {
    GifRecordType type;
    if (DGifGetRecordType(gif, &type) == GIF_ERROR) Fail(name, gif);
    if (type == TERMINATE_RECORD_TYPE) {
      throw Error(ErrorCode::kCorrupt, name + ": bad GIF: no image in the file");
    }
    if (type == EXTENSION_RECORD_TYPE) {
      int code = 0;
      GifByteType* ext = nullptr;
      if (DGifGetExtension(gif, &code, &ext) == GIF_ERROR) Fail(name, gif);
      if (code == GRAPHICS_EXT_FUNC_CODE && ext != nullptr && ext[0] >= 4 && (ext[1] & 1)) {
        transparent = ext[4];
      }
      while (ext != nullptr) {
        if (DGifGetExtensionNext(gif, &ext) == GIF_ERROR) Fail(name, gif);
      }
      continue;
    }
    if (type != IMAGE_DESC_RECORD_TYPE) continue;
    if (DGifGetImageDesc(gif) == GIF_ERROR) Fail(name, gif);
    const GifImageDesc& d = gif->Image;
    if (d.Width <= 0 || d.Height <= 0 ||
        static_cast<int64_t>(d.Width) * d.Height > limits.max_pixels) {
      throw Error(ErrorCode::kCorrupt, name + ": bad GIF: frame size " + std::to_string(d.Width) +
                                           "x" + std::to_string(d.Height));
    }
    const ColorMapObject* map = d.ColorMap != nullptr ? d.ColorMap : gif->SColorMap;
    out.palette = DefaultPalette();
    if (map != nullptr) {
      for (int i = 0; i < map->ColorCount && i < 256; ++i) {
        out.palette[i * 4 + 0] = map->Colors[i].Red;
        out.palette[i * 4 + 1] = map->Colors[i].Green;
        out.palette[i * 4 + 2] = map->Colors[i].Blue;
      }
    }
    if (transparent >= 0) out.palette[transparent * 4 + 3] = 0;
    out.pixels.assign(static_cast<size_t>(out.width) * out.height,
                      static_cast<uint8_t>(transparent >= 0 ? transparent : 0));
    std::vector<GifPixelType> line(static_cast<size_t>(d.Width));
    // Interlaced frames store rows in four passes.
    std::vector<int> order;
    if (d.Interlace) {
      for (int start : {0, 4, 2, 1}) {
        for (int y = start; y < d.Height; y += (start == 0   ? 8
                                                : start == 4 ? 8
                                                : start == 2 ? 4
                                                             : 2)) {
          order.push_back(y);
        }
      }
    } else {
      for (int y = 0; y < d.Height; ++y) order.push_back(y);
    }
    for (int y : order) {
      if (DGifGetLine(gif, line.data(), d.Width) == GIF_ERROR) Fail(name, gif);
      const int64_t oy = static_cast<int64_t>(d.Top) + y;
      if (oy < 0 || oy >= out.height) continue;
      for (int x = 0; x < d.Width; ++x) {
        const int64_t ox = static_cast<int64_t>(d.Left) + x;
        if (ox >= 0 && ox < out.width)
          out.pixels[static_cast<size_t>(oy) * out.width + ox] = line[x];
      }
    }
    return out;
  }
}

}  // namespace plm
