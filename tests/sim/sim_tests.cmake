# Simulation seed sets and `moonpool sim` command-line checks, included by the
# top-level CMakeLists.txt.
#
# Budget: pingpong 1..200 takes ~6 s and the determinism set ~1 s in the ASan
# build on 2 cores (a few times less in the normal build), so both builds run
# the same sets. Heavier workloads added later can shrink their ASan sets
# here with if(MP_SANITIZE).

add_test(NAME sim.pingpong.seeds
         COMMAND $<TARGET_FILE:moonpool> sim --workload pingpong --seeds 1..200)
add_test(NAME sim.pingpong.determinism
         COMMAND $<TARGET_FILE:moonpool> sim --workload pingpong
                 --seeds 1000..1030 --check-determinism)
set_tests_properties(sim.pingpong.seeds sim.pingpong.determinism PROPERTIES
                     TIMEOUT 600 LABELS sim)

# Usage errors must exit with status 2 (not 1, which means "seeds failed").
add_test(NAME cli.sim.badflag
         COMMAND sh -c "\"$0\" sim --bogus; test $? -eq 2" $<TARGET_FILE:moonpool>)
add_test(NAME cli.sim.badrange
         COMMAND sh -c "\"$0\" sim --seeds 5..1; test $? -eq 2" $<TARGET_FILE:moonpool>)
add_test(NAME cli.sim.list COMMAND $<TARGET_FILE:moonpool> sim --list)
set_tests_properties(cli.sim.badflag cli.sim.badrange cli.sim.list PROPERTIES
                     TIMEOUT 60 LABELS cli)
set_tests_properties(cli.sim.list PROPERTIES PASS_REGULAR_EXPRESSION "pingpong")
