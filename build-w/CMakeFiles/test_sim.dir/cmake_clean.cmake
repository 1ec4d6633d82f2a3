file(REMOVE_RECURSE
  "CMakeFiles/test_sim.dir/tests/unit/test_sim.c.o"
  "CMakeFiles/test_sim.dir/tests/unit/test_sim.c.o.d"
  "tests/test_sim"
  "tests/test_sim.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_sim.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
