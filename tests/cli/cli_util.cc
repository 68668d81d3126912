#include "cli/cli_util.h"

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include "support/test_support.h"

namespace plm::test {

std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

RunResult Run(const std::string& program, const std::vector<std::string>& args,
              const RunOptions& o) {
  const std::string dir = MakeTempDir();
  std::string cmd = ShellQuote(program);
  for (const auto& a : args) cmd += " " + ShellQuote(a);
  std::string env = "env";
  for (const auto& u : o.unset_env) env += " -u " + ShellQuote(u);
  for (const auto& [k, v] : o.env) env += " " + ShellQuote(k + "=" + v);
  cmd = env + " " + cmd;
  std::string in = "/dev/null";
  if (!o.stdin_text.empty()) {
    in = dir + "/in";
    WriteFile(in, o.stdin_text);
  }
  std::string full;
  if (o.tty) {
    // script(1) gives the child a pseudo-terminal for stdin, stdout and stderr.
    full = "script -qefc " + ShellQuote(cmd) + " /dev/null < " + in + " > " + dir + "/out 2> " +
           dir + "/err";
  } else {
    full = cmd + " > " + dir + "/out 2> " + dir + "/err < " + in;
  }
  if (!o.cwd.empty()) full = "cd " + ShellQuote(o.cwd) + " && " + full;
  const int status = std::system(full.c_str());
  RunResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream out(dir + "/out"), err(dir + "/err");
  r.out.assign(std::istreambuf_iterator<char>(out), {});
  r.err.assign(std::istreambuf_iterator<char>(err), {});
  return r;
}

RunResult RunPlm(const std::vector<std::string>& args, const RunOptions& options) {
  return Run(std::string(PLM_BINARY_DIR) + "/plm", args, options);
}

std::vector<std::string> HubEnvironmentVariables() {
  return {"HF_TOKEN",
          "HUGGING_FACE_HUB_TOKEN",
          "HF_TOKEN_PATH",
          "HF_HUB_OFFLINE",
          "TRANSFORMERS_OFFLINE",
          "HF_ENDPOINT",
          "HF_HOME",
          "HF_HUB_CACHE",
          "HUGGINGFACE_HUB_CACHE",
          "XDG_CACHE_HOME",
          "HF_HUB_DISABLE_IMPLICIT_TOKEN"};
}

}  // namespace plm::test
