# provd_add_plugin(NAME <name> SOURCES <src...> [LIBS <targets...>])
# Builds a plugin as a MODULE library named <name>.so, the way the loader
# looks it up (`plugin_path`/<name>.so).  Only `provd_plugin_v1` is exported
# (-fvisibility=hidden), and -Wl,--no-undefined makes an accidental
# dependency on a daemon symbol a link error.
function(provd_add_plugin)
  cmake_parse_arguments(P "" "NAME" "SOURCES;LIBS" ${ARGN})
  set(target provd_plugin_${P_NAME})
  string(REPLACE "-" "_" target "${target}")
  add_library(${target} MODULE ${P_SOURCES})
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    OUTPUT_NAME ${P_NAME}
    C_VISIBILITY_PRESET hidden
    LIBRARY_OUTPUT_DIRECTORY ${PROVD_PLUGIN_BUILD_DIR})
  if(TARGET provd_headers)
    target_link_libraries(${target} PRIVATE provd_headers)
  endif()
  target_link_libraries(${target} PRIVATE ${P_LIBS})
  target_link_options(${target} PRIVATE -Wl,--no-undefined)
  if(DEFINED PROVD_PLUGIN_INSTALL_DIR)
    install(TARGETS ${target} LIBRARY DESTINATION ${PROVD_PLUGIN_INSTALL_DIR})
  endif()
endfunction()
