// PerceptionLMProcessor: conversations with images and videos → model inputs, as Hugging Face's
// processor does it (chat template, Llama-3 tokenizer, thumb+tile image tiling, video frames,
// placeholder expansion), and token ids → text.
//
//   auto proc = plm::PerceptionLMProcessor::FromPretrained("path/to/Perception-LM-1B");
//   plm::Conversation conv = {{"user", {plm::ContentPart::Image("cat.jpg"),
//                                       plm::ContentPart::Text("What is this?")}}};
//   plm::ProcessorOutputs in = proc->Process({conv});
//   plm::ForwardInputs fwd = in.AsForwardInputs();
//
// Thread-safety: a loaded processor is immutable; every const method may run concurrently from
// any number of threads. A StreamDecoder belongs to one thread.
#pragma once

#include <array>
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

// A height x width in pixels (the processors' `size` / `crop_size`).
struct PixelSize {
  int height = 0;
  int width = 0;
};

// Per-request media options: the reference processor's call kwargs (HF names), each unset = the
// value in processor_config.json, plus safety limits. As with HF's flat kwargs, an option both
// processors know applies to images and videos alike.
//
//   plm::MediaOptions o;
//   o.max_num_tiles = 4;                    // fewer tiles: fewer tokens, faster
//   o.vision_input_type = "vanilla";        // one squashed tile per image, no thumbnail + grid
//   o.num_frames = 8;                       // uniform video sampling
//   auto in = proc->Process({conv}, o);
struct MediaOptions {
  // Image processor (PerceptionLMImageProcessor).
  std::optional<std::string> vision_input_type;  // "thumb+tile"; anything else: one tile
  std::optional<int> tile_size;      // tile side; changes the tokens per tile (the model's
                                     // vision tower only takes its own tile size)
  std::optional<int> max_num_tiles;  // tiles besides the thumbnail: fewer = fewer tokens, faster
  // Video processor (PerceptionLMVideoProcessor): frame sampling. At most one of the two.
  std::optional<int64_t> num_frames;  // uniform video sampling (HF num_frames)
  std::optional<double> fps;          // video sampling rate (HF fps)
  // Both processors.
  std::optional<bool> do_resize;  // false: no resize and no tiling; images / frames must
                                  // already be tile-sized squares (else kUnsupported)
  std::optional<PixelSize> size;  // video frame size (square); images ignore it, as the
                                  // reference (they use tile_size)
  std::optional<int> resample;    // PIL filter id; only 3 (BICUBIC, the checkpoints' value)
  std::optional<bool> do_rescale;
  std::optional<double> rescale_factor;
  std::optional<bool> do_normalize;
  std::optional<std::array<double, 3>> image_mean;
  std::optional<std::array<double, 3>> image_std;
  // Accepted and, as in the reference, without effect here: media are decoded to RGB before
  // the processors run (the reference's chat-template path converts with PIL first).
  std::optional<bool> do_convert_rgb;
  // Images ignore these (the reference's PerceptionLM image processor never crops or pads);
  // videos honour do_center_crop, but only a crop to the full frame (a no-op) gives frames the
  // vision tower accepts, so other crops are kUnsupported. do_pad is ignored by both.
  std::optional<bool> do_center_crop;
  std::optional<PixelSize> crop_size;
  std::optional<bool> do_pad;

  // Safety limits and threads (not reference options).
  int64_t max_pixels = 178956970;  // per image / frame (Pillow's bomb limit)
  double max_video_seconds = 4 * 3600.0;
  int64_t max_video_frames = 4096;
  int threads = 0;  // preprocessing threads; <= 0: all cores
};

// The processors' settings as loaded from processor_config.json (HF names).
struct ImageProcessorSettings {
  std::string vision_input_type = "thumb+tile";
  int tile_size = 448;
  int max_num_tiles = 36;
  PixelSize size{448, 448};  // read and kept; PerceptionLM tiles with tile_size
  bool do_convert_rgb = true;
  bool do_resize = true;
  int resample = 3;
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  std::array<double, 3> image_mean{0.5, 0.5, 0.5};
  std::array<double, 3> image_std{0.5, 0.5, 0.5};
};
struct VideoProcessorSettings {
  PixelSize size{448, 448};
  std::optional<int64_t> num_frames;  // default sampling (unset in the released checkpoints:
  std::optional<double> fps;          // every frame)
  bool do_convert_rgb = true;
  bool do_resize = true;
  int resample = 3;
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  std::array<double, 3> image_mean{0.5, 0.5, 0.5};
  std::array<double, 3> image_std{0.5, 0.5, 0.5};
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
  int image_tile_size = 0;           // side of the image tiles / video frames (0: none)
  int video_tile_size = 0;

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

  // The loaded processor settings (what a request gets when MediaOptions leaves a field unset).
  ImageProcessorSettings image_processor() const;
  VideoProcessorSettings video_processor() const;
  int64_t patch_size() const;
  int64_t pooling_ratio() const;

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
