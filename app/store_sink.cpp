#include "app/store_sink.hpp"

#include <boost/asio/async_result.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <memory>
#include <set>

#include "core/json.hpp"
#include "core/log.hpp"
#include "core/report.hpp"
#include "core/test_id.hpp"
#include "storage/blocking.hpp"

namespace mxlens::app {

namespace asio = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;
using receiver::reply;

namespace {
constexpr std::int64_t ms_per_day = 86'400'000;
// RFC 5321 §4.5.1: postmaster must be accepted; it is kept as a test of its own.
constexpr std::string_view postmaster_id = "postmaster";
}  // namespace

store_sink::store_sink(asio::thread_pool& blocking, storage::store& reader,
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
      settings_(std::move(settings)) {}

receiver::recipient_verdict store_sink::lookup(const std::string& address) {
  auto mailbox = core::split_mailbox(address);
  if (!mailbox) mailbox = core::mailbox{address, settings_.domain};  // bare "postmaster"
  if (mailbox->domain != settings_.domain) {
    return {reply{550, "5.7.1",
                  "Relaying denied: this server accepts mail for @" + settings_.domain + " only"},
            {}};
  }
  const bool postmaster = core::lowercase(mailbox->local) == postmaster_id;
  auto id = postmaster ? std::optional<std::string>(postmaster_id)
                       : core::test_id_of_local_part(mailbox->local);
  if (!id) {
    return {
        reply{550, "5.1.1",
              "<" + address + ">: no such test address (a test id is 8 to 40 letters or digits)"},
        {}};
  }
  const auto now = clock_.now();
  std::lock_guard lock(reader_mutex_);
  auto test = reader_.find_test(*id);
  if (test && test->expires_at <= now) {
    return {reply{550, "5.1.1", "<" + address + ">: this test address has expired"}, {}};
  }
  if (!test && (settings_.catch_all || postmaster)) {
    core::test_info t;
    t.id = *id;
    t.address = *id + "@" + settings_.domain;
    t.created_at = now;
    t.expires_at = now + settings_.retention_days * ms_per_day;
    t.label = postmaster ? "postmaster" : "catch-all";
    if (reader_.create_test(t)) core::log_info("test " + t.id + " created on first RCPT");
    test = t;
  }
  if (!test) return {reply{550, "5.1.1", "<" + address + ">: no such test address"}, {}};
  return {reply{250, "2.1.5", "Recipient <" + address + "> OK"}, test->id};
}

asio::awaitable<receiver::recipient_verdict> store_sink::recipient(const std::string& address) {
  auto work = [this, address] { return lookup(address); };
  try {
    auto verdict = co_await storage::run_blocking(blocking_, std::move(work));
    co_return verdict;
  } catch (const std::exception& e) {
    core::log_error(std::string("recipient lookup failed: ") + e.what());
  }
  co_return receiver::recipient_verdict{
      reply{451, "4.3.0", "Temporary failure looking up the recipient, try again later"}, {}};
}

asio::awaitable<reply> store_sink::deliver(core::delivery message, std::vector<std::string> keys) {
  analyzers::analysis_input input{message, true, settings_.hostname, false};
  input.delivery.transcript.clear();  // the analysis does not read it
  // The facts of the listing line, as recorded (before earlier sessions' failed handshakes join).
  core::delivery facts;
  facts.received_at = message.received_at;
  facts.connection = message.connection;
  facts.tls = message.tls;
  facts.envelope = message.envelope;
  const auto client = message.connection.client_ip;
  const auto size = message.raw.size();
  const auto tls = message.tls.version.value_or("none");
  const auto session = message.session_id;
  // One delivery per test: the others copy the message, the last takes it.
  std::vector<core::delivery> deliveries;
  deliveries.reserve(keys.size());
  for (std::size_t i = 0; i + 1 < keys.size(); ++i) {
    deliveries.push_back(message);
    deliveries.back().test_id = keys[i];
  }
  message.test_id = keys.back();
  deliveries.push_back(std::move(message));

  // 1. The delivery itself, so that nothing is lost whatever the analysis does; 2. the analysis,
  // in a worker process. They do not wait for each other: the analysis reads only the message and
  // the session, and the report is stored (3.) once both are done.
  const auto analysis_started = std::chrono::steady_clock::now();
  auto [stored, analysis] = co_await (storage::committed(queue_, std::move(deliveries)) &&
                                      analyzed(std::move(input), keys.front(), client));
  if (!stored.error.empty())
    co_return reply{451, "4.3.0", "Temporary failure storing the message, try again later"};
  std::vector<storage::analysis_update> updates;
  std::string names;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (stored.numbers[i] == 0) continue;  // the test was deleted meanwhile
    updates.push_back({keys[i], stored.numbers[i], {}, {}});
    auto name = keys[i] + "/" + std::to_string(stored.numbers[i]);
    names += names.empty() ? name : ", " + name;
  }
  if (updates.empty()) co_return reply{550, "5.1.1", "The test address no longer exists"};
  const reply accepted{250, "2.0.0", "Ok: delivered as " + names};
  const core::disposition disposition{accepted.code, accepted.enhanced, accepted.lines.front(),
                                      "accept", std::nullopt};
  // The report is stored as the worker wrote it, with its disposition added: the server reads
  // only the analysis's summary.
  const auto text = core::with_disposition(std::move(analysis.text), disposition);
  const auto line = core::line_of(facts, analysis.summary, disposition);
  std::vector<std::string> analyzed;
  for (auto& u : updates) {
    u.json = text;
    u.line = line;
    u.line.number = u.number;
    analyzed.push_back(u.test_id);
  }

  // 3. The analysis, stored before the 250 that acknowledges it.
  auto saved = co_await storage::committed(queue_, std::move(updates));
  if (!saved.error.empty())
    co_return reply{451, "4.3.0", "Temporary failure storing the report, try again later"};
  const std::size_t errors = analysis.summary.errors.size();
  for (const auto& id : analyzed) events_.notify(id);
  metrics_.delivery(
      tls,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - analysis_started).count(),
      errors);
  core::log_info("delivery " + names + " from " + client + " size=" + std::to_string(size) +
                 " tls=" + tls + " session=" + session +
                 (errors == 0 ? "" : " analysis-errors=" + std::to_string(errors)));
  co_return accepted;
}

asio::awaitable<analyzers::worker::analysis_result> store_sink::analyzed(
    analyzers::analysis_input input, std::string test_id, std::string client_ip) {
  try {
    auto find = [this, id = std::move(test_id), client = std::move(client_ip)] {
      return context_of(id, client);
    };
    auto context = co_await storage::run_blocking(blocking_, std::move(find));
    input.bulk = context.bulk;
    auto& failed = input.delivery.tls.failed_handshakes;
    failed.insert(failed.end(), std::make_move_iterator(context.failed_handshakes.begin()),
                  std::make_move_iterator(context.failed_handshakes.end()));
  } catch (const std::exception& e) {
    core::log_warn(std::string("looking up the test's context: ") + e.what());
  }
  auto analysis = co_await analysis_.analyze(std::move(input));
  co_return analysis;
}

asio::awaitable<void> store_sink::analyze_pending() {
  constexpr std::size_t batch = 100;
  // Only what arrived before this start: a delivery arriving now is analyzed by deliver().
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
      analyzers::analysis_input input;
      try {
        input.delivery = core::from_json<core::delivery>(boost::json::parse(d.facts_json));
      } catch (const std::exception& e) {
        core::log_error("delivery " + d.test_id + "/" + std::to_string(d.summary.number) +
                        ": its stored facts cannot be read (" + e.what() + "); not analyzed");
        continue;
      }
      input.delivery.transcript.clear();
      const core::delivery facts = input.delivery;
      input.delivery.raw = std::move(d.raw);
      input.receiver = settings_.hostname;
      auto analysis = co_await analysis_.analyze(std::move(input));
      const core::disposition disposition{
          421, "4.3.2", "The server stopped before answering the end of data", "accept",
          "this report was made when the server started again; the sender got no reply "
          "and may send the message again"};
      std::vector<storage::analysis_update> update{
          {d.test_id, d.summary.number,
           core::with_disposition(std::move(analysis.text), disposition),
           core::line_of(facts, analysis.summary, disposition)}};
      update.front().line.number = d.summary.number;
      auto saved = co_await storage::committed(queue_, std::move(update));
      if (!saved.error.empty()) co_return;  // logged by the queue; tried again at the next start
      events_.notify(d.test_id);
      ++done;
    }
  }
  if (done > 0)
    core::log_info("analyzed " + std::to_string(done) +
                   " deliveries stored before a stop without their report");
}

store_sink::test_context store_sink::context_of(const std::string& test_id,
                                                const std::string& client_ip) {
  constexpr std::size_t most = 10;
  std::lock_guard lock(reader_mutex_);
  auto test = reader_.find_test(test_id);
  if (!test) return {};
  test_context context;
  context.bulk = test->bulk;
  // Only sessions that had a failed handshake are read: a busy sender has many others.
  for (const auto& text :
       reader_.sessions_with_failed_handshakes(client_ip, test->created_at, most)) {
    core::session_record session;
    try {
      session = core::from_json<core::session_record>(boost::json::parse(text));
    } catch (const std::exception& e) {
      core::log_warn(std::string("a stored session of ") + client_ip +
                     " cannot be read: " + e.what());
      continue;
    }
    for (auto& f : session.tls.failed_handshakes)
      if (context.failed_handshakes.size() < most)
        context.failed_handshakes.push_back(std::move(f));
  }
  return context;
}

void store_sink::session_closed(core::session_record session) {
  metrics_.session(session.outcome);
  queue_.submit(std::move(session));
}

}  // namespace mxlens::app
