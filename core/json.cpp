#include "core/json.hpp"

#include <boost/json.hpp>
#include <ctime>

namespace mxlens::core {

namespace json = boost::json;

json::array string_array(const std::vector<std::string>& v) {
  json::array a;
  a.reserve(v.size());
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

namespace {

template <class T>
json::value opt(const std::optional<T>& v) {
  return optional_json(v);
}

json::array strings(const std::vector<std::string>& v) { return string_array(v); }

}  // namespace

unix_ms now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string format_time(unix_ms t) {
  std::time_t secs = static_cast<std::time_t>(t / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(t % 1000));
  return buf;
}

std::string_view to_string(body_type b) {
  switch (b) {
    case body_type::seven_bit: return "7BIT";
    case body_type::eight_bit_mime: return "8BITMIME";
    case body_type::binary_mime: return "BINARYMIME";
    case body_type::none: break;
  }
  return "";
}

std::string_view to_string(direction d) {
  switch (d) {
    case direction::client: return "c";
    case direction::server: return "s";
    case direction::tls: return "tls";
  }
  return "";
}

json::value to_json(const connection_facts& c) {
  return json::object{
      {"client_ip", c.client_ip},
      {"client_port", c.client_port},
      {"family", c.ipv6 ? "ipv6" : "ipv4"},
      {"local_ip", c.local_ip},
      {"local_port", c.local_port},
      {"helo", c.helo},
      {"esmtp", c.esmtp},
      {"early_talker", c.early_talker},
      {"started_at", format_time(c.started_at)},
  };
}

json::value to_json(const client_hello& h) {
  return json::object{
      {"versions", strings(h.versions)},
      {"ciphers", strings(h.ciphers)},
      {"groups", strings(h.groups)},
      {"alpn", strings(h.alpn)},
      {"sni", opt(h.sni)},
      {"fingerprint", h.fingerprint},
  };
}

json::value to_json(const failed_handshake& f) {
  json::object o{{"at", format_time(f.at)}, {"client_ip", f.client_ip}, {"reason", f.reason}};
  o["client_hello"] = f.client_hello ? to_json(*f.client_hello) : json::value(nullptr);
  return o;
}

json::value to_json(const tls_facts& t) {
  json::object o{
      {"offered", t.offered},    {"used", t.used},      {"version", opt(t.version)},
      {"cipher", opt(t.cipher)}, {"bits", opt(t.bits)}, {"group", opt(t.group)},
      {"sni", opt(t.sni)},       {"alpn", opt(t.alpn)},
  };
  if (t.client_certificate) {
    const auto& c = *t.client_certificate;
    o["client_certificate"] = json::object{{"subject", c.subject},
                                           {"issuer", c.issuer},
                                           {"not_after", c.not_after},
                                           {"sha256", c.sha256}};
  } else {
    o["client_certificate"] = nullptr;
  }
  o["client_hello"] = t.client_hello ? to_json(*t.client_hello) : json::value(nullptr);
  json::array failed;
  for (const auto& f : t.failed_handshakes) failed.push_back(to_json(f));
  o["failed_handshakes"] = std::move(failed);
  return o;
}

json::value to_json(const envelope& e, std::uint64_t size) {
  json::object o{{"mail_from", e.mail_from},
                 {"rcpt_to", strings(e.rcpt_to)},
                 {"smtputf8", e.smtputf8},
                 {"size", size}};
  o["body"] = e.body == body_type::none ? json::value(nullptr) : json::value(to_string(e.body));
  o["declared_size"] = opt(e.declared_size);
  return o;
}

json::value to_json(const data_facts& d) {
  return json::object{
      {"bare_lf", d.bare_lf},   {"bare_cr", d.bare_cr},     {"long_lines", d.long_lines},
      {"max_line", d.max_line}, {"eight_bit", d.eight_bit}, {"nul", d.nul},
      {"lines", d.lines}};
}

json::value to_json(const std::vector<transcript_line>& lines) {
  json::array a;
  a.reserve(lines.size());
  for (const auto& l : lines)
    a.push_back(json::object{{"t_ms", l.t_ms}, {"dir", to_string(l.dir)}, {"line", l.line}});
  return a;
}

json::value to_json(const session_record& s) {
  double duration = static_cast<double>(s.ended_at - s.connection.started_at);
  auto conn = to_json(s.connection);
  conn.as_object()["duration_ms"] = duration;
  return json::object{{"id", s.id},
                      {"connection", std::move(conn)},
                      {"tls", to_json(s.tls)},
                      {"ended_at", format_time(s.ended_at)},
                      {"messages", s.messages},
                      {"outcome", s.outcome},
                      {"transcript", to_json(s.transcript)}};
}

json::value to_json(const test_info& t) {
  return json::object{{"id", t.id},
                      {"address", t.address},
                      {"created_at", format_time(t.created_at)},
                      {"expires_at", format_time(t.expires_at)},
                      {"label", t.label},
                      {"profile", t.profile},
                      {"bulk", t.bulk}};
}

json::value to_json(const delivery_summary& d) {
  return json::object{{"delivery", d.number},     {"received_at", format_time(d.received_at)},
                      {"client_ip", d.client_ip}, {"mail_from", d.mail_from},
                      {"size", d.size},           {"tls_version", opt(d.tls_version)}};
}

json::value delivery_facts_json(const delivery& d) {
  auto conn = to_json(d.connection);
  conn.as_object()["duration_ms"] = static_cast<double>(d.received_at - d.connection.started_at);
  return json::object{{"test_id", d.test_id},
                      {"delivery", d.number},
                      {"received_at", format_time(d.received_at)},
                      {"session_id", d.session_id},
                      {"connection", std::move(conn)},
                      {"tls", to_json(d.tls)},
                      {"envelope", to_json(d.envelope, d.raw.size())},
                      {"data", to_json(d.data)},
                      {"transcript", to_json(d.transcript)}};
}

}  // namespace mxlens::core
