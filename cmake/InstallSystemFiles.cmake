# Run by `cmake --install` and by CPack (install(SCRIPT), component provd):
# the files whose place depends on the prefix chosen at install time.
#   PREFIX/lib/systemd/system/provd.service   naming PREFIX/bin/provd
#   /etc/provd/provd.yaml (prefix /usr, as GNUInstallDirs places
#   sysconfdir), else PREFIX/etc/provd/provd.yaml: the example config,
#   never overwritten (dpkg treats it as a conffile).
# PROVD_PACKAGING_DIR, PROVD_UNIT_STAGING_DIR (where the unit is written
# before it is installed: the build tree) and PROVD_INSTALL_BINDIR come
# from cmake/ProvdPackage.cmake.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(_confdir /etc/provd)
else()
  set(_confdir ${CMAKE_INSTALL_PREFIX}/etc/provd)
endif()
set(_unitdir ${CMAKE_INSTALL_PREFIX}/lib/systemd/system)
set(_staged $ENV{DESTDIR})

set(BINDIR ${CMAKE_INSTALL_PREFIX}/${PROVD_INSTALL_BINDIR})
set(CONFDIR ${_confdir})
# One staging file per destination: installs into two prefixes at once
# (cpack and a test's cmake --install) must not swap units.
string(MD5 _destination "${_staged}${CMAKE_INSTALL_PREFIX}")
set(_unit ${PROVD_UNIT_STAGING_DIR}/${_destination}/provd.service)
configure_file(${PROVD_PACKAGING_DIR}/provd.service.in ${_unit} @ONLY)
file(INSTALL ${_unit}
     DESTINATION ${_unitdir}
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

if(EXISTS "${_staged}${_confdir}/provd.yaml")
  message(STATUS "Keeping: ${_staged}${_confdir}/provd.yaml")
else()
  file(INSTALL ${PROVD_PACKAGING_DIR}/provd.yaml DESTINATION ${_confdir}
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endif()
