# Empty compiler generated dependencies file for test_runner.
# This may be replaced when dependencies are built.
