// basic_auth: HTTP Basic authentication (RFC 7617) against an htpasswd file of bcrypt or
// SHA-crypt hashes (htpasswd.h). The file is read when the config is built, so a reload
// (SIGHUP, POST /reload, ...) reads it again. A request without credentials, with a malformed
// Authorization header, or with a wrong user or password gets 401 with
// `WWW-Authenticate: Basic realm="...", charset="UTF-8"` and flag BA; an authenticated one goes
// on, optionally with the user name in a header (any value the client sent in that header is
// removed first, always) and without its Authorization header.
//
// Verifying a bcrypt hash is slow on purpose and runs on the worker; each worker remembers the
// (user, password) pairs it verified successfully (a keyed SHA-256 of the pair, in a bounded
// direct-mapped table), so a client that sends the same credentials on every request pays for
// bcrypt once. Failures are never remembered. The table belongs to the config snapshot: a
// reload starts empty ones. Worker-local filter; one per stream.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "filters/http/basic_auth/htpasswd.h"
#include "filters/http/outcome_counters.h"
#include "filters/registry.h"

namespace ferry::filters::http {

// A worker's memory of verified (user, password) pairs: `slots` entries (a power of two) of
// SHA-256(key, user, password) and the user's index, where key is random per config. Used by
// one worker only.
class CredentialCache {
 public:
  using Digest = std::array<uint8_t, 32>;
  CredentialCache(size_t slots, const std::array<uint8_t, 32>& key);
  // The digest of a pair (length-prefixed, so "ab"+"c" and "a"+"bc" differ).
  Digest digest(std::string_view user, std::string_view password) const;
  // Whether `d` was stored for `user` (compared in constant time).
  bool contains(const Digest& d, uint32_t user) const;
  void insert(const Digest& d, uint32_t user);
  size_t slots() const { return slots_.size(); }

 private:
  struct Slot {
    Digest digest{};
    uint32_t user = UINT32_MAX;  // none
  };
  const Slot& slotOf(const Digest& d) const;
  std::vector<Slot> slots_;
  std::array<uint8_t, 32> key_;
};

struct BasicAuthConfig {
  std::string htpasswd_path;  // as written (for messages)
  Htpasswd users;
  std::string realm = "ferry";
  std::string forward_username_header;  // lower-case; "" = none
  bool strip_authorization = true;
  size_t cache_entries = 1024;  // per worker; 0 = no cache
};

// Reads `config:` of a basic_auth entry (required) and the htpasswd file it names (relative to
// `config_dir`); nullopt after reporting errors (the file's own at the `htpasswd` value).
std::optional<BasicAuthConfig> parseBasicAuthConfig(const config::HttpFilterConfig& entry, config::NodeReader& reader,
                                                    const std::string& config_dir);

// The user and password of an `Authorization: Basic ...` value, decoded into `buf` (the
// views point into it); nullopt when the scheme is not Basic, the base64 is invalid or does
// not fit, or there is no ':' or no user. The scheme is case-insensitive.
struct BasicCredentials {
  std::string_view user;
  std::string_view password;
};
inline constexpr size_t kMaxCredentialBytes = 2048;
std::optional<BasicCredentials> parseBasicAuthorization(std::string_view value,
                                                        std::array<char, kMaxCredentialBytes>& buf);

Registry::HttpBuilder basicAuthFilterBuilder();

}  // namespace ferry::filters::http
