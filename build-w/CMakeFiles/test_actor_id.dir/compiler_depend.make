# Empty compiler generated dependencies file for test_actor_id.
# This may be replaced when dependencies are built.
