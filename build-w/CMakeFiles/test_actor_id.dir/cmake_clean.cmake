file(REMOVE_RECURSE
  "CMakeFiles/test_actor_id.dir/tests/unit/test_actor_id.c.o"
  "CMakeFiles/test_actor_id.dir/tests/unit/test_actor_id.c.o.d"
  "tests/test_actor_id"
  "tests/test_actor_id.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_actor_id.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
