#include "config/node_reader.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "config/values.h"

namespace ferry::config {
namespace {

constexpr std::string_view kDurationHint = "(use a unit: 250ms, 15s, 5m)";

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// A plain scalar, or one explicitly tagged with this core type ("!!int 3"); not "quoted".
bool isPlainOr(const ConfigNode& n, std::string_view core_type) {
  return n.kind == ConfigNode::Kind::kScalar &&
         (n.tag.empty() || n.tag == "?" || n.tag == "tag:yaml.org,2002:" + std::string(core_type));
}

}  // namespace

void NodeReader::error(Mark m, std::string message) {
  ++count_;
  if (sink_) {
    sink_(m, std::move(message));
  } else {
    errors_.push_back({m, std::move(message)});
  }
}

std::string NodeReader::quote(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string NodeReader::describe(const ConfigNode& n) {
  switch (n.kind) {
    case ConfigNode::Kind::kMap: return "a mapping";
    case ConfigNode::Kind::kList: return "a list";
    case ConfigNode::Kind::kScalar:
      if (n.tag.empty() || n.tag == "?") return quote(n.scalar);
      if (n.tag == "!") return "the quoted string \"" + n.scalar + "\"";
      return quote(n.scalar) + " tagged " + n.tag;
    case ConfigNode::Kind::kNull: break;
  }
  return "nothing";
}

std::string_view NodeReader::suggest(std::string_view key, std::initializer_list<std::string_view> options) {
  std::string_view best;
  size_t best_d = 3;
  for (std::string_view a : options) {
    size_t d = editDistance(key, a);
    if (d < best_d && d < a.size() / 2 + 1) best_d = d, best = a;
  }
  return best;
}

const NodeReader::Field* NodeReader::Fields::get(std::string_view key) const {
  for (const auto& f : list)
    if (f.key == key) return &f;
  return nullptr;
}

NodeReader::Fields NodeReader::fields(const Field& map, std::string_view where,
                                      std::initializer_list<std::string_view> allowed) {
  Fields out;
  if (map.value->kind == ConfigNode::Kind::kNull) return out;
  if (!isMap(map)) return out;
  for (const auto& e : map.value->entries) {
    if (std::find(allowed.begin(), allowed.end(), e.key) == allowed.end()) {
      std::string msg = "unknown key " + quote(e.key) + " " + std::string(where);
      std::string_view best = suggest(e.key, allowed);
      if (!best.empty()) msg += " (did you mean " + quote(best) + "?)";
      error(e.key_mark, std::move(msg));
      continue;
    }
    out.list.push_back(Field{e.key, e.key_mark, &e.value});
  }
  return out;
}

const NodeReader::Field* NodeReader::need(const Fields& f, std::string_view key, Mark parent, std::string_view where) {
  const Field* x = f.get(key);
  if (x == nullptr) error(parent, "missing required key " + quote(key) + " " + std::string(where));
  return x;
}

void NodeReader::typeError(const Field& f, std::string_view expected) {
  error(f.value->mark, "expected " + std::string(expected) + " for " + quote(f.key) + ", got " + describe(*f.value));
}

bool NodeReader::isMap(const Field& f, bool null_ok) {
  if (f.value->kind == ConfigNode::Kind::kMap || (null_ok && f.value->kind == ConfigNode::Kind::kNull)) return true;
  typeError(f, "a mapping");
  return false;
}

std::optional<std::string> NodeReader::getString(const Field& f) {
  if (f.value->kind != ConfigNode::Kind::kScalar) {
    typeError(f, "a string");
    return std::nullopt;
  }
  if (f.value->scalar.empty()) {
    error(f.value->mark, quote(f.key) + " must not be empty");
    return std::nullopt;
  }
  return f.value->scalar;
}

std::optional<bool> NodeReader::getBool(const Field& f) {
  if (isPlainOr(*f.value, "bool")) {
    if (f.value->scalar == "true") return true;
    if (f.value->scalar == "false") return false;
  }
  typeError(f, "a boolean (true/false)");
  return std::nullopt;
}

std::optional<uint64_t> NodeReader::getUint(const Field& f, uint64_t lo, uint64_t hi) {
  std::string s = isPlainOr(*f.value, "int") ? f.value->scalar : std::string();
  bool negative = s.starts_with('-');
  std::string_view digits = std::string_view(s).substr(negative ? 1 : 0);
  bool numeric =
      !digits.empty() && std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!numeric) {
    typeError(f, "an integer");
    return std::nullopt;
  }
  uint64_t v = 0;
  bool overflow = false;
  for (char c : digits) overflow |= __builtin_mul_overflow(v, 10u, &v) || __builtin_add_overflow(v, c - '0', &v);
  if (negative || overflow || v < lo || v > hi) {
    error(f.value->mark, quote(f.key) + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                             ", got " + std::string(s));
    return std::nullopt;
  }
  return v;
}

std::optional<Duration> NodeReader::getDuration(const Field& f, bool positive) {
  if (f.value->kind != ConfigNode::Kind::kScalar) {
    typeError(f, "a duration string " + std::string(kDurationHint));
    return std::nullopt;
  }
  auto d = parseDuration(f.value->scalar);
  if (!d) {
    error(f.value->mark, "bad duration " + quote(f.value->scalar) + " " + std::string(kDurationHint));
    return std::nullopt;
  }
  if (positive && d->count() == 0) {
    error(f.value->mark, quote(f.key) + " must be greater than 0s");
    return std::nullopt;
  }
  return d;
}

std::optional<double> NodeReader::getNumber(const Field& f, double lo, double hi) {
  std::string s = isPlainOr(*f.value, "float") || isPlainOr(*f.value, "int") ? f.value->scalar : std::string();
  size_t dot = s.find('.');
  auto digits = [](std::string_view d) {
    return !d.empty() && std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  std::string_view sv = s;
  if (!digits(sv.substr(0, dot)) || (dot != std::string::npos && !digits(sv.substr(dot + 1)))) {
    typeError(f, "a number");
    return std::nullopt;
  }
  double v = std::strtod(s.c_str(), nullptr);
  if (v < lo || v > hi) {
    auto num = [](double d) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%g", d);
      return std::string(buf);
    };
    error(f.value->mark, quote(f.key) + " must be between " + num(lo) + " and " + num(hi) + ", got " + s);
    return std::nullopt;
  }
  return v;
}

}  // namespace ferry::config
