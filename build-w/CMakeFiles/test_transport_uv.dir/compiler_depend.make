# Empty compiler generated dependencies file for test_transport_uv.
# This may be replaced when dependencies are built.
