// A parsed Jinja template, rendered the way transformers renders chat templates (jinja2
// ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, default Undefined:
// printing an undefined value gives "", using it in arithmetic or attribute access raises).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "text/jinja_value.h"

namespace plm::jinja {

struct Node;

class Template {
 public:
  // Throws plm::Error: kCorrupt for syntax errors, kUnsupported for unknown filters, tests or
  // tags; the message names `name` and the line.
  static Template Parse(std::string_view source, const std::string& name);

  // Renders with `context` as the template's variables. Throws plm::Error(kInvalidArgument)
  // naming the line for runtime errors (undefined access, type errors, raise_exception: the
  // message then starts with "chat template raised: "), and kLimit when the output or the
  // work done exceeds fixed bounds (runaway loops or recursion).
  std::string Render(const ValueDict& context) const;

  const std::string& name() const { return name_; }

 private:
  std::shared_ptr<const std::vector<std::unique_ptr<Node>>> body_;
  std::string name_;
};

}  // namespace plm::jinja
