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
  summary.score = {6.5, 5, 9, 0, std::nullopt};
  summary.spf = core::auth_result::pass;
  summary.dkim = {core::auth_result::fail, core::auth_result::pass};
  summary.dmarc = core::auth_result::fail;
  auto line = core::line_of(d, summary, accepted);
  CHECK(line.number == 4);
  CHECK(line.received_at == "2026-11-23T00:00:00.000Z");
  CHECK(json::parse(line.score_json) ==
        json::parse(R"({"value":6.5,"max":10,"passed":5,"total":9,"errors":0,"unscored":null})"));
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

TEST_CASE("a stored score is listed and reported in today's form", "[report]") {
  // A line stored before reports could be unscored, of an analysis that failed ("0 of 0").
  core::report_line line;
  line.received_at = "2026-11-23T00:00:00.000Z";
  line.score_json = R"({"value":10,"max":10,"passed":0,"total":0})";
  line.disposition_json = json::serialize(core::to_json(accepted));
  auto listed = core::to_json(line).at("score");
  CHECK(listed.at("value").is_null());
  CHECK(listed.at("unscored") == "no check was evaluated");
  line.score_json = R"({"value":7.5,"max":10,"passed":3,"total":4})";
  CHECK(core::to_json(line).at("score").at("value") == 7.5);
  line.score_json = "null";  // a line migrated from a delivery with no analysis
  CHECK(core::to_json(line).at("score").is_null());

  // A report of the same age whose analysis listed errors failed: unscored, saying how.
  const json::value errors =
      json::array{"analysis worker crashed (signal 6, Aborted); it was replaced"};
  auto reported =
      core::current_score(json::parse(R"({"value":9,"max":10,"passed":9,"total":10})"), &errors);
  CHECK(reported.at("value").is_null());
  CHECK(reported.at("unscored") ==
        "the analysis failed: analysis worker crashed (signal 6, Aborted); it was replaced");
  // Its "0 of 0" says nothing was evaluated; its errors say why.
  CHECK(core::current_score(json::parse(R"({"value":10,"max":10,"passed":0,"total":0})"), &errors)
            .at("unscored") ==
        "the analysis failed: analysis worker crashed (signal 6, Aborted); it was replaced");
  const json::value none = json::array{};
  CHECK(core::current_score(json::parse(R"({"value":9,"max":10,"passed":9,"total":10})"), &none)
            .at("value")
            .to_number<double>() == 9);
}

TEST_CASE("the report's headers: the header section, bounded, the cut marked", "[report]") {
  auto h = core::report_headers("From: a@b.example\r\nSubject: x\r\n\r\nbody\r\n\r\nmore");
  CHECK(h.at("text") == "From: a@b.example\r\nSubject: x");
  CHECK(h.at("truncated") == false);
  CHECK(h.at("size") == 29);
  CHECK(core::report_headers("Subject: bare\n\nbody").at("text") == "Subject: bare");
  CHECK(core::report_headers("Subject: no body").at("text") == "Subject: no body");
  CHECK(core::report_headers("\r\nbody only").at("text") == "");
  // A header section longer than the bound is cut at the last line end within it.
  std::string big;
  while (big.size() < core::max_header_block + 100)
    big += "X-Filler: " + std::string(60, 'y') + "\r\n";
  auto cut = core::report_headers(big + "\r\nbody");
  const auto& text = cut.at("text").as_string();
  CHECK(cut.at("truncated") == true);
  CHECK(cut.at("size") == big.size() - 2);
  CHECK(text.size() <= core::max_header_block);
  CHECK(text.size() > core::max_header_block - 80);
  CHECK(text.ends_with("\r\n"));
  // The delivery's stored facts carry them, and so does its report.
  core::delivery d;
  d.raw = "Subject: stored\r\n\r\nbody";
  auto facts = core::delivery_facts_json(d);
  CHECK(facts.at("headers").at("text") == "Subject: stored");
  auto report = core::merge_report(json::serialize(facts), json::object{});
  CHECK(report.at("headers").at("text") == "Subject: stored");
}

TEST_CASE("the report takes the Received chain from the analysis", "[report]") {
  core::delivery d;
  const auto facts = json::serialize(core::delivery_facts_json(d));
  const json::array chain{json::object{{"from", "a.example"}, {"by", "b.example"}}};
  CHECK(core::merge_report(facts, json::object{{"received_chain", chain}}).at("received_chain") ==
        chain);
  // A report stored before the chain was read has none.
  CHECK_FALSE(core::merge_report(facts, json::object{}).contains("received_chain"));
}
