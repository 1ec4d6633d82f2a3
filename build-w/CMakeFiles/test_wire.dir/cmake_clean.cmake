file(REMOVE_RECURSE
  "CMakeFiles/test_wire.dir/tests/unit/test_wire.c.o"
  "CMakeFiles/test_wire.dir/tests/unit/test_wire.c.o.d"
  "tests/test_wire"
  "tests/test_wire.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_wire.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
