// Executes the syntax tree: scopes, statements, expressions with Python semantics.
#include <cmath>
#include <unordered_map>

#include "plm/error.h"
#include "text/jinja_ast.h"
#include "text/jinja_builtins.h"
#include "text/jinja_parser.h"
#include "text/jinja_template.h"
#include "text/python_string.h"

namespace plm::jinja {

namespace {

constexpr size_t kMaxOutputBytes = size_t{64} << 20;
constexpr uint64_t kMaxSteps = 1'000'000;  // real chat templates need thousands
constexpr int kMaxCallDepth = 200;

enum class Flow { kNormal, kBreak, kContinue };

// Python integers are unbounded; ours are 64-bit, so overflow is an error instead of UB.
int64_t Checked(bool overflow, int64_t v) {
  if (overflow) throw TemplateError{"integer overflow (values beyond 64 bits are not supported)"};
  return v;
}
int64_t Add(int64_t a, int64_t b) {
  int64_t r = 0;
  const bool overflow = __builtin_add_overflow(a, b, &r);
  return Checked(overflow, r);
}
int64_t Sub(int64_t a, int64_t b) {
  int64_t r = 0;
  const bool overflow = __builtin_sub_overflow(a, b, &r);
  return Checked(overflow, r);
}
int64_t Mul(int64_t a, int64_t b) {
  int64_t r = 0;
  const bool overflow = __builtin_mul_overflow(a, b, &r);
  return Checked(overflow, r);
}

using Frame = std::unordered_map<std::string, Value>;

struct LimitError {
  std::string message;
};

class Interpreter {
 public:
  explicit Interpreter(const ValueDict& context) {
    frames_.emplace_back();
    for (const auto& [k, v] : context.items()) frames_[0][k] = v;
  }

  void Run(const std::vector<NodePtr>& body, std::string* out) { ExecBody(body, out); }

 private:
  // ---- scopes ----
  Value Lookup(const std::string& name) const {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return f->second;
    }
    return LookupGlobal(name);
  }
  void Assign(const std::string& name, Value v) { frames_.back()[name] = std::move(v); }

  void Step() {
    if (++steps_ > kMaxSteps)
      throw LimitError{"template rendering exceeded " + std::to_string(kMaxSteps) + " steps"};
  }

  // ---- statements ----
  Flow ExecBody(const std::vector<NodePtr>& body, std::string* out) {
    for (const NodePtr& n : body) {
      const Flow f = Exec(*n, out);
      if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
  }

  Flow Exec(const Node& n, std::string* out) {
    Step();
    try {
      return ExecInner(n, out);
    } catch (TemplateError& e) {
      if (e.line == 0) e.line = n.line;
      throw;
    }
  }

  void Write(std::string* out, const std::string& s) {
    out->append(s);
    if (out->size() > kMaxOutputBytes)
      throw LimitError{"template output exceeded " + std::to_string(kMaxOutputBytes) + " bytes"};
  }

  Flow ExecInner(const Node& n, std::string* out) {
    switch (n.kind) {
      case NodeKind::kOutputText:
        Write(out, n.value.as_string());
        return Flow::kNormal;
      case NodeKind::kOutputExpr:
        Write(out, ToStr(Eval(*n.a)));
        return Flow::kNormal;
      case NodeKind::kIf:
        for (size_t i = 0; i < n.args.size(); ++i)
          if (Eval(*n.args[i]).Truthy()) return ExecBody(n.bodies[i], out);
        return ExecBody(n.else_body, out);
      case NodeKind::kFor:
        return ExecFor(n, out);
      case NodeKind::kSet: {
        Value v = Eval(*n.a);
        if (!n.ns_name.empty()) {
          Value ns = Lookup(n.ns_name);
          if (!ns.is_namespace())
            throw TemplateError{"cannot assign attribute on non-namespace object"};
          ns.mutable_dict().Set(n.name, std::move(v));
        } else {
          AssignTargets(n.targets, v);
        }
        return Flow::kNormal;
      }
      case NodeKind::kSetBlock: {
        std::string captured;
        ExecBody(n.body, &captured);
        Value v(std::move(captured));
        if (n.b) v = ApplyFilterChain(*n.b, v);
        AssignTargets(n.targets, v);
        return Flow::kNormal;
      }
      case NodeKind::kMacro:
        Assign(n.name, MakeMacro(n));
        return Flow::kNormal;
      case NodeKind::kCallBlock: {
        const Node* body_owner = &n;
        std::vector<Frame> site = frames_;
        Value caller = Value::Function("caller", [this, body_owner, site](CallArgs&) {
          std::vector<Frame> saved = std::move(frames_);
          frames_ = site;
          std::string text;
          try {
            ExecBody(body_owner->body, &text);
          } catch (...) {
            frames_ = std::move(saved);
            throw;
          }
          frames_ = std::move(saved);
          return Value(std::move(text));
        });
        const Node& call = *n.a;
        Value fn = Eval(*call.a);
        CallArgs args = EvalArgs(call);
        args.keyword.emplace_back("caller", caller);
        Write(out, ToStr(CallValue(fn, args)));
        return Flow::kNormal;
      }
      case NodeKind::kFilterBlock: {
        std::string captured;
        ExecBody(n.body, &captured);
        Write(out, ToStr(ApplyFilterChain(*n.b, Value(std::move(captured)))));
        return Flow::kNormal;
      }
      case NodeKind::kBreak:
        return Flow::kBreak;
      case NodeKind::kContinue:
        return Flow::kContinue;
      case NodeKind::kGeneration:
        return ExecBody(n.body, out);
      default:
        throw TemplateError{"internal: expression used as statement"};
    }
  }

  void AssignTargets(const std::vector<std::string>& targets, const Value& v) {
    if (targets.size() == 1) {
      Assign(targets[0], v);
      return;
    }
    const std::vector<Value> items = Iterate(v);
    if (items.size() != targets.size())
      throw TemplateError{(items.size() > targets.size() ? "too many" : "not enough") +
                          std::string(" values to unpack (expected ") +
                          std::to_string(targets.size()) + ", got " + std::to_string(items.size()) +
                          ")"};
    for (size_t i = 0; i < targets.size(); ++i) Assign(targets[i], items[i]);
  }

  Flow ExecFor(const Node& n, std::string* out) {
    std::vector<Value> items = Iterate(Eval(*n.a));
    if (n.b) {
      std::vector<Value> kept;
      for (const Value& item : items) {
        frames_.emplace_back();
        try {
          AssignTargets(n.targets, item);
          if (Eval(*n.b).Truthy()) kept.push_back(item);
        } catch (...) {
          frames_.pop_back();
          throw;
        }
        frames_.pop_back();
      }
      items = std::move(kept);
    }
    if (items.empty()) return ExecBody(n.else_body, out);
    const auto len = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < len; ++i) {
      frames_.emplace_back();
      Flow f = Flow::kNormal;
      try {
        AssignTargets(n.targets, items[static_cast<size_t>(i)]);
        if (n.uses_loop) Assign("loop", MakeLoop(items, i));
        f = ExecBody(n.body, out);
      } catch (...) {
        frames_.pop_back();
        throw;
      }
      frames_.pop_back();
      if (f == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  static Value MakeLoop(const std::vector<Value>& items, int64_t i) {
    const auto len = static_cast<int64_t>(items.size());
    auto d = std::make_shared<ValueDict>();
    d->Set("index", Value(i + 1));
    d->Set("index0", Value(i));
    d->Set("revindex", Value(len - i));
    d->Set("revindex0", Value(len - i - 1));
    d->Set("first", Value(i == 0));
    d->Set("last", Value(i == len - 1));
    d->Set("length", Value(len));
    d->Set("depth", Value(int64_t{1}));
    d->Set("depth0", Value(int64_t{0}));
    d->Set("previtem", i > 0 ? items[static_cast<size_t>(i - 1)]
                             : Value::Undefined("there is no previous item"));
    d->Set("nextitem", i + 1 < len ? items[static_cast<size_t>(i + 1)]
                                   : Value::Undefined("there is no next item"));
    d->Set("cycle", Value::Function("cycle", [i](CallArgs& a) {
             if (a.positional.empty()) throw TemplateError{"no items for cycling given"};
             return a.positional[static_cast<size_t>(i) % a.positional.size()];
           }));
    return Value::Dict(std::move(d));
  }

  Value MakeMacro(const Node& n) {
    const Node* def = &n;
    return Value::Function(n.name, [this, def](CallArgs& a) {
      if (++depth_ > kMaxCallDepth) {
        --depth_;
        throw LimitError{"maximum macro recursion depth (" + std::to_string(kMaxCallDepth) +
                         ") exceeded"};
      }
      // Macros see the template's top-level variables and their own arguments only.
      std::vector<Frame> saved(std::make_move_iterator(frames_.begin() + 1),
                               std::make_move_iterator(frames_.end()));
      frames_.resize(1);
      frames_.emplace_back();
      std::string text;
      auto restore = [&] {
        frames_.resize(1);
        for (auto& f : saved) frames_.push_back(std::move(f));
        --depth_;
      };
      try {
        if (a.positional.size() > def->targets.size())
          throw TemplateError{"macro '" + def->name + "' takes not more than " +
                              std::to_string(def->targets.size()) + " argument(s)"};
        for (size_t i = 0; i < def->targets.size(); ++i) {
          Value v;
          bool found = false;
          if (i < a.positional.size()) {
            v = a.positional[i];
            found = true;
          }
          for (const auto& [k, x] : a.keyword)
            if (k == def->targets[i]) {
              v = x;
              found = true;
            }
          if (!found)
            v = def->args[i]
                    ? Eval(*def->args[i])
                    : Value::Undefined("parameter '" + def->targets[i] + "' was not provided");
          Assign(def->targets[i], v);
        }
        for (const auto& [k, x] : a.keyword)
          if (k == "caller") Assign("caller", x);
        ExecBody(def->body, &text);
      } catch (...) {
        restore();
        throw;
      }
      restore();
      return Value(std::move(text));
    });
  }

  // ---- expressions ----
  CallArgs EvalArgs(const Node& n) {
    CallArgs args;
    for (const NodePtr& a : n.args) args.positional.push_back(Eval(*a));
    for (const auto& [k, v] : n.kwargs) args.keyword.emplace_back(k, Eval(*v));
    return args;
  }

  Value CallValue(const Value& fn, CallArgs& args) {
    if (fn.is_undefined()) ThrowUndefined(fn);
    if (!fn.is_callable()) throw TemplateError{"'" + fn.TypeName() + "' object is not callable"};
    return fn.callable().fn(args);
  }

  // Applies a filter chain whose innermost input is null (set/filter blocks) to `input`.
  Value ApplyFilterChain(const Node& f, const Value& input) {
    Value in = f.a ? ApplyFilterChain(*f.a, input) : input;
    CallArgs args = EvalArgs(f);
    return ApplyFilter(f.name, in, args);
  }

  Value Eval(const Node& n) {
    Step();
    switch (n.kind) {
      case NodeKind::kConst:
        return n.value;
      case NodeKind::kName:
        return Lookup(n.name);
      case NodeKind::kGetattr:
        return GetAttr(Eval(*n.a), n.name);
      case NodeKind::kGetitem:
        return GetItem(Eval(*n.a), Eval(*n.b));
      case NodeKind::kSlice: {
        const Value obj = Eval(*n.a);
        auto opt = [&](const NodePtr& p) { return p ? Eval(*p) : Value::None(); };
        return GetSlice(obj, opt(n.args[0]), opt(n.args[1]), opt(n.args[2]));
      }
      case NodeKind::kCall: {
        Value fn = Eval(*n.a);
        CallArgs args = EvalArgs(n);
        return CallValue(fn, args);
      }
      case NodeKind::kFilter: {
        Value in = Eval(*n.a);
        CallArgs args = EvalArgs(n);
        return ApplyFilter(n.name, in, args);
      }
      case NodeKind::kTest: {
        Value in = Eval(*n.a);
        CallArgs args = EvalArgs(n);
        return Value(ApplyTest(n.name, in, args) != n.negate);
      }
      case NodeKind::kUnary: {
        Value v = Eval(*n.a);
        if (n.name == "not") return Value(!v.Truthy());
        if (v.is_undefined()) ThrowUndefined(v);
        if (!v.is_number())
          throw TemplateError{"bad operand type for unary " + n.name + ": '" + v.TypeName() + "'"};
        if (n.name == "+") return v.is_float() ? v : Value(v.as_int());
        return v.is_float() ? Value(-v.as_double()) : Value(Sub(0, v.as_int()));
      }
      case NodeKind::kBinary:
        return Binary(n.name, Eval(*n.a), Eval(*n.b));
      case NodeKind::kAnd: {
        Value l = Eval(*n.a);
        return l.Truthy() ? Eval(*n.b) : l;
      }
      case NodeKind::kOr: {
        Value l = Eval(*n.a);
        return l.Truthy() ? l : Eval(*n.b);
      }
      case NodeKind::kCompare: {
        Value left = Eval(*n.a);
        for (size_t i = 0; i < n.ops.size(); ++i) {
          Value right = Eval(*n.args[i]);
          if (!CompareOp(n.ops[i], left, right)) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case NodeKind::kCondExpr:
        if (Eval(*n.a).Truthy()) return Eval(*n.b);
        if (n.c) return Eval(*n.c);
        return Value::Undefined("the inline if-expression on line " + std::to_string(n.line) +
                                " evaluated to false and no else section was defined.");
      case NodeKind::kList:
      case NodeKind::kTuple: {
        std::vector<Value> items;
        for (const NodePtr& a : n.args) items.push_back(Eval(*a));
        return Value::List(std::move(items), n.kind == NodeKind::kTuple);
      }
      case NodeKind::kDict: {
        auto d = std::make_shared<ValueDict>();
        for (const auto& [k, v] : n.dict_items) {
          Value key = Eval(*k);
          if (!key.is_string())
            throw TemplateError{"only string keys are supported in dict literals"};
          d->Set(key.as_string(), Eval(*v));
        }
        return Value::Dict(std::move(d));
      }
      default:
        throw TemplateError{"internal: statement used as expression"};
    }
  }

  static bool Contains(const Value& container, const Value& item) {
    if (container.is_string()) {
      if (!item.is_string())
        throw TemplateError{"'in <string>' requires string as left operand, not " +
                            item.TypeName()};
      return container.as_string().find(item.as_string()) != std::string::npos;
    }
    if (container.is_dict() && !container.is_namespace())
      return item.is_string() && container.dict().Find(item.as_string()) != nullptr;
    if (container.is_list() || container.is_undefined()) {
      for (const Value& x : Iterate(container))
        if (Equals(x, item)) return true;
      return false;
    }
    throw TemplateError{"argument of type '" + container.TypeName() + "' is not iterable"};
  }

  static bool CompareOp(const std::string& op, const Value& l, const Value& r) {
    if (op == "==") return Equals(l, r);
    if (op == "!=") return !Equals(l, r);
    if (op == "in") return Contains(r, l);
    if (op == "notin") return !Contains(r, l);
    if (l.is_undefined()) ThrowUndefined(l);
    if (r.is_undefined()) ThrowUndefined(r);
    const int c = CompareOrdered(op, l, r);
    if (op == "<") return c < 0;
    if (op == "<=") return c <= 0;
    if (op == ">") return c > 0;
    return c >= 0;
  }

  static int CompareOrdered(const std::string& op, const Value& l, const Value& r) {
    try {
      return Compare(l, r);
    } catch (TemplateError& e) {
      e.message = "'" + op + "' not supported between instances of '" + l.TypeName() + "' and '" +
                  r.TypeName() + "'";
      throw;
    }
  }

  static Value Binary(const std::string& op, const Value& l, const Value& r) {
    if (op == "~") {
      std::string a = ToStr(l), b = ToStr(r);
      if (a.size() + b.size() > kMaxStringBytes)
        throw LimitError{"string concatenation result too large"};
      return Value(a + b);
    }
    if (l.is_undefined()) ThrowUndefined(l);
    if (r.is_undefined()) ThrowUndefined(r);
    auto type_error = [&]() -> TemplateError {
      if (op == "+" && l.is_string())
        return TemplateError{"can only concatenate str (not \"" + r.TypeName() + "\") to str"};
      if (op == "+" && l.is_list() && !l.is_tuple())
        return TemplateError{"can only concatenate list (not \"" + r.TypeName() + "\") to list"};
      return TemplateError{"unsupported operand type(s) for " + op + ": '" + l.TypeName() +
                           "' and '" + r.TypeName() + "'"};
    };
    const bool nums = l.is_number() && r.is_number();
    const bool fl = nums && (l.is_float() || r.is_float());
    if (op == "+") {
      if (nums)
        return fl ? Value(l.as_double() + r.as_double()) : Value(Add(l.as_int(), r.as_int()));
      if (l.is_string() && r.is_string()) {
        if (l.as_string().size() + r.as_string().size() > kMaxStringBytes)
          throw LimitError{"string concatenation result too large"};
        return Value(l.as_string() + r.as_string());
      }
      if (l.is_list() && r.is_list() && l.is_tuple() == r.is_tuple()) {
        if (l.items().size() + r.items().size() > kMaxSequenceItems)
          throw LimitError{"list concatenation result too large"};
        std::vector<Value> items = l.items();
        items.insert(items.end(), r.items().begin(), r.items().end());
        return Value::List(std::move(items), l.is_tuple());
      }
      throw type_error();
    }
    if (op == "-") {
      if (nums)
        return fl ? Value(l.as_double() - r.as_double()) : Value(Sub(l.as_int(), r.as_int()));
      throw type_error();
    }
    if (op == "*") {
      if (nums)
        return fl ? Value(l.as_double() * r.as_double()) : Value(Mul(l.as_int(), r.as_int()));
      const Value* seq = l.is_string() || l.is_list() ? &l : &r;
      const Value* count = seq == &l ? &r : &l;
      if ((seq->is_string() || seq->is_list()) && count->is_number() && !count->is_float()) {
        const int64_t times = std::max<int64_t>(0, count->as_int());
        const size_t unit = seq->is_string() ? seq->as_string().size() : seq->items().size();
        const double total = static_cast<double>(unit) * static_cast<double>(times);
        if (total > static_cast<double>(seq->is_string() ? kMaxStringBytes : kMaxSequenceItems))
          throw LimitError{"repeated sequence too large"};
        if (seq->is_string()) {
          std::string out;
          for (int64_t i = 0; i < times; ++i) out += seq->as_string();
          return Value(out);
        }
        std::vector<Value> items;
        for (int64_t i = 0; i < times; ++i)
          items.insert(items.end(), seq->items().begin(), seq->items().end());
        return Value::List(std::move(items), seq->is_tuple());
      }
      throw type_error();
    }
    if (!nums) throw type_error();
    if (op == "/") {
      if (r.as_double() == 0) throw TemplateError{"division by zero"};
      return Value(l.as_double() / r.as_double());
    }
    if (op == "//" || op == "%") {
      if (r.as_double() == 0)
        throw TemplateError{op == "%" ? "integer modulo by zero"
                                      : "integer division or modulo by zero"};
      if (fl) {
        const double q = std::floor(l.as_double() / r.as_double());
        return op == "//" ? Value(q) : Value(l.as_double() - q * r.as_double());
      }
      const int64_t a = l.as_int(), b = r.as_int();
      if (a == INT64_MIN && b == -1) Checked(true, 0);
      int64_t q = a / b;
      if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
      return op == "//" ? Value(q) : Value(a - q * b);
    }
    if (op == "**") {
      if (!fl && r.as_int() >= 0) {
        int64_t result = 1;
        for (int64_t i = 0; i < r.as_int() && result != 0 && !(result == 1 && l.as_int() == 1); ++i)
          result = Mul(result, l.as_int());
        return Value(result);
      }
      return Value(std::pow(l.as_double(), r.as_double()));
    }
    throw TemplateError{"unknown operator " + op};
  }

  std::vector<Frame> frames_;
  uint64_t steps_ = 0;
  int depth_ = 0;
};

}  // namespace

Template Template::Parse(std::string_view source, const std::string& name) {
  Template t;
  t.name_ = name;
  try {
    t.body_ = std::make_shared<const std::vector<NodePtr>>(jinja::Parse(source));
  } catch (const TemplateError& e) {
    const bool unknown = e.message.rfind("No filter named", 0) == 0 ||
                         e.message.rfind("No test named", 0) == 0 ||
                         e.message.rfind("Encountered unknown tag", 0) == 0 ||
                         e.message.find("not supported") != std::string::npos;
    throw Error(unknown ? ErrorCode::kUnsupported : ErrorCode::kCorrupt,
                name + ":" + std::to_string(e.line) + ": " +
                    (unknown ? "" : "template syntax error: ") + e.message);
  }
  return t;
}

std::string Template::Render(const ValueDict& context) const {
  Interpreter in(context);
  std::string out;
  try {
    in.Run(*body_, &out);
  } catch (const TemplateError& e) {
    if (e.limit)
      throw Error(ErrorCode::kLimit, name_ + ":" + std::to_string(e.line) + ": " + e.message);
    if (e.raised) throw Error(ErrorCode::kInvalidArgument, "chat template raised: " + e.message);
    throw Error(ErrorCode::kInvalidArgument,
                name_ + ":" + std::to_string(e.line) + ": " + e.message);
  } catch (const LimitError& e) {
    throw Error(ErrorCode::kLimit, name_ + ": " + e.message);
  }
  return out;
}

}  // namespace plm::jinja
