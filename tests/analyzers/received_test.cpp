// The Received chain: RFC 5321 §4.4 stamps as Postfix, Exim, sendmail, Microsoft and Gmail write
// them, the shapes that break the grammar, and the bounds on what a sender can make it cost.
#include "analyzers/message/received.hpp"

#include <catch2/catch.hpp>

#include "analyzers/message/message.hpp"

using namespace mxlens::analyzers;
using message::parse_received;

TEST_CASE("Postfix: the TLS comment after the client, ESMTPS, the date with its comment",
          "[received]") {
  const auto h = parse_received(
      " from mail.example.org (mail.example.org [192.0.2.10])\r\n"
      "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\r\n"
      "\t key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)\r\n"
      "\t(No client certificate requested)\r\n"
      "\tby mx.example.net (Postfix) with ESMTPS id 4XyZ12abcd\r\n"
      "\tfor <user@example.net>; Tue,  3 Dec 2024 10:15:02 +0000 (UTC)");
  CHECK(h.from == "mail.example.org (mail.example.org [192.0.2.10])");
  CHECK(h.by == "mx.example.net (Postfix)");
  CHECK(h.with == "ESMTPS");
  CHECK(h.tls == "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)");
  CHECK(h.at == "2024-12-03T10:15:02.000Z");
  CHECK_FALSE(message::in_clear_text(h));

  const auto clear = parse_received(
      " from relay.example.org (relay.example.org [192.0.2.20])\r\n"
      "\tby mx.example.net (Postfix) with ESMTP id 4XyZ12abce\r\n"
      "\tfor <user@example.net>; Tue,  3 Dec 2024 10:15:01 +0000 (UTC)");
  CHECK(clear.with == "ESMTP");
  CHECK_FALSE(clear.tls);
  CHECK(message::in_clear_text(clear));

  // A content filter on the same host, and a message picked up from the local queue: no
  // network hop, so not named even though neither is in TLS.
  CHECK_FALSE(message::in_clear_text(parse_received(
      " from localhost (localhost [127.0.0.1]) by mx.example.net (Postfix) with ESMTP id 1; "
      "Tue, 3 Dec 2024 10:15:02 +0000")));
  CHECK_FALSE(message::in_clear_text(parse_received(
      " from localhost (localhost [IPv6:::1]) by mx.example.net (Postfix) with ESMTP id 1; "
      "Tue, 3 Dec 2024 10:15:02 +0000")));
  const auto pickup = parse_received(
      " by mail.example.org (Postfix, from userid 1000)\r\n\tid 4Xy0; Tue,  3 Dec 2024 "
      "10:15:00 +0000 (UTC)");
  CHECK_FALSE(pickup.from);
  CHECK(pickup.by == "mail.example.org (Postfix, from userid 1000)");
  CHECK_FALSE(message::in_clear_text(pickup));
}

TEST_CASE("Exim: helo= in the TCP-info, esmtps, (TLS1.3) and its own tls clause", "[received]") {
  const auto h = parse_received(
      " from [192.0.2.1] (helo=client.example)\r\n"
      "\tby mx.example with esmtps  (TLS1.3) tls TLS_AES_256_GCM_SHA384\r\n"
      "\t(Exim 4.96)\r\n"
      "\t(envelope-from <a@b.example>)\r\n"
      "\tid 1tIxyz-000abc-2D\r\n"
      "\tfor c@d.example;\r\n"
      "\tTue, 03 Dec 2024 10:15:02 +0000");
  CHECK(h.from == "[192.0.2.1] (helo=client.example)");
  CHECK(h.by == "mx.example");
  CHECK(h.with == "esmtps");
  CHECK(h.tls == "TLS1.3 TLS_AES_256_GCM_SHA384");
  CHECK(h.at == "2024-12-03T10:15:02.000Z");
  // Older Exim releases: version, cipher and bits in one comment.
  const auto old = parse_received(
      " from a.example ([192.0.2.2]) by mx.example with esmtps "
      "(TLS1.2:ECDHE-RSA-AES256-GCM-SHA384:256) (Exim 4.89) id 1; Tue, 03 Dec 2024 10:15:02 "
      "+0000");
  CHECK(old.tls == "TLS1.2:ECDHE-RSA-AES256-GCM-SHA384:256");
  const auto clear = parse_received(
      " from [192.0.2.1] (helo=client.example) by mx.example with esmtp (Exim 4.96) id 1; "
      "Tue, 03 Dec 2024 10:15:02 +0000");
  CHECK_FALSE(clear.tls);
  CHECK(message::in_clear_text(clear));  // RFC 3848 types are case-insensitive
}

TEST_CASE("Gmail: SMTPS and Google Transport Security; its internal hops name no client",
          "[received]") {
  const auto h = parse_received(
      " from mail-sor-f41.google.com (mail-sor-f41.google.com. [209.85.220.41])\r\n"
      "        by mx.google.com with SMTPS id a640c23a62f3a-aa5\r\n"
      "        for <x@example.com>\r\n"
      "        (Google Transport Security);\r\n"
      "        Tue, 03 Dec 2024 02:15:02 -0800 (PST)");
  CHECK(h.from == "mail-sor-f41.google.com (mail-sor-f41.google.com. [209.85.220.41])");
  CHECK(h.by == "mx.google.com");
  CHECK(h.with == "SMTPS");
  CHECK(h.tls == "Google Transport Security");
  CHECK(h.at == "2024-12-03T10:15:02.000Z");
  const auto internal = parse_received(
      " by 2002:a05:6a20:3d8a:b0:1e0:c5a9:1f0e with SMTP id a10csp1234;\r\n"
      "        Tue, 3 Dec 2024 02:15:01 -0800 (PST)");
  CHECK(internal.by == "2002:a05:6a20:3d8a:b0:1e0:c5a9:1f0e");
  CHECK(internal.with == "SMTP");
  CHECK_FALSE(internal.tls);
  CHECK_FALSE(message::in_clear_text(internal));
}

TEST_CASE("Microsoft and sendmail: version= and cipher= in a comment, a with of three words",
          "[received]") {
  const auto h = parse_received(
      " from AM0PR02MB1234.eurprd02.prod.outlook.com (2603:10a6:208:1a::12) by "
      "DB9PR02MB5678.eurprd02.prod.outlook.com (2603:10a6:10:2b::9) with Microsoft SMTP Server "
      "(version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.8207.12; Tue, 3 "
      "Dec 2024 10:15:02 +0000");
  CHECK(h.from == "AM0PR02MB1234.eurprd02.prod.outlook.com (2603:10a6:208:1a::12)");
  CHECK(h.by == "DB9PR02MB5678.eurprd02.prod.outlook.com (2603:10a6:10:2b::9)");
  CHECK(h.with == "Microsoft SMTP Server");
  CHECK(h.tls == "version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384");
  // Without the comment Exchange says nothing a registered type would: unknown, not named.
  const auto plain = parse_received(
      " from a.outlook.com (2603:10a6::1) by b.outlook.com (2603:10a6::2) with Microsoft SMTP "
      "Server id 15.20.8207.12 via Frontend Transport; Tue, 3 Dec 2024 10:15:02 +0000");
  CHECK_FALSE(plain.tls);
  CHECK_FALSE(message::in_clear_text(plain));
  const auto sendmail = parse_received(
      " from a.example (a.example [192.0.2.5]) by mx.example (8.17.1/8.17.1) with ESMTPS id "
      "4B3AF2 (version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256 verify=NOT) for "
      "<u@mx.example>; Tue, 3 Dec 2024 10:15:02 GMT");
  CHECK(sendmail.tls == "version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256 verify=NOT");
  CHECK(sendmail.at == "2024-12-03T10:15:02.000Z");
}

TEST_CASE("malformed stamps: no date, a bad date, open comments, keywords alone, bytes",
          "[received]") {
  CHECK(parse_received("") == message::hop{});
  CHECK(parse_received(" ;") == message::hop{});
  const auto no_date = parse_received(" from a.example by b.example with ESMTP");
  CHECK(no_date.from == "a.example");
  CHECK_FALSE(no_date.at);
  // A date that RFC 5322 §3.3 does not read is kept as written.
  CHECK(parse_received(" from a by b; yesterday at noon").at == "yesterday at noon");
  // The date is after the last ';' outside comments.
  CHECK(parse_received(" from a (x; y) by b; Tue, 3 Dec 2024 10:15:02 +0000").at ==
        "2024-12-03T10:15:02.000Z");
  // qmail: a comment and a date, no clause.
  const auto qmail = parse_received(" (qmail 1234 invoked by uid 0); 3 Dec 2024 10:15:02 -0000");
  CHECK_FALSE(qmail.from);
  CHECK_FALSE(qmail.by);
  CHECK(qmail.at == "2024-12-03T10:15:02.000Z");
  // An unterminated comment runs to the end; a backslash at the very end quotes nothing.
  const auto open = parse_received(" from a.example (unterminated (nested by b.example\\");
  CHECK(open.from == "a.example (unterminated (nested by b.example\\)");
  CHECK_FALSE(open.by);
  CHECK(parse_received(" from \"quoted ; by x\" by b").by == "b");
  CHECK(parse_received(" from by with for id").with == "");
  // Octets that are not UTF-8 are kept as they came (the report shows them escaped).
  CHECK(parse_received(" from \xff\xfe.example by b").from == "\xff\xfe.example");
}

TEST_CASE("bounds: each field cut at a character, the value read up to 8 KiB, 50 hops kept",
          "[received]") {
  const std::string long_name(1000, 'a');
  const auto h = parse_received(" from " + long_name + " by b");
  REQUIRE(h.from);
  CHECK(h.from->size() == message::max_hop_field);
  // A two-octet character across the cut is dropped whole, not split.
  const auto utf8 = parse_received(" from " + std::string(255, 'a') + "\xc3\xa9" + " by b");
  CHECK(utf8.from == std::string(255, 'a'));
  // Words past the bound are not read, however many.
  std::string many = " from a";
  for (int i = 0; i < 20000; ++i) many += " by b" + std::to_string(i);
  const auto m = parse_received(many);
  REQUIRE(m.by);
  CHECK(m.by->size() <= message::max_hop_field);
  CHECK(m.by->starts_with("b0 "));  // "by" again starts the clause again, never a new hop

  std::string raw;
  for (int i = 0; i < 1000; ++i)
    raw += "Received: from h" + std::to_string(i) + ".example by mx" + std::to_string(i) +
           ".example with ESMTP; Tue, 3 Dec 2024 10:15:02 +0000\r\n";
  raw += "\r\nbody";
  const auto chain = message::read_received(message::header_fields(raw));
  CHECK(chain.fields == 1000);
  REQUIRE(chain.hops.size() == message::max_hops);
  // The newest 50 (the first fields), oldest of them first.
  CHECK(chain.hops.front().from == "h49.example");
  CHECK(chain.hops.back().from == "h0.example");
}
