file(REMOVE_RECURSE
  "CMakeFiles/test_transport_heartbeat.dir/tests/unit/test_transport_heartbeat.c.o"
  "CMakeFiles/test_transport_heartbeat.dir/tests/unit/test_transport_heartbeat.c.o.d"
  "tests/test_transport_heartbeat"
  "tests/test_transport_heartbeat.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_transport_heartbeat.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
