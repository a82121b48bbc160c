#include "analyzers/dns/resolver.hpp"

#include <arpa/inet.h>
#include <event2/event.h>
#include <unbound-event.h>
#include <unbound.h>

#include <algorithm>
#include <boost/json/object.hpp>
#include <cctype>
#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/log.hpp"

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

// A question in flight: filled in by unbound's callback, in the event loop of wait().
struct resolver::pending {
  int id = 0;
  bool done = false;
  int rcode = 0;  // the DNS rcode; SERVFAIL also for unbound's own failures
  int sec = 0;    // 0 insecure, 1 bogus, 2 secure
  std::string why_bogus;
  std::vector<unsigned char> packet;  // the answer in wire form, when rcode is 0
  clock_type::time_point started = clock_type::now();
  clock_type::time_point finished;
};

namespace {

void check(int rc, const char* what) {
  if (rc != 0) throw std::runtime_error(std::string("resolver: ") + what + ": " + ub_strerror(rc));
}

// A domain name at `pos` in a DNS message of `len` bytes, following compression pointers
// (RFC 1035 §4.1.4); `pos` ends just after the name where it started. False when malformed: a
// pointer loop, a name over 255 bytes, a label type other than 0 or 3, or bytes past the end.
bool read_name(const unsigned char* msg, std::size_t len, std::size_t& pos, std::string& out) {
  out.clear();
  std::size_t at = pos, wire = 0;
  bool jumped = false;
  for (int jumps = 0; at < len;) {
    unsigned n = msg[at];
    if ((n & 0xc0) == 0xc0) {
      if (at + 1 >= len || ++jumps > 64) return false;
      if (!jumped) pos = at + 2;
      jumped = true;
      at = ((n & 0x3f) << 8) | msg[at + 1];
      continue;
    }
    if (n > 63) return false;
    ++at;
    if (n == 0) {
      if (!jumped) pos = at;
      out = normalize_name(out);
      return true;
    }
    wire += n + 1;  // with the root's zero byte, at most 255 (RFC 1035 §3.1)
    if (wire > 254 || at + n > len) return false;
    if (!out.empty()) out += '.';
    out.append(reinterpret_cast<const char*>(msg + at), n);
    at += n;
  }
  return false;
}

// Presentation form of the rdata of `len` bytes at `at` in a message; false when it is malformed.
// Names in MX and PTR rdata may be compressed against the rest of the message.
bool render(rr_type type, const unsigned char* msg, std::size_t msg_len, std::size_t at,
            std::size_t len, std::string& out) {
  const unsigned char* p = msg + at;
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
      std::size_t pos = at + 2;
      std::string name;
      if (!read_name(msg, msg_len, pos, name) || pos != at + len) return false;
      out = std::to_string((p[0] << 8) | p[1]) + " " + name;
      return true;
    }
    case rr_type::ptr: {
      std::size_t pos = at;
      return read_name(msg, msg_len, pos, out) && pos == at + len;
    }
  }
  return false;
}

void on_answer(void* data, int rcode, void* packet, int len, int sec, char* why_bogus, int) {
  auto p = static_cast<resolver::pending*>(data);
  p->done = true;
  p->rcode = rcode;
  p->sec = sec;
  if (why_bogus) p->why_bogus = why_bogus;
  // The buffer is unbound's and is reused once this returns.
  if (rcode == 0 && packet && len > 0) {
    auto* bytes = static_cast<const unsigned char*>(packet);
    p->packet.assign(bytes, bytes + len);
  }
  p->finished = clock_type::now();
}

void on_deadline(evutil_socket_t, short, void*) {}  // only ends event_base_loop's wait

std::uint16_t u16(const unsigned char* p) { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }

}  // namespace

// unbound has scrubbed the answer already: what is left is the question's name, or the CNAME
// chain from it and the records at its end.
bool answer_records(const std::vector<unsigned char>& msg, rr_type type,
                    std::vector<std::string>& out) {
  const std::size_t len = msg.size();
  if (len < 12) return false;
  const unsigned char* m = msg.data();
  std::size_t pos = 12;
  std::string name;
  for (unsigned q = u16(m + 4); q > 0; --q) {
    if (!read_name(m, len, pos, name) || pos + 4 > len) return false;
    pos += 4;
  }
  for (unsigned n = u16(m + 6); n > 0; --n) {
    if (!read_name(m, len, pos, name) || pos + 10 > len) return false;
    const auto rr = u16(m + pos), cls = u16(m + pos + 2), rdlen = u16(m + pos + 8);
    pos += 10;
    if (pos + rdlen > len) return false;
    if (rr == static_cast<std::uint16_t>(type) && cls == 1) {
      std::string text;
      if (!render(type, m, len, pos, rdlen, text)) return false;
      out.push_back(std::move(text));
    }
    pos += rdlen;
  }
  return true;
}

// unbound runs in this thread, on an event base of its own, rather than in its threaded mode:
// there every question crossed to unbound's thread and its answer back, two thread wake-ups per
// question that cost as much CPU again as the question itself (bench/floor).
namespace {

// What ub_ctx_resolvconf takes from resolv.conf(5): its name servers, 127.0.0.1 when it has none.
std::vector<std::string> system_name_servers() {
  std::vector<std::string> out;
  std::ifstream in("/etc/resolv.conf");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string keyword, address;
    if (words >> keyword >> address && keyword == "nameserver") out.push_back(address);
  }
  if (out.empty()) out.push_back("127.0.0.1");
  return out;
}

// A trust anchor file's records, one per line, without comments (ub_ctx_add_ta takes each).
std::vector<std::string> trust_anchor_records(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error("resolver: trust anchor: cannot read " + file);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    const auto start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == ';') continue;
    out.push_back(line.substr(start));
  }
  return out;
}

}  // namespace

resolver::resolver(const settings& s) : settings_(s) {
  if (s.upstream != "system") validate_upstream(s.upstream);
  forwarders_ = s.upstream == "system" ? system_name_servers() : std::vector{s.upstream};
  if (!s.trust_anchor.empty()) trust_anchor_ = trust_anchor_records(s.trust_anchor);
  base_ = event_base_new();
  if (!base_) throw std::runtime_error("resolver: cannot create an event base");
  timer_ = evtimer_new(base_, on_deadline, nullptr);
  if (!timer_) {
    event_base_free(base_);
    throw std::runtime_error("resolver: cannot create a timer");
  }
  try {
    open_context();
  } catch (...) {
    event_free(timer_);
    event_base_free(base_);
    throw;
  }
}

void resolver::open_context() {
  ctx_ = ub_ctx_create_event(base_);
  if (!ctx_) throw std::runtime_error("resolver: cannot create the unbound context");
  ++contexts_;
  try {
    for (const auto& f : forwarders_) check(ub_ctx_set_fwd(ctx_, f.c_str()), "forwarder");
    if (!trust_anchor_.empty()) {
      for (const auto& ta : trust_anchor_) check(ub_ctx_add_ta(ctx_, ta.c_str()), "trust anchor");
    } else {
      // Without a trust anchor nothing can be validated: the validator module only costs time.
      check(ub_ctx_set_option(ctx_, "module-config:", "iterator"), "module-config");
    }
    // Unbound answers these locally by default (NXDOMAIN for *.test, "localhost" for the
    // loopback reverse zones). A receiver must see what the DNS says about them.
    for (const char* zone :
         {"test.", "127.in-addr.arpa.",
          "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa."})
      ub_ctx_zone_remove(ctx_, zone);
  } catch (...) {
    ub_ctx_delete(ctx_);
    ctx_ = nullptr;
    throw;
  }
}

// Deletes the context; unbound calls back every question still in flight (SERVFAIL, no packet)
// as it does, so what those callbacks write to is freed only afterwards.
void resolver::close_context() {
  if (ctx_) ub_ctx_delete(ctx_);
  ctx_ = nullptr;
  prefetched_.clear();
  abandoned_.clear();
}

resolver::~resolver() {
  close_context();
  event_free(timer_);
  event_base_free(base_);
}

std::unique_ptr<resolver::pending> resolver::start(const std::string& name, rr_type type,
                                                   answer& a) {
  if (!ctx_) {
    // The context could not be made anew after a reset (see end_evaluation): try again, and
    // answer this question with the reason if it still fails.
    try {
      open_context();
    } catch (const std::exception& e) {
      a.error = e.what();
      return nullptr;
    }
  }
  auto p = std::make_unique<pending>();
  // Local data is answered before ub_resolve_event returns: `p` is filled in already then.
  int rc =
      ub_resolve_event(ctx_, name.c_str(), static_cast<int>(type), 1, p.get(), on_answer, &p->id);
  if (rc != 0) {
    a.error = ub_strerror(rc);
    if (rc == UB_SYNTAX) a.state = status::nxdomain;
    return nullptr;
  }
  return p;
}

// ub_cancel is not used: with an event base it takes the path meant for a forked worker, which
// frees the query that unbound's mesh still holds (its answer then arrives to freed memory) and
// writes the cancellation to a pipe nobody reads, which blocks once the pipe is full. An
// unwanted question is kept until unbound ends it with an answer or its own timeout, or until
// the evaluation ends: then the context is made anew, which ends them all (end_evaluation).
void resolver::abandon(std::unique_ptr<pending> p) {
  std::erase_if(abandoned_, [](const auto& q) { return q->done; });
  if (!p->done) abandoned_.push_back(std::move(p));
}

bool resolver::wait(pending& p) {
  const auto deadline = std::min(p.started + settings_.timeout, budget_end_);
  while (!p.done) {
    // Answers already back are taken before the clock is looked at: a prefetched question whose
    // answer came long ago has not timed out because nobody asked for it until now.
    event_base_loop(base_, EVLOOP_NONBLOCK);
    if (p.done) break;
    auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - clock_type::now());
    if (left.count() <= 0) return false;
    timeval tv{static_cast<time_t>(left.count() / 1'000'000),
               static_cast<suseconds_t>(left.count() % 1'000'000)};
    evtimer_add(timer_, &tv);
    event_base_loop(base_, EVLOOP_ONCE);
    evtimer_del(timer_);
  }
  return true;
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

void resolver::begin_evaluation() {
  budget_end_ = clock_type::now() + settings_.budget;
  unanswered_ = false;
}

// libunbound keeps what it learns of an upstream in its infrastructure cache, per server address
// (https://unbound.docs.nlnetlabs.nl/en/latest/reference/history/info-timeout-server-selection.html):
// after a few timeouts it backs off, probes, and answers SERVFAIL at once or only after long
// waits, for every name. With one forwarder (resolv.conf's recursive resolver), one sender's
// black-holed names would make the next sender's questions fail (docs/libraries.md §4). So a
// context that saw a question go unanswered, or still has one in flight, is not used again.
void resolver::end_evaluation() {
  for (auto& [key, p] : prefetched_) abandon(std::move(p));
  prefetched_.clear();
  budget_end_ = clock_type::time_point::max();
  std::erase_if(abandoned_, [](const auto& q) { return q->done; });
  if (unanswered_ || !abandoned_.empty()) {
    unanswered_ = false;
    close_context();
    open_context();
  }
}

std::string resolver::budget_spent() const {
  return "the evaluation's DNS budget of " + std::to_string(settings_.budget.count()) +
         " ms was spent";
}

answer resolver::query(std::string_view raw_name, rr_type type) {
  answer a;
  const std::string name = normalize_name(raw_name);
  if (name.empty() || name.size() > 253) {
    a.state = status::nxdomain;
    a.error = "not a valid domain name";
    return a;
  }
  if (clock_type::now() >= budget_end_) {
    unanswered_ = true;
    a.error = budget_spent();
    return a;
  }
  std::unique_ptr<pending> p;
  if (auto it = prefetched_.find({name, static_cast<std::uint16_t>(type)});
      it != prefetched_.end()) {
    p = std::move(it->second);
    prefetched_.erase(it);
  } else {
    p = start(name, type, a);
    if (!p) {
      unanswered_ = true;
      return a;
    }
  }
  if (!wait(*p)) {
    unanswered_ = true;
    const auto now = clock_type::now();
    a.error = now >= budget_end_
                  ? budget_spent()
                  : "timed out after " + std::to_string(settings_.timeout.count()) + " ms";
    a.ms = std::chrono::duration<double, std::milli>(now - p->started).count();
    abandon(std::move(p));
    return a;
  }
  a.ms = std::chrono::duration<double, std::milli>(p->finished - p->started).count();
  a.secure = p->sec == 2;
  if (p->sec == 1) {
    a.error =
        "DNSSEC validation failed: " + (p->why_bogus.empty() ? std::string("bogus") : p->why_bogus);
  } else if (p->rcode == 3 ||
             (p->rcode == 0 && p->packet.size() >= 12 && (p->packet[3] & 0x0f) == 3)) {
    // ub_resolve_event's callback says 0 for every answer it got, NXDOMAIN included: the
    // answer's own RCODE (RFC 1035 §4.1.1, the low bits of its fourth octet) says which.
    a.state = status::nxdomain;
  } else if (p->rcode != 0) {
    // SERVFAIL is also what unbound answers when it gave up on the upstream itself.
    if (p->rcode == 2) unanswered_ = true;
    a.error = "rcode " + std::to_string(p->rcode);
  } else if (!answer_records(p->packet, type, a.records)) {
    a.records.clear();
    a.error = "malformed answer";
  } else {
    a.state = a.records.empty() ? status::nodata : status::ok;
  }
  return a;
}

// A destructor must not throw: a context that cannot be made anew is logged, and the next question
// is answered by whatever the resolver can still do.
lookups::~lookups() {
  try {
    resolver_.end_evaluation();
  } catch (const std::exception& e) {
    core::log_error(std::string("resolver: ") + e.what());
  }
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
    o["ms"] = std::llround(e->ms);
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace mxlens::analyzers::dns
