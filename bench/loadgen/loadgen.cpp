// mxlens-loadgen: an SMTP load generator. N concurrent clients, M messages per connection,
// plaintext or STARTTLS (a TLS version may be forced), generated messages of a given size or a
// corpus of .eml files (DKIM-signed ones, say), source addresses spread over 127.0.0.x.
// It prints messages/s, the latency from the final dot to the reply (p50, p90, p99) and errors.
// With --rate it paces the transactions (open loop: transaction i starts at i/rate seconds), for
// the latency at a given load rather than at saturation.
// Against mxlens that latency is also the report-ready latency: its 250 comes after the report
// is stored.
#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace po = boost::program_options;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

namespace {

struct settings {
  tcp::endpoint server;
  std::string to, from = "loadgen@sender.example", helo = "loadgen.example";
  int connections = 1;
  int per_connection = 1;
  long total = 100;
  bool starttls = false;
  std::string tls_version;  // "", "1.2", "1.3"
  int sources = 1;          // 127.0.0.2 ... 127.0.0.(1+sources)
  std::vector<std::string> messages;
  double rate = 0;  // transactions per second; 0: as fast as the server answers
  clock_type::time_point start;
  std::atomic<long>* next_slot = nullptr;
};

struct stats {
  std::mutex mutex;
  std::vector<double> latencies_ms;
  long delivered = 0;
  long errors = 0;
  std::vector<std::string> first_errors;
  void error(const std::string& what) {
    std::lock_guard lock(mutex);
    ++errors;
    if (first_errors.size() < 5) first_errors.push_back(what);
  }
};

// RFC 5321 §4.5.2: a line starting with "." gets another.
std::string dot_stuffed(const std::string& crlf_text) {
  std::string out;
  out.reserve(crlf_text.size() + 16);
  bool line_start = true;
  for (char c : crlf_text) {
    if (line_start && c == '.') out += '.';
    out += c;
    line_start = c == '\n';
  }
  if (out.size() < 2 || out.compare(out.size() - 2, 2, "\r\n") != 0) out += "\r\n";
  return out;
}

std::string to_crlf(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) out += '\r';
    out += text[i];
  }
  return out;
}

std::string generated(std::size_t size, const settings& s) {
  std::string head =
      "From: <" + s.from + ">\r\nTo: <" + s.to +
      ">\r\nSubject: load\r\n"
      "Date: Mon, 23 Nov 2026 00:00:00 +0000\r\nMessage-ID: <load@loadgen.example>\r\n\r\n";
  std::string body;
  const std::string line = std::string(74, 'x') + "\r\n";
  while (head.size() + body.size() + line.size() <=
         std::max<std::size_t>(size, head.size() + line.size()))
    body += line;
  return head + body;
}

// One SMTP reply (multi-line replies included); its code, or 0 on a malformed reply.
template <class Stream>
asio::awaitable<int> read_reply(Stream& s, std::string& buf) {
  for (;;) {
    std::size_t n =
        co_await asio::async_read_until(s, asio::dynamic_buffer(buf), "\r\n", asio::use_awaitable);
    std::string line = buf.substr(0, n);
    buf.erase(0, n);
    if (line.size() < 4) co_return 0;
    if (line[3] == ' ' || line[3] == '\r') co_return std::atoi(line.substr(0, 3).c_str());
  }
}

template <class Stream>
asio::awaitable<int> command(Stream& s, std::string& buf, const std::string& line) {
  co_await asio::async_write(s, asio::buffer(line), asio::use_awaitable);
  co_return co_await read_reply(s, buf);
}

template <class Stream>
asio::awaitable<void> transactions(Stream& s, std::string& buf, const settings& cfg, stats& st,
                                   int count, std::size_t& pick) {
  for (int i = 0; i < count; ++i) {
    const std::string& msg = cfg.messages[pick++ % cfg.messages.size()];
    if (cfg.rate > 0) {
      const long slot = cfg.next_slot->fetch_add(1);
      const auto at =
          cfg.start + std::chrono::duration_cast<clock_type::duration>(
                          std::chrono::duration<double>(static_cast<double>(slot) / cfg.rate));
      if (at > clock_type::now()) {
        asio::steady_timer wait(co_await asio::this_coro::executor, at);
        co_await wait.async_wait(asio::use_awaitable);
      }
    }
    if (co_await command(s, buf, "MAIL FROM:<" + cfg.from + ">\r\n") != 250)
      throw std::runtime_error("MAIL refused");
    if (co_await command(s, buf, "RCPT TO:<" + cfg.to + ">\r\n") != 250)
      throw std::runtime_error("RCPT refused");
    if (co_await command(s, buf, "DATA\r\n") != 354) throw std::runtime_error("DATA refused");
    co_await asio::async_write(s, asio::buffer(msg), asio::use_awaitable);
    co_await asio::async_write(s, asio::buffer(std::string(".\r\n")), asio::use_awaitable);
    const auto dot = clock_type::now();
    const int code = co_await read_reply(s, buf);
    const double ms = std::chrono::duration<double, std::milli>(clock_type::now() - dot).count();
    if (code != 250) throw std::runtime_error("end of data answered " + std::to_string(code));
    std::lock_guard lock(st.mutex);
    ++st.delivered;
    st.latencies_ms.push_back(ms);
  }
}

asio::awaitable<void> client(const settings& cfg, ssl::context& tls, stats& st,
                             std::atomic<long>& left, int index) {
  auto ex = co_await asio::this_coro::executor;
  std::size_t pick = static_cast<std::size_t>(index);
  int source = index % cfg.sources;
  for (;;) {
    long want = cfg.per_connection;
    long before = left.fetch_sub(want);
    if (before <= 0) co_return;
    const int count = static_cast<int>(std::min(want, before));
    try {
      tcp::socket sock(ex);
      sock.open(tcp::v4());
      sock.bind(
          tcp::endpoint(asio::ip::make_address_v4("127.0.0." + std::to_string(2 + source)), 0));
      source = (source + 1) % cfg.sources;
      co_await sock.async_connect(cfg.server, asio::use_awaitable);
      sock.set_option(tcp::no_delay(true));
      std::string buf;
      if (co_await read_reply(sock, buf) != 220) throw std::runtime_error("no greeting");
      if (co_await command(sock, buf, "EHLO " + cfg.helo + "\r\n") != 250)
        throw std::runtime_error("EHLO refused");
      if (cfg.starttls) {
        if (co_await command(sock, buf, "STARTTLS\r\n") != 220)
          throw std::runtime_error("STARTTLS refused");
        ssl::stream<tcp::socket&> stream(sock, tls);
        co_await stream.async_handshake(ssl::stream_base::client, asio::use_awaitable);
        buf.clear();
        if (co_await command(stream, buf, "EHLO " + cfg.helo + "\r\n") != 250)
          throw std::runtime_error("EHLO refused");
        co_await transactions(stream, buf, cfg, st, count, pick);
        co_await command(stream, buf, "QUIT\r\n");
      } else {
        co_await transactions(sock, buf, cfg, st, count, pick);
        co_await command(sock, buf, "QUIT\r\n");
      }
    } catch (const std::exception& e) {
      st.error(e.what());
    }
  }
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  auto k = static_cast<std::size_t>(std::llround(p * static_cast<double>(v.size() - 1)));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

int run(int argc, char** argv) {
  settings cfg;
  po::options_description o("mxlens-loadgen options");
  std::string server = "127.0.0.1:2525", corpus;
  std::size_t size = 2048;
  bool as_json = false;
  // clang-format off
  o.add_options()
    ("help,h", "show this help")
    ("server", po::value(&server)->default_value(server), "SMTP server ADDR:PORT")
    ("to", po::value(&cfg.to)->required(), "recipient address")
    ("from", po::value(&cfg.from)->default_value(cfg.from), "MAIL FROM address")
    ("helo", po::value(&cfg.helo)->default_value(cfg.helo), "EHLO name")
    ("connections", po::value(&cfg.connections)->default_value(1), "concurrent clients")
    ("messages-per-connection", po::value(&cfg.per_connection)->default_value(1), "messages sent on one connection")
    ("total", po::value(&cfg.total)->default_value(100), "messages in all")
    ("starttls", po::bool_switch(&cfg.starttls), "use STARTTLS")
    ("tls-version", po::value(&cfg.tls_version), "force TLS 1.2 or 1.3")
    ("size", po::value(&size)->default_value(size), "octets of each generated message")
    ("corpus", po::value(&corpus), "a folder of .eml files to send instead (round robin)")
    ("sources", po::value(&cfg.sources)->default_value(1), "source addresses 127.0.0.2 and up")
    ("rate", po::value(&cfg.rate)->default_value(0), "transactions per second, paced (0: unpaced)")
    ("json", po::bool_switch(&as_json), "print the result as JSON");
  // clang-format on
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, o), vm);
    if (vm.count("help")) {
      std::cout << o;
      return 0;
    }
    po::notify(vm);
    auto colon = server.rfind(':');
    cfg.server = tcp::endpoint(asio::ip::make_address(server.substr(0, colon)),
                               static_cast<unsigned short>(std::stoi(server.substr(colon + 1))));
    if (cfg.connections < 1 || cfg.per_connection < 1 || cfg.total < 1 || cfg.sources < 1 ||
        cfg.sources > 250)
      throw std::invalid_argument("counts must be at least 1 (sources at most 250)");
    if (cfg.rate < 0) throw std::invalid_argument("--rate must not be negative");
    if (!cfg.tls_version.empty() && cfg.tls_version != "1.2" && cfg.tls_version != "1.3")
      throw std::invalid_argument("--tls-version must be 1.2 or 1.3");
  } catch (const std::exception& e) {
    std::cerr << "mxlens-loadgen: " << e.what() << "\n";
    return 2;
  }
  if (!corpus.empty()) {
    for (const auto& entry : std::filesystem::directory_iterator(corpus)) {
      if (entry.path().extension() != ".eml") continue;
      std::ifstream in(entry.path(), std::ios::binary);
      std::stringstream text;
      text << in.rdbuf();
      cfg.messages.push_back(dot_stuffed(to_crlf(text.str())));
    }
    if (cfg.messages.empty()) {
      std::cerr << "mxlens-loadgen: no .eml files in " << corpus << "\n";
      return 2;
    }
  } else {
    cfg.messages.push_back(dot_stuffed(generated(size, cfg)));
  }

  ssl::context tls(ssl::context::tls_client);
  tls.set_verify_mode(ssl::verify_none);
  if (cfg.tls_version == "1.2") {
    SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(tls.native_handle(), TLS1_2_VERSION);
  } else if (cfg.tls_version == "1.3") {
    SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_3_VERSION);
  }

  asio::io_context io;
  stats st;
  std::atomic<long> left{cfg.total};
  std::atomic<long> next_slot{0};
  cfg.next_slot = &next_slot;
  const auto start = clock_type::now();
  cfg.start = start;
  for (int i = 0; i < cfg.connections; ++i)
    asio::co_spawn(asio::make_strand(io), client(cfg, tls, st, left, i), asio::detached);
  std::vector<std::thread> threads;
  const unsigned n = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 1; i < n; ++i) threads.emplace_back([&] { io.run(); });
  io.run();
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();

  auto& l = st.latencies_ms;
  const double rate = seconds > 0 ? static_cast<double>(st.delivered) / seconds : 0;
  const double p50 = percentile(l, 0.50), p90 = percentile(l, 0.90), p99 = percentile(l, 0.99);
  if (as_json) {
    std::cout << "{\"messages\":" << st.delivered << ",\"errors\":" << st.errors
              << ",\"seconds\":" << seconds << ",\"rate\":" << rate
              << ",\"latency_ms\":{\"p50\":" << p50 << ",\"p90\":" << p90 << ",\"p99\":" << p99
              << "}}\n";
  } else {
    std::cout << st.delivered << " messages in " << seconds << " s: " << rate
              << " msg/s; final dot to reply p50 " << p50 << " ms, p90 " << p90 << " ms, p99 "
              << p99 << " ms; " << st.errors << " errors\n";
  }
  for (const auto& e : st.first_errors) std::cerr << "error: " << e << "\n";
  return st.errors == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "mxlens-loadgen: " << e.what() << "\n";
    return 2;
  }
}
