# Empty dependencies file for test_transport_sim.
# This may be replaced when dependencies are built.
