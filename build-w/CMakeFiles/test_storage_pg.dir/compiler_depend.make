# Empty compiler generated dependencies file for test_storage_pg.
# This may be replaced when dependencies are built.
