# Refuses an include of a library that is not below this one (docs/ARCHITECTURE.md).
# Run as a build step of every library: cmake -DLIB=<name> -DALLOWED=<a;b;...> -DFILES=<f1;f2;...>
#   -DSTAMP=<file> -P check_layers.cmake
# A source of library LIB may include "common/<x>/..." only for x in ALLOWED (LIB itself and every
# library it links to, directly or through them).
cmake_minimum_required(VERSION 3.25)
foreach(file IN LISTS FILES)
  file(STRINGS "${file}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"common/")
  foreach(line IN LISTS lines)
    string(REGEX MATCH "\"common/([a-z0-9_]+)/" _ "${line}")
    set(used "${CMAKE_MATCH_1}")
    if(used STREQUAL "")
      message(FATAL_ERROR "${file}: '${line}': includes under common/ name their library folder")
    endif()
    if(NOT used IN_LIST ALLOWED)
      message(FATAL_ERROR "${file}: library '${LIB}' may not include '${used}' (upward or undeclared "
                          "dependency: '${LIB}' uses only ${ALLOWED}; see docs/ARCHITECTURE.md)")
    endif()
  endforeach()
endforeach()
file(WRITE "${STAMP}" "ok\n")
