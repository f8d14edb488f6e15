#include "base/splice_proxy.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <thread>

#include "base/io.h"

namespace pinata {
namespace {

struct Pair {
  UniqueFd near, far;
};

Pair make_pair() {
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

TEST(SpliceProxy, CopiesBothWaysAndPassesHalfClose) {
  // client <-> [a  proxy  b] <-> server
  Pair client = make_pair();
  Pair server = make_pair();
  std::thread proxy([&] { proxy_streams(std::move(client.far), std::move(server.near)); });

  std::string big(3 << 20, 'x');
  for (size_t i = 0; i < big.size(); i++) big[i] = static_cast<char>(i * 7);
  std::thread writer([&] {
    ASSERT_TRUE(write_all(client.near.get(), big));
    ::shutdown(client.near.get(), SHUT_WR);  // like docker build after the context upload
  });
  auto received = read_all(server.far.get());
  writer.join();
  ASSERT_TRUE(received);
  EXPECT_EQ(*received, big);

  // The other direction still works after the first one closed.
  ASSERT_TRUE(write_all(server.far.get(), "reply"));
  server.far.reset();
  auto reply = read_all(client.near.get());
  ASSERT_TRUE(reply);
  EXPECT_EQ(*reply, "reply");
  proxy.join();
}

TEST(SpliceProxy, EndsWhenOnePeerVanishes) {
  Pair client = make_pair();
  Pair server = make_pair();
  std::thread proxy([&] { proxy_streams(std::move(client.far), std::move(server.near)); });
  ASSERT_TRUE(write_all(client.near.get(), "request"));
  server.far.reset();  // the server dies without reading
  // The client sees EOF and the proxy thread returns.
  auto rest = read_all(client.near.get());
  ASSERT_TRUE(rest);
  EXPECT_EQ(*rest, "");
  proxy.join();
}

}  // namespace
}  // namespace pinata
