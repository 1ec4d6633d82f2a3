
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/rt/src/actor/calls.c" "CMakeFiles/mp_core.dir/src/actor/calls.c.o" "gcc" "CMakeFiles/mp_core.dir/src/actor/calls.c.o.d"
  "/work/rt/src/actor/id.c" "CMakeFiles/mp_core.dir/src/actor/id.c.o" "gcc" "CMakeFiles/mp_core.dir/src/actor/id.c.o.d"
  "/work/rt/src/actor/state_codec.c" "CMakeFiles/mp_core.dir/src/actor/state_codec.c.o" "gcc" "CMakeFiles/mp_core.dir/src/actor/state_codec.c.o.d"
  "/work/rt/src/codec/json_codec.c" "CMakeFiles/mp_core.dir/src/codec/json_codec.c.o" "gcc" "CMakeFiles/mp_core.dir/src/codec/json_codec.c.o.d"
  "/work/rt/src/config/config.c" "CMakeFiles/mp_core.dir/src/config/config.c.o" "gcc" "CMakeFiles/mp_core.dir/src/config/config.c.o.d"
  "/work/rt/src/directory/directory.c" "CMakeFiles/mp_core.dir/src/directory/directory.c.o" "gcc" "CMakeFiles/mp_core.dir/src/directory/directory.c.o.d"
  "/work/rt/src/env/env_common.c" "CMakeFiles/mp_core.dir/src/env/env_common.c.o" "gcc" "CMakeFiles/mp_core.dir/src/env/env_common.c.o.d"
  "/work/rt/src/env/env_uv.c" "CMakeFiles/mp_core.dir/src/env/env_uv.c.o" "gcc" "CMakeFiles/mp_core.dir/src/env/env_uv.c.o.d"
  "/work/rt/src/host/call_sync.c" "CMakeFiles/mp_core.dir/src/host/call_sync.c.o" "gcc" "CMakeFiles/mp_core.dir/src/host/call_sync.c.o.d"
  "/work/rt/src/host/config_file.c" "CMakeFiles/mp_core.dir/src/host/config_file.c.o" "gcc" "CMakeFiles/mp_core.dir/src/host/config_file.c.o.d"
  "/work/rt/src/host/run.c" "CMakeFiles/mp_core.dir/src/host/run.c.o" "gcc" "CMakeFiles/mp_core.dir/src/host/run.c.o.d"
  "/work/rt/src/runtime/activation.c" "CMakeFiles/mp_core.dir/src/runtime/activation.c.o" "gcc" "CMakeFiles/mp_core.dir/src/runtime/activation.c.o.d"
  "/work/rt/src/runtime/call.c" "CMakeFiles/mp_core.dir/src/runtime/call.c.o" "gcc" "CMakeFiles/mp_core.dir/src/runtime/call.c.o.d"
  "/work/rt/src/runtime/catalog.c" "CMakeFiles/mp_core.dir/src/runtime/catalog.c.o" "gcc" "CMakeFiles/mp_core.dir/src/runtime/catalog.c.o.d"
  "/work/rt/src/runtime/client.c" "CMakeFiles/mp_core.dir/src/runtime/client.c.o" "gcc" "CMakeFiles/mp_core.dir/src/runtime/client.c.o.d"
  "/work/rt/src/runtime/dir_owner.c" "CMakeFiles/mp_core.dir/src/runtime/dir_owner.c.o" "gcc" "CMakeFiles/mp_core.dir/src/runtime/dir_owner.c.o.d"
  "/work/rt/src/runtime/idle.c" "CMakeFiles/mp_core.dir/src/runtime/idle.c.o" "gcc" "CMakeFiles/mp_core.dir/src/runtime/idle.c.o.d"
  "/work/rt/src/runtime/lifecycle.c" "CMakeFiles/mp_core.dir/src/runtime/lifecycle.c.o" "gcc" "CMakeFiles/mp_core.dir/src/runtime/lifecycle.c.o.d"
  "/work/rt/src/runtime/node.c" "CMakeFiles/mp_core.dir/src/runtime/node.c.o" "gcc" "CMakeFiles/mp_core.dir/src/runtime/node.c.o.d"
  "/work/rt/src/runtime/peers.c" "CMakeFiles/mp_core.dir/src/runtime/peers.c.o" "gcc" "CMakeFiles/mp_core.dir/src/runtime/peers.c.o.d"
  "/work/rt/src/runtime/recv.c" "CMakeFiles/mp_core.dir/src/runtime/recv.c.o" "gcc" "CMakeFiles/mp_core.dir/src/runtime/recv.c.o.d"
  "/work/rt/src/runtime/register.c" "CMakeFiles/mp_core.dir/src/runtime/register.c.o" "gcc" "CMakeFiles/mp_core.dir/src/runtime/register.c.o.d"
  "/work/rt/src/runtime/route.c" "CMakeFiles/mp_core.dir/src/runtime/route.c.o" "gcc" "CMakeFiles/mp_core.dir/src/runtime/route.c.o.d"
  "/work/rt/src/runtime/runq.c" "CMakeFiles/mp_core.dir/src/runtime/runq.c.o" "gcc" "CMakeFiles/mp_core.dir/src/runtime/runq.c.o.d"
  "/work/rt/src/runtime/send.c" "CMakeFiles/mp_core.dir/src/runtime/send.c.o" "gcc" "CMakeFiles/mp_core.dir/src/runtime/send.c.o.d"
  "/work/rt/src/runtime/shutdown.c" "CMakeFiles/mp_core.dir/src/runtime/shutdown.c.o" "gcc" "CMakeFiles/mp_core.dir/src/runtime/shutdown.c.o.d"
  "/work/rt/src/runtime/state.c" "CMakeFiles/mp_core.dir/src/runtime/state.c.o" "gcc" "CMakeFiles/mp_core.dir/src/runtime/state.c.o.d"
  "/work/rt/src/runtime/stats.c" "CMakeFiles/mp_core.dir/src/runtime/stats.c.o" "gcc" "CMakeFiles/mp_core.dir/src/runtime/stats.c.o.d"
  "/work/rt/src/runtime/sysmsg.c" "CMakeFiles/mp_core.dir/src/runtime/sysmsg.c.o" "gcc" "CMakeFiles/mp_core.dir/src/runtime/sysmsg.c.o.d"
  "/work/rt/src/sim/runner.c" "CMakeFiles/mp_core.dir/src/sim/runner.c.o" "gcc" "CMakeFiles/mp_core.dir/src/sim/runner.c.o.d"
  "/work/rt/src/sim/sim.c" "CMakeFiles/mp_core.dir/src/sim/sim.c.o" "gcc" "CMakeFiles/mp_core.dir/src/sim/sim.c.o.d"
  "/work/rt/src/sim/sim_env.c" "CMakeFiles/mp_core.dir/src/sim/sim_env.c.o" "gcc" "CMakeFiles/mp_core.dir/src/sim/sim_env.c.o.d"
  "/work/rt/src/sim/sim_faults.c" "CMakeFiles/mp_core.dir/src/sim/sim_faults.c.o" "gcc" "CMakeFiles/mp_core.dir/src/sim/sim_faults.c.o.d"
  "/work/rt/src/sim/sim_net.c" "CMakeFiles/mp_core.dir/src/sim/sim_net.c.o" "gcc" "CMakeFiles/mp_core.dir/src/sim/sim_net.c.o.d"
  "/work/rt/src/sim/sites.c" "CMakeFiles/mp_core.dir/src/sim/sites.c.o" "gcc" "CMakeFiles/mp_core.dir/src/sim/sites.c.o.d"
  "/work/rt/src/sim/workload_registry.c" "CMakeFiles/mp_core.dir/src/sim/workload_registry.c.o" "gcc" "CMakeFiles/mp_core.dir/src/sim/workload_registry.c.o.d"
  "/work/rt/src/storage/batch.c" "CMakeFiles/mp_core.dir/src/storage/batch.c.o" "gcc" "CMakeFiles/mp_core.dir/src/storage/batch.c.o.d"
  "/work/rt/src/storage/kv.c" "CMakeFiles/mp_core.dir/src/storage/kv.c.o" "gcc" "CMakeFiles/mp_core.dir/src/storage/kv.c.o.d"
  "/work/rt/src/storage/memory.c" "CMakeFiles/mp_core.dir/src/storage/memory.c.o" "gcc" "CMakeFiles/mp_core.dir/src/storage/memory.c.o.d"
  "/work/rt/src/storage/postgres.c" "CMakeFiles/mp_core.dir/src/storage/postgres.c.o" "gcc" "CMakeFiles/mp_core.dir/src/storage/postgres.c.o.d"
  "/work/rt/src/storage/sim_storage.c" "CMakeFiles/mp_core.dir/src/storage/sim_storage.c.o" "gcc" "CMakeFiles/mp_core.dir/src/storage/sim_storage.c.o.d"
  "/work/rt/src/storage/sqlite.c" "CMakeFiles/mp_core.dir/src/storage/sqlite.c.o" "gcc" "CMakeFiles/mp_core.dir/src/storage/sqlite.c.o.d"
  "/work/rt/src/storage/storage.c" "CMakeFiles/mp_core.dir/src/storage/storage.c.o" "gcc" "CMakeFiles/mp_core.dir/src/storage/storage.c.o.d"
  "/work/rt/src/transport/handshake.c" "CMakeFiles/mp_core.dir/src/transport/handshake.c.o" "gcc" "CMakeFiles/mp_core.dir/src/transport/handshake.c.o.d"
  "/work/rt/src/transport/transport.c" "CMakeFiles/mp_core.dir/src/transport/transport.c.o" "gcc" "CMakeFiles/mp_core.dir/src/transport/transport.c.o.d"
  "/work/rt/src/util/alloc.c" "CMakeFiles/mp_core.dir/src/util/alloc.c.o" "gcc" "CMakeFiles/mp_core.dir/src/util/alloc.c.o.d"
  "/work/rt/src/util/buf.c" "CMakeFiles/mp_core.dir/src/util/buf.c.o" "gcc" "CMakeFiles/mp_core.dir/src/util/buf.c.o.d"
  "/work/rt/src/util/crc32c.c" "CMakeFiles/mp_core.dir/src/util/crc32c.c.o" "gcc" "CMakeFiles/mp_core.dir/src/util/crc32c.c.o.d"
  "/work/rt/src/util/hash.c" "CMakeFiles/mp_core.dir/src/util/hash.c.o" "gcc" "CMakeFiles/mp_core.dir/src/util/hash.c.o.d"
  "/work/rt/src/util/heap.c" "CMakeFiles/mp_core.dir/src/util/heap.c.o" "gcc" "CMakeFiles/mp_core.dir/src/util/heap.c.o.d"
  "/work/rt/src/util/map.c" "CMakeFiles/mp_core.dir/src/util/map.c.o" "gcc" "CMakeFiles/mp_core.dir/src/util/map.c.o.d"
  "/work/rt/src/util/status.c" "CMakeFiles/mp_core.dir/src/util/status.c.o" "gcc" "CMakeFiles/mp_core.dir/src/util/status.c.o.d"
  "/work/rt/src/wire/frame.c" "CMakeFiles/mp_core.dir/src/wire/frame.c.o" "gcc" "CMakeFiles/mp_core.dir/src/wire/frame.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
