// Batches from PerceptionLMProcessor::Process: left and right padding hold the same rows, and a
// right-padded batch through the model gives each row's own logits at its real positions.
#include <gtest/gtest.h>

#include "plm/model.h"
#include "plm/processor.h"
#include "support/test_support.h"

namespace plm {
namespace {

TEST(ProcessorPadding, LeftAndRightPaddingHoldTheSameRows) {
  const std::string root = test::FixturesDir() + "/models";
  int checked = 0;
  for (const auto& m : test::ListDir(root, true)) {
    const std::string dir = root + "/" + m;
    if (!test::PathExists(dir + "/config.json")) continue;
    auto proc = PerceptionLMProcessor::FromPretrained(dir);
    auto model = PerceptionLMForConditionalGeneration::FromPretrained(dir);
    const std::vector<Conversation> convs = {
        {{"user", {ContentPart::Text("Hi.")}}},
        {{"system", {ContentPart::Text("Be brief.")}},
         {"user", {ContentPart::Text("What is the tallest mountain on Earth?")}}}};
    const ProcessorOutputs left = proc->Process(convs, {}, PaddingSide::kLeft);
    const ProcessorOutputs right = proc->Process(convs, {}, PaddingSide::kRight);
    ASSERT_EQ(left.len, right.len);
    const int64_t L = left.len, V = model->config().text.vocab_size;
    for (int64_t b = 0; b < 2; ++b) {
      const ProcessorOutputs one = proc->Process({convs[b]});
      const int64_t n = one.len, pad = L - n;
      for (int64_t i = 0; i < L; ++i) {
        const bool left_real = i >= pad, right_real = i < n;
        EXPECT_EQ(left.attention_mask[b * L + i], left_real ? 1 : 0);
        EXPECT_EQ(right.attention_mask[b * L + i], right_real ? 1 : 0);
        EXPECT_EQ(left.input_ids[b * L + i],
                  left_real ? one.input_ids[i - pad] : proc->pad_token_id());
        EXPECT_EQ(right.input_ids[b * L + i], right_real ? one.input_ids[i] : proc->pad_token_id());
      }
    }
    // Right padding keeps the real tokens at positions 0..n-1: a plain forward of the batch
    // (attention mask on) gives each row's own logits there.
    const ForwardOutputs batch = model->Forward(right.AsForwardInputs());
    for (int64_t b = 0; b < 2; ++b) {
      const ProcessorOutputs one = proc->Process({convs[b]});
      const ForwardOutputs alone = model->Forward(one.AsForwardInputs());
      const double err = test::Compare(batch.logits.ptr() + b * L * V, alone.logits.ptr(),
                                       static_cast<size_t>(one.len * V))
                             .max_abs;
      EXPECT_LE(err, 1e-4) << m << " row " << b;
    }
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace plm
