// Encode throughput of the text layer on a large multilingual text, to compare with Hugging
// Face tokenizers on the same text (tools/bench_hf_tokenizer.py).
//
//   build/bench/tokenizer_bench --write_corpus=/tmp/plm_corpus.txt   # writes the text, exits
//   build/bench/tokenizer_bench --benchmark_counters_tabular=true
//   python3 tools/bench_hf_tokenizer.py /tmp/plm_corpus.txt
//
// The text is generated (no download): the fixture strings plus paragraphs in a dozen scripts,
// shuffled and sprinkled with numbers by a fixed-seed generator, about 8 MB.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/mapped_file.h"
#include "text/chat_template.h"
#include "text/prompt_encoding.h"
#include "text/tokenizer.h"

namespace {

std::string FixturesDir() {
  const char* env = std::getenv("PLM_FIXTURES");
  return env != nullptr && *env != '\0' ? env : PLM_FIXTURES_DEFAULT;
}

std::string TokenizerDir() {
  namespace fs = std::filesystem;
  for (const char* group : {"models", "processors"}) {
    std::error_code ec;
    std::vector<fs::path> dirs;
    for (const auto& e : fs::directory_iterator(fs::path(FixturesDir()) / group, ec))
      if (fs::exists(e.path() / "tokenizer.json")) dirs.push_back(e.path());
    std::sort(dirs.begin(), dirs.end());
    if (!dirs.empty()) return dirs.front().string();
  }
  std::cerr << "tokenizer_bench: no tokenizer.json under " << FixturesDir() << "\n";
  std::exit(1);
}

const char* kParagraphs[] = {
    "The committee met on Tuesday to review the quarterly results. Revenue grew by 12 percent, "
    "while operating costs stayed flat; the board approved a new budget for research and "
    "development, and asked for a detailed plan before the next meeting.",
    "Machine learning models are trained on large datasets. They learn statistical patterns, "
    "which lets them make predictions on inputs they have never seen before. Overfitting "
    "happens when a model memorises noise instead of structure.",
    "Der schnelle braune Fuchs springt über den faulen Hund. Im Frühling blühen die Bäume, "
    "und die Straßen füllen sich mit Menschen, die das warme Wetter genießen möchten.",
    "Le musée ouvre ses portes à neuf heures. Les visiteurs peuvent découvrir des œuvres "
    "d'art très anciennes, ainsi qu'une exposition temporaire consacrée à la photographie.",
    "La ciudad está llena de vida por la noche. Los restaurantes sirven platos típicos y la "
    "música se escucha en cada esquina; nadie quiere volver a casa temprano.",
    "Вчера вечером мы гуляли по набережной и обсуждали планы на лето. Погода была тёплой, а "
    "над рекой летали чайки.",
    "今天天气很好，我们去公园散步。孩子们在草地上玩耍，老人们在树下下棋。晚上我们一起吃饭，聊了很多"
    "有趣的事情。",
    "昨日は東京で友達に会いました。新しいカフェでコーヒーを飲みながら、旅行の計画について話しました"
    "。",
    "오늘 아침에 공원에서 산책을 했습니다. 날씨가 맑아서 많은 사람들이 운동을 하고 있었습니다.",
    "ذهبنا إلى السوق صباح اليوم واشترينا الخضروات والفواكه الطازجة، ثم عدنا إلى البيت لتحضير "
    "الغداء.",
    "आज सुबह हम बाज़ार गए और ताज़ी सब्ज़ियाँ खरीदीं। शाम को पूरा परिवार साथ बैठकर खाना खाया।",
    "Η Αθήνα είναι μια πόλη με μεγάλη ιστορία. Οι επισκέπτες θαυμάζουν την Ακρόπολη και τα "
    "μουσεία της.",
    "def train(model, data, epochs=10):\n    for epoch in range(epochs):\n        loss = "
    "model.step(data)\n        print(f\"epoch {epoch}: loss={loss:.4f}\")\n    return model\n",
    "{\"id\": 1234, \"name\": \"example\", \"tags\": [\"a\", \"b\"], \"score\": 0.875, "
    "\"nested\": {\"ok\": true}}",
    "Great job!!! 🎉🎉 See you tomorrow 👋 — can't wait 😄 #weekend @friends",
};

std::string MakeCorpus(size_t target_bytes) {
  std::vector<std::string> pool(std::begin(kParagraphs), std::end(kParagraphs));
  const plm::Json cases = plm::ReadJsonFile(FixturesDir() + "/tokenizer/encode_decode.json");
  for (const auto& c : cases) pool.push_back(c["text"].get<std::string>());
  std::mt19937_64 rng(1234);
  std::string out;
  out.reserve(target_bytes + 4096);
  while (out.size() < target_bytes) {
    const std::string& p = pool[rng() % pool.size()];
    // Split into space-separated words, shuffle a window, insert a number now and then.
    std::vector<std::string> words;
    size_t start = 0;
    while (start <= p.size()) {
      const size_t sp = p.find(' ', start);
      words.push_back(p.substr(start, sp == std::string::npos ? std::string::npos : sp - start));
      if (sp == std::string::npos) break;
      start = sp + 1;
    }
    if (words.size() > 3) std::shuffle(words.begin() + 1, words.end() - 1, rng);
    for (size_t i = 0; i < words.size(); ++i) {
      if (i) out += ' ';
      out += words[i];
      if (rng() % 11 == 0) out += " " + std::to_string(rng() % 100000);
    }
    out += rng() % 3 == 0 ? "\n\n" : "\n";
  }
  return out;
}

const std::string& Corpus() {
  static const std::string corpus = MakeCorpus(size_t{8} << 20);
  return corpus;
}

const plm::Tokenizer& Tok() {
  static const plm::Tokenizer tok = plm::Tokenizer::FromDirectory(TokenizerDir());
  return tok;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size() - 1;
    lines.push_back(text.substr(start, nl + 1 - start));
    start = nl + 1;
  }
  return lines;
}

// The whole text in one call.
void BM_EncodeWholeText(benchmark::State& state) {
  const std::string& text = Corpus();
  const plm::Tokenizer& tok = Tok();
  size_t tokens = 0;
  for (auto _ : state) {
    auto ids = tok.Encode(text, false);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(tokens);
  state.counters["MB/s"] = benchmark::Counter(static_cast<double>(text.size()) / 1e6,
                                              benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_EncodeWholeText)->Unit(benchmark::kMillisecond)->MinTime(2.0);

// Line by line, as prompts arrive (one call per line).
void BM_EncodePerLine(benchmark::State& state) {
  static const std::vector<std::string> lines = Lines(Corpus());
  const plm::Tokenizer& tok = Tok();
  for (auto _ : state) {
    size_t n = 0;
    for (const std::string& l : lines) n += tok.Encode(l, false).size();
    benchmark::DoNotOptimize(n);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * Corpus().size()));
  state.counters["MB/s"] = benchmark::Counter(static_cast<double>(Corpus().size()) / 1e6,
                                              benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_EncodePerLine)->Unit(benchmark::kMillisecond)->MinTime(2.0);

// Cold cache: every word is merged from scratch (worst case, first sight of a text).
void BM_EncodeColdCache(benchmark::State& state) {
  const std::string text = Corpus().substr(0, size_t{1} << 20);
  for (auto _ : state) {
    state.PauseTiming();
    static plm::Tokenizer* fresh = nullptr;
    delete fresh;
    fresh = new plm::Tokenizer(plm::Tokenizer::FromDirectory(TokenizerDir()));
    state.ResumeTiming();
    auto ids = fresh->Encode(text, false);
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["MB/s"] = benchmark::Counter(static_cast<double>(text.size()) / 1e6,
                                              benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_EncodeColdCache)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_Decode(benchmark::State& state) {
  const auto ids = Tok().Encode(Corpus(), false);
  for (auto _ : state) {
    auto text = Tok().Decode(ids);
    benchmark::DoNotOptimize(text.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * Corpus().size()));
}
BENCHMARK(BM_Decode)->Unit(benchmark::kMillisecond);

void BM_LoadTokenizer(benchmark::State& state) {
  const std::string dir = TokenizerDir();
  for (auto _ : state) benchmark::DoNotOptimize(plm::Tokenizer::FromDirectory(dir).vocab_size());
}
BENCHMARK(BM_LoadTokenizer)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_RenderAndEncodeChat(benchmark::State& state) {
  const std::string dir = TokenizerDir();
  const plm::ChatTemplate tmpl = plm::ChatTemplate::FromDirectory(dir);
  const auto messages = nlohmann::ordered_json::parse(
      R"([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image in detail."}]},
          {"role": "assistant", "content": [{"type": "text", "text": "A cat sits on a red sofa next to a window."}]},
          {"role": "user", "content": [{"type": "text", "text": "What colour is the cat?"}]}])");
  for (auto _ : state) {
    auto ids = plm::EncodeChatPrompt(Tok(), tmpl.Render(messages, true));
    benchmark::DoNotOptimize(ids.data());
  }
}
BENCHMARK(BM_RenderAndEncodeChat)->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--write_corpus=", 15) == 0) {
      std::ofstream(argv[i] + 15, std::ios::binary) << Corpus();
      std::cout << "wrote " << Corpus().size() << " bytes to " << (argv[i] + 15) << "\n";
      return 0;
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
