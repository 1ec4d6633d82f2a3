# Empty dependencies file for fuzz_wire_decoder.
# This may be replaced when dependencies are built.
