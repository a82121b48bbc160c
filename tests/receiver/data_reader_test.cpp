#include "receiver/data_reader.hpp"

#include <catch2/catch.hpp>

using mxlens::receiver::data_reader;

namespace {
// Feeds the input in chunks of `chunk` octets; returns the reader and how much was consumed.
std::pair<data_reader, std::size_t> read_all(std::string_view in, std::size_t chunk = 1 << 20,
                                             std::uint64_t max = 1 << 20) {
  data_reader r(max, 1000);
  std::size_t used = 0;
  while (used < in.size() && !r.done()) used += r.feed(in.substr(used, chunk));
  return {std::move(r), used};
}
}  // namespace

TEST_CASE("data ends at CRLF.CRLF and dot-stuffing is undone", "[receiver]") {
  for (std::size_t chunk : {1, 2, 3, 7, 1 << 20}) {
    auto [r, used] = read_all("a\r\n..b\r\n.c\r\n\r\n.\r\nNEXT", chunk);
    REQUIRE(r.done());
    CHECK(r.message() == "a\r\n.b\r\nc\r\n\r\n");
    CHECK(used == 17);  // NEXT belongs to the next command
    CHECK(r.facts().bare_lf == 0);
    CHECK(r.facts().lines == 4);
  }
}

TEST_CASE("an empty message ends at once", "[receiver]") {
  auto [r, used] = read_all(".\r\n");
  CHECK(r.done());
  CHECK(r.message().empty());
  CHECK(used == 3);
}

TEST_CASE("bare LF and bare CR never end the data and are counted", "[receiver]") {
  // Each of these is a known SMTP smuggling end-of-data variant.
  for (std::string variant : {"\n.\n", "\n.\r\n", "\r.\r", "\r\n.\n", "\r\n.\r", "\r.\r\n"}) {
    std::string in = "x" + variant + "MAIL FROM:<e@x>\r\n.\r\n";
    auto [r, used] = read_all(in);
    INFO("variant " << variant.size());
    REQUIRE(r.done());
    CHECK(used == in.size());
    CHECK(r.facts().bare_lf + r.facts().bare_cr > 0);
    CHECK(r.message().find("MAIL FROM") != std::string::npos);
  }
}

TEST_CASE("the message is kept byte for byte, bare LF included", "[receiver]") {
  auto [r, used] = read_all("a\nb\r\n.\r\n");
  CHECK(r.message() == "a\nb\r\n");
  CHECK(r.facts().bare_lf == 1);
}

TEST_CASE("long lines, 8-bit octets and NUL are recorded", "[receiver]") {
  std::string in = std::string(999, 'x') + "\r\n\xc3\xa9\r\n" + std::string(1, '\0') + "\r\n.\r\n";
  auto [r, used] = read_all(in);
  REQUIRE(r.done());
  CHECK(r.facts().long_lines == 1);
  CHECK(r.facts().max_line == 999);
  CHECK(r.facts().eight_bit == 2);
  CHECK(r.facts().nul == 1);
  CHECK_FALSE(r.line_too_long());
}

TEST_CASE("over the size limit the rest is read but not kept", "[receiver]") {
  std::string in = std::string(50, 'y') + "\r\n.\r\n";
  auto [r, used] = read_all(in, 5, 10);
  CHECK(r.done());
  CHECK(r.too_big());
  CHECK(r.size() == 52);
  CHECK(r.message().size() <= 10);
}

TEST_CASE("a line over the safety cap is flagged", "[receiver]") {
  data_reader r(1 << 20, 100);
  r.feed(std::string(101, 'z') + "\r\n.\r\n");
  CHECK(r.done());
  CHECK(r.line_too_long());
}

TEST_CASE("a message the server has no room for is read to its end and not kept", "[receiver]") {
  data_reader r(1 << 20, 1000);
  r.feed("first part\r\n");
  r.stop_keeping();
  const std::string rest = "second part\r\n.\r\nNEXT";
  CHECK(r.feed(rest) == rest.size() - 4);  // the end of data is still found
  CHECK(r.done());
  CHECK_FALSE(r.kept());
  CHECK(r.message().empty());
  CHECK(r.size() == std::string("first part\r\nsecond part\r\n").size());
}

TEST_CASE("bare CRs and a stuffing period count towards the safety cap", "[receiver]") {
  // Found by tests/fuzz (regressions/data_reader/bare-cr-line-over-max-line): a line of bare CRs
  // was never measured against the cap.
  data_reader crs(1 << 20, 100);
  crs.feed(std::string(102, '\r') + "\n.\r\n");  // 101 bare CRs, then CRLF
  CHECK(crs.done());
  CHECK(crs.line_too_long());
  data_reader stuffed(1 << 20, 1);
  stuffed.feed(".\r\r\n.\r\n");  // two octets on the wire line: '.' and a bare CR
  CHECK(stuffed.done());
  CHECK(stuffed.line_too_long());
  data_reader exact(1 << 20, 2);
  exact.feed(".\r\r\n.\r\n");
  CHECK_FALSE(exact.line_too_long());
}
