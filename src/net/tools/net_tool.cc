// net-tool: the TCP peer of the real-guest check (tools/qemu_check.sh), static so that the
// same binary runs in a busybox initramfs. busybox nc moves 4 KiB per system call, which
// under TCG would measure nc rather than the network; this moves 256 KiB.
//
//   net-tool send IP PORT MIB     connect, write MIB MiB, half-close, wait for the peer's close
//   net-tool recv IP PORT         connect, read until EOF
//   net-tool serve PORT MODE [MIB]  on 127.0.0.1, for ever, one connection at a time:
//       sink    read until EOF, then close
//       source  write MIB MiB, half-close, wait for the peer's close
//       http    answer one HTTP request with "hello from the host"
//   net-tool udp IP PORT TEXT     send TEXT in one datagram, print the answer (5 s, 3 tries)
//   net-tool udp-echo PORT        on 0.0.0.0, answer every datagram with "echo:" + it
//   net-tool ctl FILE TEXT        the port-forwarding ctl dance: open FILE read-write, write
//                                 TEXT, read from offset 0, print it (docs/protocols/ports.md)
// Every transfer prints "RESULT <what> <bytes> bytes in <s> s = <MiB/s> MiB/s".
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr size_t kChunk = 256 << 10;

double now() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "net-tool: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

void report(const char* what, unsigned long long bytes, double t0) {
  double dt = now() - t0;
  std::printf("RESULT %s %llu bytes in %.2f s = %.1f MiB/s\n", what, bytes, dt,
              dt > 0 ? bytes / 1048576.0 / dt : 0.0);
  std::fflush(stdout);
}

unsigned long long drain(int fd) {
  static std::vector<char> buf(kChunk);
  unsigned long long total = 0;
  for (;;) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return total;
    total += static_cast<unsigned long long>(n);
  }
}

unsigned long long pour(int fd, unsigned long long bytes) {
  static std::vector<char> buf(kChunk, 0);
  unsigned long long sent = 0;
  while (sent < bytes) {
    size_t n = static_cast<size_t>(std::min<unsigned long long>(buf.size(), bytes - sent));
    ssize_t w = write(fd, buf.data(), n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    sent += static_cast<unsigned long long>(w);
  }
  shutdown(fd, SHUT_WR);
  drain(fd);  // until the peer has read everything and closed
  return sent;
}

int connect_to(const char* ip, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  struct sockaddr_in sa {};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) die("address");
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) die("connect");
  return fd;
}

int serve(int port, const std::string& mode, unsigned long long bytes) {
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa {};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) die("bind");
  if (listen(lfd, 8) != 0) die("listen");
  for (;;) {
    int fd = accept(lfd, nullptr, nullptr);
    if (fd < 0) continue;
    double t0 = now();
    if (mode == "sink") {
      unsigned long long n = drain(fd);
      report("host-sink (guest->host)", n, t0);
    } else if (mode == "source") {
      unsigned long long n = pour(fd, bytes);
      report("host-source (host->guest)", n, t0);
    } else {
      // Read the whole request first: closing with unread bytes would reset the connection
      // (and the response with it). The guest's request may come in several segments.
      std::string req;
      char buf[1024];
      while (req.find("\r\n\r\n") == std::string::npos && req.size() < 65536) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
      }
      const char* body = "hello from the host\n";
      char resp[256];
      int len = std::snprintf(resp, sizeof resp,
                              "HTTP/1.0 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
                              std::strlen(body), body);
      (void)write(fd, resp, static_cast<size_t>(len));
    }
    close(fd);
  }
}

int udp_ask(const char* ip, int port, const char* text) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) die("socket");
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
    std::fprintf(stderr, "net-tool: bad IPv4 address %s\n", ip);
    return 2;
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("connect");
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[65536];
  for (int attempt = 0; attempt < 3; attempt++) {
    if (send(fd, text, std::strlen(text), 0) < 0) die("send");
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n >= 0) {
      std::printf("%.*s\n", static_cast<int>(n), buf);
      return 0;
    }
  }
  std::fprintf(stderr, "net-tool: no UDP answer from %s:%d\n", ip, port);
  return 1;
}

int udp_echo(int port) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) die("socket");
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("bind");
  char buf[65536];
  std::memcpy(buf, "echo:", 5);
  for (;;) {
    struct sockaddr_in from = {};
    socklen_t len = sizeof from;
    ssize_t n = recvfrom(fd, buf + 5, sizeof buf - 5, 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) continue;
    sendto(fd, buf, static_cast<size_t>(n) + 5, 0, reinterpret_cast<sockaddr*>(&from), len);
  }
}

int ctl(const char* path, const char* text) {
  int fd = open(path, O_RDWR);
  if (fd < 0) die(path);
  if (write(fd, text, std::strlen(text)) < 0) std::fprintf(stderr, "net-tool: write: %s\n", std::strerror(errno));
  char buf[512];
  ssize_t n = pread(fd, buf, sizeof buf, 0);
  if (n < 0) die("pread");
  std::printf("%.*s", static_cast<int>(n), buf);
  close(fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "ctl") return ctl(argv[2], argv[3]);
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "udp" && argc == 5) return udp_ask(argv[2], atoi(argv[3]), argv[4]);
  if (cmd == "udp-echo" && argc == 3) return udp_echo(atoi(argv[2]));
  if (cmd == "send" && argc == 5) {
    int fd = connect_to(argv[2], atoi(argv[3]));
    double t0 = now();
    unsigned long long n = pour(fd, std::strtoull(argv[4], nullptr, 10) << 20);
    report("guest-send", n, t0);
    return 0;
  }
  if (cmd == "recv" && argc == 4) {
    int fd = connect_to(argv[2], atoi(argv[3]));
    double t0 = now();
    unsigned long long n = drain(fd);
    report("guest-recv", n, t0);
    return 0;
  }
  if (cmd == "serve" && argc >= 4) {
    unsigned long long mib = argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 0;
    return serve(atoi(argv[2]), argv[3], mib << 20);
  }
  std::fprintf(stderr,
               "usage: net-tool send IP PORT MIB | recv IP PORT | serve PORT sink|source|http "
               "[MIB] | udp IP PORT TEXT | udp-echo PORT | ctl FILE TEXT\n");
  return 2;
}
