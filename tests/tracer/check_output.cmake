# cmake -DPADHOOK=<padhook> -DTRACE=<dir> -DARGS="report|--format|json"
#       -DEXPECTED=<file> [-DEXPECT_STATUS=N] [-DSTDERR_MATCH=<regex>]
#       [-DSTDOUT_MATCH=<regex>] -P check_output.cmake
#
# Runs `padhook ARGS -i TRACE`, replaces TRACE in the output by "TRACE", and
# compares it with EXPECTED byte for byte. With PADHOOK_UPDATE_GOLDEN=1 in the
# environment it writes EXPECTED instead (then review the diff and commit).
string(REPLACE "|" ";" ARGS "${ARGS}")
if(NOT DEFINED EXPECT_STATUS)
  set(EXPECT_STATUS 0)
endif()
execute_process(COMMAND ${PADHOOK} ${ARGS} -i ${TRACE}
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL EXPECT_STATUS)
  message(FATAL_ERROR "padhook ${ARGS} exited ${rc}, expected ${EXPECT_STATUS}\nstdout:\n${out}\nstderr:\n${err}")
endif()
if(DEFINED STDERR_MATCH AND NOT err MATCHES "${STDERR_MATCH}")
  message(FATAL_ERROR "padhook ${ARGS}: stderr does not match '${STDERR_MATCH}':\n${err}")
endif()
if(DEFINED STDOUT_MATCH AND NOT out MATCHES "${STDOUT_MATCH}")
  message(FATAL_ERROR "padhook ${ARGS}: stdout does not match '${STDOUT_MATCH}':\n${out}")
endif()
string(REPLACE "${TRACE}" "TRACE" out "${out}")
if(NOT DEFINED EXPECTED)
  return()
endif()
if("$ENV{PADHOOK_UPDATE_GOLDEN}" STREQUAL "1")
  file(WRITE ${EXPECTED} "${out}")
  message(STATUS "wrote ${EXPECTED}")
  return()
endif()
file(READ ${EXPECTED} expected)
if(NOT out STREQUAL expected)
  get_filename_component(name ${EXPECTED} NAME)
  set(actual_file ${CMAKE_CURRENT_BINARY_DIR}/${name}.actual)
  file(WRITE ${actual_file} "${out}")
  execute_process(COMMAND diff -u ${EXPECTED} ${actual_file} OUTPUT_VARIABLE diff)
  message(FATAL_ERROR "padhook ${ARGS}: output differs from ${EXPECTED} (actual: ${actual_file}):\n${diff}")
endif()
