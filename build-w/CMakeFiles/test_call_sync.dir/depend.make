# Empty dependencies file for test_call_sync.
# This may be replaced when dependencies are built.
