// Config YAML rendered for display (GET /config): JSON or re-emitted YAML, secrets redacted.
#include "config/render.h"

#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <exception>
#include <string_view>

namespace ferry::config {

namespace {

// Plain (unquoted, untagged) scalars have the non-specific tag "?".
bool isPlain(const YAML::Node& n) { return n.Tag() == "?"; }

constexpr std::string_view kRedacted = "[redacted]";

bool isSecretKey(std::string_view k) {
  return k == "token" || k == "password" || k == "secret" || k == "private_key" ||
         k.starts_with("inline");
}

std::string keyText(const YAML::Node& k) {
  if (k.IsScalar()) return k.Scalar();
  YAML::Emitter e;
  e << YAML::Flow << k;
  return e.c_str();
}

bool isJsonNumber(std::string_view s) {
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i - start;
  };
  if (i < s.size() && s[i] == '-') ++i;
  if (i < s.size() && s[i] == '0') ++i;
  else if (digits() == 0) return false;
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (digits() == 0) return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (digits() == 0) return false;
  }
  return i == s.size();
}


void appendJson(std::string& out, const YAML::Node& n) {
  if (n.IsMap()) {
    out += '{';
    bool first = true;
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!first) out += ',';
      first = false;
      std::string key = keyText(it->first);
      appendJsonString(out, key);
      out += ':';
      if (isSecretKey(key)) appendJsonString(out, kRedacted);
      else appendJson(out, it->second);
    }
    out += '}';
  } else if (n.IsSequence()) {
    out += '[';
    bool first = true;
    for (const YAML::Node& item : n) {
      if (!first) out += ',';
      first = false;
      appendJson(out, item);
    }
    out += ']';
  } else if (n.IsScalar()) {
    const std::string& s = n.Scalar();
    if (isPlain(n) && (s == "true" || s == "false" || isJsonNumber(s))) out += s;
    else appendJsonString(out, s);
  } else {
    out += "null";
  }
}

void emitYaml(YAML::Emitter& out, const YAML::Node& n) {
  if (n.IsMap()) {
    if (n.Style() == YAML::EmitterStyle::Flow) out << YAML::Flow;
    out << YAML::BeginMap;
    for (auto it = n.begin(); it != n.end(); ++it) {
      out << YAML::Key;
      emitYaml(out, it->first);
      out << YAML::Value;
      if (it->first.IsScalar() && isSecretKey(it->first.Scalar()))
        out << YAML::DoubleQuoted << std::string(kRedacted);
      else
        emitYaml(out, it->second);
    }
    out << YAML::EndMap;
  } else if (n.IsSequence()) {
    if (n.Style() == YAML::EmitterStyle::Flow) out << YAML::Flow;
    out << YAML::BeginSeq;
    for (const YAML::Node& item : n) emitYaml(out, item);
    out << YAML::EndSeq;
  } else if (n.IsScalar()) {
    const std::string& tag = n.Tag();
    if (tag == "!") out << YAML::DoubleQuoted;  // was quoted (or a block scalar): keep it a string
    else if (!tag.empty() && tag != "?") out << YAML::VerbatimTag(tag);
    out << n.Scalar();
  } else {
    out << YAML::Null;
  }
}

std::string renderJson(const YAML::Node& root) {
  if (!root.IsDefined() || root.IsNull()) return "{}";
  std::string out;
  appendJson(out, root);
  return out;
}

std::string renderYaml(const YAML::Node& root) {
  if (!root.IsDefined() || root.IsNull()) return "{}\n";
  YAML::Emitter out;
  emitYaml(out, root);
  if (!out.good()) return "# cannot re-emit config: " + out.GetLastError() + "\n";
  return std::string(out.c_str()) + "\n";
}

template <typename Fn>
std::optional<std::string> renderText(const std::string& yaml, Fn fn) {
  try {
    return fn(YAML::Load(yaml));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

std::optional<std::string> renderRedactedJson(const std::string& yaml) {
  return renderText(yaml, renderJson);
}

std::optional<std::string> renderRedactedYaml(const std::string& yaml) {
  return renderText(yaml, renderYaml);
}

}  // namespace ferry::config
