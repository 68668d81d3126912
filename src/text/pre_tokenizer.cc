#include "text/pre_tokenizer.h"

#include <algorithm>

#include "plm/error.h"

namespace plm {

namespace {

// The GPT-2 pattern the ByteLevel pre-tokenizer applies when use_regex is true.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string TypeOf(const Json& j, const std::string& what) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    throw Error(ErrorCode::kCorrupt, what + ": pre_tokenizer entry without a \"type\"");
  return j["type"].get<std::string>();
}

}  // namespace

PreTokenizer PreTokenizer::FromJson(const Json& j, const std::string& what) {
  PreTokenizer p;
  if (!j.is_null()) p.AddFromJson(j, what);
  return p;
}

void PreTokenizer::AddFromJson(const Json& j, const std::string& what) {
  const std::string type = TypeOf(j, what);
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array())
      throw Error(ErrorCode::kCorrupt, what + ": Sequence pre_tokenizer without \"pretokenizers\"");
    for (const Json& sub : j["pretokenizers"]) AddFromJson(sub, what);
    return;
  }
  if (byte_level_) {
    // The regexes of later steps would see byte-level characters; no Llama-style tokenizer
    // does that, so refuse instead of guessing.
    throw Error(ErrorCode::kUnsupported,
                what + ": pre_tokenizer step \"" + type + "\" after ByteLevel is not supported");
  }
  if (type == "ByteLevel") {
    if (JsonBoolOr(j, "add_prefix_space", true, what)) {
      Step s;
      s.kind = Step::Kind::kPrefixSpace;
      steps_.push_back(std::move(s));
    }
    if (JsonBoolOr(j, "use_regex", true, what)) {
      Step s;
      s.regex = std::make_shared<UnicodeRegex>(TranslateOnigPattern(kGpt2Pattern),
                                               what + ": ByteLevel regex");
      steps_.push_back(std::move(s));
    }
    byte_level_ = true;
    return;
  }
  if (type == "Split") {
    Step s;
    if (!j.contains("pattern") || !j["pattern"].is_object())
      throw Error(ErrorCode::kCorrupt, what + ": Split pre_tokenizer without a \"pattern\"");
    const Json& pat = j["pattern"];
    if (pat.contains("Regex") && pat["Regex"].is_string()) {
      s.regex = std::make_shared<UnicodeRegex>(
          TranslateOnigPattern(pat["Regex"].get<std::string>()), what + ": Split regex");
    } else if (pat.contains("String") && pat["String"].is_string()) {
      s.kind = Step::Kind::kLiteral;
      s.literal = pat["String"].get<std::string>();
    } else {
      throw Error(ErrorCode::kCorrupt, what +
                                           ": Split pattern must be {\"Regex\": ...} or "
                                           "{\"String\": ...}");
    }
    const std::string behavior = JsonStringOr(j, "behavior", "Isolated", what);
    if (behavior == "Removed")
      s.behavior = Behavior::kRemoved;
    else if (behavior == "Isolated")
      s.behavior = Behavior::kIsolated;
    else if (behavior == "MergedWithPrevious")
      s.behavior = Behavior::kMergedWithPrevious;
    else if (behavior == "MergedWithNext")
      s.behavior = Behavior::kMergedWithNext;
    else if (behavior == "Contiguous")
      s.behavior = Behavior::kContiguous;
    else
      throw Error(ErrorCode::kCorrupt, what + ": unknown Split behavior \"" + behavior + "\"");
    s.invert = JsonBoolOr(j, "invert", false, what);
    steps_.push_back(std::move(s));
    return;
  }
  throw Error(ErrorCode::kUnsupported, what + ": pre_tokenizer type \"" + type +
                                           "\" is not supported (byte-level BPE only)");
}

void PreTokenizer::ApplySplit(const Step& step, std::string_view piece,
                              std::vector<std::string_view>* out,
                              std::vector<std::pair<size_t, size_t>>* scratch) const {
  // Matches as (begin, end); then the covering list of (range, is_match).
  if (step.kind == Step::Kind::kRegex) {
    step.regex->FindAll(piece, scratch);
  } else {
    scratch->clear();
    if (!step.literal.empty()) {
      size_t at = 0;
      while ((at = piece.find(step.literal, at)) != std::string_view::npos) {
        scratch->emplace_back(at, at + step.literal.size());
        at += step.literal.size();
      }
    }
  }
  // Fast path for the common Isolated case: every match and every gap is its own word.
  struct Part {
    size_t b, e;
    bool match;
  };
  thread_local std::vector<Part> parts;
  parts.clear();
  size_t prev = 0;
  for (const auto& [b, e] : *scratch) {
    if (prev != b) parts.push_back({prev, b, step.invert});
    parts.push_back({b, e, !step.invert});
    prev = e;
  }
  if (prev != piece.size()) parts.push_back({prev, piece.size(), step.invert});

  std::vector<Part> merged;
  const std::vector<Part>* use = &parts;
  switch (step.behavior) {
    case Behavior::kIsolated:
      break;
    case Behavior::kRemoved: {
      for (const Part& p : parts)
        if (!p.match) merged.push_back(p);
      use = &merged;
      break;
    }
    case Behavior::kContiguous: {
      bool prev_match = false;
      for (const Part& p : parts) {
        if (p.match == prev_match && !merged.empty())
          merged.back().e = p.e;
        else
          merged.push_back(p);
        prev_match = p.match;
      }
      use = &merged;
      break;
    }
    case Behavior::kMergedWithPrevious: {
      bool prev_match = false;
      for (const Part& p : parts) {
        if (p.match && !prev_match && !merged.empty())
          merged.back().e = p.e;
        else
          merged.push_back(p);
        prev_match = p.match;
      }
      use = &merged;
      break;
    }
    case Behavior::kMergedWithNext: {
      bool prev_match = false;
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->match && !prev_match && !merged.empty())
          merged.back().b = it->b;
        else
          merged.push_back(*it);
        prev_match = it->match;
      }
      std::reverse(merged.begin(), merged.end());
      use = &merged;
      break;
    }
  }
  for (const Part& p : *use)
    if (p.e > p.b) out->push_back(piece.substr(p.b, p.e - p.b));
}

void PreTokenizer::Split(std::string_view text, std::vector<std::string_view>* words,
                         std::vector<std::unique_ptr<std::string>>* arena) const {
  words->clear();
  if (text.empty()) return;
  words->push_back(text);
  std::vector<std::string_view> next;
  std::vector<std::pair<size_t, size_t>> scratch;
  for (const Step& step : steps_) {
    next.clear();
    if (step.kind == Step::Kind::kPrefixSpace) {
      for (std::string_view w : *words) {
        if (!w.empty() && w[0] == ' ') {
          next.push_back(w);
        } else {
          auto prefixed = std::make_unique<std::string>();
          prefixed->reserve(w.size() + 1);
          prefixed->push_back(' ');
          prefixed->append(w);
          next.push_back(*prefixed);
          arena->push_back(std::move(prefixed));
        }
      }
    } else {
      for (std::string_view w : *words) ApplySplit(step, w, &next, &scratch);
    }
    words->swap(next);
  }
}

}  // namespace plm
