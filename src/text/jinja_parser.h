// Parser for the Jinja2 subset used by Hugging Face chat templates: output, if/elif/else,
// for (tuple targets, inline filter, else, loop.*), set (plain, tuple, namespace attribute,
// block form), macro/call, filter blocks, break/continue, generation, and the full expression
// grammar (literals, operators, comparisons, tests, filters, calls, slicing, conditionals).
#pragma once

#include <string_view>
#include <vector>

#include "text/jinja_ast.h"

namespace plm::jinja {

// Throws TemplateError (with the line) on syntax errors and unknown statements.
std::vector<NodePtr> Parse(std::string_view source);

}  // namespace plm::jinja
