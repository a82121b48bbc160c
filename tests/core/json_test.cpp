// Every core type's JSON form read back is the value written (through the text, as at the edges),
// and the inverses refuse what their serializers would never write.
#include "core/json.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

using namespace mxlens;
namespace json = boost::json;

namespace {

// Through the wire form: serialized to text and parsed again before it is read back.
template <class T>
T round_trip(const T& x) {
  return core::from_json<T>(json::parse(json::serialize(core::to_json(x))));
}

core::client_hello hello() {
  core::client_hello h;
  h.versions = {"TLSv1.3", "TLSv1.2"};
  h.ciphers = {"TLS_AES_128_GCM_SHA256", "0x00ff"};
  h.groups = {"x25519", "secp256r1"};
  h.alpn = {"smtp"};
  h.sni = "mx.example";
  h.fingerprint = "t13d1516h2_8daaf6152771_02713d6af862";
  return h;
}

core::tls_facts tls() {
  core::tls_facts t;
  t.offered = true;
  t.used = true;
  t.version = "TLSv1.3";
  t.cipher = "TLS_AES_256_GCM_SHA384";
  t.bits = 256;
  t.group = "x25519";
  t.sni = "mx.example";
  t.alpn = "smtp";
  t.client_certificate =
      core::client_certificate{"CN=client", "CN=ca", "2027-01-01T00:00:00.000Z", "ab12"};
  t.client_hello = hello();
  t.failed_handshakes = {{1'800'000'000'123, "127.0.0.2", "no shared cipher", hello(),
                          core::failure_class::cipher, "s1", 2.5},
                         {1'800'000'000'456, "127.0.0.2", "unexpected eof", std::nullopt,
                          core::failure_class::aborted, "s2", std::nullopt}};
  return t;
}

core::connection_facts connection() {
  core::connection_facts c;
  c.client_ip = "::1";
  c.client_port = 50123;
  c.local_ip = "::1";
  c.local_port = 2525;
  c.ipv6 = true;
  c.helo = "client.example";
  c.esmtp = true;
  c.early_talker = true;
  c.started_at = 1'800'000'000'001;
  return c;
}

std::vector<core::transcript_line> transcript() {
  return {{0, core::direction::server, "220 mx.example ESMTP"},
          {1.5, core::direction::client, "EHLO client.example"},
          {12.25, core::direction::tls, "TLSv1.3 TLS_AES_256_GCM_SHA384"}};
}

core::delivery delivery() {
  core::delivery d;
  d.test_id = "abcdefgh23456789";
  d.number = 7;
  d.received_at = 1'800'000'000'999;
  d.session_id = "s123";
  d.connection = connection();
  d.tls = tls();
  d.envelope = {"a@sender.example",
                {"abcdefgh23456789@mx.example", "postmaster@mx.example"},
                core::body_type::eight_bit_mime,
                true,
                4096};
  d.data = {1, 2, 3, 1200, 40, 1, 77};
  d.transcript = transcript();
  return d;  // raw stays empty: the JSON form holds the facts only
}

}  // namespace

TEST_CASE("json: every core type reads back as written", "[core]") {
  CHECK(round_trip(hello()) == hello());
  core::client_hello bare;
  CHECK(round_trip(bare) == bare);
  CHECK(round_trip(*tls().client_certificate) == *tls().client_certificate);
  CHECK(round_trip(tls().failed_handshakes[0]) == tls().failed_handshakes[0]);
  CHECK(round_trip(tls().failed_handshakes[1]) == tls().failed_handshakes[1]);
  CHECK(round_trip(tls()) == tls());
  core::tls_facts plaintext;
  CHECK(round_trip(plaintext) == plaintext);
  CHECK(round_trip(connection()) == connection());
  for (const auto& line : transcript()) CHECK(round_trip(line) == line);
  CHECK(round_trip(delivery().data) == delivery().data);
  for (auto body : {core::body_type::none, core::body_type::seven_bit,
                    core::body_type::eight_bit_mime, core::body_type::binary_mime}) {
    auto e = delivery().envelope;
    e.body = body;
    e.declared_size.reset();
    CHECK(round_trip(e) == e);
  }
  core::session_record s{"s9", connection(), tls(), 1'800'000'005'000, 3, "quit", transcript()};
  CHECK(round_trip(s) == s);
  core::test_info t{"abcdefgh23456789",
                    "abcdefgh23456789@mx.example",
                    1'800'000'000'000,
                    1'802'592'000'000,
                    "release 4.2",
                    "accept",
                    true,
                    {"192.0.2.0/24", "2001:db8::/64"}};
  CHECK(round_trip(t) == t);
  core::delivery_summary sum{7, 1'800'000'000'999, "127.0.0.2", "a@b.example", 4096, "TLSv1.2"};
  CHECK(round_trip(sum) == sum);
  CHECK(round_trip(delivery()) == delivery());
}

TEST_CASE("json: derived fields are written for readers and not read back", "[core]") {
  auto d = delivery();
  d.raw = std::string(1234, 'x');
  const auto v = core::to_json(d).as_object();
  CHECK(v.at("envelope").at("size").as_uint64() == 1234);
  CHECK(v.at("connection").at("family").as_string() == "ipv6");
  CHECK(v.at("connection").at("duration_ms").as_double() == 998);
  auto back = core::from_json<core::delivery>(v);
  CHECK(back.raw.empty());
  d.raw.clear();
  CHECK(back == d);
}

TEST_CASE("json: the inverses refuse what was never written", "[core]") {
  auto v = core::to_json(delivery()).as_object();
  auto without = [&](std::string_view path_a, std::string_view path_b = {}) {
    auto copy = v;
    if (path_b.empty()) copy.erase(path_a);
    else copy.at(path_a).as_object().erase(path_b);
    return json::value(copy);
  };
  CHECK_THROWS(core::from_json<core::delivery>(without("tls")));
  CHECK_THROWS(core::from_json<core::delivery>(without("connection", "helo")));
  CHECK_THROWS(core::from_json<core::delivery>(without("envelope", "body")));
  auto wrong = v;
  wrong["delivery"] = "seven";
  CHECK_THROWS(core::from_json<core::delivery>(wrong));
  wrong = v;
  wrong["connection"].as_object()["client_port"] = 70000;  // not a port
  CHECK_THROWS(core::from_json<core::delivery>(wrong));
  wrong = v;
  wrong["transcript"].as_array()[0].as_object()["dir"] = "x";
  CHECK_THROWS(core::from_json<core::delivery>(wrong));
  wrong = v;
  wrong["envelope"].as_object()["body"] = "9BIT";
  CHECK_THROWS(core::from_json<core::delivery>(wrong));
  CHECK_THROWS(core::from_json<core::delivery>(json::value(json::array{})));
}

TEST_CASE("json: times are RFC 3339 UTC with milliseconds, both ways", "[core]") {
  CHECK(core::parse_time("1970-01-01T00:00:00.000Z") == 0);
  CHECK(core::parse_time("2026-12-01T21:13:07.123Z") == 1'796'159'587'123);
  CHECK(core::format_time(1'796'159'587'123) == "2026-12-01T21:13:07.123Z");
  CHECK(core::parse_time("2028-02-29T23:59:59.999Z") ==
        core::parse_time("2028-03-01T00:00:00.000Z") - 1);
  for (const auto* bad :
       {"", "2026-12-01", "2026-12-01T21:13:07Z", "2026-12-01T21:13:07.123",
        "2026-12-01 21:13:07.123Z", "2026-13-01T00:00:00.000Z", "2026-02-31T00:00:00.000Z",
        "2026-12-01T24:00:00.000Z", "2026-12-01T21:13:07.123+00:00", "2026-1a-01T00:00:00.000Z"}) {
    INFO(bad);
    CHECK_THROWS_AS(core::parse_time(bad), std::invalid_argument);
  }
}

TEST_CASE("what the first schema stored reads back (early_talker lived on the session record)",
          "[json]") {
  // As f2d37a2's delivery_facts_json and to_json(session_record) wrote them.
  const char* connection = R"({"client_ip":"127.0.0.2","client_port":40000,"family":"ipv4",
    "local_ip":"127.0.0.1","local_port":2525,"helo":"mail.example","esmtp":true,
    "started_at":"2026-11-20T10:00:00.000Z","duration_ms":12.0})";
  const char* tls = R"({"offered":true,"used":false,"version":null,"cipher":null,"bits":null,
    "group":null,"sni":null,"alpn":null,"client_certificate":null,"client_hello":null,
    "failed_handshakes":[{"at":"2026-11-20T09:59:59.000Z","client_ip":"127.0.0.2",
      "reason":"no shared cipher","client_hello":null}]})";
  const std::string delivery = std::string(R"({"test_id":"abcdefgh","delivery":1,
    "received_at":"2026-11-20T10:00:00.012Z","session_id":"s1","connection":)") +
                               connection + R"(,"tls":)" + tls +
                               R"(,"envelope":{"mail_from":"a@b.example","rcpt_to":["t@mx"],
    "smtputf8":false,"size":10,"body":null,"declared_size":null},
    "data":{"bare_lf":0,"bare_cr":0,"long_lines":0,"max_line":4,"eight_bit":0,"nul":0,"lines":2},
    "transcript":[{"t_ms":1.5,"dir":"c","line":"EHLO mail.example"}]})";
  auto d = core::read_json<core::delivery>(delivery);
  REQUIRE(d.has_value());
  CHECK(d->connection.helo == "mail.example");
  CHECK_FALSE(d->connection.early_talker);
  CHECK(d->tls.failed_handshakes.size() == 1);

  const std::string session = std::string(R"({"id":"s1","connection":)") + connection +
                              R"(,"tls":)" + tls +
                              R"(,"ended_at":"2026-11-20T10:00:01.000Z","messages":1,
    "early_talker":true,"outcome":"quit","transcript":[]})";
  auto s = core::read_json<core::session_record>(session);
  REQUIRE(s.has_value());
  CHECK(s->connection.early_talker);  // taken from the record itself
  CHECK(s->tls.failed_handshakes.front().reason == "no shared cipher");
}

TEST_CASE("a score: a value, or null and why; the first form still reads", "[json]") {
  auto scored = core::read_json<core::score>(
      R"({"value":4,"max":10,"passed":3,"total":9,"errors":2,"unscored":null})");
  REQUIRE(scored.has_value());
  CHECK(*scored == core::score{4, 3, 9, 2, std::nullopt});
  auto unscored = core::read_json<core::score>(
      R"({"value":null,"max":10,"passed":0,"total":3,"errors":3,"unscored":"the analysis failed: x"})");
  REQUIRE(unscored.has_value());
  CHECK(*unscored == core::score{std::nullopt, 0, 3, 3, "the analysis failed: x"});
  // Null exactly when unscored.
  CHECK_FALSE(core::read_json<core::score>(
                  R"({"value":null,"max":10,"passed":0,"total":0,"errors":0,"unscored":null})")
                  .has_value());
  CHECK_FALSE(core::read_json<core::score>(
                  R"({"value":10,"max":10,"passed":0,"total":0,"errors":0,"unscored":"why"})")
                  .has_value());
  // As reports stored before unscored reports have it: a value, no errors, no reason. One that
  // counted no check was an analysis that failed, scored 10: it reads unscored.
  auto old = core::read_json<core::score>(R"({"value":6.5,"max":10,"passed":5,"total":9})");
  REQUIRE(old.has_value());
  CHECK(*old == core::score{6.5, 5, 9, 0, std::nullopt});
  auto old_failed = core::read_json<core::score>(R"({"value":10,"max":10,"passed":0,"total":0})");
  REQUIRE(old_failed.has_value());
  CHECK_FALSE(old_failed->value);
  CHECK(old_failed->unscored == std::optional<std::string>("no check was evaluated"));
}

TEST_CASE("a text that is not the form is an error naming the field, not an exception", "[json]") {
  auto not_json = core::read_json<core::score>("{\"value\": 1,");
  REQUIRE_FALSE(not_json.has_value());
  auto wrong = core::read_json<core::score>(R"({"value":1,"max":10,"passed":"1","total":1})");
  REQUIRE_FALSE(wrong.has_value());
  CHECK(wrong.error() == core::read_error::not_the_form);
  auto nested = json::parse(json::serialize(core::to_json(connection())));
  nested.as_object().erase("esmtp");
  try {
    core::from_json<core::session_record>(json::object{{"id", "x"}, {"connection", nested}});
    FAIL("read a session without esmtp");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()) == "connection: esmtp: missing");
  }
}
