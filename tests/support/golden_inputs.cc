#include "support/golden_inputs.h"

namespace plm::test {

ForwardInputs GoldenInputs(const SafetensorsFile& g, std::vector<float>* pix,
                           std::vector<float>* vid) {
  ForwardInputs in;
  in.batch = g.Get("input.input_ids").shape[0];
  in.len = g.Get("input.input_ids").shape[1];
  in.input_ids = g.Get("input.input_ids").ToI64();
  in.attention_mask = g.Get("input.attention_mask").ToI64();
  if (g.Has("input.pixel_values")) {
    const TensorView& p = g.Get("input.pixel_values");  // [images, tiles, 3, T, T]
    *pix = p.ToF32();
    in.pixel_values = {pix->data(), p.shape[0] * p.shape[1]};
  }
  if (g.Has("input.pixel_values_videos")) {
    const TensorView& v = g.Get("input.pixel_values_videos");
    *vid = v.ToF32();
    in.pixel_values_videos = {vid->data(), v.shape[0] * v.shape[1]};
  }
  return in;
}

}  // namespace plm::test
