# ctest script: gdb's `bt` from below four redirected frames shows the real
# callers, in order: padhook_gdb_bottom, then four times gcc_O2_walk each
# followed by its return trampoline's pseudo-frame, then main.
#   cmake -DGDB=... -DTARGET=... -P check_gdb_backtrace.cmake
if(NOT GDB)
  message(FATAL_ERROR "gdb not found: install it (scripts/install-deps.sh does)")
endif()
execute_process(
  COMMAND ${GDB} -q -batch -nx -ex "set breakpoint pending on" -ex "break padhook_gdb_bottom"
          -ex run -ex bt -ex continue ${TARGET}
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc TIMEOUT 120)
string(REGEX MATCHALL "\n#[0-9]+ +[^\n]*" frames "${out}")
set(names)
foreach(frame IN LISTS frames)
  if(frame MATCHES " in ([A-Za-z_][A-Za-z0-9_:]*) \\(")
    list(APPEND names ${CMAKE_MATCH_1})
  elseif(frame MATCHES "#0 +([A-Za-z_][A-Za-z0-9_:]*) \\(")
    list(APPEND names ${CMAKE_MATCH_1})
  endif()
endforeach()
set(rt "padhook_return_trampoline_(high|low)_frame")
set(expected "padhook_gdb_bottom;gcc_O2_walk;RT;gcc_O2_walk;RT;gcc_O2_walk;RT;gcc_O2_walk;RT;main")
string(REGEX REPLACE "${rt}" "RT" seen "${names}")
if(NOT seen STREQUAL expected)
  message(FATAL_ERROR "gdb backtrace frames:\n  ${seen}\nexpected:\n  ${expected}\n"
                      "gdb output:\n${out}\n${err}")
endif()
if(NOT out MATCHES "exited normally")
  message(FATAL_ERROR "the program did not finish normally under gdb:\n${out}\n${err}")
endif()
message(STATUS "gdb backtrace: ${seen}")
