# Empty dependencies file for moonpool.
# This may be replaced when dependencies are built.
