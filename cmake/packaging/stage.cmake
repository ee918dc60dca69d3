# Run by cpack (CPACK_PRE_BUILD_SCRIPTS, cmake/packaging.cmake) on the staging tree of the Debian
# package after `cmake --install` filled it and before it is packed.
set(root "${CPACK_TEMPORARY_INSTALL_DIRECTORY}")
set(usr "${root}${CPACK_PACKAGING_INSTALL_PREFIX}")
if(NOT IS_DIRECTORY "${usr}/bin")
  message(FATAL_ERROR "pgvault packaging: no ${usr}/bin in the staging tree")
endif()

# The configuration in /etc/pgvault (the rules install it relative to the prefix: /usr/etc).
if(EXISTS "${usr}/etc/pgvault/pgvault.toml")
  file(MAKE_DIRECTORY "${root}/etc")
  file(RENAME "${usr}/etc/pgvault" "${root}/etc/pgvault")
  file(REMOVE_RECURSE "${usr}/etc")
endif()
if(NOT EXISTS "${root}/etc/pgvault/pgvault.toml")
  message(FATAL_ERROR "pgvault packaging: etc/pgvault/pgvault.toml missing from the staging tree")
endif()

# The units and the cron example name the tools in /usr/local/bin (a source install's default prefix).
file(GLOB_RECURSE examples "${usr}/lib/systemd/system/*" "${usr}/share/doc/pgvault/examples/cron.d/*")
foreach(f ${examples})
  file(READ "${f}" text)
  string(REPLACE "/usr/local/bin/" "/usr/bin/" text "${text}")
  string(REPLACE "/usr/local/share/doc/" "/usr/share/doc/" text "${text}")
  file(WRITE "${f}" "${text}")
endforeach()

# Man pages from each tool's --help and --version (help2man), when help2man is installed.
find_program(HELP2MAN help2man)
find_program(GZIP gzip)
file(GLOB tools "${usr}/bin/*")
if(HELP2MAN AND GZIP)
  file(MAKE_DIRECTORY "${usr}/share/man/man1")
  foreach(tool ${tools})
    get_filename_component(name "${tool}" NAME)
    set(page "${usr}/share/man/man1/${name}.1")
    execute_process(COMMAND "${HELP2MAN}" --no-info --no-discard-stderr --name "pgvault ${name}"
                            --output "${page}" "${tool}"
                    RESULT_VARIABLE rc ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "pgvault packaging: help2man ${name} failed: ${err}")
    endif()
    execute_process(COMMAND "${GZIP}" -9n "${page}" RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "pgvault packaging: gzip ${page} failed")
    endif()
  endforeach()
else()
  message(STATUS "pgvault packaging: help2man not installed, no man pages (--help has the same text)")
endif()
