#include "app/store_sink.hpp"

#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>

#include "app/blocking.hpp"
#include "core/log.hpp"
#include "core/test_id.hpp"

namespace mxlens::app {

namespace asio = boost::asio;
using receiver::reply;

namespace {
constexpr std::int64_t ms_per_day = 86'400'000;
// RFC 5321 §4.5.1: postmaster must be accepted; it is kept as a test of its own.
constexpr std::string_view postmaster_id = "postmaster";
}  // namespace

store_sink::store_sink(asio::thread_pool& blocking, storage::store& reader,
                       storage::commit_queue& queue, const core::clock& clock,
                       sink_settings settings)
    : blocking_(blocking),
      reader_(reader),
      queue_(queue),
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
    return {reply{550, "5.1.1",
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
    auto verdict = co_await run_blocking(blocking_, std::move(work));
    co_return verdict;
  } catch (const std::exception& e) {
    core::log_error(std::string("recipient lookup failed: ") + e.what());
  }
  co_return receiver::recipient_verdict{
      reply{451, "4.3.0", "Temporary failure looking up the recipient, try again later"}, {}};
}

asio::awaitable<reply> store_sink::deliver(core::delivery message,
                                           std::vector<std::string> keys) {
  std::vector<core::delivery> deliveries;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    // One delivery per test: the last takes the message, the others copy it.
    core::delivery d = (i + 1 == keys.size()) ? std::move(message) : message;
    d.test_id = keys[i];
    deliveries.push_back(std::move(d));
  }
  const auto client = deliveries.empty() ? std::string() : deliveries.front().connection.client_ip;
  const auto size = deliveries.empty() ? 0 : deliveries.front().raw.size();
  const auto tls = deliveries.empty() ? std::string("none")
                                      : deliveries.front().tls.version.value_or("none");
  const auto session = deliveries.empty() ? std::string() : deliveries.front().session_id;

  // Resumed from the writer thread once the commit returned (posted, never run inline there).
  auto initiation = [this](auto handler, std::vector<core::delivery> batch) {
    auto shared = std::make_shared<decltype(handler)>(std::move(handler));
    queue_.submit(std::move(batch), [shared](storage::commit_queue::outcome o) {
      auto ex = asio::get_associated_executor(*shared);
      asio::post(ex, [shared, o = std::move(o)]() mutable { (*shared)(std::move(o)); });
    });
  };
  auto outcome = co_await asio::async_initiate<decltype(asio::use_awaitable),
                                               void(storage::commit_queue::outcome)>(
      initiation, asio::use_awaitable, std::move(deliveries));

  if (!outcome.error.empty())
    co_return reply{451, "4.3.0", "Temporary failure storing the message, try again later"};
  std::string stored;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (outcome.numbers[i] == 0) continue;  // the test was deleted meanwhile
    auto name = keys[i] + "/" + std::to_string(outcome.numbers[i]);
    core::log_info("delivery " + name + " from " + client + " size=" + std::to_string(size) +
                   " tls=" + tls + " session=" + session);
    stored += stored.empty() ? name : ", " + name;
  }
  if (stored.empty()) co_return reply{550, "5.1.1", "The test address no longer exists"};
  co_return reply{250, "2.0.0", "Ok: delivered as " + stored};
}

void store_sink::session_closed(core::session_record session) {
  queue_.submit(std::move(session));
}

}  // namespace mxlens::app
