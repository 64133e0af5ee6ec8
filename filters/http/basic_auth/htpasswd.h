// htpasswd files for the basic_auth filter: the parser (which hash schemes are accepted and
// why the others are refused), the file reader, and password verification with libcrypt.
// Parsing runs on the main thread at config build; verify() runs on a worker (it is as slow
// as the hash is meant to be: bcrypt at cost 10 takes tens of milliseconds).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct crypt_data;

namespace ferry::filters::http {

struct HtpasswdUser {
  std::string name;
  std::string hash;  // a bcrypt ($2a$, $2b$, $2y$) or SHA-crypt ($5$, $6$) string
  int line = 0;      // 1-based, in the file
};

struct Htpasswd {
  std::vector<HtpasswdUser> users;  // in file order; names unique
};

// Parses htpasswd text: `USER:HASH` lines; blank lines and lines starting with '#' are skipped
// (surrounding spaces and tabs, a CR before the LF and a UTF-8 byte order mark are ignored). `name` starts each error
// ("users.htpasswd:3: user 'bob': MD5 ($apr1$) hashes are refused; use bcrypt (htpasswd -B)").
// Every bad line is reported (up to `max_errors`, then one line saying how many more); nullopt
// when there is any error, or no user at all.
std::optional<Htpasswd> parseHtpasswd(std::string_view text, std::string_view name, std::vector<std::string>* errors,
                                      size_t max_errors = 10);

// Why `hash` is not accepted ("" when it is): refused schemes (plain text, DES, MD5, SHA-1,
// others) and malformed bcrypt/SHA-crypt strings. Never quotes the hash.
std::string hashProblem(std::string_view hash);

// Reads a whole file (at most `max_bytes`); nullopt and *error ("No such file or directory",
// "is a directory", "larger than 16 MiB") otherwise.
std::optional<std::string> readSmallFile(const std::string& path, std::string* error,
                                         size_t max_bytes = size_t{16} << 20);

// Whether `password` hashes to `hash` (crypt_rn into `scratch`; the result compared in
// constant time). `password` must not contain NUL (crypt would stop there): false if it does.
bool verifyPassword(std::string_view hash, std::string_view password, crypt_data& scratch);

}  // namespace ferry::filters::http
