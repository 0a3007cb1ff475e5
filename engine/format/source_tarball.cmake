# Packs the source tree into OUTPUT as PREFIX/...: cmake -DSOURCE_DIR=
# -DOUTPUT= -DPREFIX= -P source_tarball.cmake. Build trees, .git and caches
# are left out, and so are the tape images kept as test data (megabytes of
# random bytes that every tape's file 0 would carry). The archive is reproducible (sorted names, numeric owner 0,
# gzip without a timestamp), and OUTPUT is only replaced when its bytes
# change, so an unchanged tarball does not relink anything.
file(GLOB _top LIST_DIRECTORIES true RELATIVE ${SOURCE_DIR} ${SOURCE_DIR}/* ${SOURCE_DIR}/.[!.]*)
set(_entries)
foreach(_entry IN LISTS _top)
  if(NOT _entry MATCHES "^(build|\\.git$|\\.cache$)")
    list(APPEND _entries ${_entry})
  endif()
endforeach()
list(SORT _entries)
set(_tmp ${OUTPUT}.tmp)
execute_process(
  COMMAND tar --create --file=${_tmp} --use-compress-program=gzip\ -9n --sort=name
          --owner=0 --group=0 --numeric-owner --exclude-vcs --exclude=__pycache__
          --exclude=compile_commands.json --exclude=tests/testdata/format1 --transform=s,^,${PREFIX}/,S
          --warning=no-file-changed -C ${SOURCE_DIR} ${_entries}
  RESULT_VARIABLE _result)
# 1 means a file changed while it was read (someone is editing): the
# tarball is still a valid archive of the tree as it was.
if(NOT _result EQUAL 0 AND NOT _result EQUAL 1)
  message(FATAL_ERROR "tar failed (${_result}) packing ${SOURCE_DIR}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different ${_tmp} ${OUTPUT})
file(REMOVE ${_tmp})
