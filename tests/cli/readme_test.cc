// The README must not rot: its runnable shell blocks (those whose first line is the marker
// comment below) run from the source folder and exit 0, every flag `plm run/chat/info --help`
// lists is documented, and the real Hub ids are there.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "cli/cli_util.h"
#include "support/test_support.h"

namespace plm {
namespace {

constexpr const char* kMarker = "# tested: the test suite runs every line of this block";

std::string Readme() {
  std::ifstream f(std::string(PLM_SOURCE_DIR) + "/README.md");
  return {std::istreambuf_iterator<char>(f), {}};
}

// Lines of the fenced blocks that start with the marker.
std::vector<std::string> RunnableCommands(const std::string& md) {
  std::vector<std::string> out;
  std::istringstream in(md);
  std::string line;
  bool in_block = false, runnable = false, first = false;
  while (std::getline(in, line)) {
    if (line.rfind("```", 0) == 0) {
      in_block = !in_block;
      runnable = false;
      first = in_block;
      continue;
    }
    if (!in_block) continue;
    if (first) {
      first = false;
      runnable = line == kMarker;
      continue;
    }
    if (runnable && !line.empty() && line[0] != '#') out.push_back(line);
  }
  return out;
}

TEST(Readme, RunnableExamplesSucceed) {
  const auto commands = RunnableCommands(Readme());
  ASSERT_GE(commands.size(), 3u) << "README.md has no runnable blocks (marker: " << kMarker << ")";
  for (std::string cmd : commands) {
    // `build/` in the README is the default build folder; use this build's.
    size_t at;
    while ((at = cmd.find("build/")) != std::string::npos &&
           (at == 0 || cmd[at - 1] == ' ' || cmd[at - 1] == '|'))
      cmd.replace(at, 6, std::string(PLM_BINARY_DIR) + "/");
    test::RunOptions o;
    o.cwd = PLM_SOURCE_DIR;
    o.unset_env = test::HubEnvironmentVariables();
    const test::RunResult r = test::Run("/bin/bash", {"-o", "pipefail", "-c", cmd}, o);
    EXPECT_EQ(r.code, 0) << cmd << "\n" << r.err;
    EXPECT_FALSE(r.out.empty()) << cmd;
  }
}

TEST(Readme, DocumentsEveryFlagAndTheHubIds) {
  const std::string md = Readme();
  for (const std::string sub : {"run", "chat", "info"}) {
    const test::RunResult help = test::RunPlm({sub, "--help"});
    ASSERT_EQ(help.code, 0);
    std::set<std::string> flags;
    const std::regex re("(^|[ ,])(--[a-z][a-z0-9-]*)");
    for (auto it = std::sregex_iterator(help.out.begin(), help.out.end(), re);
         it != std::sregex_iterator(); ++it)
      flags.insert((*it)[2]);
    ASSERT_FALSE(flags.empty());
    for (const auto& f : flags) {
      if (f == "--help") continue;
      EXPECT_NE(md.find("`" + f), std::string::npos)
          << "README.md does not document plm " << sub << " " << f;
    }
  }
  for (const char* id :
       {"facebook/Perception-LM-1B", "facebook/Perception-LM-3B", "facebook/Perception-LM-8B"})
    EXPECT_NE(md.find(id), std::string::npos) << id;
}

}  // namespace
}  // namespace plm
