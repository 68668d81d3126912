// PerceptionLMProcessor: conversations with images and videos → model inputs, as Hugging Face's
// processor does it (chat template, Llama-3 tokenizer, thumb+tile image tiling, video frames,
// placeholder expansion), and token ids → text.
//
//   auto proc = plm::PerceptionLMProcessor::FromPretrained("path/to/Perception-LM-1B");
//   plm::Conversation conv = {{"user", {plm::ContentPart::Image("cat.jpg"),
//                                       plm::ContentPart::Text("What is this?")}}};
//   plm::ProcessorOutputs in = proc->Process({conv});
//   plm::ForwardInputs fwd = in.AsForwardInputs();
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "plm/model.h"

namespace plm {

struct ContentPart {
  enum class Type { kText, kImage, kVideo };
  Type type = Type::kText;
  std::string text;            // kText
  std::string path;            // kImage / kVideo: image file, video file, frame folder or .npy
  std::vector<uint8_t> bytes;  // kImage / kVideo alternative: the encoded file contents
  std::string name;            // how errors refer to `bytes` (e.g. "image 1")

  static ContentPart Text(std::string text);
  static ContentPart Image(std::string path);
  static ContentPart Video(std::string path);
  static ContentPart ImageBytes(std::vector<uint8_t> bytes, std::string name);
  static ContentPart VideoBytes(std::vector<uint8_t> bytes, std::string name);
};

struct Message {
  std::string role;  // "system", "user", "assistant"
  std::vector<ContentPart> content;
};
using Conversation = std::vector<Message>;

// Per-request media options (the reference's processor kwargs) and safety limits.
struct MediaOptions {
  std::optional<int> max_num_tiles;   // fewer tiles = fewer tokens, faster
  std::optional<int64_t> num_frames;  // uniform video sampling (HF num_frames)
  std::optional<double> fps;          // video sampling rate (HF fps)
  int64_t max_pixels = 178956970;     // per image / frame (Pillow's bomb limit)
  double max_video_seconds = 4 * 3600.0;
  int64_t max_video_frames = 4096;
  int threads = 0;  // preprocessing threads; <= 0: all cores
};

enum class PaddingSide { kLeft, kRight };

struct ProcessorOutputs {
  std::vector<int64_t> input_ids;       // [batch, len]
  std::vector<int64_t> attention_mask;  // [batch, len]
  int64_t batch = 0, len = 0;
  std::vector<float> pixel_values;  // [image_tiles, 3, T, T], images in prompt order
  int64_t image_tiles = 0;
  std::vector<int64_t> tiles_per_image;
  std::vector<float> pixel_values_videos;  // [video_frames, 3, T, T]
  int64_t video_frames = 0;
  std::vector<int64_t> frames_per_video;
  std::vector<std::string> prompts;  // rendered chat templates

  // A view for the model (pointers into this object; keep it alive).
  ForwardInputs AsForwardInputs() const;
};

class PerceptionLMProcessor {
 public:
  // Reads tokenizer.json, tokenizer_config.json, the chat template and the processor configs.
  static std::unique_ptr<PerceptionLMProcessor> FromPretrained(const std::string& model_dir);
  ~PerceptionLMProcessor();

  // The rendered chat template (what apply_chat_template(tokenize=False) returns).
  std::string ApplyChatTemplate(const Conversation& conversation,
                                bool add_generation_prompt = true) const;
  // Token ids of a rendered prompt: special tokens matched, and no second BOS when the prompt
  // already starts with it (apply_chat_template(tokenize=True)).
  std::vector<int64_t> EncodePrompt(const std::string& prompt) const;
  std::vector<int64_t> Encode(const std::string& text, bool add_special_tokens) const;
  std::string Decode(std::span<const int64_t> ids, bool skip_special_tokens = true) const;

  // Conversations → padded ids, attention mask and pixels. Media are decoded and preprocessed;
  // each <|image|>/<|video|> placeholder becomes tiles × tokens-per-tile ids.
  ProcessorOutputs Process(const std::vector<Conversation>& conversations,
                           const MediaOptions& options = {},
                           PaddingSide padding = PaddingSide::kLeft,
                           bool add_generation_prompt = true) const;

  // Prompt tokens a conversation will cost, from media headers only (no pixel work).
  int64_t CountTokens(const Conversation& conversation, const MediaOptions& options = {},
                      bool add_generation_prompt = true) const;

  int64_t pad_token_id() const;
  int64_t image_token_id() const;
  int64_t video_token_id() const;
  int64_t tokens_per_tile() const;

  // Incremental detokenizer for streaming: returns only complete UTF-8 text.
  class StreamDecoder {
   public:
    virtual ~StreamDecoder() = default;
    virtual std::string Push(int64_t id) = 0;
    virtual std::string Flush() = 0;
  };
  std::unique_ptr<StreamDecoder> NewStreamDecoder(bool skip_special_tokens = true) const;

  struct Impl;

 private:
  explicit PerceptionLMProcessor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace plm
