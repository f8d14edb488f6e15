#include "guest/api_service.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "base/io.h"
#include "base/log.h"
#include "base/splice_proxy.h"
#include "guest/boot_clock.h"
#include "guest/handshake.h"
#include "guest/shutdown.h"

namespace pinata::guest {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);

// The token, read from fw_cfg on first use and again while it is missing.
class TokenSource {
 public:
  explicit TokenSource(std::string path) : path_(std::move(path)) {}
  std::string get() {
    std::lock_guard lock(mu_);
    if (!token_.empty()) return token_;
    auto raw = read_file(path_, 4096);
    if (raw) token_ = strip_whitespace(*raw);
    if (token_.empty() && !warned_) {
      warned_ = true;
      log::error("api: no token (%s): refusing every connection",
                 raw ? (path_ + " is empty").c_str() : raw.error().message().c_str());
    }
    return token_;
  }

 private:
  std::mutex mu_;
  std::string path_;
  std::string token_;
  bool warned_ = false;
};

// Reads one line byte by byte (so nothing after the newline is consumed). On EOF, an error,
// an overlong line or the deadline, returns nullopt and says why in `*why`.
std::optional<std::string> read_handshake(int fd, Clock::time_point deadline, std::string* why) {
  std::string line;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      *why = "no newline within 10 s";
      return std::nullopt;
    }
    struct pollfd pfd = {fd, POLLIN, 0};
    int rc = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) {
      *why = std::string("poll: ") + strerror(errno);
      return std::nullopt;
    }
    if (rc == 0) continue;  // the deadline check above ends the loop
    char c;
    ssize_t n = ::recv(fd, &c, 1, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      *why = n == 0 ? "closed before a newline" : std::string("recv: ") + strerror(errno);
      return std::nullopt;
    }
    if (c == '\n') return line;
    if (line.size() >= kMaxHandshakeLine) {
      *why = "no newline within " + std::to_string(kMaxHandshakeLine) + " bytes";
      return std::nullopt;
    }
    line.push_back(c);
  }
}

void serve(UniqueFd conn, std::string peer, std::shared_ptr<TokenSource> tokens,
           std::string docker_socket) {
  std::string why;
  auto line = read_handshake(conn.get(), Clock::now() + kHandshakeTimeout, &why);
  if (!line) {
    log::warn("api: %s: bad handshake (%s); closing", peer.c_str(), why.c_str());
    return;
  }
  auto cmd = parse_handshake(*line, tokens->get());
  if (!cmd) {
    log::warn("api: %s: bad handshake (wrong token or unknown command); closing", peer.c_str());
    return;
  }
  switch (*cmd) {
    case ApiCommand::kPing: (void)write_all(conn.get(), "pong\n"); return;
    case ApiCommand::kShutdown:
      log::info("api: %s: shutdown requested", peer.c_str());
      (void)write_all(conn.get(), "ok\n");
      conn.reset();
      request_shutdown("shutdown command from the host");
      return;
    case ApiCommand::kDocker: {
      auto docker = unix_connect(docker_socket);
      if (!docker) {
        log::debug("api: %s: %s", peer.c_str(), docker.error().message().c_str());
        return;  // dockerd isn't up yet: close, the host retries
      }
      proxy_streams_detached(std::move(conn), std::move(*docker));
      return;
    }
  }
}

}  // namespace

void start_api_service(const ApiServiceConfig& config) {
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener) {
    log::error("api: socket: %s", strerror(errno));
    return;
  }
  int one = 1;
  ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr;
  std::memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(config.port));
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  if (::bind(listener.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener.get(), 128) != 0) {
    log::error("api: listen on 0.0.0.0:%d: %s", config.port, strerror(errno));
    return;
  }
  auto tokens = std::make_shared<TokenSource>(config.token_path);
  tokens->get();  // log a missing token at boot, not at the first connection
  step("api: listening on 0.0.0.0:%d", config.port);
  std::thread([listener = std::move(listener), tokens, socket = config.docker_socket]() {
    for (;;) {
      struct sockaddr_in peer;
      socklen_t len = sizeof peer;
      int fd =
          ::accept4(listener.get(), reinterpret_cast<struct sockaddr*>(&peer), &len, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        log::error("api: accept: %s", strerror(errno));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // e.g. EMFILE
        continue;
      }
      int nodelay = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof nodelay);
      char ip[INET_ADDRSTRLEN] = "?";
      ::inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
      std::string name = std::string(ip) + ":" + std::to_string(ntohs(peer.sin_port));
      std::thread(serve, UniqueFd(fd), std::move(name), tokens, socket).detach();
    }
  }).detach();
}

}  // namespace pinata::guest
