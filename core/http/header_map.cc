#include "core/http/header_map.h"

namespace ferry::core::http {
namespace {
inline char lowerChar(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
}  // namespace

std::string HeaderMap::lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = lowerChar(c);
  return out;
}

bool HeaderMap::equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lowerChar(a[i]) != lowerChar(b[i])) return false;
  return true;
}

void HeaderMap::add(std::string_view name, std::string_view value) {
  entries_.push_back(Entry{lower(name), std::string(value)});
}

void HeaderMap::set(std::string_view name, std::string_view value) {
  bool done = false;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (equalsIgnoreCase(it->name, name)) {
      if (!done) {
        it->value.assign(value);
        done = true;
        ++it;
      } else {
        it = entries_.erase(it);
      }
    } else {
      ++it;
    }
  }
  if (!done) add(name, value);
}

size_t HeaderMap::remove(std::string_view name) {
  size_t n = 0;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (equalsIgnoreCase(it->name, name)) {
      it = entries_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

const std::string* HeaderMap::get(std::string_view name) const {
  for (const auto& e : entries_)
    if (equalsIgnoreCase(e.name, name)) return &e.value;
  return nullptr;
}

std::string HeaderMap::getAll(std::string_view name) const {
  std::string out;
  for (const auto& e : entries_) {
    if (!equalsIgnoreCase(e.name, name)) continue;
    if (!out.empty()) out += ", ";
    out += e.value;
  }
  return out;
}

size_t HeaderMap::count(std::string_view name) const {
  size_t n = 0;
  for (const auto& e : entries_)
    if (equalsIgnoreCase(e.name, name)) ++n;
  return n;
}

size_t HeaderMap::byteSize() const {
  size_t n = 0;
  for (const auto& e : entries_) n += e.name.size() + e.value.size();
  return n;
}

const char* reasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 203: return "Non-Authoritative Information";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 406: return "Not Acceptable";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 412: return "Precondition Failed";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

}  // namespace ferry::core::http
