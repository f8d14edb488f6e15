#include "blk/control.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "base/io.h"
#include "base/log.h"

namespace pinata::blk {
namespace {

constexpr size_t kMaxLine = 64;
constexpr size_t kMaxClients = 8;

void reply(int fd, const std::string& line) {
  // Best effort: a client that went away loses its answer, nothing else.
  (void)!::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace

Result<std::unique_ptr<ControlServer>> ControlServer::listen(EventLoop& loop, const std::string& path,
                                                             Compactor* compactor, std::string why) {
  TRY_ASSIGN(UniqueFd fd, unix_listen(path, 0600, 8));
  std::unique_ptr<ControlServer> server(new ControlServer(loop, std::move(fd), compactor, std::move(why)));
  int lfd = server->listener_.get();
  ControlServer* self = server.get();
  TRY(loop.add(lfd, EPOLLIN, [self](uint32_t) { self->on_accept(); }));
  return server;
}

ControlServer::ControlServer(EventLoop& loop, UniqueFd listener, Compactor* compactor, std::string why)
    : loop_(loop), listener_(std::move(listener)), compactor_(compactor), why_no_compactor_(std::move(why)) {}

ControlServer::~ControlServer() {
  (void)loop_.remove(listener_.get());
  for (auto& [fd, client] : clients_) (void)loop_.remove(fd);
}

void ControlServer::on_accept() {
  int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) return;
  auto owned = std::make_shared<UniqueFd>(fd);
  if (clients_.size() >= kMaxClients) {
    reply(fd, "ERROR busy: too many control clients\n");
    return;
  }
  if (!loop_.add(fd, EPOLLIN, [this, fd](uint32_t) { on_client(fd); })) return;
  clients_[fd] = Client{owned, {}};
}

void ControlServer::on_client(int fd) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  Client& c = it->second;
  char buf[kMaxLine + 1];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  bool done = n <= 0;
  if (n > 0) c.line.append(buf, static_cast<size_t>(n));
  size_t nl = c.line.find('\n');
  std::shared_ptr<UniqueFd> owned = c.fd;
  if (nl == std::string::npos && c.line.size() <= kMaxLine && !done) return;  // wait for the rest
  std::string command = nl == std::string::npos ? c.line : c.line.substr(0, nl);
  (void)loop_.remove(fd);
  clients_.erase(it);
  if (nl == std::string::npos) {
    reply(fd, "ERROR expected one line of at most 64 bytes, e.g. 'compact'\n");
    return;
  }
  if (command != "compact") {
    // The command is echoed only if printable, and cut short.
    std::string shown;
    for (char ch : command.substr(0, 32)) shown += (ch >= 0x20 && ch < 0x7f) ? ch : '?';
    reply(fd, "ERROR unknown command '" + shown + "' (known: compact)\n");
    return;
  }
  if (!compactor_) {
    reply(fd, "ERROR " + why_no_compactor_ + "\n");
    return;
  }
  compactor_->compact_now([owned](Result<Compactor::Outcome> outcome) {
    char line[96];
    if (outcome) {
      std::snprintf(line, sizeof line, "OK %" PRIu64 " %" PRIu64 "\n", outcome->file_before,
                    outcome->file_after);
      reply(owned->get(), line);
    } else {
      std::string msg = outcome.error().message();
      for (char& ch : msg)
        if (ch == '\n') ch = ' ';
      reply(owned->get(), "ERROR " + msg + "\n");
    }
  });
}

Result<Compactor::Outcome> parse_control_reply(const std::string& line) {
  std::string l = line;
  if (!l.empty() && l.back() == '\n') l.pop_back();
  if (l.starts_with("ERROR ")) return fail(ErrorKind::kIo, l.substr(6));
  Compactor::Outcome out;
  char tail = 0;
  if (std::sscanf(l.c_str(), "OK %" SCNu64 " %" SCNu64 "%c", &out.file_before, &out.file_after, &tail) != 2)
    return fail(ErrorKind::kInvalidInput, "unexpected reply from pinata-blk: '" + l.substr(0, 80) + "'");
  return out;
}

}  // namespace pinata::blk
