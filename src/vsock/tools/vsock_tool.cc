// vsock-tool: a small test peer for pinata-vsock, usable in the guest (AF_VSOCK) and on the
// host (unix sockets). Built statically for a throwaway test initramfs.
//
//   vsock-tool serve ADDR MODE [BYTES]     MODE: echo | sink | source | once
//   vsock-tool client ADDR MODE [BYTES]    MODE: send | recv | echo | hello
//   vsock-tool client ADDR conns|pings SECONDS   connections per second: a 1-byte echo round
//                                               trip (against serve echo) or GET /_ping
//   ADDR: vsock:CID:PORT (serve: CID ignored) | unix:PATH | unix:PATH@CID.PORT (client only:
//         writes the DIR/connect handshake "%08x.%08x\n" first) | tcp:IPV4:PORT (benchmarks
//         against QEMU's user-network forwarding)
//
// Data is a deterministic pattern; receivers check every byte and print
// "RESULT <what> bytes=N ok=0|1 secs=S MiB/s=R".
#include <linux/vm_sockets.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

uint8_t pattern(uint64_t i) {
  return static_cast<uint8_t>((i * 2654435761u) >> 13) ^ static_cast<uint8_t>(i >> 20);
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "vsock-tool: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

struct Addr {
  bool vsock = false;
  bool tcp = false;
  std::string ip;
  unsigned cid = 0, port = 0;
  std::string path;
  std::string handshake;
};

Addr parse(const std::string& s) {
  Addr a;
  if (s.rfind("vsock:", 0) == 0) {
    a.vsock = true;
    std::sscanf(s.c_str() + 6, "%u:%u", &a.cid, &a.port);
  } else if (s.rfind("tcp:", 0) == 0) {
    a.tcp = true;
    std::string rest = s.substr(4);
    size_t colon = rest.rfind(':');
    a.ip = rest.substr(0, colon);
    a.port = static_cast<unsigned>(std::atoi(rest.c_str() + colon + 1));
  } else if (s.rfind("unix:", 0) == 0) {
    std::string rest = s.substr(5);
    size_t at = rest.find('@');
    a.path = rest.substr(0, at);
    if (at != std::string::npos) {
      unsigned cid, port;
      std::sscanf(rest.c_str() + at + 1, "%u.%u", &cid, &port);
      char buf[32];
      std::snprintf(buf, sizeof buf, "%08x.%08x\n", cid, port);
      a.handshake = buf;
    }
  } else {
    std::fprintf(stderr, "bad address %s\n", s.c_str());
    std::exit(2);
  }
  return a;
}

void write_all(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) die("write");
    c += w;
    n -= static_cast<size_t>(w);
  }
}

void send_pattern(int fd, uint64_t bytes) {
  std::vector<uint8_t> buf(256 * 1024);
  uint64_t off = 0;
  while (off < bytes) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), bytes - off));
    for (size_t i = 0; i < n; i++) buf[i] = pattern(off + i);
    write_all(fd, buf.data(), n);
    off += n;
  }
}

// Reads until EOF, checking the pattern; returns bytes read, sets ok.
uint64_t recv_pattern(int fd, bool& ok) {
  std::vector<uint8_t> buf(256 * 1024);
  uint64_t off = 0;
  ok = true;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::fprintf(stderr, "vsock-tool: read: %s\n", std::strerror(errno));
      ok = false;
      return off;
    }
    if (n == 0) return off;
    for (ssize_t i = 0; i < n; i++) {
      if (buf[i] != pattern(off + i)) ok = false;
    }
    off += static_cast<uint64_t>(n);
  }
}

void result(const char* what, uint64_t bytes, bool ok, double t0) {
  double secs = now() - t0;
  std::printf("RESULT %s bytes=%llu ok=%d secs=%.2f MiB/s=%.2f\n", what,
              static_cast<unsigned long long>(bytes), ok ? 1 : 0, secs,
              secs > 0 ? bytes / secs / 1048576.0 : 0.0);
  std::fflush(stdout);
}

int do_connect(const Addr& a) {
  int fd;
  if (a.tcp) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(a.port));
    ::inet_pton(AF_INET, a.ip.c_str(), &sa.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) die("connect");
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  } else if (a.vsock) {
    fd = ::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    sockaddr_vm sa{};
    sa.svm_family = AF_VSOCK;
    sa.svm_cid = a.cid;
    sa.svm_port = a.port;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      std::printf("RESULT connect-failed errno=%d (%s)\n", errno, std::strerror(errno));
      std::fflush(stdout);
      std::exit(3);
    }
  } else {
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", a.path.c_str());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) die("connect");
    if (!a.handshake.empty()) write_all(fd, a.handshake.data(), a.handshake.size());
  }
  return fd;
}

int do_listen(const Addr& a) {
  int fd;
  if (a.tcp) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(a.port));
    ::inet_pton(AF_INET, a.ip.c_str(), &sa.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) die("bind");
  } else if (a.vsock) {
    fd = ::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    sockaddr_vm sa{};
    sa.svm_family = AF_VSOCK;
    sa.svm_cid = VMADDR_CID_ANY;
    sa.svm_port = a.port;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) die("bind");
  } else {
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", a.path.c_str());
    ::unlink(a.path.c_str());
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) die("bind");
  }
  if (::listen(fd, 128) != 0) die("listen");
  return fd;
}

void serve_one(int c, const std::string& mode, uint64_t bytes) {
  double t0 = now();
  if (mode == "echo") {
    std::vector<char> buf(64 * 1024);
    uint64_t total = 0;
    for (;;) {
      ssize_t n = ::read(c, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      write_all(c, buf.data(), static_cast<size_t>(n));
      total += static_cast<uint64_t>(n);
    }
    ::shutdown(c, SHUT_WR);
    result("serve-echo", total, true, t0);
  } else if (mode == "sink") {
    bool ok;
    uint64_t n = recv_pattern(c, ok);
    result("serve-sink", n, ok && (bytes == 0 || n == bytes), t0);
  } else if (mode == "source") {
    send_pattern(c, bytes);
    ::shutdown(c, SHUT_WR);
    char x;
    while (::read(c, &x, 1) > 0) {
    }
    result("serve-source", bytes, true, t0);
  }
  ::close(c);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: vsock-tool serve|client ADDR MODE [BYTES]\n");
    return 2;
  }
  std::string role = argv[1], mode = argv[3];
  Addr a = parse(argv[2]);
  uint64_t bytes = argc > 4 ? std::strtoull(argv[4], nullptr, 0) : 0;
  if (role == "serve") {
    int l = do_listen(a);
    std::printf("LISTENING %s\n", argv[2]);
    std::fflush(stdout);
    for (;;) {
      int c = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (errno == EINTR) continue;
        die("accept");
      }
      if (mode == "once") {
        ::close(c);
        return 0;
      }
      std::thread(serve_one, c, mode, bytes).detach();
    }
  }
  double t0 = now();
  if (mode == "conns" || mode == "pings") {
    // BYTES is the duration in seconds here.
    double until = t0 + static_cast<double>(bytes ? bytes : 5);
    uint64_t count = 0;
    bool ok = true;
    const std::string request =
        mode == "pings" ? "GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n" : std::string("x");
    while (now() < until) {
      int c = do_connect(a);
      write_all(c, request.data(), request.size());
      if (mode == "conns") ::shutdown(c, SHUT_WR);
      char buf[4096];
      std::string reply;
      for (;;) {
        ssize_t n = ::read(c, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        reply.append(buf, static_cast<size_t>(n));
      }
      ::close(c);
      if (mode == "conns" ? reply != "x" : reply.find("OK") == std::string::npos) ok = false;
      count++;
    }
    double secs = now() - t0;
    std::printf("RESULT client-%s conns=%llu ok=%d secs=%.2f conns/s=%.1f\n", mode.c_str(),
                static_cast<unsigned long long>(count), ok ? 1 : 0, secs, count / secs);
    return ok ? 0 : 1;
  }
  int fd = do_connect(a);
  if (mode == "send") {
    send_pattern(fd, bytes);
    ::shutdown(fd, SHUT_WR);
    char buf[4096];
    while (::read(fd, buf, sizeof buf) > 0) {
    }
    result("client-send", bytes, true, t0);
  } else if (mode == "recv") {
    bool ok;
    uint64_t n = recv_pattern(fd, ok);
    result("client-recv", n, ok && (bytes == 0 || n == bytes), t0);
  } else if (mode == "echo") {
    bool ok = true;
    uint64_t got = 0;
    std::thread reader([&] { got = recv_pattern(fd, ok); });
    send_pattern(fd, bytes);
    ::shutdown(fd, SHUT_WR);
    reader.join();
    result("client-echo", got, ok && got == bytes, t0);
  } else if (mode == "hello") {
    write_all(fd, "hello\n", 6);
    ::shutdown(fd, SHUT_WR);
    char buf[64];
    ssize_t n = ::read(fd, buf, sizeof buf);
    std::printf("RESULT client-hello reply=%.*s", n > 0 ? static_cast<int>(n) : 0, buf);
    std::printf("\n");
  }
  ::close(fd);
  return 0;
}
