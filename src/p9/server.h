// A 9P2000.L server session: one connection, one FileSystem (docs/protocols/9p.md).
//
// Threading: run() is the session's reader thread. It reads one message at a time, decodes
// it and handles it inline, calling the FileSystem on this thread, so a session's fs calls
// never overlap. Tread is the exception that may finish later: the OpenFile gets a Responder
// and may answer from any thread, while run() goes on reading and answering other requests.
// Every reply is written whole under one mutex, so replies from different threads never
// interleave. Tflush of a pending read cancels it (its cancel hook runs) and Rflush follows;
// a read that was answered first has its reply written before the Rflush. When the connection
// ends (EOF, a framing error, a write error or stop()), pending reads are cancelled without
// reply and every fid is clunked (OpenFile destructors run) before run() returns.
//
// Writes to a pipe may raise SIGPIPE if the peer has gone; programs ignore SIGPIPE (sockets
// are written with MSG_NOSIGNAL).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "base/fd.h"
#include "base/result.h"
#include "p9/filesystem.h"

namespace pinata::p9 {

constexpr uint32_t kDefaultMaxMsize = 512 * 1024;
constexpr uint32_t kMinMsize = 4096;  // a smaller Tversion msize gets "unknown"
constexpr size_t kDefaultMaxFids = 4096;

struct SessionOptions {
  uint32_t max_msize = kDefaultMaxMsize;  // the msize we offer (the reply is the smaller one)
  size_t max_fids = kDefaultMaxFids;      // more live fids than this → EMFILE
  std::string name = "9p";                // prefix of this session's log lines
};

class Session {
 public:
  // Serves over one connected stream socket (or any fd that is both read and written).
  Session(std::shared_ptr<FileSystem> fs, UniqueFd fd, SessionOptions options = {});
  // Serves over separate read and write fds (a pipe pair, or trans=fd's rfdno/wfdno).
  Session(std::shared_ptr<FileSystem> fs, UniqueFd read_fd, UniqueFd write_fd,
          SessionOptions options = {});
  // Clunks what a run() that never ran or did not finish left open. Do not destroy a Session
  // while run() is running on another thread: stop() it and join first.
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Serves until the peer closes the connection (ok), stop() (ok), or a fatal error: a frame
  // whose size is below 7 or above msize (the stream cannot be resynchronised), an I/O error.
  // Cleans up as described above and closes the fds before returning. Call once.
  Status run();
  // Thread-safe, any time: makes run() return soon.
  void stop();

  // For tests: the number of live fids and of reads awaiting an answer.
  size_t fid_count() const;
  size_t pending_count() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pinata::p9
