#include "core/json.hpp"

#include "core/tokens.hpp"

#include <boost/json.hpp>
#include <cassert>
#include <cstdio>
#include <ctime>
#include <stdexcept>

namespace mxlens::core {

namespace json = boost::json;

json::array string_array(const std::vector<std::string>& v) {
  json::array a;
  a.reserve(v.size());
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

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

unix_ms parse_time(std::string_view text) {
  // Digits at these offsets of "YYYY-MM-DDTHH:MM:SS.mmmZ", separators at the others.
  constexpr std::string_view shape = "dddd-dd-ddTdd:dd:dd.dddZ";
  auto bad = [&] { return std::invalid_argument("not a time: '" + std::string(text) + "'"); };
  if (text.size() != shape.size()) throw bad();
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const bool digit = text[i] >= '0' && text[i] <= '9';
    if (shape[i] == 'd' ? !digit : text[i] != shape[i]) throw bad();
  }
  auto number = [&](std::size_t at, std::size_t len) {
    int n = 0;
    for (std::size_t i = at; i < at + len; ++i) n = n * 10 + (text[i] - '0');
    return n;
  };
  std::tm tm{};
  tm.tm_year = number(0, 4) - 1900;
  tm.tm_mon = number(5, 2) - 1;
  tm.tm_mday = number(8, 2);
  tm.tm_hour = number(11, 2);
  tm.tm_min = number(14, 2);
  tm.tm_sec = number(17, 2);
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 59)
    throw bad();
  const unix_ms t = static_cast<unix_ms>(timegm(&tm)) * 1000 + number(20, 3);
  if (format_time(t) != text) throw bad();  // 31 February and its like
  return t;
}

namespace {

constexpr token_table<body_type, 3> body_tokens{{{{body_type::seven_bit, "7BIT"},
                                                  {body_type::eight_bit_mime, "8BITMIME"},
                                                  {body_type::binary_mime, "BINARYMIME"}}},
                                                "a BODY= value"};
constexpr token_table<direction, 3> direction_tokens{
    {{{direction::client, "c"}, {direction::server, "s"}, {direction::tls, "tls"}}},
    "a transcript direction"};
constexpr token_table<auth_result, 8> auth_result_tokens{{{{auth_result::none, "none"},
                                                           {auth_result::pass, "pass"},
                                                           {auth_result::fail, "fail"},
                                                           {auth_result::softfail, "softfail"},
                                                           {auth_result::neutral, "neutral"},
                                                           {auth_result::temperror, "temperror"},
                                                           {auth_result::permerror, "permerror"},
                                                           {auth_result::policy, "policy"}}},
                                                         "an authentication result"};

constexpr token_table<failure_class, 10> failure_tokens{
    {{{failure_class::not_tls, "not_tls"},
      {failure_class::implicit_tls, "implicit_tls"},
      {failure_class::plaintext_after_starttls, "plaintext_after_starttls"},
      {failure_class::version, "version"},
      {failure_class::cipher, "cipher"},
      {failure_class::certificate_rejected, "certificate_rejected"},
      {failure_class::aborted, "aborted"},
      {failure_class::timeout, "timeout"},
      {failure_class::protocol, "protocol"},
      {failure_class::other, "other"}}},
    "a failure class"};

}  // namespace

std::string_view to_string(failure_class c) { return failure_tokens.token(c); }
failure_class failure_class_of(std::string_view token) { return failure_tokens.value(token); }
std::string_view to_string(body_type b) { return body_tokens.token(b); }  // "" for none
body_type body_type_of(std::string_view token) { return body_tokens.value(token); }
std::string_view to_string(direction d) { return direction_tokens.token(d); }
direction direction_of(std::string_view token) { return direction_tokens.value(token); }
std::string_view to_string(auth_result r) { return auth_result_tokens.token(r); }
auth_result auth_result_of(std::string_view token) { return auth_result_tokens.value(token); }

namespace read {

const json::object& object_of(const json::value& v) {
  if (!v.is_object()) throw std::invalid_argument("not an object");
  return v.get_object();
}

const json::value& member(const json::object& o, std::string_view key) {
  if (auto* v = o.if_contains(key)) return *v;
  throw std::invalid_argument(std::string(key) + ": missing");
}

std::string text(const json::object& o, std::string_view key) {
  const auto& v = member(o, key);
  if (!v.is_string()) throw std::invalid_argument(std::string(key) + ": not a string");
  return std::string(v.get_string());
}

unix_ms time_field(const json::object& o, std::string_view key) {
  const auto t = text(o, key);
  return named(key, [&] { return parse_time(t); });
}

}  // namespace read

using namespace read;

void tag_invoke(json::value_from_tag, json::value& v, const client_certificate& c) {
  v = json::object{{"subject", c.subject},
                   {"issuer", c.issuer},
                   {"not_after", c.not_after},
                   {"sha256", c.sha256}};
}

client_certificate tag_invoke(json::value_to_tag<client_certificate>, const json::value& v) {
  const auto& o = object_of(v);
  return {text(o, "subject"), text(o, "issuer"), text(o, "not_after"), text(o, "sha256")};
}

void tag_invoke(json::value_from_tag, json::value& v, const client_hello& h) {
  v = json::object{
      {"versions", string_array(h.versions)}, {"ciphers", string_array(h.ciphers)},
      {"groups", string_array(h.groups)},     {"alpn", string_array(h.alpn)},
      {"sni", optional_json(h.sni)},          {"fingerprint", h.fingerprint},
  };
}

client_hello tag_invoke(json::value_to_tag<client_hello>, const json::value& v) {
  const auto& o = object_of(v);
  client_hello h;
  h.versions = field<std::vector<std::string>>(o, "versions");
  h.ciphers = field<std::vector<std::string>>(o, "ciphers");
  h.groups = field<std::vector<std::string>>(o, "groups");
  h.alpn = field<std::vector<std::string>>(o, "alpn");
  h.sni = optional_field<std::string>(o, "sni");
  h.fingerprint = text(o, "fingerprint");
  return h;
}

void tag_invoke(json::value_from_tag, json::value& v, const failed_handshake& f) {
  json::object o{{"at", format_time(f.at)},    {"client_ip", f.client_ip},
                 {"reason", f.reason},         {"client_hello", optional_json(f.client_hello)},
                 {"class", to_string(f.kind)}, {"session", f.session}};
  if (f.seconds_before) o["seconds_before"] = *f.seconds_before;
  v = std::move(o);
}

failed_handshake tag_invoke(json::value_to_tag<failed_handshake>, const json::value& v) {
  const auto& o = object_of(v);
  failed_handshake f;
  f.at = time_field(o, "at");
  f.client_ip = text(o, "client_ip");
  f.reason = text(o, "reason");
  f.client_hello = optional_field<client_hello>(o, "client_hello");
  // The first schemas wrote neither class nor session.
  if (o.contains("class")) f.kind = failure_class_of(text(o, "class"));
  if (o.contains("session")) f.session = text(o, "session");
  if (o.contains("seconds_before")) f.seconds_before = field<double>(o, "seconds_before");
  return f;
}

void tag_invoke(json::value_from_tag, json::value& v, const tls_facts& t) {
  v = json::object{
      {"offered", t.offered},
      {"used", t.used},
      {"version", optional_json(t.version)},
      {"cipher", optional_json(t.cipher)},
      {"bits", optional_json(t.bits)},
      {"group", optional_json(t.group)},
      {"sni", optional_json(t.sni)},
      {"alpn", optional_json(t.alpn)},
      {"client_certificate", optional_json(t.client_certificate)},
      {"client_hello", optional_json(t.client_hello)},
      {"failed_handshakes", json::value_from(t.failed_handshakes)},
  };
}

tls_facts tag_invoke(json::value_to_tag<tls_facts>, const json::value& v) {
  const auto& o = object_of(v);
  tls_facts t;
  t.offered = field<bool>(o, "offered");
  t.used = field<bool>(o, "used");
  t.version = optional_field<std::string>(o, "version");
  t.cipher = optional_field<std::string>(o, "cipher");
  t.bits = optional_field<int>(o, "bits");
  t.group = optional_field<std::string>(o, "group");
  t.sni = optional_field<std::string>(o, "sni");
  t.alpn = optional_field<std::string>(o, "alpn");
  t.client_certificate = optional_field<client_certificate>(o, "client_certificate");
  t.client_hello = optional_field<client_hello>(o, "client_hello");
  t.failed_handshakes = field<std::vector<failed_handshake>>(o, "failed_handshakes");
  return t;
}

void tag_invoke(json::value_from_tag, json::value& v, const connection_facts& c) {
  v = json::object{
      {"client_ip", c.client_ip},
      {"client_port", c.client_port},
      {"family", c.ipv6 ? "ipv6" : "ipv4"},
      {"local_ip", c.local_ip},
      {"local_port", c.local_port},
      {"helo", c.helo},
      {"esmtp", c.esmtp},
      {"early_talker", c.early_talker},
      {"greet_pause_ms", c.greet_pause_ms},
      {"started_at", format_time(c.started_at)},
  };
}

connection_facts tag_invoke(json::value_to_tag<connection_facts>, const json::value& v) {
  const auto& o = object_of(v);
  connection_facts c;
  c.client_ip = text(o, "client_ip");
  c.client_port = field<std::uint16_t>(o, "client_port");
  c.local_ip = text(o, "local_ip");
  c.local_port = field<std::uint16_t>(o, "local_port");
  c.ipv6 = text(o, "family") == "ipv6";
  c.helo = text(o, "helo");
  c.esmtp = field<bool>(o, "esmtp");
  // The first schema kept early_talker on the session record only, and not in a delivery's facts:
  // what it stored reads as a client that waited (the session's own flag is taken below).
  c.early_talker = o.contains("early_talker") && field<bool>(o, "early_talker");
  // Records from before --greet-pause: the greeting was not held back.
  if (o.contains("greet_pause_ms")) c.greet_pause_ms = field<std::uint32_t>(o, "greet_pause_ms");
  c.started_at = time_field(o, "started_at");
  return c;
}

void tag_invoke(json::value_from_tag, json::value& v, const transcript_line& l) {
  v = json::object{{"t_ms", l.t_ms}, {"dir", to_string(l.dir)}, {"line", l.line}};
}

transcript_line tag_invoke(json::value_to_tag<transcript_line>, const json::value& v) {
  const auto& o = object_of(v);
  return {member(o, "t_ms").to_number<double>(), direction_of(text(o, "dir")), text(o, "line")};
}

void tag_invoke(json::value_from_tag, json::value& v, const data_facts& d) {
  v = json::object{
      {"bare_lf", d.bare_lf},   {"bare_cr", d.bare_cr},     {"long_lines", d.long_lines},
      {"max_line", d.max_line}, {"eight_bit", d.eight_bit}, {"nul", d.nul},
      {"lines", d.lines}};
}

data_facts tag_invoke(json::value_to_tag<data_facts>, const json::value& v) {
  const auto& o = object_of(v);
  data_facts d;
  d.bare_lf = field<std::uint64_t>(o, "bare_lf");
  d.bare_cr = field<std::uint64_t>(o, "bare_cr");
  d.long_lines = field<std::uint64_t>(o, "long_lines");
  d.max_line = field<std::uint64_t>(o, "max_line");
  d.eight_bit = field<std::uint64_t>(o, "eight_bit");
  d.nul = field<std::uint64_t>(o, "nul");
  d.lines = field<std::uint64_t>(o, "lines");
  return d;
}

void tag_invoke(json::value_from_tag, json::value& v, const envelope& e) {
  v = json::object{
      {"mail_from", e.mail_from},
      {"rcpt_to", string_array(e.rcpt_to)},
      {"smtputf8", e.smtputf8},
      {"body", e.body == body_type::none ? json::value(nullptr) : json::value(to_string(e.body))},
      {"declared_size", optional_json(e.declared_size)},
  };
}

envelope tag_invoke(json::value_to_tag<envelope>, const json::value& v) {
  const auto& o = object_of(v);
  envelope e;
  e.mail_from = text(o, "mail_from");
  e.rcpt_to = field<std::vector<std::string>>(o, "rcpt_to");
  e.smtputf8 = field<bool>(o, "smtputf8");
  const auto& body = member(o, "body");
  e.body = body.is_null() ? body_type::none : body_type_of(body.as_string());
  e.declared_size = optional_field<std::uint64_t>(o, "declared_size");
  return e;
}

void tag_invoke(json::value_from_tag, json::value& v, const session_record& s) {
  auto connection = json::value_from(s.connection);
  connection.as_object()["duration_ms"] = static_cast<double>(s.ended_at - s.connection.started_at);
  v = json::object{{"id", s.id},
                   {"connection", std::move(connection)},
                   {"tls", json::value_from(s.tls)},
                   {"ended_at", format_time(s.ended_at)},
                   {"messages", s.messages},
                   {"outcome", s.outcome},
                   {"transcript", json::value_from(s.transcript)}};
}

session_record tag_invoke(json::value_to_tag<session_record>, const json::value& v) {
  const auto& o = object_of(v);
  session_record s;
  s.id = text(o, "id");
  s.connection = field<connection_facts>(o, "connection");
  if (o.contains("early_talker")) s.connection.early_talker = field<bool>(o, "early_talker");
  s.tls = field<tls_facts>(o, "tls");
  s.ended_at = time_field(o, "ended_at");
  s.messages = field<std::uint32_t>(o, "messages");
  s.outcome = text(o, "outcome");
  s.transcript = field<std::vector<transcript_line>>(o, "transcript");
  return s;
}

void tag_invoke(json::value_from_tag, json::value& v, const test_info& t) {
  v = json::object{{"id", t.id},
                   {"address", t.address},
                   {"created_at", format_time(t.created_at)},
                   {"expires_at", format_time(t.expires_at)},
                   {"label", t.label},
                   {"profile", t.profile},
                   {"bulk", t.bulk},
                   {"expect_from", string_array(t.expect_from)}};
}

test_info tag_invoke(json::value_to_tag<test_info>, const json::value& v) {
  const auto& o = object_of(v);
  test_info t;
  t.id = text(o, "id");
  t.address = text(o, "address");
  t.created_at = time_field(o, "created_at");
  t.expires_at = time_field(o, "expires_at");
  t.label = text(o, "label");
  t.profile = text(o, "profile");
  t.bulk = field<bool>(o, "bulk");
  if (o.contains("expect_from")) t.expect_from = field<std::vector<std::string>>(o, "expect_from");
  return t;
}

void tag_invoke(json::value_from_tag, json::value& v, const delivery_summary& d) {
  v = json::object{{"delivery", d.number},     {"received_at", format_time(d.received_at)},
                   {"client_ip", d.client_ip}, {"mail_from", d.mail_from},
                   {"size", d.size},           {"tls_version", optional_json(d.tls_version)}};
}

delivery_summary tag_invoke(json::value_to_tag<delivery_summary>, const json::value& v) {
  const auto& o = object_of(v);
  delivery_summary d;
  d.number = field<std::int64_t>(o, "delivery");
  d.received_at = time_field(o, "received_at");
  d.client_ip = text(o, "client_ip");
  d.mail_from = text(o, "mail_from");
  d.size = field<std::uint64_t>(o, "size");
  d.tls_version = optional_field<std::string>(o, "tls_version");
  return d;
}

void tag_invoke(json::value_from_tag, json::value& v, const delivery& d) {
  auto connection = json::value_from(d.connection);
  connection.as_object()["duration_ms"] =
      static_cast<double>(d.received_at - d.connection.started_at);
  auto envelope = json::value_from(d.envelope);
  envelope.as_object()["size"] = d.raw.size();
  v = json::object{{"test_id", d.test_id},
                   {"delivery", d.number},
                   {"received_at", format_time(d.received_at)},
                   {"session_id", d.session_id},
                   {"connection", std::move(connection)},
                   {"tls", json::value_from(d.tls)},
                   {"envelope", std::move(envelope)},
                   {"data", json::value_from(d.data)},
                   {"transcript", json::value_from(d.transcript)}};
}

delivery tag_invoke(json::value_to_tag<delivery>, const json::value& v) {
  const auto& o = object_of(v);
  delivery d;
  d.test_id = text(o, "test_id");
  d.number = field<std::int64_t>(o, "delivery");
  d.received_at = time_field(o, "received_at");
  d.session_id = text(o, "session_id");
  d.connection = field<connection_facts>(o, "connection");
  d.tls = field<tls_facts>(o, "tls");
  d.envelope = field<core::envelope>(o, "envelope");
  d.data = field<data_facts>(o, "data");
  d.transcript = field<std::vector<transcript_line>>(o, "transcript");
  return d;
}

void tag_invoke(json::value_from_tag, json::value& v, const score& x) {
  assert(x.value.has_value() != x.unscored.has_value());
  v = json::object{{"value", optional_json(x.value)},
                   {"max", 10},
                   {"passed", x.passed},
                   {"total", x.total},
                   {"errors", x.errors},
                   {"unscored", optional_json(x.unscored)}};
}

score tag_invoke(json::value_to_tag<score>, const json::value& v) {
  const auto& o = object_of(v);
  score s;
  s.passed = field<int>(o, "passed");
  s.total = field<int>(o, "total");
  if (!o.contains("unscored")) {
    // A score stored before reports could be unscored: errors cost nothing then and were not
    // counted, and one that counted no check at all ("0 of 0", read as 10) was an analysis that
    // failed. That one is unscored now; the others keep their value.
    if (s.total == 0) s.unscored = "no check was evaluated";
    else s.value = named("value", [&] { return member(o, "value").to_number<double>(); });
    return s;
  }
  s.errors = field<int>(o, "errors");
  s.unscored = optional_field<std::string>(o, "unscored");
  const auto& value = member(o, "value");
  if (value.is_null() != s.unscored.has_value())
    throw std::invalid_argument("value: null exactly when the score is unscored");
  if (!value.is_null()) s.value = named("value", [&] { return value.to_number<double>(); });
  return s;
}

void tag_invoke(json::value_from_tag, json::value& v, const disposition& x) {
  v = json::object{{"code", x.code},
                   {"enhanced", x.enhanced},
                   {"text", x.text},
                   {"profile", x.profile},
                   {"reason", optional_json(x.reason)}};
}

disposition tag_invoke(json::value_to_tag<disposition>, const json::value& v) {
  const auto& o = object_of(v);
  return {field<int>(o, "code"), text(o, "enhanced"), text(o, "text"), text(o, "profile"),
          optional_field<std::string>(o, "reason")};
}

namespace {
json::object result_object(auth_result r) { return {{"result", to_string(r)}}; }
auth_result result_in(const json::value& v) {
  return auth_result_of(object_of(v).at("result").as_string());
}
}  // namespace

void tag_invoke(json::value_from_tag, json::value& v, const analysis_summary& x) {
  json::array dkim;
  for (auto r : x.dkim) dkim.push_back(result_object(r));
  v = json::object{{"score", json::value_from(x.score)},
                   {"auth", json::object{{"spf", result_object(x.spf)},
                                         {"dkim", std::move(dkim)},
                                         {"dmarc", result_object(x.dmarc)}}},
                   {"analysis", json::object{{"errors", string_array(x.errors)}}}};
}

analysis_summary tag_invoke(json::value_to_tag<analysis_summary>, const json::value& v) {
  const auto& o = object_of(v);
  const auto& auth = object_of(member(o, "auth"));
  analysis_summary s;
  s.score = field<score>(o, "score");
  s.spf = result_in(member(auth, "spf"));
  for (const auto& d : member(auth, "dkim").as_array()) s.dkim.push_back(result_in(d));
  s.dmarc = result_in(member(auth, "dmarc"));
  s.errors = field<std::vector<std::string>>(object_of(member(o, "analysis")), "errors");
  return s;
}

const boost::system::error_category& read_category() noexcept {
  struct category final : boost::system::error_category {
    const char* name() const noexcept override { return "mxlens.json"; }
    std::string message(int e) const override {
      return e == static_cast<int>(read_error::not_the_form)
                 ? "a field is missing, of another type, or holds an unknown value"
                 : "unknown error";
    }
  };
  static const category instance;
  return instance;
}

}  // namespace mxlens::core
