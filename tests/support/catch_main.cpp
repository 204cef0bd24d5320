// The one Catch2 main for every test executable linked with curvebus_testsupport.
//
// "No test cases matched" fails the run (exit 2), as `--warn NoTests` does:
// ctest runs each test by its name, and a name that does not select its test
// -- a ';' in a Catch2 title splits it into two ctest entries, neither
// matching -- would otherwise pass having run nothing.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

int main(int argc, char* argv[]) {
  Catch::Session session;
  const int parsed = session.applyCommandLine(argc, argv);
  if (parsed != 0) return parsed;
  Catch::ConfigData& config = session.configData();
  config.warnings =
      static_cast<Catch::WarnAbout::What>(config.warnings | Catch::WarnAbout::NoTests);
  return session.run();
}
