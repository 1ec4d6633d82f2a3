file(REMOVE_RECURSE
  "CMakeFiles/test_transport_uv.dir/tests/unit/test_transport_uv.c.o"
  "CMakeFiles/test_transport_uv.dir/tests/unit/test_transport_uv.c.o.d"
  "tests/test_transport_uv"
  "tests/test_transport_uv.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_transport_uv.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
