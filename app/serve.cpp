// `mxlens serve`: configuration, and the wiring of receiver, certificates and storage.
#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "analyzers/worker/worker.hpp"
#include "app/analysis_options.hpp"
#include "app/cli.hpp"
#include "app/commands.hpp"
#include "app/pipeline.hpp"
#include "certs/server_tls.hpp"
#include "core/log.hpp"
#include "core/test_id.hpp"
#include "receiver/server.hpp"
#include "receiver/tls_inspect.hpp"
#include "storage/commit_queue.hpp"
#include "storage/sqlite_store.hpp"
#include "webui/http_server.hpp"

namespace mxlens::app {

namespace po = boost::program_options;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

constexpr const char* default_smtp_listen = "127.0.0.1:2525";
constexpr const char* default_http_listen = "127.0.0.1:8025";
// How often certificate files are checked for changes (SIGHUP reloads at once).
constexpr auto cert_poll_interval = 2s;
constexpr auto retention_interval = 1h;
// How often the store's size is held to --max-store-size.
constexpr auto store_size_interval = 5s;
// How long sessions get to finish after SIGTERM before the process exits anyway.
constexpr auto drain_timeout = 10s;
// Threads for blocking work (SQLite look-ups).
constexpr int blocking_threads = 2;

struct serve_config {
  std::vector<asio::ip::tcp::endpoint> smtp_listen;
  std::vector<asio::ip::tcp::endpoint> http_listen;
  std::string public_url;
  std::string webui_dir;
  std::string hostname;
  std::string domain;
  std::filesystem::path data_dir;
  std::vector<certs::key_pair_files> tls_files;
  bool catch_all = false;
  int retention_days = default_retention_days;
  std::uint64_t max_store_size = 0;  // octets; 0: no limit
  receiver::limits limits;
  std::uint64_t max_data_in_flight = receiver::default_max_data_in_flight;
  std::size_t max_new_tests_per_minute = webui::http_settings{}.max_new_tests_per_minute;
  std::chrono::seconds http_timeout = webui::http_settings{}.request_timeout;
  std::string admin_token;
  std::uint64_t min_free_disk = default_min_free_disk_mib << 20;
  analyzers::dns::settings dns;
  std::size_t workers = 0;
  std::size_t most_workers = 0;
  std::chrono::milliseconds analysis_timeout{60000};
  std::size_t worker_memory_mb = 1024;
  analyzers::worker::sandbox_settings worker_user;
};

po::options_description serve_options() {
  po::options_description o("mxlens serve options");
  // clang-format off
  o.add_options()
    ("help,h", "show this help")
    ("smtp-listen", po::value<std::vector<std::string>>()->composing(),
     "ADDR:PORT to accept SMTP on; repeatable (default 127.0.0.1:2525; [::1]:2525 for IPv6)")
    ("http-listen", po::value<std::vector<std::string>>()->composing(), "where to serve the web pages and the API, ADDR:PORT; repeatable (default 127.0.0.1:8025; port 0 picks a free port)")
    ("webui-dir", po::value<std::string>(), "serve the pages' files from this folder (webui/static) instead of the copies in the binary, for development")
    ("public-url", po::value<std::string>(), "the address people reach the web pages at, for links (default: http:// + the first --http-listen)")
    ("hostname", po::value<std::string>(), "name in the greeting and the self-signed certificate (default: system hostname)")
    ("domain", po::value<std::string>(), "domain of the test addresses (default: --hostname)")
    ("data-dir", po::value<std::string>()->default_value(default_data_dir), "where the database and generated certificates are kept")
    ("tls-cert", po::value<std::vector<std::string>>()->composing(), "PEM certificate chain; repeatable (RSA and ECDSA side by side), paired with --tls-key in order")
    ("tls-key", po::value<std::vector<std::string>>()->composing(), "PEM private key for the --tls-cert at the same position")
    ("catch-all", po::bool_switch(), "accept any test id at --domain, creating the test on first RCPT")
    ("max-message-size", po::value<std::uint64_t>()->default_value(receiver::default_max_message_size), "largest message accepted, in octets (advertised as SIZE; at most 268435456, what an analysis worker takes)")
    ("max-data-in-flight", po::value<std::uint64_t>()->default_value(receiver::default_max_data_in_flight), "octets of messages held by all sessions at once, from DATA until stored; past it a message gets 452 4.3.1 (at least --max-message-size)")
    ("retention", po::value<int>()->default_value(default_retention_days), "days a test and its deliveries are kept")
    ("max-store-size", po::value<std::uint64_t>()->default_value(0), "MiB the stored tests and sessions may take: past it the oldest are removed (tests by creation, with their deliveries) down to nine tenths of it, checked every 5 s (0: no limit, --retention only)")
    ("max-connections", po::value<std::size_t>()->default_value(receiver::default_max_connections), "simultaneous SMTP connections in total")
    ("max-connections-per-ip", po::value<std::size_t>()->default_value(receiver::default_max_connections_per_ip), "simultaneous SMTP connections from one client IP")
    ("max-connection-rate-per-ip", po::value<std::size_t>()->default_value(receiver::default_max_connection_rate), "SMTP connections one client IP may open in a minute; more get 421 4.7.0 (0: no limit)")
    ("max-connection-rate-per-network", po::value<std::size_t>()->default_value(receiver::default_max_connection_rate), "SMTP connections one client network (an IPv4 /24, an IPv6 /64) may open in a minute; more get 421 4.7.0 (0: no limit)")
    ("max-connections-per-network", po::value<std::size_t>()->default_value(receiver::default_max_connections_per_network), "simultaneous SMTP connections from one client network (an IPv4 /24, an IPv6 /64)")
    ("max-messages-per-connection", po::value<std::size_t>()->default_value(receiver::default_max_messages_per_connection), "messages accepted in one connection")
    ("max-recipients", po::value<std::size_t>()->default_value(receiver::default_max_recipients), "recipients per message (RFC 5321 requires at least 100)")
    ("max-junk-commands", po::value<std::size_t>()->default_value(receiver::default_max_junk_commands), "NOOP, RSET, HELP and VRFY commands answered without a message accepted in between; the next gets 421 and the connection is closed")
    ("idle-timeout", po::value<unsigned>()->default_value(static_cast<unsigned>(receiver::default_idle_timeout.count())), "seconds to wait for the next command or data")
    ("greet-pause", po::value<unsigned>()->default_value(static_cast<unsigned>(receiver::default_greet_pause.count())), "milliseconds the greeting is held back to see whether the client talks first (0: not tested)")
    ("tls-handshake-timeout", po::value<unsigned>()->default_value(static_cast<unsigned>(receiver::default_tls_handshake_timeout.count())), "seconds a STARTTLS handshake may take")
    ("max-session-time", po::value<unsigned>()->default_value(static_cast<unsigned>(receiver::default_max_session_time.count())), "seconds one connection may last")
    ("workers", po::value<std::size_t>()->default_value(std::max(1u, std::thread::hardware_concurrency())), "analysis worker processes")
    ("max-workers", po::value<std::size_t>()->default_value(0), "analysis workers at most (0: 4 x --workers); those beyond --workers only for a client with no other analysis running")
    ("analysis-timeout", po::value<double>()->default_value(60), "seconds one delivery's analysis may take; a worker past it is stopped and replaced")
    ("min-free-disk", po::value<std::uint64_t>()->default_value(default_min_free_disk_mib), "MiB kept free where the database is: below it sessions are not stored, below half of it mail is deferred with 452 4.3.1, so that deleting tests still works (0: not watched)")
    ("http-timeout", po::value<int>()->default_value(static_cast<int>(webui::http_settings{}.request_timeout.count())), "seconds an HTTP client has to send a request, to take each part of a response (a download, an event stream), and to keep an idle connection")
    ("max-new-tests-per-minute", po::value<std::size_t>()->default_value(webui::http_settings{}.max_new_tests_per_minute), "tests one client address (an IPv6 /64) may create in a minute, through the API (more get 429) and by --catch-all RCPTs (more get 450 4.7.1)")
    ("admin-token-file", po::value<std::string>(), "a file holding the token (16 characters or more) with which HTTP requests see the operator's own tests (postmaster's mail), as Authorization: Bearer TOKEN; without it they are seen only with mxlens tests on this machine")
    ("user", po::value<std::string>()->default_value(""), "the user analysis workers run as when the server is root (default: mxlens if that user exists, else nobody)")
    ("worker-memory", po::value<std::size_t>()->default_value(1024), "address-space limit of each analysis worker, in MiB (0: none)")
    ("log-level", po::value<std::string>()->default_value("info"), "debug, info, warn or error");
  // clang-format on
  o.add(dns_options());
  return o;
}

bool valid_hostname(const std::string& h) {
  if (h.empty() || h.size() > 253) return false;
  for (char c : h)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.')) return false;
  return true;
}

// The endpoints of a repeatable ADDR:PORT option.
std::vector<asio::ip::tcp::endpoint> endpoints(const po::variables_map& vm, const std::string& name,
                                               const char* fallback) {
  std::vector<std::string> given{fallback};
  if (vm.count(name)) given = vm[name].as<std::vector<std::string>>();
  std::vector<asio::ip::tcp::endpoint> out;
  for (const auto& l : given) {
    try {
      out.push_back(receiver::parse_endpoint(l));
    } catch (const std::exception& e) {
      throw usage_error("--" + name + " '" + l + "': " + e.what());
    }
  }
  return out;
}

// The token in the file, without the white space around it.
std::string read_admin_token(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw usage_error("--admin-token-file '" + file + "' cannot be read");
  std::string token((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto first = token.find_first_not_of(" \t\r\n");
  token = first == std::string::npos
              ? std::string()
              : token.substr(first, token.find_last_not_of(" \t\r\n") - first + 1);
  constexpr std::size_t shortest = 16;
  if (token.size() < shortest || std::any_of(token.begin(), token.end(),
                                             [](unsigned char c) { return c <= ' ' || c >= 0x7f; }))
    throw usage_error("--admin-token-file '" + file + "': the token must be " +
                      std::to_string(shortest) + " or more printable ASCII characters, no spaces");
  return token;
}

serve_config to_config(const po::variables_map& vm) {
  serve_config c;
  c.smtp_listen = endpoints(vm, "smtp-listen", default_smtp_listen);
  c.http_listen = endpoints(vm, "http-listen", default_http_listen);
  if (vm.count("webui-dir")) c.webui_dir = vm["webui-dir"].as<std::string>();
  if (vm.count("public-url")) {
    c.public_url = vm["public-url"].as<std::string>();
    while (!c.public_url.empty() && c.public_url.back() == '/') c.public_url.pop_back();
    if (c.public_url.rfind("http://", 0) != 0 && c.public_url.rfind("https://", 0) != 0)
      throw usage_error("--public-url must start with http:// or https://");
  }
  c.hostname = vm.count("hostname") ? vm["hostname"].as<std::string>() : system_hostname();
  if (!valid_hostname(c.hostname))
    throw usage_error("--hostname '" + c.hostname + "' is not a valid host name");
  c.domain = core::lowercase(vm.count("domain") ? vm["domain"].as<std::string>() : c.hostname);
  if (!valid_hostname(c.domain))
    throw usage_error("--domain '" + c.domain + "' is not a valid domain name");
  c.data_dir = vm["data-dir"].as<std::string>();
  std::vector<std::string> cert_files, key_files;
  if (vm.count("tls-cert")) cert_files = vm["tls-cert"].as<std::vector<std::string>>();
  if (vm.count("tls-key")) key_files = vm["tls-key"].as<std::vector<std::string>>();
  if (cert_files.size() != key_files.size())
    throw usage_error("--tls-cert and --tls-key must be given the same number of times (" +
                      std::to_string(cert_files.size()) + " certificates, " +
                      std::to_string(key_files.size()) + " keys)");
  for (std::size_t i = 0; i < cert_files.size(); ++i)
    c.tls_files.push_back({cert_files[i], key_files[i]});
  c.catch_all = vm["catch-all"].as<bool>();
  c.retention_days = vm["retention"].as<int>();
  if (c.retention_days < 1) throw usage_error("--retention must be at least 1 day");
  const auto store_mib = vm["max-store-size"].as<std::uint64_t>();
  if (store_mib > (std::uint64_t{1} << 30))
    throw usage_error("--max-store-size must be at most 1073741824 MiB");
  c.max_store_size = store_mib << 20;
  auto& l = c.limits;
  l.max_message_size = vm["max-message-size"].as<std::uint64_t>();
  if (l.max_message_size < 1024) throw usage_error("--max-message-size must be at least 1024");
  // A message goes to its analysis worker as one frame (analyzers/worker/worker.hpp).
  if (l.max_message_size > analyzers::worker::max_frame)
    throw usage_error("--max-message-size must be at most " +
                      std::to_string(analyzers::worker::max_frame) +
                      " octets, the largest message an analysis worker takes");
  c.max_data_in_flight = vm["max-data-in-flight"].as<std::uint64_t>();
  if (c.max_data_in_flight < l.max_message_size)
    throw usage_error("--max-data-in-flight must be at least --max-message-size (" +
                      std::to_string(l.max_message_size) + ")");
  l.max_connections = vm["max-connections"].as<std::size_t>();
  l.max_connections_per_ip = vm["max-connections-per-ip"].as<std::size_t>();
  l.max_connections_per_network = vm["max-connections-per-network"].as<std::size_t>();
  l.max_connection_rate_per_ip = vm["max-connection-rate-per-ip"].as<std::size_t>();
  l.max_connection_rate_per_network = vm["max-connection-rate-per-network"].as<std::size_t>();
  l.max_messages_per_connection = vm["max-messages-per-connection"].as<std::size_t>();
  l.max_recipients = vm["max-recipients"].as<std::size_t>();
  if (l.max_connections < 1 || l.max_connections_per_ip < 1 || l.max_connections_per_network < 1 ||
      l.max_messages_per_connection < 1)
    throw usage_error("connection and message limits must be at least 1");
  if (l.max_recipients < 1) throw usage_error("--max-recipients must be at least 1");
  l.max_junk_commands = vm["max-junk-commands"].as<std::size_t>();
  if (l.max_junk_commands < 1) throw usage_error("--max-junk-commands must be at least 1");
  auto idle = vm["idle-timeout"].as<unsigned>();
  auto session = vm["max-session-time"].as<unsigned>();
  auto handshake = vm["tls-handshake-timeout"].as<unsigned>();
  if (idle < 1 || session < 1 || handshake < 1)
    throw usage_error("timeouts must be at least 1 second");
  l.idle_timeout = std::chrono::seconds(idle);
  l.tls_handshake_timeout = std::chrono::seconds(handshake);
  const std::chrono::milliseconds pause(vm["greet-pause"].as<unsigned>());
  if (pause > receiver::max_greet_pause)
    throw usage_error("--greet-pause must be at most " +
                      std::to_string(receiver::max_greet_pause.count()) + " ms");
  l.greet_pause = pause;
  l.max_session_time = std::chrono::seconds(session);
  c.dns = dns_settings(vm);
  c.workers = vm["workers"].as<std::size_t>();
  if (c.workers < 1 || c.workers > 256) throw usage_error("--workers must be between 1 and 256");
  c.most_workers = vm["max-workers"].as<std::size_t>();
  if (c.most_workers != 0 && (c.most_workers < c.workers || c.most_workers > 1024))
    throw usage_error("--max-workers must be 0 or between --workers and 1024");
  const double at = vm["analysis-timeout"].as<double>();
  if (!(at >= 1 && at <= 3600))
    throw usage_error("--analysis-timeout must be between 1 and 3600 seconds");
  c.analysis_timeout = std::chrono::milliseconds(static_cast<long>(at * 1000));
  c.min_free_disk = vm["min-free-disk"].as<std::uint64_t>() << 20;
  const int http_timeout = vm["http-timeout"].as<int>();
  if (http_timeout < 1 || http_timeout > 3600)
    throw usage_error("--http-timeout must be between 1 and 3600 seconds");
  c.http_timeout = std::chrono::seconds(http_timeout);
  c.max_new_tests_per_minute = vm["max-new-tests-per-minute"].as<std::size_t>();
  if (c.max_new_tests_per_minute < 1)
    throw usage_error("--max-new-tests-per-minute must be at least 1");
  if (vm.count("admin-token-file"))
    c.admin_token = read_admin_token(vm["admin-token-file"].as<std::string>());
  c.worker_memory_mb = vm["worker-memory"].as<std::size_t>();
  try {
    c.worker_user = analyzers::worker::worker_user(vm["user"].as<std::string>());
  } catch (const std::runtime_error& e) {
    throw usage_error(e.what());
  }
  if (c.worker_memory_mb != 0 && c.worker_memory_mb < 64)
    throw usage_error("--worker-memory must be 0 (no limit) or at least 64 MiB");
  auto level = vm["log-level"].as<std::string>();
  if (level == "debug") core::set_log_level(core::log_level::debug);
  else if (level == "info") core::set_log_level(core::log_level::info);
  else if (level == "warn") core::set_log_level(core::log_level::warn);
  else if (level == "error") core::set_log_level(core::log_level::error);
  else throw usage_error("--log-level must be debug, info, warn or error");
  return c;
}

// An io_context whose shutdown can be called before it is destroyed. Frames still suspended when
// the drain ends (a download to a client that stopped reading) are destroyed by that shutdown,
// and they use the servers declared after the io_context: left to ~io_context, they would run
// after those are gone.
class server_io : public asio::io_context {
 public:
  using asio::io_context::shutdown;
};

asio::awaitable<void> watch_certificates(certs::server_tls& tls) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    timer.expires_after(cert_poll_interval);
    co_await timer.async_wait(asio::use_awaitable);
    if (!tls.files_changed()) continue;
    auto err = tls.reload();
    if (err.empty()) {
      core::log_info("certificates reloaded (changed on disk): " + tls.describe());
    } else {
      core::log_error("certificate reload failed, keeping the old ones: " + err);
    }
  }
}

asio::awaitable<void> retention(storage::commit_queue& queue, int days) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    queue.run([days](storage::store& s) {
      auto now = core::now_ms();
      auto counts = s.purge(now, now - static_cast<std::int64_t>(days) * 86'400'000);
      if (counts.tests || counts.sessions) {
        core::log_info("retention: removed " + std::to_string(counts.tests) + " tests, " +
                       std::to_string(counts.deliveries) + " deliveries, " +
                       std::to_string(counts.sessions) + " sessions");
      }
    });
    timer.expires_after(retention_interval);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

// Holds the store to `most` octets in use, removing the oldest tests and sessions past it.
asio::awaitable<void> size_retention(storage::commit_queue& queue, std::uint64_t most) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    queue.run([most](storage::store& s) {
      auto counts = s.trim(most, most / 10 * 9);
      if (counts.tests || counts.sessions) {
        core::log_info("retention: the store took over " + std::to_string(most >> 20) +
                       " MiB: removed the oldest " + std::to_string(counts.tests) + " tests, " +
                       std::to_string(counts.deliveries) + " deliveries, " +
                       std::to_string(counts.sessions) + " sessions");
      }
    });
    timer.expires_after(store_size_interval);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

int run_server(const serve_config& config) {
  std::filesystem::create_directories(config.data_dir);
  const auto db = config.data_dir / database_file;
  auto writer = std::make_unique<storage::sqlite_store>(db);
  writer->set_meta("domain", config.domain);
  writer->set_meta("hostname", config.hostname);
  writer->set_meta("retention_days", std::to_string(config.retention_days));
  storage::sqlite_store reader(db);
  storage::commit_queue queue(std::move(writer));

  auto tls_files = config.tls_files;
  if (tls_files.empty())
    tls_files = certs::ensure_self_signed(config.data_dir / "tls", config.hostname);
  certs::server_tls tls(tls_files, receiver::install_client_hello_capture);

  // The resolver settings are tried here once, so that a bad upstream or trust anchor stops the
  // start instead of every analysis.
  { analyzers::dns::resolver probe(config.dns); }

  // Before the io_context: a session's lease of it may go only when the io_context does.
  receiver::byte_budget in_flight(config.max_data_in_flight);
  server_io io;
  asio::thread_pool blocking(blocking_threads);
  core::system_clock clock;
  analyzers::worker::pool_settings ps;
  ps.workers = config.workers;
  ps.most_workers = config.most_workers;
  ps.deadline = config.analysis_timeout;
  ps.worker_args = dns_arguments(config.dns);
  ps.worker_args.insert(ps.worker_args.end(),
                        {"--memory-mb", std::to_string(config.worker_memory_mb), "--cpu-seconds",
                         std::to_string(config.analysis_timeout.count() / 1000 + 1)});
  if (const auto& u = config.worker_user; u.uid)
    ps.worker_args.insert(ps.worker_args.end(), {"--uid", std::to_string(*u.uid), "--gid",
                                                 std::to_string(u.gid.value_or(*u.uid))});
  analyzers::worker::pool analysis(io.get_executor(), ps);
  analysis.start();
  webui::hub events;
  webui::metrics counters;
  storage::sqlite_store http_reader(db);
  webui::http_settings hs;
  hs.listen = config.http_listen;
  hs.domain = config.domain;
  hs.retention_days = config.retention_days;
  hs.static_dir = config.webui_dir;
  hs.max_new_tests_per_minute = config.max_new_tests_per_minute;
  hs.request_timeout = config.http_timeout;
  hs.admin_token = config.admin_token;
  webui::http_server web(io, hs, blocking, http_reader, queue, events, counters, clock);
  disk_guard disk(config.data_dir, config.min_free_disk);
  pipeline sink(blocking, reader, queue, analysis, events, counters, clock,
                {config.domain, config.hostname, config.catch_all, config.retention_days,
                 config.max_new_tests_per_minute, &disk});
  receiver::server smtp(io, config.smtp_listen, {config.hostname, config.limits, &in_flight}, tls,
                        sink);
  smtp.start();
  for (const auto& ep : smtp.local_endpoints()) {
    std::ostringstream where;
    where << ep;
    core::log_info("listening smtp " + where.str());
  }
  web.start();
  for (const auto& ep : web.local_endpoints()) {
    std::ostringstream where;
    where << ep;
    core::log_info("listening http " + where.str());
  }
  if (config.public_url.empty()) {
    std::ostringstream url;
    url << "http://" << web.local_endpoints().front();
    web.set_public_url(url.str());
  } else {
    web.set_public_url(config.public_url);
  }
  core::log_info("mxlens " MXLENS_VERSION " hostname=" + config.hostname +
                 " domain=" + config.domain + " data-dir=" + config.data_dir.string() +
                 (config.catch_all ? " catch-all" : "") + " certificate=" + tls.describe() +
                 " dns=" + config.dns.upstream + " workers=" + std::to_string(config.workers));

  asio::signal_set stop_signals(io, SIGINT, SIGTERM);
  asio::signal_set hup(io, SIGHUP);
  asio::steady_timer drain(io);
  std::function<void()> wait_hup = [&] {
    hup.async_wait([&](boost::system::error_code ec, int) {
      if (ec) return;
      auto err = tls.reload();
      if (err.empty()) {
        core::log_info("certificates reloaded (SIGHUP): " + tls.describe());
      } else {
        core::log_error("certificate reload failed, keeping the old ones: " + err);
      }
      wait_hup();
    });
  };
  wait_hup();
  std::chrono::steady_clock::time_point drain_until;
  std::function<void()> drain_poll = [&] {
    if ((smtp.active_sessions() == 0 && web.active_connections() == 0) ||
        std::chrono::steady_clock::now() >= drain_until) {
      io.stop();
      return;
    }
    drain.expires_after(50ms);
    drain.async_wait([&](boost::system::error_code) { drain_poll(); });
  };
  stop_signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec) return;
    core::log_info("signal " + std::to_string(sig) + ": stopping, draining sessions");
    smtp.stop();
    web.stop();
    hup.cancel();
    drain_until = std::chrono::steady_clock::now() + drain_timeout;
    drain_poll();
  });
  asio::co_spawn(io, watch_certificates(tls), asio::detached);
  asio::co_spawn(io, sink.recover(), asio::detached);
  asio::co_spawn(io, retention(queue, config.retention_days), asio::detached);
  if (config.max_store_size > 0)
    asio::co_spawn(io, size_retention(queue, config.max_store_size), asio::detached);

  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
  sink.write_session_counts();
  analysis.stop();
  blocking.join();
  // The commits still pending call back into the io_context: they finish while it exists.
  queue.drain();
  io.shutdown();  // while everything its frames use still exists
  core::log_info("stopped; " + std::to_string(queue.commits()) + " commits");
  return 0;
}

}  // namespace

std::string system_hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

int serve_command(const std::vector<std::string>& args) {
  auto options = serve_options();
  serve_config config;
  try {
    auto vm = parse(args, options);
    if (vm.count("help")) {
      std::cout << "Usage: mxlens serve [OPTIONS]\n\nRuns the SMTP receiver.\n\n"
                << options
                << "\nEach option can also be set as MXLENS_<OPTION> (e.g. MXLENS_DATA_DIR).\n";
      return 0;
    }
    config = to_config(vm);
  } catch (const usage_error& e) {
    std::cerr << "mxlens serve: " << e.what() << "\n";
    return exit_usage;
  }
  try {
    return run_server(config);
  } catch (const std::exception& e) {
    std::cerr << "mxlens serve: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace mxlens::app
