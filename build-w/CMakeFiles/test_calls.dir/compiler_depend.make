# Empty compiler generated dependencies file for test_calls.
# This may be replaced when dependencies are built.
