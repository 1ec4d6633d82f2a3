file(REMOVE_RECURSE
  "CMakeFiles/test_calls.dir/tests/unit/test_calls.c.o"
  "CMakeFiles/test_calls.dir/tests/unit/test_calls.c.o.d"
  "tests/test_calls"
  "tests/test_calls.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_calls.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
