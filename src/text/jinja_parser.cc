#include "text/jinja_parser.h"

#include "text/jinja_builtins.h"
#include "text/jinja_lexer.h"

namespace plm::jinja {

namespace {

// True when `loop` is referenced anywhere below `n`.
bool MentionsLoop(const Node& n) {
  if (n.kind == NodeKind::kName && n.name == "loop") return true;
  for (const NodePtr* p : {&n.a, &n.b, &n.c})
    if (*p && MentionsLoop(**p)) return true;
  for (const auto* list : {&n.args, &n.body, &n.else_body})
    for (const NodePtr& c : *list)
      if (c && MentionsLoop(*c)) return true;
  for (const auto& body : n.bodies)
    for (const NodePtr& c : body)
      if (MentionsLoop(*c)) return true;
  for (const auto& [k, v] : n.kwargs)
    if (MentionsLoop(*v)) return true;
  for (const auto& [k, v] : n.dict_items)
    if (MentionsLoop(*k) || MentionsLoop(*v)) return true;
  return false;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  std::vector<NodePtr> ParseTemplate() {
    std::vector<NodePtr> body = Subparse({});
    if (Cur().kind != TokenKind::kEof) Fail("unexpected tag '" + Cur().text + "'");
    return body;
  }

 private:
  const Token& Cur() const { return toks_[pos_]; }
  const Token& Look() const { return toks_[std::min(pos_ + 1, toks_.size() - 1)]; }
  void Next() {
    if (pos_ + 1 < toks_.size()) ++pos_;
  }
  [[noreturn]] void Fail(const std::string& msg) const { throw TemplateError{msg, Cur().line}; }

  bool IsOp(const char* op) const { return Cur().kind == TokenKind::kOperator && Cur().text == op; }
  bool IsName(const char* name) const {
    return Cur().kind == TokenKind::kName && Cur().text == name;
  }
  bool SkipOp(const char* op) {
    if (!IsOp(op)) return false;
    Next();
    return true;
  }
  bool SkipName(const char* name) {
    if (!IsName(name)) return false;
    Next();
    return true;
  }
  std::string Describe(const Token& t) const {
    switch (t.kind) {
      case TokenKind::kBlockEnd:
        return "end of statement block";
      case TokenKind::kVarEnd:
        return "end of print statement";
      case TokenKind::kEof:
        return "end of template";
      case TokenKind::kString:
        return "string";
      case TokenKind::kInt:
        return "integer";
      case TokenKind::kFloat:
        return "float";
      default:
        return t.text;
    }
  }
  void ExpectOp(const char* op) {
    if (!SkipOp(op))
      Fail(std::string("expected token '") + op + "', got '" + Describe(Cur()) + "'");
  }
  std::string ExpectName() {
    if (Cur().kind != TokenKind::kName) Fail("expected name, got '" + Describe(Cur()) + "'");
    std::string n = Cur().text;
    Next();
    return n;
  }
  void ExpectBlockEnd() {
    if (Cur().kind != TokenKind::kBlockEnd)
      Fail("expected end of statement block, got '" + Describe(Cur()) + "'");
    Next();
  }
  NodePtr Make(NodeKind k) const { return std::make_unique<Node>(k, Cur().line); }

  // Statements until a block tag whose name is in `end_names` (left unconsumed, positioned on
  // the name after "{%").
  std::vector<NodePtr> Subparse(const std::vector<std::string>& end_names) {
    std::vector<NodePtr> body;
    while (true) {
      const Token& t = Cur();
      if (t.kind == TokenKind::kEof) {
        if (!end_names.empty()) Fail("unexpected end of template, expected '" + end_names[0] + "'");
        return body;
      }
      if (t.kind == TokenKind::kText) {
        auto n = Make(NodeKind::kOutputText);
        n->value = Value(t.text);
        body.push_back(std::move(n));
        Next();
      } else if (t.kind == TokenKind::kVarBegin) {
        Next();
        auto n = Make(NodeKind::kOutputExpr);
        n->a = ParseTuple();
        if (Cur().kind != TokenKind::kVarEnd)
          Fail("expected end of print statement, got '" + Describe(Cur()) + "'");
        Next();
        body.push_back(std::move(n));
      } else if (t.kind == TokenKind::kBlockBegin) {
        Next();
        if (Cur().kind == TokenKind::kName) {
          for (const std::string& e : end_names)
            if (Cur().text == e) return body;
        }
        body.push_back(ParseStatement());
      } else {
        Fail("unexpected '" + Describe(t) + "'");
      }
    }
  }

  // Body of a block statement: "%}" then statements up to one of `end_names`.
  std::vector<NodePtr> ParseBody(const std::vector<std::string>& end_names) {
    ExpectBlockEnd();
    return Subparse(end_names);
  }

  NodePtr ParseStatement() {
    DepthGuard guard(this);
    if (Cur().kind != TokenKind::kName) Fail("tag name expected");
    const std::string tag = Cur().text;
    if (tag == "if") return ParseIf();
    if (tag == "for") return ParseFor();
    if (tag == "set") return ParseSet();
    if (tag == "macro") return ParseMacro();
    if (tag == "call") return ParseCallBlock();
    if (tag == "filter") return ParseFilterBlock();
    if (tag == "generation") {
      auto n = Make(NodeKind::kGeneration);
      Next();
      n->body = ParseBody({"endgeneration"});
      Next();
      ExpectBlockEnd();
      return n;
    }
    if (tag == "break" || tag == "continue") {
      auto n = Make(tag == "break" ? NodeKind::kBreak : NodeKind::kContinue);
      Next();
      ExpectBlockEnd();
      return n;
    }
    Fail("Encountered unknown tag '" + tag + "'");
  }

  NodePtr ParseIf() {
    auto n = Make(NodeKind::kIf);
    Next();  // if
    while (true) {
      n->args.push_back(ParseTuple(/*with_condexpr=*/false));
      n->bodies.push_back(ParseBody({"elif", "else", "endif"}));
      const std::string which = Cur().text;
      Next();
      if (which == "elif") continue;
      if (which == "else") {
        n->else_body = ParseBody({"endif"});
        Next();
      }
      ExpectBlockEnd();
      return n;
    }
  }

  std::vector<std::string> ParseTargets(const char* end_name) {
    std::vector<std::string> targets;
    bool parens = SkipOp("(");
    while (true) {
      targets.push_back(ExpectName());
      if (!SkipOp(",")) break;
      if (IsName(end_name) || IsOp("=") || IsOp(")")) break;
    }
    if (parens) ExpectOp(")");
    return targets;
  }

  NodePtr ParseFor() {
    auto n = Make(NodeKind::kFor);
    Next();  // for
    n->targets = ParseTargets("in");
    if (!SkipName("in")) Fail("expected 'in', got '" + Describe(Cur()) + "'");
    n->a = ParseTuple(/*with_condexpr=*/false, {"recursive"});
    if (SkipName("if")) n->b = ParseExpression();
    if (IsName("recursive")) Fail("recursive for loops are not supported");
    n->body = ParseBody({"endfor", "else"});
    for (const NodePtr& c : n->body) n->uses_loop = n->uses_loop || MentionsLoop(*c);
    const std::string which = Cur().text;
    Next();
    if (which == "else") {
      n->else_body = ParseBody({"endfor"});
      Next();
    }
    ExpectBlockEnd();
    return n;
  }

  NodePtr ParseSet() {
    const int line = Cur().line;
    Next();  // set
    if (Cur().kind == TokenKind::kName && Look().kind == TokenKind::kOperator &&
        Look().text == ".") {
      auto n = std::make_unique<Node>(NodeKind::kSet, line);
      n->ns_name = ExpectName();
      Next();  // .
      n->name = ExpectName();
      ExpectOp("=");
      n->a = ParseTuple();
      ExpectBlockEnd();
      return n;
    }
    std::vector<std::string> targets = ParseTargets("");
    if (SkipOp("=")) {
      auto n = std::make_unique<Node>(NodeKind::kSet, line);
      n->targets = std::move(targets);
      n->a = ParseTuple();
      ExpectBlockEnd();
      return n;
    }
    auto n = std::make_unique<Node>(NodeKind::kSetBlock, line);
    n->targets = std::move(targets);
    if (IsOp("|")) n->b = ParseFilter(nullptr);
    n->body = ParseBody({"endset"});
    Next();
    ExpectBlockEnd();
    return n;
  }

  NodePtr ParseMacro() {
    auto n = Make(NodeKind::kMacro);
    Next();  // macro
    n->name = ExpectName();
    ExpectOp("(");
    while (!IsOp(")")) {
      if (!n->targets.empty()) ExpectOp(",");
      if (IsOp(")")) break;
      n->targets.push_back(ExpectName());
      n->args.push_back(SkipOp("=") ? ParseExpression() : nullptr);
    }
    ExpectOp(")");
    n->body = ParseBody({"endmacro"});
    Next();
    ExpectBlockEnd();
    return n;
  }

  NodePtr ParseCallBlock() {
    auto n = Make(NodeKind::kCallBlock);
    Next();  // call
    if (IsOp("(")) Fail("call blocks with caller arguments are not supported");
    n->a = ParseExpression();
    if (n->a->kind != NodeKind::kCall) Fail("expected call");
    n->body = ParseBody({"endcall"});
    Next();
    ExpectBlockEnd();
    return n;
  }

  NodePtr ParseFilterBlock() {
    auto n = Make(NodeKind::kFilterBlock);
    Next();  // filter
    n->b = ParseFilter(nullptr, /*start_inline=*/true);
    n->body = ParseBody({"endfilter"});
    Next();
    ExpectBlockEnd();
    return n;
  }

  // ---- expressions ----

  // Expression, or a tuple when commas separate several (Jinja's parse_tuple).
  NodePtr ParseTuple(bool with_condexpr = true, const std::vector<std::string>& extra_end = {}) {
    const int line = Cur().line;
    std::vector<NodePtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) ExpectOp(",");
      if (IsTupleEnd(extra_end)) break;
      items.push_back(with_condexpr ? ParseExpression() : ParseOr());
      if (IsOp(","))
        is_tuple = true;
      else
        break;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      Fail("Expected an expression, got '" + Describe(Cur()) + "'");
    }
    auto n = std::make_unique<Node>(NodeKind::kTuple, line);
    n->args = std::move(items);
    return n;
  }

  bool IsTupleEnd(const std::vector<std::string>& extra_end) const {
    const Token& t = Cur();
    if (t.kind == TokenKind::kVarEnd || t.kind == TokenKind::kBlockEnd || t.kind == TokenKind::kEof)
      return true;
    if (t.kind == TokenKind::kOperator && (t.text == ")" || t.text == "]" || t.text == "}"))
      return true;
    if (t.kind == TokenKind::kName)
      for (const auto& e : extra_end)
        if (t.text == e) return true;
    return false;
  }

  // Nesting guard: deeply nested input must fail cleanly instead of exhausting the stack.
  struct DepthGuard {
    explicit DepthGuard(Parser* p) : parser(p) {
      if (++parser->depth_ > kMaxDepth) parser->Fail("template nesting is too deep");
    }
    ~DepthGuard() { --parser->depth_; }
    Parser* parser;
  };
  static constexpr int kMaxDepth = 200;

  NodePtr ParseExpression() {
    DepthGuard guard(this);
    const int line = Cur().line;
    NodePtr expr = ParseOr();
    while (SkipName("if")) {
      auto n = std::make_unique<Node>(NodeKind::kCondExpr, line);
      n->a = ParseOr();
      n->b = std::move(expr);
      if (SkipName("else")) n->c = ParseExpression();
      expr = std::move(n);
    }
    return expr;
  }

  NodePtr ParseOr() {
    NodePtr left = ParseAnd();
    while (IsName("or")) {
      auto n = Make(NodeKind::kOr);
      Next();
      n->a = std::move(left);
      n->b = ParseAnd();
      left = std::move(n);
    }
    return left;
  }

  NodePtr ParseAnd() {
    NodePtr left = ParseNot();
    while (IsName("and")) {
      auto n = Make(NodeKind::kAnd);
      Next();
      n->a = std::move(left);
      n->b = ParseNot();
      left = std::move(n);
    }
    return left;
  }

  NodePtr ParseNot() {
    if (IsName("not")) {
      auto n = Make(NodeKind::kUnary);
      n->name = "not";
      Next();
      n->a = ParseNot();
      return n;
    }
    return ParseCompare();
  }

  NodePtr ParseCompare() {
    const int line = Cur().line;
    NodePtr expr = ParseMath1();
    NodePtr cmp;
    while (true) {
      std::string op;
      if (Cur().kind == TokenKind::kOperator &&
          (Cur().text == "==" || Cur().text == "!=" || Cur().text == "<" || Cur().text == "<=" ||
           Cur().text == ">" || Cur().text == ">=")) {
        op = Cur().text;
        Next();
      } else if (SkipName("in")) {
        op = "in";
      } else if (IsName("not") && Look().kind == TokenKind::kName && Look().text == "in") {
        Next();
        Next();
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = std::make_unique<Node>(NodeKind::kCompare, line);
        cmp->a = std::move(expr);
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(ParseMath1());
    }
    return cmp ? std::move(cmp) : std::move(expr);
  }

  NodePtr Binary(const std::string& op, NodePtr l, NodePtr r, int line) {
    auto n = std::make_unique<Node>(NodeKind::kBinary, line);
    n->name = op;
    n->a = std::move(l);
    n->b = std::move(r);
    return n;
  }

  NodePtr ParseMath1() {
    NodePtr left = ParseConcat();
    while (IsOp("+") || IsOp("-")) {
      const std::string op = Cur().text;
      const int line = Cur().line;
      Next();
      left = Binary(op, std::move(left), ParseConcat(), line);
    }
    return left;
  }

  NodePtr ParseConcat() {
    NodePtr left = ParseMath2();
    while (IsOp("~")) {
      const int line = Cur().line;
      Next();
      left = Binary("~", std::move(left), ParseMath2(), line);
    }
    return left;
  }

  NodePtr ParseMath2() {
    NodePtr left = ParsePow();
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      const std::string op = Cur().text;
      const int line = Cur().line;
      Next();
      left = Binary(op, std::move(left), ParsePow(), line);
    }
    return left;
  }

  NodePtr ParsePow() {
    NodePtr left = ParseUnary(true);
    while (IsOp("**")) {
      const int line = Cur().line;
      Next();
      left = Binary("**", std::move(left), ParseUnary(true), line);
    }
    return left;
  }

  NodePtr ParseUnary(bool with_filter) {
    DepthGuard guard(this);
    NodePtr node;
    if (IsOp("-") || IsOp("+")) {
      auto n = Make(NodeKind::kUnary);
      n->name = Cur().text;
      Next();
      n->a = ParseUnary(false);
      node = std::move(n);
    } else {
      node = ParsePrimary();
    }
    node = ParsePostfix(std::move(node));
    if (with_filter) node = ParseFilterExpr(std::move(node));
    return node;
  }

  NodePtr ParsePrimary() {
    const Token& t = Cur();
    if (t.kind == TokenKind::kName) {
      auto n = Make(NodeKind::kConst);
      if (t.text == "true" || t.text == "True")
        n->value = Value(true);
      else if (t.text == "false" || t.text == "False")
        n->value = Value(false);
      else if (t.text == "none" || t.text == "None")
        n->value = Value::None();
      else {
        n->kind = NodeKind::kName;
        n->name = t.text;
      }
      Next();
      return n;
    }
    if (t.kind == TokenKind::kString) {
      auto n = Make(NodeKind::kConst);
      std::string s;
      while (Cur().kind == TokenKind::kString) {  // adjacent literals concatenate
        s += Cur().text;
        Next();
      }
      n->value = Value(std::move(s));
      return n;
    }
    if (t.kind == TokenKind::kInt || t.kind == TokenKind::kFloat) {
      auto n = Make(NodeKind::kConst);
      n->value = t.kind == TokenKind::kInt ? Value(t.int_value) : Value(t.float_value);
      Next();
      return n;
    }
    if (IsOp("(")) {
      Next();
      const int line = Cur().line;
      if (SkipOp(")")) {
        auto n = std::make_unique<Node>(NodeKind::kTuple, line);
        return n;
      }
      NodePtr inner = ParseTuple();
      ExpectOp(")");
      return inner;
    }
    if (IsOp("[")) {
      auto n = Make(NodeKind::kList);
      Next();
      while (!IsOp("]")) {
        if (!n->args.empty()) ExpectOp(",");
        if (IsOp("]")) break;
        n->args.push_back(ParseExpression());
      }
      ExpectOp("]");
      return n;
    }
    if (IsOp("{")) {
      auto n = Make(NodeKind::kDict);
      Next();
      while (!IsOp("}")) {
        if (!n->dict_items.empty()) ExpectOp(",");
        if (IsOp("}")) break;
        NodePtr key = ParseExpression();
        ExpectOp(":");
        n->dict_items.emplace_back(std::move(key), ParseExpression());
      }
      ExpectOp("}");
      return n;
    }
    Fail("unexpected '" + Describe(t) + "'");
  }

  NodePtr ParsePostfix(NodePtr node) {
    while (true) {
      if (IsOp(".")) {
        const int line = Cur().line;
        Next();
        if (Cur().kind == TokenKind::kName) {
          auto n = std::make_unique<Node>(NodeKind::kGetattr, line);
          n->a = std::move(node);
          n->name = Cur().text;
          Next();
          node = std::move(n);
        } else if (Cur().kind == TokenKind::kInt) {
          auto n = std::make_unique<Node>(NodeKind::kGetitem, line);
          n->a = std::move(node);
          n->b = Make(NodeKind::kConst);
          n->b->value = Value(Cur().int_value);
          Next();
          node = std::move(n);
        } else {
          Fail("expected name or number");
        }
      } else if (IsOp("[")) {
        node = ParseSubscript(std::move(node));
      } else if (IsOp("(")) {
        node = ParseCall(std::move(node));
      } else {
        return node;
      }
    }
  }

  NodePtr ParseSubscript(NodePtr node) {
    const int line = Cur().line;
    Next();  // [
    NodePtr start, stop, step;
    bool is_slice = false;
    if (!IsOp(":")) start = ParseExpression();
    if (SkipOp(":")) {
      is_slice = true;
      if (!IsOp("]") && !IsOp(":")) stop = ParseExpression();
      if (SkipOp(":") && !IsOp("]")) step = ParseExpression();
    }
    ExpectOp("]");
    if (!is_slice) {
      auto n = std::make_unique<Node>(NodeKind::kGetitem, line);
      n->a = std::move(node);
      n->b = std::move(start);
      return n;
    }
    auto n = std::make_unique<Node>(NodeKind::kSlice, line);
    n->a = std::move(node);
    n->args.push_back(std::move(start));
    n->args.push_back(std::move(stop));
    n->args.push_back(std::move(step));
    return n;
  }

  void ParseCallArgs(Node* n) {
    ExpectOp("(");
    while (!IsOp(")")) {
      if (!n->args.empty() || !n->kwargs.empty()) {
        ExpectOp(",");
        if (IsOp(")")) break;
      }
      if (IsOp("*") || IsOp("**")) Fail("*args / **kwargs in calls are not supported");
      if (Cur().kind == TokenKind::kName && Look().kind == TokenKind::kOperator &&
          Look().text == "=") {
        std::string key = Cur().text;
        Next();
        Next();
        n->kwargs.emplace_back(std::move(key), ParseExpression());
      } else {
        if (!n->kwargs.empty()) Fail("invalid syntax for function call expression");
        n->args.push_back(ParseExpression());
      }
    }
    ExpectOp(")");
  }

  NodePtr ParseCall(NodePtr node) {
    auto n = Make(NodeKind::kCall);
    n->a = std::move(node);
    ParseCallArgs(n.get());
    return n;
  }

  NodePtr ParseFilterExpr(NodePtr node) {
    while (true) {
      if (IsOp("|")) {
        node = ParseFilter(std::move(node));
      } else if (IsName("is")) {
        node = ParseTest(std::move(node));
      } else if (IsOp("(")) {
        node = ParseCall(std::move(node));
      } else {
        return node;
      }
    }
  }

  std::string DottedName() {
    std::string name = ExpectName();
    while (IsOp(".")) {
      Next();
      name += "." + ExpectName();
    }
    return name;
  }

  NodePtr ParseFilter(NodePtr node, bool start_inline = false) {
    while (IsOp("|") || start_inline) {
      if (!start_inline) Next();
      start_inline = false;
      auto n = Make(NodeKind::kFilter);
      n->name = DottedName();
      if (!HasFilter(n->name)) Fail("No filter named '" + n->name + "'.");
      if (IsOp("(")) ParseCallArgs(n.get());
      n->a = std::move(node);
      node = std::move(n);
    }
    return node;
  }

  NodePtr ParseTest(NodePtr node) {
    auto n = Make(NodeKind::kTest);
    Next();  // is
    n->negate = SkipName("not");
    n->name = DottedName();
    if (!HasTest(n->name)) Fail("No test named '" + n->name + "'.");
    if (IsOp("(")) {
      ParseCallArgs(n.get());
    } else if ((Cur().kind == TokenKind::kName || Cur().kind == TokenKind::kString ||
                Cur().kind == TokenKind::kInt || Cur().kind == TokenKind::kFloat || IsOp("(") ||
                IsOp("[") || IsOp("{")) &&
               !IsName("else") && !IsName("or") && !IsName("and")) {
      if (IsName("is")) Fail("You cannot chain multiple tests with is");
      n->args.push_back(ParsePostfix(ParsePrimary()));
    }
    n->a = std::move(node);
    return n;
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

std::vector<NodePtr> Parse(std::string_view source) {
  return Parser(Lex(source)).ParseTemplate();
}

}  // namespace plm::jinja
