# Empty compiler generated dependencies file for test_storage.
# This may be replaced when dependencies are built.
