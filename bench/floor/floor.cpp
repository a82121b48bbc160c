// mxlens-floor: what each stage of a delivery costs on its own, in one process, without SMTP or
// the worker round trip: the DNS questions of an analysis, the whole analysis, its report as JSON
// (written by the worker, read by the server) and the two commits of a delivery and its report.
// It also times full TLS handshakes over loopback between mxlens's own server context and a
// default client context (the load generator's), each side on its own clock. The sum is the CPU a
// delivery cannot do without, and so the ceiling of messages per second on this machine;
// bench/run puts it beside the measured rates.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include <unistd.h>
#include <boost/json.hpp>
#include <boost/program_options.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "analyzers/analysis/analysis.hpp"
#include "certs/server_tls.hpp"
#include "core/json.hpp"
#include "core/report.hpp"
#include "core/test_id.hpp"
#include "receiver/tls_inspect.hpp"
#include "storage/sqlite_store.hpp"

namespace po = boost::program_options;
namespace json = boost::json;
using namespace mxlens;

namespace {

// CPU (every thread of the process, user and system) and wall time of `rounds` calls of `f`,
// in microseconds per call.
template <typename F>
json::object measure(int rounds, F&& f) {
  auto cpu = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    auto us = [](const timeval& t) {
      return static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_usec);
    };
    return us(u.ru_utime) + us(u.ru_stime);
  };
  const auto c0 = cpu();
  const auto w0 = std::chrono::steady_clock::now();
  for (int i = 0; i < rounds; ++i) f(i);
  const double wall =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - w0).count();
  return {{"cpu_us", (cpu() - c0) / rounds}, {"wall_us", wall / rounds}, {"rounds", rounds}};
}

double thread_cpu_us() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_nsec) / 1e3;
}

// Full handshakes (no resumption) over loopback TCP, the server and the client each on a thread
// of its own with blocking sockets: the CPU of the handshake calls on each side (the flights'
// reads and writes included; the TCP connection itself is not, smtp-sink's figure has it).
json::object handshakes(SSL_CTX* server_ctx, SSL_CTX* client_ctx, int rounds,
                        std::string& version) {
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener, 16) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error("cannot listen on loopback for the handshake stage");
  double server_us = 0;
  std::string server_error;
  std::thread server([&] {
    for (int i = 0; i < rounds; ++i) {
      int fd = ::accept(listener, nullptr, nullptr);
      if (fd < 0) {
        server_error = "accept failed";
        return;
      }
      SSL* ssl = SSL_new(server_ctx);
      SSL_set_fd(ssl, fd);
      const auto t = thread_cpu_us();
      const bool ok = SSL_accept(ssl) == 1;
      server_us += thread_cpu_us() - t;
      if (!ok && server_error.empty()) server_error = "server handshake failed";
      if (ok && i == 0) version = SSL_get_version(ssl);
      SSL_free(ssl);
      ::close(fd);
    }
  });
  double client_us = 0;
  int failures = 0;
  for (int i = 0; i < rounds; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      if (fd >= 0) ::close(fd);
      ++failures;
      break;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    SSL* ssl = SSL_new(client_ctx);
    SSL_set_fd(ssl, fd);
    const auto t = thread_cpu_us();
    if (SSL_connect(ssl) != 1) ++failures;
    client_us += thread_cpu_us() - t;
    SSL_free(ssl);
    ::close(fd);
  }
  if (failures) ::shutdown(listener, SHUT_RDWR);  // lets the server thread's accept end
  server.join();
  ::close(listener);
  if (failures || !server_error.empty())
    throw std::runtime_error("TLS handshakes over loopback failed: " + server_error);
  return {{"server_cpu_us", server_us / rounds},
          {"client_cpu_us", client_us / rounds},
          {"rounds", rounds}};
}

std::string slurp(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + file);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

int main(int argc, char** argv) try {
  po::options_description opts(
      "mxlens-floor: the cost of each stage of a delivery, in one process");
  std::string dns_server, message_file, client_ip, helo, mail_from, tls_cert, tls_key;
  int rounds = 0;
  opts.add_options()("help", "this text")("dns", po::value(&dns_server)->required(),
                                          "DNS server IP[@PORT] (the bench's)")(
      "message", po::value(&message_file)->required(), "a message as received (CRLF)")(
      "client-ip", po::value(&client_ip)->default_value("127.0.0.2"), "the sending address")(
      "helo", po::value(&helo)->default_value("mail.sender.example"), "the EHLO name")(
      "mail-from", po::value(&mail_from)->default_value("bounce@sender.example"),
      "the envelope sender")("tls-cert", po::value(&tls_cert),
                             "server certificate (PEM) for the handshake stage")(
      "tls-key", po::value(&tls_key), "its key (PEM); without the pair, no handshake stage")(
      "rounds", po::value(&rounds)->default_value(2000), "repetitions of each stage");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, opts), vm);
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return 0;
  }
  po::notify(vm);
  if (rounds < 1) throw std::runtime_error("--rounds must be at least 1");
  ::signal(SIGPIPE, SIG_IGN);  // a handshake's peer may close while the other side still writes

  analyzers::dns::settings ds;
  ds.upstream = dns_server;
  analyzers::dns::resolver resolver(ds);
  core::delivery d;
  d.test_id = "floorfloor";
  d.session_id = "s";
  d.received_at = 1'700'000'000'000;
  d.connection.client_ip = client_ip;
  d.connection.helo = helo;
  d.envelope.mail_from = mail_from;
  d.envelope.rcpt_to = {"floorfloor@mx.bench.example"};
  d.raw = slurp(message_file);
  const analyzers::analysis_input in{d, true, "mx.bench.example", false};

  json::object out;
  if (!tls_cert.empty() && !tls_key.empty()) {
    certs::server_tls server({{tls_cert, tls_key}}, receiver::install_client_hello_capture);
    std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> client(SSL_CTX_new(TLS_client_method()),
                                                             SSL_CTX_free);
    SSL_CTX_set_verify(client.get(), SSL_VERIFY_NONE, nullptr);
    std::string version;
    auto h = handshakes(server.context().get(), client.get(), std::max(1, rounds / 4), version);
    h["version"] = version;
    out["tls_handshake"] = h;
  }
  // The questions one analysis asks, asked again one by one.
  const auto first = analyzers::analyze(in, resolver);
  std::vector<std::pair<std::string, analyzers::dns::rr_type>> questions;
  for (const auto& q : first.dns) {
    const auto& o = q.as_object();
    const std::string type(o.at("type").as_string());
    auto t = type == "PTR"    ? analyzers::dns::rr_type::ptr
             : type == "A"    ? analyzers::dns::rr_type::a
             : type == "AAAA" ? analyzers::dns::rr_type::aaaa
             : type == "MX"   ? analyzers::dns::rr_type::mx
                              : analyzers::dns::rr_type::txt;
    questions.emplace_back(std::string(o.at("name").as_string()), t);
  }
  auto dns = measure(rounds, [&](int i) {
    const auto& [name, type] = questions[static_cast<std::size_t>(i) % questions.size()];
    resolver.query(name, type);
  });
  dns["questions_per_message"] = questions.size();
  out["dns_question"] = dns;
  out["analysis"] = measure(rounds, [&](int) { analyzers::analyze(in, resolver); });

  const core::disposition disposition{250, "2.0.0", "Ok", "accept", std::nullopt};
  const auto text = core::with_disposition(json::serialize(core::to_json(first)), disposition);
  out["report_bytes"] = text.size();
  out["report_serialize"] = measure(rounds, [&](int) {
    (void)core::with_disposition(json::serialize(core::to_json(first)), disposition);
  });
  out["report_parse"] = measure(rounds, [&](int) { (void)json::parse(text); });

  // The hand-over to an analysis worker: the job (its JSON header and the raw message) over a
  // socket pair to another thread, the summary and the report back, in length-prefixed frames as
  // the worker protocol has them. Both threads count.
  {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0)
      throw std::runtime_error("socketpair failed");
    auto write_frame = [](int fd, const std::string& f) {
      const std::uint32_t n = htonl(static_cast<std::uint32_t>(f.size()));
      return ::write(fd, &n, 4) == 4 &&
             ::write(fd, f.data(), f.size()) == static_cast<ssize_t>(f.size());
    };
    auto read_frame = [](int fd, std::string& f) {
      std::uint32_t n = 0;
      if (::recv(fd, &n, 4, MSG_WAITALL) != 4) return false;
      f.resize(ntohl(n));
      return f.empty() ||
             ::recv(fd, f.data(), f.size(), MSG_WAITALL) == static_cast<ssize_t>(f.size());
    };
    const auto summary = json::serialize(core::to_json(analyzers::summary_of(first)));
    std::thread worker([&] {
      std::string header, raw;
      while (read_frame(fds[1], header) && read_frame(fds[1], raw))
        if (!write_frame(fds[1], summary) || !write_frame(fds[1], text)) break;
    });
    out["worker_handoff"] = measure(rounds, [&](int) {
      std::string got_summary, got_report;
      if (!write_frame(fds[0], json::serialize(core::to_json(in))) ||
          !write_frame(fds[0], in.delivery.raw) || !read_frame(fds[0], got_summary) ||
          !read_frame(fds[0], got_report))
        throw std::runtime_error("worker hand-over failed");
      (void)core::from_json<core::analysis_summary>(json::parse(got_summary));
    });
    ::shutdown(fds[0], SHUT_RDWR);
    worker.join();
    ::close(fds[0]);
    ::close(fds[1]);
  }

  // A message with its report in one commit (as the delivery pipeline stores it when one message
  // is in flight), and sixteen of them per commit (as under load); each with the record of its
  // session, as when every message comes on a connection of its own.
  const auto dir =
      std::filesystem::temp_directory_path() / ("mxlens-floor-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    storage::sqlite_store store(dir / "floor.db");
    store.create_test(
        {d.test_id, "floorfloor@mx.bench.example", 0, INT64_MAX / 2, "", "accept", false, {}});
    const auto summary = analyzers::summary_of(first);
    const auto analysis_text = json::serialize(core::to_json(first));
    core::session_record session;
    session.connection = d.connection;
    session.messages = 1;
    session.outcome = "quit";
    for (const char* l :
         {"220 mx.bench.example ESMTP mxlens", "EHLO mail.sender.example", "250-mx.bench.example",
          "MAIL FROM:<bounce@sender.example>", "250 2.1.0 Ok",
          "RCPT TO:<floorfloor@mx.bench.example>", "250 2.1.5 Ok", "DATA",
          "354 End data with <CR><LF>.<CR><LF>", "250 2.0.0 Ok", "QUIT", "221 2.0.0 Bye"})
      session.transcript.push_back({1.0, core::direction::client, l});
    for (int group : {1, 16}) {
      auto m = measure(std::max(1, rounds / group), [&](int) {
        storage::batch b;
        for (int k = 0; k < group; ++k) {
          storage::message_delivery message;
          message.delivery = d;
          message.test_ids = {d.test_id};
          message.compose = [&](const std::vector<std::int64_t>&) {
            return storage::composed_report{core::with_disposition(analysis_text, disposition),
                                            core::line_of(d, summary, disposition)};
          };
          b.messages.push_back(std::move(message));
          session.id = core::random_id();
          b.sessions.push_back(session);
        }
        store.commit(b);
      });
      m["cpu_us"] = m["cpu_us"].as_double() / group;
      m["wall_us"] = m["wall_us"].as_double() / group;
      out["store_per_message_in_commits_of_" + std::to_string(group)] = m;
    }
  }
  std::filesystem::remove_all(dir);
  std::cout << json::serialize(out) << "\n";
  return 0;
} catch (const std::exception& e) {
  std::cerr << "mxlens-floor: " << e.what() << "\n";
  return 2;
}
