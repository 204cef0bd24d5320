#include <catch2/catch.hpp>

#include "curvebus/topic.hpp"

using curvebus::check_pattern;
using curvebus::check_topic;
using curvebus::topic_matches;

TEST_CASE("topic names: valid and invalid", "[topic]") {
  CHECK(check_topic("robot/alex/telemetry").empty());
  CHECK(check_topic("a").empty());
  CHECK(check_topic("$SYS/presence/dev").empty());
  CHECK(check_topic("a//b").empty());  // empty levels are allowed, as in MQTT
  CHECK_FALSE(check_topic("").empty());
  CHECK_FALSE(check_topic("robot/+/cmd").empty());
  CHECK_FALSE(check_topic("robot/#").empty());
  CHECK_FALSE(check_topic(std::string("a\0b", 3)).empty());
  CHECK_FALSE(check_topic("bad\xff utf8").empty());
  CHECK_FALSE(check_topic(std::string(257, 'x')).empty());
  CHECK(check_topic(std::string(256, 'x')).empty());
  CHECK_FALSE(check_topic("a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q").empty());  // 17 levels
  CHECK(check_topic("caf\xc3\xa9/\xe2\x82\xac").empty());
}

TEST_CASE("utf8 validation rejects overlongs and surrogates", "[topic]") {
  CHECK_FALSE(curvebus::is_valid_utf8("\xc0\xaf"));          // overlong '/'
  CHECK_FALSE(curvebus::is_valid_utf8("\xed\xa0\x80"));      // surrogate
  CHECK_FALSE(curvebus::is_valid_utf8("\xf4\x90\x80\x80"));  // > U+10FFFF
  CHECK_FALSE(curvebus::is_valid_utf8("\xe2\x82"));          // truncated
  CHECK(curvebus::is_valid_utf8("\xf0\x9f\xa4\x96"));        // robot face
}

TEST_CASE("patterns: wildcards must fill a level, # only last", "[topic]") {
  CHECK(check_pattern("#").empty());
  CHECK(check_pattern("+").empty());
  CHECK(check_pattern("robot/+/telemetry").empty());
  CHECK(check_pattern("robot/#").empty());
  CHECK(check_pattern("+/+/#").empty());
  CHECK_FALSE(check_pattern("robot/#/x").empty());
  CHECK_FALSE(check_pattern("robot/a+").empty());
  CHECK_FALSE(check_pattern("robot/#x").empty());
  CHECK_FALSE(check_pattern("").empty());
}

TEST_CASE("pattern matching follows MQTT semantics", "[topic]") {
  CHECK(topic_matches("robot/alex/telemetry", "robot/alex/telemetry"));
  CHECK_FALSE(topic_matches("robot/alex/telemetry", "robot/alex/status"));
  CHECK(topic_matches("robot/+/telemetry", "robot/alex/telemetry"));
  CHECK_FALSE(topic_matches("robot/+/telemetry", "robot/alex/x/telemetry"));
  CHECK_FALSE(topic_matches("robot/+", "robot"));
  CHECK(topic_matches("robot/+", "robot/"));
  CHECK(topic_matches("robot/#", "robot"));
  CHECK(topic_matches("robot/#", "robot/alex"));
  CHECK(topic_matches("robot/#", "robot/alex/telemetry/x"));
  CHECK_FALSE(topic_matches("robot/#", "robots/alex"));
  CHECK(topic_matches("#", "a/b/c"));
  CHECK(topic_matches("+/+", "a/b"));
  CHECK_FALSE(topic_matches("+/+", "a/b/c"));
  CHECK_FALSE(topic_matches("a/b", "a"));
  CHECK_FALSE(topic_matches("a", "a/b"));
}

TEST_CASE("wildcards at the first level do not match $ topics", "[topic]") {
  CHECK_FALSE(topic_matches("#", "$SYS/presence/dev"));
  CHECK_FALSE(topic_matches("+/presence/dev", "$SYS/presence/dev"));
  CHECK(topic_matches("$SYS/#", "$SYS/presence/dev"));
  CHECK(topic_matches("$SYS/presence/+", "$SYS/presence/dev"));
}
