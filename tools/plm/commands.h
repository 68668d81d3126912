// Sub-commands of the `plm` tool. Each registers its options on the CLI11 app and runs when chosen.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace plm::cli {

// A registered sub-command: returns the process exit code when it runs.
using Command = std::function<int()>;

Command RegisterInfo(CLI::App& app);
Command RegisterRun(CLI::App& app);
Command RegisterChat(CLI::App& app);
Command RegisterBench(CLI::App& app);
Command RegisterServe(CLI::App& app);
Command RegisterQuantize(CLI::App& app);

}  // namespace plm::cli
