# Benchmark programs (never run under ctest; see docs/benchmark.md).
set(_bench_dir ${CMAKE_CURRENT_LIST_DIR})

add_executable(provd-loadgen
  ${_bench_dir}/loadgen.c
  ${_bench_dir}/lg_engine.c
  ${_bench_dir}/lg_http.c
  ${_bench_dir}/lg_modes.c
  ${_bench_dir}/lg_stats.c
  ${_bench_dir}/lg_x509.c
  ${_bench_dir}/lg_tpm.c
  ${_bench_dir}/lg_mqtt.c
  ${CMAKE_SOURCE_DIR}/core/net/mqtt_codec.c
  ${CMAKE_SOURCE_DIR}/plugins/attestation-tpm/tpm_crypto.c)
pkg_check_modules(BENCH_TSS2_MU REQUIRED IMPORTED_TARGET tss2-mu)
target_include_directories(provd-loadgen PRIVATE
  ${CMAKE_SOURCE_DIR}/plugins/attestation-tpm)
target_link_libraries(provd-loadgen PRIVATE provd_util PkgConfig::OPENSSL
                      PkgConfig::JANSSON PkgConfig::BENCH_TSS2_MU)
set_target_properties(provd-loadgen PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)

add_executable(provd-tls-baseline ${_bench_dir}/tls_baseline.c)
target_link_libraries(provd-tls-baseline PRIVATE provd_core)
# The baseline is provd's listener stack: the same allocator too.
provd_use_jemalloc(provd-tls-baseline)
set_target_properties(provd-tls-baseline PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
