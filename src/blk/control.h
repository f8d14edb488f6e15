// pinata-blk's control socket (--control PATH): how `pinata disk compact` reaches the backend
// that has the image open while the VM runs.
//
// Protocol: the client connects, writes one line `compact\n`; the server compacts the image on
// the compactor's thread and answers one line, `OK <file bytes before> <file bytes after>\n`
// or `ERROR <message>\n`, then closes. Anything else gets `ERROR unknown command ...`. A line
// is at most 64 bytes; a client that sends more, or nothing, is answered and dropped.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include "base/event_loop.h"
#include "base/fd.h"
#include "base/result.h"
#include "blk/compactor.h"

namespace pinata::blk {

class ControlServer {
 public:
  // Listens on `path` (mode 0600). `compactor` null: compact requests are refused, saying why
  // (`why_no_compactor`). Both must outlive the server, which lives on `loop`'s thread.
  static Result<std::unique_ptr<ControlServer>> listen(EventLoop& loop, const std::string& path,
                                                      Compactor* compactor, std::string why_no_compactor);
  ~ControlServer();

 private:
  ControlServer(EventLoop& loop, UniqueFd listener, Compactor* compactor, std::string why);
  void on_accept();
  void on_client(int fd);

  EventLoop& loop_;
  UniqueFd listener_;
  Compactor* compactor_;
  std::string why_no_compactor_;
  struct Client {
    std::shared_ptr<UniqueFd> fd;
    std::string line;
  };
  std::unordered_map<int, Client> clients_;
};

// Parses one reply line (for the CLI and tests): the sizes, or the server's error.
Result<Compactor::Outcome> parse_control_reply(const std::string& line);

}  // namespace pinata::blk
