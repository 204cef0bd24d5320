# Scenario benchmarks (issue 5): latency at a fixed rate, idle-peer scale and a
# slow subscriber.  Raw v1 peers, as curvebus-bench-throughput; scripts
# bench/run-latency, bench/run-scale and bench/run-slow run them.
foreach(scenario latency idle_peers slow_subscriber)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${scenario}.cpp)
    string(REPLACE "_" "-" target_name "curvebus-bench-${scenario}")
    add_executable(${target_name} ${scenario}.cpp)
    target_link_libraries(${target_name} PRIVATE curvebus_keys curvebus_protocol cppzmq CLI11::CLI11
                                                 Threads::Threads curvebus_warnings)
  endif()
endforeach()
