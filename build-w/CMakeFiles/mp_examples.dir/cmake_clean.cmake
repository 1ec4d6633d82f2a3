file(REMOVE_RECURSE
  "CMakeFiles/mp_examples.dir/examples/bank/bank.c.o"
  "CMakeFiles/mp_examples.dir/examples/bank/bank.c.o.d"
  "CMakeFiles/mp_examples.dir/tests/sim/bank.c.o"
  "CMakeFiles/mp_examples.dir/tests/sim/bank.c.o.d"
  "CMakeFiles/mp_examples.dir/tests/sim/bank_durable.c.o"
  "CMakeFiles/mp_examples.dir/tests/sim/bank_durable.c.o.d"
  "CMakeFiles/mp_examples.dir/tests/sim/pingpong.c.o"
  "CMakeFiles/mp_examples.dir/tests/sim/pingpong.c.o.d"
  "CMakeFiles/mp_examples.dir/tests/sim/workloads.c.o"
  "CMakeFiles/mp_examples.dir/tests/sim/workloads.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/mp_examples.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
