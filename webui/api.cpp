#include "webui/api.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>

#include "core/json.hpp"
#include "core/prefix.hpp"
#include "core/report.hpp"
#include "core/test_id.hpp"
#include "core/text.hpp"
#include "storage/blocking.hpp"

namespace mxlens::webui {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {
constexpr std::int64_t ms_per_day = 86'400'000;
}  // namespace

api::api(http_settings settings, asio::thread_pool& blocking, storage::store& reader,
         storage::commit_queue& queue, hub& events, metrics& counters, const core::clock& clock)
    : settings_(std::move(settings)),
      blocking_(blocking),
      reader_(reader),
      queue_(queue),
      hub_(events),
      metrics_(counters),
      clock_(clock),
      creations_(settings_.max_new_tests_per_minute, std::chrono::minutes(1)) {}

std::optional<api::wait_slot> api::take_wait(const std::string& client) {
  auto network = core::client_network(client);
  std::lock_guard lock(waits_mutex_);
  auto& n = waits_[network];
  if (n >= settings_.max_waits_per_client) return std::nullopt;
  ++n;
  return wait_slot(*this, std::move(network));
}

void api::end_wait(const std::string& network) {
  std::lock_guard lock(waits_mutex_);
  if (auto it = waits_.find(network); it != waits_.end() && --it->second == 0) waits_.erase(it);
}

bool api::is_admin(std::string_view authorization) const {
  const auto& token = settings_.admin_token;
  constexpr std::string_view scheme = "Bearer ";  // RFC 6750 §2.1
  if (token.empty() || authorization.size() != scheme.size() + token.size() ||
      authorization.substr(0, scheme.size()) != scheme)
    return false;
  unsigned char differ = 0;
  for (std::size_t i = 0; i < token.size(); ++i)
    differ |= static_cast<unsigned char>(authorization[scheme.size() + i] ^ token[i]);
  return differ == 0;
}

void api::stop() {
  stopping_ = true;
  hub_.notify_all();
}

template <class F>
asio::awaitable<std::invoke_result_t<F&, storage::store&>> api::read(F f) {
  auto work = [this, f = std::move(f)]() mutable {
    std::lock_guard lock(reader_mutex_);
    return f(reader_);
  };
  auto result = co_await storage::run_blocking(blocking_, std::move(work));
  co_return result;
}

asio::awaitable<std::optional<core::test_info>> api::find_test(const std::string& id) {
  if (!core::is_valid_test_id(id)) co_return std::nullopt;
  auto find = [id](storage::store& s) { return s.find_test(id); };
  auto test = co_await read(std::move(find));
  if (test && test->expires_at <= clock_.now()) test.reset();
  co_return test;
}

asio::awaitable<std::optional<core::test_info>> api::create_test(
    std::string label, bool bulk, std::vector<std::string> expect_from) {
  core::test_info t;
  t.id = core::new_test_id();
  t.address = t.id + "@" + settings_.domain;
  t.created_at = clock_.now();
  t.expires_at = t.created_at + settings_.retention_days * ms_per_day;
  t.label = std::move(label);
  t.bulk = bulk;
  t.expect_from = std::move(expect_from);
  auto insert = [t](storage::store& s) { return s.create_test(t); };
  const bool created = co_await storage::on_writer(queue_, std::move(insert));
  if (!created) co_return std::nullopt;
  co_return t;
}

asio::awaitable<bool> api::delete_test(const std::string& id) {
  auto del = [id](storage::store& s) { return s.delete_test(id); };
  const bool deleted = co_await storage::on_writer(queue_, std::move(del));
  if (deleted) hub_.notify(id);
  co_return deleted;
}

asio::awaitable<listing> api::list(const std::string& id, storage::line_page page) {
  auto read_page = [id, page](storage::store& s) {
    auto more = page;
    ++more.limit;
    listing l;
    l.lines = s.report_lines(id, more);
    l.totals = s.source_totals(id);
    return l;
  };
  auto l = co_await read(std::move(read_page));
  l.more = l.lines.size() > page.limit;
  if (l.more) l.lines.pop_back();
  co_return l;
}

// The reports of a test numbered above `after` whose analysis is stored, in order, up to the
// first that is not: it and those after it come later.
asio::awaitable<std::vector<json::object>> api::reports(const std::string& id, std::int64_t after,
                                                        std::size_t limit) {
  auto records = [id, after, limit](storage::store& s) {
    return s.delivery_records(id, after, limit);
  };
  auto rows = co_await read(std::move(records));
  std::vector<json::object> out;
  for (auto& row : rows) {
    if (!row.analysis_json) break;
    out.push_back(
        core::merge_report(row.facts_json, core::parse_stored(*row.analysis_json).as_object()));
  }
  co_return out;
}

asio::awaitable<std::optional<json::object>> api::report(const std::string& id, std::int64_t n) {
  auto found = co_await reports(id, n - 1, 1);
  if (found.empty() || found.front().at("delivery").to_number<std::int64_t>() != n)
    co_return std::nullopt;
  co_return std::move(found.front());
}

asio::awaitable<std::optional<std::uint64_t>> api::raw_size(const std::string& id, std::int64_t n) {
  auto get = [id, n](storage::store& s) { return s.raw_size(id, n); };
  auto size = co_await read(std::move(get));
  co_return size;
}

asio::awaitable<std::optional<std::string>> api::raw_part(const std::string& id, std::int64_t n,
                                                          std::uint64_t offset,
                                                          std::size_t length) {
  auto get = [id, n, offset, length](storage::store& s) {
    return s.raw_part(id, n, offset, length);
  };
  auto part = co_await read(std::move(get));
  co_return part;
}

asio::awaitable<std::optional<json::object>> api::next_report(const std::string& id,
                                                              std::int64_t after,
                                                              time_point deadline) {
  for (;;) {
    const auto seen = hub_.generation(id);
    auto found = co_await reports(id, after, 1);
    if (!found.empty()) co_return std::move(found.front());
    const bool news = co_await sleep_until_news(id, seen, deadline);
    if (!news && (std::chrono::steady_clock::now() >= deadline || stopping_))
      co_return std::nullopt;
  }
}

asio::awaitable<std::vector<core::report_line>> api::lines_after(const std::string& id,
                                                                 std::int64_t after,
                                                                 std::size_t limit) {
  storage::line_page page;
  page.after = after;
  page.limit = limit;
  auto read_lines = [id, page](storage::store& s) { return s.report_lines(id, page); };
  auto lines = co_await read(std::move(read_lines));
  std::size_t kept = 0;
  while (kept < lines.size() && lines[kept].number == after + static_cast<std::int64_t>(kept) + 1)
    ++kept;
  lines.resize(kept);
  co_return lines;
}

asio::awaitable<bool> api::sleep_until_news(const std::string& id, std::uint64_t seen,
                                            time_point deadline) {
  auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor);
  timer->expires_at(deadline);
  hub_.subscribe(id, timer);
  bool news = hub_.generation(id) != seen;
  if (!news && !stopping_) {
    boost::system::error_code ec;
    co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    news = ec == asio::error::operation_aborted;
  }
  hub_.unsubscribe(id, timer);
  co_return news && !stopping_;
}

std::string api::metrics_text() const { return metrics_.render() + render(queue_.timing()); }

namespace {

// A session as a test that claims its address may see it: how it went (outcome, EHLO, TLS, the
// failures with their class and offer), never what it carried (no transcript, no envelope: the
// same address may have sent to other tests).
json::object session_view(const core::session_record& s) {
  json::array failures;
  for (const auto& f : s.tls.failed_handshakes)
    failures.push_back(json::object{{"at", core::format_time(f.at)},
                                    {"class", core::to_string(f.kind)},
                                    {"reason", f.reason},
                                    {"client_hello", core::optional_json(f.client_hello)}});
  return json::object{
      {"id", s.id},
      {"client_ip", s.connection.client_ip},
      {"started_at", core::format_time(s.connection.started_at)},
      {"ended_at", core::format_time(s.ended_at)},
      {"helo", s.connection.helo},
      {"outcome", s.outcome},
      {"tls", json::object{{"offered", s.tls.offered},
                           {"used", s.tls.used},
                           {"version", core::optional_json(s.tls.version)},
                           {"cipher", core::optional_json(s.tls.cipher)},
                           {"sni", core::optional_json(s.tls.sni)},
                           {"client_hello", core::optional_json(s.tls.client_hello)}}},
      {"failed_handshakes", std::move(failures)}};
}

}  // namespace

asio::awaitable<std::vector<json::object>> api::sessions_of(const core::test_info& t) {
  constexpr std::size_t scanned = 5000, shown = 100;
  std::vector<json::object> out;
  std::vector<core::address_prefix> claims;
  for (const auto& text : t.expect_from) {
    std::string problem;
    if (auto p = core::parse_prefix(text, problem)) claims.push_back(*p);
  }
  if (claims.empty()) co_return out;
  auto find = [since = t.created_at](storage::store& s) {
    return s.sessions_since(since, scanned);
  };
  const auto texts = co_await read(std::move(find));
  for (const auto& text : texts) {
    auto s = core::read_json<core::session_record>(text);
    if (!s) continue;
    const auto& ip = s->connection.client_ip;
    if (std::none_of(claims.begin(), claims.end(), [&](const auto& c) { return c.contains(ip); }))
      continue;
    out.push_back(session_view(*s));
    if (out.size() == shown) break;
  }
  co_return out;
}

json::object api::test_json(const core::test_info& t) const {
  auto o = core::to_json(t).as_object();
  o["url"] = settings_.public_url + "/t/" + t.id;
  return o;
}

}  // namespace mxlens::webui
