// The receiver's one seam to the rest of mxlens. The receiver speaks SMTP and knows nothing of
// storage, analysis or HTTP: it asks the sink about recipients, hands it each finished message,
// and sends whatever reply comes back.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/types.hpp"
#include "receiver/reply.hpp"

namespace mxlens::receiver {

struct recipient_verdict {
  receiver::reply reply;  // 250 to accept; anything else is sent as the refusal
  std::string key;        // what the sink wants back with the message (the test id)
};

class delivery_sink {
 public:
  virtual ~delivery_sink() = default;

  // RCPT TO:<address> from a client at `client_ip`.
  virtual boost::asio::awaitable<recipient_verdict> recipient(const std::string& address,
                                                              const std::string& client_ip) = 0;

  // The message, with the keys of its accepted recipients. The reply is the answer to the final
  // dot: a 250 only once the delivery is durably stored.
  virtual boost::asio::awaitable<reply> deliver(core::delivery message,
                                                std::vector<std::string> keys) = 0;

  // A TLS handshake failed, or a client completed one and left without MAIL (it probably refused
  // the certificate): told at once, before the session ends, so that the client's next
  // connection, however fast it comes, knows of it.
  virtual void handshake_failed(const core::failed_handshake& f) = 0;

  // A connection ended (whether or not it delivered anything).
  virtual void session_closed(core::session_record session) = 0;
};

}  // namespace mxlens::receiver
