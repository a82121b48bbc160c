// DMARC record parsing and alignment, with expectations from RFC 7489.
#include "analyzers/dmarc/dmarc.hpp"

#include <catch2/catch.hpp>

using namespace mxlens::analyzers;

TEST_CASE("organizational domains follow the public suffix list (RFC 7489 §3.2)", "[dmarc]") {
  CHECK(dmarc::organizational_domain("mail.example.com") == "example.com");
  CHECK(dmarc::organizational_domain("a.b.example.co.uk") == "example.co.uk");
  CHECK(dmarc::organizational_domain("Example.COM.") == "example.com");
  // The private section counts: each github.io user is an organization of its own.
  CHECK(dmarc::organizational_domain("x.alice.github.io") == "alice.github.io");
  CHECK(dmarc::organizational_domain("co.uk") == "co.uk");
}

TEST_CASE("strict alignment is an exact match, relaxed the same organizational domain", "[dmarc]") {
  CHECK(dmarc::aligned("example.com", "example.com", 's'));
  CHECK(dmarc::aligned("example.com", "EXAMPLE.com.", 's'));
  // libopendmarc 1.4.2 passes this in strict mode; RFC 7489 §3.1.1 does not.
  CHECK_FALSE(dmarc::aligned("example.com", "mail.example.com", 's'));
  CHECK(dmarc::aligned("example.com", "mail.example.com", 'r'));
  CHECK(dmarc::aligned("news.example.com", "bounce.example.com", 'r'));
  // One-letter labels are labels like any other (libopendmarc drops them).
  CHECK_FALSE(dmarc::aligned("a.example.com", "b.example.com", 's'));
  // A public suffix aligns with nothing else, not even in relaxed mode.
  CHECK_FALSE(dmarc::aligned("example.com", "com", 'r'));
  CHECK_FALSE(dmarc::aligned("example.co.uk", "co.uk", 'r'));
  CHECK_FALSE(dmarc::aligned("example.com", "example.net", 'r'));
  CHECK_FALSE(dmarc::aligned("alice.github.io", "bob.github.io", 'r'));
}

TEST_CASE("alignment compares A-labels, so either form aligns with the other (RFC 8616 §4)",
          "[dmarc]") {
  CHECK(dmarc::aligned("пример.рф", "xn--e1afmkfd.xn--p1ai", 's'));
  CHECK(dmarc::aligned("xn--e1afmkfd.xn--p1ai", "ПРИМЕР.РФ", 's'));
  CHECK(dmarc::aligned("παράδειγμα.δοκιμή", "mail.xn--hxajbheg2az3al.xn--jxalpdlp", 'r'));
  CHECK(dmarc::aligned("xn--r8jz45g.xn--zckzah", "bounce.例え.テスト", 'r'));
  CHECK_FALSE(dmarc::aligned("пример.рф", "bounce.xn--e1afmkfd.xn--p1ai", 's'));
  CHECK_FALSE(dmarc::aligned("пример.рф", "пример.com", 'r'));
  // An invalid IDN aligns with nothing, not even with itself.
  CHECK_FALSE(dmarc::aligned("xn--abc.example", "xn--abc.example", 's'));
}

TEST_CASE("organizational domains of IDNs are in A-labels (RFC 7489 §3.2, RFC 8616 §4)",
          "[dmarc]") {
  CHECK(dmarc::organizational_domain("mail.пример.рф") == "xn--e1afmkfd.xn--p1ai");
  CHECK(dmarc::organizational_domain("mail.xn--e1afmkfd.xn--p1ai") == "xn--e1afmkfd.xn--p1ai");
  // 公司.香港 is a public suffix of the list, written there in U-labels.
  CHECK(dmarc::organizational_domain("a.b.公司.香港") == "b.xn--55qx5d.xn--j6w193g");
  CHECK(dmarc::organizational_domain("a.b.xn--55qx5d.xn--j6w193g") == "b.xn--55qx5d.xn--j6w193g");
}

TEST_CASE("a DMARC record starts with v=DMARC1, exactly", "[dmarc]") {
  CHECK(dmarc::is_dmarc_record("v=DMARC1; p=none"));
  CHECK(dmarc::is_dmarc_record("v = DMARC1 ;p=none"));  // *WSP around '=' (§6.4)
  CHECK(dmarc::is_dmarc_record("v=DMARC1"));
  CHECK_FALSE(dmarc::is_dmarc_record("p=reject; v=DMARC1"));
  CHECK_FALSE(dmarc::is_dmarc_record("v=dmarc1; p=reject"));
  CHECK_FALSE(dmarc::is_dmarc_record("v=DMARC10; p=reject"));
  CHECK_FALSE(dmarc::is_dmarc_record("v=spf1 -all"));
}

TEST_CASE("tags are parsed strictly; unknown tags are ignored (§6.3)", "[dmarc]") {
  std::string problem;
  auto r = dmarc::parse(
      "v=DMARC1; p=Reject; sp=none; adkim=s; aspf=r; pct=20; "
      "rua=mailto:a@example.com,mailto:b@example.net!10m; fo=1; x-new=1",
      problem);
  REQUIRE(r);
  CHECK(problem.empty());
  CHECK(r->policy == "reject");
  CHECK(r->subdomain_policy == "none");
  CHECK(r->adkim == 's');
  CHECK(r->aspf == 'r');
  CHECK(r->pct == 20);
  CHECK(r->rua == std::vector<std::string>{"mailto:a@example.com", "mailto:b@example.net!10m"});
  CHECK(r->warnings.empty());

  auto defaults = dmarc::parse("v=DMARC1; p=none", problem);
  REQUIRE(defaults);
  CHECK(defaults->pct == 100);
  CHECK(defaults->adkim == 'r');
  CHECK(defaults->aspf == 'r');
  CHECK_FALSE(defaults->subdomain_policy);
}

TEST_CASE("invalid values: p= makes the record unusable unless rua= is valid (§6.6.3)", "[dmarc]") {
  std::string problem;
  CHECK_FALSE(dmarc::parse("v=DMARC1; p=bogus", problem));
  CHECK(problem == "p=bogus is not a valid policy");
  CHECK_FALSE(dmarc::parse("v=DMARC1; rua=nonsense", problem));
  CHECK(problem == "p= is missing");
  CHECK_FALSE(dmarc::parse("v=DMARC1; p=reject; sp=maybe", problem));

  auto with_rua = dmarc::parse("v=DMARC1; rua=mailto:d@example.com", problem);
  REQUIRE(with_rua);
  CHECK(with_rua->policy == "none");

  auto bad_modes = dmarc::parse("v=DMARC1; p=quarantine; adkim=x; pct=150", problem);
  REQUIRE(bad_modes);
  CHECK(bad_modes->adkim == 'r');
  CHECK(bad_modes->pct == 100);
  CHECK(bad_modes->warnings.size() == 2);

  CHECK_FALSE(dmarc::parse("p=reject", problem));
  CHECK(problem.empty());  // not a DMARC record at all
}

TEST_CASE("bytes that are not ASCII: named as \\xHH, never a valid value (§6.3, §6.4)", "[dmarc]") {
  std::string problem;
  // A byte order mark before v=DMARC1: not a DMARC record (§6.6.3 step 2).
  CHECK_FALSE(dmarc::is_dmarc_record("\xEF\xBB\xBFv=DMARC1; p=reject"));
  CHECK_FALSE(dmarc::parse("\xEF\xBB\xBFv=DMARC1; p=reject", problem));
  CHECK(problem.empty());

  CHECK_FALSE(
      dmarc::parse("v=DMARC1; p=rej\x80"
                   "ect",
                   problem));
  CHECK(problem == "p=rej\\x80ect is not a valid policy");

  auto dash = dmarc::parse("v=DMARC1; p=quarantine\x96; rua=mailto:d@example.com", problem);
  REQUIRE(dash);
  CHECK(dash->policy == "none");  // §6.6.3 step 6.1
  CHECK(dash->warnings ==
        std::vector<std::string>{"p=quarantine\\x96 is not a valid policy: treated as p=none"});

  // A URI is ASCII (RFC 3986 §2): the address is ignored, the policy stands.
  auto rua = dmarc::parse("v=DMARC1; p=reject; rua=mailto:d\x96r@example.com", problem);
  REQUIRE(rua);
  CHECK(rua->policy == "reject");
  CHECK(rua->rua.empty());
  CHECK(rua->warnings == std::vector<std::string>{"invalid rua URI 'mailto:d\\x96r@example.com' "
                                                  "ignored"});
}

TEST_CASE("the DMARCbis tree walk asks at most 8 names (draft-ietf-dmarc-dmarcbis §4.10)",
          "[dmarc]") {
  using v = std::vector<std::string>;
  CHECK(dmarc::tree_walk_names("mail.example.com") == v{"mail.example.com", "example.com", "com"});
  CHECK(dmarc::tree_walk_names("example.") == v{"example"});
  // 7 labels: one removed at a time.
  CHECK(dmarc::tree_walk_names("a.b.c.d.e.f.g") ==
        v{"a.b.c.d.e.f.g", "b.c.d.e.f.g", "c.d.e.f.g", "d.e.f.g", "e.f.g", "f.g", "g"});
  // 8 labels and more: the second name keeps the last 7.
  CHECK(dmarc::tree_walk_names("x.a.b.c.d.e.f.g") == v{"x.a.b.c.d.e.f.g", "a.b.c.d.e.f.g",
                                                       "b.c.d.e.f.g", "c.d.e.f.g", "d.e.f.g",
                                                       "e.f.g", "f.g", "g"});
  CHECK(dmarc::tree_walk_names("1.2.3.4.5.6.7.8.9.10.11").size() == 8);
  CHECK(dmarc::tree_walk_names("1.2.3.4.5.6.7.8.9.10.11")[1] == "5.6.7.8.9.10.11");
  CHECK(dmarc::tree_walk_names("").empty());
}

TEST_CASE("DMARCbis tags psd=, np= and t= are read; RFC 7489's reading is unchanged", "[dmarc]") {
  std::string problem;
  auto r = dmarc::parse("v=DMARC1; p=none; sp=quarantine; np=reject; psd=n; t=y", problem);
  REQUIRE(r);
  CHECK(r->policy == "none");
  CHECK(r->subdomain_policy == "quarantine");
  CHECK(r->np == "reject");
  CHECK(r->psd == 'n');
  CHECK(r->testing);
  CHECK(r->warnings.empty());
  auto plain = dmarc::parse("v=DMARC1; p=reject", problem);
  REQUIRE(plain);
  CHECK(plain->psd == 'u');
  CHECK_FALSE(plain->np);
  CHECK_FALSE(plain->testing);
  auto bad = dmarc::parse("v=DMARC1; p=reject; np=block; psd=maybe; t=1", problem);
  REQUIRE(bad);
  CHECK(bad->policy == "reject");
  CHECK(bad->warnings == std::vector<std::string>{"invalid np=block ignored",
                                                  "invalid psd=maybe ignored",
                                                  "invalid t=1 ignored"});
}
