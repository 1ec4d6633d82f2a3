file(REMOVE_RECURSE
  "CMakeFiles/test_transport_sim.dir/tests/unit/test_transport_sim.c.o"
  "CMakeFiles/test_transport_sim.dir/tests/unit/test_transport_sim.c.o.d"
  "tests/test_transport_sim"
  "tests/test_transport_sim.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_transport_sim.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
