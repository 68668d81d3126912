// From a rendered chat prompt to model input ids: BOS handling and media placeholder expansion
// exactly as transformers' PerceptionLM processor does it.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace plm {

class Tokenizer;

// Encodes a rendered chat prompt as processor.apply_chat_template(tokenize=True): special
// tokens in the text are matched, and the post-processor's BOS is added only when the text
// does not already start with the bos_token string (so the template's BOS is not doubled).
std::vector<int32_t> EncodeChatPrompt(const Tokenizer& tokenizer, std::string_view rendered);

// Replaces the k-th image placeholder id by tokens_per_image[k] copies of it (likewise
// videos), left to right. The number of placeholders must equal the number of media: a
// mismatch throws kInvalidArgument naming both counts. Pass -1 as a token id to disable that
// kind (its counts must then be empty); counts must be non-negative.
std::vector<int32_t> ExpandMediaPlaceholders(std::span<const int32_t> ids, int32_t image_token_id,
                                             std::span<const int64_t> tokens_per_image,
                                             int32_t video_token_id,
                                             std::span<const int64_t> tokens_per_video);

}  // namespace plm
