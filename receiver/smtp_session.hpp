// One SMTP connection (RFC 5321, with 1870 SIZE, 2920 PIPELINING, 3207 STARTTLS, 3463/2034
// enhanced status codes, 6152 8BITMIME, 6531 SMTPUTF8).
//
// Two scopes: the session (peer, EHLO, TLS, transcript) lives as long as the connection; the
// transaction (MAIL, RCPTs, DATA) is reset by RSET, EHLO, STARTTLS and after each message.
// Commands are a table of {verb, flags, proceed}; the flags carry the RFC ordering rules.
//
// Not here: storage, analysis, policy. Each finished message goes to the delivery_sink and its
// reply is sent as it comes back.
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "certs/server_tls.hpp"
#include "core/types.hpp"
#include "receiver/byte_budget.hpp"
#include "receiver/delivery_sink.hpp"
#include "receiver/limits.hpp"
#include "receiver/reply.hpp"
#include "receiver/transcript.hpp"

namespace mxlens::receiver {

struct session_config {
  std::string hostname;
  receiver::limits limits;
  // The octets of message data all sessions may hold at once (receiver/byte_budget.hpp); none:
  // no bound but each message's own.
  byte_budget* message_budget = nullptr;
  // Set by the server while a stress share of its connection slots is in use (limits.hpp).
  const std::atomic<bool>* under_stress = nullptr;
};

enum class smtp_state { fresh, greeted, mail, rcpt };

class smtp_session : public std::enable_shared_from_this<smtp_session> {
 public:
  using tcp = boost::asio::ip::tcp;

  smtp_session(tcp::socket socket, const session_config& config, certs::server_tls& tls,
               delivery_sink& sink);
  ~smtp_session();

  // Runs the whole dialogue; returns when the connection is closed. Spawn on the socket's strand.
  boost::asio::awaitable<void> run();

  // Asks the session to end: it answers 421 4.3.2 at its next read and closes. Call on its strand.
  void shutdown();

  tcp::socket::executor_type executor() { return socket_.get_executor(); }

 private:
  // tls_record: a TLS record came where a plaintext command was expected (implicit TLS).
  enum class read_status { ok, eof, timeout, shutdown, error, tls_record };
  enum flags : unsigned {
    needs_helo = 1u << 0,      // RFC 5321 §4.1.4: MAIL only after EHLO/HELO
    needs_mail = 1u << 1,      // RFC 5321 §3.3: RCPT only after MAIL
    needs_rcpt = 1u << 2,      // RFC 5321 §3.3: DATA only after a successful RCPT
    no_mail = 1u << 3,         // RFC 5321 §4.1.4: no MAIL inside a transaction
    no_args = 1u << 4,         // RFC 5321 §4.1.1.4/5/10, RFC 3207 §4: DATA, RSET, QUIT, STARTTLS
    needs_args = 1u << 5,      // RFC 5321 §4.1.1.1, §4.1.1.6: EHLO/HELO, VRFY
    last_in_group = 1u << 6,   // RFC 2920 §3.1, RFC 3207 §4.1: nothing may be pipelined after it
    not_in_tls = 1u << 7,      // RFC 3207 §4: a second STARTTLS
    no_transaction = 1u << 8,  // STARTTLS inside a mail transaction
    junk = 1u << 9,            // counted against limits::max_junk_commands (Postfix's junk)
  };
  struct command_spec {
    std::string_view verb;
    unsigned flags;
    boost::asio::awaitable<void> (smtp_session::*proceed)(const std::string& args);
  };
  static const command_spec commands[];

  struct transaction {
    core::envelope envelope;
    std::vector<std::string> keys;  // sink keys of accepted recipients, without repeats
  };

  boost::asio::awaitable<void> dialogue();
  boost::asio::awaitable<void> watchdog();
  boost::asio::awaitable<read_status> read_line(std::string& line, bool& too_long);
  // Reads up to `chunk` more octets into in_, waiting at most `timeout` (the idle timeout if 0).
  boost::asio::awaitable<read_status> read_more(std::size_t chunk,
                                                std::chrono::milliseconds timeout = {});
  // read_more, waiting no later than `until` in all: timeout once it has passed.
  boost::asio::awaitable<read_status> read_before(std::size_t chunk,
                                                  std::chrono::steady_clock::time_point until);
  // The rest of the TLS record at the start of in_ (implicit TLS), and the offer in it.
  boost::asio::awaitable<std::optional<core::client_hello>> read_implicit_client_hello();
  boost::asio::awaitable<bool> flush();
  // After a limit's 421 in plaintext: reads and discards what the client still sends, briefly.
  boost::asio::awaitable<void> linger();

  boost::asio::awaitable<void> cmd_ehlo(const std::string& args);
  boost::asio::awaitable<void> cmd_helo(const std::string& args);
  boost::asio::awaitable<void> cmd_mail(const std::string& args);
  boost::asio::awaitable<void> cmd_rcpt(const std::string& args);
  boost::asio::awaitable<void> cmd_data(const std::string& args);
  boost::asio::awaitable<void> cmd_rset(const std::string& args);
  boost::asio::awaitable<void> cmd_noop(const std::string& args);
  boost::asio::awaitable<void> cmd_quit(const std::string& args);
  boost::asio::awaitable<void> cmd_vrfy(const std::string& args);
  boost::asio::awaitable<void> cmd_help(const std::string& args);
  boost::asio::awaitable<void> cmd_starttls(const std::string& args);
  boost::asio::awaitable<void> cmd_not_implemented(const std::string& args);

  // The ordering and syntax rules of the table's flags; the reply to send if one is broken.
  std::optional<reply> check(const command_spec& spec, const std::string& args) const;
  void transition(smtp_state next);
  void reset_transaction();
  void send(const reply& r);
  // Records a transcript line, time stamped.
  void note(core::direction dir, std::string_view line);
  // A failed handshake (or what stands for one): told to the sink at once, kept in the record.
  void record_failure(std::string reason, core::failure_class kind,
                      std::optional<core::client_hello> hello);
  void arm(std::chrono::milliseconds timeout);
  // The limits as they are now: shorter and fewer while the server is under stress.
  bool stressed() const;
  std::chrono::milliseconds idle_timeout() const;
  std::size_t max_junk_commands() const;
  std::size_t max_errors() const;
  double elapsed_ms() const;

  tcp::socket socket_;
  const session_config& config_;
  certs::server_tls& tls_config_;
  delivery_sink& sink_;

  std::unique_ptr<boost::asio::ssl::context> ssl_ctx_;
  std::unique_ptr<boost::asio::ssl::stream<tcp::socket&>> tls_;
  boost::asio::steady_timer timer_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point deadline_;
  std::chrono::steady_clock::time_point session_deadline_;
  bool timed_out_ = false;
  bool stopping_ = false;
  bool finished_ = false;
  bool closing_ = false;
  bool spoke_inside_tls_ = false;  // a command other than QUIT came after the handshake

  std::string in_;   // received, not yet consumed
  std::string out_;  // replies not yet written (flushed before every read: RFC 2920 §3.2)

  smtp_state state_ = smtp_state::fresh;
  core::session_record record_;  // its transcript is filled in from transcript_ at the end
  receiver::transcript transcript_;
  std::size_t errors_ = 0;
  std::size_t junk_commands_ = 0;  // since the last message accepted
  transaction tx_;
};

}  // namespace mxlens::receiver
