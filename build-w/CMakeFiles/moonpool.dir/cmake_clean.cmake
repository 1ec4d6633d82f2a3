file(REMOVE_RECURSE
  "CMakeFiles/moonpool.dir/tools/cluster_client.c.o"
  "CMakeFiles/moonpool.dir/tools/cluster_client.c.o.d"
  "CMakeFiles/moonpool.dir/tools/cmd_bench.c.o"
  "CMakeFiles/moonpool.dir/tools/cmd_bench.c.o.d"
  "CMakeFiles/moonpool.dir/tools/cmd_call.c.o"
  "CMakeFiles/moonpool.dir/tools/cmd_call.c.o.d"
  "CMakeFiles/moonpool.dir/tools/cmd_demo.c.o"
  "CMakeFiles/moonpool.dir/tools/cmd_demo.c.o.d"
  "CMakeFiles/moonpool.dir/tools/cmd_node.c.o"
  "CMakeFiles/moonpool.dir/tools/cmd_node.c.o.d"
  "CMakeFiles/moonpool.dir/tools/cmd_sim.c.o"
  "CMakeFiles/moonpool.dir/tools/cmd_sim.c.o.d"
  "CMakeFiles/moonpool.dir/tools/cmd_stats.c.o"
  "CMakeFiles/moonpool.dir/tools/cmd_stats.c.o.d"
  "CMakeFiles/moonpool.dir/tools/moonpool.c.o"
  "CMakeFiles/moonpool.dir/tools/moonpool.c.o.d"
  "CMakeFiles/moonpool.dir/tools/proc.c.o"
  "CMakeFiles/moonpool.dir/tools/proc.c.o.d"
  "moonpool"
  "moonpool.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/moonpool.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
