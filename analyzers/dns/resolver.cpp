#include "analyzers/dns/resolver.hpp"

#include <arpa/inet.h>
#include <poll.h>
#include <unbound.h>

#include <algorithm>
#include <boost/json/object.hpp>
#include <cctype>
#include <stdexcept>

namespace mxlens::analyzers::dns {

namespace json = boost::json;
using clock_type = std::chrono::steady_clock;

std::string_view type_name(rr_type t) {
  switch (t) {
    case rr_type::a: return "A";
    case rr_type::aaaa: return "AAAA";
    case rr_type::txt: return "TXT";
    case rr_type::mx: return "MX";
    case rr_type::ptr: return "PTR";
  }
  return "?";
}

std::string_view status_name(status s) {
  switch (s) {
    case status::ok: return "ok";
    case status::nxdomain: return "nxdomain";
    case status::nodata: return "nodata";
    case status::temperror: return "temperror";
  }
  return "?";
}

std::string normalize_name(std::string_view name) {
  std::string out(name);
  while (!out.empty() && out.back() == '.') out.pop_back();
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string reverse_name(const std::string& ip) {
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, ip.c_str(), &v4) == 1) {
    auto b = reinterpret_cast<const unsigned char*>(&v4);
    return std::to_string(b[3]) + "." + std::to_string(b[2]) + "." + std::to_string(b[1]) + "." +
           std::to_string(b[0]) + ".in-addr.arpa";
  }
  if (inet_pton(AF_INET6, ip.c_str(), &v6) == 1) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (int i = 15; i >= 0; --i) {
      out += hex[v6.s6_addr[i] & 0xf];
      out += '.';
      out += hex[v6.s6_addr[i] >> 4];
      out += '.';
    }
    return out + "ip6.arpa";
  }
  return {};
}

bool same_address(const std::string& a, const std::string& b) {
  unsigned char x[16]{}, y[16]{};
  if (inet_pton(AF_INET, a.c_str(), x) == 1 && inet_pton(AF_INET, b.c_str(), y) == 1)
    return std::equal(x, x + 4, y);
  if (inet_pton(AF_INET6, a.c_str(), x) == 1 && inet_pton(AF_INET6, b.c_str(), y) == 1)
    return std::equal(x, x + 16, y);
  return false;
}

void validate_upstream(const std::string& upstream) {
  if (upstream == "system") return;
  auto at = upstream.find('@');
  auto host = upstream.substr(0, at);
  unsigned char buf[16];
  if (inet_pton(AF_INET, host.c_str(), buf) != 1 && inet_pton(AF_INET6, host.c_str(), buf) != 1)
    throw std::invalid_argument("--dns: '" + upstream + "' is neither 'system' nor IP[@PORT]");
  if (at != std::string::npos) {
    auto port = upstream.substr(at + 1);
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        std::stoi(port) == 0 || std::stoi(port) > 65535)
      throw std::invalid_argument("--dns: bad port in '" + upstream + "'");
  }
}

// A question in flight: filled in by unbound's callback.
struct resolver::pending {
  int id = 0;
  bool done = false;
  int err = 0;
  ub_result* result = nullptr;
  clock_type::time_point started = clock_type::now();
  clock_type::time_point finished;
};

namespace {

void check(int rc, const char* what) {
  if (rc != 0) throw std::runtime_error(std::string("resolver: ") + what + ": " + ub_strerror(rc));
}

// A domain name in uncompressed wire form (unbound hands out rdata with names expanded).
bool read_name(const unsigned char* p, std::size_t len, std::size_t& pos, std::string& out) {
  out.clear();
  while (pos < len) {
    unsigned n = p[pos++];
    if (n == 0) {
      out = normalize_name(out);
      return true;
    }
    if (n > 63 || pos + n > len) return false;
    if (!out.empty()) out += '.';
    out.append(reinterpret_cast<const char*>(p + pos), n);
    pos += n;
  }
  return false;
}

// Presentation form of one rdata; false when it is malformed.
bool render(rr_type type, const unsigned char* p, std::size_t len, std::string& out) {
  char buf[INET6_ADDRSTRLEN];
  switch (type) {
    case rr_type::a:
      if (len != 4) return false;
      out = inet_ntop(AF_INET, p, buf, sizeof buf);
      return true;
    case rr_type::aaaa:
      if (len != 16) return false;
      out = inet_ntop(AF_INET6, p, buf, sizeof buf);
      return true;
    case rr_type::txt: {
      // Several character-strings make one value, joined without a separator (RFC 7208 §3.3,
      // RFC 6376 §3.6.2.2).
      out.clear();
      std::size_t pos = 0;
      while (pos < len) {
        std::size_t n = p[pos++];
        if (pos + n > len) return false;
        out.append(reinterpret_cast<const char*>(p + pos), n);
        pos += n;
      }
      return true;
    }
    case rr_type::mx: {
      if (len < 3) return false;
      std::size_t pos = 2;
      std::string name;
      if (!read_name(p, len, pos, name)) return false;
      out = std::to_string((p[0] << 8) | p[1]) + " " + name;
      return true;
    }
    case rr_type::ptr: {
      std::size_t pos = 0;
      return read_name(p, len, pos, out);
    }
  }
  return false;
}

void on_result(void* data, int err, ub_result* result) {
  auto p = static_cast<resolver::pending*>(data);
  p->done = true;
  p->err = err;
  p->result = result;
  p->finished = clock_type::now();
}

}  // namespace

resolver::resolver(const settings& s) : ctx_(ub_ctx_create()), timeout_(s.timeout) {
  if (!ctx_) throw std::runtime_error("resolver: cannot create the unbound context");
  try {
    // Threaded mode: the default asynchronous mode forks a process.
    check(ub_ctx_async(ctx_, 1), "async");
    if (s.upstream == "system") {
      check(ub_ctx_resolvconf(ctx_, nullptr), "resolv.conf");
    } else {
      validate_upstream(s.upstream);
      check(ub_ctx_set_fwd(ctx_, s.upstream.c_str()), "forwarder");
    }
    if (!s.trust_anchor.empty()) {
      check(ub_ctx_add_ta_file(ctx_, s.trust_anchor.c_str()), "trust anchor");
    } else {
      // Without a trust anchor nothing can be validated: the validator module only costs time.
      check(ub_ctx_set_option(ctx_, "module-config:", "iterator"), "module-config");
    }
    // Unbound answers these locally by default (NXDOMAIN for *.test, "localhost" for the
    // loopback reverse zones). A receiver must see what the DNS says about them.
    for (const char* zone : {"test.", "127.in-addr.arpa.",
                             "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa."})
      ub_ctx_zone_remove(ctx_, zone);
  } catch (...) {
    ub_ctx_delete(ctx_);
    throw;
  }
}

resolver::~resolver() {
  forget_prefetched();
  ub_ctx_delete(ctx_);
}

std::unique_ptr<resolver::pending> resolver::start(const std::string& name, rr_type type, answer& a) {
  auto p = std::make_unique<pending>();
  int rc = ub_resolve_async(ctx_, name.c_str(), static_cast<int>(type), 1, p.get(), on_result, &p->id);
  if (rc != 0) {
    a.error = ub_strerror(rc);
    if (rc == UB_SYNTAX) a.state = status::nxdomain;
    return nullptr;
  }
  return p;
}

void resolver::prefetch(const std::vector<std::pair<std::string, rr_type>>& questions) {
  for (const auto& [raw_name, type] : questions) {
    const auto name = normalize_name(raw_name);
    if (name.empty() || name.size() > 253) continue;
    auto key = std::make_pair(name, static_cast<std::uint16_t>(type));
    if (prefetched_.count(key)) continue;
    answer ignored;
    if (auto p = start(name, type, ignored)) prefetched_.emplace(std::move(key), std::move(p));
  }
}

void resolver::forget_prefetched() {
  for (auto& [key, p] : prefetched_) {
    if (!p->done) ub_cancel(ctx_, p->id);  // its callback will not be called
    else if (p->result) ub_resolve_free(p->result);
  }
  prefetched_.clear();
}

answer resolver::query(std::string_view raw_name, rr_type type) {
  answer a;
  const std::string name = normalize_name(raw_name);
  if (name.empty() || name.size() > 253) {
    a.state = status::nxdomain;
    a.error = "not a valid domain name";
    return a;
  }
  std::unique_ptr<pending> p;
  if (auto it = prefetched_.find({name, static_cast<std::uint16_t>(type)}); it != prefetched_.end()) {
    p = std::move(it->second);
    prefetched_.erase(it);
  } else {
    p = start(name, type, a);
    if (!p) return a;
  }
  const auto deadline = p->started + timeout_;
  while (!p->done) {
    // Answers already back are taken before the clock is looked at: a prefetched question whose
    // answer came long ago has not timed out because nobody asked for it until now.
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    pollfd pfd{ub_fd(ctx_), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(std::max<long long>(0, left.count()))) > 0) {
      ub_process(ctx_);  // completes this question and any prefetched one that is back
      continue;
    }
    if (left.count() <= 0) {
      ub_cancel(ctx_, p->id);
      a.error = "timed out after " + std::to_string(timeout_.count()) + " ms";
      a.ms = static_cast<double>(timeout_.count());
      return a;
    }
  }
  a.ms = std::chrono::duration<double, std::milli>(p->finished - p->started).count();
  if (p->err != 0 || !p->result) {
    a.error = ub_strerror(p->err);
    if (p->result) ub_resolve_free(p->result);
    return a;
  }
  ub_result* r = p->result;
  a.secure = r->secure != 0;
  if (r->bogus) {
    a.error = std::string("DNSSEC validation failed: ") + (r->why_bogus ? r->why_bogus : "bogus");
  } else if (r->rcode == 3) {
    a.state = status::nxdomain;
  } else if (r->rcode != 0) {
    a.error = "rcode " + std::to_string(r->rcode);
  } else if (!r->havedata) {
    a.state = status::nodata;
  } else {
    a.state = status::ok;
    for (int i = 0; r->data[i]; ++i) {
      std::string text;
      if (render(type, reinterpret_cast<const unsigned char*>(r->data[i]),
                 static_cast<std::size_t>(r->len[i]), text))
        a.records.push_back(std::move(text));
    }
    if (a.records.empty()) {
      a.state = status::temperror;
      a.error = "malformed answer";
    }
  }
  ub_resolve_free(r);
  return a;
}

const answer& lookups::query(std::string_view name, rr_type type) {
  auto key = std::make_pair(normalize_name(name), static_cast<std::uint16_t>(type));
  if (auto it = cache_.find(key); it != cache_.end()) return it->second->result;
  auto e = std::make_unique<entry>();
  e->name = key.first;
  e->type = type;
  e->result = resolver_.query(key.first, type);
  e->ms = e->result.ms;
  auto* raw = e.get();
  log_.push_back(std::move(e));
  cache_.emplace(key, raw);
  return raw->result;
}

json::array lookups::evidence() const {
  json::array out;
  for (const auto& e : log_) {
    json::object o;
    o["name"] = e->name;
    o["type"] = type_name(e->type);
    o["status"] = status_name(e->result.state);
    json::array records;
    for (const auto& r : e->result.records) records.emplace_back(r);
    o["records"] = std::move(records);
    o["dnssec"] = e->result.secure;
    if (!e->result.error.empty()) o["error"] = e->result.error;
    o["ms"] = static_cast<std::int64_t>(e->ms + 0.5);
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace mxlens::analyzers::dns
