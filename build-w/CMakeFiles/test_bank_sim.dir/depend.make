# Empty dependencies file for test_bank_sim.
# This may be replaced when dependencies are built.
