// Helpers shared by the ports tests: free ports, and the hook's side of the control tree
// spoken with the in-process 9P test client (what pinata-proxy does with mkdir/open/write/
// pread through the guest kernel's v9fs).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "p9/testing/client.h"

namespace pinata::ports::testing {

// A port that was free a moment ago on 127.0.0.1 (bind to 0, read it, close).
inline uint16_t free_port(int type = SOCK_STREAM) {
  UniqueFd fd(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return 0;
  socklen_t len = sizeof a;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// Whether a new socket of `type` can bind 127.0.0.1:port (TCP: with SO_REUSEADDR and listen).
inline bool can_bind(uint16_t port, int type = SOCK_STREAM) {
  UniqueFd fd(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return false;
  return type != SOCK_STREAM || ::listen(fd.get(), 1) == 0;
}

// The hook's requests, over a TestClient attached at fid 0.
class PortTreeClient {
 public:
  explicit PortTreeClient(p9::testing::TestClient& client) : c_(client) {}

  Status mkdir(const std::string& name) {
    uint32_t fid = next_fid_++;
    TRY(c_.walk(0, fid, ""));
    auto r = c_.call_as<p9::Rmkdir>(p9::Tmkdir{fid, name, 0755, 0});
    TRY(c_.call_as<p9::Rclunk>(p9::Tclunk{fid}));
    if (!r) return fail(r.error());
    return {};
  }
  // Opens <name>/ctl read-write; returns the fid.
  Result<uint32_t> open_ctl(const std::string& name) {
    uint32_t fid = next_fid_++;
    TRY(c_.walk(0, fid, name + "/ctl"));
    TRY(c_.call_as<p9::Rlopen>(p9::Tlopen{fid, p9::P9_DOTL_RDWR}));
    return fid;
  }
  // Writes `text` and reads the answer at offset 0.
  Result<std::string> request(uint32_t fid, const std::string& text) {
    TRY(c_.call_as<p9::Rwrite>(p9::Twrite{fid, 0, text}));
    TRY_ASSIGN(auto r, c_.call_as<p9::Rread>(p9::Tread{fid, 0, 4096}));
    return r.data;
  }
  // mkdir + open + write + read, as the hook does. Returns the fid and the answer.
  Result<std::pair<uint32_t, std::string>> forward(const std::string& spec) {
    TRY(mkdir(spec));
    TRY_ASSIGN(uint32_t fid, open_ctl(spec));
    TRY_ASSIGN(std::string answer, request(fid, spec));
    return std::make_pair(fid, answer);
  }
  Status clunk(uint32_t fid) {
    TRY(c_.call_as<p9::Rclunk>(p9::Tclunk{fid}));
    return {};
  }
  Result<std::vector<std::string>> list() {
    uint32_t fid = next_fid_++;
    TRY(c_.walk(0, fid, ""));
    TRY(c_.call_as<p9::Rlopen>(p9::Tlopen{fid, p9::P9_DOTL_RDONLY}));
    TRY_ASSIGN(auto entries, c_.readdir_all(fid));
    TRY(clunk(fid));
    std::vector<std::string> names;
    for (const auto& e : entries) {
      if (e.name != "." && e.name != "..") names.push_back(e.name);
    }
    return names;
  }

 private:
  p9::testing::TestClient& c_;
  uint32_t next_fid_ = 100;
};

}  // namespace pinata::ports::testing
