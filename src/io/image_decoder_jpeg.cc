// JPEG via libjpeg-turbo, configured like Pillow's decoder (islow DCT, fancy upsampling) so the
// RGB output matches it; CMYK/YCCK come out as CMYK with Adobe polarity, as Pillow assumes.
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>

#include <jerror.h>
#include <jpeglib.h>

#include "io/image_decoders.h"
#include "plm/error.h"

namespace plm {

namespace {

struct JpegErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void OnJpegError(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// A truncated file is an error (Pillow raises "image file is truncated"); other corrupt-data
// warnings (extraneous bytes, ...) are common in real files and ignored, as Pillow does.
void OnJpegWarning(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, err->message);
    std::longjmp(err->jump, 1);
  }
}

struct ScanLimit {
  jpeg_progress_mgr pub;
  int max_scans;
  bool exceeded;
};

void OnJpegProgress(j_common_ptr cinfo) {
  auto* p = reinterpret_cast<ScanLimit*>(cinfo->progress);
  if (cinfo->is_decompressor) {
    auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
    if (d->input_scan_number > p->max_scans) {
      p->exceeded = true;
      std::snprintf(reinterpret_cast<JpegErrorManager*>(cinfo->err)->message, JMSG_LENGTH_MAX,
                    "more than %d progressive scans", p->max_scans);
      std::longjmp(reinterpret_cast<JpegErrorManager*>(cinfo->err)->jump, 1);
    }
  }
}

// Everything the setjmp frame touches lives here, so nothing is lost across the longjmp.
struct JpegJob {
  std::span<const uint8_t> bytes;
  const DecodeLimits* limits;
  const std::string* name;
  bool header_only;
  RawImage out;
  ErrorCode error_code = ErrorCode::kCorrupt;
  std::string error;
};

void SaveExif(j_decompress_ptr cinfo, RawImage& out) {
  for (jpeg_saved_marker_ptr m = cinfo->marker_list; m != nullptr; m = m->next) {
    if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 &&
        std::memcmp(m->data, "Exif\0\0", 6) == 0) {
      out.exif.assign(m->data, m->data + m->data_length);
      return;  // the first Exif segment is the one Pillow reads
    }
  }
}

bool RunJpeg(JpegJob* job) {
  jpeg_decompress_struct cinfo;
  JpegErrorManager err;
  ScanLimit progress;
  std::memset(&cinfo, 0, sizeof(cinfo));
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = OnJpegError;
  err.pub.emit_message = OnJpegWarning;
  err.message[0] = '\0';
  progress.pub.progress_monitor = OnJpegProgress;
  progress.max_scans = job->limits->max_jpeg_scans;
  progress.exceeded = false;
  if (setjmp(err.jump)) {
    job->error = err.message;
    if (progress.exceeded) job->error_code = ErrorCode::kLimit;
    // Valid JPEGs this libjpeg build cannot decode (12-bit samples, odd sampling factors).
    const int code = err.pub.msg_code;
    if (code == JERR_BAD_PRECISION || code == JERR_NOT_COMPILED || code == JERR_CCIR601_NOTIMPL) {
      job->error_code = ErrorCode::kUnsupported;
    }
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  cinfo.progress = &progress.pub;
  jpeg_mem_src(&cinfo, job->bytes.data(), static_cast<unsigned long>(job->bytes.size()));
  jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&cinfo, TRUE);
  RawImage& out = job->out;
  out.width = static_cast<int>(cinfo.image_width);
  out.height = static_cast<int>(cinfo.image_height);
  SaveExif(&cinfo, out);
  switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
      out.mode = PixelMode::kL;
      cinfo.out_color_space = JCS_GRAYSCALE;
      break;
    case JCS_CMYK:
    case JCS_YCCK:
      out.mode = PixelMode::kCMYK;
      cinfo.out_color_space = JCS_CMYK;
      break;
    default:
      out.mode = PixelMode::kRGB;
      cinfo.out_color_space = JCS_RGB;
      break;
  }
  if (out.width <= 0 || out.height <= 0 ||
      static_cast<int64_t>(out.width) * out.height > job->limits->max_pixels) {
    jpeg_destroy_decompress(&cinfo);
    return true;  // the caller reports the size problem with its own wording
  }
  if (job->header_only) {
    jpeg_destroy_decompress(&cinfo);
    return true;
  }
  cinfo.dct_method = JDCT_ISLOW;
  cinfo.do_fancy_upsampling = TRUE;
  jpeg_start_decompress(&cinfo);
  const int channels = cinfo.output_components;
  const size_t row_bytes = static_cast<size_t>(out.width) * channels;
  out.pixels.resize(row_bytes * out.height);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out.pixels.data() + row_bytes * cinfo.output_scanline;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  if (out.mode == PixelMode::kCMYK) {
    // Adobe writes inverted CMYK; Pillow always assumes that convention ("CMYK;I").
    for (uint8_t& v : out.pixels) v = static_cast<uint8_t>(255 - v);
  }
  return true;
}

}  // namespace

RawImage DecodeJpeg(std::span<const uint8_t> bytes, const std::string& name,
                    const DecodeLimits& limits, bool header_only) {
  JpegJob job{bytes, &limits, &name, header_only, {}, ErrorCode::kCorrupt, {}};
  if (!RunJpeg(&job)) {
    throw Error(job.error_code, name + ": bad JPEG: " + job.error);
  }
  CheckImageSize(job.out.width, job.out.height, limits, name);
  return std::move(job.out);
}

}  // namespace plm
