// The resolver against an upstream that never answers: every question times out, and the
// questions left behind are ended, without a crash or a wait past the deadline. Against an
// upstream that answers some names and never others: one evaluation's unanswered questions
// change nothing for the next evaluation, and an evaluation never waits past its budget.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

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
    r.end_evaluation();  // the unasked "other." question is left behind
  }
  ::close(silent);
}

namespace {

// An upstream on loopback that answers every question with no records (NODATA), except those under
// hole.test, which it never answers.
class partial_upstream {
 public:
  partial_upstream() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    timeval tv{0, 50'000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    thread_ = std::thread([this] { serve(); });
  }
  ~partial_upstream() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string address() const { return "127.0.0.1@" + std::to_string(port_); }
  int unanswered() const { return unanswered_; }

 private:
  void serve() {
    unsigned char buf[512];
    while (!stop_) {
      sockaddr_in from{};
      socklen_t len = sizeof from;
      const auto n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 12) continue;
      std::string name;
      for (std::size_t at = 12; at < static_cast<std::size_t>(n) && buf[at] != 0; at += buf[at] + 1)
        name.append(reinterpret_cast<const char*>(buf + at + 1), buf[at]).push_back('.');
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (name.ends_with("hole.test.")) {
        ++unanswered_;
        continue;
      }
      buf[2] = 0x80 | (buf[2] & 0x01);  // a response, recursion desired as asked
      buf[3] = 0x80;                    // recursion available, no error
      buf[6] = buf[7] = buf[8] = buf[9] = buf[10] = buf[11] = 0;  // no answers, no EDNS
      std::size_t end = 12;
      while (end < static_cast<std::size_t>(n) && buf[end] != 0) end += buf[end] + 1;
      end += 5;  // the root label, type, class
      ::sendto(fd_, buf, end, 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }
  int fd_ = -1;
  unsigned short port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> unanswered_{0};
  std::thread thread_;
};

}  // namespace

TEST_CASE("one evaluation's unanswered questions change nothing for the next", "[dns]") {
  partial_upstream upstream;
  settings s;
  s.upstream = upstream.address();
  s.timeout = std::chrono::milliseconds(300);
  resolver r(s);
  {
    lookups honest(r);
    REQUIRE(honest.query("first.answers.test", rr_type::txt).state == status::nodata);
  }
  CHECK(r.contexts() == 1);  // nothing went unanswered: the context and its cache are kept
  for (int round = 0; round < 3; ++round) {
    {
      // 26 questions that never get an answer, all at once, as an analysis asks them.
      lookups hole(r);
      std::vector<std::pair<std::string, rr_type>> questions;
      questions.reserve(26);
      for (int i = 0; i < 26; ++i)
        questions.emplace_back(
            "q" + std::to_string(i) + ".r" + std::to_string(round) + ".hole.test", rr_type::txt);
      r.prefetch(questions);
      for (const auto& [name, type] : questions) {
        INFO(name);
        REQUIRE(hole.query(name, type).state == status::temperror);
      }
    }
    // The next evaluation, a moment later (libunbound would be backing off the upstream by now,
    // docs/libraries.md §4): its questions are answered, and fast.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    for (int i = 0; i < 5; ++i) {
      lookups honest(r);
      const auto started = std::chrono::steady_clock::now();
      const auto& a = honest.query(
          "n" + std::to_string(i) + ".r" + std::to_string(round) + ".answers.test", rr_type::txt);
      INFO("round " << round << ", question " << i << ": " << a.error);
      REQUIRE(a.state == status::nodata);
      REQUIRE(std::chrono::steady_clock::now() - started < std::chrono::milliseconds(100));
    }
  }
  CHECK(upstream.unanswered() >= 3 * 26);
  CHECK(r.contexts() == 4);  // made anew after each evaluation with unanswered questions
}

TEST_CASE("an evaluation's questions end with its budget", "[dns]") {
  partial_upstream upstream;
  settings s;
  s.upstream = upstream.address();
  s.timeout = std::chrono::milliseconds(2000);
  s.budget = std::chrono::milliseconds(150);
  resolver r(s);
  lookups dns(r);
  const auto started = std::chrono::steady_clock::now();
  const auto& first = dns.query("one.hole.test", rr_type::txt);
  const auto waited = std::chrono::steady_clock::now() - started;
  CHECK(first.state == status::temperror);
  CHECK(first.error == "the evaluation's DNS budget of 150 ms was spent");
  CHECK(waited >= std::chrono::milliseconds(140));
  CHECK(waited < std::chrono::milliseconds(1000));
  // Once it is spent, even a question the upstream would answer is not asked.
  const auto& second = dns.query("later.answers.test", rr_type::txt);
  CHECK(second.state == status::temperror);
  CHECK(second.error == first.error);
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::milliseconds(1000));
}
