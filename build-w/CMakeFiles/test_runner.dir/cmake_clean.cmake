file(REMOVE_RECURSE
  "CMakeFiles/test_runner.dir/tests/unit/test_runner.c.o"
  "CMakeFiles/test_runner.dir/tests/unit/test_runner.c.o.d"
  "tests/test_runner"
  "tests/test_runner.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_runner.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
