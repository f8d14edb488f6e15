// Result<T>: the error model used everywhere in pinata.
//
// An Error is a small stable kind plus a human-readable context string. Functions that can
// fail return Result<T> (tl::expected<T, Error>); callers propagate with TRY / TRY_ASSIGN.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include <tl/expected.hpp>

namespace pinata {

enum class ErrorKind {
  kIo,            // a system call failed (errno in `code`)
  kInvalidInput,  // bad input from a user, a file or a peer
  kNotFound,
  kAlreadyExists,
  kTimeout,
  kCorrupt,       // stored data failed an integrity check
  kUnsupported,
  kInternal,
};

const char* error_kind_name(ErrorKind kind);

class Error {
 public:
  Error(ErrorKind kind, std::string message, int code = 0)
      : kind_(kind), message_(std::move(message)), code_(code) {}

  // An error for a failed system call: "what: strerror(err)".
  static Error from_errno(const std::string& what, int err = errno) {
    return Error(ErrorKind::kIo, what + ": " + std::strerror(err), err);
  }

  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }
  int code() const { return code_; }

  // Prefix more context: "outer: inner".
  Error context(const std::string& outer) const& {
    return Error(kind_, outer + ": " + message_, code_);
  }

 private:
  ErrorKind kind_;
  std::string message_;
  int code_;
};

template <typename T>
using Result = tl::expected<T, Error>;

using Status = Result<void>;

inline tl::unexpected<Error> fail(ErrorKind kind, std::string message) {
  return tl::unexpected<Error>(Error(kind, std::move(message)));
}
inline tl::unexpected<Error> fail_errno(const std::string& what, int err = errno) {
  return tl::unexpected<Error>(Error::from_errno(what, err));
}
inline tl::unexpected<Error> fail(Error e) { return tl::unexpected<Error>(std::move(e)); }

}  // namespace pinata

// Propagate an error from an expression returning Result<T>; discards the value.
#define PINATA_CONCAT_INNER(a, b) a##b
#define PINATA_CONCAT(a, b) PINATA_CONCAT_INNER(a, b)
#define TRY(expr)                                                     \
  do {                                                                \
    auto&& pinata_try_result_ = (expr);                               \
    if (!pinata_try_result_) return tl::unexpected(pinata_try_result_.error()); \
  } while (0)
// TRY_ASSIGN(auto x, expr): declare x from the value of expr or return its error.
#define TRY_ASSIGN(decl, expr) TRY_ASSIGN_IMPL(PINATA_CONCAT(pinata_tmp_, __LINE__), decl, expr)
#define TRY_ASSIGN_IMPL(tmp, decl, expr)                     \
  auto tmp = (expr);                                         \
  if (!tmp) return tl::unexpected(std::move(tmp).error());   \
  decl = std::move(*tmp)
