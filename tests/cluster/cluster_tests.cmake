# Cluster tests (issue 6): real node processes on 127.0.0.1, real TCP,
# real SQLite, data in mktemp directories. Included from CMakeLists.txt.
# They share the machine's ports and cores, so they never run in parallel
# with each other (RESOURCE_LOCK), and each is bounded in time.
find_program(MP_BASH bash)
if(MP_BASH)
  set(_mp_cluster_dir ${CMAKE_CURRENT_LIST_DIR})
  # cluster.postgres needs the PostgreSQL provider in the program (libpq).
  set(_mp_cluster_pg "")
  set(_mp_cluster_pg_test "")
  if(PQ_FOUND)
    set(_mp_cluster_pg postgres)
    set(_mp_cluster_pg_test cluster.postgres)
  endif()
  foreach(t basic config namespace ${_mp_cluster_pg} interrupt auth tls storage_id metrics members sdnotify)
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
  # Bounded resources (issue 12), one raw-socket misbehaviour per test
  # (tests/cluster/rawclient.py; skipped without python3).
  foreach(m noread idle slow mailbox)
    add_test(NAME cluster.limits.${m}
             COMMAND ${MP_BASH} ${_mp_cluster_dir}/test_cluster_limits.sh $<TARGET_FILE:moonpool> ${m})
    set_tests_properties(cluster.limits.${m}
                         PROPERTIES TIMEOUT 150 LABELS cluster RESOURCE_LOCK mp_cluster_ports
                                    SKIP_RETURN_CODE 77)
  endforeach()
  # Membership table (issue 13): kill for good, join while a client runs,
  # pause past the lease (tests/cluster/lib.sh: table_conf).
  foreach(t failover join pause)
    add_test(NAME cluster.${t}
             COMMAND ${MP_BASH} ${_mp_cluster_dir}/test_cluster_${t}.sh $<TARGET_FILE:moonpool>)
    set_tests_properties(cluster.${t}
                         PROPERTIES TIMEOUT 240 LABELS cluster RESOURCE_LOCK mp_cluster_ports
                                    SKIP_RETURN_CODE 77)
  endforeach()
  set_tests_properties(cluster.basic cluster.config cluster.namespace ${_mp_cluster_pg_test}
                       cluster.interrupt cluster.auth cluster.tls cluster.storage_id cluster.metrics cluster.members cluster.sdnotify cluster.workload
                       cluster.kill_mid_workload
                       PROPERTIES TIMEOUT 150 LABELS cluster RESOURCE_LOCK mp_cluster_ports
                                  SKIP_RETURN_CODE 77)
endif()
