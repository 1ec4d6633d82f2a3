
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/rt/tools/cluster_client.c" "CMakeFiles/moonpool.dir/tools/cluster_client.c.o" "gcc" "CMakeFiles/moonpool.dir/tools/cluster_client.c.o.d"
  "/work/rt/tools/cmd_bench.c" "CMakeFiles/moonpool.dir/tools/cmd_bench.c.o" "gcc" "CMakeFiles/moonpool.dir/tools/cmd_bench.c.o.d"
  "/work/rt/tools/cmd_call.c" "CMakeFiles/moonpool.dir/tools/cmd_call.c.o" "gcc" "CMakeFiles/moonpool.dir/tools/cmd_call.c.o.d"
  "/work/rt/tools/cmd_demo.c" "CMakeFiles/moonpool.dir/tools/cmd_demo.c.o" "gcc" "CMakeFiles/moonpool.dir/tools/cmd_demo.c.o.d"
  "/work/rt/tools/cmd_node.c" "CMakeFiles/moonpool.dir/tools/cmd_node.c.o" "gcc" "CMakeFiles/moonpool.dir/tools/cmd_node.c.o.d"
  "/work/rt/tools/cmd_sim.c" "CMakeFiles/moonpool.dir/tools/cmd_sim.c.o" "gcc" "CMakeFiles/moonpool.dir/tools/cmd_sim.c.o.d"
  "/work/rt/tools/cmd_stats.c" "CMakeFiles/moonpool.dir/tools/cmd_stats.c.o" "gcc" "CMakeFiles/moonpool.dir/tools/cmd_stats.c.o.d"
  "/work/rt/tools/moonpool.c" "CMakeFiles/moonpool.dir/tools/moonpool.c.o" "gcc" "CMakeFiles/moonpool.dir/tools/moonpool.c.o.d"
  "/work/rt/tools/proc.c" "CMakeFiles/moonpool.dir/tools/proc.c.o" "gcc" "CMakeFiles/moonpool.dir/tools/proc.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
