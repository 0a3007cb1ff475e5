# Writes the bash completion script the program makes of its own command
# line definition: cmake -DPROGRAM=mixtape -DOUTPUT=FILE -P completion.cmake
execute_process(COMMAND "${PROGRAM}" completion bash OUTPUT_FILE "${OUTPUT}"
                RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  file(REMOVE "${OUTPUT}")
  message(FATAL_ERROR "${PROGRAM} completion bash failed: ${result}")
endif()
