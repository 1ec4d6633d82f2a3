# Empty dependencies file for mp_core.
# This may be replaced when dependencies are built.
