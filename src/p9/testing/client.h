// A small synchronous 9P2000.L client for tests: encodes T-messages, decodes R-messages,
// with a timeout on every receive so a wrong server fails a test instead of hanging it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "p9/codec.h"

namespace pinata::p9::testing {

class TestClient {
 public:
  explicit TestClient(UniqueFd fd, uint32_t msize = 64 * 1024);
  // Reads replies from `read_fd`, writes requests to `write_fd` (a pipe pair).
  TestClient(UniqueFd read_fd, UniqueFd write_fd, uint32_t msize = 64 * 1024);

  int fd() const { return fd_.get(); }
  uint32_t msize() const { return msize_; }
  // A tag not used by this client yet (1, 2, ...; never kNoTag).
  uint16_t new_tag();

  Status send(uint16_t tag, const TMessage& message);
  Status send_raw(std::span<const uint8_t> bytes);
  // The next reply, whatever its tag. kTimeout after `timeout_ms`; EOF is kIo.
  Result<RFrame> receive(int timeout_ms = 5000);
  // True if the server closes the connection within `timeout_ms` (other bytes are skipped).
  bool wait_for_eof(int timeout_ms = 5000);
  // True if nothing arrives within `timeout_ms`.
  bool quiet_for(int timeout_ms);

  // Sends with a new tag and returns the reply (which must carry that tag).
  Result<RMessage> call(const TMessage& message);
  // Like call(), expecting reply type R; an Rlerror becomes an Error whose code() is the errno.
  template <typename R>
  Result<R> call_as(const TMessage& message) {
    TRY_ASSIGN(RMessage reply, call(message));
    return as<R>(std::move(reply));
  }
  template <typename R>
  static Result<R> as(RMessage reply) {
    if (auto* e = std::get_if<Rlerror>(&reply)) {
      return tl::unexpected<Error>(
          Error(ErrorKind::kIo, "Rlerror " + std::to_string(e->ecode), static_cast<int>(e->ecode)));
    }
    if (auto* r = std::get_if<R>(&reply)) return std::move(*r);
    return fail(ErrorKind::kInvalidInput,
                std::string("unexpected reply ") +
                    message_type_name(static_cast<uint8_t>(message_type(reply))));
  }

  // Tversion(msize, "9P2000.L") then Tattach(fid, NOFID, "user", aname).
  Status handshake(uint32_t fid = 0, const std::string& aname = "");
  // Walk from `fid` to `newfid` along '/'-separated `path` ("" clones).
  Result<std::vector<Qid>> walk(uint32_t fid, uint32_t newfid, const std::string& path);
  // Reads the whole directory opened on `fid`, `count` bytes per Treaddir.
  Result<std::vector<Dirent>> readdir_all(uint32_t fid, uint32_t count = 8192);

 private:
  UniqueFd fd_;        // read (and write, without write_fd_)
  UniqueFd write_fd_;  // optional
  uint32_t msize_;
  uint16_t next_tag_ = 1;
  std::vector<uint8_t> buf_;
};

}  // namespace pinata::p9::testing
