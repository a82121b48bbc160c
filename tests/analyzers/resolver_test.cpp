// The resolver against an upstream that never answers: every question times out, and the
// questions left behind are ended when they pile up, without a crash or a wait past the deadline.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "analyzers/dns/resolver.hpp"

using namespace mxlens::analyzers::dns;

TEST_CASE("questions to a silent upstream time out, again and again", "[dns]") {
  int silent = ::socket(AF_INET, SOCK_DGRAM, 0);  // bound, never read: it answers nothing
  REQUIRE(silent >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &len) == 0);

  settings s;
  s.upstream = "127.0.0.1@" + std::to_string(ntohs(addr.sin_port));
  s.timeout = std::chrono::milliseconds(2);
  resolver r(s);
  // More than the resolver keeps before it makes its context anew (256), asked both ways.
  for (int i = 0; i < 300; ++i) {
    const auto name = "q" + std::to_string(i) + ".silent.test";
    if (i % 2 == 0) r.prefetch({{name, rr_type::txt}, {"other." + name, rr_type::a}});
    const auto started = std::chrono::steady_clock::now();
    const auto a = r.query(name, rr_type::txt);
    const auto took = std::chrono::steady_clock::now() - started;
    INFO("question " << i);
    REQUIRE(a.state == status::temperror);
    REQUIRE(a.error == "timed out after 2 ms");
    REQUIRE(took < std::chrono::milliseconds(500));
    r.forget_prefetched();  // the unasked "other." question is left behind
  }
  ::close(silent);
}
