// Running the `plm` binary (and the example programs) from tests: arguments, environment,
// standard input, captured output and exit code.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace plm::test {

struct RunResult {
  int code = -1;  // exit status; -1 when killed by a signal
  std::string out, err;
};

struct RunOptions {
  std::string stdin_text;                  // fed on standard input (empty: /dev/null)
  std::map<std::string, std::string> env;  // set for the child
  std::vector<std::string> unset_env;      // removed for the child
  std::string cwd;                         // working directory (empty: unchanged)
  bool tty = false;                        // run under a pseudo-terminal (script(1)); out
                                           // and err then arrive merged in `out`
};

// Runs `program` (a path) with `args`.
RunResult Run(const std::string& program, const std::vector<std::string>& args,
              const RunOptions& options = {});
// Runs the plm binary of this build.
RunResult RunPlm(const std::vector<std::string>& args, const RunOptions& options = {});
// A shell-quoted word.
std::string ShellQuote(const std::string& s);
// The HF_* variables a test must not inherit (tokens, offline mode, endpoints, cache paths).
std::vector<std::string> HubEnvironmentVariables();

}  // namespace plm::test
