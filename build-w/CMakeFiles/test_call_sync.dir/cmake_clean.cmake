file(REMOVE_RECURSE
  "CMakeFiles/test_call_sync.dir/tests/unit/test_call_sync.c.o"
  "CMakeFiles/test_call_sync.dir/tests/unit/test_call_sync.c.o.d"
  "tests/test_call_sync"
  "tests/test_call_sync.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_call_sync.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
