# The Debian package: `cpack -G DEB` in a build directory makes pgvault_<version>_amd64.deb of what
# `cmake --install` installs (every tool of tools/*/main.cpp, the configuration, the systemd units, docs),
# laid out for Debian 12 by cmake/packaging/stage.cmake (run on the staging tree before packing):
#  - /usr/bin/<tool> for every tool; man pages /usr/share/man/man1/<tool>.1.gz made from --help by
#    help2man when it is installed (scripts/setup.sh installs it);
#  - /etc/pgvault/pgvault.toml, a conffile (dpkg keeps an operator's changes on upgrade and removal);
#  - the systemd units of conf/systemd/ (every file there) in /usr/lib/systemd/system, not enabled,
#    and the cron file as an example with the documentation (it and the timers exclude each other),
#    both with ExecStart/commands pointing at /usr/bin;
#  - README.md and docs/ in /usr/share/doc/pgvault;
#  - Depends: from dpkg-shlibdeps (the packages of the shared libraries the tools link), so the package
#    installs with apt on Debian 12 and pulls in libpq5, libssl3, libzstd1, libc6 (a Release build carries its
#    C++ libraries: PGVAULT_LEAN_START, docs/ARCHITECTURE.md); plus libcurl4,
#    which the S3 backend loads with dlopen (common/storage/s3/curl_api.cpp), unseen by dpkg-shlibdeps;
#  - postinst: /var/lib/pgvault (the default repository's parent) owned by postgres, mode 0750, when that
#    user exists; removal and purge leave it and the repositories in it alone.
# Build the package from a Release build: scripts/build.sh release && (cd build/release && cpack -G DEB).

set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "pgvault")
set(CPACK_PACKAGE_VENDOR "pgvault")
set(CPACK_PACKAGE_CONTACT "pgvault developers <dev@pgvault.invalid>")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "WAL archiving and point-in-time recovery for PostgreSQL")
set(CPACK_PACKAGE_DESCRIPTION
    "Small executables that PostgreSQL and cron call directly: wal-push (archive_command), wal-fetch
(restore_command), base-push, pitr-prepare, retention-prune, archive-info and repo-init, over one
repository format (local directory or S3), compressed, encrypted and verified on every read.")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_DEBIAN_FILE_NAME "DEB-DEFAULT")  # pgvault_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION "database")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libcurl4")  # dlopen'ed; dpkg-shlibdeps's list is appended
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "postgresql")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)

set(pgvault_pkg_dir "${PROJECT_BINARY_DIR}/packaging")
file(MAKE_DIRECTORY "${pgvault_pkg_dir}")
configure_file("${PROJECT_SOURCE_DIR}/cmake/packaging/conffiles" "${pgvault_pkg_dir}/conffiles" COPYONLY)
configure_file("${PROJECT_SOURCE_DIR}/cmake/packaging/postinst" "${pgvault_pkg_dir}/postinst" COPYONLY)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA "${pgvault_pkg_dir}/conffiles;${pgvault_pkg_dir}/postinst")

# The staging step: moves what the prefix-relative rules put under /usr/etc to /etc, points the units
# and the cron example at /usr/bin, and writes the man pages from the built tools' --help.
set(CPACK_PGVAULT_TOOLS_DIR "${PROJECT_BINARY_DIR}")
set(CPACK_PRE_BUILD_SCRIPTS "${PROJECT_SOURCE_DIR}/cmake/packaging/stage.cmake")

include(CPack)
