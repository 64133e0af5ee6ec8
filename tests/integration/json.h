// A small strict JSON parser (RFC 8259) for the integration tests, enough to check the admin
// API's JSON answers (/config, /clusters, POST /reload). Header-only.
#pragma once

#include <cmath>
#include <cstddef>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace ferry::testing {

struct Json;
using JsonObject = std::map<std::string, Json>;
using JsonArray = std::vector<Json>;

struct Json {
  std::variant<std::nullptr_t, bool, double, std::string, JsonArray, JsonObject> v;

  bool isNull() const { return std::holds_alternative<std::nullptr_t>(v); }
  bool isNumber() const { return std::holds_alternative<double>(v); }
  bool isString() const { return std::holds_alternative<std::string>(v); }
  bool isArray() const { return std::holds_alternative<JsonArray>(v); }
  bool isObject() const { return std::holds_alternative<JsonObject>(v); }
  double num() const { return isNumber() ? std::get<double>(v) : NAN; }
  std::string str() const { return isString() ? std::get<std::string>(v) : std::string(); }
  const JsonArray& arr() const {
    static const JsonArray empty;
    return isArray() ? std::get<JsonArray>(v) : empty;
  }
  bool has(const std::string& k) const { return isObject() && std::get<JsonObject>(v).count(k) > 0; }
  // Member k of an object; a null Json if absent or not an object.
  const Json& operator[](const std::string& k) const {
    static const Json none;
    if (!isObject()) return none;
    const auto& o = std::get<JsonObject>(v);
    auto it = o.find(k);
    return it == o.end() ? none : it->second;
  }
};

class JsonParser {
 public:
  explicit JsonParser(std::string_view s) : s_(s) {}

  std::optional<Json> parseDocument() {
    Json j;
    ws();
    if (!value(j, 0)) return std::nullopt;
    ws();
    if (i_ != s_.size()) return std::nullopt;
    return j;
  }

 private:
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool lit(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  bool value(Json& out, int depth) {
    if (depth > 64 || i_ >= s_.size()) return false;
    char c = s_[i_];
    if (c == '{') return object(out, depth);
    if (c == '[') return array(out, depth);
    if (c == '"') {
      std::string str;
      if (!string(str)) return false;
      out.v = std::move(str);
      return true;
    }
    if (lit("true")) return out.v = true, true;
    if (lit("false")) return out.v = false, true;
    if (lit("null")) return out.v = nullptr, true;
    return number(out);
  }
  bool object(Json& out, int depth) {
    ++i_;
    JsonObject o;
    ws();
    if (i_ < s_.size() && s_[i_] == '}') {
      ++i_;
      out.v = std::move(o);
      return true;
    }
    while (true) {
      ws();
      std::string key;
      if (i_ >= s_.size() || s_[i_] != '"' || !string(key)) return false;
      ws();
      if (i_ >= s_.size() || s_[i_] != ':') return false;
      ++i_;
      ws();
      Json val;
      if (!value(val, depth + 1)) return false;
      if (!o.emplace(key, std::move(val)).second) return false;  // duplicate member
      ws();
      if (i_ < s_.size() && s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ < s_.size() && s_[i_] == '}') {
        ++i_;
        out.v = std::move(o);
        return true;
      }
      return false;
    }
  }
  bool array(Json& out, int depth) {
    ++i_;
    JsonArray a;
    ws();
    if (i_ < s_.size() && s_[i_] == ']') {
      ++i_;
      out.v = std::move(a);
      return true;
    }
    while (true) {
      ws();
      Json val;
      if (!value(val, depth + 1)) return false;
      a.push_back(std::move(val));
      ws();
      if (i_ < s_.size() && s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ < s_.size() && s_[i_] == ']') {
        ++i_;
        out.v = std::move(a);
        return true;
      }
      return false;
    }
  }
  bool string(std::string& out) {
    ++i_;  // opening quote
    while (i_ < s_.size()) {
      auto c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c != '\\') {
        out.push_back(static_cast<char>(c));
        continue;
      }
      if (i_ >= s_.size()) return false;
      char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          if (i_ + 4 > s_.size()) return false;
          unsigned cp = 0;
          for (int k = 0; k < 4; ++k) {
            char h = s_[i_++];
            cp <<= 4;
            if (h >= '0' && h <= '9') cp |= h - '0';
            else if (h >= 'a' && h <= 'f') cp |= h - 'a' + 10;
            else if (h >= 'A' && h <= 'F') cp |= h - 'A' + 10;
            else return false;
          }
          if (cp < 0x80) {
            out.push_back(static_cast<char>(cp));
          } else {
            out += "\xEF\xBF\xBD";  // good enough for these tests
          }
          break;
        }
        default: return false;
      }
    }
    return false;
  }
  bool number(Json& out) {
    static const std::regex re(R"(^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?)");
    std::cmatch m;
    const char* b = s_.data() + i_;
    if (!std::regex_search(b, s_.data() + s_.size(), m, re) || m.length(0) == 0) return false;
    out.v = std::stod(std::string(b, m.length(0)));
    i_ += m.length(0);
    return true;
  }

  std::string_view s_;
  size_t i_ = 0;
};

// The document `s`, or nullopt if it is not exactly one valid JSON value.
inline std::optional<Json> parseJson(std::string_view s) { return JsonParser(s).parseDocument(); }

}  // namespace ferry::testing
