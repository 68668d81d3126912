#include "text/prompt_encoding.h"

#include <string>

#include "plm/error.h"
#include "text/tokenizer.h"

namespace plm {

std::vector<int32_t> EncodeChatPrompt(const Tokenizer& tokenizer, std::string_view rendered) {
  const std::string& bos = tokenizer.bos_token();
  const bool has_bos = !bos.empty() && rendered.substr(0, bos.size()) == bos;
  return tokenizer.Encode(rendered, /*add_special_tokens=*/!has_bos);
}

std::vector<int32_t> ExpandMediaPlaceholders(std::span<const int32_t> ids, int32_t image_token_id,
                                             std::span<const int64_t> tokens_per_image,
                                             int32_t video_token_id,
                                             std::span<const int64_t> tokens_per_video) {
  if (image_token_id >= 0 && image_token_id == video_token_id)
    throw Error(ErrorCode::kInvalidArgument, "image and video placeholder ids must differ (both " +
                                                 std::to_string(image_token_id) + ")");
  size_t images = 0, videos = 0;
  int64_t extra = 0;
  for (int32_t id : ids) {
    if (image_token_id >= 0 && id == image_token_id)
      ++images;
    else if (video_token_id >= 0 && id == video_token_id)
      ++videos;
  }
  if (images != tokens_per_image.size())
    throw Error(ErrorCode::kInvalidArgument,
                "the prompt has " + std::to_string(images) + " image placeholder(s) but " +
                    std::to_string(tokens_per_image.size()) + " image(s) were given");
  if (videos != tokens_per_video.size())
    throw Error(ErrorCode::kInvalidArgument,
                "the prompt has " + std::to_string(videos) + " video placeholder(s) but " +
                    std::to_string(tokens_per_video.size()) + " video(s) were given");
  for (auto counts : {tokens_per_image, tokens_per_video}) {
    for (int64_t c : counts) {
      if (c < 0 || c > (int64_t{1} << 30))
        throw Error(ErrorCode::kInvalidArgument,
                    "media token count " + std::to_string(c) + " is out of range");
      extra += c - 1;
    }
  }
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(static_cast<int64_t>(ids.size()) + extra));
  size_t next_image = 0, next_video = 0;
  for (int32_t id : ids) {
    int64_t copies = 1;
    if (image_token_id >= 0 && id == image_token_id)
      copies = tokens_per_image[next_image++];
    else if (video_token_id >= 0 && id == video_token_id)
      copies = tokens_per_video[next_video++];
    out.insert(out.end(), static_cast<size_t>(copies), id);
  }
  return out;
}

}  // namespace plm
