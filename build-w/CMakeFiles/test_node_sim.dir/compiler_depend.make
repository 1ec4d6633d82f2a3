# Empty compiler generated dependencies file for test_node_sim.
# This may be replaced when dependencies are built.
