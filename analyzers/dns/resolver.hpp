// The one resolver: every DNS question the analyzers ask goes through here, on libunbound.
// `resolver` owns the unbound context; `lookups` is one evaluation's view of it: it remembers
// every question and answer (the report's evidence) and answers repeated questions from memory.
// One evaluation's unanswered questions never change another's answers (DESIGN.md "One
// resolver"): an evaluation has a time budget of its own, and a context that saw a question go
// unanswered is made anew before the next evaluation, so that what libunbound learnt from it
// (an upstream "down" in its infrastructure cache, questions still in flight) dies with it.
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
  // All the questions of one evaluation are answered within this of its start; later questions
  // are temperrors at once. RFC 7208 §4.6.4: an SPF evaluation's limit "SHOULD allow at least 20
  // seconds".
  std::chrono::milliseconds budget{20000};
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
  // or by prefetch), and never past the evaluation's budget. Not for concurrent use.
  answer query(std::string_view name, rr_type type);

  // Asks questions an evaluation is about to ask, all at once: their answers travel together
  // instead of one round trip after another. Nothing is recorded until query() takes an answer.
  void prefetch(const std::vector<std::pair<std::string, rr_type>>& questions);

  // An evaluation (a `lookups`) starts: its budget runs from now.
  void begin_evaluation();
  // It ended: the prefetched answers nobody asked for are dropped, and when one of its questions
  // went unanswered (a timeout, a SERVFAIL, a question still in flight) the context is made anew.
  void end_evaluation();
  // Contexts made so far (1 at construction).
  std::uint64_t contexts() const { return contexts_; }

  struct pending;

 private:
  void open_context();
  void close_context();
  std::unique_ptr<pending> start(const std::string& name, rr_type type, answer& a);
  // Runs unbound until `p` is answered or its deadline passes; false on timeout.
  bool wait(pending& p);
  // A question whose answer is no longer wanted (see resolver.cpp for why it is not cancelled).
  void abandon(std::unique_ptr<pending> p);
  std::string budget_spent() const;

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
  std::chrono::steady_clock::time_point budget_end_ = std::chrono::steady_clock::time_point::max();
  bool unanswered_ = false;  // a question of this evaluation went unanswered
  std::uint64_t contexts_ = 0;
};

// One evaluation's questions: answered once each, all recorded for the evidence.
class lookups {
 public:
  explicit lookups(resolver& r) : resolver_(r) { resolver_.begin_evaluation(); }
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
