file(REMOVE_RECURSE
  "CMakeFiles/fuzz_wire_decoder.dir/tests/fuzz/fuzz_wire_decoder.c.o"
  "CMakeFiles/fuzz_wire_decoder.dir/tests/fuzz/fuzz_wire_decoder.c.o.d"
  "CMakeFiles/fuzz_wire_decoder.dir/tests/fuzz/replay_main.c.o"
  "CMakeFiles/fuzz_wire_decoder.dir/tests/fuzz/replay_main.c.o.d"
  "fuzz/fuzz_wire_decoder"
  "fuzz/fuzz_wire_decoder.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/fuzz_wire_decoder.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
