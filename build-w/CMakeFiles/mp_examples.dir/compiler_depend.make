# Empty compiler generated dependencies file for mp_examples.
# This may be replaced when dependencies are built.
