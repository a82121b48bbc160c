#include "core/report.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "analyzers/worker/worker.hpp"

using namespace mxlens;
namespace json = boost::json;

namespace {
const json::object accepted{{"code", 250},
                            {"enhanced", "2.0.0"},
                            {"text", "Ok"},
                            {"profile", "accept"},
                            {"reason", nullptr}};
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

TEST_CASE("the listing line comes alike from a whole analysis and from its summary", "[report]") {
  json::object facts{{"received_at", "2026-11-23T00:00:00.000Z"},
                     {"connection", {{"client_ip", "192.0.2.7"}}},
                     {"envelope", {{"mail_from", "a@b.example"}}},
                     {"tls",
                      {{"used", true},
                       {"version", "TLSv1.2"},
                       {"cipher", "X"},
                       {"failed_handshakes", json::array{}}}}};
  json::object analysis{
      {"score", {{"value", 6.5}, {"max", 10}, {"passed", 5}, {"total", 9}}},
      {"auth",
       {{"spf", {{"result", "pass"}, {"domain", "b.example"}}},
        {"dkim", json::array{json::object{{"result", "fail"}, {"domain", "x"}},
                             json::object{{"result", "pass"}, {"domain", "b.example"}}}},
        {"dmarc", {{"result", "fail"}, {"from_domain", "b.example"}}}}},
      {"checks", json::array{json::object{{"id", "smtp.ehlo"}}}},
      {"analysis", {{"duration_ms", 3}, {"errors", json::array{"dns timed out"}}}},
      {"disposition", accepted}};
  auto summary = analyzers::worker::summary_of(analysis);
  CHECK_FALSE(summary.contains("checks"));
  CHECK(summary.at("analysis").at("errors").as_array().size() == 1);
  summary["disposition"] = accepted;
  auto whole = core::line_of(facts, analysis);
  auto brief = core::line_of(facts, summary);
  CHECK(brief.score_json == whole.score_json);
  CHECK(brief.disposition_json == whole.disposition_json);
  CHECK((brief.spf_pass && brief.dkim_pass && !brief.dmarc_pass));
  CHECK((whole.spf_pass && whole.dkim_pass && !whole.dmarc_pass));
  CHECK(brief.tls_version == std::optional<std::string>("TLSv1.2"));
  CHECK(brief.client_ip == "192.0.2.7");
}
