file(REMOVE_RECURSE
  "CMakeFiles/test_storage_pg.dir/tests/unit/test_storage_pg.c.o"
  "CMakeFiles/test_storage_pg.dir/tests/unit/test_storage_pg.c.o.d"
  "tests/test_storage_pg"
  "tests/test_storage_pg.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_storage_pg.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
