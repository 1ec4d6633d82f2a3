# Empty dependencies file for test_env_uv.
# This may be replaced when dependencies are built.
