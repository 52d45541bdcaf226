# provd_add_plugin(NAME <name> SOURCES <src...> [LIBS <targets...>])
# Builds a plugin as a MODULE library named <name>.so, the way the loader
# looks it up (`plugin_path`/<name>.so).  Only `provd_plugin_v1` is exported
# (-fvisibility=hidden), and -Wl,--no-undefined makes an accidental
# dependency on a daemon symbol a link error.
#
# The same file serves the provd tree and the installed SDK
# (find_package(provd) includes it from provdConfig.cmake): the only
# include directory a plugin gets is the SDK's, through provd::headers.
function(provd_add_plugin)
  cmake_parse_arguments(P "" "NAME" "SOURCES;LIBS" ${ARGN})
  if(NOT TARGET provd::headers)
    message(FATAL_ERROR "provd_add_plugin: no provd::headers target; "
      "call find_package(provd) first")
  endif()
  set(target provd_plugin_${P_NAME})
  string(REPLACE "-" "_" target "${target}")
  add_library(${target} MODULE ${P_SOURCES})
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    OUTPUT_NAME ${P_NAME}
    C_STANDARD 11
    C_STANDARD_REQUIRED ON
    C_VISIBILITY_PRESET hidden)
  if(DEFINED PROVD_PLUGIN_BUILD_DIR)
    set_target_properties(${target} PROPERTIES
      LIBRARY_OUTPUT_DIRECTORY ${PROVD_PLUGIN_BUILD_DIR})
  endif()
  if(DEFINED PROVD_SDK_VERSION)
    target_compile_definitions(${target} PRIVATE
      PROVD_VERSION="${PROVD_SDK_VERSION}")
  endif()
  target_compile_options(${target} PRIVATE
    $<$<C_COMPILER_ID:GNU,Clang>:-Wall -Wextra>)
  target_link_libraries(${target} PRIVATE provd::headers ${P_LIBS})
  target_link_options(${target} PRIVATE -Wl,--no-undefined)
  if(DEFINED PROVD_PLUGIN_INSTALL_DIR)
    install(TARGETS ${target} LIBRARY DESTINATION ${PROVD_PLUGIN_INSTALL_DIR})
  endif()
endfunction()
