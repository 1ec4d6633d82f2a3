file(REMOVE_RECURSE
  "CMakeFiles/test_env_uv.dir/tests/unit/test_env_uv.c.o"
  "CMakeFiles/test_env_uv.dir/tests/unit/test_env_uv.c.o.d"
  "tests/test_env_uv"
  "tests/test_env_uv.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_env_uv.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
