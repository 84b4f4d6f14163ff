# padhook_instrument(<target> [LANDING_PADS])
#
# Builds <target>'s C and C++ sources so that padhook can trace them: the
# -fpatchable-function-entry layout of docs/layout.md. LANDING_PADS selects the
# layout for code built with -fcf-protection (endbr64 at every entry) and adds
# that flag. These are the flags `padhook flags [--landing-pads]` prints; a test
# (flags_consistency) checks that the two never drift apart.
#
# With GCC it also links with padhook-gcc-entries.ld (next to this file; the
# option `padhook flags --ldflags` prints): GCC 12 mishandles the
# __patchable_function_entries records of inline and template functions
# defined in several .cc files (the link fails, or records silently vanish);
# the fragment discards the records and padhook finds the functions by their
# layout instead. See docs/layout.md, "Known toolchain problems".
#
# Where the option goes: executables and shared libraries link with it
# themselves; static and OBJECT libraries pass it on (INTERFACE) to what links
# them with target_link_libraries(). Objects taken with $<TARGET_OBJECTS:lib>
# carry no link options: link the library with target_link_libraries() instead
# (it adds the objects too), or call padhook_instrument() on the consumer.
set_property(GLOBAL PROPERTY PADHOOK_GCC_ENTRIES_LD "${CMAKE_CURRENT_LIST_DIR}/padhook-gcc-entries.ld")

function(padhook_instrument target)
  cmake_parse_arguments(PH "LANDING_PADS" "" "" ${ARGN})
  if(PH_LANDING_PADS)
    set(flags -fpatchable-function-entry=17,12 -falign-functions=16 -fcf-protection=full)
  else()
    set(flags -fpatchable-function-entry=13,8 -falign-functions=16)
  endif()
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C,CXX>:${flags}>)

  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" OR CMAKE_C_COMPILER_ID STREQUAL "GNU")
    get_property(fragment GLOBAL PROPERTY PADHOOK_GCC_ENTRIES_LD)
    get_target_property(type ${target} TYPE)
    if(type STREQUAL "STATIC_LIBRARY" OR type STREQUAL "OBJECT_LIBRARY")
      set(scope INTERFACE)
    else()
      set(scope PRIVATE)
    endif()
    target_link_options(${target} ${scope} "-Wl,-T,${fragment}")
  endif()
endfunction()
