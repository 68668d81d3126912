#include "text/unicode_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstdlib>

#include "plm/error.h"
#include "text/utf8.h"

namespace plm {

namespace {

// Unicode White_Space without the brackets, for use inside a character class.
constexpr const char* kWhiteSpaceSet =
    "\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}"
    "\\x{205f}\\x{3000}";
constexpr const char* kWordSet = "\\p{L}\\p{M}\\p{Nd}\\p{Pc}";

// Letters (L) and numbers (N) assigned in Unicode 15.0-16.0. tokenizers' onig uses Unicode 16
// tables while Debian's PCRE2 10.42 has Unicode 14, where these are unassigned; without them
// text in scripts such as Kawi, Garay, Sunuwar or CJK extension I would split differently.
// Measured against tokenizers 0.23 (every code point unassigned in Unicode 14, probed).
constexpr const char* kLettersSince15 =
    "\\x{1c89}-\\x{1c8a}\\x{a7cb}-\\x{a7cd}\\x{a7da}-\\x{a7dc}\\x{105c0}-\\x{105f3}"
    "\\x{10d4a}-\\x{10d65}\\x{10d6f}-\\x{10d85}\\x{10ec2}-\\x{10ec4}"
    "\\x{1123f}-\\x{11240}\\x{11380}-\\x{11389}\\x{1138b}\\x{1138e}"
    "\\x{11390}-\\x{113b5}\\x{113b7}\\x{113d1}\\x{113d3}\\x{11bc0}-\\x{11be0}"
    "\\x{11f02}\\x{11f04}-\\x{11f10}\\x{11f12}-\\x{11f33}\\x{1342f}"
    "\\x{13441}-\\x{13446}\\x{13460}-\\x{143fa}\\x{16100}-\\x{1611d}"
    "\\x{16d40}-\\x{16d6c}\\x{18cff}\\x{1b132}\\x{1b155}\\x{1df25}-\\x{1df2a}"
    "\\x{1e030}-\\x{1e06d}\\x{1e4d0}-\\x{1e4eb}\\x{1e5d0}-\\x{1e5ed}\\x{1e5f0}"
    "\\x{2b739}\\x{2ebf0}-\\x{2ee5d}\\x{31350}-\\x{323af}";
constexpr const char* kNumbersSince15 =
    "\\x{10d40}-\\x{10d49}\\x{116d0}-\\x{116e3}\\x{11bf0}-\\x{11bf9}"
    "\\x{11f50}-\\x{11f59}\\x{16130}-\\x{16139}\\x{16d70}-\\x{16d79}"
    "\\x{1ccf0}-\\x{1ccf9}\\x{1d2c0}-\\x{1d2d3}\\x{1e4f0}-\\x{1e4f9}"
    "\\x{1e5f1}-\\x{1e5fa}";

// True when the linked PCRE2 knows Unicode 16 already (then no additions are needed).
bool Pcre2HasUnicode16() {
  static const bool has = [] {
    char buf[32] = {};
    if (pcre2_config(PCRE2_CONFIG_UNICODE_VERSION, buf) < 0) return false;
    return std::atoi(buf) >= 16;
  }();
  return has;
}
constexpr const char* kHexSet = "0-9a-fA-F";

}  // namespace

std::string TranslateOnigPattern(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 64);
  int class_depth = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[i + 1];
      const char* set = nullptr;
      bool negated = false;
      // \p{L} / \p{N} (and \P{..}) gain the letters and numbers of newer Unicode versions.
      if ((e == 'p' || e == 'P') && !Pcre2HasUnicode16()) {
        const std::string_view rest = p.substr(i + 2);
        const char* extra = nullptr;
        size_t len = 0;
        for (std::string_view name : {"{L}", "{N}", "L", "N"}) {
          if (rest.substr(0, name.size()) == name) {
            extra = name.find('L') != std::string_view::npos ? kLettersSince15 : kNumbersSince15;
            len = name.size();
            break;
          }
        }
        const bool negated_prop = e == 'P';
        if (extra != nullptr && (class_depth == 0 || !negated_prop)) {
          if (class_depth == 0) out += negated_prop ? "[^" : "[";
          out += "\\p";
          out += rest.substr(0, len);
          out += extra;
          if (class_depth == 0) out += "]";
          i += 1 + len;
          continue;
        }
      }
      switch (e) {
        case 's':
          set = kWhiteSpaceSet;
          break;
        case 'S':
          set = kWhiteSpaceSet;
          negated = true;
          break;
        case 'w':
          set = kWordSet;
          break;
        case 'W':
          set = kWordSet;
          negated = true;
          break;
        case 'h':
          set = kHexSet;
          break;
        case 'H':
          set = kHexSet;
          negated = true;
          break;
        default:
          break;
      }
      if (set != nullptr && (class_depth == 0 || !negated)) {
        if (class_depth == 0) {
          out += negated ? "[^" : "[";
          out += set;
          out += "]";
        } else {
          out += set;  // a positive set is a union inside the enclosing class
        }
        ++i;
        continue;
      }
      // Any other escape (or a negated set inside a class, which PCRE2 handles natively
      // close enough) is copied with its escaped character.
      out += c;
      out += e;
      ++i;
      continue;
    }
    if (c == '[') {
      if (class_depth > 0 && i + 1 < p.size() && p[i + 1] == ':') {
        // POSIX class like [:alpha:] inside a bracket expression.
        const size_t close = p.find(":]", i + 2);
        if (close != std::string_view::npos) {
          out.append(p.substr(i, close + 2 - i));
          i = close + 1;
          continue;
        }
      }
      ++class_depth;
      out += c;
      // A ']' right after '[' or '[^' is a literal member.
      if (i + 1 < p.size() && p[i + 1] == '^') {
        out += '^';
        ++i;
      }
      if (i + 1 < p.size() && p[i + 1] == ']') {
        out += ']';
        ++i;
      }
      continue;
    }
    if (c == ']' && class_depth > 0) --class_depth;
    out += c;
  }
  return out;
}

struct UnicodeRegex::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
};

UnicodeRegex::UnicodeRegex(const std::string& pattern, const std::string& what)
    : impl_(std::make_unique<Impl>()) {
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP, &err, &err_offset, nullptr);
  if (impl_->code == nullptr) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof(buf));
    throw Error(ErrorCode::kCorrupt, what + ": cannot compile regex at offset " +
                                         std::to_string(err_offset) + ": " +
                                         reinterpret_cast<const char*>(buf));
  }
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

UnicodeRegex::~UnicodeRegex() {
  if (impl_ && impl_->code != nullptr) pcre2_code_free(impl_->code);
}

namespace {

// One match-data block per thread and pattern size is enough: matching never nests.
pcre2_match_data* ThreadMatchData() {
  struct Holder {
    pcre2_match_data* md = pcre2_match_data_create(32, nullptr);
    ~Holder() { pcre2_match_data_free(md); }
  };
  thread_local Holder holder;
  return holder.md;
}

int Match(const pcre2_code* code, bool jit, std::string_view text, size_t start, uint32_t options,
          pcre2_match_data* md) {
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  if (jit && (options & PCRE2_ANCHORED) == 0) {
    return pcre2_jit_match(code, subject, text.size(), start, options, md, nullptr);
  }
  return pcre2_match(code, subject, text.size(), start, options | PCRE2_NO_UTF_CHECK, md, nullptr);
}

}  // namespace

void UnicodeRegex::FindAll(std::string_view text,
                           std::vector<std::pair<size_t, size_t>>* matches) const {
  matches->clear();
  pcre2_match_data* md = ThreadMatchData();
  size_t pos = 0;
  size_t last_end = std::string_view::npos;
  while (pos <= text.size()) {
    const int rc = Match(impl_->code, impl_->jit, text, pos, 0, md);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR buf[256];
      pcre2_get_error_message(rc, buf, sizeof(buf));
      throw Error(ErrorCode::kInternal,
                  std::string("regex match failed: ") + reinterpret_cast<const char*>(buf));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0];
    const size_t e = ov[1];
    if (b == e) {
      // Empty match: keep it unless it touches the previous match, then step one character.
      if (b != last_end) matches->emplace_back(b, e);
      if (b >= text.size()) break;
      const size_t n = Utf8SequenceLength(text, b);
      pos = b + (n == 0 ? 1 : n);
      last_end = e;
      continue;
    }
    matches->emplace_back(b, e);
    pos = e;
    last_end = e;
  }
}

bool UnicodeRegex::MatchesAt(std::string_view text, size_t offset) const {
  return Match(impl_->code, impl_->jit, text, offset, PCRE2_ANCHORED, ThreadMatchData()) >= 0;
}

}  // namespace plm
