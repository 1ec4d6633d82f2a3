# Empty dependencies file for test_transport_heartbeat.
# This may be replaced when dependencies are built.
