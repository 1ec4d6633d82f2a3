file(REMOVE_RECURSE
  "CMakeFiles/test_state_sim.dir/tests/unit/test_state_sim.c.o"
  "CMakeFiles/test_state_sim.dir/tests/unit/test_state_sim.c.o.d"
  "tests/test_state_sim"
  "tests/test_state_sim.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_state_sim.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
