#include "guest/dhcp_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "base/fd.h"
#include "base/log.h"

namespace pinata::guest {
namespace {

using Clock = std::chrono::steady_clock;

uint32_t random_xid() {
  uint32_t x = 0;
  if (::getrandom(&x, sizeof x, GRND_NONBLOCK) != sizeof x) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    x = static_cast<uint32_t>(ts.tv_nsec) ^ static_cast<uint32_t>(ts.tv_sec * 2654435761u);
  }
  return x;
}

Result<UniqueFd> open_socket(const std::string& ifname) {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("socket");
  int one = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
    return fail_errno("SO_REUSEADDR");
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_BROADCAST, &one, sizeof one) != 0)
    return fail_errno("SO_BROADCAST");
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_BINDTODEVICE, ifname.c_str(),
                   static_cast<socklen_t>(ifname.size())) != 0) {
    return fail_errno("SO_BINDTODEVICE " + ifname);
  }
  struct sockaddr_in addr;
  std::memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons(dhcp::kClientPort);
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  if (::bind(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0) {
    return fail_errno("bind 0.0.0.0:68");
  }
  return fd;
}

Status send_broadcast(int fd, const std::vector<uint8_t>& packet) {
  struct sockaddr_in to;
  std::memset(&to, 0, sizeof to);
  to.sin_family = AF_INET;
  to.sin_port = htons(dhcp::kServerPort);
  to.sin_addr.s_addr = htonl(INADDR_BROADCAST);
  if (::sendto(fd, packet.data(), packet.size(), 0, reinterpret_cast<struct sockaddr*>(&to),
               sizeof to) < 0) {
    return fail_errno("send DHCP packet");
  }
  return {};
}

// Waits until `until` for a valid reply of type `want` (or a NAK). nullopt on timeout.
Result<std::optional<dhcp::Reply>> await_reply(int fd, uint32_t xid, const dhcp::MacAddress& mac,
                                               dhcp::MessageType want, Clock::time_point until) {
  std::vector<uint8_t> buf(4096);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    if (left.count() <= 0) return std::optional<dhcp::Reply>();
    struct pollfd pfd = {fd, POLLIN, 0};
    int rc = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (rc < 0) {
      if (errno == EINTR) continue;
      return fail_errno("poll");
    }
    if (rc == 0) continue;
    ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return fail_errno("recv");
    }
    auto reply =
        dhcp::parse_reply(std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)), xid, mac);
    if (!reply) {
      log::debug("dhcp: ignoring packet: %s", reply.error().message().c_str());
      continue;
    }
    if (reply->type == want || reply->type == dhcp::MessageType::kNak) return std::optional(*reply);
  }
}

}  // namespace

Result<dhcp::Reply> run_dhcp(const std::string& ifname, const dhcp::MacAddress& mac,
                             const std::string& hostname, std::chrono::milliseconds total) {
  TRY_ASSIGN(UniqueFd fd, open_socket(ifname));
  auto deadline = Clock::now() + total;
  auto wait = std::chrono::milliseconds(1000);
  auto next_wait = [&wait]() {
    auto w = wait;
    wait = std::min(wait * 2, std::chrono::milliseconds(8000));
    return w;
  };
  std::string last_problem = "no reply";
  while (Clock::now() < deadline) {
    uint32_t xid = random_xid();
    if (auto st = send_broadcast(fd.get(), dhcp::build_discover(xid, mac, hostname)); !st) {
      last_problem = st.error().message();
      std::this_thread::sleep_for(next_wait());  // the interface may not be ready yet
      continue;
    }
    auto until = std::min(deadline, Clock::now() + next_wait());
    TRY_ASSIGN(auto offer, await_reply(fd.get(), xid, mac, dhcp::MessageType::kOffer, until));
    if (!offer || offer->type != dhcp::MessageType::kOffer) {
      last_problem = offer ? "NAK instead of an offer" : "no offer";
      continue;
    }
    // REQUEST the offered address; retransmit a couple of times before starting over.
    for (int attempt = 0; attempt < 3 && Clock::now() < deadline; attempt++) {
      auto req = dhcp::build_request(xid, mac, offer->your_ip, *offer->server_id, hostname);
      TRY(send_broadcast(fd.get(), req));
      auto ack_until =
          std::min(deadline, Clock::now() + std::chrono::milliseconds(1000 << attempt));
      TRY_ASSIGN(auto ack, await_reply(fd.get(), xid, mac, dhcp::MessageType::kAck, ack_until));
      if (!ack) {
        last_problem = "no ACK";
        continue;
      }
      if (ack->type == dhcp::MessageType::kNak) {
        last_problem = "server sent NAK";
        break;
      }
      return *ack;
    }
  }
  return fail(ErrorKind::kTimeout, "gave up after " + std::to_string(total.count() / 1000) +
                                       " s (" + last_problem + ")");
}

}  // namespace pinata::guest
