# cmake -DDEMO=<padhook-demo> -P check_deterministic.cmake
# Runs the demo with 1 and with 4 threads and requires identical output.
foreach(threads 1 4)
  execute_process(COMMAND ${DEMO} --lines 5000 --threads ${threads}
                  OUTPUT_VARIABLE out_${threads} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "padhook-demo --threads ${threads} failed (${rc})")
  endif()
endforeach()
if(NOT out_1 STREQUAL out_4)
  message(FATAL_ERROR "output differs between 1 and 4 threads:\n${out_1}\n---\n${out_4}")
endif()
if(NOT out_1 MATCHES "checksum +[0-9a-f]+")
  message(FATAL_ERROR "no checksum in output:\n${out_1}")
endif()
