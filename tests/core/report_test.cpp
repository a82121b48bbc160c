#include "core/report.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "core/json.hpp"

using namespace mxlens;
namespace json = boost::json;

namespace {
const core::disposition accepted{250, "2.0.0", "Ok", "accept", std::nullopt};
}

TEST_CASE("a disposition joins an analysis's text as its last member", "[report]") {
  auto with = core::with_disposition(R"({"score":{"value":9},"checks":[]})", accepted);
  auto parsed = json::parse(with).as_object();
  CHECK(parsed.at("disposition").at("code") == 250);
  CHECK(parsed.at("score").at("value") == 9);
  CHECK(parsed.size() == 3);
  CHECK(json::parse(core::with_disposition("{}", accepted)).as_object().size() == 1);
  CHECK(json::parse(core::with_disposition("{ }\n", accepted)).as_object().size() == 1);
  CHECK_THROWS_AS(core::with_disposition("[1]", accepted), std::invalid_argument);
  CHECK_THROWS_AS(core::with_disposition("", accepted), std::invalid_argument);
}

TEST_CASE("the listing line: the recorded facts, the analysis summary, the answer", "[report]") {
  core::delivery d;
  d.number = 4;
  d.received_at = core::parse_time("2026-11-23T00:00:00.000Z");
  d.connection.client_ip = "192.0.2.7";
  d.envelope.mail_from = "a@b.example";
  d.tls.used = true;
  d.tls.version = "TLSv1.2";
  d.tls.cipher = "X";
  d.tls.failed_handshakes = {
      {1, "192.0.2.7", "no shared cipher", std::nullopt, core::failure_class::cipher, "s1", 3.0}};
  core::analysis_summary summary;
  summary.score = {6.5, 5, 9};
  summary.spf = core::auth_result::pass;
  summary.dkim = {core::auth_result::fail, core::auth_result::pass};
  summary.dmarc = core::auth_result::fail;
  auto line = core::line_of(d, summary, accepted);
  CHECK(line.number == 4);
  CHECK(line.received_at == "2026-11-23T00:00:00.000Z");
  CHECK(json::parse(line.score_json) ==
        json::parse(R"({"value":6.5,"max":10,"passed":5,"total":9})"));
  CHECK(core::from_json<core::disposition>(json::parse(line.disposition_json)) == accepted);
  CHECK((line.spf_pass && line.dkim_pass && !line.dmarc_pass));
  CHECK(line.tls_version == std::optional<std::string>("TLSv1.2"));
  CHECK(line.tls_cipher == std::optional<std::string>("X"));
  CHECK(line.failed_handshakes == 1);
  CHECK(line.client_ip == "192.0.2.7");
  CHECK(line.mail_from == "a@b.example");

  d.tls.used = false;  // plaintext: no TLS version, whatever else was recorded
  CHECK_FALSE(core::line_of(d, summary, accepted).tls_version);
}
