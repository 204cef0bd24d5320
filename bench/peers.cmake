# The reference brokers' clients (bench/run-peers): Mosquitto through
# libmosquitto, nats-server through a small client of our own over OpenSSL.
# Each is built only where its library is installed
# (CURVEBUS_WITH_PEERS=1 scripts/setup-deps), so the normal build needs neither.
pkg_check_modules(MOSQUITTO QUIET IMPORTED_TARGET libmosquitto)
if(MOSQUITTO_FOUND)
  add_executable(curvebus-bench-mqtt mqtt_bench.cpp)
  target_link_libraries(curvebus-bench-mqtt PRIVATE PkgConfig::MOSQUITTO CLI11::CLI11 Threads::Threads
                                                    curvebus_warnings)
endif()

find_package(OpenSSL QUIET)
if(OpenSSL_FOUND)
  add_executable(curvebus-bench-nats nats_bench.cpp)
  target_link_libraries(curvebus-bench-nats PRIVATE OpenSSL::SSL OpenSSL::Crypto CLI11::CLI11 Threads::Threads
                                                    curvebus_warnings)
endif()
