// NodeReader: typed reading of config values with errors that point at their FILE:LINE:COL,
// the same way for the loader's own keys and for a block a filter parses itself (a
// ConfigNode). Each getter reports its own error (at the value) and returns nullopt/false;
// nothing throws. Main thread (config load), plain data only.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.h"

namespace ferry::config {

struct NodeError {
  Mark mark;
  std::string message;
};

class NodeReader {
 public:
  using Sink = std::function<void(Mark, std::string)>;
  // Collects errors (errors()).
  NodeReader() = default;
  // Sends errors to `sink` instead.
  explicit NodeReader(Sink sink) : sink_(std::move(sink)) {}

  void error(Mark m, std::string message);
  const std::vector<NodeError>& errors() const { return errors_; }
  size_t errorCount() const { return count_; }

  // A value and the key it stands under (for messages: "expected an integer for 'x'").
  struct Field {
    std::string_view key;
    Mark key_mark;
    const ConfigNode* value;
  };
  struct Fields {
    std::vector<Field> list;  // in document order
    const Field* get(std::string_view key) const;
  };
  // The keys of the mapping `map` that are in `allowed`; other keys are reported at the key
  // ("unknown key 'x' in <where>", with a did-you-mean). `where` ends messages: "in buffer
  // config". Not a mapping (null counts as empty): a type error.
  Fields fields(const Field& map, std::string_view where, std::initializer_list<std::string_view> allowed);
  // A key that must be there: "missing required key 'k' <where>" at `parent` otherwise.
  const Field* need(const Fields& f, std::string_view key, Mark parent, std::string_view where);

  void typeError(const Field& f, std::string_view expected);
  bool isMap(const Field& f, bool null_ok = false);
  std::optional<std::string> getString(const Field& f);  // non-empty scalar
  std::optional<bool> getBool(const Field& f);
  std::optional<uint64_t> getUint(const Field& f, uint64_t lo, uint64_t hi);
  std::optional<Duration> getDuration(const Field& f, bool positive);
  // A plain number lo..hi, fractions allowed ("12.5"); no sign, exponent or quotes.
  std::optional<double> getNumber(const Field& f, double lo, double hi);

  // "a mapping", "a list", "'text'", "the quoted string \"x\"", for "expected X, got Y".
  static std::string describe(const ConfigNode& n);
  static std::string quote(std::string_view s);
  // The closest of `options` to a misspelt `key` (for "did you mean"), or "".
  static std::string_view suggest(std::string_view key, std::initializer_list<std::string_view> options);

 private:
  Sink sink_;
  std::vector<NodeError> errors_;
  size_t count_ = 0;
};

}  // namespace ferry::config
