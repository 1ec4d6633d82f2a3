file(REMOVE_RECURSE
  "CMakeFiles/test_node_sim.dir/tests/unit/test_node_sim.c.o"
  "CMakeFiles/test_node_sim.dir/tests/unit/test_node_sim.c.o.d"
  "tests/test_node_sim"
  "tests/test_node_sim.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_node_sim.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
