// Syntax tree of a parsed Jinja template. One node type keeps the parser and interpreter
// small; which fields are used depends on `kind` (see the comments).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "text/jinja_value.h"

namespace plm::jinja {

struct Node;
using NodePtr = std::unique_ptr<Node>;

enum class NodeKind {
  // Expressions.
  kConst,     // value
  kName,      // name
  kGetattr,   // a.name
  kGetitem,   // a[b]
  kSlice,     // a[b:c:d]: a, then args = {start, stop, step} (null when omitted)
  kCall,      // a(args, kwargs)
  kFilter,    // a | name(args, kwargs); a is null inside a filter block
  kTest,      // a is [not] name(args, kwargs); negate
  kUnary,     // name in {"-", "+", "not"}; a
  kBinary,    // name in {"+", "-", "*", "/", "//", "%", "**", "~"}; a, b
  kAnd,       // a and b
  kOr,        // a or b
  kCompare,   // a, then ops[i] applied against args[i] (chained)
  kCondExpr,  // b if a else c (c may be null)
  kList,      // args
  kTuple,     // args
  kDict,      // kwargs-like pairs in dict_items
  // Statements.
  kOutputText,   // value (string)
  kOutputExpr,   // a
  kIf,           // args = tests, bodies[i] for each test, else_body
  kFor,          // targets, a = iterable, b = filter (may be null), body, else_body
  kSet,          // targets (or ns_name + name for namespace attribute), a
  kSetBlock,     // targets, b = filter chain (kFilter with null innermost a), body
  kMacro,        // name, params (targets) + defaults (args, null when none), body
  kCallBlock,    // a = call expression, body = caller body
  kFilterBlock,  // b = filter chain, body
  kBreak,
  kContinue,
  kGeneration,  // {% generation %} body (transformers extension): rendered as is
};

struct Node {
  NodeKind kind;
  int line = 0;
  Value value;
  std::string name;
  std::string ns_name;  // kSet on a namespace attribute: {% set ns.name = ... %}
  bool negate = false;
  bool uses_loop = false;  // kFor: the body mentions `loop` (else no loop object is built)
  NodePtr a, b, c;
  std::vector<NodePtr> args;
  std::vector<std::pair<std::string, NodePtr>> kwargs;
  std::vector<std::pair<NodePtr, NodePtr>> dict_items;
  std::vector<std::string> ops;
  std::vector<std::string> targets;
  std::vector<NodePtr> body, else_body;
  std::vector<std::vector<NodePtr>> bodies;

  Node(NodeKind k, int l) : kind(k), line(l) {}
};

}  // namespace plm::jinja
