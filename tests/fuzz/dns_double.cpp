#include "tests/fuzz/dns_double.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace mxlens::fuzz {

namespace {

constexpr std::uint16_t type_a = 1, type_ptr = 12, type_mx = 15, type_txt = 16, type_aaaa = 28;
// RFC 1035 §2.3.4: labels of 63 octets, names of 255, character-strings of 255.
constexpr std::size_t max_label = 63, max_name = 255, max_string = 255;
// The resolver's EDNS buffer (unbound's edns-buffer-size): answers stop growing at this size
// rather than be truncated, since the double has no TCP to retry on.
constexpr std::size_t max_answer = 1232;

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  while (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

// A name in wire form (RFC 1035 §3.1), uncompressed; overlong labels are cut.
std::string wire_name(std::string_view dotted) {
  std::string out;
  std::size_t start = 0;
  while (start < dotted.size()) {
    auto dot = dotted.find('.', start);
    if (dot == std::string_view::npos) dot = dotted.size();
    const auto label = dotted.substr(start, std::min(dot - start, max_label));
    if (!label.empty() && out.size() + label.size() + 2 <= max_name) {
      out.push_back(static_cast<char>(label.size()));
      out.append(label);
    }
    start = dot + 1;
  }
  out.push_back('\0');
  return out;
}

void put16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}

// The fields of a dnsmasq value, split at commas outside double quotes; quotes removed, a
// backslash takes the next octet as it is.
std::vector<std::string> fields(std::string_view value) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c == '\\' && i + 1 < value.size()) {
      out.back().push_back(value[++i]);
    } else if (c == '"') {
      quoted = !quoted;
    } else if (c == ',' && !quoted) {
      out.emplace_back();
    } else {
      out.back().push_back(c);
    }
  }
  return out;
}

void add(zone& z, const std::string& name, std::uint16_t type, std::string rdata) {
  const auto key = lower(name);
  if (key.empty()) return;
  z.names.insert(key);
  z.records[{key, type}].push_back(std::move(rdata));
}

std::string character_strings(const std::vector<std::string>& strings) {
  std::string rdata;
  for (const auto& s : strings) {
    std::size_t at = 0;
    do {
      const auto part = std::string_view(s).substr(at, max_string);
      rdata.push_back(static_cast<char>(part.size()));
      rdata.append(part);
      at += max_string;
    } while (at < s.size());
  }
  return rdata;
}

}  // namespace

void zone::add_txt(const std::string& name, std::string_view text) {
  add(*this, name, type_txt, character_strings({std::string(text)}));
}

zone parse_zone(std::string_view text) {
  zone z;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const auto line = text.substr(start, end - start);
    start = end + 1;
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    const auto key = line.substr(0, eq);
    const auto f = fields(line.substr(eq + 1));
    if (key == "host-record") {
      std::vector<std::string> names;
      std::vector<std::pair<std::uint16_t, std::string>> addresses;
      for (const auto& x : f) {
        unsigned char buf[16];
        if (inet_pton(AF_INET, x.c_str(), buf) == 1)
          addresses.emplace_back(type_a, std::string(reinterpret_cast<char*>(buf), 4));
        else if (inet_pton(AF_INET6, x.c_str(), buf) == 1)
          addresses.emplace_back(type_aaaa, std::string(reinterpret_cast<char*>(buf), 16));
        else names.push_back(x);
      }
      for (const auto& n : names)
        for (const auto& [type, rdata] : addresses) add(z, n, type, rdata);
    } else if (key == "ptr-record" && f.size() >= 2) {
      add(z, f[0], type_ptr, wire_name(f[1]));
    } else if (key == "txt-record" && f.size() >= 2) {
      add(z, f[0], type_txt, character_strings({f.begin() + 1, f.end()}));
    } else if (key == "mx-host" && f.size() >= 2) {
      std::string rdata;
      put16(rdata, static_cast<std::uint16_t>(f.size() > 2 ? std::atoi(f[2].c_str()) : 1));
      rdata += wire_name(f[1]);
      add(z, f[0], type_mx, std::move(rdata));
    }
  }
  return z;
}

dns_double::dns_double() {
  socket_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (socket_ < 0) throw std::runtime_error("dns_double: socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(socket_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(socket_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error("dns_double: bind");
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { run(); });
}

dns_double::~dns_double() {
  stop_ = true;
  thread_.join();
  ::close(socket_);
}

std::string dns_double::upstream() const { return "127.0.0.1@" + std::to_string(port_); }

void dns_double::serve(zone z) {
  std::lock_guard lock(mutex_);
  zone_ = std::move(z);
  questions_ = 0;
}

void dns_double::run() {
  char buf[4096];
  while (!stop_) {
    pollfd p{socket_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    sockaddr_storage from{};
    socklen_t len = sizeof from;
    const auto n =
        ::recvfrom(socket_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n <= 0) continue;
    const auto reply = answer(std::string_view(buf, static_cast<std::size_t>(n)));
    if (!reply.empty())
      ::sendto(socket_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
  }
}

std::string dns_double::answer(std::string_view q) {
  if (q.size() < 12) return {};
  std::size_t pos = 12;
  std::string name;
  while (pos < q.size() && q[pos] != 0) {
    const auto l = static_cast<unsigned char>(q[pos]);
    if (l > max_label || pos + 1 + l > q.size()) return {};
    if (!name.empty()) name.push_back('.');
    name.append(q.substr(pos + 1, l));
    pos += 1 + l;
  }
  if (pos + 5 > q.size()) return {};
  const auto type = static_cast<std::uint16_t>((static_cast<unsigned char>(q[pos + 1]) << 8) |
                                               static_cast<unsigned char>(q[pos + 2]));
  const auto question = q.substr(12, pos + 5 - 12);
  ++questions_;

  std::lock_guard lock(mutex_);
  const auto key = lower(name);
  const auto found = zone_.records.find({key, type});
  const bool known = zone_.names.count(key) > 0;
  std::string out(q.substr(0, 2));  // the id
  // QR, AA, RD as asked, RA; NXDOMAIN (3) for a name with no record at all.
  const auto rd = static_cast<unsigned char>(q[2]) & 0x01;
  out.push_back(static_cast<char>(0x84 | rd));
  out.push_back(static_cast<char>(0x80 | (known ? 0 : 3)));
  put16(out, 1);
  const auto count_at = out.size();
  put16(out, 0);
  put16(out, 0);
  put16(out, 0);
  out.append(question);
  std::uint16_t count = 0;
  if (found != zone_.records.end()) {
    for (const auto& rdata : found->second) {
      if (out.size() + 12 + rdata.size() > max_answer || rdata.size() > 0xffff) break;
      put16(out, 0xc00c);  // the question's name
      put16(out, type);
      put16(out, 1);  // IN
      put16(out, 0);  // TTL 0: never cached
      put16(out, 0);
      put16(out, static_cast<std::uint16_t>(rdata.size()));
      out.append(rdata);
      ++count;
    }
  }
  out[count_at] = static_cast<char>(count >> 8);
  out[count_at + 1] = static_cast<char>(count & 0xff);
  return out;
}

}  // namespace mxlens::fuzz
