# Install rules (`make install`, `cmake --install build [--prefix P]`, with
# DESTDIR honoured by CMake): headers, libmoonpool.{a,so} (and
# libmoonpool-postgres when built), the `moonpool` program, moonpool.pc and
# the CMake package (find_package(moonpool) -> moonpool::moonpool).
#
# Both the .pc files and the CMake package are relocatable: they find the
# prefix from their own location (pkg-config's ${pcfiledir}, CMake's
# _IMPORT_PREFIX), so an install with --prefix or DESTDIR that differs from
# the configure-time CMAKE_INSTALL_PREFIX still points at its own files.
# Included from CMakeLists.txt (after the targets exist).
include(CMakePackageConfigHelpers)

set(MP_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/moonpool)
set(MP_PC_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/moonpool
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
if(TARGET mp_lib_postgres_link)
  install(TARGETS mp_lib_postgres_link EXPORT moonpoolTargets)
endif()
install(TARGETS ${MP_LIB_TARGETS} EXPORT moonpoolTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS moonpool RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR})
# The systemd unit (contrib/systemd): its ExecStart names the installed
# binary, so it is written at install time, when `cmake --install --prefix`
# may have changed the prefix (DESTDIR is staging only, not in the path).
install(CODE "
  set(_bindir \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
  file(READ \"${PROJECT_SOURCE_DIR}/contrib/systemd/moonpool@.service.in\" _unit)
  string(REPLACE \"@MP_FULL_BINDIR@\" \"\${_bindir}\" _unit \"\${_unit}\")
  set(_dir \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/lib/systemd/system\")
  message(STATUS \"Installing: \${_dir}/moonpool@.service\")
  file(MAKE_DIRECTORY \"\${_dir}\")
  file(WRITE \"\${_dir}/moonpool@.service\" \"\${_unit}\")
  # In install_manifest.txt like every other file, so that removing what it
  # lists (the usual uninstall) removes the unit too.
  list(APPEND CMAKE_INSTALL_MANIFEST_FILES \"\${_dir}/moonpool@.service\")
")

# ---- pkg-config ---------------------------------------------------------------
# prefix relative to the .pc file's directory (lib/pkgconfig -> ../..).
if(IS_ABSOLUTE "${MP_PC_DIR}")
  set(MP_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH _rel "/p/${MP_PC_DIR}" "/p")
  string(REGEX REPLACE "/$" "" _rel "${_rel}")
  set(MP_PC_PREFIX "\${pcfiledir}/${_rel}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(MP_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  set(MP_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(MP_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(MP_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
set(MP_PC_REQUIRES "")
set(MP_PC_REQUIRES_PRIVATE "")
foreach(_pkg ${MP_CORE_PKGS})
  if(_pkg IN_LIST MP_CORE_PUBLIC_PKGS)
    list(APPEND MP_PC_REQUIRES ${_pkg})
  else()
    list(APPEND MP_PC_REQUIRES_PRIVATE ${_pkg})
  endif()
endforeach()
set(MP_PC_LIBS_PRIVATE "")
foreach(_lib ${MP_CORE_LIBS})
  if(NOT _lib MATCHES "::")
    list(APPEND MP_PC_LIBS_PRIVATE -l${_lib})
  endif()
endforeach()
string(REPLACE ";" " " MP_PC_LIBS_PRIVATE "${MP_PC_LIBS_PRIVATE}")
string(REPLACE ";" " " MP_PC_REQUIRES "${MP_PC_REQUIRES}")
string(REPLACE ";" " " MP_PC_REQUIRES_PRIVATE "${MP_PC_REQUIRES_PRIVATE}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/moonpool.pc.in
               ${PROJECT_BINARY_DIR}/pkgconfig/moonpool.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/pkgconfig/moonpool.pc DESTINATION ${MP_PC_DIR})
if(PQ_FOUND)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/moonpool-postgres.pc.in
                 ${PROJECT_BINARY_DIR}/pkgconfig/moonpool-postgres.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/pkgconfig/moonpool-postgres.pc DESTINATION ${MP_PC_DIR})
endif()

# ---- CMake package --------------------------------------------------------------
set(MP_WITH_POSTGRES ${PQ_FOUND})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/moonpoolConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/cmake/moonpoolConfig.cmake
                              INSTALL_DESTINATION ${MP_CMAKE_DIR})
# Before 1.0 a minor release may break the API: only the same MAJOR.MINOR matches.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cmake/moonpoolConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(EXPORT moonpoolTargets NAMESPACE moonpool:: DESTINATION ${MP_CMAKE_DIR})
install(FILES ${PROJECT_BINARY_DIR}/cmake/moonpoolConfig.cmake
              ${PROJECT_BINARY_DIR}/cmake/moonpoolConfigVersion.cmake
        DESTINATION ${MP_CMAKE_DIR})
