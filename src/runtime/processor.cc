#include <sys/stat.h>

#include <algorithm>
#include <mutex>

#include "core/json.h"
#include "io/image_decode.h"
#include "io/image_processor.h"
#include "io/media_limits.h"
#include "io/video_processor.h"
#include "io/video_reader.h"
#include "io/video_source.h"
#include "plm/error.h"
#include "plm/processor.h"
#include "text/chat_template.h"
#include "text/prompt_encoding.h"
#include "text/streaming_decoder.h"
#include "text/tokenizer.h"

namespace plm {

ContentPart ContentPart::Text(std::string text) {
  ContentPart p;
  p.type = Type::kText;
  p.text = std::move(text);
  return p;
}
ContentPart ContentPart::Image(std::string path) {
  ContentPart p;
  p.type = Type::kImage;
  p.path = std::move(path);
  return p;
}
ContentPart ContentPart::Video(std::string path) {
  ContentPart p;
  p.type = Type::kVideo;
  p.path = std::move(path);
  return p;
}
ContentPart ContentPart::ImageBytes(std::vector<uint8_t> bytes, std::string name) {
  ContentPart p;
  p.type = Type::kImage;
  p.bytes = std::move(bytes);
  p.name = std::move(name);
  return p;
}
ContentPart ContentPart::VideoBytes(std::vector<uint8_t> bytes, std::string name) {
  ContentPart p;
  p.type = Type::kVideo;
  p.bytes = std::move(bytes);
  p.name = std::move(name);
  return p;
}

ForwardInputs ProcessorOutputs::AsForwardInputs() const {
  ForwardInputs in;
  in.input_ids = input_ids;
  in.attention_mask = attention_mask;
  in.batch = batch;
  in.len = len;
  if (image_tiles > 0) in.pixel_values = {pixel_values.data(), image_tiles, image_tile_size};
  if (video_frames > 0)
    in.pixel_values_videos = {pixel_values_videos.data(), video_frames, video_tile_size};
  return in;
}

struct PerceptionLMProcessor::Impl {
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ChatTemplate> chat_template;
  std::unique_ptr<ImageProcessor> image_processor;
  VideoProcessorConfig video_config;
  int64_t image_token_id = 128002, video_token_id = 128003;

  DecodeLimits Limits(const MediaOptions& o) const {
    DecodeLimits l;
    l.max_pixels = o.max_pixels;
    l.max_video_seconds = o.max_video_seconds;
    l.max_video_frames = o.max_video_frames;
    return l;
  }
  static VideoOptions VideoOpts(const MediaOptions& o) {
    VideoOptions v;
    v.sampling.num_frames = o.num_frames;
    v.sampling.fps = o.fps;
    v.num_threads = o.threads;
    return v;
  }
  static ImageOptions ImageOpts(const MediaOptions& o) {
    ImageOptions i;
    i.num_threads = o.threads;
    return i;
  }
  // The call kwargs the image and video processors share (same field names in both configs).
  template <typename Config>
  static void ApplyPixelOptions(const MediaOptions& o, Config& c) {
    if (o.do_resize) c.do_resize = *o.do_resize;
    if (o.resample) c.resample = *o.resample;
    if (o.do_rescale) c.do_rescale = *o.do_rescale;
    if (o.rescale_factor) c.rescale_factor = *o.rescale_factor;
    if (o.do_normalize) c.do_normalize = *o.do_normalize;
    if (o.image_mean) c.image_mean = *o.image_mean;
    if (o.image_std) c.image_std = *o.image_std;
    if (o.do_convert_rgb) c.do_convert_rgb = *o.do_convert_rgb;
  }
  // The image processor config with the request's overrides (HF's call kwargs).
  ImageProcessorConfig ImageConfig(const MediaOptions& o) const {
    ImageProcessorConfig c = image_processor->config();
    if (o.vision_input_type) c.vision_input_type = *o.vision_input_type;
    if (o.tile_size) c.tile_size = *o.tile_size;
    if (o.max_num_tiles) c.max_num_tiles = *o.max_num_tiles;
    ApplyPixelOptions(o, c);
    // size, do_center_crop, crop_size, do_pad: not used by PerceptionLM's image processor.
    c.Check(ErrorCode::kInvalidArgument, "image processor options");
    return c;
  }
  VideoProcessorConfig VideoConfig(const MediaOptions& o) const {
    VideoProcessorConfig c = video_config;
    if (o.size) {
      c.size_height = o.size->height;
      c.size_width = o.size->width;
    }
    ApplyPixelOptions(o, c);
    c.Check(ErrorCode::kInvalidArgument, "video processor options");
    if (o.do_center_crop.value_or(false)) {
      if (!o.crop_size) throw Error(ErrorCode::kInvalidArgument, "do_center_crop needs crop_size");
      if (o.crop_size->height != c.size_height || o.crop_size->width != c.size_width)
        throw Error(ErrorCode::kUnsupported,
                    "video center crop to " + std::to_string(o.crop_size->width) + "x" +
                        std::to_string(o.crop_size->height) + " gives frames the vision tower " +
                        "cannot take (it needs the frame size " + std::to_string(c.size_width) +
                        "x" + std::to_string(c.size_height) + ")");
    }
    return c;
  }
  std::unique_ptr<VideoFrameSource> OpenVideoPart(const ContentPart& p,
                                                  const DecodeLimits& limits) const {
    if (!p.bytes.empty())
      return OpenVideoMemory(p.bytes, p.name.empty() ? "video" : p.name, limits);
    return OpenVideo(p.path, limits);
  }
  Json ToJson(const Conversation& conv) const {
    Json msgs = Json::array();
    for (const auto& m : conv) {
      Json content = Json::array();
      for (const auto& part : m.content) {
        switch (part.type) {
          case ContentPart::Type::kText:
            content.push_back({{"type", "text"}, {"text", part.text}});
            break;
          case ContentPart::Type::kImage:
            content.push_back({{"type", "image"}});
            break;
          case ContentPart::Type::kVideo:
            content.push_back({{"type", "video"}});
            break;
        }
      }
      // A system message with only text is passed as a plain string, which the PerceptionLM
      // template requires for system prompts (it trims `messages[0].content`).
      if (m.role == "system" &&
          std::all_of(m.content.begin(), m.content.end(),
                      [](const ContentPart& p) { return p.type == ContentPart::Type::kText; })) {
        std::string text;
        for (const auto& p : m.content) text += p.text;
        msgs.push_back({{"role", m.role}, {"content", text}});
      } else {
        msgs.push_back({{"role", m.role}, {"content", content}});
      }
    }
    return msgs;
  }
};

PerceptionLMProcessor::PerceptionLMProcessor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PerceptionLMProcessor::~PerceptionLMProcessor() = default;

std::unique_ptr<PerceptionLMProcessor> PerceptionLMProcessor::FromPretrained(
    const std::string& dir) {
  auto impl = std::make_unique<Impl>();
  impl->tokenizer = std::make_unique<Tokenizer>(Tokenizer::FromDirectory(dir));
  impl->chat_template = std::make_unique<ChatTemplate>(ChatTemplate::FromDirectory(dir));
  impl->image_processor = std::make_unique<ImageProcessor>(ImageProcessorConfig::Load(dir));
  impl->video_config = VideoProcessorConfig::Load(dir);
  // Placeholder ids come from the model config when present (they are the model's contract).
  struct stat st;
  const std::string cfg_path = dir + "/config.json";
  if (::stat(cfg_path.c_str(), &st) == 0) {
    const Json cfg = ReadJsonFile(cfg_path);
    impl->image_token_id = JsonIntOr(cfg, "image_token_id", impl->image_token_id, cfg_path);
    impl->video_token_id = JsonIntOr(cfg, "video_token_id", impl->video_token_id, cfg_path);
  }
  return std::unique_ptr<PerceptionLMProcessor>(new PerceptionLMProcessor(std::move(impl)));
}

std::string PerceptionLMProcessor::ApplyChatTemplate(const Conversation& conv,
                                                     bool add_generation_prompt) const {
  return impl_->chat_template->Render(impl_->ToJson(conv), add_generation_prompt);
}

std::vector<int64_t> PerceptionLMProcessor::EncodePrompt(const std::string& prompt) const {
  const auto ids = EncodeChatPrompt(*impl_->tokenizer, prompt);
  return {ids.begin(), ids.end()};
}

std::vector<int64_t> PerceptionLMProcessor::Encode(const std::string& text,
                                                   bool add_special_tokens) const {
  const auto ids = impl_->tokenizer->Encode(text, add_special_tokens);
  return {ids.begin(), ids.end()};
}

std::string PerceptionLMProcessor::Decode(std::span<const int64_t> ids,
                                          bool skip_special_tokens) const {
  std::vector<int32_t> v;
  v.reserve(ids.size());
  for (int64_t id : ids) {
    if (id < 0 || id >= static_cast<int64_t>(impl_->tokenizer->vocab_size()))
      throw Error(ErrorCode::kInvalidArgument,
                  "token id " + std::to_string(id) + " is outside the vocabulary");
    v.push_back(static_cast<int32_t>(id));
  }
  return impl_->tokenizer->Decode(v, skip_special_tokens);
}

namespace {

// The settings the image and video processors share (same field names in configs and settings).
template <typename Config, typename Settings>
void CopyPixelSettings(const Config& c, Settings& s) {
  s.do_convert_rgb = c.do_convert_rgb;
  s.do_resize = c.do_resize;
  s.resample = c.resample;
  s.do_rescale = c.do_rescale;
  s.rescale_factor = c.rescale_factor;
  s.do_normalize = c.do_normalize;
  s.image_mean = c.image_mean;
  s.image_std = c.image_std;
}

}  // namespace

ImageProcessorSettings PerceptionLMProcessor::image_processor() const {
  const ImageProcessorConfig& c = impl_->image_processor->config();
  ImageProcessorSettings s;
  s.vision_input_type = c.vision_input_type;
  s.tile_size = c.tile_size;
  s.max_num_tiles = c.max_num_tiles;
  s.size = {c.size_height, c.size_width};
  CopyPixelSettings(c, s);
  return s;
}

VideoProcessorSettings PerceptionLMProcessor::video_processor() const {
  const VideoProcessorConfig& c = impl_->video_config;
  VideoProcessorSettings s;
  s.size = {c.size_height, c.size_width};
  s.num_frames = c.default_sampling.num_frames;
  s.fps = c.default_sampling.fps;
  CopyPixelSettings(c, s);
  return s;
}

int64_t PerceptionLMProcessor::patch_size() const {
  return impl_->image_processor->config().patch_size;
}
int64_t PerceptionLMProcessor::pooling_ratio() const {
  return impl_->image_processor->config().pooling_ratio;
}

int64_t PerceptionLMProcessor::pad_token_id() const {
  return impl_->tokenizer->pad_token_id();
}
int64_t PerceptionLMProcessor::image_token_id() const {
  return impl_->image_token_id;
}
int64_t PerceptionLMProcessor::video_token_id() const {
  return impl_->video_token_id;
}
int64_t PerceptionLMProcessor::tokens_per_tile() const {
  return impl_->image_processor->TokensPerTile();
}

namespace {

class StreamDecoderImpl : public PerceptionLMProcessor::StreamDecoder {
 public:
  StreamDecoderImpl(const Tokenizer& t, bool skip) : dec_(t, skip) {}
  std::string Push(int64_t id) override { return dec_.Put(static_cast<int32_t>(id)); }
  std::string Flush() override { return dec_.Flush(); }

 private:
  StreamingDecoder dec_;
};

}  // namespace

std::unique_ptr<PerceptionLMProcessor::StreamDecoder> PerceptionLMProcessor::NewStreamDecoder(
    bool skip_special_tokens) const {
  return std::make_unique<StreamDecoderImpl>(*impl_->tokenizer, skip_special_tokens);
}

int64_t PerceptionLMProcessor::CountTokens(const Conversation& conv, const MediaOptions& options,
                                           bool add_generation_prompt) const {
  const std::string prompt = ApplyChatTemplate(conv, add_generation_prompt);
  const auto ids = EncodeChatPrompt(*impl_->tokenizer, prompt);
  int64_t total = static_cast<int64_t>(ids.size());
  const DecodeLimits limits = impl_->Limits(options);
  // Built on first use: options are checked only for the media a request has (as the reference
  // validates each processor's kwargs when it runs).
  std::optional<ImageProcessor> ip;
  std::optional<VideoProcessor> vp;
  for (const auto& m : conv) {
    for (const auto& p : m.content) {
      if (p.type == ContentPart::Type::kImage) {
        const ImageInfo info = p.bytes.empty()
                                   ? ProbeImageFile(p.path, limits)
                                   : ProbeImage(p.bytes, p.name.empty() ? "image" : p.name, limits);
        if (!ip) ip.emplace(impl_->ImageConfig(options));
        total += ip->CountTokens(info.oriented_width(), info.oriented_height(),
                                 Impl::ImageOpts(options)) -
                 1;
      } else if (p.type == ContentPart::Type::kVideo) {
        auto src = impl_->OpenVideoPart(p, limits);
        if (!vp) vp.emplace(impl_->VideoConfig(options), limits);
        total += vp->CountTokens(src->info(), Impl::VideoOpts(options)) - 1;
      }
    }
  }
  return total;
}

ProcessorOutputs PerceptionLMProcessor::Process(const std::vector<Conversation>& conversations,
                                                const MediaOptions& options, PaddingSide padding,
                                                bool add_generation_prompt) const {
  if (conversations.empty()) throw Error(ErrorCode::kInvalidArgument, "no conversation to process");
  ProcessorOutputs out;
  const DecodeLimits limits = impl_->Limits(options);
  std::optional<ImageProcessor> ip;  // built on first use, as in CountTokens
  std::optional<VideoProcessor> vp;
  std::vector<std::vector<int64_t>> rows;
  for (const auto& conv : conversations) {
    std::vector<int64_t> image_tokens, video_tokens;
    for (const auto& m : conv) {
      for (const auto& p : m.content) {
        if (p.type == ContentPart::Type::kImage) {
          const Image img = p.bytes.empty()
                                ? LoadImageFile(p.path, limits)
                                : DecodeImage(p.bytes, p.name.empty() ? "image" : p.name, limits);
          if (!ip) ip.emplace(impl_->ImageConfig(options));
          ProcessedImage pi = ip->Preprocess(img, Impl::ImageOpts(options));
          out.pixel_values.insert(out.pixel_values.end(), pi.pixel_values.begin(),
                                  pi.pixel_values.end());
          out.image_tiles += pi.num_tiles;
          out.tiles_per_image.push_back(pi.num_tiles);
          image_tokens.push_back(pi.num_tiles * ip->TokensPerTile());
          out.image_tile_size = pi.tile_size;
        } else if (p.type == ContentPart::Type::kVideo) {
          auto src = impl_->OpenVideoPart(p, limits);
          if (!vp) vp.emplace(impl_->VideoConfig(options), limits);
          ProcessedVideo pv = vp->Preprocess(*src, Impl::VideoOpts(options));
          out.pixel_values_videos.insert(out.pixel_values_videos.end(), pv.pixel_values.begin(),
                                         pv.pixel_values.end());
          out.video_frames += pv.num_frames;
          out.frames_per_video.push_back(pv.num_frames);
          video_tokens.push_back(pv.num_frames * vp->TokensPerFrame());
          out.video_tile_size = pv.tile_size;
        }
      }
    }
    const std::string prompt = ApplyChatTemplate(conv, add_generation_prompt);
    out.prompts.push_back(prompt);
    const auto ids32 = EncodeChatPrompt(*impl_->tokenizer, prompt);
    const auto expanded =
        ExpandMediaPlaceholders(ids32, static_cast<int32_t>(impl_->image_token_id), image_tokens,
                                static_cast<int32_t>(impl_->video_token_id), video_tokens);
    rows.emplace_back(expanded.begin(), expanded.end());
  }
  out.batch = static_cast<int64_t>(rows.size());
  for (const auto& r : rows) out.len = std::max<int64_t>(out.len, static_cast<int64_t>(r.size()));
  const int64_t pad = pad_token_id();
  out.input_ids.assign(static_cast<size_t>(out.batch * out.len), pad);
  out.attention_mask.assign(out.input_ids.size(), 0);
  for (int64_t b = 0; b < out.batch; ++b) {
    const auto& r = rows[b];
    const int64_t off =
        padding == PaddingSide::kLeft ? out.len - static_cast<int64_t>(r.size()) : 0;
    for (size_t i = 0; i < r.size(); ++i) {
      out.input_ids[b * out.len + off + static_cast<int64_t>(i)] = r[i];
      out.attention_mask[b * out.len + off + static_cast<int64_t>(i)] = 1;
    }
  }
  return out;
}

}  // namespace plm
