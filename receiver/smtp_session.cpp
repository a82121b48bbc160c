#include "receiver/smtp_session.hpp"

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <charconv>

#include "core/log.hpp"
#include "core/test_id.hpp"
#include "core/text.hpp"
#include "receiver/command.hpp"
#include "receiver/data_reader.hpp"
#include "receiver/tls_inspect.hpp"

namespace mxlens::receiver {

namespace asio = boost::asio;
using namespace std::chrono_literals;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

namespace {

// Octets read at once while waiting for a command, and while reading DATA.
constexpr std::size_t command_chunk = 4096;
constexpr std::size_t data_chunk = std::size_t{64} * 1024;
// Time left to say 421 once a deadline has passed or shutdown began.
constexpr auto goodbye_grace = 5s;
// How long to wait for the client's close_notify after ours.
constexpr auto tls_close_grace = 1s;
// How long what a client still sends is read and discarded once a limit closed its session.
constexpr auto linger_time = 2s;
// How long the rest of a ClientHello sent where SMTP was expected may take to arrive.
constexpr auto implicit_hello_wait = 2s;
// RFC 5321 §4.1.1.1: a domain is at most 255 octets; what is kept of an EHLO argument.
constexpr std::size_t max_helo_kept = 255;
// Too many messages are being received at once (receiver/byte_budget.hpp): RFC 5321 §4.2.2's
// "insufficient system storage", RFC 3463's "mail system full". The sender tries again later.
const reply no_room{452, "4.3.1",
                    "Insufficient system storage: too much mail is arriving at once, try again "
                    "later"};

std::string_view state_name(smtp_state s) {
  switch (s) {
    case smtp_state::fresh: return "fresh";
    case smtp_state::greeted: return "greeted";
    case smtp_state::mail: return "mail";
    case smtp_state::rcpt: return "rcpt";
  }
  return "?";
}

bool has_control_chars(std::string_view s) {
  for (unsigned char c : s)
    if ((c < 0x20 && c != '\t') || c == 0x7f) return true;
  return false;
}

}  // namespace

// The command table. Flags carry the RFC rules (see the enum in the header for the sections).
const smtp_session::command_spec smtp_session::commands[] = {
    {"EHLO", needs_args | last_in_group, &smtp_session::cmd_ehlo},
    {"HELO", needs_args | last_in_group, &smtp_session::cmd_helo},
    {"MAIL", needs_helo | no_mail, &smtp_session::cmd_mail},
    {"RCPT", needs_mail, &smtp_session::cmd_rcpt},
    {"DATA", needs_rcpt | no_args | last_in_group, &smtp_session::cmd_data},
    {"RSET", no_args | junk, &smtp_session::cmd_rset},
    {"NOOP", last_in_group | junk, &smtp_session::cmd_noop},
    {"QUIT", no_args | last_in_group, &smtp_session::cmd_quit},
    {"VRFY", needs_args | last_in_group | junk, &smtp_session::cmd_vrfy},
    {"HELP", junk, &smtp_session::cmd_help},
    {"STARTTLS", no_args | last_in_group | not_in_tls | no_transaction,
     &smtp_session::cmd_starttls},
    // Known verbs this receiver does not offer (RFC 5321 §4.2.4: 502).
    {"EXPN", last_in_group, &smtp_session::cmd_not_implemented},
    {"AUTH", 0, &smtp_session::cmd_not_implemented},
    {"BDAT", 0, &smtp_session::cmd_not_implemented},
    {"ETRN", 0, &smtp_session::cmd_not_implemented},
    {"TURN", last_in_group, &smtp_session::cmd_not_implemented},
    {"ATRN", 0, &smtp_session::cmd_not_implemented},
};

smtp_session::smtp_session(tcp::socket socket, const session_config& config, certs::server_tls& tls,
                           delivery_sink& sink)
    : socket_(std::move(socket)),
      config_(config),
      tls_config_(tls),
      sink_(sink),
      timer_(socket_.get_executor()) {}

smtp_session::~smtp_session() = default;

double smtp_session::elapsed_ms() const {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_)
      .count();
}

void smtp_session::arm(std::chrono::milliseconds timeout) {
  deadline_ = std::min(std::chrono::steady_clock::now() + timeout, session_deadline_);
  // A shorter deadline than the one the watchdog sleeps on wakes it to sleep on this one.
  if (deadline_ < timer_.expiry()) timer_.cancel();
}

bool smtp_session::stressed() const {
  return config_.under_stress && config_.under_stress->load(std::memory_order_relaxed);
}

std::chrono::milliseconds smtp_session::idle_timeout() const {
  const std::chrono::milliseconds normal = config_.limits.idle_timeout;
  return stressed() ? std::min<std::chrono::milliseconds>(normal, stress_idle_timeout) : normal;
}

std::size_t smtp_session::max_junk_commands() const {
  const auto normal = config_.limits.max_junk_commands;
  return stressed() ? std::min(normal, stress_max_junk_commands) : normal;
}

std::size_t smtp_session::max_errors() const {
  const auto normal = config_.limits.max_errors;
  return stressed() ? std::min(normal, stress_max_errors) : normal;
}

void smtp_session::shutdown() {
  stopping_ = true;
  boost::system::error_code ec;
  socket_.cancel(ec);
}

void smtp_session::note(core::direction dir, std::string_view line) {
  transcript_.add(elapsed_ms(), dir, line);
}

void smtp_session::send(const reply& r) {
  if (r.code >= 500) ++errors_;
  auto wire = r.wire();
  std::string_view rest = wire;
  while (!rest.empty()) {
    auto end = rest.find("\r\n");
    note(core::direction::server, rest.substr(0, end));
    rest.remove_prefix(end + 2);
  }
  out_ += wire;
  if (r.close) closing_ = true;
  if (!closing_ && errors_ >= max_errors()) {
    record_.outcome = "limit";
    reply bye{421, "4.7.0", config_.hostname + " Too many errors, closing connection", true};
    send(bye);
  }
}

void smtp_session::transition(smtp_state next) {
  if (next == state_) return;
  if (core::log_enabled(core::log_level::debug)) {
    core::log_debug("session " + record_.id + " " + std::string(state_name(state_)) + " -> " +
                    std::string(state_name(next)));
  }
  state_ = next;
}

void smtp_session::reset_transaction() {
  tx_ = transaction{};
  transcript_.end_transaction();
  if (state_ == smtp_state::mail || state_ == smtp_state::rcpt) transition(smtp_state::greeted);
}

asio::awaitable<void> smtp_session::run() {
  auto self = shared_from_this();
  started_ = std::chrono::steady_clock::now();
  session_deadline_ = started_ + config_.limits.max_session_time;
  arm(idle_timeout());

  boost::system::error_code ec;
  auto remote = socket_.remote_endpoint(ec);
  auto local = socket_.local_endpoint(ec);
  record_.id = core::random_id();
  auto& conn = record_.connection;
  auto remote_addr = remote.address();
  if (remote_addr.is_v6() && remote_addr.to_v6().is_v4_mapped())
    remote_addr = asio::ip::make_address_v4(asio::ip::v4_mapped, remote_addr.to_v6());
  conn.client_ip = remote_addr.to_string();
  conn.client_port = remote.port();
  conn.local_ip = local.address().to_string();
  conn.local_port = local.port();
  conn.ipv6 = remote_addr.is_v6();
  conn.started_at = core::now_ms();

  asio::co_spawn(socket_.get_executor(), watchdog(), asio::detached);
  try {
    co_await dialogue();
  } catch (const std::exception& e) {
    record_.outcome = "error";
    core::log_error("session " + record_.id + " failed: " + e.what());
  }
  finished_ = true;
  timer_.cancel();
  if (record_.tls.used && !spoke_inside_tls_ &&
      (record_.outcome == "quit" || record_.outcome == "dropped")) {
    // Told before the socket closes, so that the client's next connection knows of it. A client
    // that refuses the certificate often completes the handshake and then quits or
    // drops without a word (OpenSSL clients, Postfix with smtp_tls_security_level = verify).
    record_failure("completed TLS, then " +
                       std::string(record_.outcome == "quit" ? "quit" : "closed the connection") +
                       " without MAIL: the client probably rejected the certificate",
                   core::failure_class::certificate_rejected, record_.tls.client_hello);
  }
  socket_.close(ec);

  record_.transcript = transcript_.take_session(elapsed_ms());
  record_.ended_at = core::now_ms();
  core::log_info("session " + record_.id + " " + conn.client_ip + ":" +
                 std::to_string(conn.client_port) +
                 " helo=" + (conn.helo.empty() ? "-" : conn.helo) +
                 " tls=" + record_.tls.version.value_or("none") +
                 " messages=" + std::to_string(record_.messages) + " outcome=" + record_.outcome +
                 " duration=" + std::to_string(record_.ended_at - conn.started_at) + "ms");
  sink_.session_closed(std::move(record_));
}

void smtp_session::record_failure(std::string reason, core::failure_class kind,
                                  std::optional<core::client_hello> hello) {
  core::failed_handshake f;
  f.at = core::now_ms();
  f.client_ip = record_.connection.client_ip;
  f.reason = std::move(reason);
  f.client_hello = std::move(hello);
  f.kind = kind;
  f.session = record_.id;
  sink_.handshake_failed(f);
  record_.tls.failed_handshakes.push_back(std::move(f));
}

asio::awaitable<void> smtp_session::watchdog() {
  auto self = shared_from_this();
  while (!finished_) {
    timer_.expires_at(deadline_);
    co_await timer_.async_wait(tuple_awaitable);
    if (finished_) break;
    if (std::chrono::steady_clock::now() < deadline_) continue;  // re-armed meanwhile
    boost::system::error_code ignored;
    if (!timed_out_) {
      // Interrupt the pending read or write; the dialogue then says 421 within the grace time.
      timed_out_ = true;
      deadline_ = std::chrono::steady_clock::now() + goodbye_grace;
      session_deadline_ = deadline_;
      socket_.cancel(ignored);
    } else {
      socket_.close(ignored);
      break;
    }
  }
}

asio::awaitable<bool> smtp_session::flush() {
  if (out_.empty()) co_return true;
  std::string data;
  data.swap(out_);
  auto buffer = asio::buffer(data);
  if (!timed_out_) arm(idle_timeout());
  if (tls_) {
    auto [ec, n] = co_await asio::async_write(*tls_, buffer, tuple_awaitable);
    co_return !ec;
  }
  auto [ec, n] = co_await asio::async_write(socket_, buffer, tuple_awaitable);
  co_return !ec;
}

asio::awaitable<smtp_session::read_status> smtp_session::read_more(
    std::size_t chunk, std::chrono::milliseconds timeout) {
  if (stopping_) co_return read_status::shutdown;
  if (timed_out_) co_return read_status::timeout;
  arm(timeout.count() > 0 ? timeout : idle_timeout());
  const auto old = in_.size();
  in_.resize(old + chunk);
  auto buffer = asio::buffer(in_.data() + old, chunk);
  boost::system::error_code ec;
  std::size_t n = 0;
  if (tls_) {
    std::tie(ec, n) = co_await tls_->async_read_some(buffer, tuple_awaitable);
  } else {
    std::tie(ec, n) = co_await socket_.async_read_some(buffer, tuple_awaitable);
  }
  in_.resize(old + n);
  if (!ec) co_return read_status::ok;
  if (timed_out_) co_return read_status::timeout;
  if (stopping_) co_return read_status::shutdown;
  if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated ||
      ec == asio::error::connection_reset)
    co_return read_status::eof;
  co_return read_status::error;
}

asio::awaitable<smtp_session::read_status> smtp_session::read_line(std::string& line,
                                                                   bool& too_long) {
  too_long = false;
  const std::size_t max = config_.limits.max_command_line;
  // The whole line must come within the idle timeout: a client that sends it an octet at a time
  // does not hold its slot for longer (RFC 5321 §4.5.3.2.7 times the wait for a command).
  const auto until = std::chrono::steady_clock::now() + idle_timeout();
  for (;;) {
    auto lf = in_.find('\n');
    if (lf != std::string::npos) {
      // A line ends at LF; a CR before it is dropped. Command lines are forgiven a bare LF,
      // message data never is (see data_reader).
      if (too_long || lf > max) {
        too_long = true;
        line.clear();
      } else {
        line.assign(in_, 0, lf);
        if (!line.empty() && line.back() == '\r') line.pop_back();
      }
      in_.erase(0, lf + 1);
      co_return read_status::ok;
    }
    if (in_.size() > max) {
      // Over the limit: discard what came and keep reading until the line ends.
      too_long = true;
      in_.clear();
    }
    if (!co_await flush()) co_return read_status::error;
    auto status = co_await read_before(command_chunk, until);
    if (status != read_status::ok) co_return status;
    // A TLS handshake record (RFC 8446 §5.1: type 22, legacy version 3.x) is no command: a client
    // that began TLS at once, as on port 465 (RFC 8314 §3.3).
    if (!tls_ && in_.size() >= 3 && static_cast<unsigned char>(in_[0]) == 0x16 &&
        static_cast<unsigned char>(in_[1]) == 0x03 && static_cast<unsigned char>(in_[2]) <= 0x04)
      co_return read_status::tls_record;
  }
}

asio::awaitable<smtp_session::read_status> smtp_session::read_before(
    std::size_t chunk, std::chrono::steady_clock::time_point until) {
  const auto left =
      std::chrono::ceil<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
  if (left.count() <= 0) co_return read_status::timeout;
  auto status = co_await read_more(chunk, left);
  co_return status;
}

asio::awaitable<std::optional<core::client_hello>> smtp_session::read_implicit_client_hello() {
  // RFC 8446 §5.1: a 5-octet header whose last two octets are the length, at most 2^14.
  constexpr std::size_t header = 5;
  constexpr std::size_t max_record = header + 16384;
  auto need = [&] {
    if (in_.size() < header) return header;
    return header + ((static_cast<std::size_t>(static_cast<unsigned char>(in_[3])) << 8) |
                     static_cast<unsigned char>(in_[4]));
  };
  // A client speaking TLS sent its whole ClientHello at once: waiting for the rest is short, in
  // all, however it trickles in.
  const auto until = std::chrono::steady_clock::now() + implicit_hello_wait;
  while (in_.size() < std::min(need(), max_record)) {
    auto status = co_await read_before(std::min(need(), max_record) - in_.size(), until);
    if (status != read_status::ok) break;
  }
  if (in_.size() < header) co_return std::nullopt;
  co_return read_client_hello(tls_config_.context().get(),
                              std::string_view(in_).substr(0, std::min(need(), in_.size())));
}

std::optional<reply> smtp_session::check(const command_spec& spec, const std::string& args) const {
  const unsigned f = spec.flags;
  if ((f & no_args) && !args.empty())
    return reply{501, "5.5.4", "Syntax error: " + std::string(spec.verb) + " takes no parameters"};
  if ((f & needs_args) && args.empty())
    return reply{501, "5.5.4", "Syntax error: " + std::string(spec.verb) + " needs an argument"};
  if ((f & not_in_tls) && tls_) return reply{503, "5.5.1", "TLS is already active"};
  if ((f & no_transaction) && (state_ == smtp_state::mail || state_ == smtp_state::rcpt))
    return reply{503, "5.5.1", "Mail transaction in progress"};
  if ((f & needs_helo) && state_ == smtp_state::fresh)
    return reply{503, "5.5.1", "Send EHLO or HELO first"};
  if ((f & no_mail) && (state_ == smtp_state::mail || state_ == smtp_state::rcpt))
    return reply{503, "5.5.1", "Sender already specified"};
  if ((f & needs_mail) && state_ != smtp_state::mail && state_ != smtp_state::rcpt)
    return reply{503, "5.5.1", "Send MAIL first"};
  if ((f & needs_rcpt) && state_ != smtp_state::rcpt) {
    if (state_ == smtp_state::mail) return reply{554, "5.5.1", "No valid recipients"};
    return reply{503, "5.5.1", "Send MAIL and RCPT first"};
  }
  return std::nullopt;
}

asio::awaitable<void> smtp_session::dialogue() {
  // A client that speaks before the greeting is an early talker (graded later).
  boost::system::error_code ec;
  if (const auto pause = config_.limits.greet_pause; pause.count() > 0) {
    asio::steady_timer wait(socket_.get_executor(), pause);
    [[maybe_unused]] auto [ignored] = co_await wait.async_wait(tuple_awaitable);
    record_.connection.greet_pause_ms = static_cast<std::uint32_t>(pause.count());
    if (socket_.available(ec) > 0) record_.connection.early_talker = true;
  }
  send(reply{220, "", config_.hostname + " ESMTP mxlens"});

  std::string line;
  bool too_long = false;
  while (!closing_) {
    auto status = co_await read_line(line, too_long);
    if (status != read_status::ok) {
      switch (status) {
        case read_status::timeout:
          record_.outcome = "timeout";
          send(reply{421, "4.4.2", config_.hostname + " Timeout, closing connection", true});
          break;
        case read_status::shutdown:
          record_.outcome = "shutdown";
          send(reply{421, "4.3.2", config_.hostname + " Service shutting down", true});
          break;
        case read_status::tls_record: {
          auto offer = co_await read_implicit_client_hello();
          note(core::direction::tls, "a TLS record of " + std::to_string(in_.size()) +
                                         " octets where a command was expected (not kept)");
          record_failure(
              "a TLS ClientHello where SMTP was expected: the client began TLS at once "
              "(implicit TLS, as on port 465) on a port that offers STARTTLS",
              core::failure_class::implicit_tls, std::move(offer));
          record_.outcome = "implicit_tls";
          in_.clear();
          send(reply{554, "5.5.1",
                     config_.hostname +
                         " This port speaks SMTP and offers STARTTLS (RFC 3207), not implicit TLS",
                     true});
          break;
        }
        default:
          if (record_.outcome.empty()) record_.outcome = "dropped";
          break;
      }
      break;
    }
    if (too_long) {
      note(core::direction::client, "(command line over " +
                                        std::to_string(config_.limits.max_command_line) +
                                        " octets, discarded)");
      send(reply{500, "5.5.2", "Line too long"});
      continue;
    }
    note(core::direction::client, line);
    if (has_control_chars(line)) {
      send(reply{500, "5.5.2", "Syntax error: control characters in command"});
      continue;
    }
    auto cmd = split_command(line);
    if (tls_ && cmd.verb != "QUIT") spoke_inside_tls_ = true;
    const command_spec* spec = nullptr;
    for (const auto& c : commands)
      if (c.verb == cmd.verb) spec = &c;
    if (!spec) {
      send(reply{500, "5.5.1", "Command unrecognized"});
      continue;
    }
    if ((spec->flags & junk) && ++junk_commands_ > max_junk_commands()) {
      record_.outcome = "limit";
      send(reply{421, "4.7.0",
                 config_.hostname +
                     " Too many commands (NOOP, RSET, HELP, VRFY) without a message, closing "
                     "connection",
                 true});
      continue;
    }
    if (auto err = check(*spec, cmd.args)) {
      send(*err);
      continue;
    }
    // RFC 2920 §3.1: after a command that must end a group, the client waits for the reply;
    // without PIPELINING it waits after every command.
    bool sent_ahead = !in_.empty() && (!record_.connection.esmtp || (spec->flags & last_in_group));
    if (sent_ahead && cmd.verb != "QUIT" && cmd.verb != "STARTTLS")
      record_.connection.early_talker = true;
    co_await (this->*spec->proceed)(cmd.args);
  }
  co_await flush();
  if (tls_ && !timed_out_) {
    // Send close_notify (RFC 8446 §6.1). Many clients just close the connection instead of
    // answering, so the wait for theirs is short; the watchdog ends it.
    arm(tls_close_grace);
    co_await tls_->async_shutdown(tuple_awaitable);
  } else if (record_.outcome == "limit" && !timed_out_ && !stopping_) {
    co_await linger();
  }
}

asio::awaitable<void> smtp_session::linger() {
  // A client still sending when the socket closes gets a reset, which may destroy the replies
  // it has not read yet, the 421 that says why among them. So the end is said with a FIN, and
  // what still comes is read and discarded for a while (Apache's lingering close).
  boost::system::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  if (ec) co_return;
  const auto until = std::chrono::steady_clock::now() + linger_time;
  for (;;) {
    in_.clear();
    auto status = co_await read_before(data_chunk, until);
    if (status != read_status::ok) break;
  }
  in_.clear();
}

asio::awaitable<void> smtp_session::cmd_ehlo(const std::string& args) {
  reset_transaction();
  record_.connection.helo = args.substr(0, max_helo_kept);
  record_.connection.esmtp = true;
  transition(smtp_state::greeted);
  // RFC 2034 §3: no enhanced status codes in the EHLO reply.
  reply r;
  r.code = 250;
  r.lines = {config_.hostname + " Hello " + core::ascii_escaped(record_.connection.helo) + " [" +
                 record_.connection.client_ip + "]",
             "PIPELINING",
             "SIZE " + std::to_string(config_.limits.max_message_size),
             "8BITMIME",
             "ENHANCEDSTATUSCODES",
             "SMTPUTF8"};
  if (!tls_) {
    r.lines.push_back("STARTTLS");
    record_.tls.offered = true;  // what tls.offered means: advertised to this client
  }
  r.lines.push_back("HELP");
  send(r);
  co_return;
}

asio::awaitable<void> smtp_session::cmd_helo(const std::string& args) {
  reset_transaction();
  record_.connection.helo = args.substr(0, max_helo_kept);
  record_.connection.esmtp = false;
  transition(smtp_state::greeted);
  send(reply{250, "", config_.hostname + " Hello " + core::ascii_escaped(record_.connection.helo)});
  co_return;
}

asio::awaitable<void> smtp_session::cmd_mail(const std::string& args) {
  if (record_.messages >= config_.limits.max_messages_per_connection) {
    record_.outcome = "limit";
    send(reply{421, "4.7.0",
               config_.hostname + " Too many messages in one connection, reconnect to send more",
               true});
    co_return;
  }
  auto parsed = parse_path_command(args, "FROM", true);
  if (auto* err = std::get_if<reply>(&parsed)) {
    send(*err);
    co_return;
  }
  auto& path = std::get<path_command>(parsed);
  core::envelope env;
  env.mail_from = path.address;
  for (const auto& [key, value] : path.params) {
    if (!record_.connection.esmtp) {
      send(reply{555, "5.5.4", "Parameters need EHLO"});
      co_return;
    }
    if (key == "SIZE") {  // RFC 1870 §6
      std::uint64_t size = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), size);
      if (ec != std::errc() || p != value.data() + value.size()) {
        send(reply{501, "5.5.4", "Syntax error in SIZE parameter"});
        co_return;
      }
      if (size > config_.limits.max_message_size) {
        send(reply{552, "5.3.4", "Message size exceeds fixed maximum message size"});
        co_return;
      }
      // RFC 1870 §6.1: room for the message now, not in general, is a temporary failure.
      if (config_.message_budget && size > config_.message_budget->free()) {
        send(no_room);
        co_return;
      }
      env.declared_size = size;
    } else if (key == "BODY") {  // RFC 6152 §3
      auto v = core::lowercase(value);
      if (v == "7bit") {
        env.body = core::body_type::seven_bit;
      } else if (v == "8bitmime") {
        env.body = core::body_type::eight_bit_mime;
      } else if (v == "binarymime") {
        // RFC 3030 §3: BINARYMIME needs CHUNKING, which is not offered.
        send(reply{555, "5.5.4", "BODY=BINARYMIME needs CHUNKING, which is not offered"});
        co_return;
      } else {
        send(reply{501, "5.5.4", "Unknown BODY type"});
        co_return;
      }
    } else if (key == "SMTPUTF8") {  // RFC 6531 §3.4
      if (!value.empty()) {
        send(reply{501, "5.5.4", "SMTPUTF8 takes no value"});
        co_return;
      }
      env.smtputf8 = true;
    } else {
      send(reply{555, "5.5.4", "Parameter " + key + " not supported"});
      co_return;
    }
  }
  if (!env.smtputf8 && has_non_ascii(env.mail_from)) {  // RFC 6531 §3.7.4.1
    send(reply{553, "5.6.7", "A non-ASCII address needs SMTPUTF8"});
    co_return;
  }
  tx_ = transaction{};
  tx_.envelope = std::move(env);
  transcript_.begin_transaction();  // the MAIL line, noted last, is the transaction's first
  transition(smtp_state::mail);
  send(reply{250, "2.1.0", "Sender <" + tx_.envelope.mail_from + "> OK"});
  co_return;
}

asio::awaitable<void> smtp_session::cmd_rcpt(const std::string& args) {
  auto parsed = parse_path_command(args, "TO", false);
  if (auto* err = std::get_if<reply>(&parsed)) {
    send(*err);
    co_return;
  }
  auto& path = std::get<path_command>(parsed);
  if (!path.params.empty()) {
    send(reply{555, "5.5.4", "Parameter " + path.params.front().first + " not supported"});
    co_return;
  }
  if (!tx_.envelope.smtputf8 && has_non_ascii(path.address)) {
    send(reply{553, "5.6.7", "A non-ASCII address needs SMTPUTF8"});
    co_return;
  }
  if (tx_.envelope.rcpt_to.size() >= config_.limits.max_recipients) {
    send(reply{452, "4.5.3", "Too many recipients"});  // RFC 5321 §4.5.3.1.10
    co_return;
  }
  auto verdict = co_await sink_.recipient(path.address, record_.connection.client_ip);
  if (verdict.reply.positive()) {
    tx_.envelope.rcpt_to.push_back(path.address);
    if (std::find(tx_.keys.begin(), tx_.keys.end(), verdict.key) == tx_.keys.end())
      tx_.keys.push_back(verdict.key);
    transition(smtp_state::rcpt);
  }
  send(verdict.reply);
}

asio::awaitable<void> smtp_session::cmd_data(const std::string&) {
  if (config_.message_budget && config_.message_budget->free() == 0) {
    send(no_room);
    reset_transaction();
    co_return;
  }
  send(reply{354, "", "End data with <CR><LF>.<CR><LF>"});
  if (!co_await flush()) {
    record_.outcome = "dropped";
    closing_ = true;
    co_return;
  }
  data_reader data(config_.limits.max_message_size, config_.limits.max_data_line);
  // Held from the first octet until the message is stored: the pipeline moves it, never copies.
  budget_lease held(config_.message_budget);
  auto keep_within_budget = [&] {
    if (data.kept() && !held.hold(data.message().size())) data.stop_keeping();
  };
  in_.erase(0, data.feed(in_));
  keep_within_budget();
  while (!data.done()) {
    auto status = co_await read_more(data_chunk);
    if (status != read_status::ok) {
      // The message never ended: nothing is delivered.
      note(core::direction::client, "<" + std::to_string(data.size()) + " bytes, incomplete>");
      record_.outcome = status == read_status::timeout    ? "timeout"
                        : status == read_status::shutdown ? "shutdown"
                                                          : "dropped";
      if (status == read_status::timeout)
        send(reply{421, "4.4.2", config_.hostname + " Timeout, closing connection", true});
      if (status == read_status::shutdown)
        send(reply{421, "4.3.2", config_.hostname + " Service shutting down", true});
      closing_ = true;
      reset_transaction();
      co_return;
    }
    in_.erase(0, data.feed(in_));
    keep_within_budget();
  }
  note(core::direction::client, "<" + std::to_string(data.size()) + " bytes>");
  if (data.too_big()) {
    send(reply{552, "5.3.4",
               "Message exceeds the size limit of " +
                   std::to_string(config_.limits.max_message_size) + " octets"});
    reset_transaction();
    co_return;
  }
  if (data.line_too_long()) {
    send(reply{554, "5.6.0",
               "A line of the message exceeds " + std::to_string(config_.limits.max_data_line) +
                   " octets"});
    reset_transaction();
    co_return;
  }
  if (!data.kept()) {
    core::log_warn("session " + record_.id + ": a message of " + std::to_string(data.size()) +
                   " octets was refused: the server holds " +
                   std::to_string(config_.message_budget->capacity()) +
                   " octets of messages at once (--max-data-in-flight)");
    send(no_room);
    reset_transaction();
    co_return;
  }

  core::delivery d;
  d.received_at = core::now_ms();
  d.session_id = record_.id;
  d.connection = record_.connection;
  d.tls = record_.tls;
  d.envelope = std::move(tx_.envelope);
  d.data = data.facts();
  d.transcript = transcript_.take_delivery(elapsed_ms());
  d.raw = std::move(data.message());
  auto keys = std::move(tx_.keys);
  auto r = co_await sink_.deliver(std::move(d), std::move(keys));
  if (r.positive()) {
    ++record_.messages;
    junk_commands_ = 0;  // as Postfix forgives them once a message is accepted
  }
  reset_transaction();
  send(r);
}

asio::awaitable<void> smtp_session::cmd_rset(const std::string&) {
  reset_transaction();
  send(reply{250, "2.0.0", "Reset OK"});
  co_return;
}

asio::awaitable<void> smtp_session::cmd_noop(const std::string&) {
  send(reply{250, "2.0.0", "OK"});
  co_return;
}

asio::awaitable<void> smtp_session::cmd_quit(const std::string&) {
  record_.outcome = "quit";
  send(reply{221, "2.0.0", config_.hostname + " Bye", true});
  co_return;
}

asio::awaitable<void> smtp_session::cmd_vrfy(const std::string&) {
  // RFC 5321 §3.5.3: 252 when the server will not verify but will accept mail.
  send(reply{252, "2.5.0", "Cannot VRFY user, but will accept message for test addresses"});
  co_return;
}

asio::awaitable<void> smtp_session::cmd_help(const std::string&) {
  reply r;
  r.code = 214;
  r.enhanced = "2.0.0";
  r.lines = {"mxlens records and grades test deliveries",
             "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS"};
  send(r);
  co_return;
}

asio::awaitable<void> smtp_session::cmd_not_implemented(const std::string&) {
  send(reply{502, "5.5.1", "Command not implemented"});
  co_return;
}

asio::awaitable<void> smtp_session::cmd_starttls(const std::string&) {
  // RFC 3207 §5 and CVE-2011-0411: whatever the client pipelined after STARTTLS arrived in
  // plaintext and must never be executed inside TLS.
  if (!in_.empty()) {
    note(core::direction::tls, "discarded " + std::to_string(in_.size()) +
                                   " octets sent after STARTTLS before the handshake");
    record_.connection.early_talker = true;
    in_.clear();
  }
  send(reply{220, "2.0.0", "Ready to start TLS"});
  if (!co_await flush()) {
    record_.outcome = "dropped";
    closing_ = true;
    co_return;
  }

  auto ctx = tls_config_.context();
  SSL_CTX_up_ref(ctx.get());  // asio::ssl::context takes ownership of one reference
  ssl_ctx_ = std::make_unique<asio::ssl::context>(ctx.get());
  tls_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(socket_, *ssl_ctx_);
  arm(config_.limits.tls_handshake_timeout);
  // The first record, looked at without taking it: OpenSSL refuses an alert where the ClientHello
  // belongs unread, and its description says why the client sent none.
  std::optional<std::uint8_t> first_alert;
  if (auto [wait_ec] = co_await socket_.async_wait(tcp::socket::wait_read, tuple_awaitable);
      !wait_ec) {
    std::array<unsigned char, 7> head{};
    boost::system::error_code peek_ec;
    const auto n = socket_.receive(asio::buffer(head), tcp::socket::message_peek, peek_ec);
    if (!peek_ec && n == head.size() && head[0] == 21 && head[3] == 0 && head[4] == 2)
      first_alert = head[6];
  }
  auto [ec] = co_await tls_->async_handshake(asio::ssl::stream_base::server, tuple_awaitable);
  if (ec) {
    auto trace = trace_of(tls_->native_handle());
    if (!trace.client_hello && !trace.client_alert) trace.client_alert = first_alert;
    std::string reason = timed_out_ ? "handshake timed out" : ec.message();
    const auto kind = classify_failure(reason, trace, timed_out_);
    reason = explain_failure(std::move(reason), trace, kind);
    auto hello = captured_client_hello(tls_->native_handle());
    note(core::direction::tls, "handshake failed: " + reason);
    core::log_info("session " + record_.id + " " + record_.connection.client_ip +
                   " TLS handshake failed: " + reason);
    record_failure(reason, kind, std::move(hello));
    record_.outcome = "tls_failed";
    tls_.reset();
    closing_ = true;
    co_return;
  }
  auto& facts = record_.tls;
  facts.used = true;
  read_session(tls_->native_handle(), facts);
  note(core::direction::tls,
       *facts.version + " " + facts.cipher.value_or("?") + " " + facts.group.value_or("-") +
           (facts.sni ? " sni=" + *facts.sni : "") +
           (facts.client_certificate ? " client-cert=" + facts.client_certificate->subject : ""));
  // RFC 3207 §4.2: forget everything learnt before TLS; the client must EHLO again.
  reset_transaction();
  record_.connection.helo.clear();
  record_.connection.esmtp = false;
  transition(smtp_state::fresh);
}

}  // namespace mxlens::receiver
