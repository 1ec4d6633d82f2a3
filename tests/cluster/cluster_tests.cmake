# Cluster tests (issue 6): real node processes on 127.0.0.1, real TCP,
# real SQLite, data in mktemp directories. Included from CMakeLists.txt.
# They share the machine's ports and cores, so they never run in parallel
# with each other (RESOURCE_LOCK), and each is bounded in time.
find_program(MP_BASH bash)
if(MP_BASH)
  set(_mp_cluster_dir ${CMAKE_CURRENT_LIST_DIR})
  foreach(t basic config namespace postgres interrupt members)
    add_test(NAME cluster.${t}
             COMMAND ${MP_BASH} ${_mp_cluster_dir}/test_cluster_${t}.sh $<TARGET_FILE:moonpool>)
  endforeach()
  add_test(NAME cluster.workload
           COMMAND ${MP_BASH} ${_mp_cluster_dir}/test_cluster_workload.sh $<TARGET_FILE:moonpool> plain)
  add_test(NAME cluster.kill_mid_workload
           COMMAND ${MP_BASH} ${_mp_cluster_dir}/test_cluster_workload.sh $<TARGET_FILE:moonpool> kill-mid)
  add_test(NAME cluster.at_most_once
           COMMAND ${MP_BASH} ${_mp_cluster_dir}/test_cluster_at_most_once.sh $<TARGET_FILE:moonpool>)
  set_tests_properties(cluster.at_most_once
                       PROPERTIES TIMEOUT 180 LABELS cluster RESOURCE_LOCK mp_cluster_ports
                                  SKIP_RETURN_CODE 77)
  set_tests_properties(cluster.basic cluster.config cluster.namespace cluster.postgres
                       cluster.interrupt cluster.workload cluster.members
                       cluster.kill_mid_workload
                       PROPERTIES TIMEOUT 150 LABELS cluster RESOURCE_LOCK mp_cluster_ports
                                  SKIP_RETURN_CODE 77)
endif()
