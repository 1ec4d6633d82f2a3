file(REMOVE_RECURSE
  "CMakeFiles/test_host.dir/tests/unit/test_host.c.o"
  "CMakeFiles/test_host.dir/tests/unit/test_host.c.o.d"
  "tests/test_host"
  "tests/test_host.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_host.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
