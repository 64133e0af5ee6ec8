#include "filters/http/basic_auth/htpasswd.h"

#include <crypt.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <absl/container/flat_hash_map.h>

#include <cerrno>
#include <cstring>

namespace ferry::filters::http {
namespace {

constexpr std::string_view kUseBcrypt = "; use bcrypt (htpasswd -B)";

// crypt(3)'s base-64 alphabet.
bool isCryptChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '/';
}
bool allCryptChars(std::string_view s) {
  for (char c : s)
    if (!isCryptChar(c)) return false;
  return true;
}
bool allDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// $2a$NN$ + 22 salt + 31 hash characters.
std::string bcryptProblem(std::string_view h) {
  const std::string_view kShape = "malformed bcrypt hash (expected $2y$NN$ and 53 characters of ./A-Za-z0-9)";
  if (h.size() != 60 || h[6] != '$' || !allDigits(h.substr(4, 2)) || !allCryptChars(h.substr(7)))
    return std::string(kShape);
  const int cost = (h[4] - '0') * 10 + (h[5] - '0');
  if (cost < 4 || cost > 31) return "bcrypt cost " + std::string(h.substr(4, 2)) + " is out of range (04-31)";
  return {};
}

// $5$ or $6$, [rounds=N$], salt (up to 16 characters), $, hash (43 or 86 characters).
std::string shaCryptProblem(std::string_view h) {
  const bool sha512 = h[1] == '6';
  const std::string what = sha512 ? "SHA-512" : "SHA-256";
  const std::string shape = "malformed " + what + "-crypt hash (expected " + std::string(h.substr(0, 3)) +
                            "[rounds=N$]SALT$ and " + (sha512 ? "86" : "43") + " characters of ./A-Za-z0-9)";
  std::string_view rest = h.substr(3);
  if (rest.starts_with("rounds=")) {
    const size_t d = rest.find('$');
    if (d == std::string_view::npos || !allDigits(rest.substr(7, d - 7))) return shape;
    rest.remove_prefix(d + 1);
  }
  const size_t d = rest.find('$');
  if (d == std::string_view::npos || d > 16) return shape;
  const std::string_view salt = rest.substr(0, d), sum = rest.substr(d + 1);
  if (salt.find_first_of(" \t") != std::string_view::npos) return shape;
  if (sum.size() != (sha512 ? 86u : 43u) || !allCryptChars(sum)) return shape;
  return {};
}

bool hasControl(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  return false;
}

std::string quoteUser(std::string_view u) { return "user '" + std::string(u) + "'"; }

}  // namespace

std::string hashProblem(std::string_view h) {
  if (h.starts_with("$2a$") || h.starts_with("$2b$") || h.starts_with("$2y$")) {
    std::string p = bcryptProblem(h);
    if (!p.empty()) return p;
  } else if (h.starts_with("$5$") || h.starts_with("$6$")) {
    std::string p = shaCryptProblem(h);
    if (!p.empty()) return p;
  } else if (h.starts_with("$apr1$")) {
    return "MD5 ($apr1$) hashes are refused" + std::string(kUseBcrypt);
  } else if (h.starts_with("$1$")) {
    return "MD5-crypt ($1$) hashes are refused" + std::string(kUseBcrypt);
  } else if (h.starts_with("{SHA}")) {
    return "SHA-1 ({SHA}) hashes are refused" + std::string(kUseBcrypt);
  } else if ((h.size() == 13 && allCryptChars(h)) || (h.size() == 20 && h[0] == '_' && allCryptChars(h.substr(1)))) {
    return "DES crypt hashes are refused (or this is a plain-text password)" + std::string(kUseBcrypt);
  } else if (h.starts_with("$")) {
    const size_t end = h.find('$', 1);
    const std::string id = end == std::string_view::npos || end > 10 ? std::string("$") : std::string(h.substr(0, end + 1));
    return "the hash scheme " + id + " is not supported (bcrypt $2y$ or SHA-crypt $5$/$6$ are)" +
           std::string(kUseBcrypt);
  } else {
    return "plain-text passwords are refused" + std::string(kUseBcrypt);
  }
  // libcrypt's own opinion of the setting: it must be able to verify it.
  const std::string z(h);
  const int c = crypt_checksalt(z.c_str());
  if (c == CRYPT_SALT_INVALID) return "libcrypt rejects this hash as invalid";
  if (c == CRYPT_SALT_METHOD_DISABLED) return "this libcrypt has the hash method disabled";
  return {};
}

std::optional<Htpasswd> parseHtpasswd(std::string_view text, std::string_view name, std::vector<std::string>* errors,
                                      size_t max_errors) {
  Htpasswd out;
  size_t n_errors = 0;
  auto error = [&](int line, const std::string& message) {
    if (n_errors++ < max_errors) errors->push_back(std::string(name) + ":" + std::to_string(line) + ": " + message);
  };
  absl::flat_hash_map<std::string, int> seen;  // user -> line
  int line_no = 0;
  size_t pos = text.starts_with("\xEF\xBB\xBF") ? 3 : 0;  // a UTF-8 byte order mark (Windows editors)
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      error(line_no, "expected USER:HASH, found no ':'");
      continue;
    }
    const std::string_view user = line.substr(0, colon), hash = line.substr(colon + 1);
    if (user.empty()) {
      error(line_no, "empty user name (expected USER:HASH)");
      continue;
    }
    if (hasControl(user)) {
      error(line_no, "the user name has a control character");
      continue;
    }
    if (hash.find(':') != std::string_view::npos) {
      error(line_no, quoteUser(user) + ": more than one ':' (expected USER:HASH)");
      continue;
    }
    if (hash.empty()) {
      error(line_no, quoteUser(user) + ": no password hash");
      continue;
    }
    if (std::string p = hashProblem(hash); !p.empty()) {
      error(line_no, quoteUser(user) + ": " + p);
      continue;
    }
    auto [it, fresh] = seen.emplace(std::string(user), line_no);
    if (!fresh) {
      error(line_no, quoteUser(user) + " appears again (first on line " + std::to_string(it->second) + ")");
      continue;
    }
    out.users.push_back(HtpasswdUser{std::string(user), std::string(hash), line_no});
  }
  if (n_errors > max_errors)
    errors->push_back(std::string(name) + ": " + std::to_string(n_errors - max_errors) + " more errors");
  if (n_errors > 0) return std::nullopt;
  if (out.users.empty()) {
    errors->push_back(std::string(name) + ": no users in the file (" +
                      (text.empty() ? "it is empty" : "only comments and blank lines") + ")");
    return std::nullopt;
  }
  return out;
}

std::optional<std::string> readSmallFile(const std::string& path, std::string* error, size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = std::strerror(errno);
    return std::nullopt;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    *error = S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file";
    ::close(fd);
    return std::nullopt;
  }
  std::string out;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = std::strerror(errno);
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      *error = "larger than " + std::to_string(max_bytes >> 20) + " MiB";
      ::close(fd);
      return std::nullopt;
    }
  }
  ::close(fd);
  return out;
}

bool verifyPassword(std::string_view hash, std::string_view password, crypt_data& scratch) {
  // crypt_rn takes C strings: the password and the hash go into the scratch area's own input
  // and setting fields, with their terminators; the password is wiped afterwards.
  if (password.size() >= sizeof scratch.input || password.find('\0') != std::string_view::npos) return false;
  if (hash.size() >= sizeof scratch.setting) return false;
  std::memcpy(scratch.input, password.data(), password.size());
  scratch.input[password.size()] = '\0';
  std::memcpy(scratch.setting, hash.data(), hash.size());
  scratch.setting[hash.size()] = '\0';
  const char* out = crypt_rn(scratch.input, scratch.setting, &scratch, sizeof scratch);
  OPENSSL_cleanse(scratch.input, sizeof scratch.input);
  bool ok = false;
  if (out != nullptr && out[0] != '*') {
    const size_t n = std::strlen(out);
    ok = n == hash.size() && CRYPTO_memcmp(out, hash.data(), n) == 0;
  }
  OPENSSL_cleanse(scratch.output, sizeof scratch.output);
  return ok;
}

}  // namespace ferry::filters::http
