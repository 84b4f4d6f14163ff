# padhook_instrument(<target> [LANDING_PADS])
#
# Builds <target>'s C and C++ sources so that padhook can trace them: the
# -fpatchable-function-entry layout of docs/layout.md. LANDING_PADS selects the
# layout for code built with -fcf-protection (endbr64 at every entry) and adds
# that flag. These are the flags `padhook flags [--landing-pads]` prints; a test
# (flags_consistency) checks that the two never drift apart.
function(padhook_instrument target)
  cmake_parse_arguments(PH "LANDING_PADS" "" "" ${ARGN})
  if(PH_LANDING_PADS)
    set(flags -fpatchable-function-entry=17,12 -falign-functions=16 -fcf-protection=full)
  else()
    set(flags -fpatchable-function-entry=13,8 -falign-functions=16)
  endif()
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C,CXX>:${flags}>)
endfunction()
