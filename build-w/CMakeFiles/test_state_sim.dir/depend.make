# Empty dependencies file for test_state_sim.
# This may be replaced when dependencies are built.
