// The DATA reader (receiver/data_reader.hpp) against an independent reading of RFC 5321
// §4.1.1.4 and §4.5.2: the data ends at the first CRLF "." CRLF of the stream that began right
// after the DATA command's CRLF, wherever the reads happened to split it; a period that begins a
// line (after CRLF, never after a bare CR or LF) is removed; the facts count what the wire had.
//
// Input: one octet whose low bits choose how many reads split the data (0 to 7); two octets per
// split, the length of that read; one octet choosing small limits (bit 0: max_size, bit 1:
// max_line, each then taken from the next octet); the rest is what the client sent after DATA.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "receiver/data_reader.hpp"
#include "tests/fuzz/oracle.hpp"

using mxlens::fuzz::require;

namespace {

struct expectation {
  bool done = false;
  std::size_t consumed = 0;  // octets of the input the reader takes
  std::string wire;          // the data as sent, up to and including the CRLF before "."
};

expectation expect(std::string_view input) {
  expectation e;
  // The stream begins at the start of a line: the DATA command's CRLF comes just before it.
  const std::string stream = "\r\n" + std::string(input);
  const auto end = stream.find("\r\n.\r\n");
  if (end == std::string::npos) {
    e.consumed = input.size();
    e.wire = std::string(input);
    return e;
  }
  e.done = true;
  e.wire = std::string(input.substr(0, end));
  e.consumed = end + 3;
  return e;
}

// Lines end at CRLF only; each keeps its CRLF.
std::vector<std::string_view> lines_of(std::string_view wire) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (start < wire.size()) {
    const auto crlf = wire.find("\r\n", start);
    const auto end = crlf == std::string_view::npos ? wire.size() : crlf + 2;
    out.push_back(wire.substr(start, end - start));
    start = end;
  }
  return out;
}

std::string unstuffed(std::string_view wire) {
  std::string out;
  for (auto line : lines_of(wire)) {
    if (!line.empty() && line.front() == '.') line.remove_prefix(1);
    out.append(line);
  }
  return out;
}

mxlens::core::data_facts facts_of(std::string_view wire) {
  mxlens::core::data_facts f;
  for (std::size_t i = 0; i < wire.size(); ++i) {
    const auto c = static_cast<unsigned char>(wire[i]);
    if (c == '\n' && (i == 0 || wire[i - 1] != '\r')) ++f.bare_lf;
    if (c == '\r' && (i + 1 == wire.size() || wire[i + 1] != '\n')) ++f.bare_cr;
    if (c >= 0x80) ++f.eight_bit;
    if (c == 0) ++f.nul;
  }
  for (auto line : lines_of(wire)) {
    if (line.size() < 2 || line.substr(line.size() - 2) != "\r\n") continue;
    const std::uint64_t length = line.size() - 2;
    ++f.lines;
    if (length > 998) ++f.long_lines;  // RFC 5322 §2.1.1
    if (length > f.max_line) f.max_line = length;
  }
  return f;
}

// The longest line on the wire, in octets without its CRLF, the last line (unended) included.
std::size_t longest_line(std::string_view wire) {
  std::size_t most = 0;
  for (auto line : lines_of(wire)) {
    std::size_t length = line.size();
    if (line.size() >= 2 && line.substr(line.size() - 2) == "\r\n") length -= 2;
    most = std::max(most, length);
  }
  return most;
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto take = [&in]() -> unsigned {
    if (in.empty()) return 0;
    const auto c = static_cast<unsigned char>(in.front());
    in.remove_prefix(1);
    return c;
  };
  std::vector<std::size_t> reads(take() & 7);
  for (auto& r : reads) r = take() << 8 | take();
  const auto small = take();
  const std::uint64_t max_size = (small & 1) ? take() : std::uint64_t{1} << 40;
  const std::size_t max_line = (small & 2) ? take() : std::size_t{1} << 30;

  mxlens::receiver::data_reader reader(max_size, max_line);
  std::size_t taken = 0;
  std::string_view rest = in;
  for (std::size_t i = 0; i <= reads.size() && !rest.empty(); ++i) {
    const auto chunk = rest.substr(0, i < reads.size() ? reads[i] : rest.size());
    const bool was_done = reader.done();
    const auto n = reader.feed(chunk);
    require(n <= chunk.size(), "feed took more than it was given");
    require(!was_done || n == 0, "feed took octets after the end of data");
    require(reader.done() || n == chunk.size(), "feed left octets before the end of data");
    taken += n;
    rest.remove_prefix(chunk.size());
  }

  const auto e = expect(in);
  require(reader.done() == e.done, "the end of data is not the first CRLF.CRLF");
  require(taken == e.consumed, "the end of data is not the first CRLF.CRLF (octets taken)");
  const auto message = unstuffed(e.wire);
  const auto& got = reader.message();
  require(got.size() <= message.size() && message.compare(0, got.size(), got) == 0,
          "the message is not a prefix of the unstuffed data");
  if (!e.done) {
    // Unfinished: at most a CR whose LF is not known yet is held back.
    if (!reader.line_too_long() && !reader.too_big())
      require(message.size() - got.size() <= 1, "unfinished data held back more than one CR");
    return 0;
  }
  require(reader.size() == message.size(), "size() is not the unstuffed size");
  require(reader.too_big() == (message.size() > max_size), "too_big() is wrong");
  require(reader.line_too_long() == (longest_line(e.wire) > max_line), "line_too_long() is wrong");
  if (!reader.line_too_long())
    require(got == message.substr(0, std::min<std::uint64_t>(message.size(), max_size)),
            "the message is not the unstuffed data");
  require(reader.facts() == facts_of(e.wire), "the facts do not count what the wire had");
  return 0;
}
