file(REMOVE_RECURSE
  "CMakeFiles/test_bank_sim.dir/tests/unit/test_bank_sim.c.o"
  "CMakeFiles/test_bank_sim.dir/tests/unit/test_bank_sim.c.o.d"
  "tests/test_bank_sim"
  "tests/test_bank_sim.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_bank_sim.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
