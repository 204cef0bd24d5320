// The one Catch2 main for every test executable linked with curvebus_testsupport.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
