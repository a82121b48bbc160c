// The one resolver: every DNS question the analyzers ask goes through here, on libunbound.
// `resolver` owns the unbound context; `lookups` is one evaluation's view of it: it remembers
// every question and answer (the report's evidence) and answers repeated questions from memory.
#pragma once

#include <boost/json/array.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct ub_ctx;
struct event_base;
struct event;

namespace mxlens::analyzers::dns {

enum class rr_type : std::uint16_t { a = 1, ptr = 12, mx = 15, txt = 16, aaaa = 28 };
std::string_view type_name(rr_type t);

// NXDOMAIN and NODATA stay distinct; a timeout or SERVFAIL is `temperror`.
enum class status { ok, nxdomain, nodata, temperror };
std::string_view status_name(status s);

struct answer {
  status state = status::temperror;
  // Presentation form: A/AAAA as addresses, TXT with its character-strings joined, MX as
  // "PREFERENCE NAME", PTR as a name; names lowercase without the final dot.
  std::vector<std::string> records;
  bool secure = false;  // validated by DNSSEC
  std::string error;    // why a temperror happened
  double ms = 0;        // from the question to its answer
  bool empty() const { return state != status::ok || records.empty(); }
};

struct settings {
  std::string upstream = "system";  // "system" (resolv.conf) or IP[@PORT]
  std::string trust_anchor;         // a root key file enables DNSSEC validation
  std::chrono::milliseconds timeout{5000};
};

// Throws std::invalid_argument for an unusable upstream.
void validate_upstream(const std::string& upstream);

class resolver {
 public:
  explicit resolver(const settings& s);
  ~resolver();
  resolver(const resolver&) = delete;
  resolver& operator=(const resolver&) = delete;

  // Blocks for at most the configured timeout (counted from when the question was asked, here
  // or by prefetch). Not for concurrent use.
  answer query(std::string_view name, rr_type type);

  // Asks questions an evaluation is about to ask, all at once: their answers travel together
  // instead of one round trip after another. Nothing is recorded until query() takes an answer.
  void prefetch(const std::vector<std::pair<std::string, rr_type>>& questions);
  // Drops the prefetched answers nobody asked for.
  void forget_prefetched();

  struct pending;

 private:
  void open_context();
  void close_context();
  std::unique_ptr<pending> start(const std::string& name, rr_type type, answer& a);
  // Runs unbound until `p` is answered or its deadline passes; false on timeout.
  bool wait(pending& p);
  // A question whose answer is no longer wanted (see resolver.cpp for why it is not cancelled).
  void abandon(std::unique_ptr<pending> p);

  settings settings_;
  // The files the context is made from, read once: a context made anew later (in a worker whose
  // sandbox opens no file) takes them from here.
  std::vector<std::string> forwarders_;    // resolv.conf's name servers, or the upstream
  std::vector<std::string> trust_anchor_;  // the trust anchor file's records
  event_base* base_ = nullptr;
  event* timer_ = nullptr;  // ends a wait at its deadline
  ub_ctx* ctx_ = nullptr;
  std::map<std::pair<std::string, std::uint16_t>, std::unique_ptr<pending>> prefetched_;
  std::vector<std::unique_ptr<pending>> abandoned_;
};

// One evaluation's questions: answered once each, all recorded for the evidence.
class lookups {
 public:
  explicit lookups(resolver& r) : resolver_(r) {}
  ~lookups();
  lookups(const lookups&) = delete;
  lookups& operator=(const lookups&) = delete;
  const answer& query(std::string_view name, rr_type type);
  boost::json::array evidence() const;

 private:
  struct entry {
    std::string name;
    rr_type type;
    answer result;
    double ms;
  };
  resolver& resolver_;
  std::vector<std::unique_ptr<entry>> log_;
  std::map<std::pair<std::string, std::uint16_t>, entry*> cache_;
};

// The records of `type` in the answer section of a DNS message (the form unbound hands out), in
// the presentation form of `answer::records`; false when the message is malformed.
bool answer_records(const std::vector<unsigned char>& msg, rr_type type,
                    std::vector<std::string>& out);

// Helpers shared by the analyzers.
std::string normalize_name(std::string_view name);  // lowercase, no final dot
std::string reverse_name(const std::string& ip);    // "" for an invalid address
bool same_address(const std::string& a, const std::string& b);

}  // namespace mxlens::analyzers::dns
