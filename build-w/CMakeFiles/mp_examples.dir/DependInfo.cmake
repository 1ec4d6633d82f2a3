
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/rt/examples/bank/bank.c" "CMakeFiles/mp_examples.dir/examples/bank/bank.c.o" "gcc" "CMakeFiles/mp_examples.dir/examples/bank/bank.c.o.d"
  "/work/rt/tests/sim/bank.c" "CMakeFiles/mp_examples.dir/tests/sim/bank.c.o" "gcc" "CMakeFiles/mp_examples.dir/tests/sim/bank.c.o.d"
  "/work/rt/tests/sim/bank_durable.c" "CMakeFiles/mp_examples.dir/tests/sim/bank_durable.c.o" "gcc" "CMakeFiles/mp_examples.dir/tests/sim/bank_durable.c.o.d"
  "/work/rt/tests/sim/pingpong.c" "CMakeFiles/mp_examples.dir/tests/sim/pingpong.c.o" "gcc" "CMakeFiles/mp_examples.dir/tests/sim/pingpong.c.o.d"
  "/work/rt/tests/sim/workloads.c" "CMakeFiles/mp_examples.dir/tests/sim/workloads.c.o" "gcc" "CMakeFiles/mp_examples.dir/tests/sim/workloads.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
