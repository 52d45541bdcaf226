# The Debian packages, built by `make package` (cpack -G DEB):
#   provd      provd, provctl, provd-device, libprovd-device.so.0, the
#              plugins (lib/provd/plugins), the mosquitto broker plugin
#              (lib/provd/mosquitto), provd.service, /etc/provd/provd.yaml
#   provd-dev  the SDK: include/provd, provd-plugin.pc, provd-device.pc,
#              the CMake package and libprovd-device.so
# Every install rule without a COMPONENT belongs to provd
# (CMAKE_INSTALL_DEFAULT_COMPONENT_NAME, set in CMakeLists.txt); the SDK's
# rules say COMPONENT dev.

# The unit and the example config (cmake/InstallSystemFiles.cmake).
install(CODE "set(PROVD_PACKAGING_DIR \"${CMAKE_SOURCE_DIR}/packaging\")
set(PROVD_UNIT_STAGING_DIR \"${CMAKE_BINARY_DIR}/packaging\")
set(PROVD_INSTALL_BINDIR \"${CMAKE_INSTALL_BINDIR}\")" COMPONENT provd)
install(SCRIPT ${CMAKE_SOURCE_DIR}/cmake/InstallSystemFiles.cmake
        COMPONENT provd)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME provd)
set(CPACK_PACKAGE_VENDOR "provd")
set(CPACK_PACKAGE_CONTACT "provd maintainers <provd@localhost>")
# Each package's first description line is its summary (so no
# CPACK_PACKAGE_DESCRIPTION_SUMMARY, which CPack would put above both).
# The unit and the config are placed by a script that needs the final
# prefix (/usr) at install time, not a staging directory.
set(CPACK_SET_DESTDIR ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES OFF)

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL provd dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # provd_0.1.0_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Depends: from the shared libraries the binaries and plugins link
# (dpkg-shlibdeps), plus what the maintainer scripts run.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# A shlibs file for libprovd-device.so.0, so packages linking it get
# "provd (>= VERSION)"; CPack warns that the plugins (modules) have no
# soname, which is right for them.  packaging/debian/triggers runs
# ldconfig.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)

set(CPACK_DEBIAN_PROVD_PACKAGE_NAME provd)
set(CPACK_DEBIAN_PROVD_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PROVD_DESCRIPTION
"device provisioning service compatible with Azure IoT Hub DPS
provd serves the DPS device API (HTTPS and MQTT) and service API with
plugins for attestation, allocation, notifiers, hub connectors and
storage, configured in /etc/provd/provd.yaml and run by provd.service.")
set(_debian ${CMAKE_SOURCE_DIR}/packaging/debian)
set(CPACK_DEBIAN_PROVD_PACKAGE_CONTROL_EXTRA
    ${_debian}/conffiles ${_debian}/postinst ${_debian}/prerm
    ${_debian}/postrm ${_debian}/triggers)

set(CPACK_DEBIAN_DEV_PACKAGE_NAME provd-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_DEV_DESCRIPTION
"provd SDK: plugin and device library headers
Headers, pkg-config files (provd-plugin, provd-device) and the CMake
package (find_package(provd)) to build provd plugins out of tree and to
link libprovd-device.")

include(CPack)
cpack_add_component(provd DISPLAY_NAME "provd service and tools" REQUIRED)
cpack_add_component(dev DISPLAY_NAME "provd SDK" DEPENDS provd)
