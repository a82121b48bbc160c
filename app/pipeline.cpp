#include "app/pipeline.hpp"

#include <algorithm>
#include <chrono>
#include <set>

#include "core/json.hpp"
#include "core/log.hpp"
#include "core/report.hpp"
#include "core/test_id.hpp"
#include "storage/blocking.hpp"

namespace mxlens::app {

namespace asio = boost::asio;
using receiver::reply;

namespace {

constexpr std::int64_t ms_per_day = 86'400'000;
// RFC 5321 §4.5.1: postmaster must be accepted; it is kept as a test of its own.
constexpr std::string_view postmaster_id = "postmaster";

const reply store_failed{451, "4.3.0", "Temporary failure storing the message, try again later"};

// The rows a message became ("abcdefgh/3, ijklmnop/1"), leaving out tests deleted meanwhile.
std::string row_names(const std::vector<std::string>& tests,
                      const std::vector<std::int64_t>& numbers) {
  std::string names;
  for (std::size_t i = 0; i < tests.size(); ++i) {
    if (numbers[i] == 0) continue;
    auto name = tests[i] + "/" + std::to_string(numbers[i]);
    names += names.empty() ? name : ", " + name;
  }
  return names;
}

// The accept profile's answer.
reply accepted(const std::vector<std::string>& tests, const std::vector<std::int64_t>& numbers) {
  return {250, "2.0.0", "Ok: delivered as " + row_names(tests, numbers)};
}

core::disposition disposition_of(const reply& r, std::optional<std::string> reason = {}) {
  return {r.code, r.enhanced, r.lines.front(), "accept", std::move(reason)};
}

// What a recovered delivery's report records: the sender got no reply to its final dot.
const reply stopped{421, "4.3.2", "The server stopped before answering the end of data"};
constexpr const char* stopped_reason =
    "this report was made when the server started again; the sender got no reply and may send "
    "the message again";

// The facts a listing line reads (no raw bytes, no transcript).
core::delivery line_facts(const core::delivery& d) {
  core::delivery f;
  f.number = d.number;
  f.received_at = d.received_at;
  f.connection = d.connection;
  f.tls = d.tls;
  f.envelope = d.envelope;
  return f;
}

}  // namespace

void recent_failures::add(const core::failed_handshake& f, core::unix_ms now) {
  constexpr std::size_t per_address = 10, in_all = 100'000;
  std::lock_guard lock(mutex_);
  prune(now);
  auto& list = by_ip_[f.client_ip];
  list.push_back(f);
  if (list.size() > per_address) list.pop_front();
  order_.emplace_back(f.at, f.client_ip);
  while (order_.size() > in_all) {
    // The oldest entry, unless the per-address bound dropped it already.
    auto it = by_ip_.find(order_.front().second);
    if (it != by_ip_.end() && it->second.front().at <= order_.front().first) it->second.pop_front();
    if (it != by_ip_.end() && it->second.empty()) by_ip_.erase(it);
    order_.pop_front();
  }
}

void recent_failures::prune(core::unix_ms now) {
  while (!order_.empty() && order_.front().first < now - failure_window_ms) {
    auto it = by_ip_.find(order_.front().second);
    if (it != by_ip_.end()) {
      auto& list = it->second;
      while (!list.empty() && list.front().at < now - failure_window_ms) list.pop_front();
      if (list.empty()) by_ip_.erase(it);
    }
    order_.pop_front();
  }
}

std::vector<core::failed_handshake> recent_failures::from(const std::string& client_ip,
                                                          core::unix_ms since) const {
  std::lock_guard lock(mutex_);
  std::vector<core::failed_handshake> out;
  if (auto it = by_ip_.find(client_ip); it != by_ip_.end())
    for (const auto& f : it->second)
      if (f.at >= since) out.push_back(f);
  return out;
}

pipeline::pipeline(asio::thread_pool& blocking, storage::store& reader,
                   storage::commit_queue& queue, analyzers::worker::pool& analysis,
                   webui::hub& events, webui::metrics& counters, const core::clock& clock,
                   sink_settings settings)
    : blocking_(blocking),
      reader_(reader),
      queue_(queue),
      analysis_(analysis),
      events_(events),
      metrics_(counters),
      clock_(clock),
      settings_(std::move(settings)),
      creations_(settings_.max_new_tests_per_minute, std::chrono::minutes(1)) {}

pipeline::lookup_result pipeline::lookup(const std::string& address) {
  auto mailbox = core::split_mailbox(address);
  if (!mailbox) mailbox = core::mailbox{address, settings_.domain};  // bare "postmaster"
  if (mailbox->domain != settings_.domain) {
    return {{reply{550, "5.7.1",
                   "Relaying denied: this server accepts mail for @" + settings_.domain + " only"},
             {}},
            std::nullopt};
  }
  const bool postmaster = core::lowercase(mailbox->local) == postmaster_id;
  auto id = postmaster ? std::optional<std::string>(postmaster_id)
                       : core::test_id_of_local_part(mailbox->local);
  if (!id) {
    return {
        {reply{550, "5.1.1",
               "<" + address + ">: no such test address (a test id is 8 to 40 letters or digits)"},
         {}},
        std::nullopt};
  }
  const auto now = clock_.now();
  std::optional<core::test_info> test;
  bool deleted = false;
  {
    std::lock_guard lock(reader_mutex_);
    if (auto* disk = settings_.disk) {
      disk->refresh([this] { return reader_.reusable_bytes(); });
      // RFC 5321 §4.2.2 and RFC 3463: the mail system is full, for now.
      if (disk->now() == disk_guard::level::critical)
        return {{reply{452, "4.3.1", "Insufficient system storage, try again later"}, {}},
                std::nullopt};
    }
    test = reader_.find_test(*id);
    // Postmaster is always accepted (RFC 5321 §4.5.1): deleting its test only empties it.
    deleted = !test && !postmaster && reader_.was_deleted(*id, now);
  }
  if (deleted)
    return {{reply{550, "5.1.1", "<" + address + ">: this test address was deleted"}, {}},
            std::nullopt};
  if (test && test->expires_at <= now)
    return {{reply{550, "5.1.1", "<" + address + ">: this test address has expired"}, {}},
            std::nullopt};
  std::optional<core::test_info> create;
  if (!test && (settings_.catch_all || postmaster)) {
    core::test_info t;
    t.id = *id;
    t.address = *id + "@" + settings_.domain;
    t.created_at = now;
    t.expires_at = now + settings_.retention_days * ms_per_day;
    t.label = postmaster ? "postmaster" : "catch-all";
    create = t;
    test = t;
  }
  if (!test) return {{reply{550, "5.1.1", "<" + address + ">: no such test address"}, {}}, {}};
  return {{reply{250, "2.1.5", "Recipient <" + address + "> OK"}, test->id}, create};
}

asio::awaitable<receiver::recipient_verdict> pipeline::recipient(const std::string& address,
                                                                 const std::string& client_ip) {
  try {
    auto work = [this, address] { return lookup(address); };
    auto found = co_await storage::run_blocking(blocking_, std::move(work));
    // Postmaster's test is made once; only catch-all tests count against the client.
    const bool limited = found.create && found.create->id != postmaster_id;
    if (auto wait = limited ? creations_.refuse(client_ip, clock_.now()) : std::nullopt) {
      const auto seconds = std::chrono::ceil<std::chrono::seconds>(*wait).count();
      co_return receiver::recipient_verdict{
          reply{450, "4.7.1",
                "<" + address + ">: at most " + std::to_string(settings_.max_new_tests_per_minute) +
                    " new test addresses a minute are accepted from " + client_ip +
                    ", try again in " + std::to_string(seconds) + " s"},
          {}};
    }
    if (found.create) {
      // Created by the writer, like every write; a test another session created meanwhile is
      // the same test.
      auto insert = [t = *found.create](storage::store& s) { return s.create_test(t); };
      const bool created = co_await storage::on_writer(queue_, std::move(insert));
      if (created) core::log_info("test " + found.create->id + " created on first RCPT");
    }
    co_return found.verdict;
  } catch (const std::exception& e) {
    core::log_error(std::string("recipient lookup failed: ") + e.what());
  }
  co_return receiver::recipient_verdict{
      reply{451, "4.3.0", "Temporary failure looking up the recipient, try again later"}, {}};
}

asio::awaitable<reply> pipeline::deliver(core::delivery message, std::vector<std::string> keys) {
  // Named, not a braced temporary: docs/libraries.md §5 (g++ 12 and coroutine arguments).
  job j;
  j.delivery = std::move(message);
  j.tests = std::move(keys);
  auto answer = co_await run(std::move(j));
  co_return answer;
}

asio::awaitable<reply> pipeline::run(job j) {
  const auto started = std::chrono::steady_clock::now();
  const bool recovered = j.stored_as != 0;
  const auto client = j.delivery.connection.client_ip;
  const auto size = j.delivery.raw.size();
  const auto tls = j.delivery.tls.version.value_or("none");
  const auto session = j.delivery.session_id;

  // 1. The context: the first test's settings, and the client's failed handshakes in the
  // window before this connection, which the delivery's facts list (a sender that fell back to
  // plaintext after one is what tls.fallback fails).
  const auto began = j.delivery.connection.started_at;
  test_context context;
  try {
    auto find = [this, id = j.tests.front(), client, since = began - failure_window_ms] {
      return context_of(id, client, since);
    };
    context = co_await storage::run_blocking(blocking_, std::move(find));
  } catch (const std::exception& e) {
    core::log_warn(std::string("looking up the test's context: ") + e.what());
  }
  // Every other session's failure up to the message itself counts: a sender that reconnects the
  // moment it gets the alert is connected again before its failed session has written down the
  // time (a few milliseconds), so a failure can be "after" the connection it caused.
  auto& failed = j.delivery.tls.failed_handshakes;
  for (auto& f : context.failed_handshakes) {
    if (f.at > j.delivery.received_at || f.session == session) continue;
    f.seconds_before = static_cast<double>(std::max<core::unix_ms>(0, began - f.at)) / 1000.0;
    failed.push_back(std::move(f));
  }
  std::sort(failed.begin(), failed.end(), [](auto& a, auto& b) { return a.at < b.at; });

  // 2. The analysis. The delivery goes to it and comes back: a message is never copied.
  analyzers::analysis_input input{std::move(j.delivery), true, settings_.hostname, context.bulk};
  auto analysis = co_await analysis_.analyze(input);
  j.delivery = std::move(input.delivery);
  const std::size_t errors = analysis.summary.errors.size();

  // 3. and 4. The reply and the report, stored in one transaction. The report is stored as the
  // worker wrote it, with its disposition added: the server reads only the analysis's summary.
  const auto facts = line_facts(j.delivery);
  std::vector<std::int64_t> numbers;
  reply answer = stopped;
  if (recovered) {
    const auto disposition = disposition_of(stopped, stopped_reason);
    std::vector<storage::analysis_update> update{
        {j.tests.front(), j.stored_as,
         core::with_disposition(std::move(analysis.text), disposition),
         core::line_of(facts, analysis.summary, disposition)}};
    update.front().line.number = j.stored_as;
    auto saved = co_await storage::committed(queue_, std::move(update));
    if (!saved.error.empty()) co_return store_failed;  // logged by the queue
    numbers = {j.stored_as};
  } else {
    storage::message_delivery message;
    message.delivery = std::move(j.delivery);
    message.test_ids = j.tests;
    // Runs on the writer, inside the transaction, once the rows are numbered. It does not throw:
    // the worker pool hands over only analyses that are JSON objects.
    message.compose = [text = std::move(analysis.text), summary = analysis.summary, facts,
                       tests = j.tests](const std::vector<std::int64_t>& rows) {
      const auto disposition = disposition_of(accepted(tests, rows));
      return storage::composed_report{core::with_disposition(text, disposition),
                                      core::line_of(facts, summary, disposition)};
    };
    auto stored = co_await storage::committed(queue_, std::move(message));
    if (!stored.error.empty()) co_return store_failed;
    numbers = std::move(stored.numbers);
    if (std::all_of(numbers.begin(), numbers.end(), [](auto n) { return n == 0; }))
      co_return reply{550, "5.1.1", "The test address no longer exists"};
    answer = accepted(j.tests, numbers);
  }

  // 5. Notice.
  for (std::size_t i = 0; i < j.tests.size(); ++i)
    if (numbers[i] != 0) events_.notify(j.tests[i]);
  const auto names = row_names(j.tests, numbers);
  if (!recovered)
    metrics_.delivery(
        tls, std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
        errors);
  core::log_info(std::string(recovered ? "recovered delivery " : "delivery ") + names + " from " +
                 client + " size=" + std::to_string(size) + " tls=" + tls + " session=" + session +
                 (errors == 0 ? "" : " analysis-errors=" + std::to_string(errors)));
  co_return answer;
}

asio::awaitable<void> pipeline::recover() {
  constexpr std::size_t batch = 100;
  // Only what arrived before this start.
  const auto started = clock_.now();
  std::size_t done = 0;
  std::set<std::pair<std::string, std::int64_t>> seen;  // a row that stays unanalyzed ends the loop
  for (;;) {
    auto find = [this, started] {
      std::lock_guard lock(reader_mutex_);
      return reader_.unanalyzed(started, batch);
    };
    auto pending = co_await storage::run_blocking(blocking_, std::move(find));
    if (pending.empty()) break;
    for (auto& d : pending) {
      if (!seen.emplace(d.test_id, d.summary.number).second) co_return;
      job j;
      if (auto facts = core::read_json<core::delivery>(d.facts_json)) {
        j.delivery = std::move(*facts);
      } else {
        // Analyzed with what the row's columns say, rather than left without a report.
        core::log_warn("delivery " + d.test_id + "/" + std::to_string(d.summary.number) +
                       ": its stored facts cannot be read (" + facts.error().message() + ")");
        j.delivery.received_at = d.summary.received_at;
        j.delivery.connection.client_ip = d.summary.client_ip;
        j.delivery.envelope.mail_from = d.summary.mail_from;
      }
      j.delivery.test_id = d.test_id;
      j.delivery.number = d.summary.number;
      j.delivery.raw = std::move(d.raw);
      j.tests = {d.test_id};
      j.stored_as = d.summary.number;
      const auto answer = co_await run(std::move(j));
      if (answer.code == store_failed.code) co_return;  // tried again at the next start
      ++done;
    }
  }
  if (done > 0)
    core::log_info("analyzed " + std::to_string(done) +
                   " deliveries stored before a stop without their report");
}

pipeline::test_context pipeline::context_of(const std::string& test_id,
                                            const std::string& client_ip, core::unix_ms since) {
  constexpr std::size_t most = 10;
  test_context context;
  // Those the receiver told of (the sessions may still be open, or not yet stored), then the
  // stored ones, each failure once.
  context.failed_handshakes = failures_.from(client_ip, since);
  auto known = [&](const core::failed_handshake& f) {
    return std::any_of(context.failed_handshakes.begin(), context.failed_handshakes.end(),
                       [&](const auto& k) { return k.at == f.at && k.reason == f.reason; });
  };
  std::lock_guard lock(reader_mutex_);
  auto test = reader_.find_test(test_id);
  if (test) context.bulk = test->bulk;
  // Only sessions that had a failed handshake are read: a busy sender has many others.
  for (const auto& text : reader_.sessions_with_failed_handshakes(client_ip, since, most)) {
    auto session = core::read_json<core::session_record>(text);
    if (!session) {
      core::log_warn("a stored session of " + client_ip +
                     " cannot be read: " + session.error().message());
      continue;
    }
    for (auto& f : session->tls.failed_handshakes) {
      if (f.session.empty()) f.session = session->id;  // a record of the first schemas
      if (f.at >= since && !known(f) && context.failed_handshakes.size() < most)
        context.failed_handshakes.push_back(std::move(f));
    }
  }
  return context;
}

void pipeline::handshake_failed(const core::failed_handshake& f) { failures_.add(f, clock_.now()); }

bool said_nothing(const core::session_record& s) {
  if (s.messages > 0 || !s.connection.helo.empty() || s.connection.early_talker || s.tls.used ||
      !s.tls.failed_handshakes.empty())
    return false;
  return std::none_of(s.transcript.begin(), s.transcript.end(),
                      [](const auto& l) { return l.dir == core::direction::client; });
}

bool session_tally::keep_or_count(const core::session_record& s) {
  const auto minute = s.connection.started_at - s.connection.started_at % 60'000;
  std::lock_guard lock(mutex_);
  if (minute != kept_minute_) {
    kept_minute_ = minute;
    kept_.clear();
  }
  if (kept_.size() < most_addresses) {
    if (auto& kept = kept_[s.connection.client_ip]; kept < kept_per_minute) {
      ++kept;
      return true;
    }
  }
  auto key = std::pair{s.connection.client_ip, minute};
  if (counts_.size() >= most_addresses && !counts_.count(key)) key.first = "(others)";
  auto& t = counts_[key];
  ++t.connections;
  if (s.outcome == "refused") ++t.refused;
  return false;
}

std::vector<core::session_count> session_tally::take() {
  std::map<std::pair<std::string, core::unix_ms>, tally> taken;
  {
    std::lock_guard lock(mutex_);
    taken.swap(counts_);
  }
  std::vector<core::session_count> out;
  out.reserve(taken.size());
  for (auto& [key, t] : taken) out.push_back({key.first, key.second, t.connections, t.refused});
  return out;
}

void pipeline::session_closed(core::session_record session) {
  metrics_.session(session.outcome);
  // On a nearly full disk the room left is for deletes and accepted mail (disk_guard.hpp).
  if (settings_.disk && settings_.disk->now() != disk_guard::level::ok) return;
  if (!said_nothing(session) || tally_.keep_or_count(session)) {
    queue_.submit(std::move(session));
    return;
  }
  // Counted: written with the others about once a second.
  if (tally_due_.due()) write_session_counts();
}

void pipeline::write_session_counts() {
  auto counts = tally_.take();
  if (counts.empty()) return;
  queue_.run([counts = std::move(counts)](storage::store& s) mutable {
    storage::batch b;
    b.session_counts = std::move(counts);
    try {
      s.commit(b);
    } catch (const std::exception& e) {
      core::log_warn(std::string("storing the counts of sessions: ") + e.what());
    }
  });
}

}  // namespace mxlens::app
