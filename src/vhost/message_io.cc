#include "vhost/message_io.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

namespace pinata::vhost {

namespace {

// Room for more fds than we accept, so that a peer sending too many doesn't make the kernel
// truncate silently: we see them and close the extras ourselves.
constexpr size_t kFdRoom = 2 * kMaxFds;

// Reads exactly `len` bytes, collecting fds. Returns bytes read (< len only on EOF).
Result<size_t> recv_exact(int fd, uint8_t* buf, size_t len, std::vector<UniqueFd>& fds) {
  size_t got = 0;
  while (got < len) {
    struct iovec iov {
      buf + got, len - got
    };
    alignas(struct cmsghdr) char control[CMSG_SPACE(kFdRoom * sizeof(int))];
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return fail(ErrorKind::kTimeout, "vhost-user peer stalled inside a message");
      }
      return fail_errno("recvmsg");
    }
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; i++) {
        int received;
        std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof received);
        UniqueFd owned(received);
        if (fds.size() < kMaxFds) fds.push_back(std::move(owned));  // else closed here
      }
    }
    if (msg.msg_flags & MSG_CTRUNC) {
      return fail(ErrorKind::kInvalidInput, "vhost-user peer sent more fds than fit (truncated)");
    }
    if (n == 0) return got;
    got += static_cast<size_t>(n);
  }
  return got;
}

}  // namespace

Result<std::optional<ReceivedMessage>> receive_message(int fd) {
  ReceivedMessage m;
  uint8_t head[kHeaderSize];
  TRY_ASSIGN(size_t got, recv_exact(fd, head, sizeof head, m.fds));
  if (got == 0) return std::nullopt;
  if (got < sizeof head) {
    return fail(ErrorKind::kInvalidInput, "vhost-user peer closed inside a message header");
  }
  TRY_ASSIGN(m.header, decode_header(head));
  m.payload.resize(m.header.size);
  if (m.header.size > 0) {
    TRY_ASSIGN(size_t body, recv_exact(fd, m.payload.data(), m.payload.size(), m.fds));
    if (body < m.payload.size()) {
      return fail(ErrorKind::kInvalidInput, std::string("vhost-user peer closed inside a ") +
                                                request_name(m.header.request) + " payload");
    }
  }
  return std::optional<ReceivedMessage>(std::move(m));
}

Result<std::optional<Message>> receive_request(int fd) {
  TRY_ASSIGN(auto received, receive_message(fd));
  if (!received) return std::optional<Message>();
  TRY_ASSIGN(Message m, decode_request(received->header, received->payload, received->fds.size()));
  m.fds = std::move(received->fds);
  return std::optional<Message>(std::move(m));
}

Status send_message(int fd, std::span<const uint8_t> bytes, std::span<const int> fds) {
  if (fds.size() > kMaxFds) return fail(ErrorKind::kInvalidInput, "too many fds to send");
  size_t sent = 0;
  bool first = true;
  while (sent < bytes.size()) {
    struct iovec iov {
      const_cast<uint8_t*>(bytes.data() + sent), bytes.size() - sent
    };
    alignas(struct cmsghdr) char control[CMSG_SPACE(kMaxFds * sizeof(int))];
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (first && !fds.empty()) {
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
      struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
      std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
    }
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return fail(ErrorKind::kTimeout, "vhost-user peer is not reading");
      }
      return fail_errno("sendmsg");
    }
    first = false;
    sent += static_cast<size_t>(n);
  }
  return {};
}

}  // namespace pinata::vhost
